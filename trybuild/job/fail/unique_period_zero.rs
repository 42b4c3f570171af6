//! Rejected: a uniqueness window of zero length.

use runledger::{JobError, job};

#[job(unique(period = "0s"))]
async fn sync(account: u64) -> Result<(), JobError> {
    let _ = account;
    Ok(())
}

fn main() {}
