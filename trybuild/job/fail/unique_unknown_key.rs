//! Rejected: a misspelled key of `unique(...)`.

use runledger::{JobError, job};

#[job(unique(bye = [account]))]
async fn sync(account: u64) -> Result<(), JobError> {
    let _ = account;
    Ok(())
}

fn main() {}
