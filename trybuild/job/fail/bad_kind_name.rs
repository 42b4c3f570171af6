use runledger::{JobError, job};

#[job(kind = "send email")]
async fn send_email(to: String) -> Result<(), JobError> {
    let _ = to;
    Ok(())
}

fn main() {}
