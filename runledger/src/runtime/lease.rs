//! The lease keeper: renews the leases of every attempt this worker holds, in one statement per
//! tick, every third of the lease. An attempt missing from the answer has lost its lease and is
//! stopped; one whose job was cancelled is asked to stop.

use std::sync::Arc;
use std::time::Duration;

use super::Shared;
use crate::job::StopReason;
use crate::store;

pub(crate) async fn run(shared: Arc<Shared>) {
    let tick = (shared.config.lease / 3).max(Duration::from_millis(100));
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        interval.tick().await;
        let (ids, attempts): (Vec<i64>, Vec<i32>) = {
            let running = shared.running.lock().expect("running map poisoned");
            // In id order, like the completer's writes, so the two never lock rows crosswise.
            let mut keys: Vec<(i64, i32)> = running.keys().copied().collect();
            keys.sort_unstable();
            keys.into_iter().unzip()
        };
        if ids.is_empty() {
            continue;
        }
        match store::jobs::heartbeat(&shared.pool, &ids, &attempts, shared.config.lease).await {
            Ok(renewed) => {
                let mut held = std::collections::HashSet::with_capacity(renewed.len());
                for r in &renewed {
                    held.insert((r.id, r.attempt));
                    if r.cancel_requested {
                        shared.stop_attempt((r.id, r.attempt), StopReason::Cancelled);
                    }
                }
                for key in ids
                    .into_iter()
                    .zip(attempts)
                    .filter(|key| !held.contains(key))
                {
                    // An outcome written between the snapshot and the renewal also drops out of
                    // the answer; its entry is gone by now or about to be, and a stop signal to
                    // a finished attempt does nothing.
                    tracing::warn!(worker = %shared.config.id, job = key.0, attempt = key.1, "lease lost; stopping the attempt");
                    shared.stop_attempt(key, StopReason::LeaseLost);
                }
            }
            Err(error) => {
                tracing::warn!(worker = %shared.config.id, %error, "renewing leases failed; will retry");
            }
        }
    }
}
