//! What runledger reports through the `metrics` facade: counters, histograms and gauges with
//! bounded labels (`queue`, `kind`, `outcome`, `state`; never ids, arguments or error text).
//! Without a recorder installed each call does nothing. The names are documented in
//! `docs/operations.md`, and a test locks them with their label keys.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

/// Jobs inserted by an enqueue (a unique job found already there is not counted).
pub(crate) const ENQUEUED: &str = "runledger_jobs_enqueued_total";
/// Attempts that ended, by how.
pub(crate) const ATTEMPTS: &str = "runledger_job_attempts_total";
/// How long handlers ran.
pub(crate) const DURATION: &str = "runledger_job_duration_seconds";
/// Attempts whose lease another worker now holds (their outcome was dropped).
pub(crate) const LEASE_LOST: &str = "runledger_job_lease_lost_total";
/// Running jobs whose lease ran out, released by the leader's rescuer.
pub(crate) const RESCUED: &str = "runledger_jobs_rescued_total";
/// Jobs by queue and unfinished state, sampled by the maintenance leader.
pub(crate) const DEPTH: &str = "runledger_queue_depth";
/// Seconds the oldest available job of a queue has been due, sampled by the leader.
pub(crate) const OLDEST: &str = "runledger_queue_oldest_available_seconds";
/// Handler slots of this worker in use.
pub(crate) const BUSY: &str = "runledger_worker_busy_slots";

/// `n` jobs of `kind` inserted into `queue`.
pub(crate) fn enqueued(queue: &str, kind: &str, n: u64) {
    counter!(ENQUEUED, "queue" => queue.to_owned(), "kind" => kind.to_owned()).increment(n);
}

/// The outcomes an attempt is counted under, in [`AttemptMetrics::outcomes`] order.
pub(crate) const OUTCOMES: [&str; 8] = [
    "completed",
    "retried",
    "failed",
    "cancelled",
    "snoozed",
    "released",
    "suspended",
    "diverged",
];

/// The handles of one queue and kind's attempt metrics, registered once per worker: an attempt
/// then costs an increment and a record, not the registration of a key. A recorder installed
/// after a worker started is not seen by that worker's attempt metrics (install it first).
#[derive(Clone)]
pub(crate) struct AttemptMetrics {
    outcomes: [Counter; 8],
    duration: Histogram,
    lease_lost: Counter,
}

impl AttemptMetrics {
    pub(crate) fn new(queue: &str, kind: &'static str) -> Self {
        AttemptMetrics {
            outcomes: OUTCOMES.map(|outcome| {
                counter!(ATTEMPTS, "queue" => queue.to_owned(), "kind" => kind, "outcome" => outcome)
            }),
            duration: histogram!(DURATION, "queue" => queue.to_owned(), "kind" => kind),
            lease_lost: counter!(LEASE_LOST, "queue" => queue.to_owned(), "kind" => kind),
        }
    }

    /// An attempt ended with `outcome` (one of [`OUTCOMES`]) after `took`.
    pub(crate) fn ended(&self, outcome: &str, took: Duration) {
        if let Some(i) = OUTCOMES.iter().position(|o| *o == outcome) {
            self.outcomes[i].increment(1);
        }
        self.duration.record(took.as_secs_f64());
    }

    /// An attempt lost its lease.
    pub(crate) fn lease_lost(&self) {
        self.lease_lost.increment(1);
    }
}

/// A worker's metric handles: its busy-slots gauge, and the attempt metrics of each queue and
/// kind it has run, registered on first use.
pub(crate) struct Handles {
    by_kind: Mutex<HashMap<&'static str, HashMap<String, AttemptMetrics>>>,
    busy: Gauge,
}

impl Handles {
    pub(crate) fn new() -> Self {
        Handles {
            by_kind: Mutex::default(),
            busy: gauge!(BUSY),
        }
    }

    /// `slots` handler slots are in use.
    pub(crate) fn busy(&self, slots: usize) {
        self.busy.set(slots as f64);
    }

    /// The handles of `queue` and `kind`.
    pub(crate) fn of(&self, queue: &str, kind: &'static str) -> AttemptMetrics {
        let mut by_kind = self.by_kind.lock().unwrap_or_else(|e| e.into_inner());
        let queues = by_kind.entry(kind).or_default();
        if let Some(m) = queues.get(queue) {
            return m.clone();
        }
        let m = AttemptMetrics::new(queue, kind);
        queues.insert(queue.to_owned(), m.clone());
        m
    }
}

/// A job of `queue` was rescued.
pub(crate) fn rescued(queue: &str) {
    counter!(RESCUED, "queue" => queue.to_owned()).increment(1);
}

/// `jobs` jobs of `queue` are in `state`.
pub(crate) fn depth(queue: &str, state: &str, jobs: i64) {
    gauge!(DEPTH, "queue" => queue.to_owned(), "state" => state.to_owned()).set(jobs as f64);
}

/// The oldest available job of `queue` has been due for `seconds`.
pub(crate) fn oldest(queue: &str, seconds: f64) {
    gauge!(OLDEST, "queue" => queue.to_owned()).set(seconds);
}
