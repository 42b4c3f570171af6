//! Rejected: a workflow declared `async`.

#[path = "../jobs.rs"]
#[allow(dead_code)]
mod jobs;

#[allow(unused_imports)]
use jobs::*;
use runledger::workflow;

#[workflow]
async fn w(order_id: u64) {
    let charge = charge_card(order_id, 100);
}

fn main() {}
