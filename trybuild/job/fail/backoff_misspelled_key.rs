//! Rejected: a misspelled key of `backoff(...)`.

use runledger::{JobError, job};

#[job(backoff(bse = "1s"))]
async fn sync(account: u64) -> Result<(), JobError> {
    let _ = account;
    Ok(())
}

fn main() {}
