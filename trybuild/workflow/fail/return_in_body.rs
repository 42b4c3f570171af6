//! Rejected: an early return in the body; a workflow body is a straight list of steps.

#[path = "../jobs.rs"]
#[allow(dead_code)]
mod jobs;

#[allow(unused_imports)]
use jobs::*;
use runledger::workflow;

#[workflow]
fn w(order_id: u64) {
    let charge = charge_card(order_id, 100);
    return;
}

fn main() {}
