//! The sampler (leader only): every 15 s, the jobs of each queue by unfinished state and how
//! long its oldest available job has been due, as the gauges `runledger_queue_depth` and
//! `runledger_queue_oldest_available_seconds`. One grouped read of the unfinished states'
//! partial indexes per pass, whatever the number of workers: only the leader samples.

use std::collections::HashSet;
use std::time::Duration;

use super::service::Service;
use crate::error::Error;
use crate::runtime::shared::Shared;
use crate::store::ops;

/// How often the leader samples.
const EVERY: Duration = Duration::from_secs(15);

/// The unfinished states, each reported per queue (0 when none).
const STATES: [&str; 5] = ["available", "running", "scheduled", "retryable", "waiting"];

#[derive(Default)]
pub(crate) struct Sampler {
    /// Queues reported before: one that empties is reported at 0, not left at its last value.
    seen: HashSet<String>,
    /// Whether the first interval has passed: a worker that takes the lead on a backlog does
    /// not count it while it starts draining it.
    waited: bool,
}

impl Service for Sampler {
    const NAME: &'static str = "sampler";
    const LEADER_ONLY: bool = true;

    async fn pass(&mut self, shared: &Shared) -> Result<Duration, Error> {
        if !std::mem::replace(&mut self.waited, true) {
            return Ok(EVERY);
        }
        let counts = ops::queue_counts(&shared.pool, 0.0).await?;
        let oldest = ops::oldest_available(&shared.pool).await?;
        // The leader's own queues are always reported (0 when empty), and any queue with jobs.
        self.seen.extend(shared.config.queues.iter().cloned());
        self.seen.extend(counts.iter().map(|c| c.queue.clone()));
        for queue in &self.seen {
            for state in STATES {
                let jobs = counts
                    .iter()
                    .find(|c| &c.queue == queue && c.state == state)
                    .map_or(0, |c| c.jobs);
                crate::telemetry::depth(queue, state, jobs);
            }
            let due = oldest
                .iter()
                .find(|o| &o.queue == queue)
                .map_or(0.0, |o| o.oldest_s);
            crate::telemetry::oldest(queue, due);
        }
        Ok(EVERY)
    }
}
