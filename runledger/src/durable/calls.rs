//! The journaled calls of a durable job's [`JobContext`]: each takes its position in the journal
//! when it is built, and is checked against the journal when it runs.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::event::Event;
use super::journal::{Journal, call_row};
use super::suspension::Suspension;
use crate::error::Error;
use crate::ids::JobId;
use crate::job::Enqueue;
use crate::job::definition::{Job, Storable};
use crate::job::error::JobErrorKind;
use crate::job::{Backoff, JobContext, JobError};
use crate::store::durable::{self as store, Adopted};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A journaled call's place: the journal and the position taken when the call was built, or
/// why the call cannot be made.
type Slot = Result<(Arc<Journal>, i32), Unavailable>;

/// Why a journaled call cannot be made.
#[derive(Debug, Clone, Copy)]
enum Unavailable {
    /// The job is not durable.
    NotDurable,
    /// The call was built inside a step's closure.
    InsideStep(&'static str),
}

tokio::task_local! {
    /// Set while a step's closure runs: the step's name.
    static IN_STEP: &'static str;
}

/// The place of a call built now in `journal`: not inside a step's closure, which does not run
/// again once the step is recorded (the calls it made would be missing from every replay).
fn place(journal: &Arc<Journal>) -> Slot {
    match IN_STEP.try_with(|step| *step) {
        Ok(step) => Err(Unavailable::InsideStep(step)),
        Err(_) => Ok((journal.clone(), journal.position())),
    }
}

fn unavailable(why: Unavailable, kind: &str, call: &str) -> JobError {
    match why {
        Unavailable::NotDurable => JobError::fatal(format!(
            "`ctx.{call}` records its result in the job's journal, which only durable jobs \
             have; declare the job `#[job(durable)]` (kind `{kind}`)"
        )),
        Unavailable::InsideStep(step) => JobError::fatal(format!(
            "`ctx.{call}` was called inside the closure of step `{step}`: a recorded step does \
             not run its closure again, so the calls it made would be missing when the job \
             replays; make the call before or after the step, or make it a step of its own"
        )),
    }
}

/// A database error during a journaled call: the attempt fails and is retried, and the call
/// runs again (nothing was recorded).
fn db_error(call: &str, error: impl fmt::Display) -> JobError {
    JobError::retry(format!("could not record {call}: {error}"))
}

/// Decodes a recorded output; a record the code's type cannot read is a divergence.
fn decode<T: DeserializeOwned>(
    journal: &Journal,
    position: i32,
    what: &str,
    value: Value,
) -> Result<T, JobError> {
    serde_json::from_value(value).map_err(|e| {
        journal.diverge(format!(
            "position {position}: the output recorded for {what} does not deserialize into `{}`: \
             {e}",
            std::any::type_name::<T>()
        ))
    })
}

impl JobContext {
    fn slot(&self) -> Slot {
        self.journal
            .as_ref()
            .map_or(Err(Unavailable::NotDurable), place)
    }

    fn take(&self, slot: Slot, call: &str) -> Result<(Arc<Journal>, i32), JobError> {
        slot.map_err(|why| unavailable(why, self.kind, call))
    }

