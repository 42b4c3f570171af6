//! What the database says about a job: its state, its record, the result of a cancel.

use chrono::{DateTime, Utc};

use super::state::JobState;
use crate::error::Error;
use crate::ids::JobId;
use crate::store;

/// The result of [`Runledger::cancel`](crate::Runledger::cancel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CancelOutcome {
    /// The job had not started; it is now `cancelled`.
    Cancelled,
    /// The job is running; its worker has been asked to stop it.
    Requested,
    /// The job had already finished in this state; nothing changed.
    AlreadyFinished(JobState),
}

impl CancelOutcome {
    pub(crate) fn from_previous_state(id: JobId, before: Option<String>) -> Result<Self, Error> {
        let before = before.ok_or(Error::JobNotFound { id })?;
        let state = JobState::parse(&before)?;
        Ok(match state {
            JobState::Running => CancelOutcome::Requested,
            s if s.is_finished() => CancelOutcome::AlreadyFinished(s),
            _ => CancelOutcome::Cancelled,
        })
    }
}

/// A job as stored in the database.
///
/// Its `Debug` output leaves out the payload, output and unique key of kinds declared
/// `#[job(sensitive)]` in this binary.
#[derive(Clone)]
#[non_exhaustive]
pub struct JobRecord {
    /// Its id.
    pub id: JobId,
    /// Its kind.
    pub kind: String,
    /// Its queue.
    pub queue: String,
    /// Its state.
    pub state: JobState,
    /// Its priority (larger runs first).
    pub priority: i16,
    /// The payload.
    pub args: serde_json::Value,
    /// The output, once completed.
    pub output: Option<serde_json::Value>,
    /// One entry per failed attempt: `{"attempt", "at", "error"}`.
    pub errors: Vec<serde_json::Value>,
    /// Attempts started.
    pub attempt: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// When it is or was due.
    pub run_at: DateTime<Utc>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When the latest attempt started.
    pub attempted_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// Its unique key, if any.
    pub unique_key: Option<String>,
    /// The durable job that spawned it, for a child job.
    pub parent_id: Option<JobId>,
    /// While `waiting`: what wakes it (a JSON array: `{"event", "key"}`, `{"child"}`,
    /// `{"sleep"}`, `{"kind", "version"}`); `run_at` wakes it regardless.
    pub waiting_for: Option<serde_json::Value>,
    /// The last progress its handler reported ([`JobContext::progress`](crate::JobContext::progress)).
    pub progress: Option<serde_json::Value>,
}

impl std::fmt::Debug for JobRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = crate::registry::is_sensitive(&self.kind);
        let redact = |value: &dyn std::fmt::Debug| -> String {
            if hidden {
                "<redacted>".to_owned()
            } else {
                format!("{value:?}")
            }
        };
        f.debug_struct("JobRecord")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("queue", &self.queue)
            .field("state", &self.state)
            .field("priority", &self.priority)
            .field("args", &format_args!("{}", redact(&self.args)))
            .field("output", &format_args!("{}", redact(&self.output)))
            .field("errors", &self.errors)
            .field("attempt", &self.attempt)
            .field("max_attempts", &self.max_attempts)
            .field("run_at", &self.run_at)
            .field("created_at", &self.created_at)
            .field("attempted_at", &self.attempted_at)
            .field("finished_at", &self.finished_at)
            .field("unique_key", &format_args!("{}", redact(&self.unique_key)))
            .field("parent_id", &self.parent_id)
            .field("waiting_for", &self.waiting_for)
            .field("progress", &self.progress)
            .finish()
    }
}

impl JobRecord {
    pub(crate) fn from_row(row: store::jobs::JobRow) -> Self {
        let errors = match row.errors {
            serde_json::Value::Array(items) => items,
            other => vec![other],
        };
        JobRecord {
            id: JobId(row.id),
            kind: row.kind,
            queue: row.queue,
            // The CHECK constraint admits only known states.
            state: JobState::parse(&row.state).unwrap_or(JobState::Failed),
            priority: row.priority,
            args: row.args,
            output: row.output,
            errors,
            attempt: row.attempt,
            max_attempts: row.max_attempts,
            run_at: row.run_at,
            created_at: row.created_at,
            attempted_at: row.attempted_at,
            finished_at: row.finished_at,
            unique_key: row.unique_key,
            parent_id: row.parent_id.map(JobId),
            waiting_for: row.waiting_for,
            progress: row.progress,
        }
    }

    /// The last recorded error message, if any attempt failed.
    pub fn last_error(&self) -> Option<&str> {
        self.errors.last()?.get("error")?.as_str()
    }
}
