//! Statements of durable jobs: their journal, events, child jobs and wake-ups (migration 0012).
//!
//! Every journal write is fenced: it records nothing unless the attempt still holds the job,
//! whose row it reads in share mode (`runledger.record_calls`, and `runledger.journal_fence` in
//! the wait and join functions), so the row is not claimed or rescued until the write commits.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor, PgPool};

use crate::error::Error;

/// One recorded call.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct EntryRow {
    pub(crate) position: i32,
    pub(crate) kind: String,
    pub(crate) name: String,
    pub(crate) key: Option<String>,
    pub(crate) state: String,
    pub(crate) output: Option<serde_json::Value>,
    pub(crate) attempt: i32,
    pub(crate) version: i32,
    pub(crate) recorded_at: DateTime<Utc>,
    /// The database's clock when the journal was read.
    pub(crate) db_now: DateTime<Utc>,
}

/// A job's journal, in position order.
pub(crate) async fn journal<'e>(db: impl PgExecutor<'e>, job: i64) -> Result<Vec<EntryRow>, Error> {
    Ok(sqlx::query_as::<_, EntryRow>(
        "SELECT position, kind, name, key, state, output, attempt, version, recorded_at, \
                now() AS db_now \
         FROM runledger.journal WHERE job_id = $1 ORDER BY position",
    )
    .bind(job)
    .fetch_all(db)
    .await?)
}

/// A call to record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewEntry<'a> {
    pub(crate) job: i64,
    pub(crate) attempt: i32,
    pub(crate) version: i32,
    pub(crate) position: i32,
    pub(crate) kind: &'static str,
    pub(crate) name: &'a str,
    pub(crate) key: Option<&'a str>,
}

/// A wait or join resolved (`done`) or not yet (`waiting`), with what was recorded.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct Resolved {
    pub(crate) state: String,
    pub(crate) output: Option<serde_json::Value>,
}

/// Resolves the wait at `entry.position` for event (`entry.name`, `entry.key`); see
/// `runledger.journal_wait`. `None` if the attempt no longer holds the job.
pub(crate) async fn resolve_wait(
    pool: &PgPool,
    entry: NewEntry<'_>,
    timeout_s: Option<f64>,
) -> Result<Option<Resolved>, Error> {
    Ok(sqlx::query_as::<_, Resolved>(
        "SELECT state, output FROM runledger.journal_wait($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(entry.job)
    .bind(entry.attempt)
    .bind(entry.version)
    .bind(entry.position)
    .bind(entry.name)
    .bind(entry.key.unwrap_or_default())
    .bind(timeout_s)
    .fetch_optional(pool)
    .await?)
}

/// Resolves the join of child `child` at `entry.position`; see `runledger.journal_join`.
pub(crate) async fn resolve_join(
    pool: &PgPool,
    entry: NewEntry<'_>,
    child: i64,
) -> Result<Option<Resolved>, Error> {
    Ok(sqlx::query_as::<_, Resolved>(
        "SELECT state, output FROM runledger.journal_join($1, $2, $3, $4, $5, $6)",
    )
    .bind(entry.job)
    .bind(entry.attempt)
    .bind(entry.version)
    .bind(entry.position)
    .bind(entry.name)
    .bind(child)
    .fetch_optional(pool)
    .await?)
}

/// How [`adopt`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Adopted {
    /// The job is the parent's child (now, or already).
    Yes,
    /// It has another parent.
    HasParent(i64),
    /// It is the parent itself or one of its ancestors.
    Ancestor,
}

/// Makes job `child` a child of `parent`, unless it has another parent already or is `parent`
/// or one of its ancestors.
pub(crate) async fn adopt(
    conn: &mut PgConnection,
    parent: i64,
    child: i64,
) -> Result<Adopted, Error> {
    let ancestor: bool = sqlx::query_scalar(
        "WITH RECURSIVE up AS ( \
             SELECT $1::int8 AS id \
             UNION SELECT j.parent_id FROM runledger.jobs j JOIN up ON j.id = up.id \
             WHERE j.parent_id IS NOT NULL \
         ) \
         SELECT EXISTS (SELECT 1 FROM up WHERE id = $2)",
    )
    .bind(parent)
    .bind(child)
    .fetch_one(&mut *conn)
    .await?;
    if ancestor {
        return Ok(Adopted::Ancestor);
    }
    let adopted: Option<i64> = sqlx::query_scalar(
        "UPDATE runledger.jobs SET parent_id = $1 \
         WHERE id = $2 AND (parent_id IS NULL OR parent_id = $1) RETURNING id",
    )
    .bind(parent)
    .bind(child)
    .fetch_optional(&mut *conn)
    .await?;
    if adopted.is_some() {
        return Ok(Adopted::Yes);
    }
    let other: Option<i64> =
        sqlx::query_scalar("SELECT parent_id FROM runledger.jobs WHERE id = $1")
            .bind(child)
            .fetch_optional(conn)
            .await?
            .flatten();
    Ok(other.map_or(Adopted::Yes, Adopted::HasParent))
}

/// Records event (`name`, `key`) with `payload` (JSON text) unless one is recorded already, and
/// wakes the jobs waiting for it. True if this emission was the first.
pub(crate) async fn emit<'e>(
    db: impl PgExecutor<'e>,
    name: &str,
    key: &str,
    payload: &str,
) -> Result<bool, Error> {
    Ok(
        sqlx::query_scalar("SELECT runledger.emit_event($1, $2, $3::jsonb)")
            .bind(name)
            .bind(key)
            .bind(payload)
            .fetch_one(db)
            .await?,
    )
}

/// An event as recorded.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct EventRow {
    pub(crate) payload: serde_json::Value,
    pub(crate) emitted_at: DateTime<Utc>,
}