    /// A journaled step named `name` (a literal; vary it with [`Step::key`]). Its closure runs
    /// until it succeeds once; the output is recorded, and on later attempts the recorded output
    /// is returned without running the closure again.
    ///
    /// ```no_run
    /// # use runledger::{job, JobContext, JobError};
    /// # #[job(durable)]
    /// # async fn demo(ctx: &JobContext, order_id: i64) -> Result<(), JobError> {
    /// let receipt: String = ctx.step("charge").key(order_id).run(|| async move {
    ///     Ok(format!("R-{order_id}"))
    /// }).await?;
    /// # Ok(()) }
    /// ```
    pub fn step(&self, name: &'static str) -> Step<'_> {
        Step {
            ctx: self,
            slot: self.slot(),
            name,
            key: None,
            attempts: 1,
            backoff: Backoff::exponential(),
            timeout: None,
        }
    }

    /// A durable sleep named `name`: the job leaves its worker (its lease and slot are
    /// released) and is claimed again once `duration` has passed, by the database's clock.
    /// Return the suspension with `?`.
    pub fn sleep(&self, name: &'static str, duration: Duration) -> Sleep<'_> {
        Sleep {
            ctx: self,
            slot: self.slot(),
            name,
            key: None,
            until: None,
            duration,
        }
    }

    /// A durable sleep until `at` (see [`sleep`](Self::sleep)).
    pub fn sleep_until(&self, name: &'static str, at: DateTime<Utc>) -> Sleep<'_> {
        Sleep {
            ctx: self,
            slot: self.slot(),
            name,
            key: None,
            until: Some(at),
            duration: Duration::ZERO,
        }
    }

    /// Waits for event `E` with routing key `key`: resolves at once if it was emitted before
    /// (even before the wait began); otherwise the job suspends until it is emitted, or until
    /// the [`timeout`](Wait::timeout), which ends the wait with [`Waited::TimedOut`].
    pub fn wait<E: Event>(&self, key: impl fmt::Display) -> Wait<'_, E> {
        Wait {
            ctx: self,
            slot: self.slot(),
            key: key.to_string(),
            timeout: None,
            _event: PhantomData,
        }
    }

    /// Enqueues `job` as a child of this job, once: on later attempts the recorded child is
    /// returned. Join it with [`Child::join`]. When this job fails or is cancelled, its
    /// unfinished children are cancelled.
    pub fn spawn<J: Job>(&self, name: &'static str, job: J) -> Spawn<'_, J> {
        Spawn {
            ctx: self,
            slot: self.slot(),
            name,
            key: None,
            job,
        }
    }

    /// The time, recorded once: later attempts get the same value.
    pub fn now(&self) -> impl Future<Output = Result<DateTime<Utc>, JobError>> + Send + '_ {
        self.recorded("now", Utc::now)
    }

    /// A UUID version 7 (time-ordered), in its hyphenated text form, recorded once.
    pub fn uuid7(&self) -> impl Future<Output = Result<String, JobError>> + Send + '_ {
        self.recorded("uuid", uuid7)
    }

    /// A uniform random number in `0.0..1.0`, recorded once.
    pub fn random(&self) -> impl Future<Output = Result<f64, JobError>> + Send + '_ {
        self.recorded("random", crate::random::random_unit)
    }

    fn recorded<T>(
        &self,
        kind: &'static str,
        make: fn() -> T,
    ) -> impl Future<Output = Result<T, JobError>> + Send + '_
    where
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        let slot = self.slot();
        async move {
            let (journal, position) = self.take(slot, kind)?;
            if let Some(entry) = journal.entry(position, kind, kind, None)? {
                return decode(
                    &journal,
                    position,
                    kind,
                    entry.output.clone().unwrap_or(Value::Null),
                );
            }
            let value = make();
            let text = serde_json::to_string(&value).map_err(JobError::fatal)?;
            let entry = journal.new_entry(position, kind, kind, None);
            journal.record(entry, &text, kind).await?;
            Ok(value)
        }
    }

    /// Runs two journaled calls concurrently and returns both results. Their positions were
    /// fixed when they were built, so the journal does not depend on which finishes first. When
    /// both must wait, the job suspends until either can go on.
    pub async fn join<A, B, TA, TB>(&self, a: A, b: B) -> Result<(TA, TB), JobError>
    where
        A: IntoFuture<Output = Result<TA, JobError>>,
        B: IntoFuture<Output = Result<TB, JobError>>,
    {
        let (a, b) = tokio::join!(a.into_future(), b.into_future());
        match (a, b) {
            (Ok(a), Ok(b)) => Ok((a, b)),
            (Err(a), Err(b)) => Err(merge(a, b)),
            (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e),
        }
    }

