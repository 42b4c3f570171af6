//! The leader elector: every worker tries to hold the `maintenance` role's lease, a row in
//! `runledger.leaders` whose expiry is set by the database clock. The holder renews it every
//! third of the lease and runs the leader-only services; the others retry at the same pace and
//! take over once the lease has expired. A worker that shuts down gracefully deletes its lease,
//! so the next attempt of another worker takes the role at once.

use std::time::{Duration, Instant};

use super::service::Service;
use crate::error::Error;
use crate::runtime::shared::Shared;
use crate::store;

/// The role the maintenance leader holds.
pub(crate) const ROLE: &str = "maintenance";

#[derive(Default)]
pub(crate) struct Elector {
    /// While leader: the local instant before which the lease is surely still ours (the
    /// database's expiry counts from a moment after the claim was sent).
    held_until: Option<Instant>,
}

impl Elector {
    fn set(&mut self, shared: &Shared, held_until: Option<Instant>) {
        let was = self.held_until.is_some();
        self.held_until = held_until;
        let is = held_until.is_some();
        if was != is {
            shared.maintenance.leader.send_replace(is);
            if is {
                tracing::info!(worker = %shared.config.id, "became the maintenance leader");
            } else {
                tracing::info!(worker = %shared.config.id, "no longer the maintenance leader");
            }
        }
    }
}

impl Service for Elector {
    const NAME: &'static str = "leader elector";
    const LEADER_ONLY: bool = false;

    async fn pass(&mut self, shared: &Shared) -> Result<Duration, Error> {
        let lease = shared.config.maintenance.leader_lease;
        let sent = Instant::now();
        match store::leader::claim(
            &shared.pool,
            ROLE,
            &shared.maintenance.holder,
            lease.as_secs_f64(),
        )
        .await
        {
            Ok(held) => self.set(shared, held.then(|| sent + lease)),
            Err(error) => {
                // Without a renewal the lease lapses; stop acting as leader before it does.
                if self.held_until.is_some_and(|until| Instant::now() >= until) {
                    self.set(shared, None);
                }
                return Err(error);
            }
        }
        Ok(lease / 3)
    }

    async fn stop(&mut self, shared: &Shared) {
        if self.held_until.is_none() {
            return;
        }
        self.set(shared, None);
        match store::leader::release(&shared.pool, ROLE, &shared.maintenance.holder).await {
            Ok(_) => {
                tracing::info!(worker = %shared.config.id, "released the maintenance leader's lease")
            }
            Err(error) => tracing::warn!(
                worker = %shared.config.id,
                %error,
                "could not release the maintenance leader's lease; it expires by itself"
            ),
        }
    }
}
