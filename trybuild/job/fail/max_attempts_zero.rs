use runledger::{JobError, job};

#[job(max_attempts = 0)]
async fn poll_feed() -> Result<(), JobError> {
    Ok(())
}

fn main() {}
