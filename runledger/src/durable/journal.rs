//! The journal of one attempt of a durable job: what was recorded before it, the positions its
//! calls take, and how the attempt ends when a call suspends or finds the code changed.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Instant;

use chrono::{DateTime, Utc};

use super::suspension::Suspension;
use crate::client::runledger::Runledger;
use crate::error::Error;
use crate::job::error::{JobError, JobErrorKind};
use crate::runtime::journaler::{Journaler, RecordError};
use crate::store::durable::{CallRow, EntryRow, NewEntry, RecordedCall};

/// One attempt's view of a durable job's journal.
pub(crate) struct Journal {
    pub(crate) job: i64,
    pub(crate) attempt: i32,
    pub(crate) version: i32,
    pub(crate) client: Runledger,
    recorded: BTreeMap<i32, EntryRow>,
    next: AtomicI32,
    db_now: DateTime<Utc>,
    loaded: Instant,
    diverged: Mutex<Option<String>>,
    lease_lost: AtomicBool,
    stop: Option<Stop>,
    writer: Option<Journaler>,
}

/// Where a journal stops a handler before it makes a call it has not recorded (testing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Before the first unrecorded call of this name.
    Before(&'static str),
    /// Before any unrecorded call: a replay that writes nothing.
    Unrecorded,
}

impl fmt::Debug for Journal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Journal")
            .field("job", &self.job)
            .field("attempt", &self.attempt)
            .field("recorded", &self.recorded.len())
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl Journal {
    /// Reads the journal of `job` for attempt `attempt` (a first attempt has none to read).
    /// Calls are recorded through `writer` when given, else one statement each.
    pub(crate) async fn load(
        client: Runledger,
        job: i64,
        attempt: i32,
        version: i32,
        writer: Option<Journaler>,
    ) -> Result<Self, Error> {
        let rows = if attempt > 1 {
            crate::store::durable::journal(client.pool(), job).await?
        } else {
            Vec::new()
        };
        let db_now = rows.first().map_or_else(Utc::now, |r| r.db_now);
        let mut journal = Self::new(client, job, attempt, version, rows, db_now);
        journal.writer = writer;
        Ok(journal)
    }

    /// Records a finished call with its output (JSON text), as `what` (for errors). An attempt
    /// that no longer holds the job gets the lost-lease error; a call the database refuses, a
    /// fatal error; anything else, a retryable one (nothing was recorded).
    pub(crate) async fn record(
        &self,
        entry: NewEntry<'_>,
        output: &str,
        what: &str,
    ) -> Result<(), JobError> {
        self.write(call_row(&entry, Some(output.to_owned()), None, None), what)
            .await
            .map(drop)
    }

    /// Records a sleep until `until`, or for `delay_s` seconds from now by the database clock:
    /// its end and whether that has come. Errors as for [`record`](Self::record).
    pub(crate) async fn record_sleep(
        &self,
        entry: NewEntry<'_>,
        until: Option<DateTime<Utc>>,
        delay_s: f64,
        what: &str,
    ) -> Result<(DateTime<Utc>, bool), JobError> {
        let recorded = self
            .write(call_row(&entry, None, until, Some(delay_s)), what)
            .await?;
        let end = recorded
            .output
            .get("until")
            .and_then(|u| serde_json::from_value(u.clone()).ok())
            .ok_or_else(|| JobError::fatal(format!("{what}: the recorded sleep has no end")))?;
        Ok((end, recorded.due.unwrap_or(false)))
    }

    /// Writes `row` through the worker's journaler, or with a statement of its own without one.
    async fn write(&self, row: CallRow, what: &str) -> Result<RecordedCall, JobError> {
        check_identity(&row, what)?;
        let recorded = match &self.writer {
            Some(writer) => writer.record(row).await,
            None => crate::store::durable::record_calls(self.client.pool(), &[&row], false)
                .await
                .map(|mut recorded| recorded.pop())
                .map_err(|e| RecordError::of(&e)),
        };
        match recorded {
            Ok(Some(recorded)) => Ok(recorded),
            Ok(None) => Err(self.lost()),
            Err(error) => Err(record_error(what, &error)),
        }
    }

    pub(crate) fn new(
        client: Runledger,
        job: i64,
        attempt: i32,
        version: i32,
        rows: Vec<EntryRow>,
        db_now: DateTime<Utc>,
    ) -> Self {
        Self {
            job,
            attempt,
            version,
            client,
            recorded: rows.into_iter().map(|r| (r.position, r)).collect(),
            next: AtomicI32::new(0),
            db_now,
            loaded: Instant::now(),
            diverged: Mutex::new(None),
            lease_lost: AtomicBool::new(false),
            stop: None,
            writer: None,
        }
    }

    /// Stops the handler before the first unrecorded call named `name` (see [`Stop`]).
    pub(crate) fn stop_before(mut self, name: Option<&'static str>) -> Self {
        self.stop = name.map(Stop::Before);
        self
    }

    /// Stops the handler before any call it has not recorded.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) fn replay_only(mut self) -> Self {
        self.stop = Some(Stop::Unrecorded);
        self
    }

    /// The newest version of the code that recorded a call, if any was recorded.
    pub(crate) fn recorded_version(&self) -> Option<i32> {
        self.recorded.values().map(|r| r.version).max()
    }

    /// A replay that writes nothing (testing).
    pub(crate) fn replaying(&self) -> bool {
        self.stop == Some(Stop::Unrecorded)
    }

    /// Calls built so far.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) fn built(&self) -> usize {
        self.next.load(Ordering::Relaxed).max(0) as usize
    }

    /// Takes the next position: a call's place is fixed when it is built.
    pub(crate) fn position(&self) -> i32 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// The database's clock, as read when the journal was loaded plus the time since.
    pub(crate) fn db_now(&self) -> DateTime<Utc> {
        self.db_now
            + chrono::Duration::from_std(self.loaded.elapsed()).unwrap_or(chrono::Duration::zero())
    }

    /// The recorded entry at `position`, checked against the call the code makes there now.
    pub(crate) fn entry(
        &self,
        position: i32,
        kind: &'static str,
        name: &str,
        key: Option<&str>,
    ) -> Result<Option<&EntryRow>, JobError> {
        if let Some(diff) = self.diverged() {
            return Err(JobError::new(JobErrorKind::Diverged(diff)));
        }
        let Some(entry) = self.recorded.get(&position) else {
            return match self.stop {
                Some(Stop::Before(stop)) if stop == name => {
                    Err(Suspension::new(serde_json::json!({ "stop": name }), None).into())
                }
                Some(Stop::Unrecorded) => Err(Suspension::new(
                    serde_json::json!({
                        "replayed": position,
                        "next": describe(kind, name, key),
                    }),
                    None,
                )
                .into()),
                _ => Ok(None),
            };
        };
        if entry.kind == kind && entry.name == name && entry.key.as_deref() == key {
            if self.stop == Some(Stop::Unrecorded) && entry.state != "done" {
                // A replay resolves nothing: it stops at a call still waiting.
                return Err(Suspension::new(
                    serde_json::json!({
                        "replayed": position,
                        "next": format!("{} (still waiting)", describe(kind, name, key)),
                    }),
                    None,
                )
                .into());
            }
            return Ok(Some(entry));
        }
        Err(self.diverge(format!(
            "position {position}: recorded {}, the code now calls {}",
            describe(&entry.kind, &entry.name, entry.key.as_deref()),
            describe(kind, name, key)
        )))
    }

    /// Records the first difference found; the attempt ends `diverged`.
    pub(crate) fn diverge(&self, diff: String) -> JobError {
        let mut slot = self.diverged.lock().expect("journal lock poisoned");
        let diff = slot.get_or_insert(diff).clone();
        JobError::new(JobErrorKind::Diverged(diff))
    }

    /// The difference found, if the code no longer matches the journal.
    pub(crate) fn diverged(&self) -> Option<String> {
        self.diverged.lock().expect("journal lock poisoned").clone()
    }

    /// After the handler returned: a recorded call the code did not make is a difference too.
    pub(crate) fn check_complete(&self) -> Option<String> {
        if let Some(diff) = self.diverged() {
            return Some(diff);
        }
        let next = self.next.load(Ordering::Relaxed);
        let (position, entry) = self.recorded.range(next..).next()?;
        let diff = format!(
            "position {position}: recorded {}, the code now returns before it",
            describe(&entry.kind, &entry.name, entry.key.as_deref())
        );
        let _ = self.diverge(diff);
        self.diverged()
    }

    /// The attempt no longer holds the job.
    pub(crate) fn lost(&self) -> JobError {
        self.lease_lost.store(true, Ordering::Relaxed);
        JobError::new(JobErrorKind::LeaseLost)
    }

    pub(crate) fn lease_lost(&self) -> bool {
        self.lease_lost.load(Ordering::Relaxed)
    }

    /// The row a call at `position` records.
    pub(crate) fn new_entry<'a>(
        &self,
        position: i32,
        kind: &'static str,
        name: &'a str,
        key: Option<&'a str>,
    ) -> NewEntry<'a> {
        NewEntry {
            job: self.job,
            attempt: self.attempt,
            version: self.version,
            position,
            kind,
            name,
            key,
        }
    }
}

