//! The worker: outcomes (retry, fatal, snooze, cancel), ordering, routing, injected state,
//! shutdown, back-pressure on claims, the claim's index order. Faults (timeouts, panics, bad
//! payloads, concurrent start-up) are in the reliability suite.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{StartOk, count, db, flush_stats, hit, hits, job, token, wait_until};
use runledger::job::{JobState, StopReason};
use runledger::testing::TestDatabase;
use runledger::worker::WorkerBuilder;
use runledger::{Error, JobContext, JobError, Runledger, State, Worker, job};

/// Counts executions; fails until attempt `succeed_on` (0 = never).
#[job(max_attempts = 5, backoff(constant = "50ms"))]
async fn flaky(ctx: &JobContext, key: String, succeed_on: i32) -> Result<i32, JobError> {
    hit(&key);
    if succeed_on == 0 || ctx.attempt() < succeed_on {
        return Err(std::io::Error::other(format!("attempt {} failed", ctx.attempt())).into());
    }
    Ok(ctx.attempt())
}

#[job(
    max_attempts = 3,
    backoff(base = "20ms", factor = 2.0, max = "1s", jitter = 0.0)
)]
async fn always_fails(key: String) -> Result<(), JobError> {
    hit(&key);
    Err(JobError::retry("still broken"))
}

#[job]
async fn fatal_job(key: String) -> Result<(), JobError> {
    hit(&key);
    Err(JobError::fatal("the card was declined"))
}

#[job]
async fn snoozer(ctx: &JobContext, key: String) -> Result<String, JobError> {
    if hit(&key) == 1 {
        return Err(JobError::snooze(Duration::from_millis(100)));
    }
    Ok(format!("ran on attempt {}", ctx.attempt()))
}

#[job]
async fn self_cancel(key: String) -> Result<(), JobError> {
    hit(&key);
    Err(JobError::cancel("order was withdrawn"))
}

/// Runs until asked to stop.
#[job]
async fn long_running(ctx: &JobContext, key: String) -> Result<(), JobError> {
    hit(&key);
    let reason = ctx.stopped().await;
    hit(&format!("{key}:stopped:{reason:?}"));
    Ok(())
}

#[job]
async fn sleeps(key: String, millis: u64) -> Result<u64, JobError> {
    tokio::time::sleep(Duration::from_millis(millis)).await;
    hit(&key);
    Ok(millis)
}

#[job(queue = "ordered")]
async fn record_order(key: String, label: String) -> Result<(), JobError> {
    ORDER.lock().unwrap().push((key, label));
    Ok(())
}

static ORDER: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

