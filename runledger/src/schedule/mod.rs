//! Cron schedules: declared on a job with `#[job(cron = "...")]` or managed at run time through
//! the [`Runledger`](crate::Runledger) client. The leader's scheduler fires each slot once (see
//! `maintenance::scheduler`); this module holds the public types and the client calls.

mod client;
mod cron;

use chrono::{DateTime, Utc};

pub use cron::CronSchedule;
pub(crate) use cron::ON_TIME;

use crate::client::JobRequest;
use crate::error::Error;
use crate::registry::JobRegistration;
use crate::store::schedules::{NewSchedule, ScheduleRow};
use crate::validate;

/// Why a cron expression or time zone was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// The cron expression does not parse, or matches no date.
    #[error("invalid cron expression `{expression}`: {reason}")]
    InvalidCron {
        /// The expression as given.
        expression: String,
        /// What is wrong with it, and what to write instead.
        reason: String,
    },
    /// The time zone is not an IANA name known to this build.
    #[error("unknown time zone `{timezone}`; use an IANA name such as `UTC` or `Europe/London`")]
    InvalidTimezone {
        /// The name as given.
        timezone: String,
    },
}

/// What happens to slots that came due while no scheduler ran (every worker was down, or the
/// schedule's leader was being replaced for longer than a minute).
///
/// A slot is *on time* while it is at most 60 seconds old; on-time slots always fire. Older,
/// unfired slots are *missed*.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MissedSlots {
    /// Missed slots are dropped; the schedule goes on with its next slot. The default.
    #[default]
    Skip,
    /// If any slots were missed, one job is enqueued for the most recent of them (not one per
    /// missed slot), unless an on-time slot fires in the same pass and stands in for them.
    RunOnce,
}

impl MissedSlots {
    /// The name stored in the database: `"skip"` or `"run_once"`.
    pub fn as_str(self) -> &'static str {
        match self {
            MissedSlots::Skip => "skip",
            MissedSlots::RunOnce => "run_once",
        }
    }

    pub(crate) fn from_db(value: &str) -> Self {
        match value {
            "run_once" => MissedSlots::RunOnce,
            _ => MissedSlots::Skip,
        }
    }
}

/// The cron schedule of a job kind, declared with `#[job(cron = "...", tz = "...",
/// missed = "...")]`. Part of [`JobOptions`](crate::JobOptions); built in const context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CronOptions {
    /// The cron expression (5 fields, or 6 with seconds first).
    pub expression: &'static str,
    /// IANA time zone the expression is read in. Default `"UTC"`.
    pub timezone: &'static str,
    /// What happens to slots missed while no worker ran. Default [`MissedSlots::Skip`].
    pub missed: MissedSlots,
}

impl CronOptions {
    /// A schedule on `expression` in UTC that skips missed slots.
    pub const fn new(expression: &'static str) -> Self {
        Self {
            expression,
            timezone: "UTC",
            missed: MissedSlots::Skip,
        }
    }
    /// Sets the time zone.
    pub const fn timezone(mut self, timezone: &'static str) -> Self {
        self.timezone = timezone;
        self
    }
    /// Sets the missed-slot policy.
    pub const fn missed(mut self, missed: MissedSlots) -> Self {
        self.missed = missed;
        self
    }
}

/// A schedule to add or update at run time: a name, a cron expression, and the job each slot
/// enqueues (its payload and options, with any per-call overrides such as
/// [`with_queue`](JobRequest::with_queue); `run_at`, `run_in` and unique keys are ignored:
/// the job runs at its slot, and the slot itself is the uniqueness guard).
///
/// ```no_run
/// # use runledger::{job, JobError, MissedSlots, Runledger, Schedule};
/// # #[job] async fn send_digest(team: String) -> Result<(), JobError> { Ok(()) }
/// # async fn demo(rl: Runledger) -> Result<(), runledger::Error> {
/// let digest = SendDigest { team: "ops".into() };
/// rl.add_schedule(
///     Schedule::new("ops-digest", "0 0 8 * * MON-FRI", digest)
///         .timezone("Europe/London")
///         .missed(MissedSlots::RunOnce),
/// )
/// .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Schedule {
    name: String,
    expression: String,
    timezone: String,
    missed: MissedSlots,
    job: JobRequest,
}

