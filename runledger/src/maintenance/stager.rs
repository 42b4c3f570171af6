//! The stager: moves due `scheduled` and `retryable` jobs to `available` (announcing them), and
//! sleeps until the next one is due. Enqueues of scheduled jobs and this worker's own retries
//! wake it early.

use std::sync::Arc;
use std::time::Duration;

use super::{PASS_LIMIT, error_delay, pause};
use crate::runtime::{MetricKind, Shared};
use crate::store;

pub(crate) async fn run(shared: Arc<Shared>) {
    let mut failing = Duration::ZERO;
    loop {
        let delay = match store::jobs::stage(&shared.pool, PASS_LIMIT).await {
            Ok(staged) => {
                failing = Duration::ZERO;
                if staged.moved > 0 {
                    shared.metrics.add(MetricKind::Staged, staged.moved as u64);
                    tracing::debug!(worker = %shared.config.id, jobs = staged.moved, "staged due jobs");
                }
                if staged.moved >= PASS_LIMIT {
                    continue;
                }
                match staged.next_due_ms {
                    Some(ms) => Duration::from_secs_f64((ms.max(0.0) / 1000.0) + 0.001)
                        .min(shared.config.stage_max_interval),
                    None => shared.config.stage_max_interval,
                }
            }
            Err(error) => {
                failing = error_delay(failing);
                tracing::warn!(worker = %shared.config.id, %error, retry_in = ?failing, "staging due jobs failed");
                failing
            }
        };
        if !pause(&shared, delay, Some(&shared.stager_wake)).await {
            return;
        }
    }
}
