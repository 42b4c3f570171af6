//! Wake-ups for new jobs, debounced per process.
//!
//! A transaction that runs `NOTIFY` holds a database-wide lock from its commit until its commit
//! record is flushed, so notifying transactions commit one at a time. Notifying on every
//! enqueue would cap concurrent single enqueues at one disk flush each, in series. Instead, a
//! client notifies a channel payload at most once per window: the first enqueue in a window
//! notifies inside its own statement; later ones in the same window are covered by one trailing
//! notification sent when the window closes. A worker woken once claims until the queue is empty,
//! so nothing waits for the poll.
//!
//! Enqueues inside the caller's transaction always notify in their own statement: a trailing
//! notification could arrive before the caller commits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::PgPool;
use tokio::time::Instant;

use crate::store;

/// How long after a notification the same payload is not sent again from this process.
pub(crate) const WINDOW: Duration = Duration::from_millis(10);

#[derive(Debug, Default)]
pub(crate) struct Notifier {
    channels: Mutex<HashMap<String, Slot>>,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    last: Instant,
    trailing: bool,
}

impl Notifier {
    /// Which of `payloads` the enqueue statement itself should send now. The rest are covered by
    /// a trailing notification, scheduled here.
    pub(crate) fn take(self: &Arc<Self>, pool: &PgPool, payloads: Vec<String>) -> Vec<String> {
        let now = Instant::now();
        let mut send_now = Vec::new();
        let mut channels = self.channels.lock().expect("notifier poisoned");
        for payload in payloads {
            match channels.get_mut(&payload) {
                Some(slot) if now.duration_since(slot.last) < WINDOW => {
                    if !slot.trailing {
                        slot.trailing = true;
                        self.schedule_trailing(pool.clone(), payload, slot.last + WINDOW);
                    }
                }
                Some(slot) => {
                    slot.last = now;
                    send_now.push(payload);
                }
                None => {
                    channels.insert(
                        payload.clone(),
                        Slot {
                            last: now,
                            trailing: false,
                        },
                    );
                    send_now.push(payload);
                }
            }
        }
        send_now
    }

    fn schedule_trailing(self: &Arc<Self>, pool: PgPool, payload: String, at: Instant) {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            {
                let mut channels = this.channels.lock().expect("notifier poisoned");
                if let Some(slot) = channels.get_mut(&payload) {
                    slot.last = Instant::now();
                    slot.trailing = false;
                }
            }
            if let Err(error) = store::jobs::notify(&pool, std::slice::from_ref(&payload)).await {
                // Workers still find the jobs by polling.
                tracing::warn!(%error, channel_payload = %payload, "could not send a wake-up notification");
            }
        });
    }
}

/// The distinct wake-up payloads of `rows`.
pub(crate) fn payloads(rows: &[store::jobs::NewJob]) -> Vec<String> {
    let mut all: Vec<String> = rows.iter().flat_map(|r| r.wake_payloads()).collect();
    all.sort_unstable();
    all.dedup();
    all
}
