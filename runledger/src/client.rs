//! The [`Runledger`] client: enqueue jobs (alone, in bulk, or inside the caller's transaction),
//! cancel them, read them back, and wait for their results.

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use sqlx::{PgConnection, PgPool};

use crate::error::Error;
use crate::job::{Job, JobId, UniqueScope};
use crate::store;
use crate::store::jobs::NewJob;
use crate::validate;

/// Default limit on the JSON size of one payload or output: 1 MiB.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1 << 20;

/// A handle on runledger's tables in one database: enqueue, cancel, inspect.
///
/// Cheap to clone; clones share the pool.
///
/// ```no_run
/// # async fn demo(pool: sqlx::PgPool) -> Result<(), runledger::Error> {
/// let rl = runledger::Runledger::new(pool);
/// runledger::migrate(rl.pool()).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Runledger {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: PgPool,
    max_payload_bytes: usize,
}

/// Configures a [`Runledger`] client.
#[derive(Debug)]
#[must_use = "call `.build()` to get the client"]
pub struct RunledgerBuilder {
    pool: PgPool,
    max_payload_bytes: usize,
}

impl RunledgerBuilder {
    /// Largest payload or output accepted, as JSON bytes. Default 1 MiB.
    pub fn max_payload_bytes(mut self, bytes: usize) -> Self {
        self.max_payload_bytes = bytes;
        self
    }
    /// The client.
    pub fn build(self) -> Runledger {
        Runledger {
            inner: Arc::new(Inner {
                pool: self.pool,
                max_payload_bytes: self.max_payload_bytes,
            }),
        }
    }
}

impl Runledger {
    /// A client with default settings on `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self::builder(pool).build()
    }

    /// A client builder on `pool`.
    pub fn builder(pool: PgPool) -> RunledgerBuilder {
        RunledgerBuilder {
            pool,
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
        }
    }

    /// The pool this client uses.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// The payload and output size limit in bytes.
    pub fn max_payload_bytes(&self) -> usize {
        self.inner.max_payload_bytes
    }

    /// Enqueues `job` with its kind's defaults. Same as `job.enqueue(&rl)`.
    pub fn enqueue<J: Job>(&self, job: J) -> Enqueue<'_, J> {
        Enqueue::new(self, job)
    }

    /// Enqueues `job` inside the caller's transaction. Same as `job.enqueue_tx(&rl, &mut tx)`.
    pub fn enqueue_tx<'a, J: Job>(&'a self, tx: &'a mut PgConnection, job: J) -> Enqueue<'a, J> {
        Enqueue::new_tx(self, tx, job)
    }

    /// Enqueues many jobs in one statement and one round trip. Returns a handle per job, in
    /// order. Jobs can be of different kinds: pass [`JobRequest`]s built with
    /// [`JobRequest::new`], or any `Job` value (it converts).
    pub async fn enqueue_many<R: Into<JobRequest>>(
        &self,
        jobs: impl IntoIterator<Item = R>,
    ) -> Result<Vec<EnqueuedJob>, Error> {
        let mut conn = self.pool().acquire().await?;
        self.enqueue_many_tx(&mut conn, jobs).await
    }

    /// [`enqueue_many`](Self::enqueue_many) inside the caller's transaction.
    pub async fn enqueue_many_tx<R: Into<JobRequest>>(
        &self,
        tx: &mut PgConnection,
        jobs: impl IntoIterator<Item = R>,
    ) -> Result<Vec<EnqueuedJob>, Error> {
        let rows = jobs
            .into_iter()
            .map(|r| r.into().into_row(self.max_payload_bytes()))
            .collect::<Result<Vec<_>, _>>()?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let inserted = store::jobs::insert(tx, &rows).await?;
        Ok(inserted
            .into_iter()
            .map(|i| EnqueuedJob {
                id: JobId(i.id),
                inserted: i.inserted,
            })
            .collect())
    }

    /// Cancels a job. A job that has not started is cancelled at once; a running job is asked
    /// to stop (its handler's future is dropped at the worker's next lease renewal or sooner)
    /// and is recorded `cancelled` unless it completes first; a finished job is left as it is.
    pub async fn cancel(&self, id: JobId) -> Result<CancelOutcome, Error> {
        let before = store::jobs::cancel(self.pool(), id.0).await?;
        CancelOutcome::from_previous_state(id, before)
    }

    /// [`cancel`](Self::cancel) inside the caller's transaction.
    pub async fn cancel_tx(
        &self,
        tx: &mut PgConnection,
        id: JobId,
    ) -> Result<CancelOutcome, Error> {
        let before = store::jobs::cancel(tx, id.0).await?;
        CancelOutcome::from_previous_state(id, before)
    }

    /// Reads a job as stored, or `None` if there is none with this id.
    pub async fn job(&self, id: JobId) -> Result<Option<JobRecord>, Error> {
        Ok(store::jobs::get(self.pool(), id.0)
            .await?
            .map(JobRecord::from_row))
    }

    /// A typed handle on an existing job (for instance one enqueued in a transaction).
    pub fn handle<J: Job>(&self, id: JobId) -> JobHandle<J::Output> {
        JobHandle::new(self.clone(), id, true)
    }
}

