//! Hardening: outcomes the database cannot store, input it cannot store, handlers that hold
//! every connection of the worker's pool, renewals that fail, shutdown's report, start-up
//! against a full server. Each asserts on the database at the end.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{StartOk, counts, db, hit, hits, job, token, wait_until};
use runledger::{Error, JobContext, JobError, JobState, Worker, job};
use serde_json::value::RawValue;

/// Returns an output holding a NUL character, which `jsonb` refuses.
#[job(queue = "poison", max_attempts = 3)]
async fn nul_output(key: String) -> Result<String, JobError> {
    hit(&key);
    Ok(String::from("a\0b"))
}

/// Fails with an error message holding a NUL character.
#[job(queue = "poison", max_attempts = 1)]
async fn nul_error(key: String) -> Result<(), JobError> {
    hit(&key);
    Err(JobError::retry("bad\0message"))
}

/// Panics with a message holding a NUL character.
#[job(queue = "poison", max_attempts = 1)]
async fn nul_panic(key: String) -> Result<(), JobError> {
    hit(&key);
    panic!("bad\0panic");
}

/// Returns JSON that `jsonb` refuses and that the worker cannot see coming (a lone surrogate):
/// only the database's refusal tells.
#[job(queue = "poison", max_attempts = 3)]
async fn lone_surrogate(key: String) -> Result<Box<RawValue>, JobError> {
    hit(&key);
    Ok(RawValue::from_string(r#""\ud800""#.to_owned()).expect("valid JSON text"))
}

/// Snoozes for longer than any interval PostgreSQL can add to a time.
#[job(queue = "poison")]
async fn snooze_forever(key: String) -> Result<(), JobError> {
    hit(&key);
    Err(JobError::snooze(Duration::MAX))
}

/// An ordinary job.
#[job(queue = "poison")]
async fn wholesome(key: String, n: u32) -> Result<u32, JobError> {
    hit(&format!("{key}-{n}"));
    Ok(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_outcomes_affect_only_their_own_job() {
    let db = db().await;
    let rl = db.client();
    let key = token("poison");
    // The poison jobs sit among the good ones, so that they share completion batches.
    let mut requests: Vec<runledger::JobRequest> = Vec::new();
    for n in 0..300u32 {
        requests.push(
            Wholesome {
                key: key.clone(),
                n,
            }
            .into(),
        );
        if n % 60 == 30 {
            requests.push(NulOutput { key: key.clone() }.into());
            requests.push(NulError { key: key.clone() }.into());
            requests.push(NulPanic { key: key.clone() }.into());
            requests.push(LoneSurrogate { key: key.clone() }.into());
            requests.push(SnoozeForever { key: key.clone() }.into());
        }
    }
    let handles = rl.enqueue_many(requests).await.unwrap();
    let w = Worker::builder(db.pool().clone())
        .queues(["poison"])
        .concurrency(50)
        .poll_interval(Duration::from_millis(100))
        .start_ok()
        .await;
    let started = Instant::now();
    wait_until(Duration::from_secs(30), "every job settled", || async {
        let c = counts(&rl).await;
        [JobState::Available, JobState::Running, JobState::Retryable]
            .iter()
            .all(|s| !c.contains_key(s))
    })
    .await;
    let settled = started.elapsed();
    let report = w.shutdown().await.unwrap();
    let c = counts(&rl).await;
    assert_eq!(c.get(&JobState::Completed), Some(&300), "{c:?}");
    assert_eq!(c.get(&JobState::Failed), Some(&20), "{c:?}");
    assert_eq!(c.get(&JobState::Scheduled), Some(&5), "{c:?}");
    assert_eq!(c.len(), 3, "nothing running or waiting: {c:?}");
    for n in 0..300 {
        assert_eq!(hits(&format!("{key}-{n}")), 1, "job {n} ran once");
    }
    for h in &handles {
        let row = job(&rl, h.id).await;
        let last = row.last_error().unwrap_or_default().to_owned();
        match row.kind.as_str() {
            "wholesome" => assert_eq!(row.state, JobState::Completed),
            "nul_output" => {
                assert_eq!((row.state, row.attempt), (JobState::Failed, 1), "{last}");
                assert!(last.contains("NUL character"), "{last}");
            }
            "nul_error" => {
                assert_eq!(row.state, JobState::Failed);
                assert_eq!(last, "bad\\0message");
            }
            "nul_panic" => {
                assert_eq!(row.state, JobState::Failed);
                assert_eq!(last, "handler panicked: bad\\0panic");
            }
            "lone_surrogate" => {
                assert_eq!((row.state, row.attempt), (JobState::Failed, 1), "{last}");
                assert!(last.contains("could not be stored"), "{last}");
            }
            "snooze_forever" => {
                assert_eq!(row.state, JobState::Scheduled);
                assert!(row.run_at.timestamp() > chrono::Utc::now().timestamp() + 50 * 31_536_000);
            }
            other => panic!("unexpected kind {other}"),
        }
    }
    assert_eq!(report.metrics.fenced, 0, "{:?}", report.metrics);
    println!("poison outcomes: 300 good + 25 poison settled in {settled:?}");
}

#[tokio::test]
async fn input_the_database_cannot_store_is_refused_with_a_typed_error() {
    let db = db().await;
    let rl = db.client();
    let refused = |result: Result<_, Error>, what: &str| match result {
        Err(Error::InvalidInput(message)) => {
            assert!(message.contains(what), "{message}");
        }
        Err(other) => panic!("expected InvalidInput about {what}, got {other:?}"),
        Ok(_) => panic!("expected InvalidInput about {what}, got Ok"),
    };
    let payload = Wholesome {
        key: "a\0b".into(),
        n: 1,
    };
    refused(
        payload.enqueue(&rl).await.map(|_| ()),
        "payload of kind `wholesome`",
    );
    let good = || Wholesome {
        key: "ok".into(),
        n: 1,
    };
    refused(
        good().enqueue(&rl).unique_key("k\0").await.map(|_| ()),
        "unique key",
    );
    refused(
        good()
            .enqueue(&rl)
            .run_at(chrono::DateTime::<chrono::Utc>::MIN_UTC)
            .await
            .map(|_| ()),
        "run_at",
    );
    refused(
        good()
            .enqueue(&rl)
            .run_in(Duration::from_secs(u64::MAX))
            .await
            .map(|_| ()),
        "run_in",
    );
    // In a batch, one bad row refuses the batch and writes nothing.
    let batch: Vec<runledger::JobRequest> = vec![
        good().into(),
        Wholesome {
            key: "\0".into(),
            n: 2,
        }
        .into(),
    ];
    refused(rl.enqueue_many(batch).await.map(|_| ()), "NUL");
    refused(
        rl.complete_gate(runledger::RunId(1), "gate\0")
            .await
            .map(|_| ()),
        "gate name",
    );
    assert!(counts(&rl).await.is_empty(), "nothing was written");
    // The boundaries themselves are accepted.
    good()
        .enqueue(&rl)
        .run_in(Duration::from_secs(3600 * 24 * 365 * 99))
        .await
        .unwrap();
    assert_eq!(common::count(&rl, JobState::Scheduled).await, 1);
}

/// Holds a connection of the worker's pool for `millis`, then returns its attempt.
#[job(queue = "hog")]
async fn pool_hog(ctx: &JobContext, key: String, millis: u64) -> Result<i32, JobError> {
    hit(&key);
    sqlx::query("SELECT pg_sleep($1)")
        .bind(millis as f64 / 1000.0)
        .execute(ctx.client().pool())
        .await?;
    Ok(ctx.attempt())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_holding_every_connection_do_not_lose_their_leases() {
    let db = db().await;
    let rl = db.client();
    let key = token("hog");
    let lease = Duration::from_secs(1);
    // The pool sized as the docs advise (queues + 10), and as many handlers as connections,
    // each holding one for 3.5x the lease.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(11)
        .connect(db.url())
        .await
        .unwrap();
    let n = 11;
    let handles = rl
        .enqueue_many((0..n).map(|_| PoolHog {
            key: key.clone(),
            millis: 3_500,
        }))
        .await
        .unwrap();
    let owner = Worker::builder(pool.clone())
        .queues(["hog"])
        .concurrency(n)
        .lease(lease)
        .start_ok()
        .await;
    wait_until(Duration::from_secs(10), "every job claimed", || async {
        common::count(&rl, JobState::Running).await == n as i64
    })
    .await;
    // A second worker, ready to rescue and run any job whose lease expires.
    let rescuer = Worker::builder(db.pool().clone())
        .queues(["hog"])
        .concurrency(n)
        .lease(lease)
        .rescue_interval(Duration::from_millis(100))
        .poll_interval(Duration::from_millis(100))
        .start_ok()
        .await;
    for h in &handles {
        let attempt = rl
            .handle::<PoolHog>(h.id)
            .wait_timeout(Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(attempt, 1, "job {} was claimed a second time", h.id);
    }
    let (a, b) = (
        owner.shutdown().await.unwrap().metrics,
        rescuer.shutdown().await.unwrap().metrics,
    );
    assert_eq!(
        (a.rescued, b.rescued, a.lease_lost),
        (0, 0, 0),
        "{a:?} {b:?}"
    );
    assert_eq!(hits(&key), n as u32, "each job ran once");
    pool.close().await;
}

/// Runs until stopped, counting how many attempts of `key` run at once.
#[job(queue = "guarded")]
async fn watched(ctx: &JobContext, key: String) -> Result<i32, JobError> {
    struct Active(String);
    impl Drop for Active {
        fn drop(&mut self) {
            ACTIVE.fetch_sub(1, Ordering::SeqCst);
            hit(&format!("{}-stopped", self.0));
        }
    }
    let now = ACTIVE.fetch_add(1, Ordering::SeqCst) + 1;
    MOST_ACTIVE.fetch_max(now, Ordering::SeqCst);
    let _active = Active(key.clone());
    hit(&key);
    if ctx.attempt() == 1 {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    Ok(ctx.attempt())
}

static ACTIVE: AtomicUsize = AtomicUsize::new(0);
static MOST_ACTIVE: AtomicUsize = AtomicUsize::new(0);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_cannot_renew_stops_the_attempt_before_the_lease_ends() {
    let db = db().await;
    let rl = db.client();
    let key = token("guard");
    let lease = Duration::from_secs(2);
    let first = Worker::builder(db.pool().clone())
        .queues(["guarded"])
        .lease(lease)
        .start_ok()
        .await;
    let handle = Watched { key: key.clone() }.enqueue(&rl).await.unwrap();
    wait_until(Duration::from_secs(10), "first attempt running", || async {
        hits(&key) == 1
    })
    .await;
    wait_until(Duration::from_secs(10), "a lease renewed", || async {
        let keepers: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'runledger lease keeper'",
        )
        .fetch_one(db.pool())
        .await
        .unwrap();
        keepers == 1
    })
    .await;
    // Cut the lease keeper off: no new connection to this database is allowed, and its
    // connection is closed. The worker's pool keeps the connections it has.
    // `ALTER DATABASE` runs from another database of the same server.
    let options: sqlx::postgres::PgConnectOptions = db.url().parse().unwrap();
    let mut admin_conn =
        <sqlx::PgConnection as sqlx::Connection>::connect_with(&options.database("postgres"))
            .await
            .unwrap();
    let admin = db.pool();
    // The database name is the test support's own, made of `[a-z0-9_]`.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE \"{}\" ALLOW_CONNECTIONS false",
        db.name()
    )))
    .execute(&mut admin_conn)
    .await
    .unwrap();
    let cut = Instant::now();
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = 'runledger lease keeper'",
    )
    .fetch_one(admin)
    .await
    .unwrap();
    assert_eq!(killed, 1, "the lease keeper has a connection of its own");
    wait_until(lease * 2, "the attempt stopped", || async {
        hits(&format!("{key}-stopped")) == 1
    })
    .await;
    let stopped = cut.elapsed();
    assert!(
        stopped < lease,
        "stopped {stopped:?} after the cut, lease {lease:?}"
    );
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE \"{}\" ALLOW_CONNECTIONS true",
        db.name()
    )))
    .execute(&mut admin_conn)
    .await
    .unwrap();
    // The job is rescued once its lease has expired, and runs again.
    let second = Worker::builder(db.pool().clone())
        .queues(["guarded"])
        .lease(lease)
        .rescue_interval(Duration::from_millis(200))
        .poll_interval(Duration::from_millis(100))
        .start_ok()
        .await;
    let attempt = rl
        .handle::<Watched>(handle.id())
        .wait_timeout(Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(attempt, 2);
    assert_eq!(
        MOST_ACTIVE.load(Ordering::SeqCst),
        1,
        "never two attempts at once"
    );
    let m = first.shutdown().await.unwrap().metrics;
    assert_eq!(m.lease_lost, 1, "{m:?}");
    second.shutdown().await.unwrap();
    assert!(
        job(&rl, handle.id()).await.errors[0]
            .to_string()
            .contains("lease expired")
    );
}