    /// [`join`](Self::join) over any number of journaled calls of one type (say, the joins of
    /// children spawned in a loop), results in the calls' order.
    pub async fn join_all<F, T>(
        &self,
        calls: impl IntoIterator<Item = F>,
    ) -> Result<Vec<T>, JobError>
    where
        F: IntoFuture<Output = Result<T, JobError>>,
    {
        let mut pending: Vec<Pin<Box<F::IntoFuture>>> = calls
            .into_iter()
            .map(|c| Box::pin(c.into_future()))
            .collect();
        let mut results: Vec<Option<Result<T, JobError>>> = pending.iter().map(|_| None).collect();
        std::future::poll_fn(|cx| {
            let mut open = false;
            for (future, slot) in pending.iter_mut().zip(results.iter_mut()) {
                if slot.is_none() {
                    match future.as_mut().poll(cx) {
                        std::task::Poll::Ready(result) => *slot = Some(result),
                        std::task::Poll::Pending => open = true,
                    }
                }
            }
            if open {
                std::task::Poll::Pending
            } else {
                std::task::Poll::Ready(())
            }
        })
        .await;
        let mut values = Vec::with_capacity(results.len());
        let mut error: Option<JobError> = None;
        for result in results.into_iter().flatten() {
            match result {
                Ok(value) => values.push(value),
                Err(e) => {
                    error = Some(match error {
                        Some(previous) => merge(previous, e),
                        None => e,
                    })
                }
            }
        }
        match error {
            Some(error) => Err(error),
            None => Ok(values),
        }
    }

    /// Runs two journaled calls and returns the first to succeed; which one won is recorded,
    /// so a later attempt takes the same branch whatever finishes first then. When both must
    /// wait, the job suspends until either can go on: `select` of a [`wait`](Self::wait) and a
    /// [`sleep`](Self::sleep) is a wait with a deadline.
    pub fn select<A, B, TA, TB>(
        &self,
        a: A,
        b: B,
    ) -> impl Future<Output = Result<Selected<TA, TB>, JobError>>
    where
        A: IntoFuture<Output = Result<TA, JobError>>,
        B: IntoFuture<Output = Result<TB, JobError>>,
    {
        let slot = self.slot();
        async move {
            let (journal, position) = self.take(slot, "select")?;
            if let Some(entry) = journal.entry(position, "select", "select", None)? {
                let winner: u8 = decode(
                    &journal,
                    position,
                    "select",
                    entry
                        .output
                        .as_ref()
                        .and_then(|o| o.get("winner"))
                        .cloned()
                        .unwrap_or(Value::Null),
                )?;
                return if winner == 0 {
                    a.await.map(Selected::First)
                } else {
                    b.await.map(Selected::Second)
                };
            }
            let mut a = Box::pin(a.into_future());
            let mut b = Box::pin(b.into_future());
            let mut waiting: [Option<Suspension>; 2] = [None, None];
            let won = loop {
                tokio::select! {
                    biased;
                    result = &mut a, if waiting[0].is_none() => match result {
                        Ok(value) => break Selected::First(value),
                        Err(e) => waiting[0] = Some(suspension(e)?),
                    },
                    result = &mut b, if waiting[1].is_none() => match result {
                        Ok(value) => break Selected::Second(value),
                        Err(e) => waiting[1] = Some(suspension(e)?),
                    },
                    else => {
                        let [Some(x), Some(y)] = waiting else {
                            unreachable!("both branches are disabled only once both wait")
                        };
                        return Err(x.or(y).into());
                    }
                }
            };
            let winner = if matches!(won, Selected::First(_)) {
                0
            } else {
                1
            };
            let entry = journal.new_entry(position, "select", "select", None);
            journal
                .record(entry, &json!({ "winner": winner }).to_string(), "select")
                .await?;
            Ok(won)
        }
    }

    /// Records the job's progress (any JSON value), readable from its record
    /// ([`JobRecord::progress`](crate::job::JobRecord::progress)) while it runs. Not journaled:
    /// the last write wins. Fails with [`Error::LeaseLost`] if the attempt lost the job.
    pub async fn progress(&self, value: impl Serialize) -> Result<(), Error> {
        if self.journal.as_ref().is_some_and(|j| j.replaying()) {
            return Ok(());
        }
        let text = serde_json::to_string(&value)
            .map_err(|e| Error::json("the progress does not serialize", e))?;
        crate::validate::json_value("the progress", &text)?;
        if store::progress(self.client.pool(), self.id.0, self.attempt, &text).await? {
            Ok(())
        } else {
            Err(Error::LeaseLost { id: self.id })
        }
    }
}

