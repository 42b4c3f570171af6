//! Test support (feature `testing`): a fresh migrated database per test, one job run through
//! the real JSON round trip, inline drains of a queue, and assertions on what was enqueued.
//!
//! With `DATABASE_URL` set, test databases are created on that server; otherwise on one
//! embedded cluster per test process, started on first use and removed when the process exits.
//!
//! ```no_run
//! use runledger::testing::TestDatabase;
//! # #[runledger::job] async fn greet(name: String) -> Result<String, runledger::JobError> { Ok(name) }
//!
//! # async fn demo() -> Result<(), runledger::Error> {
//! let db = TestDatabase::new().await?;
//! let rl = db.client();
//! Greet { name: "Ada".into() }.enqueue(&rl).await?;
//! runledger::testing::assert_enqueued::<Greet>(&rl, |job| job.name == "Ada").await?;
//! let report = runledger::testing::drain(&rl, ["default"]).await?;
//! assert_eq!(report.completed, 1);
//! # Ok(()) }
//! ```

pub mod durable;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::client::Runledger;
#[cfg(unix)]
use crate::embedded::EmbeddedPostgres;
use crate::error::Error;
use crate::job::JobState;
use crate::job::{Job, JobContext, JobError, JobId, StateMap, StopReason, Storable};
use crate::runtime::Worker;
use crate::store;

/// The server test databases are created on: `DATABASE_URL`, or the embedded cluster.
fn server_url() -> Result<String, Error> {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return Ok(url);
    }
    #[cfg(unix)]
    {
        static CLUSTER: OnceLock<Result<EmbeddedPostgres, String>> = OnceLock::new();
        match CLUSTER.get_or_init(|| EmbeddedPostgres::start().map_err(|e| e.to_string())) {
            Ok(pg) => Ok(pg.url()),
            Err(e) => Err(Error::Embedded(e.clone())),
        }
    }
    #[cfg(not(unix))]
    Err(Error::Embedded(
        "the embedded server runs on Unix only; set DATABASE_URL to a server where test \
         databases may be created"
            .into(),
    ))
}

/// `url` with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..].find('/').map(|i| i + scheme_end);
    let host_part = path_start.map_or(base, |i| &base[..i]);
    match query {
        Some(q) => format!("{host_part}/{name}?{q}"),
        None => format!("{host_part}/{name}"),
    }
}

/// The template every test database is copied from: named after the migrations' checksums, so
/// a changed migration gets a new template.
fn template_name() -> String {
    let migrator = sqlx::migrate!("../migrations");
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for m in migrator.iter() {
        for b in m.version.to_le_bytes().iter().chain(m.checksum.iter()) {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("runledger_template_{:012x}", hash & 0xffff_ffff_ffff)
}

/// A fresh database with runledger's schema, dropped when the value is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    pool: PgPool,
    name: String,
    url: String,
    admin_url: String,
}

impl TestDatabase {
    /// Creates a database copied from the migrated template (made on first use), on the server
    /// of `DATABASE_URL` or else on the process's embedded cluster.
    pub async fn new() -> Result<Self, Error> {
        Self::on_server(&server_url()?).await
    }

    /// Creates a database on the server at `admin_url` (any database URL on that server whose
    /// user may create databases).
    pub async fn on_server(admin_url: &str) -> Result<Self, Error> {
        let admin_url = admin_url.to_owned();
        let template = template_name();
        let mut admin = store::admin::connect(&admin_url).await?;
        if !store::admin::database_exists(&mut admin, &template).await? {
            // One process at a time makes the template.
            let key = 0x7275_6e6c_6564_6700_i64;
            store::admin::lock(&mut admin, key).await?;
            let made = async {
                if !store::admin::database_exists(&mut admin, &template).await? {
                    let building = format!("{template}_build");
                    store::admin::drop_database(&mut admin, &building).await?;
                    store::admin::create_database(&mut admin, &building, None).await?;
                    let pool = PgPoolOptions::new()
                        .max_connections(1)
                        .connect(&with_database(&admin_url, &building))
                        .await?;
                    let migrated = store::migrate(&pool).await;
                    pool.close().await;
                    migrated?;
                    // Renamed only once complete, so no one copies a half-made template.
                    store::admin::create_database(&mut admin, &template, Some(&building)).await?;
                    store::admin::drop_database(&mut admin, &building).await?;
                }
                Ok::<(), Error>(())
            }
            .await;
            store::admin::unlock(&mut admin, key).await?;
            made?;
        }
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "runledger_test_{}_{}_{:04x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            crate::random::random_u64() & 0xffff
        );
        store::admin::create_database(&mut admin, &name, Some(&template)).await?;
        let url = with_database(&admin_url, &name);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(&url)
            .await?;
        Ok(TestDatabase {
            pool,
            name,
            url,
            admin_url,
        })
    }

    /// A pool on this database.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A client on this database.
    pub fn client(&self) -> Runledger {
        Runledger::new(self.pool.clone())
    }

    /// The database's connection URL (to hand to a child process, say).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        self.pool.close_event();
        // Dropping needs a connection of its own; do it on a short-lived thread with its own
        // runtime, so that drop works inside or outside an async test.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    if let Ok(mut admin) = store::admin::connect(&admin_url).await {
                        let _ = store::admin::drop_database(&mut admin, &name).await;
                    }
                });
            }
        })
        .join();
    }
}

