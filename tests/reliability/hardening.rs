//! Hardening scenarios: outcomes and payloads the database cannot store, handlers that hold every
//! connection of the worker's pool, a worker cut off from renewing its leases, and kinds that no
//! running worker serves.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use runledger::job::JobRequest;
use runledger::{Error, JobContext, JobError, Runledger, job};
use serde_json::value::RawValue;

use crate::harness::{
    Expect, Scenario, executed, fresh_db, measure, start, wait_finished, wait_until, worker,
};

const POISON: &str = "poison outcomes and payloads affect only their own job";
const POOL_HOGS: &str = "handlers hold every pooled connection for 3.5x the lease";
const CUT_OFF: &str = "renewals cut off: the attempt stops before its lease ends";
const UNSERVED: &str = "kinds no worker serves: reported, run once one does";

pub const SCENARIOS: &[Scenario] = &[
    (POISON, || Box::pin(poison())),
    (POOL_HOGS, || Box::pin(pool_hogs())),
    (CUT_OFF, || Box::pin(cut_off())),
    (UNSERVED, || Box::pin(unserved())),
];

/// Returns an output holding a NUL character, which `jsonb` refuses.
#[job(queue = "rel.poison", max_attempts = 3)]
async fn rel_nul_output(ctx: &JobContext) -> Result<String, JobError> {
    executed(ctx).await;
    Ok(String::from("a\0b"))
}

/// Fails with an error message holding a NUL character.
#[job(queue = "rel.poison", max_attempts = 2, backoff(constant = "10ms"))]
async fn rel_nul_error(ctx: &JobContext) -> Result<(), JobError> {
    executed(ctx).await;
    Err(JobError::retry("bad\0message"))
}

/// Panics with a message holding a NUL character.
#[job(queue = "rel.poison", max_attempts = 1)]
async fn rel_nul_panic(ctx: &JobContext) -> Result<(), JobError> {
    executed(ctx).await;
    panic!("bad\0panic");
}

