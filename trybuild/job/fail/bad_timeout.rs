use runledger::{JobError, job};

#[job(timeout = "30 seconds")]
async fn send_digest() -> Result<(), JobError> {
    Ok(())
}

fn main() {}
