//! The [`Job`] trait, per-kind [`JobOptions`], the [`JobContext`] a handler receives and the
//! [`JobError`] outcomes a handler returns.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::client::Runledger;
use crate::error::Error;

/// The database identifier of a job.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct JobId(pub i64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A kind of background job: a payload type with a stable name and a handler.
///
/// You normally do not implement this by hand: `#[job]` on an `async fn` generates the payload
/// struct, this impl and the registration that lets a [`Worker`](crate::Worker) find the handler.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a runledger job",
    label = "not a job payload",
    note = "annotate an async fn with `#[runledger::job]`; its generated payload struct implements `Job`"
)]
pub trait Job: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The stable name stored with every job of this kind. Changing it orphans stored jobs;
    /// keep the old name in [`ALIASES`](Job::ALIASES) when renaming.
    const KIND: &'static str;
    /// Former names of this kind still accepted from the database.
    const ALIASES: &'static [&'static str] = &[];
    /// Defaults used when a job of this kind is enqueued.
    const OPTIONS: JobOptions = JobOptions::new();
    /// What the handler returns on success; stored as JSON and read back by
    /// [`JobHandle::wait`](crate::JobHandle::wait).
    type Output: Serialize + DeserializeOwned + Send + 'static;

    /// Runs the job.
    fn run(self, ctx: &JobContext) -> impl Future<Output = Result<Self::Output, JobError>> + Send;

    /// The unique key derived from the payload, if the kind is declared unique.
    fn unique_key(&self) -> Option<String> {
        None
    }

    /// The payload each slot of the kind's declared cron schedule enqueues (`cron_args = ...`,
    /// or the empty payload of a job without payload parameters); `None` without `cron`.
    fn cron_args() -> Option<Self> {
        None
    }

    /// The injected state (`State<T>`) the handler needs; checked when a worker is built.
    fn required_state() -> Vec<StateRequirement> {
        Vec::new()
    }
}

/// Defaults for every job of one kind; per-call overrides live on the enqueue builder.
///
/// Built in const context by `#[job(...)]`:
/// `JobOptions::new().queue("payments").max_attempts(5)`.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct JobOptions {
    /// Queue the job is placed on. Default `"default"`.
    pub queue: &'static str,
    /// Larger runs first. Default `0`.
    pub priority: i16,
    /// Attempts before the job is failed for good. Default `25`.
    pub max_attempts: i32,
    /// Time one attempt may take before it is abandoned and retried. Default: none.
    pub timeout: Option<Duration>,
    /// Delay between failed attempts.
    pub backoff: Backoff,
    /// How long a unique key blocks another job with the same key.
    pub unique_scope: UniqueScope,
    /// The cron schedule declared with `#[job(cron = "...")]`. Default: none.
    pub cron: Option<crate::schedule::CronOptions>,
    /// Declared `#[job(sensitive)]`: the payload, output and unique key are left out of
    /// `Debug` output (of the payload struct, [`JobRequest`](crate::JobRequest) and
    /// [`JobRecord`](crate::JobRecord)) and of the error texts runledger writes, such as a
    /// payload that no longer deserializes. They are stored as usual. Default false.
    pub sensitive: bool,
}

impl JobOptions {
    /// The defaults: queue `"default"`, priority 0, 25 attempts, no timeout, exponential backoff.
    pub const fn new() -> Self {
        Self {
            queue: "default",
            priority: 0,
            max_attempts: 25,
            timeout: None,
            backoff: Backoff::exponential(),
            unique_scope: UniqueScope::Active,
            cron: None,
            sensitive: false,
        }
    }
    /// Marks the kind sensitive (see [`JobOptions::sensitive`]).
    pub const fn sensitive(mut self, sensitive: bool) -> Self {
        self.sensitive = sensitive;
        self
    }
    /// Sets the queue.
    pub const fn queue(mut self, queue: &'static str) -> Self {
        self.queue = queue;
        self
    }
    /// Sets the priority (larger runs first).
    pub const fn priority(mut self, priority: i16) -> Self {
        self.priority = priority;
        self
    }
    /// Sets the number of attempts.
    pub const fn max_attempts(mut self, max_attempts: i32) -> Self {
        self.max_attempts = max_attempts;
        self
    }
    /// Sets the per-attempt timeout.
    pub const fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
    /// Sets the retry backoff.
    pub const fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }
    /// Sets how long a unique key holds.
    pub const fn unique_scope(mut self, scope: UniqueScope) -> Self {
        self.unique_scope = scope;
        self
    }
    /// Declares a cron schedule for the kind, synced to the database when a worker starts.
    pub const fn cron(mut self, cron: crate::schedule::CronOptions) -> Self {
        self.cron = Some(cron);
        self
    }
}

