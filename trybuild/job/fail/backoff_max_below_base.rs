//! Rejected: a backoff whose cap is below its first delay.

use runledger::{JobError, job};

#[job(backoff(base = "1h", max = "1m"))]
async fn sync(account: u64) -> Result<(), JobError> {
    let _ = account;
    Ok(())
}

fn main() {}
