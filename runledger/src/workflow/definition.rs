//! The [`Workflow`] trait that `#[workflow]` implements, and the registrations that let a
//! program list its workflows and refuse two under one name.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::shape::WorkflowShape;
use crate::error::Error;
use crate::job::definition::Storable;

/// A workflow: an input type with a static DAG of steps.
///
/// You do not implement this by hand: `#[workflow]` generates the input struct, this impl and
/// the registration.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a runledger workflow",
    label = "not a workflow input",
    note = "annotate a function with `#[runledger::workflow]`; its generated input struct implements `Workflow`"
)]
pub trait Workflow: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The stable name stored with every run; runs are looked up by it.
    const NAME: &'static str;
    /// The DAG: steps, their kinds, edges and bindings.
    const SHAPE: WorkflowShape;
    /// The run's output: the output of the step named by the body's tail expression.
    type Output: Storable + Send + 'static;

    /// The arguments each job step takes from the inputs, evaluated at enqueue, as JSON objects
    /// keyed by parameter name, in the order of [`WorkflowShape::steps`] (gates included, empty).
    fn step_args(&self) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, Error>;
}

/// The registration of one workflow, submitted by the code `#[workflow]` generates.
#[derive(Debug)]
pub struct WorkflowRegistration {
    pub(crate) shape: &'static WorkflowShape,
    pub(crate) type_name: fn() -> &'static str,
}

impl WorkflowRegistration {
    /// The registration of workflow `W`.
    pub const fn of<W: Workflow>() -> Self {
        Self {
            shape: &W::SHAPE,
            type_name: std::any::type_name::<W>,
        }
    }

    /// The workflow's shape.
    pub fn shape(&self) -> &'static WorkflowShape {
        self.shape
    }
}

inventory::collect!(WorkflowRegistration);

/// Every workflow linked into the binary, for listings and checks.
pub fn workflows() -> impl Iterator<Item = &'static WorkflowShape> {
    inventory::iter::<WorkflowRegistration>
        .into_iter()
        .map(|r| r.shape)
}

/// Refuses two workflows registered under one name.
pub(crate) fn check_registrations() -> Result<(), Error> {
    let mut seen = std::collections::HashMap::new();
    for reg in inventory::iter::<WorkflowRegistration> {
        if let Some(previous) = seen.insert(reg.shape.name, reg) {
            return Err(Error::Config(format!(
                "workflow `{}` is declared twice, by `{}` and by `{}`; give one of them another \
                 `#[workflow(name = \"...\")]`",
                reg.shape.name,
                (previous.type_name)(),
                (reg.type_name)()
            )));
        }
    }
    Ok(())
}
