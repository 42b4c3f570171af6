//! Bad input: payloads that no longer deserialize, kinds no worker knows, oversized payloads
//! and outputs, panicking and hung handlers, invalid names and cron expressions.

use std::time::{Duration, Instant};

use runledger::job::{JobId, JobState};
use runledger::schedule::ScheduleError;
use runledger::{Error, JobContext, JobError, Runledger, Schedule, Worker, job};
use sqlx::PgPool;

use crate::harness::{
    Expect, Row, Scenario, executed, fresh_db, measure, start, wait_finished, worker,
};

const QUEUE: &str = "rel.bad";

const SCHEMA_DRIFT: &str = "payload that no longer deserializes";
const UNKNOWN_KIND: &str = "unknown kind (its job left available by design)";
const OVERSIZED: &str = "oversized payload and output";
const PANIC: &str = "handler panics";
const HUNG: &str = "hung handlers time out";
const INVALID_NAMES: &str = "invalid names and cron expressions";

pub const SCENARIOS: &[Scenario] = &[
    (SCHEMA_DRIFT, || Box::pin(schema_drift())),
    (UNKNOWN_KIND, || Box::pin(unknown_kind())),
    (OVERSIZED, || Box::pin(oversized())),
    (PANIC, || Box::pin(panics())),
    (HUNG, || Box::pin(hung())),
    (INVALID_NAMES, || Box::pin(invalid_names())),
];

/// A job with typed fields; returns `count`.
#[job(queue = "rel.bad")]
async fn rel_typed(ctx: &JobContext, count: u32, label: String) -> Result<u32, JobError> {
    let _ = label;
    executed(ctx).await;
    Ok(count)
}

async fn enqueue_typed(rl: &Runledger, n: u32) -> Vec<i64> {
    rl.enqueue_many((0..n).map(|count| RelTyped {
        count,
        label: "ok".into(),
    }))
    .await
    .expect("enqueue")
    .into_iter()
    .map(|h| h.id.0)
    .collect()
}

/// Inserts a job row as another program (or an older version of this one) would have.
async fn insert_raw(pool: &PgPool, kind: &str, args: &str, max_attempts: i32) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO runledger.jobs (kind, queue, args, max_attempts) \
         VALUES ($1, $2, $3::jsonb, $4) RETURNING id",
    )
    .bind(kind)
    .bind(QUEUE)
    .bind(args)
    .bind(max_attempts)
    .fetch_one(pool)
    .await
    .expect("insert a raw job")
}

/// A job written by an older version whose fields were different, among 20 good ones: it fails
/// at once (not retried, though 5 attempts were allowed) with the reason; the others complete.
async fn schema_drift() -> Row {
    let db = fresh_db().await;
    let rl = db.client();
    let bad = insert_raw(db.pool(), "rel_typed", r#"{"count": "not a number"}"#, 5).await;
    let good = enqueue_typed(&rl, 20).await;
    let w = start(worker(db.pool(), QUEUE).kinds(["rel_typed"])).await;
    let mut all = good.clone();
    all.push(bad);
    wait_finished(db.pool(), &all, Duration::from_secs(20)).await;
    let more = enqueue_typed(&rl, 5).await;
    wait_finished(db.pool(), &more, Duration::from_secs(10)).await;
    w.shutdown()
        .await
        .expect("the worker is alive and stops normally");
    let err = rl
        .handle::<RelTyped>(JobId(bad))
        .wait_timeout(Duration::from_secs(1))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("payload does not deserialize"),
        "{message}"
    );
    assert!(message.contains("invalid type"), "{message}");
    let job = rl.job(JobId(bad)).await.unwrap().expect("job exists");
    assert_eq!(
        (job.state, job.attempt),
        (JobState::Failed, 1),
        "not retried"
    );
    let mut complete = good;
    complete.extend(more);
    let expect = Expect {
        complete,
        finish: vec![bad],
        ..Expect::default()
    };
    measure(SCHEMA_DRIFT, db.pool(), &expect).await
}

/// A job of a kind that no worker runs, among 20 good ones: the worker runs the others and
/// never claims it; it stays `available` at attempt 0, for a worker that knows the kind, and
/// `unclaimed_kinds` reports it (and only it). It is therefore not among the jobs that must
/// finish (the scenario's name says so).
async fn unknown_kind() -> Row {
    let db = fresh_db().await;
    let rl = db.client();
    let unknown = insert_raw(db.pool(), "rel_retired_kind", "{}", 3).await;
    let good = enqueue_typed(&rl, 20).await;
    let w = start(worker(db.pool(), QUEUE).kinds(["rel_typed"])).await;
    wait_finished(db.pool(), &good, Duration::from_secs(20)).await;
    // A few poll intervals: the worker still leaves the job alone.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let more = enqueue_typed(&rl, 5).await;
    wait_finished(db.pool(), &more, Duration::from_secs(10)).await;
    // The signal for operators: these jobs wait while no running worker serves their kind.
    let unclaimed = rl
        .unclaimed_kinds(Duration::from_millis(500))
        .await
        .expect("unclaimed kinds");
    let reported: Vec<(&str, &str, i64)> = unclaimed
        .iter()
        .map(|u| (u.queue.as_str(), u.kind.as_str(), u.jobs))
        .collect();
    assert_eq!(
        reported,
        [(QUEUE, "rel_retired_kind", 1)],
        "only the unknown kind is reported"
    );
    w.shutdown()
        .await
        .expect("the worker is alive and stops normally");
    let job = rl.job(JobId(unknown)).await.unwrap().expect("job exists");
    assert_eq!(
        (job.state, job.attempt),
        (JobState::Available, 0),
        "left untouched for a worker that knows the kind"
    );
    let mut complete = good;
    complete.extend(more);
    measure(UNKNOWN_KIND, db.pool(), &Expect::completed(complete)).await
}

