//! Starting runs, and the typed handle on a run: wait for its output, read its steps, complete
//! its gates, cancel it.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use super::{StepKind, Workflow};
use crate::client::Runledger;
use crate::error::Error;
use crate::job::JobId;
use crate::store;
use crate::store::workflows::{NewRun, NewStep};

/// The database identifier of a workflow run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub i64);

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RunState {
    /// Steps are still running or waiting.
    Running,
    /// Every step completed.
    Completed,
    /// A step failed, was cancelled or skipped, and nothing is left that can run.
    Failed,
    /// The run was cancelled as a whole.
    Cancelled,
}

/// Where a step stands. See `docs/workflows.md` for the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StepState {
    /// Waiting for the steps it depends on.
    Pending,
    /// Released: its job exists (available, running or retrying).
    Ready,
    /// A gate not completed yet.
    Waiting,
    /// Finished successfully (for a gate: completed from outside).
    Completed,
    /// Its job failed for good.
    Failed,
    /// Never ran: a step it needed did not succeed, or the run failed first.
    Skipped,
    /// Cancelled (its job, or the whole run).
    Cancelled,
}

macro_rules! db_enum {
    ($ty:ident { $($variant:ident = $name:literal),* $(,)? }) => {
        impl $ty {
            /// The name stored in the database.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $name),* }
            }

            pub(crate) fn parse(s: &str) -> Result<Self, Error> {
                match s {
                    $($name => Ok($ty::$variant),)*
                    other => Err(Error::InvalidInput(format!(
                        "unknown {} `{other}` in the database", stringify!($ty)
                    ))),
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

db_enum!(RunState {
    Running = "running",
    Completed = "completed",
    Failed = "failed",
    Cancelled = "cancelled",
});

db_enum!(StepState {
    Pending = "pending",
    Ready = "ready",
    Waiting = "waiting",
    Completed = "completed",
    Failed = "failed",
    Skipped = "skipped",
    Cancelled = "cancelled",
});

/// A run as stored, with its steps.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RunRecord {
    /// Its id.
    pub id: RunId,
    /// The workflow's name.
    pub name: String,
    /// The fingerprint of the shape it was started under.
    pub fingerprint: String,
    /// Its state.
    pub state: RunState,
    /// The input it was started with.
    pub input: serde_json::Value,
    /// Its output, once completed.
    pub output: Option<serde_json::Value>,
    /// Why it failed, once failed.
    pub error: Option<String>,
    /// The idempotency key it was started with.
    pub idempotency_key: Option<String>,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// Its steps, in declaration order.
    pub steps: Vec<StepRecord>,
}

impl RunRecord {
    /// The step with this key.
    pub fn step(&self, key: &str) -> Option<&StepRecord> {
        self.steps.iter().find(|s| s.key == key)
    }
}

/// One step of a run as stored.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StepRecord {
    /// Its key.
    pub key: String,
    /// The job kind, for a job step.
    pub kind: Option<String>,
    /// The gate's name, for a gate.
    pub gate: Option<String>,
    /// Its state.
    pub state: StepState,
    /// Its job, once released (absent from the database once pruned).
    pub job: Option<JobId>,
    /// Attempts its job made, while the job is stored.
    pub attempts: Option<i32>,
    /// Its output, once completed.
    pub output: Option<serde_json::Value>,
    /// Why it failed or was skipped.
    pub error: Option<String>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
}

/// The result of [`WorkflowHandle::complete_gate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GateOutcome {
    /// The gate was waiting and is now completed; steps after it are released.
    Completed,
    /// The gate had already been completed; nothing changed.
    AlreadyCompleted,
    /// The run ended (cancelled or failed) before the gate was completed; nothing changed.
    RunOver(StepState),
}

/// A typed workflow start being configured; `.await` it to start the run.
///
/// ```no_run
/// # use runledger::{job, workflow, JobError, Runledger};
/// # #[job] async fn ship(order: u64) -> Result<(), JobError> { Ok(()) }
/// # #[workflow] fn fulfil(order: u64) { ship(order) }
/// # async fn demo(rl: Runledger) -> Result<(), runledger::Error> {
/// let run = Fulfil { order: 42 }
///     .enqueue(&rl)
///     .idempotency_key("order-42")
///     .await?;
/// run.wait().await?;
/// # Ok(()) }
/// ```
#[must_use = "a workflow enqueue does nothing until it is awaited"]
pub struct WorkflowEnqueue<'a, W: Workflow> {
    client: &'a Runledger,
    tx: Option<&'a mut PgConnection>,
    input: W,
    idempotency_key: Option<String>,
}