/// Event (`name`, `key`), if emitted.
pub(crate) async fn event<'e>(
    db: impl PgExecutor<'e>,
    name: &str,
    key: &str,
) -> Result<Option<EventRow>, Error> {
    Ok(sqlx::query_as::<_, EventRow>(
        "SELECT payload, emitted_at FROM runledger.events WHERE name = $1 AND key = $2",
    )
    .bind(name)
    .bind(key)
    .fetch_optional(db)
    .await?)
}

/// Takes the advisory locks of wait conditions (JSON texts) until the transaction ends, in a
/// fixed order; see migration 0012.
pub(crate) async fn lock_waits(
    conn: &mut PgConnection,
    conditions: &[String],
) -> Result<(), Error> {
    sqlx::query("SELECT runledger.lock_waits($1::text[]::jsonb[])")
        .bind(conditions)
        .execute(conn)
        .await?;
    Ok(())
}

/// After jobs finished: parents waiting for them wake; the unfinished descendants of those in
/// `failed` (failed, cancelled or diverged) are cancelled.
pub(crate) async fn settle<'e>(
    db: impl PgExecutor<'e>,
    finished: &[i64],
    failed: &[i64],
) -> Result<(), Error> {
    sqlx::query("SELECT runledger.settle_durable($1, $2)")
        .bind(finished)
        .bind(failed)
        .execute(db)
        .await?;
    Ok(())
}

/// Makes the jobs waiting for any of `conditions` (JSON texts) available.
pub(crate) async fn wake(pool: &PgPool, conditions: &[String]) -> Result<i32, Error> {
    let mut tx = pool.begin().await?;
    lock_waits(&mut tx, conditions).await?;
    let woken: i32 = sqlx::query_scalar("SELECT runledger.wake_waiting($1::text[]::jsonb[])")
        .bind(conditions)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(woken)
}

/// Records a running job's progress (JSON text). False if the attempt no longer holds the job.
pub(crate) async fn progress(
    pool: &PgPool,
    job: i64,
    attempt: i32,
    value: &str,
) -> Result<bool, Error> {
    Ok(sqlx::query(
        "UPDATE runledger.jobs SET progress = $3::jsonb \
         WHERE id = $1 AND attempt = $2 AND state = 'running'",
    )
    .bind(job)
    .bind(attempt)
    .bind(value)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

/// The progress of job `id`: `None` if there is no such job, `Some(None)` if it reported none.
pub(crate) async fn progress_of(
    pool: &PgPool,
    id: i64,
) -> Result<Option<Option<serde_json::Value>>, Error> {
    Ok(
        sqlx::query_scalar("SELECT progress FROM runledger.jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?,
    )
}

/// The children of job `id`, oldest first.
pub(crate) async fn children<'e>(db: impl PgExecutor<'e>, id: i64) -> Result<Vec<i64>, Error> {
    Ok(
        sqlx::query_scalar("SELECT id FROM runledger.jobs WHERE parent_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(db)
            .await?,
    )
}

/// A finished call to record in a batch (see [`record_calls`]).
#[derive(Debug, Clone)]
pub(crate) struct CallRow {
    pub(crate) job: i64,
    pub(crate) attempt: i32,
    pub(crate) version: i32,
    pub(crate) position: i32,
    pub(crate) kind: &'static str,
    pub(crate) name: String,
    pub(crate) key: Option<String>,
    /// The output as JSON text; `None` for a sleep, whose output is its end.
    pub(crate) output: Option<String>,
    /// A sleep's end.
    pub(crate) until: Option<DateTime<Utc>>,
    /// A sleep's length, from now by the database clock, when `until` is `None`.
    pub(crate) delay_s: Option<f64>,
}

/// A call recorded by [`record_calls`].
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct RecordedCall {
    pub(crate) job_id: i64,
    pub(crate) position: i32,
    pub(crate) attempt: i32,
    pub(crate) output: serde_json::Value,
    /// For a sleep: whether its end has come.
    pub(crate) due: Option<bool>,
}

/// Records many calls in one statement (`runledger.record_calls`), each under its attempt's
/// fence; the calls of attempts that lost their job are not returned. `again`: the batch is
/// sent once more after an error that may have come after its commit; calls its attempts
/// recorded already are returned as recorded.
pub(crate) async fn record_calls<'e>(
    db: impl PgExecutor<'e>,
    rows: &[&CallRow],
    again: bool,
) -> Result<Vec<RecordedCall>, Error> {
    let n = rows.len();
    let mut jobs = Vec::with_capacity(n);
    let mut attempts = Vec::with_capacity(n);
    let mut positions = Vec::with_capacity(n);
    let mut kinds = Vec::with_capacity(n);
    let mut names = Vec::with_capacity(n);
    let mut keys = Vec::with_capacity(n);
    let mut outputs = Vec::with_capacity(n);
    let mut untils = Vec::with_capacity(n);
    let mut delays = Vec::with_capacity(n);
    let mut versions = Vec::with_capacity(n);
    for row in rows {
        jobs.push(row.job);
        attempts.push(row.attempt);
        positions.push(row.position);
        kinds.push(row.kind);
        names.push(row.name.as_str());
        keys.push(row.key.as_deref());
        outputs.push(row.output.as_deref());
        untils.push(row.until);
        delays.push(row.delay_s);
        versions.push(row.version);
    }
    Ok(sqlx::query_as::<_, RecordedCall>(
        "SELECT job_id, position, attempt, output, due \
         FROM runledger.record_calls($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&jobs)
    .bind(&attempts)
    .bind(&positions)
    .bind(&kinds)
    .bind(&names)
    .bind(&keys)
    .bind(&outputs)
    .bind(&untils)
    .bind(&delays)
    .bind(&versions)
    .bind(again)
    .fetch_all(db)
    .await?)
}
