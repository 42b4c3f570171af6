//! Rejected: waiting for a step declared below: cycles cannot be written.

#[path = "../jobs.rs"]
#[allow(dead_code)]
mod jobs;

#[allow(unused_imports)]
use jobs::*;
use runledger::workflow;

#[workflow]
fn w(order_id: u64, email: String) {
    let charge = charge_card(order_id, 100).after(receipt);
    let receipt = send_receipt(email, charge.receipt_url);
}

fn main() {}
