//! The maintenance operations of the [`Runledger`] client: who leads, and which available jobs
//! no running worker serves.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::leader::ROLE;
use super::registrar::LIVE;
use crate::client::runledger::Runledger;
use crate::error::Error;
use crate::store;

/// Who holds the maintenance leader's lease, as returned by
/// [`Runledger::maintenance_leader`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeaderInfo {
    /// The leader's worker id (see [`WorkerBuilder::id`](crate::worker::WorkerBuilder::id)).
    pub worker: String,
    /// When it took the role (database clock).
    pub elected_at: DateTime<Utc>,
    /// When its lease runs out unless renewed (database clock).
    pub expires_at: DateTime<Utc>,
}

impl Runledger {
    /// The worker that holds the maintenance leader's lease (and so runs the scheduler, the
    /// pruner and the vacuumer), or `None` if no lease is current.
    pub async fn maintenance_leader(&self) -> Result<Option<LeaderInfo>, Error> {
        Ok(store::leader::holder(self.pool(), ROLE)
            .await?
            .map(|h| LeaderInfo {
                worker: h
                    .holder
                    .rsplit_once('/')
                    .map_or(h.holder.as_str(), |(worker, _token)| worker)
                    .to_owned(),
                elected_at: h.elected_at,
                expires_at: h.expires_at,
            }))
    }
}

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
    /// [`WorkerBuilder::unclaimed_after`](crate::worker::WorkerBuilder::unclaimed_after)).
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
