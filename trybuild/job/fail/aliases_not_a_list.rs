//! Rejected: aliases given as one string instead of a list.

use runledger::{JobError, job};

#[job(aliases = "old_sync")]
async fn sync(account: u64) -> Result<(), JobError> {
    let _ = account;
    Ok(())
}

fn main() {}
