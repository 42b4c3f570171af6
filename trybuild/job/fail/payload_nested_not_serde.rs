//! Rejected: a payload parameter whose type contains a type without serde. One error, at the
//! parameter's type.

use runledger::{JobError, job};

#[derive(Debug, Clone)]
pub struct Line {
    pub sku: String,
}

#[job]
async fn pack(order_id: i64, lines: Vec<Line>) -> Result<(), JobError> {
    let _ = (order_id, lines);
    Ok(())
}

fn main() {}
