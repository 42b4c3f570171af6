use runledger::{JobError, job};

#[job(queue = "mail", schedule = "0 */5 * * * *")]
async fn send_digest() -> Result<(), JobError> {
    Ok(())
}

fn main() {}
