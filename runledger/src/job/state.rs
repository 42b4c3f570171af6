//! [`JobState`]: the states of a job, as stored.

use crate::error::Error;

/// The states of a job. See `docs/job-states.md` for the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JobState {
    /// Waiting for its `run_at` time.
    Scheduled,
    /// Ready to be claimed.
    Available,
    /// Claimed by a worker that holds its lease.
    Running,
    /// Failed an attempt; waits for its backoff before running again.
    Retryable,
    /// A durable job suspended until a time, an event or a child job's end; it holds no
    /// worker meanwhile.
    Waiting,
    /// Finished successfully.
    Completed,
    /// Failed for good (attempts exhausted, fatal error).
    Failed,
    /// Cancelled.
    Cancelled,
    /// A durable job whose code no longer matches its journal (terminal; see `docs/durable.md`).
    Diverged,
}

impl JobState {
    /// All states.
    pub const ALL: [JobState; 9] = [
        JobState::Scheduled,
        JobState::Available,
        JobState::Running,
        JobState::Retryable,
        JobState::Waiting,
        JobState::Completed,
        JobState::Failed,
        JobState::Cancelled,
        JobState::Diverged,
    ];

    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Scheduled => "scheduled",
            JobState::Available => "available",
            JobState::Running => "running",
            JobState::Retryable => "retryable",
            JobState::Waiting => "waiting",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::Diverged => "diverged",
        }
    }

    /// Completed, failed, cancelled or diverged: no transition leaves these states.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Failed | JobState::Cancelled | JobState::Diverged
        )
    }

    pub(crate) fn parse(s: &str) -> Result<Self, Error> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| Error::InvalidInput(format!("unknown job state `{s}` in the database")))
    }

    /// The bit of this state in the unique-states mask (see the migration).
    pub(crate) fn bit(self) -> i16 {
        1 << JobState::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for JobState {
    type Err = Error;

    /// A state by its stored name (`failed`, `available`, ...).
    fn from_str(s: &str) -> Result<Self, Error> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "unknown job state `{s}`; the states are {}",
                    JobState::ALL.map(JobState::as_str).join(", ")
                ))
            })
    }
}

impl serde::Serialize for JobState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_honour_width_and_alignment() {
        assert_eq!(format!("{:<10}|", JobState::Running), "running   |");
        assert_eq!(format!("{:>10}|", JobState::Failed), "    failed|");
        assert_eq!(
            format!("{:^9}|", crate::workflow::RunState::Running),
            " running |"
        );
        assert_eq!(
            format!("{:<8}|", crate::workflow::StepState::Skipped),
            "skipped |"
        );
    }
}