impl Default for JobOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// How long a unique key keeps a second job with the same key out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UniqueScope {
    /// While a job with the key is scheduled, available, running, retrying or waiting; once it
    /// finishes, the key is free again.
    Active,
    /// For every job whose enqueue time falls in the same window of this length (aligned to the
    /// Unix epoch), whatever its state, until the finished row is pruned.
    Period(Duration),
}

/// Exponential backoff with jitter: attempt `n` (1-based) waits
/// `min(base * factor^(n-1), max)`, then a random fraction of up to `jitter` is taken off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay after the first failed attempt.
    pub base: Duration,
    /// Growth per attempt.
    pub factor: f64,
    /// Upper bound of the delay.
    pub max: Duration,
    /// Fraction (0.0..=1.0) of the delay that is randomised away, so that jobs failing together
    /// do not retry together.
    pub jitter: f64,
}

impl Backoff {
    /// Base 1 s, factor 2, max 1 h, jitter 0.25.
    pub const fn exponential() -> Self {
        Self {
            base: Duration::from_secs(1),
            factor: 2.0,
            max: Duration::from_secs(3600),
            jitter: 0.25,
        }
    }
    /// A fixed delay without jitter.
    pub const fn constant(delay: Duration) -> Self {
        Self {
            base: delay,
            factor: 1.0,
            max: delay,
            jitter: 0.0,
        }
    }
    /// The delay after failed attempt `attempt` (1-based), using `random` in `0.0..1.0`.
    pub fn delay(&self, attempt: i32, random: f64) -> Duration {
        let exp = (attempt.max(1) - 1).min(62);
        let raw = self.base.as_secs_f64() * self.factor.powi(exp);
        let capped = raw.min(self.max.as_secs_f64()).max(0.0);
        let jitter = self.jitter.clamp(0.0, 1.0) * random.clamp(0.0, 1.0);
        Duration::from_secs_f64(capped * (1.0 - jitter))
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::exponential()
    }
}

/// Shared state injected into handlers that take a `State<T>` parameter; registered on the
/// worker with [`WorkerBuilder::state`](crate::WorkerBuilder::state).
#[derive(Debug)]
pub struct State<T: ?Sized>(pub Arc<T>);

impl<T: ?Sized> Clone for State<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T: ?Sized> std::ops::Deref for State<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// One `State<T>` a job kind needs, checked when a worker is built.
#[derive(Debug, Clone, Copy)]
pub struct StateRequirement {
    pub(crate) type_id: TypeId,
    pub(crate) type_name: &'static str,
}

impl StateRequirement {
    /// The requirement for `State<T>`.
    pub fn of<T: Send + Sync + 'static>() -> Self {
        Self {
            type_id: TypeId::of::<T>(),
            type_name: std::any::type_name::<T>(),
        }
    }
}

/// Values registered with [`WorkerBuilder::state`](crate::WorkerBuilder::state), by type.
#[derive(Default, Clone)]
pub(crate) struct StateMap {
    values: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl StateMap {
    pub(crate) fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        self.values.insert(TypeId::of::<T>(), Arc::new(value));
    }
    pub(crate) fn contains(&self, id: TypeId) -> bool {
        self.values.contains_key(&id)
    }
    pub(crate) fn get<T: Send + Sync + 'static>(&self) -> Option<State<T>> {
        let value = self.values.get(&TypeId::of::<T>())?.clone();
        value.downcast::<T>().ok().map(State)
    }
}

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

