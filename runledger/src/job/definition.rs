//! The [`Job`] trait that `#[job]` implements.

use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::context::JobContext;
use super::error::JobError;
use super::inject::StateRequirement;
use super::options::JobOptions;

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
    /// [`JobHandle::wait`](crate::job::JobHandle::wait).
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
