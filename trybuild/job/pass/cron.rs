use runledger::{Job, JobError, job};
use runledger::schedule::{CronOptions, MissedSlots};

#[job(cron = "0 */5 * * * *")]
async fn refresh_rates() -> Result<(), JobError> {
    Ok(())
}

#[job(
    cron = "0 30 1 * * *",
    tz = "Europe/London",
    missed = "run_once",
    cron_args = SendDigest { team: "ops".into(), days: 7 }
)]
async fn send_digest(team: String, days: u32) -> Result<(), JobError> {
    let _ = (team, days);
    Ok(())
}

fn main() {
    assert_eq!(
        RefreshRates::OPTIONS.cron,
        Some(CronOptions::new("0 */5 * * * *"))
    );
    assert_eq!(
        SendDigest::OPTIONS.cron,
        Some(
            CronOptions::new("0 30 1 * * *")
                .timezone("Europe/London")
                .missed(MissedSlots::RunOnce)
        )
    );
    let args = SendDigest::cron_args().unwrap();
    assert_eq!((args.team.as_str(), args.days), ("ops", 7));
    assert!(RefreshRates::cron_args().is_some());
}
