use runledger::{JobError, job};

#[job(tz = "Europe/London", missed = "run_once")]
async fn send_digest() -> Result<(), JobError> {
    Ok(())
}

#[job(cron = "@daily", missed = "catch_up")]
async fn compact() -> Result<(), JobError> {
    Ok(())
}

fn main() {}
