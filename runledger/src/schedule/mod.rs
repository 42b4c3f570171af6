//! Cron schedules: declared on a job with `#[job(cron = "...")]` or managed at run time through
//! the [`Runledger`](crate::Runledger) client. The leader's scheduler fires each slot once (see
//! `maintenance::scheduler`); this module holds the public types and the client calls.

mod client;
pub(crate) mod cron;

use chrono::{DateTime, Utc};

pub use crate::error::ScheduleError;
pub(crate) use cron::ON_TIME;
pub use cron::{CronOptions, CronSchedule, MissedSlots};

use crate::error::Error;
use crate::job::JobRequest;
use crate::registry::JobRegistration;
use crate::store::schedules::{NewSchedule, ScheduleRow};
use crate::validate;

/// A schedule to add or update at run time: a name, a cron expression, and the job each slot
/// enqueues (its payload and options, with any per-call overrides such as
/// [`with_queue`](JobRequest::with_queue); `run_at`, `run_in` and unique keys are ignored:
/// the job runs at its slot, and the slot itself is the uniqueness guard).
///
/// ```no_run
/// # use runledger::{job, JobError, Runledger, Schedule};
/// # use runledger::schedule::MissedSlots;
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
