//! Test support for durable jobs: [`DurableDriver`] runs a job (and its children) here, against
//! the database, to completion or to a named call, with sleeps skipped and events supplied;
//! [`replay`] re-runs a handler against a recorded journal and reports the first difference.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;

use crate::client::Runledger;
use crate::durable::journal::Journal;
use crate::durable::{Event, JournalEntry};
use crate::error::Error;
use crate::job::error::JobErrorKind;
use crate::job::{Job, JobContext, JobId, JobState, StateMap, StopReason, Storable};
use crate::registry;
use crate::runtime::executor::{Env, attempt_job};
use crate::store;

/// How a driven job stood when [`DurableDriver`] returned.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Outcome<O> {
    /// It completed with this output.
    Completed(O),
    /// It reached the call named in [`DurableDriver::stop_before`], unrecorded; resume it with
    /// [`DurableDriver::resume`].
    Stopped {
        /// The call's name.
        before: String,
    },
    /// It waits for something the driver cannot supply (an event it was not given, a worker
    /// of another version): `waiting_for` as stored.
    Waiting {
        /// What it waits for (see [`JobRecord::waiting_for`](crate::job::JobRecord::waiting_for)).
        waiting_for: Value,
    },
    /// It ended failed, cancelled or diverged.
    Ended {
        /// Its state.
        state: JobState,
        /// Its last error (for a divergence, the difference).
        error: Option<String>,
    },
}

/// What [`DurableDriver::run`] did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DurableRun<O> {
    /// The job.
    pub id: JobId,
    /// How it stood at the end.
    pub outcome: Outcome<O>,
    /// Its journal at the end.
    pub journal: Vec<JournalEntry>,
    /// Attempts the driver ran, of the job and its children.
    pub attempts: u32,
}

/// Runs a durable job here, attempt after attempt, against the database: its children too;
/// its sleeps end at once (unless [`keep_sleeps`](Self::keep_sleeps)); the events it was given
/// are emitted when it waits for them; retries run without their backoff.
///
/// ```no_run
/// # use runledger::{job, JobContext, JobError, Runledger};
/// # use runledger::testing::durable::{DurableDriver, Outcome};
/// # #[job(durable)]
/// # async fn onboard(ctx: &JobContext, user: i64) -> Result<(), JobError> {
/// #     ctx.sleep("grace", std::time::Duration::from_secs(86_400)).await?;
/// #     Ok(())
/// # }
/// # async fn demo(rl: Runledger) -> Result<(), runledger::Error> {
/// let run = DurableDriver::new(&rl).run(Onboard { user: 7 }).await?;
/// assert_eq!(run.outcome, Outcome::Completed(()));
/// # Ok(()) }
/// ```
pub struct DurableDriver {
    client: Runledger,
    state: Arc<StateMap>,
    events: Vec<(&'static str, String, String)>,
    skip_sleeps: bool,
    stop_before: Option<&'static str>,
    max_attempts: u32,
}

impl fmt::Debug for DurableDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurableDriver")
            .field("events", &self.events.len())
            .field("skip_sleeps", &self.skip_sleeps)
            .field("stop_before", &self.stop_before)
            .finish_non_exhaustive()
    }
}

impl DurableDriver {
    /// A driver on `rl`'s database.
    pub fn new(rl: &Runledger) -> Self {
        Self {
            client: rl.clone(),
            state: Arc::new(StateMap::default()),
            events: Vec::new(),
            skip_sleeps: true,
            stop_before: None,
            max_attempts: 1_000,
        }
    }

