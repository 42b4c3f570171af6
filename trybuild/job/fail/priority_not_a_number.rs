//! Rejected: a priority given as a word.

use runledger::{JobError, job};

#[job(priority = "high")]
async fn sync(account: u64) -> Result<(), JobError> {
    let _ = account;
    Ok(())
}

fn main() {}
