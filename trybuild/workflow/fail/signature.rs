//! Rejected: `async`, generics and a return type on the workflow function.

use runledger::{JobError, job, workflow};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct Charge {
    pub id: String,
    pub cents: i64,
    pub receipt_url: String,
}

#[job]
async fn charge_card(order_id: u64, cents: i64) -> Result<Charge, JobError> {
    Ok(Charge { id: format!("{order_id}"), cents, receipt_url: String::new() })
}

#[job]
async fn send_receipt(email: String, receipt_url: String) -> Result<(), JobError> {
    let _ = (email, receipt_url);
    Ok(())
}

#[job]
async fn refund(order_id: u64, cents: i64) -> Result<(), JobError> {
    let _ = (order_id, cents);
    Ok(())
}

#[workflow]
async fn w<T>(order_id: u64) -> u64 {
    charge_card(order_id, 100)
}

fn main() {}
