//! Rejected: `async`, generics and a return type on the workflow function.

#[path = "../jobs.rs"]
#[allow(dead_code)]
mod jobs;

#[allow(unused_imports)]
use jobs::*;
use runledger::workflow;

#[workflow]
async fn w<T>(order_id: u64) -> u64 {
    charge_card(order_id, 100)
}

fn main() {}