/// The result of [`Runledger::cancel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CancelOutcome {
    /// The job had not started; it is now `cancelled`.
    Cancelled,
    /// The job is running; its worker has been asked to stop it.
    Requested,
    /// The job had already finished in this state; nothing changed.
    AlreadyFinished(JobState),
}

impl CancelOutcome {
    fn from_previous_state(id: JobId, before: Option<String>) -> Result<Self, Error> {
        let before = before.ok_or(Error::JobNotFound { id })?;
        let state = JobState::parse(&before)?;
        Ok(match state {
            JobState::Running => CancelOutcome::Requested,
            s if s.is_finished() => CancelOutcome::AlreadyFinished(s),
            _ => CancelOutcome::Cancelled,
        })
    }
}

/// The states of a job. See `docs/job-states.md` for the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JobState {
    /// Waiting for its `run_at` time.
    Scheduled,
    /// Ready to be claimed.
    Available,
    /// Claimed by a worker that holds its lease.
    Running,
    /// Failed an attempt; waits for its backoff before running again.
    Retryable,
    /// Suspended (durable sleep, event or child job).
    Waiting,
    /// Finished successfully.
    Completed,
    /// Failed for good (attempts exhausted, fatal error).
    Failed,
    /// Cancelled.
    Cancelled,
}