/// A name or key PostgreSQL cannot store in text (a NUL character) is refused before it reaches
/// a batch, where it would fail every call recorded with it.
fn check_identity(row: &CallRow, what: &str) -> Result<(), JobError> {
    for text in std::iter::once(row.name.as_str()).chain(row.key.as_deref()) {
        crate::validate::text("the call's name or key", text)
            .map_err(|e| JobError::fatal(format!("{what}: {e}")))?;
    }
    Ok(())
}

/// A call that could not be recorded: for good when the database refused it, else retryable
/// (the call runs again on the next attempt).
fn record_error(what: &str, error: &RecordError) -> JobError {
    if error.refused {
        JobError::fatal(format!("{what} could not be recorded: {error}"))
    } else {
        JobError::retry(format!("{what} could not be recorded: {error}"))
    }
}

pub(crate) fn call_row(
    entry: &NewEntry<'_>,
    output: Option<String>,
    until: Option<DateTime<Utc>>,
    delay_s: Option<f64>,
) -> CallRow {
    CallRow {
        job: entry.job,
        attempt: entry.attempt,
        version: entry.version,
        position: entry.position,
        kind: entry.kind,
        name: entry.name.to_owned(),
        key: entry.key.map(str::to_owned),
        output,
        until,
        delay_s,
    }
}

/// `step `charge`` or `step `charge` (key `42`)`.
fn describe(kind: &str, name: &str, key: Option<&str>) -> String {
    match key {
        Some(key) => format!("{kind} `{name}` (key `{key}`)"),
        None => format!("{kind} `{name}`"),
    }
}
