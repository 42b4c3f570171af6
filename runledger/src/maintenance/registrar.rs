//! The registrar: records this worker in `runledger.workers` (its queues and kinds, and which
//! kinds are sensitive in `runledger.kinds`) at start,
//! refreshes the record every 30 s, and deletes it at graceful shutdown, so that the leader can
//! tell which kinds no running worker serves. On the same beat it wakes the durable jobs that
//! wait for a worker able to resume the version of the code that recorded their journal, when
//! this worker is one.

use std::time::Duration;

use super::service::Service;
use crate::error::Error;
use crate::runtime::shared::Shared;
use crate::store;

/// How often a worker refreshes its record.
pub(crate) const REFRESH: Duration = Duration::from_secs(30);

/// A worker not seen for this long is taken for gone.
pub(crate) const LIVE: Duration = Duration::from_secs(3 * REFRESH.as_secs());

pub(crate) struct Registrar {
    host: String,
}

impl Registrar {
    pub(crate) fn new() -> Self {
        Registrar {
            host: crate::runtime::config::host_name(),
        }
    }
}

impl Service for Registrar {
    const NAME: &'static str = "registrar";
    const LEADER_ONLY: bool = false;

    async fn pass(&mut self, shared: &Shared) -> Result<Duration, Error> {
        store::workers::register(
            &shared.pool,
            &store::workers::Registration {
                holder: &shared.maintenance.holder,
                worker: &shared.config.id,
                queues: &shared.config.queues,
                kinds: &shared.kinds,
                host: &self.host,
                concurrency: shared.config.concurrency,
            },
        )
        .await?;
        let sensitive: Vec<bool> = shared
            .kinds
            .iter()
            .map(|kind| crate::registry::is_sensitive(kind))
            .collect();
        store::ops::record_kinds(&shared.pool, &shared.kinds, &sensitive).await?;
        let resumable: Vec<String> = shared
            .handlers
            .values()
            .filter(|reg| reg.options.durable)
            .flat_map(|reg| {
                std::iter::once(reg.options.version)
                    .chain(reg.options.resumes.iter().copied())
                    .map(|v| crate::runtime::executor::version_condition(reg.kind, v))
            })
            .collect();
        if !resumable.is_empty() {
            store::durable::wake(&shared.pool, &resumable).await?;
        }
        Ok(REFRESH)
    }

    async fn stop(&mut self, shared: &Shared) {
        if let Err(error) =
            store::workers::deregister(&shared.pool, &shared.maintenance.holder).await
        {
            tracing::debug!(worker = %shared.config.id, %error, "could not remove the worker's record");
        }
    }
}
