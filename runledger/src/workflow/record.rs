//! Runs and steps as stored: [`RunRecord`], [`StepRecord`], their states, and the outcome of
//! completing a gate.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::error::Error;
use crate::ids::{JobId, RunId};

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
                f.pad(self.as_str())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = Error;

            /// A state by its stored name.
            fn from_str(s: &str) -> Result<Self, Error> {
                match s {
                    $($name => Ok($ty::$variant),)*
                    other => Err(Error::InvalidInput(format!(
                        "unknown {} `{other}`; expected one of: {}",
                        stringify!($ty),
                        [$($name),*].join(", ")
                    ))),
                }
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
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
#[derive(Debug, Clone, serde::Serialize)]
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
#[derive(Debug, Clone, serde::Serialize)]
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
    /// The attempt its job is on or ended on (as [`JobRecord::attempt`](crate::job::JobRecord)),
    /// while the job is stored.
    pub attempt: Option<i32>,
    /// Its output, once completed.
    pub output: Option<serde_json::Value>,
    /// Why it failed or was skipped.
    pub error: Option<String>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
}

/// The result of [`WorkflowHandle::complete_gate`](crate::workflow::WorkflowHandle::complete_gate).
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
