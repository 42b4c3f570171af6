//! The operators' API against a real PostgreSQL: attempt history, lists and their filters and
//! pages, bulk retry / cancel / delete, a failed run retried from its failed steps, schedules
//! triggered, events emitted, queue and worker reports, stuck explanations and `doctor`.

#![allow(missing_docs)]

mod common;

use std::time::Duration;

use common::{db, hit, token, wait_until};
use runledger::admin::{CheckLevel, JobFilter, PageRequest, REDACTED, RunFilter, Stuck};
use runledger::durable::Event;
use runledger::job::JobState;
use runledger::workflow::{RunState, StepState};
use runledger::{JobContext, JobError, Runledger, Schedule, Worker, job, workflow};
use serde::{Deserialize, Serialize};

#[job(queue = "ops", backoff(constant = "10ms"))]
async fn flaky_once(key: String) -> Result<u32, JobError> {
    if hit(&key) == 1 {
        return Err(JobError::retry("first attempt fails"));
    }
    Ok(7)
}

#[job(queue = "ops", max_attempts = 1)]
async fn always_fails(reason: String) -> Result<(), JobError> {
    Err(JobError::fatal(reason))
}

#[job(queue = "ops", sensitive)]
async fn secret_job(card_number: String) -> Result<(), JobError> {
    let _ = card_number;
    Ok(())
}

#[job(queue = "nobody-works-here")]
async fn orphan(n: u32) -> Result<(), JobError> {
    let _ = n;
    Ok(())
}

#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(name = "admin.approved", key = id)]
pub struct Approved {
    pub id: String,
}

#[job(durable, queue = "ops")]
async fn awaits_approval(ctx: &JobContext, id: String) -> Result<bool, JobError> {
    let approved = ctx.wait::<Approved>(&id).await?;
    Ok(approved.received().is_some())
}

#[job(queue = "ops")]
async fn seed(n: i64) -> Result<i64, JobError> {
    Ok(n)
}

/// Fails while the switch named by `key` is off.
#[job(queue = "ops", max_attempts = 1)]
async fn gated_double(key: String, x: i64) -> Result<i64, JobError> {
    if common::hits(&format!("{key}:on")) == 0 {
        return Err(JobError::fatal("switch off"));
    }
    Ok(x * 2)
}

#[workflow(name = "admin.chain")]
fn chain(key: String, n: i64) {
    let a = seed(n);
    let b = gated_double(key, a);
    seed(b)
}

#[job(queue = "ops")]
async fn slow_seed(n: i64) -> Result<i64, JobError> {
    tokio::time::sleep(Duration::from_millis(400)).await;
    Ok(n)
}

/// Fails while the switch named by `key` is off.
#[job(queue = "ops", max_attempts = 1)]
async fn switched_one(key: String) -> Result<i64, JobError> {
    if common::hits(&format!("{key}:on")) == 0 {
        return Err(JobError::fatal("switch off"));
    }
    Ok(1)
}

#[job(queue = "ops")]
async fn add_two(a: i64, b: i64) -> Result<i64, JobError> {
    Ok(a + b)
}

#[workflow(name = "admin.late_parent")]
fn late_parent(key: String, n: i64) {
    let a = slow_seed(n);
    let b = switched_one(key);
    add_two(a, b)
}

fn worker(rl: &Runledger) -> runledger::worker::WorkerBuilder {
    Worker::builder(rl.pool().clone())
        .queues(["ops"])
        .poll_interval(Duration::from_millis(50))
}

async fn drain(rl: &Runledger) {
    runledger::testing::drain_with(worker(rl)).await.unwrap();
}

