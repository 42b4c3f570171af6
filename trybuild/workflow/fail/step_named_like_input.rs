//! Rejected: a step that takes the name of a workflow input.

#[path = "../jobs.rs"]
#[allow(dead_code)]
mod jobs;

#[allow(unused_imports)]
use jobs::*;
use runledger::workflow;

#[workflow]
fn w(order_id: u64) {
    let order_id = charge_card(order_id, 100);
}

fn main() {}
