//! Leases: the keeper renews the leases of every attempt this worker holds, in one statement per
//! tick (every third of the lease), on a connection of its own; the guard stops any attempt whose
//! lease could not be renewed before it would expire, so that no other worker can claim a job
//! while this one still runs it.
//!
//! An attempt missing from a renewal's answer has lost its lease (unless its outcome was written
//! in the meantime) and is stopped; one whose job was cancelled is asked to stop.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::time::Instant;

use super::shared::Shared;
use crate::job::StopReason;
use crate::store;

/// The keeper's pool: one connection to the same server as `pool` (named `runledger lease
/// keeper` in `pg_stat_activity`), opened on first use and replaced when it breaks. It is not shared with handlers, so a handler holding every
/// connection of the worker's pool cannot hold up a renewal.
pub(crate) fn pool(pool: &PgPool, lease: Duration) -> PgPool {
    // The connection is opened at start and kept; a renewal waits for a new one (after a
    // break) for up to a lease, since a later renewal is of no use: the guard has stopped the
    // attempts by then.
    PgPoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .acquire_timeout(lease)
        .idle_timeout(None)
        .connect_lazy_with(
            (*pool.connect_options())
                .clone()
                .application_name("runledger lease keeper"),
        )
}

/// An attempt: (job id, attempt).
type Attempt = (i64, i32);

fn tick(lease: Duration) -> Duration {
    (lease / 3).max(Duration::from_millis(100))
}

/// How long before the end of a lease the guard stops an attempt it could not renew: time for
/// the handler's future to be dropped before the database lets anyone else claim the job.
fn guard_margin(lease: Duration) -> Duration {
    (lease / 10).clamp(Duration::from_millis(50), Duration::from_secs(2))
}

pub(crate) async fn run(shared: Arc<Shared>) {
    let lease = shared.config.lease;
    let mut interval = tokio::time::interval(tick(lease));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        interval.tick().await;
        // Attempts still running (or held, waiting for a slot) first, then those whose outcome
        // is queued: the completer locks the rows of the latter while it writes them, and a
        // renewal that waits for those locks must not hold up the former.
        let (running, finished): (Vec<Attempt>, Vec<Attempt>) = {
            let running = shared.running.lock().expect("running map poisoned");
            let mut keys: Vec<((i64, i32), bool)> = running
                .iter()
                .map(|(key, entry)| (*key, entry.finished()))
                .collect();
            // In id order, like the completer's writes, so the two never lock rows crosswise.
            keys.sort_unstable();
            let (finished, running): (Vec<_>, Vec<_>) = keys.into_iter().partition(|(_, f)| *f);
            (
                running.into_iter().map(|(key, _)| key).collect(),
                finished.into_iter().map(|(key, _)| key).collect(),
            )
        };
        for keys in [running, finished] {
            if !keys.is_empty() {
                renew(&shared, keys, lease).await;
            }
        }
    }
}

/// Renews the leases of `keys` in one statement, and stops the attempts among them that lost
/// theirs or whose job was cancelled.
async fn renew(shared: &Shared, keys: Vec<(i64, i32)>, lease: Duration) {
    let (ids, attempts): (Vec<i64>, Vec<i32>) = keys.into_iter().unzip();
    let sent = Instant::now();
    match store::jobs::heartbeat(&shared.lease_pool, &ids, &attempts, lease).await {
        Ok(renewed) => {
            let mut held = HashSet::with_capacity(renewed.len());
            let mut cancelled = Vec::new();
            let mut lost = Vec::new();
            {
                let mut running = shared.running.lock().expect("running map poisoned");
                for r in &renewed {
                    let key = (r.id, r.attempt);
                    held.insert(key);
                    if let Some(entry) = running.get_mut(&key) {
                        entry.lease_until = entry.lease_until.max(sent + lease);
                    }
                    if r.cancel_requested {
                        cancelled.push(key);
                    }
                }
                for key in ids.into_iter().zip(attempts) {
                    // An attempt whose outcome is queued drops out of the answer once the
                    // completer writes it; that is no loss. One whose entry is gone was
                    // written (or stopped) already.
                    if !held.contains(&key)
                        && running.get(&key).is_some_and(|entry| !entry.finished())
                    {
                        lost.push(key);
                    }
                }
            }
            for key in cancelled {
                shared.stop_attempt(key, StopReason::Cancelled);
            }
            for key in lost {
                tracing::warn!(
                    worker = %shared.config.id,
                    job = key.0,
                    attempt = key.1,
                    "lease lost; stopping the attempt"
                );
                shared.stop_attempt(key, StopReason::LeaseLost);
            }
        }
        Err(error) => {
            tracing::warn!(worker = %shared.config.id, %error, "renewing leases failed; will retry");
        }
    }
}

/// Stops every unfinished attempt whose lease this worker could not renew in time, a margin
/// before the lease ends: the job is then left for the rescuer, and no other worker can claim it
/// while this one still runs it. Wakes at the earliest such deadline, and at least every tick.
pub(crate) async fn guard(shared: Arc<Shared>) {
    let lease = shared.config.lease;
    let margin = guard_margin(lease);
    loop {
        let now = Instant::now();
        let mut next = now + tick(lease);
        let mut expiring = Vec::new();
        {
            let running = shared.running.lock().expect("running map poisoned");
            for (key, entry) in running.iter() {
                if entry.finished() || entry.stop.borrow().is_some() {
                    continue;
                }
                let stop_at = entry.lease_until.checked_sub(margin).unwrap_or(now);
                if stop_at <= now {
                    expiring.push(*key);
                } else {
                    next = next.min(stop_at);
                }
            }
        }
        for key in expiring {
            tracing::warn!(
                worker = %shared.config.id,
                job = key.0,
                attempt = key.1,
                "could not renew this attempt's lease before it ends; stopping the attempt so \
                 that the job is never run by two workers at once (it is rescued and run again)"
            );
            shared.stop_attempt(key, StopReason::LeaseLost);
        }
        // Runs through shutdown too: handlers still run in the grace period.
        tokio::time::sleep_until(next).await;
    }
}
