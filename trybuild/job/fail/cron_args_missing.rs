use runledger::{JobError, job};

#[job(cron = "0 0 3 * * *")]
async fn send_digest(team: String) -> Result<(), JobError> {
    let _ = team;
    Ok(())
}

fn main() {}
