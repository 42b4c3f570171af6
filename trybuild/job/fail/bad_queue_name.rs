//! Rejected: a queue name with a space.

use runledger::{JobError, job};

#[job(queue = "high priority")]
async fn sync(account: u64) -> Result<(), JobError> {
    let _ = account;
    Ok(())
}

fn main() {}