impl Schedule {
    /// A schedule named `name` (1 to 128 characters from `A-Z a-z 0-9 _ . : -`) that enqueues
    /// `job` at every slot of `expression`, in UTC, skipping missed slots.
    pub fn new(
        name: impl Into<String>,
        expression: impl Into<String>,
        job: impl Into<JobRequest>,
    ) -> Self {
        Schedule {
            name: name.into(),
            expression: expression.into(),
            timezone: "UTC".to_owned(),
            missed: MissedSlots::Skip,
            job: job.into(),
        }
    }

    /// Reads the expression in this IANA time zone instead of UTC.
    pub fn timezone(mut self, timezone: impl Into<String>) -> Self {
        self.timezone = timezone.into();
        self
    }

    /// Sets what happens to missed slots.
    pub fn missed(mut self, missed: MissedSlots) -> Self {
        self.missed = missed;
        self
    }

    /// The schedule's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The schedule a `#[job(cron = ...)]` declares, named after its kind.
    pub(crate) fn declared(reg: &JobRegistration) -> Option<Schedule> {
        let cron = reg.options.cron?;
        let job = (reg.cron_request)()?;
        Some(
            Schedule::new(reg.kind, cron.expression, job)
                .timezone(cron.timezone)
                .missed(cron.missed),
        )
    }

    /// Checks the name, expression, time zone and payload.
    pub(crate) fn check(&self) -> Result<CronSchedule, Error> {
        validate::name("schedule", &self.name)?;
        CronSchedule::parse(&self.expression, &self.timezone).map_err(|error| Error::Schedule {
            schedule: self.name.clone(),
            error,
        })
    }

    /// The row to store, with its first slot after `now`.
    pub(crate) fn into_row(
        self,
        now: DateTime<Utc>,
        max_payload_bytes: usize,
    ) -> Result<NewSchedule, Error> {
        let cron = self.check()?;
        let job = self.job.into_row(max_payload_bytes)?;
        Ok(NewSchedule {
            name: self.name,
            kind: job.kind,
            expression: self.expression,
            timezone: cron.timezone().to_owned(),
            missed: self.missed.as_str(),
            args: job.args,
            queue: job.queue,
            priority: job.priority,
            max_attempts: job.max_attempts,
            timeout_ms: job.timeout_ms,
            next_fire_at: cron.next_after(now),
        })
    }
}

/// A stored schedule, as [`Runledger::schedules`](crate::Runledger::schedules) lists it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ScheduleInfo {
    /// The schedule's name (the job kind for schedules declared in code).
    pub name: String,
    /// The kind each slot enqueues.
    pub kind: String,
    /// The cron expression.
    pub expression: String,
    /// The IANA time zone.
    pub timezone: String,
    /// The missed-slot policy.
    pub missed: MissedSlots,
    /// The queue the jobs go to.
    pub queue: String,
    /// The payload each slot enqueues.
    pub args: serde_json::Value,
    /// Paused schedules fire nothing until resumed.
    pub paused: bool,
    /// True for schedules declared with `#[job(cron = ...)]` and synced at worker start.
    pub declared_in_code: bool,
    /// The next slot to fire (database clock).
    pub next_fire_at: Option<DateTime<Utc>>,
    /// The most recent slot that fired.
    pub last_slot: Option<DateTime<Utc>>,
}

impl ScheduleInfo {
    pub(crate) fn from_row(row: ScheduleRow) -> Self {
        ScheduleInfo {
            name: row.name,
            kind: row.kind,
            expression: row.expression,
            timezone: row.timezone,
            missed: MissedSlots::from_db(&row.missed),
            queue: row.queue,
            args: row.args,
            paused: row.paused,
            declared_in_code: row.declared,
            next_fire_at: row.next_fire_at,
            last_slot: row.last_slot,
        }
    }
}
