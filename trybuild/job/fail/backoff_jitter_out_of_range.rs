//! Rejected: a jitter above 1.0 (the fraction of the delay randomised away).

use runledger::{JobError, job};

#[job(backoff(jitter = 1.5))]
async fn sync(account: u64) -> Result<(), JobError> {
    let _ = account;
    Ok(())
}

fn main() {}
