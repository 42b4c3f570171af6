//! A worker's settings, as its builder collects them: the worker's own ([`WorkerConfig`]) and
//! its maintenance services' ([`MaintenanceConfig`], with the [`Retention`] of finished jobs).
//! Data and range checks only; the setters are on the [`WorkerBuilder`](crate::worker::WorkerBuilder).

use std::time::Duration;

use crate::error::Error;

/// The worker's settings.
#[derive(Debug, Clone)]
pub(crate) struct WorkerConfig {
    pub(crate) id: String,
    pub(crate) queues: Vec<String>,
    pub(crate) concurrency: usize,
    pub(crate) batch_size: usize,
    pub(crate) prefetch: usize,
    pub(crate) poll_interval: Duration,
    pub(crate) lease: Duration,
    pub(crate) shutdown_grace: Duration,
    pub(crate) completion_deadline: Duration,
    pub(crate) rescue_interval: Duration,
    pub(crate) stage_max_interval: Duration,
    pub(crate) migrate: bool,
    pub(crate) max_payload_bytes: usize,
    pub(crate) maintenance: MaintenanceConfig,
}

const DAY: Duration = Duration::from_secs(86_400);

/// How long finished jobs are kept before the pruner deletes them, by final state; `None` keeps
/// them forever. Only `completed`, `failed`, `cancelled` and `diverged` jobs are ever deleted
/// (with their journals), and only once
/// their `finished_at` is older than the state's retention.
///
/// The default keeps completed jobs for 1 day, failed and cancelled jobs and finished workflow
/// runs for 7 days.
///
/// ```
/// use std::time::Duration;
/// use runledger::worker::Retention;
///
/// let keep = Retention::default()
///     .completed(Duration::from_secs(3600))
///     .failed(None); // keep failed jobs for inspection
/// assert_eq!(keep.failed, None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Retention {
    /// Retention of completed jobs (and of the record of fired cron slots). Default 1 day.
    pub completed: Option<Duration>,
    /// Retention of jobs failed for good, and of durable jobs that diverged from their
    /// journal. Default 7 days.
    pub failed: Option<Duration>,
    /// Retention of cancelled jobs. Default 7 days.
    pub cancelled: Option<Duration>,
    /// Retention of finished workflow runs (completed, failed or cancelled), with their steps,
    /// edges and bindings. Default 7 days. Runs still running are never deleted.
    pub workflow_runs: Option<Duration>,
    /// Retention of events emitted for durable jobs, from their emission (a wait that begins
    /// later no longer finds them). Journals go with their jobs. Default 7 days.
    pub events: Option<Duration>,
}

impl Retention {
    /// The same retention for every finished state.
    pub const fn all(keep: Duration) -> Self {
        Retention {
            completed: Some(keep),
            failed: Some(keep),
            cancelled: Some(keep),
            workflow_runs: Some(keep),
            events: Some(keep),
        }
    }

    /// Keeps every finished job forever: the pruner deletes nothing.
    pub const fn forever() -> Self {
        Retention {
            completed: None,
            failed: None,
            cancelled: None,
            workflow_runs: None,
            events: None,
        }
    }

    /// Sets the retention of completed jobs.
    pub fn completed(mut self, keep: impl Into<Option<Duration>>) -> Self {
        self.completed = keep.into();
        self
    }

    /// Sets the retention of failed jobs.
    pub fn failed(mut self, keep: impl Into<Option<Duration>>) -> Self {
        self.failed = keep.into();
        self
    }

    /// Sets the retention of cancelled jobs.
    pub fn cancelled(mut self, keep: impl Into<Option<Duration>>) -> Self {
        self.cancelled = keep.into();
        self
    }

    /// Sets the retention of events.
    pub fn events(mut self, keep: impl Into<Option<Duration>>) -> Self {
        self.events = keep.into();
        self
    }

    /// Sets the retention of finished workflow runs.
    pub fn workflow_runs(mut self, keep: impl Into<Option<Duration>>) -> Self {
        self.workflow_runs = keep.into();
        self
    }

    /// `(state, retention)` for each state that is pruned.
    pub(crate) fn policies(&self) -> impl Iterator<Item = (&'static str, Duration)> {
        [
            ("completed", self.completed),
            ("failed", self.failed),
            ("diverged", self.failed),
            ("cancelled", self.cancelled),
        ]
        .into_iter()
        .filter_map(|(state, keep)| Some((state, keep?)))
    }
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            completed: Some(DAY),
            failed: Some(7 * DAY),
            cancelled: Some(7 * DAY),
            workflow_runs: Some(7 * DAY),
            events: Some(7 * DAY),
        }
    }
}

/// The maintenance services' settings.
#[derive(Debug, Clone)]
pub(crate) struct MaintenanceConfig {
    pub(crate) leader_lease: Duration,
    pub(crate) schedule_max_interval: Duration,
    pub(crate) prune_interval: Duration,
    pub(crate) retention: Retention,
    pub(crate) vacuum_interval: Option<Duration>,
    pub(crate) unclaimed_after: Duration,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        MaintenanceConfig {
            leader_lease: Duration::from_secs(15),
            // The longest sleep of the scheduler when no slot is due sooner. Schedule changes
            // wake it through a notification; this bounds the wait when one was lost.
            schedule_max_interval: Duration::from_secs(30),
            prune_interval: Duration::from_secs(60),
            retention: Retention::default(),
            vacuum_interval: Some(Duration::from_secs(5)),
            unclaimed_after: Duration::from_secs(5 * 60),
        }
    }
}

impl MaintenanceConfig {
    pub(crate) fn check(&self) -> Result<(), Error> {
        if self.leader_lease < Duration::from_millis(500) {
            return Err(Error::Config(format!(
                "a leader lease of {:?} is too short to renew reliably; use at least 500 ms",
                self.leader_lease
            )));
        }
        if self
            .vacuum_interval
            .is_some_and(|i| i < Duration::from_millis(100))
        {
            return Err(Error::Config(format!(
                "a vacuum interval of {:?} would read the statistics in a busy loop; use at \
                 least 100 ms, or `None` to leave the tables to autovacuum",
                self.vacuum_interval.unwrap_or_default()
            )));
        }
        if self.unclaimed_after.is_zero() {
            return Err(Error::Config(
                "the unclaimed-after time must be above zero".into(),
            ));
        }
        if self.prune_interval.is_zero() {
            return Err(Error::Config(
                "the prune interval must be above zero".into(),
            ));
        }
        Ok(())
    }
}

/// This machine's name, as the environment or `/etc/hostname` gives it.
pub(crate) fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