/// Settings injected by the worker.
struct Greeting(&'static str);

#[job]
async fn greet(
    greeting: State<Greeting>,
    counter: State<Arc<AtomicUsize>>,
    name: String,
) -> Result<String, JobError> {
    counter.fetch_add(1, Ordering::SeqCst);
    let Greeting(text) = &*greeting;
    Ok(format!("{text}, {name}"))
}

#[job(kind = "typed_payload")]
async fn typed_payload(count: u32, label: String) -> Result<u32, JobError> {
    let _ = label;
    Ok(count)
}

/// Renamed from `legacy_name`: jobs stored under the old name still run.
#[job(aliases = ["legacy_name"])]
async fn new_name(value: i64) -> Result<i64, JobError> {
    Ok(value * 2)
}

/// A worker for these tests: short intervals, the state `greet` needs.
fn worker(db: &TestDatabase) -> WorkerBuilder {
    Worker::builder(db.pool().clone())
        .queues(["default"])
        .poll_interval(Duration::from_millis(100))
        .state(Greeting("Hello"))
        .state(Arc::new(AtomicUsize::new(0)))
}

#[tokio::test]
async fn retries_with_backoff_until_success() {
    let db = db().await;
    let rl = db.client();
    let key = token("flaky");
    let handle = Flaky {
        key: key.clone(),
        succeed_on: 3,
    }
    .enqueue(&rl)
    .await
    .unwrap();
    let w = worker(&db).start_ok().await;
    assert_eq!(
        handle.wait_timeout(Duration::from_secs(10)).await.unwrap(),
        3
    );
    w.shutdown().await.unwrap();
    assert_eq!(hits(&key), 3);
    let row = job(&rl, handle.id()).await;
    assert_eq!((row.state, row.attempt), (JobState::Completed, 3));
    assert_eq!(row.errors.len(), 2);
    assert_eq!(row.errors[0]["error"], "attempt 1 failed");
    assert_eq!(row.errors[1]["attempt"], 2);
    assert_eq!(row.output, Some(serde_json::json!(3)));
}

#[tokio::test]
async fn retries_until_exhausted_then_fails() {
    let db = db().await;
    let rl = db.client();
    let key = token("always");
    let handle = AlwaysFails { key: key.clone() }.enqueue(&rl).await.unwrap();
    let w = worker(&db).start_ok().await;
    let err = handle
        .wait_timeout(Duration::from_secs(10))
        .await
        .unwrap_err();
    w.shutdown().await.unwrap();
    match err {
        Error::JobFailed {
            attempts, error, ..
        } => {
            assert_eq!(attempts, 3);
            assert_eq!(error, "still broken");
        }
        other => panic!("expected JobFailed, got {other:?}"),
    }
    assert_eq!(hits(&key), 3);
    let row = job(&rl, handle.id()).await;
    assert_eq!(
        (row.state, row.attempt, row.errors.len()),
        (JobState::Failed, 3, 3)
    );
    assert!(row.finished_at.is_some());
    // Exponential backoff: attempt 2 waited >= 20 ms, attempt 3 >= 40 ms (database clock).
    let at = |i: usize| {
        chrono::DateTime::parse_from_rfc3339(row.errors[i]["at"].as_str().unwrap()).unwrap()
    };
    assert!((at(1) - at(0)).num_milliseconds() >= 20);
    assert!((at(2) - at(1)).num_milliseconds() >= 40);
}

#[tokio::test]
async fn fatal_error_fails_without_retry() {
    let db = db().await;
    let rl = db.client();
    let key = token("fatal");
    let handle = FatalJob { key: key.clone() }.enqueue(&rl).await.unwrap();
    let w = worker(&db).start_ok().await;
    let err = handle
        .wait_timeout(Duration::from_secs(10))
        .await
        .unwrap_err();
    w.shutdown().await.unwrap();
    assert!(err.to_string().contains("the card was declined"), "{err}");
    assert_eq!(hits(&key), 1);
    let row = job(&rl, handle.id()).await;
    assert_eq!((row.state, row.attempt), (JobState::Failed, 1));
}

#[tokio::test]
async fn snooze_reschedules_without_spending_an_attempt() {
    let db = db().await;
    let rl = db.client();
    let key = token("snooze");
    let handle = Snoozer { key: key.clone() }
        .enqueue(&rl)
        .with_max_attempts(1)
        .await
        .unwrap();
    let w = worker(&db).start_ok().await;
    let out = handle.wait_timeout(Duration::from_secs(10)).await.unwrap();
    let metrics = w.shutdown().await.unwrap().metrics;
    assert_eq!(out, "ran on attempt 2");
    assert_eq!(metrics.snoozed, 1);
    let row = job(&rl, handle.id()).await;
    // One attempt allowed, yet it ran twice: the snooze gave its attempt back.
    assert_eq!(
        (row.state, row.attempt, row.max_attempts),
        (JobState::Completed, 2, 2)
    );
    assert!(row.errors.is_empty());
}

#[tokio::test]
async fn handler_can_cancel_its_job() {
    let db = db().await;
    let rl = db.client();
    let key = token("selfcancel");
    let handle = SelfCancel { key: key.clone() }.enqueue(&rl).await.unwrap();
    let w = worker(&db).start_ok().await;
    let err = handle
        .wait_timeout(Duration::from_secs(10))
        .await
        .unwrap_err();
    w.shutdown().await.unwrap();
    match err {
        Error::JobCancelled { reason, .. } => {
            assert_eq!(reason.as_deref(), Some("order was withdrawn"))
        }
        other => panic!("expected JobCancelled, got {other:?}"),
    }
    assert_eq!(hits(&key), 1);
}

#[tokio::test]
async fn cancel_stops_a_running_job() {
    let db = db().await;
    let rl = db.client();
    let key = token("cancel-running");
    let handle = LongRunning { key: key.clone() }.enqueue(&rl).await.unwrap();
    let w = worker(&db).start_ok().await;
    wait_until(Duration::from_secs(10), "job running", || async {
        hits(&key) == 1
    })
    .await;
    assert_eq!(
        rl.cancel(handle.id()).await.unwrap(),
        runledger::job::CancelOutcome::Requested
    );
    let err = handle
        .wait_timeout(Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::JobCancelled { .. }), "{err:?}");
    let metrics = w.shutdown().await.unwrap().metrics;
    assert_eq!(metrics.cancelled, 1);
    let row = job(&rl, handle.id()).await;
    assert_eq!((row.state, row.attempt), (JobState::Cancelled, 1));
    assert_eq!(row.last_error(), Some("cancelled while running"));
}

