//! The [`JobContext`] a handler receives, and why an attempt is asked to [`StopReason`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::error::JobError;
use super::inject::State;
use super::inject::StateMap;
use crate::client::runledger::Runledger;
use crate::error::Error;
use crate::ids::JobId;

/// Why a running attempt is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// [`Runledger::cancel`](crate::Runledger::cancel) was called for this job.
    Cancelled,
    /// The worker is shutting down and its grace period is over.
    Shutdown,
    /// The lease was lost (another worker may own the job now); nothing this attempt writes
    /// will be recorded.
    LeaseLost,
}

/// What a handler knows about the attempt it runs, and the services it may use.
///
/// A `&JobContext` parameter on a `#[job]` function receives it.
pub struct JobContext {
    pub(crate) id: JobId,
    pub(crate) kind: &'static str,
    pub(crate) queue: String,
    pub(crate) attempt: i32,
    pub(crate) max_attempts: i32,
    pub(crate) state: Arc<StateMap>,
    pub(crate) client: Runledger,
    pub(crate) stop: watch::Receiver<Option<StopReason>>,
    pub(crate) lease: Duration,
    /// The journal of a durable job's attempt; `None` for other jobs.
    pub(crate) journal: Option<Arc<crate::durable::journal::Journal>>,
}

impl fmt::Debug for JobContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobContext")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("queue", &self.queue)
            .field("attempt", &self.attempt)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

impl JobContext {
    /// The job's id.
    pub fn id(&self) -> JobId {
        self.id
    }
    /// The job's kind.
    pub fn kind(&self) -> &str {
        self.kind
    }
    /// The queue the job was claimed from.
    pub fn queue(&self) -> &str {
        &self.queue
    }
    /// This attempt's number, starting at 1.
    pub fn attempt(&self) -> i32 {
        self.attempt
    }
    /// Attempts allowed in total (snoozes add one each).
    pub fn max_attempts(&self) -> i32 {
        self.max_attempts
    }
    /// A client on the worker's pool, to enqueue follow-up jobs.
    pub fn client(&self) -> &Runledger {
        &self.client
    }
    /// Injected state of type `T`, if the worker has it.
    pub fn state<T: Send + Sync + 'static>(&self) -> Option<State<T>> {
        self.state.get::<T>()
    }
    /// `Some(reason)` once the attempt has been asked to stop.
    pub fn stop_reason(&self) -> Option<StopReason> {
        *self.stop.borrow()
    }
    /// Resolves when the attempt is asked to stop (cancel, shutdown, lost lease). Long handlers
    /// can `select!` on it to stop early and cleanly; the worker drops the handler's future at
    /// that point anyway.
    pub async fn stopped(&self) -> StopReason {
        let mut rx = self.stop.clone();
        loop {
            if let Some(reason) = *rx.borrow_and_update() {
                return reason;
            }
            if rx.changed().await.is_err() {
                // The worker dropped the sender: it is gone, treat as shutdown.
                return StopReason::Shutdown;
            }
        }
    }
    /// Extends this attempt's lease now. The worker already renews every running job's lease on
    /// a timer; call this only around work that may block the runtime. Fails with
    /// [`Error::LeaseLost`] if another owner has the job.
    pub async fn heartbeat(&self) -> Result<(), Error> {
        let owned = crate::store::jobs::heartbeat(
            self.client.pool(),
            &[self.id.0],
            &[self.attempt],
            self.lease,
        )
        .await?;
        if owned.is_empty() {
            Err(Error::LeaseLost { id: self.id })
        } else {
            Ok(())
        }
    }

    #[doc(hidden)]
    pub fn __state<T: Send + Sync + 'static>(&self) -> Result<State<T>, JobError> {
        self.state
            .get::<T>()
            .ok_or_else(|| JobError::fatal(MissingState(std::any::type_name::<T>())))
    }
}

#[derive(Debug)]
struct MissingState(&'static str);

impl fmt::Display for MissingState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the worker has no state of type `{}`; register it with `WorkerBuilder::state`",
            self.0
        )
    }
}

impl std::error::Error for MissingState {}