/// The suspension inside `error`, or `error` itself when it is not one.
fn suspension(error: JobError) -> Result<Suspension, JobError> {
    match error.kind {
        JobErrorKind::Suspended(s) => Ok(s),
        kind => Err(JobError::new(kind)),
    }
}

/// Two errors of calls run together: both waiting is waiting for either; otherwise the one that
/// is not a suspension (a divergence first).
fn merge(a: JobError, b: JobError) -> JobError {
    match (a.kind, b.kind) {
        (JobErrorKind::Suspended(x), JobErrorKind::Suspended(y)) => x.or(y).into(),
        (JobErrorKind::Diverged(d), _) | (_, JobErrorKind::Diverged(d)) => {
            JobError::new(JobErrorKind::Diverged(d))
        }
        (JobErrorKind::Suspended(_), other) | (other, _) => JobError::new(other),
    }
}

fn uuid7() -> String {
    let ms = u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0) & 0xFFFF_FFFF_FFFF;
    let random = crate::random::random_u64();
    let more = crate::random::random_u64();
    let hi = (ms << 16) | 0x7000 | (random & 0x0FFF);
    let lo = (more & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xFFFF,
        hi & 0xFFFF,
        lo >> 48,
        lo & 0xFFFF_FFFF_FFFF
    )
}

/// Which of two calls given to [`JobContext::select`] finished first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selected<A, B> {
    /// The first call's output.
    First(A),
    /// The second call's output.
    Second(B),
}

/// A journaled step being configured; [`run`](Step::run) it. Built by [`JobContext::step`].
#[must_use = "a step does nothing until it is run"]
pub struct Step<'a> {
    ctx: &'a JobContext,
    slot: Slot,
    name: &'static str,
    key: Option<String>,
    attempts: u32,
    backoff: Backoff,
    timeout: Option<Duration>,
}

impl fmt::Debug for Step<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Step")
            .field("name", &self.name)
            .field("key", &self.key)
            .field("position", &self.slot.as_ref().map(|s| s.1))
            .finish_non_exhaustive()
    }
}

impl<'a> Step<'a> {
    /// Distinguishes calls of one step name (in a loop, say): part of the call's identity.
    pub fn key(mut self, key: impl fmt::Display) -> Self {
        self.key = Some(key.to_string());
        self
    }

    /// Runs the closure up to `attempts` times in this attempt of the job, waiting `backoff`
    /// between them, while it fails with a retryable error. Default: once (the job's own
    /// retries run it again).
    pub fn retry(mut self, attempts: u32, backoff: Backoff) -> Self {
        self.attempts = attempts.max(1);
        self.backoff = backoff;
        self
    }

    /// Fails a run of the closure that takes longer than `limit` (a retryable error).
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// Runs the step: the recorded output if there is one, else the closure's, recorded.
    pub async fn run<T, F, Fut>(self, mut f: F) -> Result<T, JobError>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, JobError>>,
    {
        let (journal, position) = self.ctx.take(self.slot, "step")?;
        let key = self.key.as_deref();
        let what = format!("step `{}`", self.name);
        if let Some(entry) = journal.entry(position, "step", self.name, key)? {
            return decode(
                &journal,
                position,
                &what,
                entry.output.clone().unwrap_or(Value::Null),
            );
        }
        let mut attempt = 1;
        let value = loop {
            let run = IN_STEP.scope(self.name, f());
            let result = match self.timeout {
                Some(limit) => tokio::time::timeout(limit, run).await.unwrap_or_else(|_| {
                    Err(JobError::retry(format!("{what} timed out after {limit:?}")))
                }),
                None => run.await,
            };
            match result {
                Ok(value) => break value,
                Err(e)
                    if attempt < self.attempts && matches!(e.kind, JobErrorKind::Retry { .. }) =>
                {
                    let delay = self
                        .backoff
                        .delay(attempt as i32, crate::random::random_unit());
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        };
        let text = serde_json::to_string(&value).map_err(|e| {
            JobError::fatal(format!("the output of {what} does not serialize: {e}"))
        })?;
        if crate::validate::json_has_nul(&text) {
            return Err(JobError::fatal(format!(
                "the output of {what} contains a NUL character (`\\u0000`), which PostgreSQL \
                 cannot store; remove it or encode binary data (base64, hex)"
            )));
        }
        let entry = journal.new_entry(position, "step", self.name, key);
        journal.record(entry, &text, &what).await?;
        // What later attempts will read: the same value whatever serde drops or rounds.
        decode(
            &journal,
            position,
            &what,
            serde_json::from_str(&text).map_err(JobError::fatal)?,
        )
    }
}

/// A durable sleep; `.await` it. Built by [`JobContext::sleep`] and
/// [`JobContext::sleep_until`].
#[must_use = "a sleep does nothing until it is awaited"]
pub struct Sleep<'a> {
    ctx: &'a JobContext,
    slot: Slot,
    name: &'static str,
    key: Option<String>,
    until: Option<DateTime<Utc>>,
    duration: Duration,
}

impl fmt::Debug for Sleep<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("name", &self.name)
            .field("key", &self.key)
            .field("until", &self.until)
            .field("duration", &self.duration)
            .finish_non_exhaustive()
    }
}

