//! The typed handle on a run: wait for its output, read its steps, complete its gates, cancel
//! it.

use std::marker::PhantomData;
use std::time::Duration;

use super::definition::Workflow;
use super::record::{GateOutcome, RunRecord, RunState};
use crate::client::runledger::Runledger;
use crate::error::Error;
use crate::ids::RunId;
use crate::job::definition::Storable;
use crate::store;

/// A typed reference to a workflow run; [`wait`](WorkflowHandle::wait) for its output.
#[derive(Debug, Clone)]
pub struct WorkflowHandle<O> {
    client: Runledger,
    id: RunId,
    inserted: bool,
    fingerprint: Option<String>,
    _output: PhantomData<fn() -> O>,
}

impl<O: Storable> WorkflowHandle<O> {
    pub(super) fn new(client: Runledger, id: RunId, inserted: bool) -> Self {
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
        crate::client::wait::poll(timeout, || async move {
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
                    O::from_value(output).map(Ok).map_err(|e| {
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
