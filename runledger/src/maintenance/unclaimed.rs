//! The unclaimed-kinds watch (leader only): finds available jobs that have waited longer than
//! [`WorkerBuilder::unclaimed_after`](crate::WorkerBuilder::unclaimed_after) while no running
//! worker serves their queue and kind (no worker linked with their `#[job]`, or none working
//! their queue), and says so in the log, once an hour per queue and kind. The jobs are left as
//! they are: a worker that knows the kind may still come. Operators read the same report with
//! [`Runledger::unclaimed_kinds`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::Service;
use super::registrar::REFRESH;
use crate::client::Runledger;
use crate::error::Error;
use crate::runtime::Shared;
use crate::store;

/// A worker not seen for this long is taken for gone.
const LIVE: Duration = Duration::from_secs(3 * REFRESH.as_secs());

/// How often the same queue and kind is reported in the log.
const REPEAT: Duration = Duration::from_secs(3600);

/// Available jobs of one queue and kind that no running worker serves, as reported by
/// [`Runledger::unclaimed_kinds`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnclaimedKind {
    /// The queue the jobs are on.
    pub queue: String,
    /// Their kind.
    pub kind: String,
    /// How many are available.
    pub jobs: i64,
    /// When the oldest became due (database clock).
    pub waiting_since: DateTime<Utc>,
}

impl Runledger {
    /// Queues and kinds whose available jobs have waited longer than `waiting_longer_than`
    /// while no running worker serves them: no worker has the kind's `#[job]` linked in, or
    /// none works the queue. Such jobs are never claimed until a worker that serves them
    /// starts; the maintenance leader also logs them (see
    /// [`WorkerBuilder::unclaimed_after`](crate::WorkerBuilder::unclaimed_after)).
    ///
    /// Workers record what they serve in `runledger.workers` every 30 s; a worker not seen for
    /// 90 s is taken for gone.
    pub async fn unclaimed_kinds(
        &self,
        waiting_longer_than: Duration,
    ) -> Result<Vec<UnclaimedKind>, Error> {
        let rows = store::workers::unclaimed(
            self.pool(),
            waiting_longer_than.as_secs_f64(),
            LIVE.as_secs_f64(),
        )
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| UnclaimedKind {
                queue: r.queue,
                kind: r.kind,
                jobs: r.jobs,
                waiting_since: r.waiting_since,
            })
            .collect())
    }
}

#[derive(Default)]
pub(crate) struct Watch {
    /// When each queue and kind was last reported.
    reported: HashMap<(String, String), Instant>,
}

impl Service for Watch {
    const NAME: &'static str = "unclaimed watch";
    const LEADER_ONLY: bool = true;

    async fn pass(&mut self, shared: &Shared) -> Result<Duration, Error> {
        let after = shared.config.maintenance.unclaimed_after;
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
        Ok((after / 2).clamp(Duration::from_secs(1), Duration::from_secs(60)))
    }
}
