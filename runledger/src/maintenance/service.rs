//! What every maintenance service is: the [`Service`] trait, the bound on one pass's rows, and
//! the sleep until something is due. A leaf of the maintenance module: the services import it,
//! and `mod.rs` runs them.

use std::future::Future;
use std::time::Duration;

use tokio::sync::Notify;

use crate::error::Error;
use crate::runtime::shared::Shared;

/// Rows one pass touches at most, so that no pass holds many row locks for long.
pub(crate) const PASS_LIMIT: i64 = 1000;

/// One maintenance service.
pub(crate) trait Service: Send + 'static {
    /// The task's name, in logs.
    const NAME: &'static str;
    /// Whether only the elected leader runs this service.
    const LEADER_ONLY: bool;

    /// Does one bounded pass and returns how long to sleep before the next one (zero: go on at
    /// once, there is more to do).
    fn pass(&mut self, shared: &Shared) -> impl Future<Output = Result<Duration, Error>> + Send;

    /// A notification that ends the sleep early.
    fn wake(_shared: &Shared) -> Option<&Notify> {
        None
    }

    /// Runs once when the worker shuts down, after the last pass.
    fn stop(&mut self, _shared: &Shared) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// The wait of a service that reads or writes less often while it finds nothing to do: the
/// interval, doubled after each idle pass in a row up to `max_factor` intervals; a pass that
/// found work goes back to the interval.
#[derive(Debug, Default)]
pub(crate) struct IdleBackoff {
    /// Idle passes in a row, counted up to the first doubling that reaches the cap.
    idle: u32,
}

impl IdleBackoff {
    /// The wait after a pass that `worked` (or not).
    pub(crate) fn next(&mut self, worked: bool, interval: Duration, max_factor: u32) -> Duration {
        self.idle = if worked {
            0
        } else {
            (self.idle + 1).min(max_factor.max(1).ilog2() + 1)
        };
        (interval * 2u32.pow(self.idle)).min(interval * max_factor.max(1))
    }
}

/// The delay until something due in `due_in_ms` milliseconds (rounded up), at most `max`.
pub(crate) fn until_due(due_in_ms: Option<f64>, max: Duration) -> Duration {
    match due_in_ms {
        Some(ms) => Duration::from_secs_f64(ms.max(0.0) / 1000.0 + 0.001).min(max),
        None => max,
    }
}
