use runledger::{JobError, job};

pub struct Mailer;

impl Mailer {
    #[job]
    pub async fn send(&self, to: String) -> Result<(), JobError> {
        let _ = to;
        Ok(())
    }
}

fn main() {}