/// Runs `job`'s handler once, here, through the same JSON round trip a worker uses (payload
/// serialized and deserialized, output serialized and deserialized), without touching the jobs
/// table. `state` is what `State<T>` parameters receive.
pub async fn run_job<J: Job>(rl: &Runledger, job: J) -> Result<J::Output, JobError> {
    JobRunner::new(rl).run(job).await
}

/// Runs handlers inline with injected state; see [`run_job`].
#[derive(Debug)]
pub struct JobRunner {
    client: Runledger,
    state: StateMap,
    attempt: i32,
}

impl JobRunner {
    /// A runner with no state, as attempt 1.
    pub fn new(rl: &Runledger) -> Self {
        JobRunner {
            client: rl.clone(),
            state: StateMap::default(),
            attempt: 1,
        }
    }

    /// Adds a value for `State<T>` parameters.
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.state.insert(value);
        self
    }

    /// Pretends to be attempt `attempt`.
    pub fn attempt(mut self, attempt: i32) -> Self {
        self.attempt = attempt;
        self
    }

    /// Runs `job` once.
    pub async fn run<J: Job>(&self, job: J) -> Result<J::Output, JobError> {
        let json = serde_json::to_value(&job).map_err(JobError::fatal)?;
        let job: J = serde_json::from_value(json).map_err(JobError::fatal)?;
        let (_stop_tx, stop) = tokio::sync::watch::channel::<Option<StopReason>>(None);
        let ctx = JobContext {
            id: JobId(0),
            kind: J::KIND,
            queue: J::OPTIONS.queue.to_owned(),
            attempt: self.attempt,
            max_attempts: J::OPTIONS.max_attempts,
            state: std::sync::Arc::new(self.state.clone()),
            client: self.client.clone(),
            stop,
            lease: Duration::from_secs(30),
            journal: None,
        };
        let output = job.run(&ctx).await?;
        let json = Storable::to_value(&output).map_err(JobError::fatal)?;
        Storable::from_value(json).map_err(JobError::fatal)
    }
}

/// What [`drain`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DrainReport {
    /// Attempts that completed.
    pub completed: u64,
    /// Attempts that failed (retried later, or failed for good).
    pub failed: u64,
    /// Attempts that ended cancelled.
    pub cancelled: u64,
    /// Attempts that snoozed.
    pub snoozed: u64,
}

/// Runs every job that is available now in `queues` on a real worker (all linked kinds, no
/// injected state) until none is available or running, then stops it. Jobs scheduled for later,
/// including retries, are left for later.
pub async fn drain<I, S>(rl: &Runledger, queues: I) -> Result<DrainReport, Error>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    drain_with(Worker::builder(rl.pool().clone()).queues(queues)).await
}

