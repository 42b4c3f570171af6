//! Services that keep the jobs table moving, each a loop with the same shape: do one bounded
//! pass, report what it did through `tracing`, sleep until the next pass is due or a wake-up
//! arrives, stop at shutdown.
//!
//! - [`stager`]: makes scheduled jobs and retries available when they are due.
//! - [`rescuer`]: returns jobs whose lease expired (crashed or cut-off workers) to the queue.

pub(crate) mod rescuer;
pub(crate) mod stager;

use std::time::Duration;

use crate::runtime::Shared;

/// Rows one pass touches at most, so that no pass holds many row locks for long.
pub(crate) const PASS_LIMIT: i64 = 1000;

/// Sleeps for `delay`, or until `wake` fires or shutdown begins; false at shutdown.
pub(crate) async fn pause(
    shared: &Shared,
    delay: Duration,
    wake: Option<&tokio::sync::Notify>,
) -> bool {
    let woken = async {
        match wake {
            Some(wake) => wake.notified().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = woken => true,
        _ = shared.shutting_down() => false,
    }
}

/// Backoff after a failed pass.
pub(crate) fn error_delay(previous: Duration) -> Duration {
    (previous * 2).clamp(Duration::from_millis(200), Duration::from_secs(10))
}
