//! Rejected: a plain function (not a `#[job]`) called as a step.

#[path = "../jobs.rs"]
#[allow(dead_code)]
mod jobs;

#[allow(unused_imports)]
use jobs::*;
use runledger::workflow;

#[allow(dead_code)]
fn audit(order_id: u64) -> u64 {
    order_id
}

#[workflow]
fn w(order_id: u64) {
    let logged = audit(order_id);
}

fn main() {}
