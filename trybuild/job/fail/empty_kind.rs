//! Rejected: an empty kind.

use runledger::{JobError, job};

#[job(kind = "")]
async fn sync(account: u64) -> Result<(), JobError> {
    let _ = account;
    Ok(())
}

fn main() {}
