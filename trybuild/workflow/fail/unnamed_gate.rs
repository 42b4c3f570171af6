//! Rejected: a gate nobody can wait for, since it has no name in the body.

#[path = "../jobs.rs"]
#[allow(dead_code)]
mod jobs;

#[allow(unused_imports)]
use jobs::*;
use runledger::workflow;

#[workflow]
fn w(order_id: u64) {
    external!("approval");
    let charge = charge_card(order_id, 100);
}

fn main() {}