    /// Adds a value for `State<T>` parameters.
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        Arc::make_mut(&mut self.state).insert(value);
        self
    }

    /// Supplies `event`: emitted when a job waits for it.
    pub fn event<E: Event>(mut self, event: E) -> Self {
        let payload = serde_json::to_string(&event).expect("an event serializes");
        self.events.push((E::NAME, event.key(), payload));
        self
    }

    /// Leaves sleeps alone (by default they end at once): a job that sleeps is then reported
    /// as [`Outcome::Waiting`], to be driven again once its time has come.
    pub fn keep_sleeps(mut self) -> Self {
        self.skip_sleeps = false;
        self
    }

    /// Stops the job before the first call named `name` it has not recorded.
    pub fn stop_before(mut self, name: &'static str) -> Self {
        self.stop_before = Some(name);
        self
    }

    /// Enqueues `job` and drives it.
    pub async fn run<J: Job>(&self, job: J) -> Result<DurableRun<J::Output>, Error> {
        let handle = self.client.enqueue(job).await?;
        self.drive(handle.id()).await
    }

    /// Drives job `id` on (after a stop, or anything enqueued elsewhere).
    pub async fn resume<O: Storable>(&self, id: JobId) -> Result<DurableRun<O>, Error> {
        for job in store::admin::tree(self.client.pool(), id.0).await? {
            if job.state == "waiting" && job.waiting_for.as_ref().is_some_and(is_stop) {
                store::admin::end_sleeps(self.client.pool(), job.id).await?;
            }
        }
        let driver = DurableDriver {
            client: self.client.clone(),
            state: self.state.clone(),
            events: self.events.clone(),
            skip_sleeps: self.skip_sleeps,
            stop_before: None,
            max_attempts: self.max_attempts,
        };
        driver.drive(id).await
    }

    async fn drive<O: Storable>(&self, id: JobId) -> Result<DurableRun<O>, Error> {
        let pool = self.client.pool();
        let handlers = registry::table(registry::all())?;
        let mut attempts = 0;
        loop {
            let tree = store::admin::tree(pool, id.0).await?;
            let Some(root) = tree.iter().find(|j| j.id == id.0) else {
                return Err(Error::JobNotFound { id });
            };
            if JobState::parse(&root.state)?.is_finished() {
                break;
            }
            // Children first, so that a parent waiting for one finds it finished.
            let mut progressed = false;
            for job in tree.iter().rev() {
                match job.state.as_str() {
                    "available" | "scheduled" | "retryable" => {
                        if attempts >= self.max_attempts {
                            return Err(Error::InvalidInput(format!(
                                "the driver ran {attempts} attempts without job {id} finishing"
                            )));
                        }
                        attempts += 1;
                        self.attempt(&handlers, job.id).await?;
                        progressed = true;
                        break;
                    }
                    "waiting" => {
                        let waits = job.waiting_for.clone().unwrap_or(Value::Null);
                        if waits.as_array().is_some_and(|c| c.iter().any(is_stop)) {
                            continue;
                        }
                        if self.unblock(job.id, &waits).await? {
                            progressed = true;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            if !progressed {
                break;
            }
        }
        let record = self
            .client
            .job(id)
            .await?
            .ok_or(Error::JobNotFound { id })?;
        let outcome = match record.state {
            JobState::Completed => Outcome::Completed(
                O::from_value(record.output.clone().unwrap_or(Value::Null)).map_err(|e| {
                    Error::json(format!("output of job {id} does not deserialize"), e)
                })?,
            ),
            JobState::Waiting => {
                let waiting_for = record.waiting_for.clone().unwrap_or(Value::Null);
                match waiting_for
                    .as_array()
                    .and_then(|c| c.iter().find_map(|c| c.get("stop")?.as_str()))
                {
                    Some(before) => Outcome::Stopped {
                        before: before.to_owned(),
                    },
                    None => Outcome::Waiting { waiting_for },
                }
            }
            state => Outcome::Ended {
                state,
                error: record.last_error().map(str::to_owned),
            },
        };
        Ok(DurableRun {
            id,
            outcome,
            journal: self.client.journal(id).await?,
            attempts,
        })
    }

    /// Runs one attempt of job `id` and writes its outcome, as a worker would.
    async fn attempt(
        &self,
        handlers: &std::collections::HashMap<&'static str, &'static registry::JobRegistration>,
        id: i64,
    ) -> Result<(), Error> {
        let pool = self.client.pool();
        let Some(claimed) = store::admin::claim_one(pool, id, Duration::from_secs(300)).await?
        else {
            return Ok(());
        };
        let registration = *handlers.get(claimed.kind.as_str()).ok_or_else(|| {
            Error::Config(format!(
                "no job of kind `{}` is linked into this binary",
                claimed.kind
            ))
        })?;
        let env = Env {
            client: &self.client,
            state: &self.state,
            lease: Duration::from_secs(300),
            max_output_bytes: self.client.max_payload_bytes(),
            stop_before: self.stop_before,
            journaler: None,
        };
        let (_stop_tx, stop) = tokio::sync::watch::channel::<Option<StopReason>>(None);
        if let Some(outcome) = attempt_job(&env, registration, claimed, stop).await {
            store::jobs::complete_batch(pool, &[outcome]).await?;
        }
        Ok(())
    }

    /// Supplies what waiting job `id` waits for, if the driver can: ends its sleeps, emits a
    /// supplied event. Returns whether it did anything.
    async fn unblock(&self, id: i64, waits: &Value) -> Result<bool, Error> {
        let conditions = waits.as_array().cloned().unwrap_or_default();
        // Supplied events first: a wait with a deadline (`select` of a wait and a sleep)
        // receives the event rather than reaching its deadline.
        for condition in &conditions {
            let (Some(name), Some(key)) = (
                condition.get("event").and_then(Value::as_str),
                condition.get("key").and_then(Value::as_str),
            ) else {
                continue;
            };
            if let Some((name, key, payload)) =
                self.events.iter().find(|(n, k, _)| *n == name && k == key)
            {
                store::durable::emit(self.client.pool(), name, key, payload).await?;
                return Ok(true);
            }
        }
        if self.skip_sleeps && conditions.iter().any(|c| c.get("sleep").is_some()) {
            store::admin::end_sleeps(self.client.pool(), id).await?;
            return Ok(true);
        }
        Ok(false)
    }
}

fn is_stop(condition: &Value) -> bool {
    condition.get("stop").is_some()
        || condition
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c.get("stop").is_some()))
}

/// What [`replay`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Replay {
    /// The code makes every recorded call, in order. `next` is the first call it would make
    /// that the journal does not hold (`None`: the handler returned).
    Matches {
        /// Calls replayed.
        replayed: usize,
        /// The first call beyond the journal, described, or what the job waits for.
        next: Option<String>,
    },
    /// The code no longer matches the journal: the first difference.
    Diverged {
        /// The difference, as the `diverged` state would record it.
        diff: String,
    },
    /// The handler failed during the replay (a recorded output it could not use, say).
    Failed {
        /// Its error.
        error: String,
    },
}

