//! Rejected: a gate name with characters outside the name rule.

#[path = "../jobs.rs"]
#[allow(dead_code)]
mod jobs;

#[allow(unused_imports)]
use jobs::*;
use runledger::workflow;

#[workflow]
fn w(order_id: u64) {
    let ok = external!("manager approval!");
    let charge = charge_card(order_id, 100).after(ok);
}

fn main() {}