impl JobState {
    /// All states.
    pub const ALL: [JobState; 8] = [
        JobState::Scheduled,
        JobState::Available,
        JobState::Running,
        JobState::Retryable,
        JobState::Waiting,
        JobState::Completed,
        JobState::Failed,
        JobState::Cancelled,
    ];

    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Scheduled => "scheduled",
            JobState::Available => "available",
            JobState::Running => "running",
            JobState::Retryable => "retryable",
            JobState::Waiting => "waiting",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Completed, failed or cancelled: no transition leaves these states.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Failed | JobState::Cancelled
        )
    }

    pub(crate) fn parse(s: &str) -> Result<Self, Error> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| Error::InvalidInput(format!("unknown job state `{s}` in the database")))
    }

    /// The bit of this state in the unique-states mask (see the migration).
    pub(crate) fn bit(self) -> i16 {
        1 << JobState::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job as stored in the database.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct JobRecord {
    /// Its id.
    pub id: JobId,
    /// Its kind.
    pub kind: String,
    /// Its queue.
    pub queue: String,
    /// Its state.
    pub state: JobState,
    /// Its priority (larger runs first).
    pub priority: i16,
    /// The payload.
    pub args: serde_json::Value,
    /// The output, once completed.
    pub output: Option<serde_json::Value>,
    /// One entry per failed attempt: `{"attempt", "at", "error"}`.
    pub errors: Vec<serde_json::Value>,
    /// Attempts started.
    pub attempt: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// When it is or was due.
    pub run_at: DateTime<Utc>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When the latest attempt started.
    pub attempted_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// Its unique key, if any.
    pub unique_key: Option<String>,
}

impl JobRecord {
    pub(crate) fn from_row(row: store::jobs::JobRow) -> Self {
        let errors = match row.errors {
            serde_json::Value::Array(items) => items,
            other => vec![other],
        };
        JobRecord {
            id: JobId(row.id),
            kind: row.kind,
            queue: row.queue,
            // The CHECK constraint admits only known states.
            state: JobState::parse(&row.state).unwrap_or(JobState::Failed),
            priority: row.priority,
            args: row.args,
            output: row.output,
            errors,
            attempt: row.attempt,
            max_attempts: row.max_attempts,
            run_at: row.run_at,
            created_at: row.created_at,
            attempted_at: row.attempted_at,
            finished_at: row.finished_at,
            unique_key: row.unique_key,
        }
    }

    /// The last recorded error message, if any attempt failed.
    pub fn last_error(&self) -> Option<&str> {
        self.errors.last()?.get("error")?.as_str()
    }
}

/// An untyped job ready to insert: kind, JSON payload and options. Built from any [`Job`] with
/// `JobRequest::new(job)` or `job.into()`, then adjusted with the same overrides as
/// [`Enqueue`].
#[derive(Debug, Clone)]
#[must_use]
pub struct JobRequest {
    kind: &'static str,
    args: Result<String, String>,
    unique_key: Option<String>,
    opts: Overrides,
    defaults: crate::job::JobOptions,
}

#[derive(Debug, Clone, Default)]
struct Overrides {
    queue: Option<String>,
    priority: Option<i16>,
    max_attempts: Option<i32>,
    run_at: Option<DateTime<Utc>>,
    run_in: Option<Duration>,
    timeout: Option<Option<Duration>>,
    unique_key: Option<String>,
    unique_scope: Option<UniqueScope>,
}

impl<J: Job> From<J> for JobRequest {
    fn from(job: J) -> Self {
        JobRequest::new(job)
    }
}

macro_rules! override_methods {
    ($($field:ident)?) => {
        /// Puts the job on `queue` instead of its kind's default.
        pub fn with_queue(mut self, queue: impl Into<String>) -> Self {
            self$(.$field)?.opts.queue = Some(queue.into());
            self
        }
        /// Sets the priority (larger runs first).
        pub fn with_priority(mut self, priority: i16) -> Self {
            self$(.$field)?.opts.priority = Some(priority);
            self
        }
        /// Sets the number of attempts allowed.
        pub fn with_max_attempts(mut self, max_attempts: i32) -> Self {
            self$(.$field)?.opts.max_attempts = Some(max_attempts);
            self
        }
        /// Sets or clears the per-attempt timeout.
        pub fn with_timeout(mut self, timeout: Option<Duration>) -> Self {
            self$(.$field)?.opts.timeout = Some(timeout);
            self
        }
        /// Runs the job no earlier than `at` (database clock).
        pub fn run_at(mut self, at: DateTime<Utc>) -> Self {
            self$(.$field)?.opts.run_at = Some(at);
            self
        }
        /// Runs the job no earlier than `delay` after it is inserted (database clock).
        pub fn run_in(mut self, delay: Duration) -> Self {
            self$(.$field)?.opts.run_in = Some(delay);
            self
        }
        /// Makes the job unique by `key`: while another job holds the same key (see
        /// [`UniqueScope`]), enqueueing returns that job instead of inserting a new one.
        pub fn unique_key(mut self, key: impl Into<String>) -> Self {
            self$(.$field)?.opts.unique_key = Some(key.into());
            self
        }
        /// Sets how long the unique key holds.
        pub fn unique_scope(mut self, scope: UniqueScope) -> Self {
            self$(.$field)?.opts.unique_scope = Some(scope);
            self
        }
    };
}

impl JobRequest {
    /// The request for `job` with its kind's defaults.
    pub fn new<J: Job>(job: J) -> Self {
        let unique_key = job.unique_key();
        let args = serde_json::to_string(&job).map_err(|e| e.to_string());
        JobRequest {
            kind: J::KIND,
            args,
            unique_key,
            opts: Overrides::default(),
            defaults: J::OPTIONS,
        }
    }

    /// The kind.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    override_methods!();

    fn into_row(self, max_payload_bytes: usize) -> Result<NewJob, Error> {
        let kind = self.kind;
        let args = self.args.map_err(|e| {
            Error::InvalidInput(format!(
                "payload of kind `{kind}` does not serialize to JSON: {e}"
            ))
        })?;
        if args.len() > max_payload_bytes {
            return Err(Error::PayloadTooLarge {
                what: format!("payload of kind `{kind}`"),
                size: args.len(),
                limit: max_payload_bytes,
            });
        }
        let o = self.opts;
        let d = self.defaults;
        let queue = o.queue.unwrap_or_else(|| d.queue.to_owned());
        validate::name("queue", &queue)?;
        validate::name("kind", kind)?;
        let max_attempts = o.max_attempts.unwrap_or(d.max_attempts);
        if max_attempts < 1 {
            return Err(Error::InvalidInput(format!(
                "max_attempts of a `{kind}` job is {max_attempts}; it must be at least 1"
            )));
        }
        let timeout = o.timeout.unwrap_or(d.timeout);
        let timeout_ms = match timeout {
            Some(t) if t.is_zero() => {
                return Err(Error::InvalidInput(format!(
                    "the timeout of a `{kind}` job is zero; use `None` for no timeout"
                )));
            }
            Some(t) => Some(i64::try_from(t.as_millis()).unwrap_or(i64::MAX)),
            None => None,
        };
        // A delay is added to the database clock at insert, never to this machine's clock.
        let (run_at, delay_s) = match (o.run_at, o.run_in) {
            (Some(at), _) => (Some(at), None),
            (None, Some(delay)) => (None, Some(delay.as_secs_f64())),
            (None, None) => (None, None),
        };
        let unique_key = o.unique_key.or(self.unique_key);
        let (unique_key, unique_states, unique_period_s) = match unique_key {
            None => (None, None, None),
            Some(key) => {
                if key.is_empty() || key.len() > 1024 {
                    return Err(Error::InvalidInput(format!(
                        "the unique key of a `{kind}` job must be 1 to 1024 bytes long, not {}",
                        key.len()
                    )));
                }
                match o.unique_scope.unwrap_or(d.unique_scope) {
                    UniqueScope::Active => {
                        let mask = JobState::ALL
                            .into_iter()
                            .filter(|s| !s.is_finished())
                            .fold(0i16, |m, s| m | s.bit());
                        (Some(key), Some(mask), None)
                    }
                    UniqueScope::Period(period) => {
                        // The window index is computed from the database clock at insert.
                        let secs = i64::try_from(period.as_secs().max(1)).unwrap_or(i64::MAX);
                        let mask = JobState::ALL.into_iter().fold(0i16, |m, s| m | s.bit());
                        (Some(key), Some(mask), Some(secs))
                    }
                }
            }
        };
        Ok(NewJob {
            kind: kind.to_owned(),
            queue,
            args,
            priority: o.priority.unwrap_or(d.priority),
            max_attempts,
            run_at,
            delay_s,
            timeout_ms,
            unique_key,
            unique_states,
            unique_period_s,
        })
    }
}

/// One job inserted by [`Runledger::enqueue_many`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnqueuedJob {
    /// Its id (for a duplicate, the id of the job that holds the unique key).
    pub id: JobId,
    /// False if the unique key was already held and nothing was inserted.
    pub inserted: bool,
}

