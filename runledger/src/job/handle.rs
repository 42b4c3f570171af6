//! [`JobHandle`]: a typed reference to an enqueued job; wait for its output.

use std::marker::PhantomData;
use std::time::Duration;

use super::definition::Storable;
use super::state::JobState;
use crate::client::runledger::Runledger;
use crate::client::wait::poll;
use crate::error::Error;
use crate::ids::JobId;
use crate::store;

/// A typed reference to an enqueued job; [`wait`](JobHandle::wait) for its output.
#[derive(Debug, Clone)]
pub struct JobHandle<O> {
    client: Runledger,
    id: JobId,
    inserted: bool,
    _output: PhantomData<fn() -> O>,
}

impl<O: Storable> JobHandle<O> {
    pub(super) fn new(client: Runledger, id: JobId, inserted: bool) -> Self {
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
    /// [`Error::JobFailed`], [`Error::JobCancelled`] or (a durable job whose code no longer
    /// matches its journal) [`Error::JobDiverged`] otherwise.
    pub async fn wait(&self) -> Result<O, Error> {
        self.wait_inner(None).await
    }

    /// The progress the job last reported
    /// ([`JobContext::progress`](crate::JobContext::progress)), if any.
    pub async fn progress(&self) -> Result<Option<serde_json::Value>, Error> {
        store::durable::progress_of(self.client.pool(), self.id.0)
            .await?
            .ok_or(Error::JobNotFound { id: self.id })
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
                    O::from_value(output).map(Ok).map_err(|e| {
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
                JobState::Diverged => Err(Error::JobDiverged {
                    id,
                    diff: status
                        .last_error
                        .unwrap_or_else(|| "no difference recorded".into()),
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
