//! Jobs shared by the workflow compile-fail cases.

use runledger::{JobError, job};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct Charge {
    pub id: String,
    pub cents: i64,
    pub receipt_url: String,
}

#[job]
pub async fn charge_card(order_id: u64, cents: i64) -> Result<Charge, JobError> {
    Ok(Charge { id: format!("{order_id}"), cents, receipt_url: String::new() })
}

#[job]
pub async fn send_receipt(email: String, receipt_url: String) -> Result<(), JobError> {
    let _ = (email, receipt_url);
    Ok(())
}

#[job]
pub async fn refund(order_id: u64, cents: i64) -> Result<(), JobError> {
    let _ = (order_id, cents);
    Ok(())
}