#[tokio::test]
async fn higher_priority_runs_first_and_queues_are_separate() {
    let db = db().await;
    let rl = db.client();
    let key = token("order");
    let label = |l: &str| RecordOrder {
        key: key.clone(),
        label: l.into(),
    };
    label("low").enqueue(&rl).with_priority(-1).await.unwrap();
    label("normal").enqueue(&rl).await.unwrap();
    label("high").enqueue(&rl).with_priority(10).await.unwrap();
    label("elsewhere")
        .enqueue(&rl)
        .with_queue("other")
        .await
        .unwrap();
    let w = worker(&db)
        .queues(["ordered"])
        .concurrency(1)
        .batch_size(1)
        .start_ok()
        .await;
    wait_until(Duration::from_secs(10), "three ordered jobs", || async {
        ORDER
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| *k == key)
            .count()
            == 3
    })
    .await;
    w.shutdown().await.unwrap();
    let order: Vec<String> = ORDER
        .lock()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k == key)
        .map(|(_, l)| l.clone())
        .collect();
    assert_eq!(order, ["high", "normal", "low"]);
    assert_eq!(
        count(&rl, JobState::Available).await,
        1,
        "the job on queue `other` is untouched"
    );
}

#[tokio::test]
async fn scheduled_job_waits_for_its_time() {
    let db = db().await;
    let rl = db.client();
    let key = token("scheduled");
    let handle = Sleeps {
        key: key.clone(),
        millis: 1,
    }
    .enqueue(&rl)
    .run_in(Duration::from_millis(1500))
    .await
    .unwrap();
    let w = worker(&db).start_ok().await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(hits(&key), 0, "not due yet");
    handle.wait_timeout(Duration::from_secs(10)).await.unwrap();
    w.shutdown().await.unwrap();
    let row = job(&rl, handle.id()).await;
    let waited = row.attempted_at.unwrap() - row.created_at;
    assert!(waited.num_milliseconds() >= 1500, "started after {waited}");
    assert!(waited.num_milliseconds() < 4500, "started late: {waited}");
}

