//! Rejected: a duration in a unit runledger does not read.

use runledger::{JobError, job};

#[job(timeout = "30 seconds")]
async fn sync(account: u64) -> Result<(), JobError> {
    let _ = account;
    Ok(())
}

fn main() {}
