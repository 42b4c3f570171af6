//! The workflow operations of the [`Runledger`] client.

use sqlx::{PgConnection, PgExecutor};

use super::definition::Workflow;
use super::enqueue::WorkflowEnqueue;
use super::handle::WorkflowHandle;
use super::record::{GateOutcome, RunRecord, RunState, StepRecord, StepState};
use crate::client::runledger::Runledger;
use crate::error::Error;
use crate::ids::{JobId, RunId};
use crate::store;

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
                    attempt: s.attempt.filter(|_| s.job_state.is_some()),
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
        complete_gate(self.pool(), id, name).await
    }

    /// [`complete_gate`](Self::complete_gate) inside the caller's transaction: the steps it
    /// releases start only if the transaction commits.
    pub async fn complete_gate_tx(
        &self,
        tx: &mut PgConnection,
        id: RunId,
        name: &str,
    ) -> Result<GateOutcome, Error> {
        complete_gate(tx, id, name).await
    }

    /// Cancels run `id` as a whole: steps not started are cancelled, jobs not started are
    /// cancelled, running step jobs are asked to stop. Returns the run's state before; a run
    /// that had finished is left as it was.
    pub async fn cancel_workflow(&self, id: RunId) -> Result<RunState, Error> {
        let mut tx = self.pool().begin().await?;
        let state = cancel_workflow(&mut tx, id).await?;
        tx.commit().await?;
        Ok(state)
    }

    /// [`cancel_workflow`](Self::cancel_workflow) inside the caller's transaction: a rollback
    /// leaves the run as it was.
    pub async fn cancel_workflow_tx(
        &self,
        tx: &mut PgConnection,
        id: RunId,
    ) -> Result<RunState, Error> {
        cancel_workflow(tx, id).await
    }
}

async fn complete_gate<'e>(
    db: impl PgExecutor<'e>,
    id: RunId,
    name: &str,
) -> Result<GateOutcome, Error> {
    crate::validate::text("the gate name", name)?;
    let outcome = store::workflows::complete_gate(db, id.0, name).await?;
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

/// Cancels run `id`, and the children its durable step jobs spawned.
async fn cancel_workflow(conn: &mut PgConnection, id: RunId) -> Result<RunState, Error> {
    let before = store::workflows::cancel(&mut *conn, id.0)
        .await?
        .ok_or(Error::RunNotFound { run: id })?;
    store::workflows::cancel_spawned(conn, id.0).await?;
    RunState::parse(&before)
}
