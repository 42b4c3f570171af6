//! Rejected: a unique key made of no field.

use runledger::{JobError, job};

#[job(unique(by = []))]
async fn sync(account: u64) -> Result<(), JobError> {
    let _ = account;
    Ok(())
}

fn main() {}
