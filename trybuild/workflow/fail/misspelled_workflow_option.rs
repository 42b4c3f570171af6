//! Rejected: a misspelled workflow option.

#[path = "../jobs.rs"]
#[allow(dead_code)]
mod jobs;

#[allow(unused_imports)]
use jobs::*;
use runledger::workflow;

#[workflow(nmae = "orders.fulfil")]
fn w(order_id: u64) {
    let charge = charge_card(order_id, 100);
}

fn main() {}
