use runledger::{JobError, job};

#[job(queue = "mail", max_attempts = 3, queue = "bulk")]
async fn send_digest() -> Result<(), JobError> {
    Ok(())
}

fn main() {}
