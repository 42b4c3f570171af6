//! What every scenario shares: the row it reports, fresh databases (or a private cluster for
//! scenarios that stop the server), the audit of terminal transitions, the record of executions,
//! child worker processes, and waiting.

use std::future::Future;
use std::pin::Pin;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use runledger::embedded::EmbeddedPostgres;
use runledger::testing::TestDatabase;
use runledger::{JobContext, Worker};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// What one scenario measured. `dup recorded`, `stuck` and `lost` must be 0, and `recovery`
/// within `bound` when both are set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub scenario: &'static str,
    /// Jobs the scenario put in (and expects to end in a terminal state).
    pub jobs_in: u64,
    /// Of those, jobs that ended `completed`.
    pub completed: u64,
    /// Executions beyond the first of each job (at-least-once delivery allows them).
    pub dup_executed: u64,
    /// Jobs whose terminal state was recorded more than once, or that left a terminal state.
    pub dup_recorded: u64,
    /// Jobs not in a terminal state at the end, and workflow runs not finished.
    pub stuck: u64,
    /// Jobs that are missing, or that ended other than `completed` where completion was due.
    pub lost: u64,
    /// How long the system took to recover from the fault.
    pub recovery: Option<Duration>,
    /// The most `recovery` may be.
    pub bound: Option<Duration>,
}

impl Row {
    /// The row with its recovery time and the bound it must stay within.
    pub fn recovered(mut self, took: Duration, bound: Duration) -> Self {
        self.recovery = Some(took);
        self.bound = Some(bound);
        self
    }

    /// What is wrong with the row itself, if anything.
    pub fn violations(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (what, n) in [
            ("dup recorded", self.dup_recorded),
            ("stuck", self.stuck),
            ("lost", self.lost),
        ] {
            if n != 0 {
                out.push(format!("{what} = {n}, must be 0"));
            }
        }
        if let (Some(took), Some(bound)) = (self.recovery, self.bound)
            && took > bound
        {
            out.push(format!(
                "recovery took {:.1} s, over the bound of {:.1} s",
                took.as_secs_f64(),
                bound.as_secs_f64()
            ));
        }
        out
    }
}

/// A scenario: its name and the function that runs it.
pub type Scenario = (
    &'static str,
    fn() -> Pin<Box<dyn Future<Output = Row> + Send>>,
);

/// One line of the table, with a scenario column `width` characters wide.
pub fn format_row(row: &Row, width: usize) -> String {
    let recovery = match (row.recovery, row.bound) {
        (Some(took), Some(bound)) => {
            format!("{:.1} (<= {})", took.as_secs_f64(), seconds(bound))
        }
        (Some(took), None) => format!("{:.1}", took.as_secs_f64()),
        _ => "-".to_owned(),
    };
    let counts = [
        row.jobs_in,
        row.completed,
        row.dup_executed,
        row.dup_recorded,
        row.stuck,
        row.lost,
    ]
    .map(|n| n.to_string());
    format_line(row.scenario, &counts, &recovery, width)
}

/// The table's header, aligned with [`format_row`].
pub fn format_header(width: usize) -> String {
    let titles = [
        "in",
        "completed",
        "dup executed",
        "dup recorded",
        "stuck",
        "lost",
    ]
    .map(str::to_owned);
    format_line("scenario", &titles, "recovery s", width)
}

/// The line of a scenario that failed before it produced a row.
pub fn format_failed(name: &str, width: usize) -> String {
    format_line(name, &[(); 6].map(|()| "-".to_owned()), "-", width)
}

fn format_line(name: &str, cells: &[String; 6], recovery: &str, width: usize) -> String {
    let [jobs_in, completed, dup_executed, dup_recorded, stuck, lost] = cells;
    format!(
        "{name:<width$} | {jobs_in:>4} | {completed:>9} | {dup_executed:>12} | \
         {dup_recorded:>12} | {stuck:>5} | {lost:>4} | {recovery}"
    )
}

fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s:.1}")
    }
}

// ---- databases -------------------------------------------------------------------------------

/// A fresh migrated database on the process's embedded cluster, with the audit installed.
pub async fn fresh_db() -> TestDatabase {
    let db = TestDatabase::new().await.expect("test database");
    install_audit(db.pool()).await;
    db
}

/// Starts a cluster of the scenario's own (for scenarios that stop or restart the server).
pub async fn private_cluster() -> EmbeddedPostgres {
    tokio::task::spawn_blocking(EmbeddedPostgres::start)
        .await
        .expect("cluster start task")
        .expect("private cluster")
}

/// A pool on `url` whose acquires give up after 3 s (the default 30 s would stall a worker for
/// the whole of a server outage on one acquire).
pub async fn pool(url: &str, max: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(3))
        .connect(url)
        .await
        .expect("pool")
}

