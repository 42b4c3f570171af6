//! Helpers shared by the integration tests.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use runledger::Runledger;
use runledger::job::{JobId, JobRecord, JobState};
use runledger::testing::TestDatabase;

/// A fresh migrated database; logs go to the test output when `RUST_LOG` is set.
pub async fn db() -> TestDatabase {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    }
    TestDatabase::new().await.expect("test database")
}

/// A process-unique token, so that jobs of different tests never share counters.
pub fn token(name: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{name}-{}", N.fetch_add(1, Ordering::Relaxed))
}

fn hits_map() -> &'static Mutex<HashMap<String, u32>> {
    static HITS: OnceLock<Mutex<HashMap<String, u32>>> = OnceLock::new();
    HITS.get_or_init(Default::default)
}

/// Counts one execution under `key`; returns the new count.
pub fn hit(key: &str) -> u32 {
    let mut map = hits_map().lock().unwrap();
    let n = map.entry(key.to_owned()).or_default();
    *n += 1;
    *n
}

/// Executions counted under `key`.
pub fn hits(key: &str) -> u32 {
    hits_map().lock().unwrap().get(key).copied().unwrap_or(0)
}

/// Polls `check` every 20 ms until it is true; panics after `timeout` with `what`.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Job counts by state.
pub async fn counts(rl: &Runledger) -> HashMap<JobState, i64> {
    runledger::testing::count_by_state(rl)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

/// Jobs in `state`.
pub async fn count(rl: &Runledger, state: JobState) -> i64 {
    counts(rl).await.get(&state).copied().unwrap_or(0)
}

/// The stored job.
pub async fn job(rl: &Runledger, id: JobId) -> JobRecord {
    rl.job(id).await.unwrap().expect("job exists")
}

/// The body of a child worker process: when this test binary was started by
/// [`spawn_child_worker`], runs a worker (concurrency 4, lease 1 s) on the given database until
/// the process is killed; otherwise returns at once.
pub async fn child_worker_main() {
    let Ok(url) = std::env::var("RUNLEDGER_CHILD_DATABASE_URL") else {
        return;
    };
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let worker = runledger::Worker::builder(pool)
        .concurrency(4)
        .lease(Duration::from_secs(1))
        .migrate(false)
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    // Run until killed.
    tokio::time::sleep(Duration::from_secs(120)).await;
    worker.shutdown().await.unwrap();
}

/// Starts this test binary again as a separate process running only the ignored test `entry`
/// (which calls [`child_worker_main`]) against the database at `url`.
pub fn spawn_child_worker(entry: &str, url: &str) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            entry,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("RUNLEDGER_CHILD_DATABASE_URL", url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Builds and starts a worker, panicking on either error.
pub trait StartOk {
    async fn start_ok(self) -> runledger::worker::RunningWorker;
}

impl StartOk for runledger::worker::WorkerBuilder {
    async fn start_ok(self) -> runledger::worker::RunningWorker {
        self.build().unwrap().start().await.unwrap()
    }
}

/// Flushes this connection's pending statistics and drops its cached view of them, so that the
/// next read of the statistics sees everything the connection did.
pub async fn flush_stats(conn: &mut sqlx::PgConnection) {
    for statement in [
        "SELECT pg_stat_force_next_flush()",
        "SELECT pg_stat_clear_snapshot()",
    ] {
        sqlx::query(statement).execute(&mut *conn).await.unwrap();
    }
}
