//! Rejected: a backoff that shrinks.

use runledger::{JobError, job};

#[job(backoff(factor = 0.5))]
async fn sync(account: u64) -> Result<(), JobError> {
    let _ = account;
    Ok(())
}

fn main() {}
