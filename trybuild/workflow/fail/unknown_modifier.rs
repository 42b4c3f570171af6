//! Rejected: a misspelled step modifier.

#[path = "../jobs.rs"]
#[allow(dead_code)]
mod jobs;

#[allow(unused_imports)]
use jobs::*;
use runledger::workflow;

#[workflow]
fn w(order_id: u64) {
    let charge = charge_card(order_id, 100);
    let again = refund(order_id, 100).afterr(charge);
}

fn main() {}
