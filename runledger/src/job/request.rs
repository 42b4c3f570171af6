//! [`JobRequest`]: an untyped job with its options, ready to insert; the per-call overrides it
//! shares with [`Enqueue`](crate::job::Enqueue).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::definition::Job;
use super::options::{RowSettings, UniqueScope};
use super::state::JobState;
use crate::error::Error;
use crate::store::jobs::NewJob;
use crate::validate;

/// An untyped job ready to insert: kind, JSON payload and options. Built from any [`Job`] with
/// `JobRequest::new(job)` or `job.into()`, then adjusted with the same overrides as
/// [`Enqueue`](crate::job::Enqueue).
///
/// Its `Debug` output leaves out the payload and unique key of a `#[job(sensitive)]` kind.
#[derive(Clone)]
#[must_use]
pub struct JobRequest {
    kind: &'static str,
    args: Result<String, String>,
    unique_key: Option<String>,
    pub(super) opts: Overrides,
    defaults: super::options::JobOptions,
}

impl std::fmt::Debug for JobRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = f.debug_struct("JobRequest");
        s.field("kind", &self.kind);
        if self.defaults.sensitive {
            s.field("args", &format_args!("<redacted>"))
                .field("unique_key", &format_args!("<redacted>"))
                .field("opts", &format_args!("<redacted>"));
        } else {
            s.field("args", &self.args)
                .field("unique_key", &self.unique_key)
                .field("opts", &self.opts);
        }
        s.field("defaults", &self.defaults).finish()
    }
}

#[derive(Debug, Clone, Default)]
pub(super) struct Overrides {
    pub(super) queue: Option<String>,
    pub(super) priority: Option<i16>,
    pub(super) max_attempts: Option<i32>,
    pub(super) run_at: Option<DateTime<Utc>>,
    pub(super) run_in: Option<Duration>,
    pub(super) timeout: Option<Option<Duration>>,
    pub(super) unique_key: Option<String>,
    pub(super) unique_scope: Option<UniqueScope>,
}

impl<J: Job> From<J> for JobRequest {
    fn from(job: J) -> Self {
        JobRequest::new(job)
    }
}

macro_rules! override_methods {
    ($($field:ident)?) => {
        /// Puts the job on `queue` instead of its kind's default.
        pub fn with_queue(mut self, queue: impl Into<String>) -> Self {
            self$(.$field)?.opts.queue = Some(queue.into());
            self
        }
        /// Sets the priority (larger runs first).
        pub fn with_priority(mut self, priority: i16) -> Self {
            self$(.$field)?.opts.priority = Some(priority);
            self
        }
        /// Sets the number of attempts allowed.
        pub fn with_max_attempts(mut self, max_attempts: i32) -> Self {
            self$(.$field)?.opts.max_attempts = Some(max_attempts);
            self
        }
        /// Sets or clears the per-attempt timeout.
        pub fn with_timeout(mut self, timeout: Option<::std::time::Duration>) -> Self {
            self$(.$field)?.opts.timeout = Some(timeout);
            self
        }
        /// Runs the job no earlier than `at` (database clock).
        pub fn run_at(mut self, at: ::chrono::DateTime<::chrono::Utc>) -> Self {
            self$(.$field)?.opts.run_at = Some(at);
            self
        }
        /// Runs the job no earlier than `delay` after it is inserted (database clock).
        pub fn run_in(mut self, delay: ::std::time::Duration) -> Self {
            self$(.$field)?.opts.run_in = Some(delay);
            self
        }
        /// Makes the job unique by `key`: while another job holds the same key (see
        /// [`UniqueScope`](crate::job::UniqueScope)), enqueueing returns that job instead of inserting a new one.
        pub fn unique_key(mut self, key: impl Into<String>) -> Self {
            self$(.$field)?.opts.unique_key = Some(key.into());
            self
        }
        /// Sets how long the unique key holds.
        pub fn unique_scope(mut self, scope: $crate::job::options::UniqueScope) -> Self {
            self$(.$field)?.opts.unique_scope = Some(scope);
            self
        }
    };
}

impl JobRequest {
    /// The request for `job` with its kind's defaults.
    pub fn new<J: Job>(job: J) -> Self {
        let unique_key = job.unique_key();
        let args = serde_json::to_string(&job).map_err(|e| e.to_string());
        JobRequest {
            kind: J::KIND,
            args,
            unique_key,
            opts: Overrides::default(),
            defaults: J::OPTIONS,
        }
    }

    /// The kind.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    override_methods!();

    pub(crate) fn into_row(self, max_payload_bytes: usize) -> Result<NewJob, Error> {
        let kind = self.kind;
        let args = self.args.map_err(|e| {
            Error::InvalidInput(format!(
                "payload of kind `{kind}` does not serialize to JSON: {e}"
            ))
        })?;
        if args.len() > max_payload_bytes {
            return Err(Error::PayloadTooLarge {
                what: format!("payload of kind `{kind}`"),
                size: args.len(),
                limit: max_payload_bytes,
            });
        }
        validate::json_value(&format!("the payload of kind `{kind}`"), &args)?;
        let o = self.opts;
        let d = self.defaults;
        let settings = RowSettings::check(
            kind,
            o.queue.unwrap_or_else(|| d.queue.to_owned()),
            o.priority.unwrap_or(d.priority),
            o.max_attempts.unwrap_or(d.max_attempts),
            o.timeout.unwrap_or(d.timeout),
        )?;
        // A delay is added to the database clock at insert, never to this machine's clock.
        let (run_at, delay_s) = match (o.run_at, o.run_in) {
            (Some(at), _) => (Some(validate::run_at(kind, at)?), None),
            (None, Some(delay)) => (None, Some(validate::run_in(kind, delay)?.as_secs_f64())),
            (None, None) => (None, None),
        };
        let unique_key = o.unique_key.or(self.unique_key);
        let (unique_key, unique_states, unique_period_s) = match unique_key {
            None => (None, None, None),
            Some(key) => {
                if key.is_empty() || key.len() > 1024 {
                    return Err(Error::InvalidInput(format!(
                        "the unique key of a `{kind}` job must be 1 to 1024 bytes long, not {}",
                        key.len()
                    )));
                }
                validate::text(&format!("the unique key of a `{kind}` job"), &key)?;
                match o.unique_scope.unwrap_or(d.unique_scope) {
                    UniqueScope::Active => {
                        let mask = JobState::ALL
                            .into_iter()
                            .filter(|s| !s.is_finished())
                            .fold(0i16, |m, s| m | s.bit());
                        (Some(key), Some(mask), None)
                    }
                    UniqueScope::Period(period) => {
                        // The window index is computed from the database clock at insert.
                        let secs = i64::try_from(period.as_secs().max(1)).unwrap_or(i64::MAX);
                        let mask = JobState::ALL.into_iter().fold(0i16, |m, s| m | s.bit());
                        (Some(key), Some(mask), Some(secs))
                    }
                }
            }
        };
        Ok(NewJob {
            kind: kind.to_owned(),
            queue: settings.queue,
            args,
            priority: settings.priority,
            max_attempts: settings.max_attempts,
            run_at,
            delay_s,
            timeout_ms: settings.timeout_ms,
            unique_key,
            unique_states,
            unique_period_s,
        })
    }
}