/// [`drain`] with a configured worker builder (state, kinds, concurrency).
pub async fn drain_with(builder: crate::runtime::WorkerBuilder) -> Result<DrainReport, Error> {
    let worker = builder.poll_interval(Duration::from_millis(50)).build()?;
    let pool = worker.pool().clone();
    let queues = worker.queues().to_vec();
    let kinds: Vec<String> = worker.kinds().iter().map(|k| (*k).to_owned()).collect();
    let running = worker.start().await?;
    loop {
        let pending = store::jobs::count_pending(&pool, &queues, &kinds).await?;
        if pending == 0 && running.running() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let report = running.shutdown().await?;
    Ok(DrainReport {
        completed: report.metrics.completed,
        failed: report.metrics.retried + report.metrics.failed,
        cancelled: report.metrics.cancelled,
        snoozed: report.metrics.snoozed,
    })
}

/// Runs one pass of the cron scheduler now, as the leader would, whoever the leader is: fires
/// every due schedule. Returns the number of schedules that were due. Running it from several
/// tasks at once shows that each slot still enqueues exactly one job.
pub async fn fire_due_schedules(rl: &Runledger) -> Result<usize, Error> {
    crate::maintenance::scheduler::fire_due(
        rl.pool(),
        "testing",
        None,
        crate::maintenance::scheduler::on_time_window(Duration::from_secs(15)),
    )
    .await
}

/// The payloads of `J` jobs that are waiting to run or running (not finished), oldest first.
pub async fn enqueued<J: Job>(rl: &Runledger) -> Result<Vec<J>, Error> {
    let states: Vec<&str> = JobState::ALL
        .into_iter()
        .filter(|s| !s.is_finished())
        .map(JobState::as_str)
        .collect();
    let rows = store::jobs::list(rl.pool(), Some(J::KIND), Some(&states), 10_000).await?;
    rows.into_iter()
        .map(|row| {
            serde_json::from_value(row.args).map_err(|e| {
                Error::json(format!("payload of job {} does not deserialize", row.id), e)
            })
        })
        .collect()
}

/// Asserts that some unfinished `J` job matches `predicate`; panics with the payloads found
/// otherwise.
pub async fn assert_enqueued<J: Job + std::fmt::Debug>(
    rl: &Runledger,
    predicate: impl Fn(&J) -> bool,
) -> Result<(), Error> {
    let jobs = enqueued::<J>(rl).await?;
    assert!(
        jobs.iter().any(&predicate),
        "no enqueued `{}` job matches; found {} of that kind: {:?}",
        J::KIND,
        jobs.len(),
        jobs
    );
    Ok(())
}

/// Asserts that no unfinished `J` job exists.
pub async fn refute_enqueued<J: Job + std::fmt::Debug>(rl: &Runledger) -> Result<(), Error> {
    let jobs = enqueued::<J>(rl).await?;
    assert!(
        jobs.is_empty(),
        "expected no enqueued `{}` job, found {}: {:?}",
        J::KIND,
        jobs.len(),
        jobs
    );
    Ok(())
}

/// Checks the jobs and workflows linked into this binary as every worker would at build, with
/// no database and no worker settings: no two job kinds (aliases included) or two workflows
/// share a name, and every declared cron schedule parses. Two `#[job] async fn sync` in
/// different modules both claim the kind `sync`; this finds them in a one-line test, before
/// any worker refuses to build:
///
/// ```
/// // In tests/registry.rs, under `#[test]`:
/// fn jobs_and_workflows_are_registered_once() {
///     runledger::testing::check_registrations().unwrap();
/// }
/// # jobs_and_workflows_are_registered_once();
/// ```
pub fn check_registrations() -> Result<(), Error> {
    let table = crate::registry::table(crate::registry::all())?;
    crate::workflow::check_registrations()?;
    for reg in table.values() {
        if let Some(schedule) = crate::schedule::Schedule::declared(reg) {
            schedule.check()?;
        }
    }
    Ok(())
}

/// Counts of jobs by state.
pub async fn count_by_state(rl: &Runledger) -> Result<Vec<(JobState, i64)>, Error> {
    store::admin::count_by_state(rl.pool())
        .await?
        .into_iter()
        .map(|(s, n)| Ok((JobState::parse(&s)?, n)))
        .collect()
}

/// Live and dead rows of the jobs table, as PostgreSQL's statistics last counted them (they lag
/// by up to a second or so): how much the table carries, and how much vacuum has to reclaim.
pub async fn jobs_table_tuples(rl: &Runledger) -> Result<(i64, i64), Error> {
    let jobs = store::vacuum::HotTable::Jobs.name();
    Ok(store::vacuum::health(rl.pool())
        .await?
        .into_iter()
        .find(|h| h.table_name == jobs)
        .map_or((0, 0), |h| (h.live, h.dead)))
}

/// Transactions the current database has seen (committed or rolled back), as PostgreSQL's
/// statistics last counted them: the difference between two readings, less the readings
/// themselves, is what the clients sent in between (each statement outside a transaction is one).
pub async fn database_transactions(rl: &Runledger) -> Result<i64, Error> {
    store::admin::database_transactions(rl.pool()).await
}

/// Statements the current database has executed, counted by `pg_stat_statements`; `None`
/// when the server was not started with it in `shared_preload_libraries`. More exact than
/// [`database_transactions`], which also counts autovacuum's transactions.
pub async fn statement_calls(rl: &Runledger) -> Result<Option<i64>, Error> {
    store::admin::statement_calls(rl.pool()).await
}

/// Workflow runs still running.
pub async fn count_open_runs(rl: &Runledger) -> Result<i64, Error> {
    crate::store::workflows::count_running(rl.pool()).await
}
