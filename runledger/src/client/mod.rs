//! The [`Runledger`] client: enqueue jobs (alone, in bulk, or inside the caller's transaction),
//! cancel them, read them back, and wait for their results.

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::time::Duration;

use serde::de::DeserializeOwned;
use sqlx::PgConnection;

mod notify;
pub(crate) mod record;
#[macro_use]
pub(crate) mod request;
pub(crate) mod runledger;
pub(crate) mod state;

pub use record::{CancelOutcome, JobRecord};
pub use request::JobRequest;
pub use runledger::{DEFAULT_MAX_PAYLOAD_BYTES, Runledger, RunledgerBuilder};
pub use state::JobState;

use crate::error::Error;
use crate::job::{Job, JobId};
use crate::store;
use crate::store::jobs::NewJob;

impl Runledger {
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
        let rows = self.rows(jobs)?;
        let mut conn = self.pool().acquire().await?;
        self.insert(&mut conn, &rows, false).await
    }

    /// [`enqueue_many`](Self::enqueue_many) inside the caller's transaction.
    pub async fn enqueue_many_tx<R: Into<JobRequest>>(
        &self,
        tx: &mut PgConnection,
        jobs: impl IntoIterator<Item = R>,
    ) -> Result<Vec<EnqueuedJob>, Error> {
        let rows = self.rows(jobs)?;
        self.insert(tx, &rows, true).await
    }

    fn rows<R: Into<JobRequest>>(
        &self,
        jobs: impl IntoIterator<Item = R>,
    ) -> Result<Vec<NewJob>, Error> {
        jobs.into_iter()
            .map(|r| r.into().into_row(self.max_payload_bytes()))
            .collect()
    }

    /// Inserts `rows` on `conn` with their wake-up notifications: all of them inside a caller's
    /// transaction, debounced otherwise (see `notify`).
    async fn insert(
        &self,
        conn: &mut PgConnection,
        rows: &[NewJob],
        in_caller_tx: bool,
    ) -> Result<Vec<EnqueuedJob>, Error> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let payloads = notify::payloads(rows);
        let send_now = if in_caller_tx {
            payloads
        } else {
            self.notifier().take(self.pool(), payloads)
        };
        let inserted = store::jobs::insert(conn, rows, &send_now).await?;
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
                self.client.insert(&mut conn, rows, false).await?
            }
            Target::Tx(tx) => self.client.insert(tx, rows, true).await?,
        };
        let first = inserted[0];
        Ok(JobHandle::new(
            self.client.clone(),
            first.id,
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
        let id = self.id;
        let polled = poll(timeout, || async move {
            let status = store::jobs::status(self.client.pool(), id.0)
                .await?
                .ok_or(Error::JobNotFound { id })?;
            match JobState::parse(&status.state)? {
                JobState::Completed => {
                    let output = status.output.unwrap_or(serde_json::Value::Null);
                    serde_json::from_value(output).map(Ok).map_err(|e| {
                        Error::json(format!("output of job {id} does not deserialize"), e)
                    })
                }
                JobState::Failed => Err(Error::JobFailed {
                    id,
                    attempts: status.attempt,
                    error: status
                        .last_error
                        .unwrap_or_else(|| "no error recorded".into()),
                }),
                JobState::Cancelled => Err(Error::JobCancelled {
                    id,
                    reason: status.last_error,
                }),
                state => Ok(Err(state.to_string())),
            }
        })
        .await?;
        polled.map_err(|state| Error::WaitTimeout { id, state })
    }
}

/// Calls `check` until it returns `Ok(Ok(value))` or an error, backing off from 5 ms to 250 ms
/// between calls. `Ok(Err(state))` means "not yet, still in `state`"; after `timeout` the last
/// such state is returned as `Ok(Err(state))`.
pub(crate) async fn poll<T, F, Fut>(
    timeout: Option<Duration>,
    mut check: F,
) -> Result<Result<T, String>, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Result<T, String>, Error>>,
{
    let started = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(5);
    loop {
        let state = match check().await? {
            Ok(value) => return Ok(Ok(value)),
            Err(state) => state,
        };
        if let Some(limit) = timeout
            && started.elapsed() >= limit
        {
            return Ok(Err(state));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(250));
    }
}
