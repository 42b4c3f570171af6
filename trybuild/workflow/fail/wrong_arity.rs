//! Rejected: a job called with too many arguments.

#[path = "../jobs.rs"]
#[allow(dead_code)]
mod jobs;

#[allow(unused_imports)]
use jobs::*;
use runledger::workflow;

#[workflow]
fn w(order_id: u64) {
    charge_card(order_id, 100, 3)
}

fn main() {}
