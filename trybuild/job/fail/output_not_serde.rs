use runledger::{JobError, job};

pub struct Receipt {
    pub number: String,
}

#[job]
async fn charge(order_id: i64) -> Result<Receipt, JobError> {
    Ok(Receipt {
        number: order_id.to_string(),
    })
}

fn main() {}
