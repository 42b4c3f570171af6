//! Rejected: a negative number of attempts.

use runledger::{JobError, job};

#[job(max_attempts = -1)]
async fn sync(account: u64) -> Result<(), JobError> {
    let _ = account;
    Ok(())
}

fn main() {}
