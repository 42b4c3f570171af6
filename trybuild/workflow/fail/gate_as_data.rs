//! Rejected: a gate used as an argument.

#[path = "../jobs.rs"]
#[allow(dead_code)]
mod jobs;

#[allow(unused_imports)]
use jobs::*;
use runledger::workflow;

#[workflow]
fn w(order_id: u64) {
    let ok = external!("approval");
    refund(order_id, ok)
}

fn main() {}