enum Target<'a> {
    Pool,
    Tx(&'a mut PgConnection),
}

/// A typed enqueue being configured; `.await` it to insert the job.
///
/// ```no_run
/// # use runledger::{job, JobError, Runledger};
/// # #[job] async fn resize(image: String, width: u32) -> Result<(), JobError> { Ok(()) }
/// # async fn demo(rl: Runledger) -> Result<(), runledger::Error> {
/// let handle = Resize { image: "a.png".into(), width: 640 }
///     .enqueue(&rl)
///     .with_priority(5)
///     .run_in(std::time::Duration::from_secs(60))
///     .await?;
/// # Ok(()) }
/// ```
#[must_use = "an enqueue does nothing until it is awaited"]
pub struct Enqueue<'a, J: Job> {
    client: &'a Runledger,
    target: Target<'a>,
    request: JobRequest,
    _job: PhantomData<fn() -> J>,
}

impl<'a, J: Job> Enqueue<'a, J> {
    /// Enqueues `job` on `client`'s pool.
    pub fn new(client: &'a Runledger, job: J) -> Self {
        Self {
            client,
            target: Target::Pool,
            request: JobRequest::new(job),
            _job: PhantomData,
        }
    }

    /// Enqueues `job` inside the open transaction `tx`.
    pub fn new_tx(client: &'a Runledger, tx: &'a mut PgConnection, job: J) -> Self {
        Self {
            client,
            target: Target::Tx(tx),
            request: JobRequest::new(job),
            _job: PhantomData,
        }
    }

