//! Rejected: a field whose type differs from the parameter's.

#[path = "../jobs.rs"]
#[allow(dead_code)]
mod jobs;

#[allow(unused_imports)]
use jobs::*;
use runledger::workflow;

#[workflow]
fn w(order_id: u64, email: String) {
    let charge = charge_card(order_id, 100);
    send_receipt(email, charge.cents)
}

fn main() {}
