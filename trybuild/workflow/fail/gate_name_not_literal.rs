//! Rejected: a gate named by an expression; gate names are string literals.

#[path = "../jobs.rs"]
#[allow(dead_code)]
mod jobs;

#[allow(unused_imports)]
use jobs::*;
use runledger::workflow;

const APPROVAL: &str = "approval";

#[workflow]
fn w(order_id: u64) {
    let ok = external!(APPROVAL);
    let charge = charge_card(order_id, 100).after(ok);
}

fn main() {}
