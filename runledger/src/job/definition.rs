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
    type Output: Storable + Send + 'static;

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

/// A value stored as JSON: a job's arguments and output, a workflow's inputs.
///
/// Implemented for every type that implements serde's `Serialize` and `DeserializeOwned`;
/// derive those two (`#[derive(serde::Serialize, serde::Deserialize)]`) to make a type storable.
/// `#[job]` and `#[workflow]` check it at each parameter and output type, so a type without serde
/// is reported once, at that type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored as JSON: it does not implement `serde::Serialize` and `serde::Deserialize`",
    label = "job arguments, job outputs and workflow inputs are stored as JSON",
    note = "derive them with `#[derive(serde::Serialize, serde::Deserialize)]` on `{Self}` (and on the types it contains), or use a type that has them"
)]
pub trait Storable {
    /// This value as JSON text.
    fn to_json(&self) -> Result<String, serde_json::Error>;

    /// This value as a JSON value.
    fn to_value(&self) -> Result<serde_json::Value, serde_json::Error>;

    /// A value read back from JSON.
    fn from_value(value: serde_json::Value) -> Result<Self, serde_json::Error>
    where
        Self: Sized;
}

// Not recommended: a type that lacks serde is reported as "cannot be stored as JSON", not as
// the first serde trait it misses.
#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned> Storable for T {
    fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    fn to_value(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::to_value(self)
    }

    fn from_value(value: serde_json::Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(value)
    }
}
