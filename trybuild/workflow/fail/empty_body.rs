//! Rejected: a workflow without steps.

use runledger::workflow;

#[workflow]
fn nothing(order_id: u64) {}

fn main() {}
