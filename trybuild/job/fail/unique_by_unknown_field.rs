use runledger::{JobError, job};

#[job(unique(by = [order_id, emial]))]
async fn send_receipt(order_id: i64, email: String) -> Result<(), JobError> {
    let _ = (order_id, email);
    Ok(())
}

fn main() {}
