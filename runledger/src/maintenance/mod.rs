//! Services that keep the tables moving. Each implements [`Service`]: one bounded pass that
//! reports what it did through `tracing` and says when the next pass is due; [`run`] gives them
//! all the same loop (sleep until due, a wake-up or shutdown; back off after errors; wait for
//! leadership when the service is leader-only; clean up at shutdown).
//!
//! Every worker runs:
//! - [`stager`]: makes scheduled jobs and retries available when they are due;
//! - [`rescuer`]: returns jobs whose lease expired (crashed or cut-off workers) to the queue;
//! - [`leader`]: takes part in the election of the maintenance leader;
//! - [`registrar`]: records which queues and kinds this worker serves.
//!
//! Only the elected leader runs:
//! - [`scheduler`]: fires cron schedules;
//! - [`pruner`]: deletes finished jobs past their retention;
//! - [`vacuumer`]: vacuums the hot tables when dead rows pile up between autovacuum's visits;
//! - [`unclaimed`]: reports available jobs that no running worker serves.

mod client;
pub(crate) mod leader;
pub(crate) mod pruner;
pub(crate) mod registrar;
pub(crate) mod rescuer;
mod sampler;
pub(crate) mod scheduler;
mod service;
pub(crate) mod stager;
pub(crate) mod unclaimed;
pub(crate) mod vacuumer;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

pub use client::{LeaderInfo, UnclaimedKind};

use self::service::Service;
use crate::error::Error;
use crate::registry::JobRegistration;
use crate::runtime::config::WorkerConfig;
use crate::runtime::shared::Shared;

/// The loop every service runs until shutdown.
async fn run<S: Service>(shared: Arc<Shared>, mut service: S) {
    let mut failing = Duration::ZERO;
    loop {
        if S::LEADER_ONLY && !wait_for_leadership(&shared).await {
            break;
        }
        let delay = match service.pass(&shared).await {
            Ok(delay) => {
                failing = Duration::ZERO;
                delay
            }
            Err(error) => {
                failing = error_delay(failing);
                tracing::warn!(
                    worker = %shared.config.id,
                    service = S::NAME,
                    %error,
                    retry_in = ?failing,
                    "maintenance pass failed"
                );
                failing
            }
        };
        if shared.is_shutting_down() || !pause(&shared, delay, S::wake(&shared)).await {
            break;
        }
    }
    service.stop(&shared).await;
}

/// Waits until this worker is the leader; false at shutdown.
async fn wait_for_leadership(shared: &Shared) -> bool {
    let mut leader = shared.maintenance.leader.subscribe();
    tokio::select! {
        held = leader.wait_for(|held| *held) => held.is_ok(),
        _ = shared.shutting_down() => false,
    }
}

/// Sleeps for `delay`, or until `wake` fires or shutdown begins; false at shutdown.
pub(crate) async fn pause(
    shared: &Shared,
    delay: Duration,
    wake: Option<&tokio::sync::Notify>,
) -> bool {
    if delay.is_zero() {
        return !shared.is_shutting_down();
    }
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

/// Checks the maintenance settings and the schedules declared by the worker's jobs (called by
/// `WorkerBuilder::build`).
pub(crate) fn check<'a>(
    config: &WorkerConfig,
    jobs: impl IntoIterator<Item = &'a JobRegistration>,
) -> Result<(), Error> {
    config.maintenance.check()?;
    for reg in jobs {
        if let Some(schedule) = crate::schedule::Schedule::declared(reg) {
            schedule.check()?;
        }
    }
    Ok(())
}

/// Syncs the declared schedules and starts every service (called by `Worker::start`).
pub(crate) async fn start(
    shared: &Arc<Shared>,
) -> Result<Vec<(&'static str, JoinHandle<()>)>, Error> {
    scheduler::sync_declared(shared).await?;
    Ok(vec![
        spawn(shared, leader::Elector::default()),
        spawn(shared, stager::Stager),
        spawn(shared, rescuer::Rescuer),
        spawn(shared, scheduler::Scheduler),
        spawn(shared, pruner::Pruner::default()),
        spawn(shared, vacuumer::Vacuumer::default()),
        spawn(shared, registrar::Registrar::new()),
        spawn(shared, unclaimed::Watch::default()),
        spawn(shared, sampler::Sampler::default()),
    ])
}

fn spawn<S: Service>(shared: &Arc<Shared>, service: S) -> (&'static str, JoinHandle<()>) {
    (S::NAME, tokio::spawn(run(shared.clone(), service)))
}

/// Whether the worker task `name` is a maintenance service, which stops by itself (and cleans
/// up, such as releasing the leader's lease) once shutdown begins.
pub(crate) fn is_service(name: &str) -> bool {
    [
        leader::Elector::NAME,
        stager::Stager::NAME,
        rescuer::Rescuer::NAME,
        scheduler::Scheduler::NAME,
        pruner::Pruner::NAME,
        vacuumer::Vacuumer::NAME,
        registrar::Registrar::NAME,
        unclaimed::Watch::NAME,
        sampler::Sampler::NAME,
    ]
    .contains(&name)
}
