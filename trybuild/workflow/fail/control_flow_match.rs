//! Rejected: `match` as a step.

#[path = "../jobs.rs"]
#[allow(dead_code)]
mod jobs;

#[allow(unused_imports)]
use jobs::*;
use runledger::workflow;

#[workflow]
fn w(order_id: u64) {
    let charge = match order_id {
        0 => charge_card(order_id, 1),
        _ => charge_card(order_id, 2),
    };
}

fn main() {}
