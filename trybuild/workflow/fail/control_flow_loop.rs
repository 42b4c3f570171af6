//! Rejected: `loop` and `while` in the body.

#[path = "../jobs.rs"]
#[allow(dead_code)]
mod jobs;

#[allow(unused_imports)]
use jobs::*;
use runledger::workflow;

#[workflow]
fn w(order_id: u64) {
    let charge = charge_card(order_id, 1);
    loop {}
    while true {}
}

fn main() {}