#[tokio::test]
async fn every_attempt_is_recorded_with_its_worker_outcome_and_error() {
    let db = db().await;
    let rl = db.client();
    let key = token("flaky");
    let id = rl.enqueue(FlakyOnce { key }).await.unwrap().id();
    let w = worker(&rl)
        .id("history-worker")
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    wait_until(Duration::from_secs(10), "the job completes", || async {
        rl.job(id).await.unwrap().unwrap().state == JobState::Completed
    })
    .await;
    w.shutdown().await.unwrap();
    let detail = rl.admin().job(id).await.unwrap().unwrap();
    let history: i32 =
        sqlx::query_scalar("SELECT jsonb_array_length(history) FROM runledger.jobs WHERE id = $1")
            .bind(id.0)
            .fetch_one(rl.pool())
            .await
            .unwrap();
    assert_eq!(
        history, 1,
        "the completed attempt stays in the row's own columns"
    );
    assert_eq!(detail.attempts.len(), 2, "{:?}", detail.attempts);
    let (first, second) = (&detail.attempts[0], &detail.attempts[1]);
    assert_eq!((first.attempt, first.outcome.as_str()), (1, "retried"));
    assert_eq!(first.error_kind.as_deref(), Some("error"));
    assert_eq!(first.error.as_deref(), Some("first attempt fails"));
    assert_eq!(first.worker.as_deref(), Some("history-worker"));
    assert!(first.duration().unwrap() >= chrono::TimeDelta::zero());
    assert_eq!((second.attempt, second.outcome.as_str()), (2, "completed"));
    assert_eq!(second.error_kind, None);
    assert_eq!(detail.output, Some(serde_json::json!(7)));
    assert!(detail.stuck.is_empty());
}

#[tokio::test]
async fn history_keeps_the_last_32_attempts() {
    let db = db().await;
    let rl = db.client();
    let id = rl
        .enqueue(AlwaysFails {
            reason: "nope".into(),
        })
        .await
        .unwrap()
        .id();
    // Each retry by an operator gives one more attempt.
    for _ in 0..40 {
        drain(&rl).await;
        assert!(rl.admin().retry_job(id).await.unwrap());
    }
    drain(&rl).await;
    let detail = rl.admin().job(id).await.unwrap().unwrap();
    assert_eq!(detail.summary.attempt, 41);
    // The 32 latest attempts that did not finish the job (each retried by hand), and the last.
    assert_eq!(detail.attempts.len(), 33);
    assert_eq!(detail.errors.len(), 32);
    assert_eq!(detail.attempts.first().unwrap().attempt, 9);
    assert_eq!(detail.attempts.last().unwrap().attempt, 41);
    let history: i32 =
        sqlx::query_scalar("SELECT jsonb_array_length(history) FROM runledger.jobs WHERE id = $1")
            .bind(id.0)
            .fetch_one(rl.pool())
            .await
            .unwrap();
    assert_eq!(history, 32, "the row's history is bounded");
    // Errors keep their last 32 too: attempt 9's text is gone, its kind stays in the history.
    for a in &detail.attempts {
        assert_eq!(
            (a.outcome.as_str(), a.error_kind.as_deref()),
            ("failed", Some("fatal"))
        );
        let text = if a.attempt >= 10 { Some("nope") } else { None };
        assert_eq!(a.error.as_deref(), text, "attempt {}", a.attempt);
    }
}

#[tokio::test]
async fn lists_filter_and_page_by_keyset() {
    let db = db().await;
    let rl = db.client();
    let mut failed = Vec::new();
    for i in 0..5 {
        failed.push(
            rl.enqueue(AlwaysFails {
                reason: format!("card {i} declined"),
            })
            .await
            .unwrap()
            .id(),
        );
    }
    rl.enqueue(AlwaysFails {
        reason: "address unknown".into(),
    })
    .await
    .unwrap();
    let pending = rl.enqueue(Orphan { n: 1 }).await.unwrap().id();
    drain(&rl).await;
    let admin = rl.admin();

    let only_failed = JobFilter::new().state(JobState::Failed);
    let page1 = admin
        .jobs(&only_failed, PageRequest::first(4))
        .await
        .unwrap();
    assert_eq!(page1.items.len(), 4);
    let page2 = admin
        .jobs(&only_failed, PageRequest::after(page1.next.unwrap(), 4))
        .await
        .unwrap();
    assert_eq!(page2.items.len(), 2);
    assert_eq!(page2.next, None);
    let mut ids: Vec<i64> = page1
        .items
        .iter()
        .chain(&page2.items)
        .map(|j| j.id.0)
        .collect();
    let sorted = {
        let mut s = ids.clone();
        s.sort_unstable_by(|a, b| b.cmp(a));
        s
    };
    assert_eq!(ids, sorted, "newest first");
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 6, "no job on two pages");

    let declined = admin
        .jobs(
            &JobFilter::new().error_contains("DECLINED"),
            PageRequest::first(50),
        )
        .await
        .unwrap();
    assert_eq!(declined.items.len(), 5);
    assert!(
        declined
            .items
            .iter()
            .all(|j| j.last_error.as_deref().unwrap().contains("declined"))
    );
    // LIKE wildcards are literal.
    let wild = admin
        .jobs(
            &JobFilter::new().error_contains("%"),
            PageRequest::first(50),
        )
        .await
        .unwrap();
    assert!(wild.items.is_empty());

    let by_queue = admin
        .jobs(
            &JobFilter::new().queue("nobody-works-here"),
            PageRequest::first(50),
        )
        .await
        .unwrap();
    assert_eq!(
        by_queue.items.iter().map(|j| j.id).collect::<Vec<_>>(),
        [pending]
    );
    let by_kind = admin
        .jobs(&JobFilter::new().kind("orphan"), PageRequest::first(50))
        .await
        .unwrap();
    assert_eq!(by_kind.items.len(), 1);
    let future = admin
        .jobs(
            &JobFilter::new().created_after(chrono::Utc::now() + chrono::TimeDelta::hours(1)),
            PageRequest::first(50),
        )
        .await
        .unwrap();
    assert!(future.items.is_empty());
}