/// Replays the journal recorded for job `id` against the code of `J` linked into this binary,
/// writing nothing: every recorded call returns its recorded result, and the replay stops at
/// the first call the journal does not hold. Run it in CI against journals of jobs in flight
/// before deploying a change to `J`.
pub async fn replay<J: Job>(rl: &Runledger, id: JobId) -> Result<Replay, Error> {
    let record = rl.job(id).await?.ok_or(Error::JobNotFound { id })?;
    let job: J = serde_json::from_value(record.args)
        .map_err(|e| Error::json(format!("payload of job {id} does not deserialize"), e))?;
    let journal = rl.journal(id).await?;
    replay_journal(rl, job, journal).await
}

/// [`replay`] of `job` against `journal` (read with [`Runledger::journal`], possibly in another
/// database, and stored with the test).
pub async fn replay_journal<J: Job>(
    rl: &Runledger,
    job: J,
    journal: Vec<JournalEntry>,
) -> Result<Replay, Error> {
    let now = Utc::now();
    let rows = journal
        .into_iter()
        .map(|e| store::durable::EntryRow {
            position: e.position,
            kind: e.kind,
            name: e.name,
            key: e.key,
            state: e.state,
            output: e.output,
            attempt: e.attempt,
            version: e.version,
            recorded_at: e.recorded_at,
            db_now: now,
        })
        .collect();
    let journal =
        Arc::new(Journal::new(rl.clone(), 0, 0, J::OPTIONS.version, rows, now).replay_only());
    let (_stop_tx, stop) = tokio::sync::watch::channel::<Option<StopReason>>(None);
    let ctx = JobContext {
        id: JobId(0),
        kind: J::KIND,
        queue: J::OPTIONS.queue.to_owned(),
        attempt: 0,
        max_attempts: J::OPTIONS.max_attempts,
        state: Arc::new(StateMap::default()),
        client: rl.clone(),
        stop,
        lease: Duration::from_secs(300),
        journal: Some(journal.clone()),
    };
    let result = job.run(&ctx).await;
    if let Some(diff) = journal.diverged() {
        return Ok(Replay::Diverged { diff });
    }
    Ok(match result {
        Ok(_) => match journal.check_complete() {
            Some(diff) => Replay::Diverged { diff },
            None => Replay::Matches {
                replayed: journal.built(),
                next: None,
            },
        },
        Err(error) => match error.kind {
            JobErrorKind::Suspended(suspension) => {
                let next = suspension
                    .conditions
                    .iter()
                    .find_map(|c| c.get("next")?.as_str().map(str::to_owned))
                    .unwrap_or_else(|| suspension.to_string());
                let replayed = suspension
                    .conditions
                    .iter()
                    .find_map(|c| c.get("replayed")?.as_u64())
                    .map_or_else(|| journal.built().saturating_sub(1), |p| p as usize);
                Replay::Matches {
                    replayed,
                    next: Some(next),
                }
            }
            JobErrorKind::Diverged(diff) => Replay::Diverged { diff },
            _ => Replay::Failed {
                error: error.to_string(),
            },
        },
    })
}
