//! The unclaimed-kinds watch (leader only): finds available jobs that have waited longer than
//! [`WorkerBuilder::unclaimed_after`](crate::worker::WorkerBuilder::unclaimed_after) while no running
//! worker serves their queue and kind (no worker linked with their `#[job]`, or none working
//! their queue), and says so in the log, once an hour per queue and kind. The jobs are left as
//! they are: a worker that knows the kind may still come. Operators read the same report with
//! [`Runledger::unclaimed_kinds`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::registrar::LIVE;
use super::service::Service;
use crate::error::Error;
use crate::runtime::shared::Shared;
use crate::store;

/// How often the same queue and kind is reported in the log.
const REPEAT: Duration = Duration::from_secs(3600);

#[derive(Default)]
pub(crate) struct Watch {
    /// When each queue and kind was last reported.
    reported: HashMap<(String, String), Instant>,
    /// Whether the first interval has passed: the first check waits one interval after the
    /// worker takes the lead, so that a worker starting on a large backlog does not read it all
    /// while it drains.
    waited: bool,
}

impl Service for Watch {
    const NAME: &'static str = "unclaimed watch";
    const LEADER_ONLY: bool = true;

    async fn pass(&mut self, shared: &Shared) -> Result<Duration, Error> {
        let after = shared.config.maintenance.unclaimed_after;
        let interval = (after / 2).clamp(Duration::from_secs(1), Duration::from_secs(60));
        if !std::mem::replace(&mut self.waited, true) {
            return Ok(interval);
        }
        store::workers::forget_stale(&shared.pool, LIVE.as_secs_f64() * 10.0).await?;
        let unclaimed = shared.client.unclaimed_kinds(after).await?;
        let now = Instant::now();
        self.reported
            .retain(|_, at| now.duration_since(*at) < REPEAT);
        for u in unclaimed {
            let key = (u.queue.clone(), u.kind.clone());
            if self.reported.contains_key(&key) {
                continue;
            }
            tracing::warn!(
                worker = %shared.config.id,
                queue = %u.queue,
                kind = %u.kind,
                jobs = u.jobs,
                waiting_since = %u.waiting_since,
                "no running worker serves these jobs: none has this kind's `#[job]` linked in \
                 or works this queue; start one that does, or cancel the jobs"
            );
            self.reported.insert(key, now);
        }
        Ok(interval)
    }
}