/// Blocks its thread (it cannot be stopped) for `millis`.
#[job(queue = "stubborn")]
async fn blocks_thread(millis: u64) -> Result<(), JobError> {
    std::thread::sleep(Duration::from_millis(millis));
    Ok(())
}

/// Sleeps (it can be stopped) for `millis`.
#[job(queue = "stubborn")]
async fn sleeps_politely(millis: u64) -> Result<(), JobError> {
    tokio::time::sleep(Duration::from_millis(millis)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 6)]
async fn shutdown_reports_the_jobs_it_handed_back() {
    let db = db().await;
    let rl = db.client();
    let mut jobs: Vec<runledger::JobRequest> = (0..6)
        .map(|_| SleepsPolitely { millis: 60_000 }.into())
        .collect();
    jobs.extend((0..2).map(|_| BlocksThread { millis: 2_000 }.into()));
    rl.enqueue_many(jobs).await.unwrap();
    let w = Worker::builder(db.pool().clone())
        .queues(["stubborn"])
        .concurrency(8)
        .shutdown_grace(Duration::from_millis(300))
        .start_ok()
        .await;
    wait_until(Duration::from_secs(10), "all eight running", || async {
        common::count(&rl, JobState::Running).await == 8
    })
    .await;
    let report = w.shutdown().await.unwrap();
    let c = counts(&rl).await;
    assert_eq!(c.get(&JobState::Available), Some(&6), "{c:?}");
    assert_eq!(c.get(&JobState::Completed), Some(&2), "{c:?}");
    assert_eq!(report.released, 6, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_server_at_start_says_too_many_clients() {
    let pg = runledger::EmbeddedPostgres::builder()
        .setting("max_connections", "4")
        .setting("superuser_reserved_connections", "0")
        .start()
        .unwrap();
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(
            <sqlx::PgConnection as sqlx::Connection>::connect(&pg.url())
                .await
                .unwrap(),
        );
    }
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(1))
        .connect_lazy(&pg.url())
        .unwrap();
    let message = runledger::migrate(&pool).await.unwrap_err().to_string();
    assert!(message.contains("too many clients"), "{message}");
    assert!(!message.contains("migration"), "{message}");
    drop(held);
    pool.close().await;
}

