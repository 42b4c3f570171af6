//! Rejected: a missed-slot policy that does not exist.

use runledger::{JobError, job};

#[job(cron = "0 0 * * *", missed = "later")]
async fn nightly() -> Result<(), JobError> {
    Ok(())
}

fn main() {}
