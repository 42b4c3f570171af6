//! Rejected: an unknown option.

#[path = "../jobs.rs"]
#[allow(dead_code)]
mod jobs;

#[allow(unused_imports)]
use jobs::*;
use runledger::workflow;

#[workflow(name = "orders", queue = "payments")]
fn w(order_id: u64) {
    charge_card(order_id, 100)
}

fn main() {}
