//! The producer of one queue: waits for a wake-up (notification, or the poller finding jobs),
//! then claims as many jobs as there are free slots, in batches, until the queue has no more.
//! The poller is the fallback for lost notifications: one statement per poll interval tells
//! which of the worker's queues have available jobs, and wakes their producers.

use std::sync::Arc;
use std::time::Duration;

use super::executor;
use super::shared::{MetricKind, Shared};
use crate::store;

pub(crate) async fn run(shared: Arc<Shared>, queue: String) {
    let wake = shared.queue_wakes[&queue].clone();
    let mut error_delay = Duration::from_millis(100);
    let busy_batch = shared.config.concurrency.min(shared.config.batch_size);
    let mut busy = false;
    loop {
        // Drain: claim until a claim comes back short (the queue is empty for us).
        loop {
            if shared.is_shutting_down() {
                return;
            }
            // Wait for a free slot. While the queue is busy (the last claim came back full),
            // also wait up to 2 ms for a full batch of slots: otherwise each claim takes only
            // the slots freed while the previous claim was in flight, and claims shrink to a
            // fraction of the batch (or one job each as handlers finish one by one).
            let mut have = tokio::select! {
                taken = take_slots(&shared, if busy { busy_batch } else { 1 }) => taken,
                _ = shared.shutting_down() => return,
            };
            let room = shared.config.batch_size.saturating_sub(have);
            let extra = shared.slots.available_permits().min(room);
            if let Ok(n) = u32::try_from(extra)
                && n > 0
                && let Ok(permits) = shared.slots.try_acquire_many(n)
            {
                permits.forget();
                have += n as usize;
            }
            let want = have;
            let claimed_at = tokio::time::Instant::now();
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
                        executor::spawn(shared.clone(), job, claimed_at);
                    }
                    busy = got == want;
                    if !busy {
                        break;
                    }
                }
                Err(error) => {
                    busy = false;
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
            _ = shared.shutting_down() => return,
        }
    }
}

/// Every poll interval, wakes the producers of the queues that have available jobs of the
/// worker's kinds, in case their notification was lost.
pub(crate) async fn poll(shared: Arc<Shared>) {
    let queues: Vec<&str> = shared.config.queues.iter().map(String::as_str).collect();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(shared.config.poll_interval) => {},
            _ = shared.shutting_down() => return,
        }
        match store::jobs::queues_with_work(&shared.pool, &queues, &shared.kinds).await {
            Ok(busy) => {
                for queue in busy {
                    if let Some(wake) = shared.queue_wakes.get(&queue) {
                        wake.notify_one();
                    }
                }
            }
            Err(error) => {
                // Producers still run on notifications; wake them all rather than miss work.
                tracing::warn!(worker = %shared.config.id, %error, "polling for jobs failed");
                for wake in shared.queue_wakes.values() {
                    wake.notify_one();
                }
            }
        }
    }
}

/// Takes (and forgets) at least one free slot, and up to `target` if they free up within a
/// couple of milliseconds of the first. Returns how many were taken.
async fn take_slots(shared: &Shared, target: usize) -> usize {
    let Ok(first) = shared.slots.acquire().await else {
        // The semaphore is never closed; treat it as no slot.
        return std::future::pending().await;
    };
    first.forget();
    let mut have = 1;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(2);
    while have < target {
        tokio::select! {
            permit = shared.slots.acquire() => match permit {
                Ok(permit) => {
                    permit.forget();
                    have += 1;
                }
                Err(_) => break,
            },
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    have
}