    override_methods!(request);

    async fn run(self) -> Result<JobHandle<J::Output>, Error> {
        let row = self.request.into_row(self.client.max_payload_bytes())?;
        let rows = std::slice::from_ref(&row);
        let inserted = match self.target {
            Target::Pool => {
                let mut conn = self.client.pool().acquire().await?;
                store::jobs::insert(&mut conn, rows).await?
            }
            Target::Tx(tx) => store::jobs::insert(tx, rows).await?,
        };
        let first = inserted[0];
        Ok(JobHandle::new(
            self.client.clone(),
            JobId(first.id),
            first.inserted,
        ))
    }
}

impl<'a, J: Job> IntoFuture for Enqueue<'a, J> {
    type Output = Result<JobHandle<J::Output>, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// A typed reference to an enqueued job; [`wait`](JobHandle::wait) for its output.
#[derive(Debug, Clone)]
pub struct JobHandle<O> {
    client: Runledger,
    id: JobId,
    inserted: bool,
    _output: PhantomData<fn() -> O>,
}

impl<O: DeserializeOwned> JobHandle<O> {
    fn new(client: Runledger, id: JobId, inserted: bool) -> Self {
        Self {
            client,
            id,
            inserted,
            _output: PhantomData,
        }
    }

    /// The job's id.
    pub fn id(&self) -> JobId {
        self.id
    }

    /// False if a job with the same unique key already existed: this handle then refers to it.
    pub fn inserted(&self) -> bool {
        self.inserted
    }

    /// Waits until the job finishes: its typed output if it completed,
    /// [`Error::JobFailed`] or [`Error::JobCancelled`] otherwise.
    pub async fn wait(&self) -> Result<O, Error> {
        self.wait_inner(None).await
    }

    /// Like [`wait`](Self::wait), giving up with [`Error::WaitTimeout`] after `timeout`.
    pub async fn wait_timeout(&self, timeout: Duration) -> Result<O, Error> {
        self.wait_inner(Some(timeout)).await
    }

    async fn wait_inner(&self, timeout: Option<Duration>) -> Result<O, Error> {
        let started = tokio::time::Instant::now();
        let mut delay = Duration::from_millis(5);
        loop {
            let status = store::jobs::status(self.client.pool(), self.id.0)
                .await?
                .ok_or(Error::JobNotFound { id: self.id })?;
            match JobState::parse(&status.state)? {
                JobState::Completed => {
                    let output = status.output.unwrap_or(serde_json::Value::Null);
                    return serde_json::from_value(output).map_err(|e| {
                        Error::json(format!("output of job {} does not deserialize", self.id), e)
                    });
                }
                JobState::Failed => {
                    return Err(Error::JobFailed {
                        id: self.id,
                        attempts: status.attempt,
                        error: status
                            .last_error
                            .unwrap_or_else(|| "no error recorded".into()),
                    });
                }
                JobState::Cancelled => {
                    return Err(Error::JobCancelled {
                        id: self.id,
                        reason: status.last_error,
                    });
                }
                state => {
                    if let Some(limit) = timeout {
                        if started.elapsed() >= limit {
                            return Err(Error::WaitTimeout {
                                id: self.id,
                                state: state.to_string(),
                            });
                        }
                    }
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(250));
        }
    }
}
