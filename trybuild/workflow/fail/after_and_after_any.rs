//! Rejected: one step waited for both on success and on any end.

#[path = "../jobs.rs"]
#[allow(dead_code)]
mod jobs;

#[allow(unused_imports)]
use jobs::*;
use runledger::workflow;

#[workflow]
fn w(order_id: u64) {
    let charge = charge_card(order_id, 100);
    let back = refund(order_id, 100).after(charge).after_any(charge);
}

fn main() {}