/// Returns JSON that `jsonb` refuses and the worker cannot see coming (a lone surrogate): only
/// the database's refusal of the completion batch tells.
#[job(queue = "rel.poison", max_attempts = 3)]
async fn rel_lone_surrogate(ctx: &JobContext) -> Result<Box<RawValue>, JobError> {
    executed(ctx).await;
    Ok(RawValue::from_string(r#""\ud800""#.to_owned()).expect("valid JSON text"))
}

/// An ordinary job; also the type whose payload carries a NUL in the payload scenario.
#[job(queue = "rel.poison")]
async fn rel_plain(ctx: &JobContext, text: String) -> Result<usize, JobError> {
    executed(ctx).await;
    Ok(text.len())
}

async fn poison() -> crate::harness::Row {
    let db = fresh_db().await;
    let rl = db.client();
    // A payload PostgreSQL cannot store is refused at enqueue, alone and in a batch, and
    // nothing is written.
    let refused = RelPlain {
        text: "a\0b".into(),
    }
    .enqueue(&rl)
    .await;
    assert!(
        matches!(refused, Err(Error::InvalidInput(_))),
        "{refused:?}"
    );
    let batch: Vec<JobRequest> = vec![
        RelPlain { text: "ok".into() }.into(),
        RelPlain { text: "\0".into() }.into(),
    ];
    let refused = rl.enqueue_many(batch).await;
    assert!(
        matches!(refused, Err(Error::InvalidInput(_))),
        "{refused:?}"
    );
    assert_eq!(crate::harness::count_state(db.pool(), "available").await, 0);

    // The poison jobs sit among 300 good ones, so that they share completion batches.
    let mut requests: Vec<JobRequest> = Vec::new();
    for n in 0..300 {
        requests.push(
            RelPlain {
                text: "x".repeat(n % 7),
            }
            .into(),
        );
        if n % 75 == 37 {
            requests.push(RelNulOutput {}.into());
            requests.push(RelNulError {}.into());
            requests.push(RelNulPanic {}.into());
            requests.push(RelLoneSurrogate {}.into());
        }
    }
    rl.enqueue_many(requests).await.expect("enqueue");
    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, kind FROM runledger.jobs ORDER BY id")
            .fetch_all(db.pool())
            .await
            .expect("jobs");
    let good: Vec<i64> = rows
        .iter()
        .filter(|(_, kind)| kind == "rel_plain")
        .map(|(id, _)| *id)
        .collect();
    let bad: Vec<(i64, String)> = rows
        .into_iter()
        .filter(|(_, kind)| kind != "rel_plain")
        .collect();
    assert_eq!((good.len(), bad.len()), (300, 16));
    let w = start(worker(db.pool(), "rel.poison").concurrency(50)).await;
    let all: Vec<i64> = good
        .iter()
        .copied()
        .chain(bad.iter().map(|b| b.0))
        .collect();
    wait_finished(db.pool(), &all, Duration::from_secs(60)).await;
    assert_eq!(w.running(), 0, "the worker holds no slot");
    let report = w.shutdown().await.expect("shutdown");
    assert_eq!(report.metrics.fenced, 0, "{:?}", report.metrics);
    for (id, kind) in &bad {
        let record = rl.job(runledger::job::JobId(*id)).await.unwrap().unwrap();
        let last = record.last_error().unwrap_or_default().to_owned();
        assert_eq!(
            record.state,
            runledger::job::JobState::Failed,
            "{kind}: {last}"
        );
        let expected = match kind.as_str() {
            "rel_nul_output" => "NUL character",
            "rel_nul_error" => "bad\\0message",
            "rel_nul_panic" => "handler panicked: bad\\0panic",
            "rel_lone_surrogate" => "could not be stored",
            other => panic!("unexpected kind {other}"),
        };
        assert!(last.contains(expected), "{kind}: {last}");
    }
    let mut expect = Expect::completed(good);
    expect.finish = bad.iter().map(|b| b.0).collect();
    let row = measure(POISON, db.pool(), &expect).await;
    // Only the retried error message may run twice (max_attempts = 2).
    assert!(row.dup_executed <= 4, "{row:?}");
    row
}

/// Holds a connection of the worker's pool for `millis`.
#[job(queue = "rel.hogs")]
async fn rel_pool_hog(ctx: &JobContext, millis: u64) -> Result<i32, JobError> {
    executed(ctx).await;
    sqlx::query("SELECT pg_sleep($1)")
        .bind(millis as f64 / 1000.0)
        .execute(ctx.client().pool())
        .await?;
    Ok(ctx.attempt())
}

async fn pool_hogs() -> crate::harness::Row {
    let db = fresh_db().await;
    let rl = db.client();
    let lease = Duration::from_secs(1);
    // The pool sized as advised for one queue, and as many handlers as connections, each
    // holding one for 3.5x the lease.
    let advised = runledger::Worker::builder(db.pool().clone())
        .queues(["rel.hogs"])
        .build()
        .expect("worker builds")
        .advised_pool_size();
    // Handlers wait for a connection as long as it takes (the listener holds one of them).
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(advised)
        .acquire_timeout(Duration::from_secs(60))
        .connect(db.url())
        .await
        .expect("pool");
    let n = advised as usize;
    let handles = rl
        .enqueue_many((0..n).map(|_| RelPoolHog { millis: 3_500 }))
        .await
        .expect("enqueue");
    let owner = start(worker(&pool, "rel.hogs").concurrency(n).lease(lease)).await;
    wait_until(Duration::from_secs(10), "every job claimed", || async {
        crate::harness::count_state(db.pool(), "running").await == n as i64
    })
    .await;
    // A second worker, ready to rescue and run any job whose lease expires.
    let rescuer = start(worker(db.pool(), "rel.hogs").concurrency(n).lease(lease)).await;
    let ids: Vec<i64> = handles.iter().map(|h| h.id.0).collect();
    wait_finished(db.pool(), &ids, Duration::from_secs(60)).await;
    let (a, b) = (
        owner.shutdown().await.expect("shutdown").metrics,
        rescuer.shutdown().await.expect("shutdown").metrics,
    );
    assert_eq!(
        (a.rescued, b.rescued, a.lease_lost),
        (0, 0, 0),
        "{a:?} {b:?}"
    );
    for h in &handles {
        let attempt = rl
            .handle::<RelPoolHog>(h.id)
            .wait()
            .await
            .expect("completed");
        assert_eq!(attempt, 1, "job {} was claimed a second time", h.id);
    }
    pool.close().await;
    let row = measure(POOL_HOGS, db.pool(), &Expect::completed(ids)).await;
    assert_eq!(row.dup_executed, 0, "no job ran twice: {row:?}");
    row
}

static ACTIVE: AtomicUsize = AtomicUsize::new(0);
static MOST_ACTIVE: AtomicUsize = AtomicUsize::new(0);
static STOPPED: AtomicUsize = AtomicUsize::new(0);

/// Its first attempt runs until stopped; counts how many attempts run at once.
#[job(queue = "rel.cutoff")]
async fn rel_watched(ctx: &JobContext) -> Result<i32, JobError> {
    struct Active;
    impl Drop for Active {
        fn drop(&mut self) {
            ACTIVE.fetch_sub(1, Ordering::SeqCst);
            STOPPED.fetch_add(1, Ordering::SeqCst);
        }
    }
    let now = ACTIVE.fetch_add(1, Ordering::SeqCst) + 1;
    MOST_ACTIVE.fetch_max(now, Ordering::SeqCst);
    let _active = Active;
    executed(ctx).await;
    if ctx.attempt() == 1 {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    Ok(ctx.attempt())
}

/// The number of backends of the current database named `runledger lease keeper`.
async fn lease_keepers(pool: &sqlx::PgPool, terminate: bool) -> i64 {
    let sql = if terminate {
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = 'runledger lease keeper'"
    } else {
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = 'runledger lease keeper'"
    };
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap_or(0)
}

/// Allows or refuses new connections to the database `name`, from the server's `postgres`.
async fn allow_connections(url: &str, name: &str, allow: bool) {
    let options: sqlx::postgres::PgConnectOptions = url.parse().expect("url");
    let mut conn =
        <sqlx::PgConnection as sqlx::Connection>::connect_with(&options.database("postgres"))
            .await
            .expect("admin connection");
    // The name is the test support's own, made of `[a-z0-9_]`.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS {allow}"
    )))
    .execute(&mut conn)
    .await
    .expect("alter database");
}

