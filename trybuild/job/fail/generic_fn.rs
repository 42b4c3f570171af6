use runledger::{JobError, job};

#[job]
async fn store<T: serde::Serialize>(value: T) -> Result<(), JobError> {
    let _ = value;
    Ok(())
}

fn main() {}
