//! Workflows: DAGs of job steps declared with [`#[workflow]`](macro@crate::workflow), checked by the
//! compiler, stored with each run and advanced by the database as steps finish.
//!
//! The macro generates, for a workflow function `fulfil_order`, an input struct `FulfilOrder`
//! implementing [`Workflow`], its typed enqueue (returning a [`WorkflowHandle`]) and a
//! [`WorkflowRegistration`]. The static [`WorkflowShape`] (steps, kinds, edges, bindings) and
//! its [`fingerprint`](WorkflowShape::fingerprint) are constants of the input type.

mod client;
mod definition;
mod enqueue;
mod handle;
mod record;
mod shape;

pub(crate) use definition::check_registrations;
pub use definition::{Workflow, WorkflowRegistration, workflows};
pub use enqueue::WorkflowEnqueue;
pub use handle::WorkflowHandle;
pub use record::{GateOutcome, RunRecord, RunState, StepRecord, StepState};
pub use shape::{Binding, Dependency, StepKind, StepShape, WorkflowShape};

pub use crate::ids::RunId;
