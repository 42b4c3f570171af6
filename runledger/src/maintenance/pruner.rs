//! The pruner (leader only): deletes finished jobs (`completed`, `failed`, `cancelled`,
//! `diverged`, each with its journal) whose
//! `finished_at` is older than their state's [`Retention`](crate::worker::Retention), in batches of at
//! most [`PASS_LIMIT`] rows, the record of cron slots fired before the completed jobs'
//! retention, events past theirs, and finished workflow runs (with their steps, edges and bindings). Unfinished jobs are never touched: the state filter is in the statement.

use std::time::Duration;

use super::service::{IdleBackoff, PASS_LIMIT, Service};
use crate::error::Error;
use crate::runtime::shared::Shared;
use crate::store;

/// The longest wait between passes that delete nothing, in intervals.
const MAX_IDLE_FACTOR: u32 = 4;

#[derive(Debug, Default)]
pub(crate) struct Pruner {
    /// Each pass that deleted nothing doubles the wait before the next, up to four intervals,
    /// so that an idle worker sends its deletes every few minutes rather than every minute. A
    /// pass that deletes anything goes back to the interval.
    backoff: IdleBackoff,
}

impl Service for Pruner {
    const NAME: &'static str = "pruner";
    const LEADER_ONLY: bool = true;

    async fn pass(&mut self, shared: &Shared) -> Result<Duration, Error> {
        let retention = shared.config.maintenance.retention;
        // Every delete checks that this worker still holds the lease.
        let leader = Some(shared.maintenance.holder.as_str());
        let mut more = false;
        let mut any = false;
        for (state, keep) in retention.policies() {
            let deleted = store::retention::prune_jobs(
                &shared.pool,
                state,
                keep.as_secs_f64(),
                PASS_LIMIT,
                leader,
            )
            .await?;
            more |= deleted >= PASS_LIMIT as u64;
            any |= deleted > 0;
            if deleted > 0 {
                tracing::info!(
                    worker = %shared.config.id,
                    state,
                    jobs = deleted,
                    retention = ?keep,
                    "pruned finished jobs"
                );
            }
        }
        if let Some(keep) = retention.completed {
            let deleted =
                store::retention::prune_fires(&shared.pool, keep.as_secs_f64(), PASS_LIMIT, leader)
                    .await?;
            more |= deleted >= PASS_LIMIT as u64;
            any |= deleted > 0;
            if deleted > 0 {
                tracing::info!(worker = %shared.config.id, fires = deleted, "pruned cron fire records");
            }
        }
        if let Some(keep) = retention.events {
            let deleted = store::retention::prune_events(
                &shared.pool,
                keep.as_secs_f64(),
                PASS_LIMIT,
                leader,
            )
            .await?;
            more |= deleted >= PASS_LIMIT as u64;
            any |= deleted > 0;
            if deleted > 0 {
                tracing::info!(worker = %shared.config.id, events = deleted, "pruned events");
            }
        }
        if let Some(keep) = retention.workflow_runs {
            let deleted =
                store::retention::prune_runs(&shared.pool, keep.as_secs_f64(), PASS_LIMIT, leader)
                    .await?;
            more |= deleted >= PASS_LIMIT as u64;
            any |= deleted > 0;
            if deleted > 0 {
                tracing::info!(
                    worker = %shared.config.id,
                    runs = deleted,
                    retention = ?keep,
                    "pruned finished workflow runs"
                );
            }
        }
        let wait = self.backoff.next(
            any,
            shared.config.maintenance.prune_interval,
            MAX_IDLE_FACTOR,
        );
        Ok(if more { Duration::ZERO } else { wait })
    }
}
