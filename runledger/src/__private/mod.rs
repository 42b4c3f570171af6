//! Support for the code that `#[job]` and `#[workflow]` generate. Not a public API: anything here
//! may change in any release.

mod codec;

pub use crate::job::Storable;
pub use codec::{FieldIndex, Refused, RefusedSeed, Serde, Unimplemented};
pub use inventory;
pub use serde;
pub use serde_json;

pub use crate::client::Runledger;
pub use crate::error::Error;
pub use crate::job::{
    Backoff, Enqueue, Job, JobContext, JobError, JobOptions, StateRequirement, UniqueScope,
};
pub use crate::registry::JobRegistration;
pub use crate::schedule::{CronOptions, MissedSlots};
pub use crate::workflow::{
    Binding, Dependency, StepKind, StepShape, Workflow, WorkflowEnqueue, WorkflowRegistration,
    WorkflowShape,
};

/// The unique key of a job declared `unique`: its kind and the JSON of the chosen fields.
pub fn unique_key<T: serde::Serialize + ?Sized>(kind: &str, fields: &T) -> String {
    match serde_json::to_string(fields) {
        Ok(json) => format!("{kind}:{json}"),
        // A payload that does not serialize is rejected at enqueue anyway.
        Err(_) => kind.to_owned(),
    }
}

pub use sqlx::PgConnection;

/// One argument of a workflow step known at enqueue: the parameter's name and its JSON.
#[derive(Debug)]
pub struct ArgValue {
    name: &'static str,
    value: Result<serde_json::Value, serde_json::Error>,
}

impl ArgValue {
    /// The argument `name` with `value`.
    pub fn new<T: serde::Serialize + ?Sized>(name: &'static str, value: &T) -> Self {
        Self {
            name,
            value: serde_json::to_value(value),
        }
    }
}

/// The arguments of step `step` known at enqueue, as a JSON object.
pub fn step_args(
    step: &str,
    args: impl IntoIterator<Item = ArgValue>,
) -> Result<serde_json::Map<String, serde_json::Value>, crate::Error> {
    args.into_iter()
        .map(|arg| match arg.value {
            Ok(value) => Ok((arg.name.to_owned(), value)),
            Err(e) => Err(crate::Error::json(
                format!("argument `{}` of step `{step}`", arg.name),
                e,
            )),
        })
        .collect()
}

/// A value of any type, for type checks that are compiled and never run.
pub fn placeholder<T>() -> T {
    unreachable!("type-check placeholder evaluated")
}

/// Name `index` of `fields`, in const context; `"?"` past the end (the call with the wrong
/// number of arguments is reported on its own).
pub const fn field_name(fields: &'static [&'static str], index: usize) -> &'static str {
    if index < fields.len() {
        fields[index]
    } else {
        "?"
    }
}
