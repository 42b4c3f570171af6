//! Rejected: a workflow input whose type has no serde impls. One error, at the type.

#[path = "../jobs.rs"]
#[allow(dead_code)]
mod jobs;

#[allow(unused_imports)]
use jobs::*;
use runledger::workflow;

#[derive(Debug, Clone)]
pub struct Order {
    pub id: u64,
}

#[workflow]
fn w(order: Order, order_id: u64) {
    charge_card(order_id, 100)
}

fn main() {}