#[tokio::test]
async fn injected_state_reaches_the_handler() {
    let db = db().await;
    let rl = db.client();
    let counter = Arc::new(AtomicUsize::new(0));
    let handle = Greet { name: "Ada".into() }.enqueue(&rl).await.unwrap();
    let w = Worker::builder(db.pool().clone())
        .poll_interval(Duration::from_millis(100))
        .state(Greeting("Bonjour"))
        .state(counter.clone())
        .start_ok()
        .await;
    assert_eq!(
        handle.wait_timeout(Duration::from_secs(10)).await.unwrap(),
        "Bonjour, Ada"
    );
    w.shutdown().await.unwrap();
    assert_eq!(counter.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn build_fails_when_state_is_missing() {
    let db = db().await;
    let err = Worker::builder(db.pool().clone()).build().unwrap_err();
    let message = err.to_string();
    assert!(message.contains("job `greet` takes `State<"), "{message}");
    assert!(message.contains(".state(value)"), "{message}");
    // Leaving the kind out is the other way to build.
    Worker::builder(db.pool().clone())
        .exclude_kinds(["greet"])
        .build()
        .unwrap();
}

#[tokio::test]
async fn build_rejects_bad_configuration() {
    let db = db().await;
    let bad = [
        worker(&db)
            .queues(Vec::<String>::new())
            .build()
            .unwrap_err(),
        worker(&db).queues(["bad queue"]).build().unwrap_err(),
        worker(&db).queues(["a", "a"]).build().unwrap_err(),
        worker(&db).concurrency(0).build().unwrap_err(),
        worker(&db)
            .lease(Duration::from_millis(10))
            .build()
            .unwrap_err(),
        worker(&db).kinds(["no_such_kind"]).build().unwrap_err(),
    ];
    for err in bad {
        assert!(matches!(err, Error::Config(_)), "{err:?}");
    }
}

#[tokio::test]
async fn unknown_kinds_are_left_for_other_workers() {
    let db = db().await;
    let rl = db.client();
    let key = token("routing");
    let sleepy = Sleeps {
        key: key.clone(),
        millis: 1,
    }
    .enqueue(&rl)
    .await
    .unwrap();
    let other = RecordOrder {
        key: key.clone(),
        label: "x".into(),
    }
    .enqueue(&rl)
    .with_queue("default")
    .await
    .unwrap();
    // This worker does not know `record_order` (an older deploy, say).
    let report = runledger::testing::drain_with(worker(&db).exclude_kinds(["record_order"]))
        .await
        .unwrap();
    assert_eq!(report.completed, 1);
    assert_eq!(job(&rl, sleepy.id()).await.state, JobState::Completed);
    let row = job(&rl, other.id()).await;
    assert_eq!(
        (row.state, row.attempt),
        (JobState::Available, 0),
        "never claimed"
    );
    // A worker that knows it runs it.
    let report = runledger::testing::drain_with(worker(&db)).await.unwrap();
    assert_eq!(report.completed, 1);
    assert_eq!(job(&rl, other.id()).await.state, JobState::Completed);
}

#[tokio::test]
async fn graceful_shutdown_finishes_jobs_within_the_grace_period() {
    let db = db().await;
    let rl = db.client();
    let key = token("graceful");
    let jobs: Vec<Sleeps> = (0..5)
        .map(|_| Sleeps {
            key: key.clone(),
            millis: 400,
        })
        .collect();
    rl.enqueue_many(jobs).await.unwrap();
    let w = worker(&db)
        .shutdown_grace(Duration::from_secs(10))
        .start_ok()
        .await;
    wait_until(Duration::from_secs(10), "all running", || async {
        count(&rl, JobState::Running).await == 5
    })
    .await;
    let report = w.shutdown().await.unwrap();
    assert_eq!(report.released, 0);
    assert_eq!(hits(&key), 5);
    assert_eq!(count(&rl, JobState::Completed).await, 5);
    assert_eq!(count(&rl, JobState::Running).await, 0);
}

#[tokio::test]
async fn graceful_shutdown_hands_back_jobs_still_running_after_the_grace_period() {
    let db = db().await;
    let rl = db.client();
    let key = token("handback");
    let jobs: Vec<LongRunning> = (0..4).map(|_| LongRunning { key: key.clone() }).collect();
    let handles = rl.enqueue_many(jobs).await.unwrap();
    let w = worker(&db)
        .shutdown_grace(Duration::from_millis(300))
        .start_ok()
        .await;
    wait_until(Duration::from_secs(10), "all running", || async {
        hits(&key) == 4
    })
    .await;
    let report = w.shutdown().await.unwrap();
    assert_eq!(report.released, 4);
    assert_eq!(report.metrics.released, 4);
    assert_eq!(
        hits(&format!("{key}:stopped:{:?}", StopReason::Shutdown)),
        0,
        "futures were dropped"
    );
    assert_eq!(
        count(&rl, JobState::Running).await,
        0,
        "nothing left running"
    );
    for h in &handles {
        let row = job(&rl, h.id).await;
        assert_eq!(row.state, JobState::Available);
        assert_eq!(
            (row.attempt, row.max_attempts),
            (1, 26),
            "the attempt was given back"
        );
    }
    // The next worker picks them up.
    let w = worker(&db)
        .shutdown_grace(Duration::from_millis(100))
        .start_ok()
        .await;
    wait_until(Duration::from_secs(10), "picked up again", || async {
        hits(&key) == 8
    })
    .await;
    w.shutdown().await.unwrap();
}

#[tokio::test]
async fn run_job_round_trips_through_json() {
    let db = db().await;
    let rl: Runledger = db.client();
    let out = runledger::testing::JobRunner::new(&rl)
        .state(Greeting("Hi"))
        .state(Arc::new(AtomicUsize::new(0)))
        .run(Greet { name: "Bo".into() })
        .await
        .unwrap();
    assert_eq!(out, "Hi, Bo");
    let err = runledger::testing::run_job(&rl, Greet { name: "Bo".into() })
        .await
        .unwrap_err();
    assert!(err.is_fatal(), "missing state is fatal: {err}");
    assert!(err.to_string().contains("has no state of type"), "{err}");
}

#[tokio::test]
async fn aliases_route_jobs_stored_under_an_old_kind_name() {
    let db = db().await;
    let rl = db.client();
    let old: i64 = sqlx::query_scalar(
        "INSERT INTO runledger.jobs (kind, args) VALUES ('legacy_name', '{\"value\": 21}') \
         RETURNING id",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    let new = NewName { value: 5 }.enqueue(&rl).await.unwrap();
    let w = worker(&db).start_ok().await;
    let old = rl.handle::<NewName>(runledger::job::JobId(old));
    assert_eq!(old.wait_timeout(Duration::from_secs(10)).await.unwrap(), 42);
    assert_eq!(new.wait_timeout(Duration::from_secs(10)).await.unwrap(), 10);
    w.shutdown().await.unwrap();
    assert_eq!(job(&rl, new.id()).await.kind, "new_name");
}

#[tokio::test]
async fn jobs_that_arrive_without_a_notification_are_found_by_the_poll() {
    let db = db().await;
    let rl = db.client();
    let w = worker(&db)
        .queues(["default", "quiet", "silent"])
        .poll_interval(Duration::from_millis(300))
        .start_ok()
        .await;
    // Let the start-up wake-up pass; then jobs are written with no NOTIFY at all.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ids: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO runledger.jobs (kind, queue, args) \
         SELECT 'typed_payload', q, jsonb_build_object('count', n, 'label', q) \
         FROM unnest(ARRAY['quiet', 'silent']) AS q, generate_series(1, 3) AS n \
         RETURNING id",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    for id in ids {
        let handle = rl.handle::<TypedPayload>(runledger::job::JobId(id));
        handle.wait_timeout(Duration::from_secs(5)).await.unwrap();
    }
    let metrics = w.shutdown().await.unwrap().metrics;
    assert_eq!(metrics.completed, 6);
}

/// Fails its first attempt; the retry is due a second later.
#[job(queue = "handoff", max_attempts = 3, backoff(constant = "1s"))]
async fn retried_later(ctx: &JobContext, key: String) -> Result<i32, JobError> {
    hit(&key);
    if ctx.attempt() == 1 {
        return Err(JobError::retry("the first attempt fails"));
    }
    Ok(ctx.attempt())
}

#[tokio::test]
async fn a_retry_left_by_a_stopped_worker_is_run_by_another_without_delay() {
    let db = db().await;
    let rl = db.client();
    let key = token("handoff");
    // B runs first, with its only slot busy for 2 s, so that A takes the job.
    let b = worker(&db)
        .id("b")
        .queues(["default", "handoff"])
        .concurrency(1)
        .start_ok()
        .await;
    Sleeps {
        key: key.clone(),
        millis: 2000,
    }
    .enqueue(&rl)
    .await
    .unwrap();
    wait_until(Duration::from_secs(5), "B is busy", || async {
        b.running() == 1
    })
    .await;
    let handle = RetriedLater { key: key.clone() }
        .enqueue(&rl)
        .await
        .unwrap();
    let a = worker(&db).id("a").queues(["handoff"]).start_ok().await;
    wait_until(
        Duration::from_secs(5),
        "A's first attempt failed",
        || async { job(&rl, handle.id()).await.state == JobState::Retryable },
    )
    .await;
    // A stops before the retry is due; B's stager was asleep for its longest interval (30 s).
    let stopped = Instant::now();
    a.shutdown().await.unwrap();
    assert_eq!(
        handle.wait_timeout(Duration::from_secs(6)).await.unwrap(),
        2
    );
    assert!(
        stopped.elapsed() < Duration::from_secs(6),
        "B ran the retry soon after it was due"
    );
    b.shutdown().await.unwrap();
}

/// A no-op job for the back-pressure test.
#[job(queue = "pressure")]
async fn quick_step(key: String) -> Result<(), JobError> {
    hit(&key);
    Ok(())
}

#[tokio::test]
async fn a_worker_claims_no_more_than_it_can_record() {
    let db = db().await;
    let rl = db.client();
    // Recording a completion costs 20 ms a row here: far slower than the handlers finish.
    sqlx::raw_sql(
        "CREATE FUNCTION public.slow_completion() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN PERFORM pg_sleep(0.02); RETURN NEW; END $$; \
         CREATE TRIGGER slow_completion BEFORE UPDATE ON runledger.jobs FOR EACH ROW \
         WHEN (NEW.state = 'completed') EXECUTE FUNCTION public.slow_completion();",
    )
    .execute(db.pool())
    .await
    .unwrap();
    let key = token("pressure");
    let jobs = 2500;
    rl.enqueue_many((0..jobs).map(|_| QuickStep { key: key.clone() }))
        .await
        .unwrap();
    let worker = worker(&db)
        .queues(["pressure"])
        .concurrency(4)
        .start_ok()
        .await;
    let mut most_running = 0;
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(3) {
        most_running = most_running.max(count(&rl, JobState::Running).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Concurrency 4 and the default prefetch of 200: four handlers, the completer's queue
    // (twice the 204 jobs the worker may hold: 408 outcomes), the two batches being written (at
    // most what that queue held, plus the handlers waiting to join it, each), and the jobs held
    // for the next free slots (at most 200).
    let bound = 4 + 408 + 2 * (408 + 4) + 200;
    assert!(
        (4..=bound).contains(&most_running),
        "at most {bound} claimed jobs without a recorded outcome, saw {most_running}"
    );
    assert!(
        count(&rl, JobState::Available).await > 0,
        "the backlog waits in the queue, where any worker can take it"
    );
    sqlx::raw_sql("DROP TRIGGER slow_completion ON runledger.jobs")
        .execute(db.pool())
        .await
        .unwrap();
    wait_until(Duration::from_secs(30), "every job completed", || async {
        count(&rl, JobState::Completed).await == jobs as i64
    })
    .await;
    let metrics = worker.shutdown().await.unwrap().metrics;
    assert_eq!(metrics.completed, jobs as u64);
    assert_eq!(hits(&key), jobs as u32, "each job ran once");
}

/// `idx_tup_read` of the fetch index, as this connection's statistics see it after a flush.
async fn fetch_index_entries_read(conn: &mut sqlx::PgConnection) -> i64 {
    flush_stats(conn).await;
    sqlx::query_scalar(
        "SELECT idx_tup_read FROM pg_stat_user_indexes \
         WHERE schemaname = 'runledger' AND indexrelname = 'jobs_fetch_idx'",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_claim_reads_the_queue_in_index_order_whatever_the_statistics_say() {
    let db = db().await;
    let rl = db.client();
    // A table of finished jobs, vacuumed (which counts its rows but gathers no statistics of
    // their states), then a burst of 60,000 jobs.
    for statement in [
        "INSERT INTO runledger.jobs (kind, queue, state, finished_at) \
         SELECT 'quick_step', 'pressure', 'completed', now() FROM generate_series(1, 10000)",
        "VACUUM runledger.jobs",
    ] {
        sqlx::raw_sql(statement).execute(db.pool()).await.unwrap();
    }
    let key = token("burst");
    for _ in 0..12 {
        rl.enqueue_many((0..5_000).map(|_| QuickStep { key: key.clone() }))
            .await
            .unwrap();
    }
    let mut conn = db.pool().acquire().await.unwrap();
    // Planned on those statistics, the bare query reads every available job and sorts them.
    let before = fetch_index_entries_read(&mut conn).await;
    sqlx::query(
        "SELECT id FROM runledger.jobs \
         WHERE state = 'available' AND queue = 'pressure' AND kind = ANY('{quick_step}') \
         ORDER BY priority DESC, run_at, id LIMIT 10",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let bare = fetch_index_entries_read(&mut conn).await - before;
    assert!(
        bare >= 60_000,
        "the statistics mislead the planner here: the bare query read {bare} entries"
    );
    // The claim reads the index in order and stops after the jobs it takes.
    let before = fetch_index_entries_read(&mut conn).await;
    let claimed: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM runledger.claim_jobs('pressure', '{quick_step}', 10, 'probe', 30)",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let read = fetch_index_entries_read(&mut conn).await - before;
    assert_eq!(claimed.len(), 10);
    assert!(
        read <= 20,
        "the claim read {read} index entries for 10 jobs of 60,000 waiting"
    );
    let mut sorted = claimed.clone();
    sorted.sort_unstable();
    assert_eq!(claimed.len(), sorted.len());
    assert_eq!(
        sorted[9] - sorted[0],
        9,
        "the oldest jobs, in order: {claimed:?}"
    );
}

/// A job of another team, on its own queue, with state this test's workers do not have.
#[job(queue = "mail")]
async fn mail_out(greeting: State<Greeting>, to: String) -> Result<String, JobError> {
    let Greeting(text) = &*greeting;
    Ok(format!("{text}, {to}"))
}

#[tokio::test]
async fn a_worker_needs_only_the_state_of_the_kinds_it_runs() {
    let db = db().await;
    let rl = db.client();
    // Not on its queues: the worker builds without the state and leaves such jobs alone, even
    // one sent to its queue.
    let stray = MailOut { to: "ada".into() }
        .enqueue(&rl)
        .with_queue("elsewhere")
        .await
        .unwrap();
    let w = Worker::builder(db.pool().clone())
        .queues(["elsewhere"])
        .poll_interval(Duration::from_millis(100))
        .start_ok()
        .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(job(&rl, stray.id()).await.state, JobState::Available);
    w.shutdown().await.unwrap();
    // On its queues, or named in `kinds`: the state is required.
    for builder in [
        Worker::builder(db.pool().clone()).queues(["mail"]),
        Worker::builder(db.pool().clone())
            .queues(["elsewhere"])
            .kinds(["mail_out"]),
    ] {
        let message = builder.build().unwrap_err().to_string();
        assert!(
            message.contains("job `mail_out` takes `State<"),
            "{message}"
        );
    }
    // With the state, the worker that serves the queue runs it.
    let w = Worker::builder(db.pool().clone())
        .queues(["elsewhere"])
        .kinds(["mail_out"])
        .state(Greeting("Hello"))
        .start_ok()
        .await;
    assert_eq!(
        stray.wait_timeout(Duration::from_secs(10)).await.unwrap(),
        "Hello, ada"
    );
    w.shutdown().await.unwrap();
}

/// Shutdown with short jobs streaming through: the jobs the producer claimed ahead of its slots
/// are handed back, not started and not left `running`; every other job ran exactly once.
#[tokio::test]
async fn shutdown_hands_back_the_jobs_it_holds() {
    let db = db().await;
    let rl = db.client();
    let key = token("held");
    let jobs = 3000;
    rl.enqueue_many((0..jobs).map(|_| QuickStep { key: key.clone() }))
        .await
        .unwrap();
    let w = worker(&db)
        .queues(["pressure"])
        .concurrency(2)
        .start_ok()
        .await;
    wait_until(Duration::from_secs(20), "some jobs completed", || async {
        count(&rl, JobState::Completed).await >= 300
    })
    .await;
    let report = w.shutdown().await.unwrap();
    let completed = count(&rl, JobState::Completed).await;
    let available = count(&rl, JobState::Available).await;
    assert_eq!(
        count(&rl, JobState::Running).await,
        0,
        "nothing left running"
    );
    assert_eq!(completed + available, jobs as i64, "nothing lost");
    assert_eq!(
        i64::from(hits(&key)),
        completed,
        "each completed job ran once"
    );
    let handed_back: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM runledger.jobs \
         WHERE state = 'available' AND attempt = 1 AND max_attempts = 26",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(report.released as i64, handed_back, "{report:?}");
}

/// A worker with room for more than one batch of claims (concurrency 300) claims on two
/// connections at once, and still runs every job exactly once. Each claim statement is made to
/// last at least 30 ms, and logs its backend and start: two claims from different backends that
/// started less than 30 ms apart were in flight together.
#[tokio::test]
async fn a_wide_worker_claims_on_two_connections_and_runs_each_job_once() {
    let db = db().await;
    let rl = db.client();
    sqlx::raw_sql(
        "CREATE TABLE public.claim_log (pid int, started timestamptz, PRIMARY KEY (pid, started)); \
         CREATE FUNCTION public.log_claim() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN \
             INSERT INTO public.claim_log VALUES (pg_backend_pid(), statement_timestamp()) \
             ON CONFLICT DO NOTHING; \
             IF FOUND THEN PERFORM pg_sleep(0.03); END IF; \
             RETURN NEW; \
         END $$; \
         CREATE TRIGGER log_claim BEFORE UPDATE ON runledger.jobs FOR EACH ROW \
         WHEN (OLD.state = 'available' AND NEW.state = 'running') \
         EXECUTE FUNCTION public.log_claim();",
    )
    .execute(db.pool())
    .await
    .unwrap();
    let key = token("wide");
    let jobs = 4000;
    rl.enqueue_many((0..jobs).map(|_| QuickStep { key: key.clone() }))
        .await
        .unwrap();
    let w = worker(&db)
        .queues(["pressure"])
        .concurrency(300)
        .start_ok()
        .await;
    wait_until(Duration::from_secs(60), "every job completed", || async {
        count(&rl, JobState::Completed).await == jobs as i64
    })
    .await;
    let metrics = w.shutdown().await.unwrap().metrics;
    assert_eq!(metrics.claimed, jobs as u64, "{metrics:?}");
    assert_eq!(hits(&key), jobs as u32, "each job ran once");
    let overlapping: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM public.claim_log a JOIN public.claim_log b \
         ON a.pid < b.pid AND abs(extract(epoch FROM a.started - b.started)) < 0.03",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert!(
        overlapping > 0,
        "no two claims were ever in flight together"
    );
}
