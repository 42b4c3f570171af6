//! Rejected: `for` in the body.

#[path = "../jobs.rs"]
#[allow(dead_code)]
mod jobs;

#[allow(unused_imports)]
use jobs::*;
use runledger::workflow;

#[workflow]
fn w(order_id: u64) {
    for cents in [1, 2] {
        charge_card(order_id, cents);
    }
}

fn main() {}
