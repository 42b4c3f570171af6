use runledger::{JobError, State, job};

#[job]
async fn send_email(mailer: State, to: String) -> Result<(), JobError> {
    let _ = (mailer, to);
    Ok(())
}

fn main() {}