/// Returns a string of `bytes` bytes.
#[job(queue = "rel.bad")]
async fn rel_big_output(ctx: &JobContext, bytes: usize) -> Result<String, JobError> {
    executed(ctx).await;
    Ok("x".repeat(bytes))
}

/// A payload over the client's limit is refused at enqueue with `PayloadTooLarge` (alone or in
/// a batch) and nothing is written; an output over the worker's limit fails its job (once, with
/// the reason, no output stored) while the small ones complete.
async fn oversized() -> Row {
    let db = fresh_db().await;
    let small = Runledger::builder(db.pool().clone())
        .max_payload_bytes(1024)
        .build();
    let big = RelTyped {
        count: 1,
        label: "x".repeat(2000),
    };
    match big.clone().enqueue(&small).await {
        Err(Error::PayloadTooLarge { size, limit, .. }) => {
            assert!(size > 2000, "{size}");
            assert_eq!(limit, 1024);
        }
        other => panic!("expected PayloadTooLarge, got {other:?}"),
    }
    let err = small
        .enqueue_many([
            RelTyped {
                count: 2,
                label: "small".into(),
            },
            big,
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::PayloadTooLarge { .. }), "{err:?}");
    assert!(err.to_string().contains("max_payload_bytes"), "{err}");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM runledger.jobs")
        .fetch_one(db.pool())
        .await
        .expect("count");
    assert_eq!(rows, 0, "a rejected enqueue writes nothing");

    let rl = db.client();
    let too_big = RelBigOutput { bytes: 2000 }
        .enqueue(&rl)
        .await
        .expect("enqueue");
    let fits: Vec<i64> = rl
        .enqueue_many((0..10).map(|_| RelBigOutput { bytes: 100 }))
        .await
        .expect("enqueue")
        .into_iter()
        .map(|h| h.id.0)
        .collect();
    let w = start(
        worker(db.pool(), QUEUE)
            .kinds(["rel_big_output"])
            .max_payload_bytes(1024),
    )
    .await;
    let err = too_big
        .wait_timeout(Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::JobFailed { attempts: 1, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("over the limit of 1024 bytes"),
        "{err}"
    );
    wait_finished(db.pool(), &fits, Duration::from_secs(10)).await;
    w.shutdown().await.expect("shutdown");
    let job = rl.job(too_big.id()).await.unwrap().expect("job exists");
    assert_eq!(job.output, None, "nothing of the output stored");
    let expect = Expect {
        complete: fits,
        finish: vec![too_big.id().0],
        ..Expect::default()
    };
    measure(OVERSIZED, db.pool(), &expect).await
}

/// Panics on its first attempt, or on every attempt when `always`.
#[job(queue = "rel.bad", max_attempts = 2, backoff(constant = "10ms"))]
async fn rel_panics(ctx: &JobContext, always: bool) -> Result<i32, JobError> {
    executed(ctx).await;
    if always || ctx.attempt() == 1 {
        panic!("invariant broken in job {}", ctx.id());
    }
    Ok(ctx.attempt())
}

/// A handler that panics once is a failed attempt with the panic's message, retried and then
/// completed; one that always panics fails after its 2 attempts. The worker lives on: 20 other
/// jobs, and 5 enqueued after the panics, complete.
async fn panics() -> Row {
    let db = fresh_db().await;
    let rl = db.client();
    let once = RelPanics { always: false }
        .enqueue(&rl)
        .await
        .expect("enqueue");
    let always = RelPanics { always: true }
        .enqueue(&rl)
        .await
        .expect("enqueue");
    let good = enqueue_typed(&rl, 20).await;
    let w = start(worker(db.pool(), QUEUE).kinds(["rel_panics", "rel_typed"])).await;
    assert_eq!(once.wait_timeout(Duration::from_secs(10)).await.unwrap(), 2);
    let err = always
        .wait_timeout(Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::JobFailed { attempts: 2, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&format!(
            "handler panicked: invariant broken in job {}",
            always.id()
        )),
        "{err}"
    );
    let job = rl.job(once.id()).await.unwrap().expect("job exists");
    let first_error = job.errors[0]["error"].as_str().unwrap_or_default();
    assert!(
        first_error.contains("handler panicked: invariant broken"),
        "{first_error}"
    );
    wait_finished(db.pool(), &good, Duration::from_secs(10)).await;
    let more = enqueue_typed(&rl, 5).await;
    wait_finished(db.pool(), &more, Duration::from_secs(10)).await;
    w.shutdown().await.expect("shutdown");
    let mut complete = good;
    complete.extend(more);
    complete.push(once.id().0);
    let expect = Expect {
        complete,
        finish: vec![always.id().0],
        ..Expect::default()
    };
    measure(PANIC, db.pool(), &expect).await
}

/// Never returns by itself; its 200 ms timeout ends each attempt.
#[job(
    queue = "rel.bad",
    timeout = "200ms",
    max_attempts = 2,
    backoff(constant = "10ms")
)]
async fn rel_hangs(ctx: &JobContext, label: String) -> Result<(), JobError> {
    let _ = label;
    executed(ctx).await;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    Ok(())
}