/// A migrated database on a private cluster with the audit installed; returns its pool.
pub async fn prepare_private(pg: &EmbeddedPostgres, max: u32) -> PgPool {
    let pool = pool(&pg.url(), max).await;
    runledger::migrate(&pool).await.expect("migrations");
    install_audit(&pool).await;
    pool
}

/// Installs the audit: a table of every transition of a job into a terminal state (and out of
/// one, which must never happen), written by a trigger on `runledger.jobs`, and the table
/// handlers record their executions in.
pub async fn install_audit(pool: &PgPool) {
    sqlx::raw_sql(
        r#"
        CREATE TABLE IF NOT EXISTS public.reliability_audit (
            seq       bigserial   PRIMARY KEY,
            job_id    bigint      NOT NULL,
            attempt   integer     NOT NULL,
            old_state text,
            new_state text        NOT NULL,
            at        timestamptz NOT NULL DEFAULT clock_timestamp()
        );
        CREATE INDEX IF NOT EXISTS reliability_audit_job ON public.reliability_audit (job_id);
        CREATE TABLE IF NOT EXISTS public.reliability_executions (
            seq     bigserial   PRIMARY KEY,
            job_id  bigint      NOT NULL,
            attempt integer     NOT NULL,
            pid     integer     NOT NULL,
            at      timestamptz NOT NULL DEFAULT clock_timestamp()
        );
        CREATE INDEX IF NOT EXISTS reliability_executions_job
            ON public.reliability_executions (job_id);
        CREATE OR REPLACE FUNCTION public.reliability_audit_transition() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO public.reliability_audit (job_id, attempt, old_state, new_state)
            VALUES (NEW.id, NEW.attempt,
                    CASE WHEN TG_OP = 'UPDATE' THEN OLD.state END, NEW.state);
            RETURN NULL;
        END $$;
        DROP TRIGGER IF EXISTS reliability_audit_insert ON runledger.jobs;
        CREATE TRIGGER reliability_audit_insert AFTER INSERT ON runledger.jobs
            FOR EACH ROW WHEN (NEW.state IN ('completed', 'failed', 'cancelled'))
            EXECUTE FUNCTION public.reliability_audit_transition();
        DROP TRIGGER IF EXISTS reliability_audit_update ON runledger.jobs;
        CREATE TRIGGER reliability_audit_update AFTER UPDATE ON runledger.jobs
            FOR EACH ROW WHEN (
                (NEW.state IN ('completed', 'failed', 'cancelled')
                 AND (OLD.state IS DISTINCT FROM NEW.state
                      OR OLD.attempt IS DISTINCT FROM NEW.attempt
                      OR OLD.finished_at IS DISTINCT FROM NEW.finished_at
                      OR OLD.output IS DISTINCT FROM NEW.output))
                OR (OLD.state IN ('completed', 'failed', 'cancelled')
                    AND NEW.state NOT IN ('completed', 'failed', 'cancelled')))
            EXECUTE FUNCTION public.reliability_audit_transition();
        "#,
    )
    .execute(pool)
    .await
    .expect("install the audit");
}

/// Records one execution of the running attempt (job id, attempt, process) in the database,
/// through the worker's own pool; retried while the database is unreachable.
pub async fn executed(ctx: &JobContext) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let inserted = sqlx::query(
            "INSERT INTO public.reliability_executions (job_id, attempt, pid) VALUES ($1, $2, $3)",
        )
        .bind(ctx.id().0)
        .bind(ctx.attempt())
        .bind(std::process::id() as i32)
        .execute(ctx.client().pool())
        .await;
        if inserted.is_ok() || Instant::now() > deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Executions recorded for job `id`.
pub async fn executions(pool: &PgPool, id: i64) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM public.reliability_executions WHERE job_id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap_or(0)
}

/// What a scenario expects of its jobs and runs at the end.
#[derive(Debug, Clone, Default)]
pub struct Expect {
    /// Jobs that must end `completed`.
    pub complete: Vec<i64>,
    /// Jobs that must end in a terminal state, whichever.
    pub finish: Vec<i64>,
    /// Workflow runs that must be finished.
    pub runs: Vec<i64>,
}

impl Expect {
    /// Every job in `ids` must complete.
    pub fn completed(ids: impl IntoIterator<Item = i64>) -> Self {
        Expect {
            complete: ids.into_iter().collect(),
            ..Expect::default()
        }
    }

    /// Every job in `ids` must finish.
    pub fn finished(ids: impl IntoIterator<Item = i64>) -> Self {
        Expect {
            finish: ids.into_iter().collect(),
            ..Expect::default()
        }
    }
}

