//! Rejected: `sensitive` given a value; it is a bare flag.

use runledger::{JobError, job};

#[job(sensitive = true)]
async fn charge(card: String) -> Result<(), JobError> {
    let _ = card;
    Ok(())
}

fn main() {}
