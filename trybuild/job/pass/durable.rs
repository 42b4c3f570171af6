//! Accepted: a durable job with keyed steps in a loop, a sleep, a wait, a child and a select.

use std::time::Duration;

use runledger::durable::{Event, Selected};
use runledger::{JobContext, JobError, job};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, Event)]
#[event(name = "orders.packed", key = order_id)]
pub struct Packed {
    pub order_id: i64,
}

/// Not a journaled call: `step` on another receiver may repeat a name.
struct Meter;

impl Meter {
    fn step(&self, name: &str) -> usize {
        name.len()
    }
}

#[job(durable)]
async fn metered(ctx: &JobContext, meter_id: u32) -> Result<usize, JobError> {
    let meter = Meter;
    let mut total = meter.step("db") + meter.step("db") + meter_id as usize;
    for _ in 0..2 {
        total += meter.step("db");
    }
    let _: u32 = ctx.step("db").run(|| async { Ok(1) }).await?;
    Ok(total)
}

#[job]
async fn label(order_id: i64) -> Result<String, JobError> {
    Ok(format!("L{order_id}"))
}

#[job(durable, version = 3, resumes = [1, 2])]
async fn fulfil(ctx: &JobContext, order_id: i64, lines: Vec<u32>) -> Result<String, JobError> {
    for line in &lines {
        let line = *line;
        let _: u32 = ctx.step("reserve").key(line).run(|| async move { Ok(line) }).await?;
    }
    // Branches are alternatives: one name in each is one call.
    let express = lines.len() > 3;
    let _: u32 = if express {
        ctx.step("ship").run(|| async { Ok(1) }).await?
    } else {
        ctx.step("ship").run(|| async { Ok(2) }).await?
    };
    match lines.first() {
        Some(first) => ctx.sleep("cool-off", Duration::from_secs(u64::from(*first))).await?,
        None => ctx.sleep("cool-off", Duration::from_secs(1)).await?,
    }
    let child = ctx.spawn("label", Label { order_id }).await?;
    let raced = ctx
        .select(
            ctx.wait::<Packed>(order_id).timeout(Duration::from_secs(60)),
            ctx.sleep("deadline", Duration::from_secs(30)),
        )
        .await?;
    let label = child.join().await?;
    Ok(match raced {
        Selected::First(_) => label,
        Selected::Second(()) => format!("{label} (late)"),
    })
}

fn main() {}
