//! Rejected: `.after_any` on a step whose output is an argument.

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
fn w(order_id: u64, email: String) {
    let charge = charge_card(order_id, 100);
    send_receipt(email, charge.receipt_url).after_any(charge)
}

fn main() {}