#[tokio::test]
async fn bulk_retry_cancel_and_delete_touch_only_what_they_may() {
    let db = db().await;
    let rl = db.client();
    for i in 0..3 {
        rl.enqueue(AlwaysFails {
            reason: format!("r{i}"),
        })
        .await
        .unwrap();
    }
    let queued = rl.enqueue(Orphan { n: 2 }).await.unwrap().id();
    drain(&rl).await;
    let admin = rl.admin();

    let retried = admin
        .retry_jobs(&JobFilter::new().kind("always_fails"), 100)
        .await
        .unwrap();
    assert_eq!(retried.len(), 3);
    for id in &retried {
        let job = rl.job(*id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Available);
        assert_eq!(job.max_attempts, 2, "one more attempt than used");
        assert_eq!(job.finished_at, None);
    }
    // Retrying again changes nothing: they are not failed now.
    assert!(
        admin
            .retry_jobs(&JobFilter::new().kind("always_fails"), 100)
            .await
            .unwrap()
            .is_empty()
    );
    drain(&rl).await;

    // A running or pending job is not deleted; a failed one is, with its history.
    let deleted = admin
        .delete_jobs(&JobFilter::new().state(JobState::Failed), 2)
        .await
        .unwrap();
    assert_eq!(deleted.len(), 2);
    assert!(rl.job(deleted[0]).await.unwrap().is_none());

    let cancelled = admin
        .cancel_jobs(&JobFilter::new().queue("nobody-works-here"), 100)
        .await
        .unwrap();
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0].0, queued);
    assert_eq!(
        rl.job(queued).await.unwrap().unwrap().state,
        JobState::Cancelled
    );
    // The cancelled job can be retried.
    assert!(admin.retry_job(queued).await.unwrap());
    assert_eq!(
        rl.job(queued).await.unwrap().unwrap().state,
        JobState::Available
    );
    assert!(admin.delete_job(queued).await.unwrap());
}

