//! Cron schedules: one declared on the job, one added at run time; a worker fires them for a
//! few seconds and each slot runs exactly once.
//!
//! ```text
//! cargo run --example cron
//! ```
//!
//! Uses `DATABASE_URL` if set; otherwise starts a throwaway PostgreSQL from the server binaries
//! installed on this machine and removes it on exit.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use runledger::embedded::EmbeddedPostgres;
use runledger::schedule::MissedSlots;
use runledger::{JobContext, JobError, Runledger, Schedule, Worker, job};

static HEARTBEATS: AtomicU32 = AtomicU32::new(0);
static REPORTS: AtomicU32 = AtomicU32::new(0);

/// Declared in code: fires every second (six fields, seconds first), synced to the database
/// when the worker starts.
#[job(cron = "* * * * * *")]
async fn heartbeat(ctx: &JobContext) -> Result<(), JobError> {
    let n = HEARTBEATS.fetch_add(1, Ordering::SeqCst) + 1;
    println!("  heartbeat #{n} (job {})", ctx.id());
    Ok(())
}

/// Takes a payload, so a schedule says which payload each slot enqueues.
#[job]
async fn report(region: String) -> Result<(), JobError> {
    let n = REPORTS.fetch_add(1, Ordering::SeqCst) + 1;
    println!("  report #{n} for {region}");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_embedded, url) = match std::env::var("DATABASE_URL") {
        Ok(url) => (None, url),
        Err(_) => {
            println!("DATABASE_URL is not set: starting an embedded PostgreSQL");
            let pg = EmbeddedPostgres::start()?;
            let url = pg.url();
            (Some(pg), url)
        }
    };
    // A worker wants its queues + 11 connections (`Worker::advised_pool_size`).
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .connect(&url)
        .await?;
    runledger::migrate(&pool).await?;
    let rl = Runledger::new(pool.clone());

    // A schedule added at run time: every second, in a time zone, running once for any slots
    // missed while no worker ran. Replaced if it exists from an earlier run.
    let schedule = Schedule::new(
        "eu-report",
        "* * * * * *",
        Report {
            region: "eu-west".into(),
        },
    )
    .timezone("Europe/London")
    .missed(MissedSlots::RunOnce);
    if rl.schedule("eu-report").await?.is_some() {
        rl.update_schedule(schedule).await?;
    } else {
        rl.add_schedule(schedule).await?;
    }

    let worker = Worker::builder(pool.clone())
        .leader_lease(Duration::from_secs(2))
        .build()?
        .start()
        .await?;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    worker.shutdown().await?;

    for s in rl.schedules().await? {
        println!(
            "schedule {} `{}` ({}): last slot {:?}, next {:?}",
            s.name, s.expression, s.timezone, s.last_slot, s.next_fire_at
        );
    }
    let (beats, reports) = (
        HEARTBEATS.load(Ordering::SeqCst),
        REPORTS.load(Ordering::SeqCst),
    );
    println!("fired: {beats} heartbeats, {reports} reports");
    rl.remove_schedule("eu-report").await?;
    pool.close().await;
    if beats < 2 || reports < 2 {
        return Err("expected both schedules to fire at least twice".into());
    }
    Ok(())
}
