//! What the database holds about a durable job: its journal and its children.

use chrono::{DateTime, Utc};

use crate::client::runledger::Runledger;
use crate::error::Error;
use crate::ids::JobId;
use crate::store::durable as store;

/// One recorded call of a durable job, as [`Runledger::journal`] reads it. It serializes, so
/// that a journal can be stored with a test and replayed (`testing::durable::replay_journal`,
/// feature `testing`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct JournalEntry {
    /// The call's place in the handler, fixed when the call was built (from 0).
    pub position: i32,
    /// `step`, `sleep`, `wait`, `spawn`, `join`, `now`, `uuid`, `random` or `select`.
    pub kind: String,
    /// The name the code gave the call (for `join`, the child's spawn name).
    pub name: String,
    /// The key given with `.key(..)` (for a wait, the event's routing key; for a join, the
    /// child's id).
    pub key: Option<String>,
    /// `done`, or `waiting` for a wait that has not resolved yet.
    pub state: String,
    /// What was recorded: a step's output; `{"until"}` for a sleep; `{"event", "emitted_at"}`
    /// or `{"timed_out", "until"}` for a wait; `{"child"}` for a spawn; `{"state", "output",
    /// "error"}` for a join; `{"winner"}` for a select.
    pub output: Option<serde_json::Value>,
    /// The attempt that recorded it.
    pub attempt: i32,
    /// The version of the code that recorded it.
    pub version: i32,
    /// When it was recorded, by the database's clock.
    pub recorded_at: DateTime<Utc>,
}

impl Runledger {
    /// The journal of durable job `id`, in position order (empty for a job that recorded
    /// nothing, or is not durable).
    pub async fn journal(&self, id: JobId) -> Result<Vec<JournalEntry>, Error> {
        Ok(store::journal(self.pool(), id.0)
            .await?
            .into_iter()
            .map(|row| JournalEntry {
                position: row.position,
                kind: row.kind,
                name: row.name,
                key: row.key,
                state: row.state,
                output: row.output,
                attempt: row.attempt,
                version: row.version,
                recorded_at: row.recorded_at,
            })
            .collect())
    }

    /// The child jobs durable job `id` spawned, oldest first.
    pub async fn children(&self, id: JobId) -> Result<Vec<JobId>, Error> {
        Ok(store::children(self.pool(), id.0)
            .await?
            .into_iter()
            .map(JobId)
            .collect())
    }
}
