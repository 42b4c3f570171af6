//! [`JobError`]: how a handler ends other than in success.

use std::fmt;
use std::time::Duration;

/// How a handler ends other than in success.
///
/// `?` on any error converts it into a retryable failure. Use the constructors for the rest:
/// [`JobError::fatal`] stops retrying, [`JobError::snooze`] reschedules without spending an
/// attempt, [`JobError::cancel`] cancels the job.
///
/// `JobError` deliberately does not implement `std::error::Error`, so that every error type can
/// convert into it with `?`.
pub struct JobError {
    pub(crate) kind: JobErrorKind,
}

#[derive(Debug)]
pub(crate) enum JobErrorKind {
    Retry {
        message: String,
        delay: Option<Duration>,
    },
    Fatal(String),
    Snooze(Duration),
    Cancel(String),
    /// A durable call cannot go on now: the job leaves its worker until one of the conditions
    /// happens or the time comes.
    Suspended(crate::durable::suspension::Suspension),
    /// The code no longer matches the job's journal (the text is the difference).
    Diverged(String),
    /// The attempt no longer holds the job; nothing it writes counts.
    LeaseLost,
}

impl JobError {
    /// A failed attempt, retried with the kind's backoff while attempts remain.
    pub fn retry(error: impl fmt::Display) -> Self {
        Self {
            kind: JobErrorKind::Retry {
                message: error.to_string(),
                delay: None,
            },
        }
    }
    /// A failed attempt, retried after exactly `delay` while attempts remain.
    pub fn retry_after(error: impl fmt::Display, delay: Duration) -> Self {
        Self {
            kind: JobErrorKind::Retry {
                message: error.to_string(),
                delay: Some(delay),
            },
        }
    }
    /// A failure that retrying cannot fix: the job is failed now, whatever attempts remain.
    pub fn fatal(error: impl fmt::Display) -> Self {
        Self {
            kind: JobErrorKind::Fatal(error.to_string()),
        }
    }
    /// Not now: run the job again after `delay` without counting this attempt.
    pub fn snooze(delay: Duration) -> Self {
        Self {
            kind: JobErrorKind::Snooze(delay),
        }
    }
    /// Give up on the job and mark it cancelled, with a reason.
    pub fn cancel(reason: impl fmt::Display) -> Self {
        Self {
            kind: JobErrorKind::Cancel(reason.to_string()),
        }
    }
    /// True for [`JobError::fatal`].
    pub fn is_fatal(&self) -> bool {
        matches!(self.kind, JobErrorKind::Fatal(_))
    }
    /// True when a durable call suspended the job (a sleep, a wait for an event or a child):
    /// return it with `?` so that the job leaves its worker; it runs again, replaying its
    /// journal, when what it waits for happens.
    pub fn is_suspended(&self) -> bool {
        matches!(self.kind, JobErrorKind::Suspended(_))
    }
    pub(crate) fn new(kind: JobErrorKind) -> Self {
        Self { kind }
    }
}

impl From<crate::durable::suspension::Suspension> for JobError {
    fn from(suspension: crate::durable::suspension::Suspension) -> Self {
        JobError::new(JobErrorKind::Suspended(suspension))
    }
}

impl fmt::Debug for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.kind.fmt(f)
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            JobErrorKind::Retry { message, .. } => f.write_str(message),
            JobErrorKind::Fatal(message) => write!(f, "fatal: {message}"),
            JobErrorKind::Snooze(delay) => write!(f, "snoozed for {delay:?}"),
            JobErrorKind::Cancel(reason) => write!(f, "cancelled: {reason}"),
            JobErrorKind::Suspended(suspension) => write!(f, "suspended: {suspension}"),
            JobErrorKind::Diverged(diff) => write!(f, "diverged from its journal: {diff}"),
            JobErrorKind::LeaseLost => f.write_str("the attempt lost its lease"),
        }
    }
}

impl<E> From<E> for JobError
where
    E: std::error::Error + Send + Sync + 'static,
{
    fn from(error: E) -> Self {
        // Keep the whole chain of causes in the recorded message.
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        JobError::retry(message)
    }
}
