//! The expansion is lint-clean: no warnings for a public or private job that is never
//! enqueued, with state, `unique` and a custom error type.
#![deny(warnings, missing_docs, unreachable_pub, rust_2018_idioms, unused)]

use runledger::{JobContext, JobError, State, job};

/// The mailer.
pub struct Mailer;

/// A never-enqueued public job.
#[job(unique(by = [email]), backoff(constant = "1s"))]
pub async fn never_enqueued(
    ctx: &JobContext,
    mailer: State<Mailer>,
    email: String,
) -> Result<(), JobError> {
    let _ = (ctx, mailer, email);
    Ok(())
}

#[job]
async fn private_never_enqueued(n: i64) -> Result<i64, std::io::Error> {
    Ok(n)
}

fn main() {}
