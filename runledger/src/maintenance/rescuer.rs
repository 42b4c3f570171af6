//! The rescuer: finds running jobs whose lease expired (their worker crashed, hung or lost the
//! database) and returns them to the queue, or fails them when no attempt is left. Leases are
//! renewed while a job runs, so a slow job with a live worker is never rescued.

use std::time::Duration;

use super::service::{PASS_LIMIT, Service};
use crate::error::Error;
use crate::runtime::shared::{MetricKind, Shared};
use crate::store;

pub(crate) struct Rescuer;

impl Service for Rescuer {
    const NAME: &'static str = "rescuer";
    const LEADER_ONLY: bool = false;

    async fn pass(&mut self, shared: &Shared) -> Result<Duration, Error> {
        let rescued = store::jobs::rescue(&shared.pool, PASS_LIMIT).await?;
        if !rescued.is_empty() {
            shared
                .metrics
                .add(MetricKind::Rescued, rescued.len() as u64);
            for r in &rescued {
                crate::telemetry::rescued(&r.queue);
            }
            let failed = rescued.iter().filter(|r| r.state == "failed").count();
            tracing::info!(
                worker = %shared.config.id,
                jobs = rescued.len(),
                failed,
                ids = ?rescued.iter().map(|r| r.id).take(20).collect::<Vec<_>>(),
                queues = ?rescued.iter().map(|r| r.queue.as_str()).collect::<std::collections::BTreeSet<_>>(),
                "rescued jobs whose lease expired"
            );
        }
        if rescued.len() as i64 >= PASS_LIMIT {
            return Ok(Duration::ZERO);
        }
        Ok(shared.config.rescue_interval)
    }
}
