//! Rejected: a call of something that is not a job.

#[path = "../jobs.rs"]
#[allow(dead_code)]
mod jobs;

#[allow(unused_imports)]
use jobs::*;
use runledger::workflow;

#[workflow]
fn w(order_id: u64) {
    let charge = charge_crad(order_id, 100);
}

fn main() {}
