//! Rejected, once: a workflow with a mistake still declares its input struct and `enqueue`, so
//! the code that starts it adds no errors of its own.

#[path = "../jobs.rs"]
#[allow(dead_code)]
mod jobs;

#[allow(unused_imports)]
use jobs::*;
use runledger::{Runledger, workflow};

#[workflow(name = "orders fulfil")]
fn fulfil(order_id: u64, email: String) {
    let charge = charge_card(order_id, 100);
    send_receipt(email, charge.receipt_url)
}

#[allow(dead_code)]
async fn start(rl: &Runledger) -> Result<(), runledger::Error> {
    let run = Fulfil { order_id: 1, email: "a@b.c".into() }.enqueue(rl).await?;
    run.wait().await?;
    Ok(())
}

fn main() {}