/// Measures the row of `scenario` from the database: the jobs and runs of `expect`, the audit
/// and the executions.
pub async fn measure(scenario: &'static str, pool: &PgPool, expect: &Expect) -> Row {
    let mut ids: Vec<i64> = expect.complete.clone();
    ids.extend(&expect.finish);
    let must_complete: Vec<bool> = expect
        .complete
        .iter()
        .map(|_| true)
        .chain(expect.finish.iter().map(|_| false))
        .collect();
    let (jobs_in, completed, stuck, lost): (i64, i64, i64, i64) = sqlx::query_as(
        r#"
        SELECT count(*),
               count(*) FILTER (WHERE j.state = 'completed'),
               count(*) FILTER (WHERE j.id IS NOT NULL
                                  AND j.state NOT IN ('completed', 'failed', 'cancelled')),
               count(*) FILTER (WHERE j.id IS NULL
                                   OR (e.must_complete AND j.state IN ('failed', 'cancelled')))
        FROM unnest($1::int8[], $2::bool[]) AS e(id, must_complete)
        LEFT JOIN runledger.jobs j ON j.id = e.id
        "#,
    )
    .bind(&ids)
    .bind(&must_complete)
    .fetch_one(pool)
    .await
    .expect("measure jobs");
    let dup_executed: i64 = sqlx::query_scalar(
        "SELECT COALESCE(sum(n - 1), 0)::int8 FROM ( \
             SELECT count(*) AS n FROM public.reliability_executions \
             WHERE job_id = ANY($1) GROUP BY job_id) x",
    )
    .bind(&ids)
    .fetch_one(pool)
    .await
    .expect("measure executions");
    let dup_recorded: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM ( \
             SELECT job_id FROM public.reliability_audit GROUP BY job_id \
             HAVING count(*) FILTER (WHERE new_state IN ('completed', 'failed', 'cancelled')) > 1 \
                 OR bool_or(old_state IN ('completed', 'failed', 'cancelled'))) x",
    )
    .fetch_one(pool)
    .await
    .expect("measure the audit");
    let open_runs: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM unnest($1::int8[]) AS r(id) \
         LEFT JOIN runledger.workflow_runs w ON w.id = r.id \
         WHERE w.id IS NULL OR w.state = 'running'",
    )
    .bind(&expect.runs)
    .fetch_one(pool)
    .await
    .expect("measure runs");
    Row {
        scenario,
        jobs_in: jobs_in as u64,
        completed: completed as u64,
        dup_executed: dup_executed as u64,
        dup_recorded: dup_recorded as u64,
        stuck: (stuck + open_runs) as u64,
        lost: lost as u64,
        recovery: None,
        bound: None,
    }
}

// ---- waiting ---------------------------------------------------------------------------------

pub use crate::common::wait_until;

/// Jobs among `ids` in a terminal state; 0 while the database is unreachable.
pub async fn finished_count(pool: &PgPool, ids: &[i64]) -> usize {
    sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM runledger.jobs \
         WHERE id = ANY($1) AND state IN ('completed', 'failed', 'cancelled')",
    )
    .bind(ids)
    .fetch_one(pool)
    .await
    .map_or(0, |n| n as usize)
}

/// Waits until every job of `ids` is in a terminal state; panics after `timeout`.
pub async fn wait_finished(pool: &PgPool, ids: &[i64], timeout: Duration) {
    let what = format!("{} jobs to finish", ids.len());
    wait_until(timeout, &what, || async {
        finished_count(pool, ids).await == ids.len()
    })
    .await;
}

/// Jobs in `state` (among all jobs); 0 while the database is unreachable.
pub async fn count_state(pool: &PgPool, state: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM runledger.jobs WHERE state = $1")
        .bind(state)
        .fetch_one(pool)
        .await
        .unwrap_or(0)
}

/// A worker on `pool` working `queue` only, with short intervals.
pub fn worker(pool: &PgPool, queue: &str) -> runledger::worker::WorkerBuilder {
    Worker::builder(pool.clone())
        .queues([queue])
        .poll_interval(Duration::from_millis(200))
        .rescue_interval(Duration::from_millis(200))
}

/// Builds and starts a worker, panicking on either error.
pub async fn start(builder: runledger::worker::WorkerBuilder) -> runledger::worker::RunningWorker {
    builder
        .build()
        .expect("worker builds")
        .start()
        .await
        .expect("worker starts")
}

// ---- the server --------------------------------------------------------------------------------