/// How a handler ends other than in success.
///
/// `?` on any error converts it into a retryable failure. Use the constructors for the rest:
/// [`JobError::fatal`] stops retrying, [`JobError::snooze`] reschedules without spending an
/// attempt, [`JobError::cancel`] cancels the job.
///
/// `JobError` deliberately does not implement `std::error::Error`, so that every error type can
/// convert into it with `?`.
pub struct JobError {
    pub(crate) kind: JobErrorKind,
}

#[derive(Debug)]
pub(crate) enum JobErrorKind {
    Retry {
        message: String,
        delay: Option<Duration>,
    },
    Fatal(String),
    Snooze(Duration),
    Cancel(String),
}

impl JobError {
    /// A failed attempt, retried with the kind's backoff while attempts remain.
    pub fn retry(error: impl fmt::Display) -> Self {
        Self {
            kind: JobErrorKind::Retry {
                message: error.to_string(),
                delay: None,
            },
        }
    }
    /// A failed attempt, retried after exactly `delay` while attempts remain.
    pub fn retry_after(error: impl fmt::Display, delay: Duration) -> Self {
        Self {
            kind: JobErrorKind::Retry {
                message: error.to_string(),
                delay: Some(delay),
            },
        }
    }
    /// A failure that retrying cannot fix: the job is failed now, whatever attempts remain.
    pub fn fatal(error: impl fmt::Display) -> Self {
        Self {
            kind: JobErrorKind::Fatal(error.to_string()),
        }
    }
    /// Not now: run the job again after `delay` without counting this attempt.
    pub fn snooze(delay: Duration) -> Self {
        Self {
            kind: JobErrorKind::Snooze(delay),
        }
    }
    /// Give up on the job and mark it cancelled, with a reason.
    pub fn cancel(reason: impl fmt::Display) -> Self {
        Self {
            kind: JobErrorKind::Cancel(reason.to_string()),
        }
    }
    /// True for [`JobError::fatal`].
    pub fn is_fatal(&self) -> bool {
        matches!(self.kind, JobErrorKind::Fatal(_))
    }
}

impl fmt::Debug for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.kind.fmt(f)
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            JobErrorKind::Retry { message, .. } => f.write_str(message),
            JobErrorKind::Fatal(message) => write!(f, "fatal: {message}"),
            JobErrorKind::Snooze(delay) => write!(f, "snoozed for {delay:?}"),
            JobErrorKind::Cancel(reason) => write!(f, "cancelled: {reason}"),
        }
    }
}

impl<E> From<E> for JobError
where
    E: std::error::Error + Send + Sync + 'static,
{
    fn from(error: E) -> Self {
        // Keep the whole chain of causes in the recorded message.
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        JobError::retry(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let b = Backoff {
            base: Duration::from_secs(1),
            factor: 2.0,
            max: Duration::from_secs(10),
            jitter: 0.0,
        };
        assert_eq!(b.delay(1, 0.5), Duration::from_secs(1));
        assert_eq!(b.delay(3, 0.5), Duration::from_secs(4));
        assert_eq!(b.delay(10, 0.5), Duration::from_secs(10));
        assert_eq!(b.delay(i32::MAX, 0.5), Duration::from_secs(10));
    }

    #[test]
    fn backoff_jitter_only_shortens() {
        let b = Backoff::exponential();
        let d = b.delay(2, 0.999);
        assert!(
            d <= Duration::from_secs(2) && d >= Duration::from_millis(1500),
            "{d:?}"
        );
    }

    #[test]
    fn question_mark_keeps_the_cause_chain() {
        let io = std::io::Error::other("disk on fire");
        let e: JobError = io.into();
        assert_eq!(e.to_string(), "disk on fire");
        assert!(!e.is_fatal());
    }
}
