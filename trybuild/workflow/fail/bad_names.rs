//! Rejected: invalid workflow and gate names.

#[path = "../jobs.rs"]
#[allow(dead_code)]
mod jobs;

#[allow(unused_imports)]
use jobs::*;
use runledger::workflow;

#[workflow(name = "orders fulfil")]
fn w(order_id: u64) {
    let ok = external!("");
    charge_card(order_id, 100).after(ok)
}

fn main() {}
