//! The producer of one queue: waits for a wake-up (notification, freed slot, poll tick), then
//! claims as many jobs as there are free slots, in batches, until the queue has no more.

use std::sync::Arc;
use std::time::Duration;

use super::{MetricKind, Shared, executor};
use crate::store;

pub(crate) async fn run(shared: Arc<Shared>, queue: String) {
    let wake = shared.queue_wakes[&queue].clone();
    let mut error_delay = Duration::from_millis(100);
    loop {
        // Drain: claim until a claim comes back short (the queue is empty for us).
        loop {
            if shared.is_shutting_down() {
                return;
            }
            // Wait for at least one free slot, then take as many as are free, up to a batch.
            let first = tokio::select! {
                permit = shared.slots.acquire() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
                _ = shared.shutting_down() => return,
            };
            first.forget();
            let extra = shared
                .slots
                .available_permits()
                .min(shared.config.batch_size.saturating_sub(1));
            let extra = match u32::try_from(extra) {
                Ok(n) if n > 0 => match shared.slots.try_acquire_many(n) {
                    Ok(permits) => {
                        permits.forget();
                        n as usize
                    }
                    Err(_) => 0,
                },
                _ => 0,
            };
            let want = 1 + extra;
            let claimed = store::jobs::claim(
                &shared.pool,
                &queue,
                &shared.kinds,
                want as i64,
                &shared.config.id,
                shared.config.lease,
            )
            .await;
            match claimed {
                Ok(jobs) => {
                    error_delay = Duration::from_millis(100);
                    let got = jobs.len();
                    shared.slots.add_permits(want - got);
                    shared.metrics.add(MetricKind::Claimed, got as u64);
                    for job in jobs {
                        executor::spawn(shared.clone(), job);
                    }
                    if got < want {
                        break;
                    }
                }
                Err(error) => {
                    shared.slots.add_permits(want);
                    tracing::warn!(
                        worker = %shared.config.id,
                        queue = %queue,
                        %error,
                        retry_in = ?error_delay,
                        "claiming jobs failed; retrying"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(error_delay) => {},
                        _ = shared.shutting_down() => return,
                    }
                    error_delay = (error_delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        tokio::select! {
            _ = wake.notified() => {},
            _ = tokio::time::sleep(shared.config.poll_interval) => {},
            _ = shared.shutting_down() => return,
        }
    }
}