impl<'a, W: Workflow> WorkflowEnqueue<'a, W> {
    /// Starts a run of `input` on `client`'s pool.
    pub fn new(client: &'a Runledger, input: W) -> Self {
        Self {
            client,
            tx: None,
            input,
            idempotency_key: None,
        }
    }

    /// Starts a run of `input` inside the open transaction `tx`; a rollback leaves nothing.
    pub fn new_tx(client: &'a Runledger, tx: &'a mut PgConnection, input: W) -> Self {
        Self {
            tx: Some(tx),
            ..Self::new(client, input)
        }
    }

    /// Makes the start idempotent: starting again with the same key and the same input returns
    /// the same run; the same key with another input is [`Error::IdempotencyConflict`].
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    async fn run(self) -> Result<WorkflowHandle<W::Output>, Error> {
        let args = self.input.step_args()?;
        let input = serde_json::to_string(&self.input)
            .map_err(|e| Error::json(format!("input of workflow `{}`", W::NAME), e))?;
        let limit = self.client.max_payload_bytes();
        if input.len() > limit {
            return Err(Error::PayloadTooLarge {
                what: format!("input of workflow `{}`", W::NAME),
                size: input.len(),
                limit,
            });
        }
        crate::validate::json_value(&format!("the input of workflow `{}`", W::NAME), &input)?;
        if let Some(key) = &self.idempotency_key {
            if key.is_empty() || key.len() > 512 {
                return Err(Error::InvalidInput(format!(
                    "an idempotency key must be 1 to 512 bytes long; this one is {}",
                    key.len()
                )));
            }
            crate::validate::text("the idempotency key", key)?;
        }
        let run = new_run::<W>(input, self.idempotency_key.as_deref(), args, limit)?;
        // Both inserts in one transaction: a savepoint inside the caller's transaction, so that
        // a run row is never left without its steps even on a connection in autocommit.
        let mut pooled;
        let conn: &mut PgConnection = match self.tx {
            Some(conn) => conn,
            None => {
                pooled = self.client.pool().acquire().await?;
                &mut pooled
            }
        };
        let mut tx = sqlx::Connection::begin(conn).await?;
        let started = start(&mut tx, &run).await?;
        tx.commit().await?;
        let id = RunId(started.id);
        if !started.inserted {
            let fingerprint = started.fingerprint.unwrap_or_default();
            if fingerprint != run.fingerprint {
                return Err(Error::ShapeChanged {
                    run: id,
                    name: W::NAME.to_owned(),
                    stored: fingerprint,
                    current: run.fingerprint,
                });
            }
            if started.same_input != Some(true) {
                return Err(Error::IdempotencyConflict {
                    name: W::NAME.to_owned(),
                    key: self.idempotency_key.unwrap_or_default(),
                    run: id,
                });
            }
        }
        Ok(WorkflowHandle::new(
            self.client.clone(),
            id,
            started.inserted,
        ))
    }
}

