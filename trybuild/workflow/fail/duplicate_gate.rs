//! Rejected: two gates under one name.

#[path = "../jobs.rs"]
#[allow(dead_code)]
mod jobs;

#[allow(unused_imports)]
use jobs::*;
use runledger::workflow;

#[workflow]
fn w(order_id: u64) {
    let first = external!("approval");
    let second = external!("approval");
    let charge = charge_card(order_id, 100).after(first, second);
}

fn main() {}
