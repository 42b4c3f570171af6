use runledger::{JobError, job};

#[derive(Debug, Clone)]
pub struct Address {
    pub street: String,
}

#[job]
async fn ship(order_id: i64, address: Address) -> Result<(), JobError> {
    let _ = (order_id, address);
    Ok(())
}

fn main() {}