impl<'a, W: Workflow> IntoFuture for WorkflowEnqueue<'a, W> {
    type Output = Result<WorkflowHandle<W::Output>, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

async fn start(
    conn: &mut PgConnection,
    run: &NewRun<'_>,
) -> Result<store::workflows::Started, Error> {
    let started = store::workflows::insert_run(conn, run).await?;
    if started.inserted {
        store::workflows::insert_dag(conn, started.id, run).await?;
    }
    Ok(started)
}

/// The rows of a new run of `W`: its shape with the arguments known at enqueue.
fn new_run<'a, W: Workflow>(
    input: String,
    idempotency_key: Option<&'a str>,
    args: Vec<serde_json::Map<String, serde_json::Value>>,
    limit: usize,
) -> Result<NewRun<'a>, Error> {
    let shape = &W::SHAPE;
    if args.len() != shape.steps.len() {
        return Err(Error::Config(format!(
            "workflow `{}` produced arguments for {} steps but declares {}; rebuild the crate \
             that declares it",
            shape.name,
            args.len(),
            shape.steps.len()
        )));
    }
    let mut steps = Vec::with_capacity(shape.steps.len());
    let mut edges = Vec::new();
    let mut bindings = Vec::new();
    for (step, args) in shape.steps.iter().zip(args) {
        let args = serde_json::Value::Object(args).to_string();
        if args.len() > limit {
            return Err(Error::PayloadTooLarge {
                what: format!(
                    "arguments of step `{}` of workflow `{}`",
                    step.key, shape.name
                ),
                size: args.len(),
                limit,
            });
        }
        crate::validate::json_value(
            &format!(
                "the arguments of step `{}` of workflow `{}`",
                step.key, shape.name
            ),
            &args,
        )?;
        let mut new = NewStep {
            key: step.key,
            kind: None,
            gate: None,
            pending_deps: step.after.len() as i32,
            args,
            queue: None,
            priority: None,
            max_attempts: None,
            timeout_ms: None,
        };
        match step.kind {
            StepKind::Job { kind, options } => {
                new.kind = Some(kind);
                new.queue = Some(options.queue);
                new.priority = Some(options.priority);
                new.max_attempts = Some(options.max_attempts);
                crate::validate::name("kind", kind)?;
                crate::validate::name("queue", options.queue)?;
                if options.max_attempts < 1 {
                    return Err(Error::InvalidInput(format!(
                        "step `{}` of workflow `{}`: job `{kind}` allows {} attempts; it needs \
                         at least 1",
                        step.key, shape.name, options.max_attempts
                    )));
                }
                new.timeout_ms = options
                    .timeout
                    .map(|t| i64::try_from(t.as_millis()).unwrap_or(i64::MAX).max(1));
            }
            StepKind::Gate { name } => new.gate = Some(name),
        }
        steps.push(new);
        edges.extend(step.after.iter().map(|d| (d.step, step.key, d.on_any)));
        for b in step.bindings {
            let path = serde_json::to_string(b.path).unwrap_or_else(|_| "[]".into());
            bindings.push((b.step, step.key, b.param, path));
        }
    }
    Ok(NewRun {
        name: shape.name,
        fingerprint: shape.fingerprint_hex(),
        input,
        output_step: shape.output,
        idempotency_key,
        steps,
        edges,
        bindings,
    })
}

/// A typed reference to a workflow run; [`wait`](WorkflowHandle::wait) for its output.
#[derive(Debug, Clone)]
pub struct WorkflowHandle<O> {
    client: Runledger,
    id: RunId,
    inserted: bool,
    fingerprint: Option<String>,
    _output: PhantomData<fn() -> O>,
}

impl<O: serde::de::DeserializeOwned> WorkflowHandle<O> {
    fn new(client: Runledger, id: RunId, inserted: bool) -> Self {
        Self {
            client,
            id,
            inserted,
            fingerprint: None,
            _output: PhantomData,
        }
    }

    /// A handle on run `id` of workflow `W`, which [`wait`](Self::wait) checks was started under
    /// `W`'s current shape.
    pub fn of<W: Workflow<Output = O>>(client: &Runledger, id: RunId) -> Self {
        Self {
            fingerprint: Some(W::SHAPE.fingerprint_hex()),
            ..Self::new(client.clone(), id, false)
        }
    }

    /// The run's id.
    pub fn id(&self) -> RunId {
        self.id
    }

    /// False if a run with the same idempotency key existed: this handle then refers to it.
    pub fn inserted(&self) -> bool {
        self.inserted
    }

    /// Waits until the run finishes: its typed output if it completed,
    /// [`Error::WorkflowFailed`] or [`Error::WorkflowCancelled`] otherwise.
    pub async fn wait(&self) -> Result<O, Error> {
        self.wait_inner(None).await
    }

    /// Like [`wait`](Self::wait), giving up with [`Error::WorkflowWaitTimeout`] after `timeout`.
    pub async fn wait_timeout(&self, timeout: Duration) -> Result<O, Error> {
        self.wait_inner(Some(timeout)).await
    }

