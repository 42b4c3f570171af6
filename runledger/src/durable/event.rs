//! Typed events: [`Event`], emitted with [`Runledger::emit`] (or [`Runledger::emit_tx`] inside
//! the caller's transaction) and awaited by durable jobs with
//! [`JobContext::wait`](crate::JobContext::wait).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::PgConnection;

use crate::client::runledger::Runledger;
use crate::error::Error;
use crate::store::durable as store;

/// An event durable jobs can wait for: a name, and a routing key taken from the payload.
///
/// Derive it: `#[derive(Event)] #[event(name = "orders.packed", key = order_id)]`. The first
/// emission of each (name, key) is kept; later ones change nothing. An event emitted before
/// anyone waits for it is kept too, and a wait that begins later finds it at once.
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The event's name: 1 to 128 characters from `A-Z a-z 0-9 _ . : -`.
    const NAME: &'static str;
    /// The routing key: a wait for `key` receives the event whose `key()` equals it.
    fn key(&self) -> String;
}

/// An event as recorded.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EventRecord<E> {
    /// The payload of the first emission.
    pub event: E,
    /// When it was emitted, by the database's clock.
    pub emitted_at: DateTime<Utc>,
}

/// The checked name, key and payload text of `event`.
fn prepare<E: Event>(event: &E) -> Result<(String, String), Error> {
    crate::validate::name("event", E::NAME)?;
    let key = event.key();
    crate::validate::text("the event key", &key)?;
    let payload = serde_json::to_string(event)
        .map_err(|e| Error::json(format!("event `{}` does not serialize", E::NAME), e))?;
    crate::validate::json_value(&format!("event `{}`", E::NAME), &payload)?;
    Ok((key, payload))
}

impl Runledger {
    /// Emits `event`: records it unless an event with its name and key is recorded already
    /// (the first emission wins), and wakes the jobs waiting for it. Returns whether this
    /// emission was the first.
    pub async fn emit<E: Event>(&self, event: &E) -> Result<bool, Error> {
        let (key, payload) = prepare(event)?;
        store::emit(self.pool(), E::NAME, &key, &payload).await
    }

    /// [`emit`](Self::emit) inside the caller's transaction: the event exists, and its waiters
    /// wake, only if the transaction commits.
    pub async fn emit_tx<E: Event>(&self, tx: &mut PgConnection, event: &E) -> Result<bool, Error> {
        let (key, payload) = prepare(event)?;
        store::emit(tx, E::NAME, &key, &payload).await
    }

    /// The recorded event `E` with routing key `key`, if one was emitted.
    pub async fn event<E: Event>(
        &self,
        key: impl std::fmt::Display,
    ) -> Result<Option<EventRecord<E>>, Error> {
        let key = key.to_string();
        let Some(row) = store::event(self.pool(), E::NAME, &key).await? else {
            return Ok(None);
        };
        let event = serde_json::from_value(row.payload).map_err(|e| {
            Error::json(
                format!("event `{}` with key `{key}` does not deserialize", E::NAME),
                e,
            )
        })?;
        Ok(Some(EventRecord {
            event,
            emitted_at: row.emitted_at,
        }))
    }
}
