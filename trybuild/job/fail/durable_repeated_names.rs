//! Rejected: a durable handler that calls one step name twice, or one inside a loop, without
//! `.key(..)` (replay could not tell the calls apart by their identity).

use std::time::Duration;

use runledger::{JobContext, JobError, job};

#[job(durable)]
async fn import(ctx: &JobContext, rows: Vec<u32>) -> Result<(), JobError> {
    let _: u32 = ctx.step("fetch").run(|| async { Ok(1) }).await?;
    let _: u32 = ctx.step("fetch").run(|| async { Ok(2) }).await?;
    for row in rows.clone() {
        let _: u32 = ctx.step("save").run(|| async move { Ok(row) }).await?;
        ctx.sleep("pause", Duration::from_millis(10)).await?;
    }
    // A closure may run more than once too.
    let checks: Vec<_> = rows.iter().map(|_| ctx.step("check")).collect();
    drop(checks);
    // Keyed calls and distinct names are fine.
    let _: u32 = ctx.step("fetch").key("again").run(|| async { Ok(3) }).await?;
    let _: u32 = ctx.step("check").retry(3, runledger::job::Backoff::exponential()).key(1).run(|| async { Ok(4) }).await?;
    Ok(())
}

fn main() {}
