//! Rejected: a misspelled option, with the option it was likely meant to be.

use runledger::{JobError, job};

#[job(queu = "payments")]
async fn charge(order_id: i64) -> Result<(), JobError> {
    let _ = order_id;
    Ok(())
}

fn main() {}