impl Sleep<'_> {
    /// Distinguishes sleeps of one name (in a loop, say): part of the call's identity.
    pub fn key(mut self, key: impl fmt::Display) -> Self {
        self.key = Some(key.to_string());
        self
    }

    async fn run(self) -> Result<(), JobError> {
        let (journal, position) = self.ctx.take(self.slot, "sleep")?;
        let key = self.key.as_deref();
        let recorded = journal.entry(position, "sleep", self.name, key)?;
        let (until, due) = match recorded {
            Some(entry) => {
                let until: DateTime<Utc> = decode(
                    &journal,
                    position,
                    "sleep",
                    entry
                        .output
                        .as_ref()
                        .and_then(|o| o.get("until"))
                        .cloned()
                        .unwrap_or(Value::Null),
                )?;
                (until, until <= journal.db_now())
            }
            None => {
                let entry = journal.new_entry(position, "sleep", self.name, key);
                let delay = self.duration.min(crate::validate::MAX_DELAY).as_secs_f64();
                let what = format!("sleep `{}`", self.name);
                journal
                    .record_sleep(entry, self.until, delay, &what)
                    .await?
            }
        };
        if due {
            Ok(())
        } else {
            Err(Suspension::new(json!({ "sleep": self.name }), Some(until)).into())
        }
    }
}

impl<'a> IntoFuture for Sleep<'a> {
    type Output = Result<(), JobError>;
    type IntoFuture = BoxFuture<'a, Self::Output>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// How a [`wait`](JobContext::wait) ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waited<E> {
    /// The event, emitted before the wait began or while it waited.
    Received(E),
    /// The timeout passed first. An event emitted later is kept (visible in the events table)
    /// but does not change this outcome.
    TimedOut,
}

impl<E> Waited<E> {
    /// The event, or `None` when the wait timed out.
    pub fn received(self) -> Option<E> {
        match self {
            Waited::Received(event) => Some(event),
            Waited::TimedOut => None,
        }
    }
}

/// A wait for an event being configured; `.await` it. Built by [`JobContext::wait`].
#[must_use = "a wait does nothing until it is awaited"]
pub struct Wait<'a, E> {
    ctx: &'a JobContext,
    slot: Slot,
    key: String,
    timeout: Option<Duration>,
    _event: PhantomData<fn() -> E>,
}

