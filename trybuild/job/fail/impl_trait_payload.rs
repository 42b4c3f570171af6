use runledger::{JobError, job};

#[job]
async fn log(message: impl std::fmt::Display + Send) -> Result<(), JobError> {
    let _ = message.to_string();
    Ok(())
}

fn main() {}