async fn cut_off() -> crate::harness::Row {
    let db = fresh_db().await;
    let rl = db.client();
    let lease = Duration::from_secs(2);
    let first = start(worker(db.pool(), "rel.cutoff").lease(lease)).await;
    let handle = RelWatched {}.enqueue(&rl).await.expect("enqueue");
    wait_until(
        Duration::from_secs(10),
        "the lease keeper connected",
        || async {
            ACTIVE.load(Ordering::SeqCst) == 1 && lease_keepers(db.pool(), false).await == 1
        },
    )
    .await;
    // Cut the lease keeper off: the database refuses new connections and its connection is
    // closed. The worker's pool keeps the connections it has; the job's lease cannot be renewed.
    allow_connections(db.url(), db.name(), false).await;
    let cut = Instant::now();
    assert_eq!(lease_keepers(db.pool(), true).await, 1);
    wait_until(lease * 2, "the attempt stopped", || async {
        STOPPED.load(Ordering::SeqCst) == 1
    })
    .await;
    let stopped = cut.elapsed();
    assert!(
        stopped < lease,
        "stopped {stopped:?} after the cut; the lease is {lease:?}"
    );
    allow_connections(db.url(), db.name(), true).await;
    // Another worker rescues the job once its lease has expired and runs it again.
    let second = start(worker(db.pool(), "rel.cutoff").lease(lease)).await;
    let attempt = rl
        .handle::<RelWatched>(handle.id())
        .wait_timeout(Duration::from_secs(20))
        .await
        .expect("completed");
    let recovered = cut.elapsed();
    assert_eq!(attempt, 2);
    assert_eq!(
        MOST_ACTIVE.load(Ordering::SeqCst),
        1,
        "never two attempts at once"
    );
    let m = first.shutdown().await.expect("shutdown").metrics;
    assert_eq!(m.lease_lost, 1, "{m:?}");
    second.shutdown().await.expect("shutdown");
    measure(CUT_OFF, db.pool(), &Expect::completed([handle.id().0]))
        .await
        .recovered(recovered, lease * 3)
}

/// A kind the first worker of the scenario leaves alone, as if its binary did not have it.
#[job(kind = "rel.ghost", queue = "rel.unserved")]
async fn rel_ghost(ctx: &JobContext) -> Result<(), JobError> {
    executed(ctx).await;
    Ok(())
}

/// An ordinary job on the same queue.
#[job(queue = "rel.unserved")]
async fn rel_living(ctx: &JobContext) -> Result<(), JobError> {
    executed(ctx).await;
    Ok(())
}

async fn unserved() -> crate::harness::Row {
    let db = fresh_db().await;
    let rl: Runledger = db.client();
    let ghost = RelGhost {}.enqueue(&rl).await.expect("enqueue");
    let living = RelLiving {}.enqueue(&rl).await.expect("enqueue");
    let after = Duration::from_millis(300);
    let w = start(
        worker(db.pool(), "rel.unserved")
            .exclude_kinds(["rel.ghost"])
            .unclaimed_after(after),
    )
    .await;
    living
        .wait_timeout(Duration::from_secs(10))
        .await
        .expect("living ran");
    tokio::time::sleep(after + Duration::from_millis(100)).await;
    let unclaimed = rl.unclaimed_kinds(after).await.expect("unclaimed kinds");
    assert_eq!(unclaimed.len(), 1, "{unclaimed:?}");
    assert_eq!(
        (
            unclaimed[0].queue.as_str(),
            unclaimed[0].kind.as_str(),
            unclaimed[0].jobs
        ),
        ("rel.unserved", "rel.ghost", 1)
    );
    let record = rl.job(ghost.id()).await.unwrap().unwrap();
    assert_eq!(
        (record.state, record.attempt),
        (runledger::job::JobState::Available, 0)
    );
    w.shutdown().await.expect("shutdown");
    // A worker that knows the kind runs it, and nothing is reported any more.
    let arrived = Instant::now();
    let w = start(worker(db.pool(), "rel.unserved")).await;
    ghost
        .wait_timeout(Duration::from_secs(10))
        .await
        .expect("ghost ran");
    let recovered = arrived.elapsed();
    assert!(rl.unclaimed_kinds(Duration::ZERO).await.unwrap().is_empty());
    w.shutdown().await.expect("shutdown");
    measure(
        UNSERVED,
        db.pool(),
        &Expect::completed([ghost.id().0, living.id().0]),
    )
    .await
    .recovered(recovered, Duration::from_secs(5))
}
