//! Seeded data for the dashboard's tests: failed, completed and pending jobs, a job whose
//! arguments hold markup, a sensitive job, a failed workflow run and a schedule.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use runledger::job::JobId;
use runledger::testing::TestDatabase;
use runledger::workflow::RunId;
use runledger::{JobError, Runledger, Schedule, Worker, job, workflow};

/// The text of a sensitive job's argument: it must never reach a page.
pub const SECRET: &str = "sentinel-4111-1111";

#[job(queue = "mail", max_attempts = 1)]
pub async fn send_mail(to: String) -> Result<(), JobError> {
    if to.contains("bounce") {
        return Err(JobError::fatal(format!("mailbox {to} does not exist")));
    }
    Ok(())
}

#[job(queue = "mail", sensitive)]
pub async fn store_card(number: String) -> Result<(), JobError> {
    let _ = number;
    Ok(())
}

#[job(queue = "idle")]
pub async fn later(n: u32) -> Result<(), JobError> {
    let _ = n;
    Ok(())
}

#[job(queue = "mail")]
pub async fn fetch(n: i64) -> Result<i64, JobError> {
    Ok(n)
}

#[job(queue = "mail", max_attempts = 1)]
pub async fn transform(n: i64) -> Result<i64, JobError> {
    if n < 0 {
        return Err(JobError::fatal("negative input"));
    }
    Ok(n + 1)
}

#[job(queue = "mail")]
pub async fn publish(a: i64, b: i64) -> Result<i64, JobError> {
    Ok(a + b)
}

#[workflow(name = "report")]
pub fn report(n: i64) {
    let a = fetch(n);
    let b = transform(a);
    let c = fetch(n);
    publish(b, c)
}

/// What [`seed`] made.
pub struct Seeded {
    pub failed: Vec<JobId>,
    pub completed: JobId,
    pub markup: JobId,
    pub secret: JobId,
    pub pending: JobId,
    pub run: RunId,
}

/// Seeds `db` and runs what can run.
pub async fn seed(rl: &Runledger) -> Seeded {
    let mut failed = Vec::new();
    for i in 0..3 {
        failed.push(
            rl.enqueue(SendMail {
                to: format!("bounce{i}@example.com"),
            })
            .await
            .unwrap()
            .id(),
        );
    }
    let completed = rl
        .enqueue(SendMail {
            to: "ok@example.com".into(),
        })
        .await
        .unwrap()
        .id();
    let markup = rl
        .enqueue(SendMail {
            to: "<script>document.title='pwned'</script>bounce".into(),
        })
        .await
        .unwrap()
        .id();
    let secret = rl
        .enqueue(StoreCard {
            number: SECRET.into(),
        })
        .await
        .unwrap()
        .id();
    let pending = rl.enqueue(Later { n: 1 }).await.unwrap().id();
    let run = rl.start(Report { n: -5 }).await.unwrap().id();
    rl.add_schedule(Schedule::new("nightly-mail", "0 3 * * *", Later { n: 2 }))
        .await
        .unwrap();
    runledger::testing::drain_with(
        Worker::builder(rl.pool().clone())
            .queues(["mail"])
            .poll_interval(Duration::from_millis(50)),
    )
    .await
    .unwrap();
    Seeded {
        failed,
        completed,
        markup,
        secret,
        pending,
        run,
    }
}

/// A fresh database on the embedded server.
pub async fn db() -> TestDatabase {
    TestDatabase::new().await.expect("a test database")
}