impl<E> fmt::Debug for Wait<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wait")
            .field("event", &std::any::type_name::<E>())
            .field("key", &self.key)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl<'a, E: Event> Wait<'a, E> {
    /// Gives up after `limit` (from when the wait began, by the database's clock) with
    /// [`Waited::TimedOut`]. Default: waits for as long as it takes.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    async fn run(self) -> Result<Waited<E>, JobError> {
        let (journal, position) = self.ctx.take(self.slot, "wait")?;
        let key = Some(self.key.as_str());
        let what = format!("wait for `{}`", E::NAME);
        let recorded = journal.entry(position, "wait", E::NAME, key)?;
        let (state, output) = match recorded.filter(|e| e.state == "done") {
            Some(entry) => ("done".to_owned(), entry.output.clone()),
            None => {
                let entry = journal.new_entry(position, "wait", E::NAME, key);
                let timeout = self
                    .timeout
                    .map(|t| t.min(crate::validate::MAX_DELAY).as_secs_f64());
                let resolved = store::resolve_wait(self.ctx.client.pool(), entry, timeout)
                    .await
                    .map_err(|e| db_error(&what, e))?
                    .ok_or_else(|| journal.lost())?;
                (resolved.state, resolved.output)
            }
        };
        let output = output.unwrap_or(Value::Null);
        if state != "done" {
            let until = output
                .get("until")
                .and_then(|u| serde_json::from_value(u.clone()).ok());
            return Err(
                Suspension::new(json!({ "event": E::NAME, "key": self.key }), until).into(),
            );
        }
        if output.get("timed_out").is_some() {
            return Ok(Waited::TimedOut);
        }
        let payload = output.get("event").cloned().unwrap_or(Value::Null);
        serde_json::from_value(payload)
            .map(Waited::Received)
            .map_err(|e| {
                JobError::fatal(format!(
                    "event `{}` with key `{}` does not deserialize into `{}`: {e}",
                    E::NAME,
                    self.key,
                    std::any::type_name::<E>()
                ))
            })
    }
}

impl<'a, E: Event> IntoFuture for Wait<'a, E> {
    type Output = Result<Waited<E>, JobError>;
    type IntoFuture = BoxFuture<'a, Self::Output>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// A child job being spawned; `.await` it for its [`Child`]. Built by [`JobContext::spawn`].
#[must_use = "a spawn does nothing until it is awaited"]
pub struct Spawn<'a, J> {
    ctx: &'a JobContext,
    slot: Slot,
    name: &'static str,
    key: Option<String>,
    job: J,
}

impl<J> fmt::Debug for Spawn<'_, J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spawn")
            .field("name", &self.name)
            .field("key", &self.key)
            .field("job", &std::any::type_name::<J>())
            .finish_non_exhaustive()
    }
}

impl<'a, J: Job> Spawn<'a, J> {
    /// Distinguishes spawns of one name (in a loop, say): part of the call's identity.
    pub fn key(mut self, key: impl fmt::Display) -> Self {
        self.key = Some(key.to_string());
        self
    }

    async fn run(self) -> Result<Child<J>, JobError> {
        let (journal, position) = self.ctx.take(self.slot, "spawn")?;
        let key = self.key.as_deref();
        let what = format!("spawn `{}`", self.name);
        if let Some(entry) = journal.entry(position, "spawn", self.name, key)? {
            let id: i64 = decode(
                &journal,
                position,
                &what,
                entry
                    .output
                    .as_ref()
                    .and_then(|o| o.get("child"))
                    .cloned()
                    .unwrap_or(Value::Null),
            )?;
            return Ok(Child::new(journal, self.name, id));
        }
        let client = &self.ctx.client;
        let spawned = async {
            // The child first, the record (with the parent's fence) last: the parent's row is
            // locked in share mode only for the end of the transaction, not while an insert may
            // wait on a unique key (lease renewals would wait behind it).
            let mut tx = client.pool().begin().await?;
            let handle = Enqueue::new_tx(client, &mut tx, self.job).await?;
            let id = handle.id().0;
            // A unique job that exists already becomes the child, unless it has a parent, or
            // is this job or one of its ancestors.
            match store::adopt(&mut tx, journal.job, id).await? {
                Adopted::Yes => {}
                Adopted::HasParent(other) => {
                    return Err(Error::InvalidInput(format!(
                        "job {id}, which holds the same unique key, is already the child of \
                         job {other}; a job has one parent"
                    )));
                }
                Adopted::Ancestor => {
                    return Err(Error::InvalidInput(format!(
                        "job {id}, which holds the same unique key, is this job or one of its \
                         ancestors; a job cannot be its own descendant"
                    )));
                }
            }
            // Recorded under the parent's fence, with the child, in one transaction.
            let entry = journal.new_entry(position, "spawn", self.name, key);
            let row = call_row(&entry, Some(json!({ "child": id }).to_string()), None, None);
            if store::record_calls(&mut *tx, &[&row], false)
                .await?
                .is_empty()
            {
                return Ok(None);
            }
            tx.commit().await?;
            Ok::<_, Error>(Some(id))
        };
        match spawned.await {
            Ok(Some(id)) => Ok(Child::new(journal, self.name, id)),
            Ok(None) => Err(journal.lost()),
            Err(e @ Error::InvalidInput(_)) => Err(JobError::fatal(format!("{what}: {e}"))),
            Err(e) => Err(db_error(&what, e)),
        }
    }
}

