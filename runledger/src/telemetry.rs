//! What runledger reports through the `metrics` facade: counters, histograms and gauges with
//! bounded labels (`queue`, `kind`, `outcome`, `state`; never ids, arguments or error text).
//! Without a recorder installed each call does nothing. The names are documented in
//! `docs/operations.md`, and a test locks them with their label keys.

use std::time::Duration;

use metrics::{counter, gauge, histogram};

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
pub(crate) fn enqueued(queue: &str, kind: &str) {
    counter!(ENQUEUED, "queue" => queue.to_owned(), "kind" => kind.to_owned()).increment(1);
}

/// An attempt of a `kind` job in `queue` ended with `outcome` after `took`.
pub(crate) fn attempt(queue: &str, kind: &'static str, outcome: &'static str, took: Duration) {
    counter!(ATTEMPTS, "queue" => queue.to_owned(), "kind" => kind, "outcome" => outcome)
        .increment(1);
    histogram!(DURATION, "queue" => queue.to_owned(), "kind" => kind).record(took.as_secs_f64());
}

/// An attempt of a `kind` job in `queue` lost its lease.
pub(crate) fn lease_lost(queue: &str, kind: &'static str) {
    counter!(LEASE_LOST, "queue" => queue.to_owned(), "kind" => kind).increment(1);
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

/// `slots` handler slots of this worker are in use.
pub(crate) fn busy(slots: usize) {
    gauge!(BUSY).set(slots as f64);
}
