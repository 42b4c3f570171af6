use runledger::{JobError, job};

#[job(backoff(constant = "5s", factor = 2.0))]
async fn poll_feed() -> Result<(), JobError> {
    Ok(())
}

fn main() {}
