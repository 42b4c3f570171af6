//! Maintenance settings: the leader's lease, the scheduler's and pruner's pace, and the
//! [`Retention`] of finished jobs; set on the [`WorkerBuilder`].

use std::time::Duration;

use crate::error::Error;
use crate::runtime::WorkerBuilder;

const DAY: Duration = Duration::from_secs(86_400);

/// How long finished jobs are kept before the pruner deletes them, by final state; `None` keeps
/// them forever. Only `completed`, `failed` and `cancelled` jobs are ever deleted, and only once
/// their `finished_at` is older than the state's retention.
///
/// The default keeps completed jobs for 1 day, failed and cancelled jobs and finished workflow
/// runs for 7 days.
///
/// ```
/// use std::time::Duration;
/// use runledger::Retention;
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
    /// Retention of jobs failed for good. Default 7 days.
    pub failed: Option<Duration>,
    /// Retention of cancelled jobs. Default 7 days.
    pub cancelled: Option<Duration>,
    /// Retention of finished workflow runs (completed, failed or cancelled), with their steps,
    /// edges and bindings. Default 7 days. Runs still running are never deleted.
    pub workflow_runs: Option<Duration>,
}

impl Retention {
    /// The same retention for every finished state.
    pub const fn all(keep: Duration) -> Self {
        Retention {
            completed: Some(keep),
            failed: Some(keep),
            cancelled: Some(keep),
            workflow_runs: Some(keep),
        }
    }

    /// Keeps every finished job forever: the pruner deletes nothing.
    pub const fn forever() -> Self {
        Retention {
            completed: None,
            failed: None,
            cancelled: None,
            workflow_runs: None,
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
        }
    }
}

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

/// Maintenance settings.
impl WorkerBuilder {
    /// How long the maintenance leader's lease lasts without renewal. The leader renews it every
    /// third of this; when the leader stops gracefully it hands the lease back at once, and when
    /// it dies another worker takes over within about this long. Default 15 s, at least 500 ms.
    pub fn leader_lease(mut self, lease: Duration) -> Self {
        self.config.maintenance.leader_lease = lease;
        self
    }

    /// How long finished jobs are kept. Default [`Retention::default`].
    pub fn retention(mut self, retention: Retention) -> Self {
        self.config.maintenance.retention = retention;
        self
    }

    /// How often the leader looks for finished jobs past their retention. Default 60 s.
    pub fn prune_interval(mut self, interval: Duration) -> Self {
        self.config.maintenance.prune_interval = interval;
        self
    }

    /// How often the leader checks the hot tables (`jobs`, `workflow_runs`, `workflow_steps`)
    /// for dead rows and vacuums those that gathered at least 10,000 and a fifth of their live
    /// rows since their last vacuum; `None` leaves them to autovacuum alone. Default 5 s.
    ///
    /// Autovacuum visits a database once per `autovacuum_naptime` (1 min by default), and under
    /// sustained load a minute of dead rows slows every claim; see `docs/cron.md`. The worker's
    /// role must own the tables (it does when it ran the migrations) for `VACUUM` to act.
    pub fn vacuum_interval(mut self, interval: impl Into<Option<Duration>>) -> Self {
        self.config.maintenance.vacuum_interval = interval.into();
        self
    }

    /// How long available jobs may wait while no running worker serves their queue and kind
    /// (no worker has their `#[job]` linked in, or none works their queue) before the leader
    /// logs a warning about them; operators read the same with
    /// [`Runledger::unclaimed_kinds`](crate::Runledger::unclaimed_kinds). The jobs are left
    /// available for a worker that knows them. Default 5 minutes.
    pub fn unclaimed_after(mut self, after: Duration) -> Self {
        self.config.maintenance.unclaimed_after = after;
        self
    }
}