impl<'a, J: Job> IntoFuture for Spawn<'a, J> {
    type Output = Result<Child<J>, JobError>;
    type IntoFuture = BoxFuture<'a, Self::Output>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// A child job spawned by a durable job; [`join`](Child::join) it for its output.
pub struct Child<J> {
    journal: Arc<Journal>,
    name: &'static str,
    id: i64,
    _job: PhantomData<fn() -> J>,
}

impl<J> fmt::Debug for Child<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("name", &self.name)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl<J: Job> Child<J> {
    fn new(journal: Arc<Journal>, name: &'static str, id: i64) -> Self {
        Self {
            journal,
            name,
            id,
            _job: PhantomData,
        }
    }

    /// The child's id.
    pub fn id(&self) -> JobId {
        JobId(self.id)
    }

    /// Waits for the child to finish: its output if it completed, a fatal error saying how it
    /// ended otherwise. The parent suspends meanwhile (it does not poll); the child's end wakes
    /// it. The result is recorded, so later attempts get it even once the child is deleted.
    pub fn join(&self) -> Join<J> {
        Join {
            journal: self.journal.clone(),
            position: place(&self.journal).map(|(_, position)| position),
            name: self.name,
            id: self.id,
            _job: PhantomData,
        }
    }
}

/// The join of a [`Child`]; `.await` it.
#[must_use = "a join does nothing until it is awaited"]
pub struct Join<J> {
    journal: Arc<Journal>,
    position: Result<i32, Unavailable>,
    name: &'static str,
    id: i64,
    _job: PhantomData<fn() -> J>,
}

impl<J> fmt::Debug for Join<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Join")
            .field("name", &self.name)
            .field("child", &self.id)
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl<J: Job> Join<J> {
    async fn run(self) -> Result<J::Output, JobError> {
        let journal = self.journal;
        let position = self
            .position
            .map_err(|why| unavailable(why, J::KIND, "join"))?;
        let key = self.id.to_string();
        let what = format!("join of child `{}` (job {})", self.name, self.id);
        let output = match journal.entry(position, "join", self.name, Some(&key))? {
            Some(entry) => entry.output.clone().unwrap_or(Value::Null),
            None => {
                let entry = journal.new_entry(position, "join", self.name, Some(&key));
                let resolved = store::resolve_join(journal.client.pool(), entry, self.id)
                    .await
                    .map_err(|e| db_error(&what, e))?
                    .ok_or_else(|| journal.lost())?;
                if resolved.state != "done" {
                    return Err(Suspension::new(json!({ "child": self.id }), None).into());
                }
                resolved.output.unwrap_or(Value::Null)
            }
        };
        let state = output.get("state").and_then(Value::as_str).unwrap_or("?");
        if state == "completed" {
            let value = output.get("output").cloned().unwrap_or(Value::Null);
            return Storable::from_value(value).map_err(|e| {
                journal.diverge(format!(
                    "position {position}: the output recorded for {what} does not deserialize \
                     into `{}`: {e}",
                    std::any::type_name::<J::Output>()
                ))
            });
        }
        let error = output
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no error recorded");
        Err(JobError::fatal(format!(
            "child job {} (`{}`) ended {state}: {error}",
            self.id,
            J::KIND
        )))
    }
}

impl<J: Job> IntoFuture for Join<J> {
    type Output = Result<J::Output, JobError>;
    type IntoFuture = BoxFuture<'static, Self::Output>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}
