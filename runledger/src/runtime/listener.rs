//! The listener: one connection that LISTENs for new work and control messages and wakes the
//! right producer. When the connection drops it reconnects and wakes every producer, so that
//! nothing announced while it was away waits for the poll.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;

use super::shared::Shared;
use crate::job::StopReason;
use crate::store::notify::{CONTROL_CHANNEL, JOBS_CHANNEL, Wake};

pub(crate) async fn run(shared: Arc<Shared>) {
    const FIRST_DELAY: Duration = Duration::from_millis(100);
    let mut delay = FIRST_DELAY;
    loop {
        let mut listening = false;
        match listen(&shared, &mut listening).await {
            Ok(()) => return,
            Err(error) => {
                // A failure after a working spell starts the backoff over.
                if listening {
                    delay = FIRST_DELAY;
                }
                tracing::warn!(
                    worker = %shared.config.id,
                    %error,
                    retry_in = ?delay,
                    "notification listener failed; polling until it is back"
                );
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {},
                    _ = shared.shutting_down() => return,
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Listens until shutdown (`Ok`) or an error the listener cannot recover from by itself.
/// Sets `listening` once `LISTEN` took effect.
async fn listen(shared: &Shared, listening: &mut bool) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(&shared.pool).await?;
    listener.ignore_pool_close_event(true);
    listener.listen_all([JOBS_CHANNEL, CONTROL_CHANNEL]).await?;
    *listening = true;
    // Anything announced before LISTEN took effect would be missed: look now.
    shared.wake_all();
    loop {
        let received = tokio::select! {
            received = listener.try_recv() => received?,
            _ = shared.shutting_down() => return Ok(()),
        };
        let Some(notification) = received else {
            // The connection dropped and was re-established: notifications may have been lost.
            tracing::info!(worker = %shared.config.id, "notification listener reconnected");
            shared.wake_all();
            continue;
        };
        match Wake::parse(notification.channel(), notification.payload()) {
            Some(Wake::Queue(queue)) => {
                if let Some(wake) = shared.queue_wakes.get(&queue) {
                    wake.notify_one();
                }
            }
            Some(Wake::Stager) => shared.stager_wake.notify_one(),
            Some(Wake::Schedules) => shared.scheduler_wake.notify_one(),
            Some(Wake::Cancel(id)) => shared.stop_job(id, StopReason::Cancelled),
            None => {}
        }
    }
}
