use runledger::{JobError, job};

#[job(cron = "0 */5 * * * * * *")]
async fn refresh_rates() -> Result<(), JobError> {
    Ok(())
}

#[job(cron = "0 61 * * *")]
async fn nightly_report() -> Result<(), JobError> {
    Ok(())
}

fn main() {}