#[tokio::test]
async fn a_failed_run_is_retried_from_its_failed_step_and_completes() {
    let db = db().await;
    let rl = db.client();
    let key = token("chain");
    let handle = rl
        .start(Chain {
            key: key.clone(),
            n: 21,
        })
        .await
        .unwrap();
    drain(&rl).await;
    let admin = rl.admin();
    let detail = admin.run(handle.id()).await.unwrap().unwrap();
    assert_eq!(detail.run.state, RunState::Failed);
    let states: Vec<(String, StepState)> = detail
        .run
        .steps
        .iter()
        .map(|s| (s.key.clone(), s.state))
        .collect();
    assert_eq!(states.len(), 3);
    assert_eq!(states[0].1, StepState::Completed);
    assert_eq!(states[1].1, StepState::Failed);
    assert_eq!(states[2].1, StepState::Skipped);
    assert_eq!(detail.edges.len(), 2);
    let first_seed_job = detail.run.steps[0].job;
    let failed_job = detail.run.steps[1].job;

    // A step's job cannot be retried on its own.
    let refused = admin.retry_job(failed_job.unwrap()).await.unwrap_err();
    assert!(refused.to_string().contains("retry the run"), "{refused}");

    hit(&format!("{key}:on"));
    assert_eq!(admin.retry_run(handle.id()).await.unwrap(), 1);
    drain(&rl).await;
    let after = admin.run(handle.id()).await.unwrap().unwrap();
    assert_eq!(
        after.run.state,
        RunState::Completed,
        "{:?}",
        after.run.error
    );
    assert_eq!(after.run.output, Some(serde_json::json!(42)));
    assert_eq!(
        after.run.steps[0].job, first_seed_job,
        "a completed step is not run again"
    );
    assert_ne!(after.run.steps[1].job, failed_job);
    let (step, earlier) = &after.history[0];
    assert_eq!(step, &after.run.steps[1].key);
    assert_eq!(earlier.len(), 1);
    assert_eq!(earlier[0].job_id, failed_job.map(|j| j.0));
    assert_eq!(earlier[0].state, "failed");
    // A completed run is not retried.
    let again = admin.retry_run(handle.id()).await.unwrap_err();
    assert!(again.to_string().contains("is completed"), "{again}");

    let runs = admin
        .runs(
            &RunFilter::new().state(RunState::Completed),
            PageRequest::first(10),
        )
        .await
        .unwrap();
    assert_eq!(runs.items.len(), 1);
    assert_eq!(runs.items[0].name, "admin.chain");
}

#[tokio::test]
async fn a_retried_run_passes_on_outputs_of_parents_that_completed_after_the_failure() {
    let db = db().await;
    let rl = db.client();
    let key = token("late");
    let handle = rl
        .start(LateParent {
            key: key.clone(),
            n: 41,
        })
        .await
        .unwrap();
    // `b` fails at once and skips the sum; `a` completes 400 ms later, when nothing is left to
    // take its output.
    runledger::testing::drain_with(worker(&rl).concurrency(4))
        .await
        .unwrap();
    let admin = rl.admin();
    let failed = admin.run(handle.id()).await.unwrap().unwrap();
    assert_eq!(failed.run.state, RunState::Failed);
    let states: Vec<StepState> = failed.run.steps.iter().map(|s| s.state).collect();
    assert_eq!(
        states,
        [StepState::Completed, StepState::Failed, StepState::Skipped]
    );
    hit(&format!("{key}:on"));
    assert_eq!(
        admin.retry_run(handle.id()).await.unwrap(),
        1,
        "only `b` is due"
    );
    drain(&rl).await;
    let done = admin.run(handle.id()).await.unwrap().unwrap();
    assert_eq!(done.run.state, RunState::Completed, "{:?}", done.run.error);
    assert_eq!(done.run.output, Some(serde_json::json!(42)));
}

#[tokio::test]
async fn sensitive_arguments_are_redacted_and_stuck_jobs_explained() {
    let db = db().await;
    let rl = db.client();
    let secret = rl
        .enqueue(SecretJob {
            card_number: "4242-4242".into(),
        })
        .await
        .unwrap()
        .id();
    let detail = rl.admin().job(secret).await.unwrap().unwrap();
    assert!(detail.sensitive);
    assert_eq!(detail.args, serde_json::json!(REDACTED));
    assert!(!serde_json::to_string(&detail).unwrap().contains("4242"));

    let orphan = rl.enqueue(Orphan { n: 3 }).await.unwrap().id();
    let detail = rl.admin().job(orphan).await.unwrap().unwrap();
    assert_eq!(
        detail.stuck,
        [Stuck::NoWorker {
            queue: "nobody-works-here".into(),
            kind: "orphan".into(),
            kind_known: false,
        }]
    );
    assert!(
        detail.stuck[0]
            .to_string()
            .contains("no live worker serves kind `orphan`")
    );
}

