//! Rejected: the job context taken by value instead of by reference.

use runledger::{JobContext, JobError, job};

#[job]
async fn sync(ctx: JobContext, account: u64) -> Result<(), JobError> {
    let _ = (ctx, account);
    Ok(())
}

fn main() {}