/// Stops the server of `pg` with `signal` (`QUIT`: immediate, like a crash; `INT`: fast, the
/// way `pg_ctl stop -m fast` does) and waits until the postmaster has exited. Start it again
/// with [`start_again`].
pub fn stop_server(pg: &EmbeddedPostgres, signal: &str) {
    let pid = pg.pid().expect("the server runs");
    let sent = Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(sent.success(), "kill -s {signal} {pid}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while process_alive(pid) {
        assert!(
            Instant::now() < deadline,
            "the server did not stop after SIG{signal}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Starts the stopped server of `pg` again, on the same port and data.
pub fn start_again(pg: &mut EmbeddedPostgres) {
    // `restart` reaps the exited postmaster and launches a new one.
    pg.restart().expect("server starts again");
}

/// Whether `pid` runs (a zombie, exited but not yet reaped, does not).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

// ---- child worker processes ----------------------------------------------------------------------

/// The variable that makes this binary a child worker instead of the suite.
pub const CHILD_ENV: &str = "RUNLEDGER_RELIABILITY_CHILD";

const CHILD_URL: &str = "RUNLEDGER_RELIABILITY_URL";
const CHILD_ID: &str = "RUNLEDGER_RELIABILITY_WORKER_ID";
const CHILD_QUEUE: &str = "RUNLEDGER_RELIABILITY_QUEUE";
const CHILD_KINDS: &str = "RUNLEDGER_RELIABILITY_KINDS";
const CHILD_CONCURRENCY: &str = "RUNLEDGER_RELIABILITY_CONCURRENCY";
const CHILD_LEASE_MS: &str = "RUNLEDGER_RELIABILITY_LEASE_MS";
const CHILD_GRACE_MS: &str = "RUNLEDGER_RELIABILITY_GRACE_MS";

/// How a child worker process is configured.
#[derive(Debug, Clone)]
pub struct ChildSettings {
    pub id: &'static str,
    pub queue: &'static str,
    pub kinds: &'static [&'static str],
    pub concurrency: usize,
    pub lease: Duration,
    pub shutdown_grace: Duration,
}

/// A worker in a separate process (this binary, started again in child mode). Killed when
/// dropped, so that a failed scenario leaves no process behind.
#[derive(Debug)]
pub struct ChildWorker {
    child: Child,
}

impl ChildWorker {
    /// Starts a child worker on the database at `url`.
    pub fn spawn(url: &str, settings: &ChildSettings) -> Self {
        let stderr = if std::env::var_os("RUNLEDGER_RELIABILITY_DEBUG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        };
        // This very binary, even if a build has replaced the file at its path meanwhile.
        let exe = std::path::Path::new("/proc/self/exe");
        let program = if exe.exists() {
            exe.to_owned()
        } else {
            std::env::current_exe().expect("own path")
        };
        let child = Command::new(program)
            .env(CHILD_ENV, "worker")
            .env(CHILD_URL, url)
            .env(CHILD_ID, settings.id)
            .env(CHILD_QUEUE, settings.queue)
            .env(CHILD_KINDS, settings.kinds.join(","))
            .env(CHILD_CONCURRENCY, settings.concurrency.to_string())
            .env(CHILD_LEASE_MS, settings.lease.as_millis().to_string())
            .env(
                CHILD_GRACE_MS,
                settings.shutdown_grace.as_millis().to_string(),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start a child worker");
        ChildWorker { child }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `SIGKILL`s the child and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends the child `SIGTERM`.
    pub fn terminate(&self) {
        let sent = Command::new("kill")
            .args(["-s", "TERM", &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success(), "kill -s TERM {}", self.pid());
    }

    /// Waits up to `timeout` for the child to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for ChildWorker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

/// The child worker role: a worker with the settings of the environment that runs until
/// `SIGTERM`, then shuts down gracefully and exits 0. Returns the process's exit code.
pub fn child_main(role: &str) -> i32 {
    if role != "worker" {
        eprintln!("unknown child role `{role}`");
        return 2;
    }
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .try_init();
    }
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let millis = |name: &str| Duration::from_millis(var(name).parse().expect("milliseconds"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        // Installed before the worker starts, so that no SIGTERM finds the default action.
        let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let concurrency: usize = var(CHILD_CONCURRENCY).parse().expect("concurrency");
        let pool = PgPoolOptions::new()
            .max_connections(concurrency as u32 + 6)
            .acquire_timeout(Duration::from_secs(3))
            .connect(&var(CHILD_URL))
            .await
            .expect("child pool");
        let kinds: Vec<String> = var(CHILD_KINDS).split(',').map(str::to_owned).collect();
        let worker = Worker::builder(pool)
            .id(var(CHILD_ID))
            .queues([var(CHILD_QUEUE)])
            .kinds(kinds)
            .concurrency(concurrency)
            .lease(millis(CHILD_LEASE_MS))
            .shutdown_grace(millis(CHILD_GRACE_MS))
            .poll_interval(Duration::from_millis(200))
            .migrate(false)
            .build()
            .expect("child worker builds")
            .start()
            .await
            .expect("child worker starts");
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::time::sleep(Duration::from_secs(300)) => {}
        }
        worker.shutdown().await.expect("graceful shutdown");
    });
    0
}