#[tokio::test]
async fn waits_are_explained_and_an_emitted_event_wakes_them() {
    let db = db().await;
    let rl = db.client();
    let key = token("approval");
    let id = rl
        .enqueue(AwaitsApproval { id: key.clone() })
        .await
        .unwrap()
        .id();
    let w = worker(&rl).build().unwrap().start().await.unwrap();
    wait_until(Duration::from_secs(10), "the job waits", || async {
        rl.job(id).await.unwrap().unwrap().state == JobState::Waiting
    })
    .await;
    let admin = rl.admin();
    let detail = admin.job(id).await.unwrap().unwrap();
    assert!(
        matches!(&detail.stuck[..], [Stuck::WaitingForEvent { name, key: k, since: Some(_) }]
            if name == "admin.approved" && *k == key),
        "{:?}",
        detail.stuck
    );
    assert_eq!(detail.attempts.last().unwrap().outcome, "suspended");
    assert_eq!(detail.journal.len(), 1);

    assert!(
        admin
            .emit_event("admin.approved", &key, &serde_json::json!({ "id": key }))
            .await
            .unwrap()
    );
    assert!(
        !admin
            .emit_event(
                "admin.approved",
                &key,
                &serde_json::json!({ "id": "other" })
            )
            .await
            .unwrap(),
        "the first emission wins"
    );
    wait_until(Duration::from_secs(10), "the job completes", || async {
        rl.job(id).await.unwrap().unwrap().state == JobState::Completed
    })
    .await;
    let detail = admin.job(id).await.unwrap().unwrap();
    assert_eq!(detail.events.len(), 1);
    assert_eq!(detail.events[0].payload, serde_json::json!({ "id": key }));
    let events = admin
        .events(Some("admin.approved"), None, 10)
        .await
        .unwrap();
    assert_eq!(events.len(), 1);

    // The worker registered itself, with its host and slots.
    let workers = admin.workers().await.unwrap();
    assert_eq!(workers.len(), 1);
    assert!(workers[0].live);
    assert!(workers[0].kinds.contains(&"awaits_approval".to_owned()));
    assert!(workers[0].host.is_some() && workers[0].concurrency.is_some());
    w.shutdown().await.unwrap();
    assert!(
        admin.workers().await.unwrap().is_empty(),
        "gone at shutdown"
    );
}

#[tokio::test]
async fn queues_schedules_and_doctor_report() {
    let db = db().await;
    let rl = db.client();
    rl.enqueue(Orphan { n: 4 }).await.unwrap();
    rl.enqueue(Orphan { n: 5 }).await.unwrap();
    rl.enqueue(Seed { n: 1 }).await.unwrap();
    drain(&rl).await;
    let admin = rl.admin();
    let queues = admin.queues().await.unwrap();
    let orphans = queues
        .iter()
        .find(|q| q.queue == "nobody-works-here")
        .unwrap();
    assert_eq!(orphans.pending.get("available"), Some(&2));
    let ops = queues.iter().find(|q| q.queue == "ops").unwrap();
    assert_eq!(ops.finished_last_hour.get("completed"), Some(&1));
    let throughput = admin.throughput(60).await.unwrap();
    assert_eq!(
        throughput
            .iter()
            .filter_map(|p| p.finished.get("completed"))
            .sum::<i64>(),
        1
    );

    rl.add_schedule(Schedule::new(
        "nightly-orphan",
        "0 3 * * *",
        Orphan { n: 9 },
    ))
    .await
    .unwrap();
    admin.pause_schedule("nightly-orphan").await.unwrap();
    assert!(admin.schedules().await.unwrap()[0].paused);
    let fired = admin.trigger_schedule("nightly-orphan").await.unwrap();
    let job = rl.job(fired).await.unwrap().unwrap();
    assert_eq!(
        (job.kind.as_str(), job.state),
        ("orphan", JobState::Available)
    );
    assert_eq!(job.args, serde_json::json!({ "n": 9 }));
    let missing = admin.trigger_schedule("no-such").await.unwrap_err();
    assert!(missing.to_string().contains("no schedule named `no-such`"));

    // A job of a kind no worker has a handler for (left by code that was removed, say).
    sqlx::query("INSERT INTO runledger.jobs (kind, queue) VALUES ('ghost', 'ops')")
        .execute(rl.pool())
        .await
        .unwrap();
    let report = admin.doctor().await.unwrap();
    let schema = report.checks.iter().find(|c| c.name == "schema").unwrap();
    assert_eq!(schema.level, CheckLevel::Ok, "{}", schema.message);
    assert!(
        report
            .checks
            .iter()
            .any(|c| c.name == "kinds" && c.message.contains("1 pending job(s) of kind `ghost`")),
        "{:?}",
        report.checks
    );
    assert!(report.worst() >= CheckLevel::Warning);
}
