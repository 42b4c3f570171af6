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
            running.iter().map(|(id, e)| (*id, e.attempt)).unzip()
        };
        if ids.is_empty() {
            continue;
        }
        match store::jobs::heartbeat(&shared.pool, &ids, &attempts, shared.config.lease).await {
            Ok(renewed) => {
                let mut held = std::collections::HashSet::with_capacity(renewed.len());
                for r in &renewed {
                    held.insert(r.id);
                    if r.cancel_requested {
                        shared.stop_job(r.id, StopReason::Cancelled);
                    }
                }
                for id in ids.iter().filter(|id| !held.contains(id)) {
                    // The outcome may have been written between our snapshot and the renewal;
                    // only attempts still listed as running lost their lease.
                    let still_listed = {
                        let running = shared.running.lock().expect("running map poisoned");
                        running.contains_key(id)
                    };
                    if still_listed {
                        tracing::warn!(worker = %shared.config.id, job = id, "lease lost; stopping the attempt");
                        shared.stop_job(*id, StopReason::LeaseLost);
                    }
                }
            }
            Err(error) => {
                tracing::warn!(worker = %shared.config.id, %error, "renewing leases failed; will retry");
            }
        }
    }
}
