use runledger::{JobError, job};

// Every mistake is reported at once, each at its own token.
#[job(queue = "", timeout = "soon", colour = "red")]
fn send_email(to: &str) -> Result<(), JobError> {
    let _ = to;
    Ok(())
}

fn main() {}