/// Two hung handlers hold both slots of a worker; their timeouts free the slots, and 20 quick
/// jobs behind them complete. Recovery (enqueue to the last quick job) is bounded by the four
/// timed-out attempts, two at a time (0.4 s), plus the quick jobs: 5 s.
async fn hung() -> Row {
    let db = fresh_db().await;
    let rl = db.client();
    let hung: Vec<i64> = rl
        .enqueue_many((0..2).map(|i| RelHangs {
            label: format!("hung-{i}"),
        }))
        .await
        .expect("enqueue")
        .into_iter()
        .map(|h| h.id.0)
        .collect();
    let started = Instant::now();
    let quick = enqueue_typed(&rl, 20).await;
    let w = start(
        worker(db.pool(), QUEUE)
            .kinds(["rel_hangs", "rel_typed"])
            .concurrency(2),
    )
    .await;
    wait_finished(db.pool(), &quick, Duration::from_secs(20)).await;
    let recovery = started.elapsed();
    wait_finished(db.pool(), &hung, Duration::from_secs(10)).await;
    w.shutdown().await.expect("shutdown");
    for &id in &hung {
        let job = rl.job(JobId(id)).await.unwrap().expect("job exists");
        assert_eq!((job.state, job.attempt), (JobState::Failed, 2));
        assert!(
            job.last_error()
                .unwrap_or_default()
                .contains("timed out after 200ms"),
            "{:?}",
            job.errors
        );
    }
    let expect = Expect {
        complete: quick,
        finish: hung,
        ..Expect::default()
    };
    measure(HUNG, db.pool(), &expect)
        .await
        .recovered(recovery, Duration::from_secs(5))
}

/// Queue, kind and schedule names and cron expressions that are invalid are refused where they
/// are given (enqueue, worker build, schedule), with a message that names the problem, before
/// any SQL: nothing is written and the tables are intact.
async fn invalid_names() -> Row {
    let db = fresh_db().await;
    let rl = db.client();
    let typed = || RelTyped {
        count: 1,
        label: "q".into(),
    };
    let err = typed()
        .enqueue(&rl)
        .with_queue("mail'; DROP TABLE runledger.jobs; --")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    assert!(err.to_string().contains("use only letters"), "{err}");
    let err = typed().enqueue(&rl).with_max_attempts(0).await.unwrap_err();
    assert!(err.to_string().contains("at least 1"), "{err}");
    let err = typed()
        .enqueue(&rl)
        .with_timeout(Some(Duration::ZERO))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("timeout"), "{err}");

    for (builder, names) in [
        (
            Worker::builder(db.pool().clone()).queues(["bad queue"]),
            "bad queue",
        ),
        (
            Worker::builder(db.pool().clone()).queues(["x'; DROP TABLE runledger.jobs; --"]),
            "DROP TABLE",
        ),
        (
            Worker::builder(db.pool().clone()).kinds(["no such kind"]),
            "no such kind",
        ),
    ] {
        let err = builder.build().unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err:?}");
        assert!(err.to_string().contains(names), "{err}");
    }

    for bad in ["", "* * *", "0 61 * * *", "0 0 30 2 *", "every monday"] {
        match rl.add_schedule(Schedule::new("bad", bad, typed())).await {
            Err(Error::Schedule {
                schedule,
                error: ScheduleError::InvalidCron { expression, .. },
            }) => {
                assert_eq!((schedule.as_str(), expression.as_str()), ("bad", bad));
            }
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    let err = rl
        .add_schedule(Schedule::new("bad", "0 * * * *", typed()).timezone("Europe/Londn"))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "schedule `bad`: unknown time zone `Europe/Londn`; use an IANA name such as `UTC` or \
         `Europe/London`"
    );
    let err = rl
        .add_schedule(Schedule::new("bad name", "0 * * * *", typed()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    assert!(err.to_string().contains("bad name"), "{err}");
    assert!(
        rl.schedules().await.expect("schedules").is_empty(),
        "no schedule written"
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM runledger.jobs")
        .fetch_one(db.pool())
        .await
        .expect("the jobs table is intact");
    assert_eq!(rows, 0, "no job written");
    measure(INVALID_NAMES, db.pool(), &Expect::default()).await
}
