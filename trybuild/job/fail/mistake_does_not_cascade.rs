//! Rejected, once: a job with a mistake still declares its payload, `enqueue` and step check,
//! so the code that uses it (an enqueue, a workflow step) adds no errors of its own.

use runledger::{JobError, Runledger, job, workflow};

#[job(queue = "bad queue")]
async fn ship(order_id: i64) -> Result<u64, JobError> {
    Ok(order_id as u64)
}

#[job]
async fn notify(parcels: u64) -> Result<(), JobError> {
    let _ = parcels;
    Ok(())
}

#[workflow]
fn deliver(order_id: i64) {
    let shipped = ship(order_id);
    notify(shipped)
}

#[allow(dead_code)]
async fn enqueue(rl: &Runledger) -> Result<(), runledger::Error> {
    let job = Ship { order_id: 1 }.enqueue(rl).await?;
    let _parcels: u64 = job.wait().await?;
    Deliver { order_id: 2 }.enqueue(rl).await?;
    Ok(())
}

fn main() {}
