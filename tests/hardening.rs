//! Hardening beside the fault suite (`tests/reliability`): input the database cannot store,
//! shutdown's report, start-up against a full server, no false lease losses in the log,
//! sensitive jobs, and the README's pool.

mod common;

use std::time::Duration;

use common::{StartOk, count, counts, db, hit, job, token, wait_until};
use runledger::job::JobState;
use runledger::{Error, JobError, Worker, job};

/// An ordinary job.
#[job(queue = "poison")]
async fn wholesome(key: String, n: u32) -> Result<u32, JobError> {
    hit(&format!("{key}-{n}"));
    Ok(n)
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
    let batch: Vec<runledger::job::JobRequest> = vec![
        good().into(),
        Wholesome {
            key: "\0".into(),
            n: 2,
        }
        .into(),
    ];
    refused(rl.enqueue_many(batch).await.map(|_| ()), "NUL");
    refused(
        rl.complete_gate(runledger::workflow::RunId(1), "gate\0")
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
    let mut jobs: Vec<runledger::job::JobRequest> = (0..6)
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
    let pg = runledger::embedded::EmbeddedPostgres::builder()
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
        format!("{:?}", runledger::job::JobRequest::new(payload.clone())),
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

/// The completer's write finds each attempt by its primary key, whatever the statistics say and
/// however many attempts a batch holds. `ANALYZE` taken while a queue is full and nothing runs
/// yet (the start of every burst) says that almost no job is running; planned on it, the write
/// read every running job instead, once per attempt. Planned for a batch of 100 on a table of
/// a few thousand rows, it hashed the whole table.
#[tokio::test]
async fn completion_writes_never_scan_the_jobs_table() {
    let db = db().await;
    let rl = db.client();
    let pool = db.pool();
    let key = token("plan");
    rl.enqueue_many((0..5_000).map(|n| Wholesome {
        key: key.clone(),
        n,
    }))
    .await
    .unwrap();
    sqlx::query("ANALYZE runledger.jobs")
        .execute(pool)
        .await
        .unwrap();
    let mut running = Vec::new();
    for _ in 0..3 {
        running.extend(
            runledger::__bench::claim(pool, "poison", &["wholesome"], 100)
                .await
                .unwrap(),
        );
    }
    assert_eq!(running.len(), 300);
    // A connection of its own, in one transaction: the scans it counts are those of these
    // writes, from the first execution of the statement on a connection.
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(db.url())
        .await
        .unwrap();
    let mut tx = sqlx::Connection::begin(&mut conn).await.unwrap();
    for batch in running.chunks(100) {
        let written = runledger::__bench::complete_on(&mut tx, batch)
            .await
            .unwrap();
        assert_eq!(written, 100);
    }
    let (seq_scans, index_scans): (i64, i64) = sqlx::query_as(
        "SELECT seq_scan, idx_scan FROM pg_stat_xact_user_tables \
         WHERE schemaname = 'runledger' AND relname = 'jobs'",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(seq_scans, 0, "the jobs table was scanned");
    assert!(index_scans > 0, "the attempts were looked up by key");
    assert_eq!(count(&rl, JobState::Completed).await, 300);
}
