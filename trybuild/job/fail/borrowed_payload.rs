use runledger::{JobError, job};

#[job]
async fn send_email(to: &str, subject: String) -> Result<(), JobError> {
    let _ = (to, subject);
    Ok(())
}

fn main() {}
