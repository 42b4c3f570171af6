//! Rejected: a timeout of zero; leave `timeout` out for none.

use runledger::{JobError, job};

#[job(timeout = "0s")]
async fn sync(account: u64) -> Result<(), JobError> {
    let _ = account;
    Ok(())
}

fn main() {}
