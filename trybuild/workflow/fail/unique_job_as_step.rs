//! Rejected: a job declared `unique` used as a step, where its key would be silently ignored.

use runledger::{JobError, job, workflow};

#[job(unique)]
async fn sync_account(account_id: u64) -> Result<(), JobError> {
    let _ = account_id;
    Ok(())
}

#[workflow]
fn onboard(account_id: u64) {
    let sync = sync_account(account_id);
}

fn main() {}