    async fn wait_inner(&self, timeout: Option<Duration>) -> Result<O, Error> {
        let id = self.id;
        crate::client::poll(timeout, || async move {
            let run = store::workflows::get(self.client.pool(), id.0)
                .await?
                .ok_or(Error::RunNotFound { run: id })?;
            if let Some(current) = &self.fingerprint
                && *current != run.fingerprint
            {
                return Err(Error::ShapeChanged {
                    run: id,
                    name: run.name,
                    stored: run.fingerprint,
                    current: current.clone(),
                });
            }
            match RunState::parse(&run.state)? {
                RunState::Completed => {
                    let output = run.output.unwrap_or(serde_json::Value::Null);
                    serde_json::from_value(output).map(Ok).map_err(|e| {
                        Error::json(format!("output of run {id} does not deserialize"), e)
                    })
                }
                RunState::Failed => Err(Error::WorkflowFailed {
                    run: id,
                    error: run.error.unwrap_or_else(|| "no error recorded".into()),
                }),
                RunState::Cancelled => Err(Error::WorkflowCancelled { run: id }),
                RunState::Running => Ok(Err(run.state)),
            }
        })
        .await?
        .map_err(|_| Error::WorkflowWaitTimeout { run: id })
    }

    /// The run and its steps as stored now.
    pub async fn status(&self) -> Result<RunRecord, Error> {
        self.client
            .workflow_run(self.id)
            .await?
            .ok_or(Error::RunNotFound { run: self.id })
    }

    /// Completes the gate declared `external!(name)` in this run.
    pub async fn complete_gate(&self, name: &str) -> Result<GateOutcome, Error> {
        self.client.complete_gate(self.id, name).await
    }

    /// Cancels the run as a whole; see [`Runledger::cancel_workflow`].
    pub async fn cancel(&self) -> Result<RunState, Error> {
        self.client.cancel_workflow(self.id).await
    }
}

impl Runledger {
    /// Starts a run of `input`. Same as `input.enqueue(&rl)`.
    pub fn start<W: Workflow>(&self, input: W) -> WorkflowEnqueue<'_, W> {
        WorkflowEnqueue::new(self, input)
    }

    /// Reads run `id` and its steps, or `None` if there is no such run.
    pub async fn workflow_run(&self, id: RunId) -> Result<Option<RunRecord>, Error> {
        let Some(run) = store::workflows::get(self.pool(), id.0).await? else {
            return Ok(None);
        };
        let steps = store::workflows::steps(self.pool(), id.0).await?;
        let steps = steps
            .into_iter()
            .map(|s| {
                Ok(StepRecord {
                    state: StepState::parse(&s.state)?,
                    key: s.key,
                    kind: s.kind,
                    gate: s.gate,
                    job: s.job_id.map(JobId),
                    attempts: s.attempt.filter(|_| s.job_state.is_some()),
                    output: s.output,
                    error: s.error,
                    finished_at: s.finished_at,
                })
            })
            .collect::<Result<_, Error>>()?;
        Ok(Some(RunRecord {
            id,
            state: RunState::parse(&run.state)?,
            name: run.name,
            fingerprint: run.fingerprint,
            input: run.input,
            output: run.output,
            error: run.error,
            idempotency_key: run.idempotency_key,
            created_at: run.created_at,
            finished_at: run.finished_at,
            steps,
        }))
    }

    /// A typed handle on an existing run of `W` (for instance one started in a transaction).
    pub fn workflow_handle<W: Workflow>(&self, id: RunId) -> WorkflowHandle<W::Output> {
        WorkflowHandle::of::<W>(self, id)
    }

    /// Completes the gate declared `external!(name)` in run `id`. Idempotent: completing it
    /// again is [`GateOutcome::AlreadyCompleted`]. A run without such a gate is
    /// [`Error::GateNotFound`]: a gate is only ever completed in its own run.
    pub async fn complete_gate(&self, id: RunId, name: &str) -> Result<GateOutcome, Error> {
        crate::validate::text("the gate name", name)?;
        let outcome = store::workflows::complete_gate(self.pool(), id.0, name).await?;
        let not_found = || Error::GateNotFound {
            run: id,
            gate: name.to_owned(),
        };
        match outcome.as_deref() {
            None | Some("no_run" | "no_step") => Err(not_found()),
            Some("settled") => Ok(GateOutcome::Completed),
            Some("completed") => Ok(GateOutcome::AlreadyCompleted),
            Some(state) => Ok(GateOutcome::RunOver(StepState::parse(state)?)),
        }
    }

    /// Cancels run `id` as a whole: steps not started are cancelled, jobs not started are
    /// cancelled, running step jobs are asked to stop. Returns the run's state before; a run
    /// that had finished is left as it was.
    pub async fn cancel_workflow(&self, id: RunId) -> Result<RunState, Error> {
        let before = store::workflows::cancel(self.pool(), id.0)
            .await?
            .ok_or(Error::RunNotFound { run: id })?;
        RunState::parse(&before)
    }
}
