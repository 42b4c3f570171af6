//! The stager: moves due `scheduled` and `retryable` jobs to `available` (announcing them), and
//! sleeps until the next one is due. Enqueues of scheduled jobs and this worker's own retries
//! wake it early.

use std::time::Duration;

use tokio::sync::Notify;

use super::service::{PASS_LIMIT, Service, until_due};
use crate::error::Error;
use crate::runtime::shared::{MetricKind, Shared};
use crate::store;

pub(crate) struct Stager;

impl Service for Stager {
    const NAME: &'static str = "stager";
    const LEADER_ONLY: bool = false;

    async fn pass(&mut self, shared: &Shared) -> Result<Duration, Error> {
        let staged = store::jobs::stage(&shared.pool, PASS_LIMIT).await?;
        if staged.moved > 0 {
            shared.metrics.add(MetricKind::Staged, staged.moved as u64);
            tracing::debug!(worker = %shared.config.id, jobs = staged.moved, "staged due jobs");
        }
        if staged.moved >= PASS_LIMIT {
            return Ok(Duration::ZERO);
        }
        Ok(until_due(
            staged.next_due_ms,
            shared.config.stage_max_interval,
        ))
    }

    fn wake(shared: &Shared) -> Option<&Notify> {
        Some(&shared.stager_wake)
    }
}
