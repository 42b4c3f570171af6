//! Starting a run: [`WorkflowEnqueue`] checks the input and the shape's arguments and writes the
//! run and its steps in one transaction.

use std::future::{Future, IntoFuture};
use std::pin::Pin;

use sqlx::PgConnection;

use super::definition::Workflow;
use super::handle::WorkflowHandle;
use super::shape::StepKind;
use crate::client::runledger::Runledger;
use crate::error::Error;
use crate::ids::RunId;
use crate::job::RowSettings;
use crate::store;
use crate::store::workflows::{NewRun, NewStep};

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
    // The first steps' jobs record the trace context of the span that starts the run (feature
    // `otel`), set for this transaction only and cleared before it ends.
    #[cfg(feature = "otel")]
    let traced = match crate::otel::traceparent(&tracing::Span::current()) {
        Some(traceparent) => {
            store::jobs::set_trace_context(conn, &traceparent, true).await?;
            true
        }
        None => false,
    };
    let started = store::workflows::insert_run(conn, run).await?;
    if started.inserted {
        store::workflows::insert_dag(conn, started.id, run).await?;
    }
    #[cfg(feature = "otel")]
    if traced {
        store::jobs::set_trace_context(conn, "", true).await?;
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
                let settings = RowSettings::check(
                    kind,
                    options.queue,
                    options.priority,
                    options.max_attempts,
                    options.timeout,
                )
                .map_err(|e| {
                    Error::InvalidInput(format!(
                        "step `{}` of workflow `{}`: {}",
                        step.key,
                        shape.name,
                        e.to_string().trim_start_matches("invalid input: ")
                    ))
                })?;
                new.kind = Some(kind);
                new.queue = Some(options.queue);
                new.priority = Some(settings.priority);
                new.max_attempts = Some(settings.max_attempts);
                new.timeout_ms = settings.timeout_ms;
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
