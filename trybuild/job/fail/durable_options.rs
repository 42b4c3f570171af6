//! Rejected: `version` without `durable`, a version of 0, and `resumes` listing the code's own
//! version.

use runledger::{JobError, job};

#[job(version = 2)]
async fn plain(n: u32) -> Result<(), JobError> {
    let _ = n;
    Ok(())
}

#[job(durable, version = 0)]
async fn zero(n: u32) -> Result<(), JobError> {
    let _ = n;
    Ok(())
}

#[job(durable, version = 2, resumes = [1, 2])]
async fn itself(n: u32) -> Result<(), JobError> {
    let _ = n;
    Ok(())
}

fn main() {}