/// A kind that the workers of these tests leave alone, as if no binary had it linked in.
#[job(kind = "ghost.kind", queue = "haunted")]
async fn ghost(n: u32) -> Result<u32, JobError> {
    Ok(n)
}

/// An ordinary job on the same queue.
#[job(queue = "haunted")]
async fn living(n: u32) -> Result<u32, JobError> {
    Ok(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_no_worker_serves_are_reported_and_left_for_one_that_does() {
    let db = db().await;
    let rl = db.client();
    let ghost = Ghost { n: 1 }.enqueue(&rl).await.unwrap();
    let living = Living { n: 2 }.enqueue(&rl).await.unwrap();
    let w = Worker::builder(db.pool().clone())
        .queues(["haunted"])
        .exclude_kinds(["ghost.kind"])
        .unclaimed_after(Duration::from_millis(300))
        .start_ok()
        .await;
    assert_eq!(
        living.wait_timeout(Duration::from_secs(10)).await.unwrap(),
        2
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let unclaimed = rl
        .unclaimed_kinds(Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(unclaimed.len(), 1, "{unclaimed:?}");
    assert_eq!(
        (
            unclaimed[0].queue.as_str(),
            unclaimed[0].kind.as_str(),
            unclaimed[0].jobs
        ),
        ("haunted", "ghost.kind", 1)
    );
    // Not yet past a longer threshold.
    assert!(
        rl.unclaimed_kinds(Duration::from_secs(600))
            .await
            .unwrap()
            .is_empty()
    );
    let row = job(&rl, ghost.id()).await;
    assert_eq!(
        (row.state, row.attempt),
        (JobState::Available, 0),
        "left untouched"
    );
    w.shutdown().await.unwrap();
    // A worker that knows the kind runs it; nothing is reported any more.
    let w = Worker::builder(db.pool().clone())
        .queues(["haunted"])
        .start_ok()
        .await;
    assert_eq!(
        ghost.wait_timeout(Duration::from_secs(10)).await.unwrap(),
        1
    );
    assert!(rl.unclaimed_kinds(Duration::ZERO).await.unwrap().is_empty());
    w.shutdown().await.unwrap();
}

/// Log lines written while a test runs (on its own thread).
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// A single-threaded runtime, so that every task of the worker logs to this test's subscriber.
#[tokio::test(flavor = "current_thread")]
async fn renewals_racing_completions_report_no_lost_lease() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let db = db().await;
    let rl = db.client();
    let key = token("brisk");
    // Renewals every ~170 ms while thousands of outcomes are written around them.
    let w = Worker::builder(db.pool().clone())
        .queues(["poison"])
        .concurrency(20)
        .lease(Duration::from_millis(500))
        .start_ok()
        .await;
    for round in 0..4u32 {
        let handles = rl
            .enqueue_many((0..1000).map(|n| Wholesome {
                key: key.clone(),
                n: round * 1000 + n,
            }))
            .await
            .unwrap();
        for h in handles.iter().rev().take(1) {
            rl.handle::<Wholesome>(h.id)
                .wait_timeout(Duration::from_secs(30))
                .await
                .unwrap();
        }
    }
    wait_until(Duration::from_secs(30), "all completed", || async {
        common::count(&rl, JobState::Completed).await == 4000
    })
    .await;
    let m = w.shutdown().await.unwrap().metrics;
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        !logs.contains("lease lost"),
        "false lease losses logged:\n{logs}"
    );
    assert_eq!((m.lease_lost, m.fenced), (0, 0), "{m:?}");
}

/// Charges a card whose number must stay out of logs.
#[job(sensitive, queue = "secret", max_attempts = 1, unique(by = [card]))]
async fn charge_secret(card: String, cents: i64) -> Result<String, JobError> {
    Ok(format!("charged {cents} to {card}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sensitive_jobs_keep_their_values_out_of_debug_output_and_errors() {
    let db = db().await;
    let rl = db.client();
    let card = "4111111111111111";
    let payload = ChargeSecret {
        card: card.into(),
        cents: 1999,
    };
    let shown = [
        format!("{payload:?}"),
        format!("{:?}", runledger::JobRequest::new(payload.clone())),
        format!(
            "{:?}",
            runledger::Schedule::new("nightly", "0 0 3 * * *", payload.clone())
        ),
    ];
    for text in &shown {
        assert!(!text.contains(card) && !text.contains("1999"), "{text}");
    }
    assert_eq!(shown[0], "ChargeSecret { .. }");
    // A kind that is not sensitive shows its payload.
    assert!(
        format!(
            "{:?}",
            Wholesome {
                key: "k".into(),
                n: 7
            }
        )
        .contains("n: 7")
    );

    let stored = payload.enqueue(&rl).await.unwrap();
    let record = format!("{:?}", job(&rl, stored.id()).await);
    assert!(!record.contains(card), "{record}");
    // The stored payload drifts from the type: the error names no value.
    sqlx::query("UPDATE runledger.jobs SET args = '{\"card\": 4242424242, \"cents\": 1}'")
        .execute(db.pool())
        .await
        .unwrap();
    let w = Worker::builder(db.pool().clone())
        .queues(["secret"])
        .start_ok()
        .await;
    let error = stored
        .wait_timeout(Duration::from_secs(10))
        .await
        .unwrap_err()
        .to_string();
    w.shutdown().await.unwrap();
    assert!(error.contains("does not deserialize"), "{error}");
    assert!(error.contains("line 1 column"), "{error}");
    assert!(!error.contains("4242"), "{error}");
}

#[tokio::test]
async fn the_readme_quick_start_sizes_its_pool_as_the_worker_advises() {
    let readme = include_str!("../README.md");
    let start = readme.find("```rust").expect("a rust block");
    let block = &readme[start..start + readme[start..].find("\n```\n").unwrap()];
    let number_after = |needle: &str| -> u32 {
        let at = block
            .find(needle)
            .unwrap_or_else(|| panic!("`{needle}` in:\n{block}"))
            + needle.len();
        block[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap()
    };
    let pool_size = number_after(".max_connections(");
    let queues_at = block.find(".queues([").expect("the worker's queues") + ".queues([".len();
    let queues: Vec<&str> = block[queues_at..block[queues_at..].find(']').unwrap() + queues_at]
        .split(',')
        .map(str::trim)
        .collect();
    let db = db().await;
    let worker = Worker::builder(db.pool().clone())
        .queues(queues.iter().map(|q| q.trim_matches('"')))
        .build()
        .unwrap();
    assert!(
        pool_size >= worker.advised_pool_size(),
        "the README's pool has {pool_size} connections; a worker on {queues:?} advises {}",
        worker.advised_pool_size()
    );
}
