//! Statements on `runledger.schedules` and `runledger.schedule_fires`.

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool, Row};

use crate::error::Error;

/// A schedule to insert or update.
#[derive(Debug, Clone)]
pub(crate) struct NewSchedule {
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) expression: String,
    pub(crate) timezone: String,
    pub(crate) missed: &'static str,
    /// The payload as JSON text.
    pub(crate) args: String,
    pub(crate) queue: String,
    pub(crate) priority: i16,
    pub(crate) max_attempts: i32,
    pub(crate) timeout_ms: Option<i64>,
    pub(crate) next_fire_at: Option<DateTime<Utc>>,
}

/// A stored schedule.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ScheduleRow {
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) expression: String,
    pub(crate) timezone: String,
    pub(crate) missed: String,
    pub(crate) args: serde_json::Value,
    pub(crate) queue: String,
    pub(crate) paused: bool,
    pub(crate) declared: bool,
    pub(crate) next_fire_at: Option<DateTime<Utc>>,
    pub(crate) last_slot: Option<DateTime<Utc>>,
    pub(crate) revision: i64,
}

macro_rules! schedule_columns {
    () => {
        "name, kind, expression, timezone, missed, args, queue, paused, declared, next_fire_at, \
         last_slot, revision"
    };
}

/// The database clock.
pub(crate) async fn now<'e>(db: impl PgExecutor<'e>) -> Result<DateTime<Utc>, Error> {
    Ok(sqlx::query_scalar("SELECT now()").fetch_one(db).await?)
}

/// Binds `$1..$11` of the statements that write a whole schedule.
fn bind_schedule<'q>(query: PgQuery<'q>, s: &'q NewSchedule) -> PgQuery<'q> {
    query
        .bind(&s.name)
        .bind(&s.kind)
        .bind(&s.expression)
        .bind(&s.timezone)
        .bind(s.missed)
        .bind(&s.args)
        .bind(&s.queue)
        .bind(s.priority)
        .bind(s.max_attempts)
        .bind(s.timeout_ms)
        .bind(s.next_fire_at)
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Inserts a run-time schedule; false if one with the same name exists.
pub(crate) async fn insert<'e>(db: impl PgExecutor<'e>, s: &NewSchedule) -> Result<bool, Error> {
    let inserted = bind_schedule(
        sqlx::query(
            r#"
        INSERT INTO runledger.schedules (name, kind, expression, timezone, missed, args, queue,
                                         priority, max_attempts, timeout_ms, next_fire_at)
        VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $11)
        ON CONFLICT (name) DO NOTHING
        "#,
        ),
        s,
    )
    .execute(db)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Replaces the definition of an existing schedule (its paused flag is kept) and restarts its
/// cursor at `next_fire_at`; false if there is no such schedule.
pub(crate) async fn update<'e>(db: impl PgExecutor<'e>, s: &NewSchedule) -> Result<bool, Error> {
    let updated = bind_schedule(
        sqlx::query(
            r#"
        UPDATE runledger.schedules
        SET kind = $2, expression = $3, timezone = $4, missed = $5, args = $6::jsonb, queue = $7,
            priority = $8, max_attempts = $9, timeout_ms = $10, next_fire_at = $11,
            revision = revision + 1, updated_at = now()
        WHERE name = $1
        "#,
        ),
        s,
    )
    .execute(db)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

/// Inserts or refreshes a schedule declared in code. A changed expression or time zone restarts
/// the cursor; an unchanged definition is left alone (pause state included). A run-time
/// schedule of the same name is never overwritten. Returns what happened: `"inserted"`,
/// `"updated"`, or `None` when nothing changed or the name belongs to a run-time schedule.
pub(crate) async fn upsert_declared<'e>(
    db: impl PgExecutor<'e>,
    s: &NewSchedule,
) -> Result<Option<&'static str>, Error> {
    let row = bind_schedule(
        sqlx::query(
            r#"
        INSERT INTO runledger.schedules AS t (name, kind, expression, timezone, missed, args,
                                              queue, priority, max_attempts, timeout_ms,
                                              next_fire_at, declared)
        VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $11, true)
        ON CONFLICT (name) DO UPDATE
        SET kind = EXCLUDED.kind, expression = EXCLUDED.expression,
            timezone = EXCLUDED.timezone, missed = EXCLUDED.missed, args = EXCLUDED.args,
            queue = EXCLUDED.queue, priority = EXCLUDED.priority,
            max_attempts = EXCLUDED.max_attempts, timeout_ms = EXCLUDED.timeout_ms,
            next_fire_at = CASE
                WHEN (t.expression, t.timezone) = (EXCLUDED.expression, EXCLUDED.timezone)
                THEN t.next_fire_at ELSE EXCLUDED.next_fire_at END,
            revision = t.revision + 1,
            updated_at = now()
        WHERE t.declared
          AND (t.kind, t.expression, t.timezone, t.missed, t.args, t.queue, t.priority,
               t.max_attempts, t.timeout_ms)
              IS DISTINCT FROM
              (EXCLUDED.kind, EXCLUDED.expression, EXCLUDED.timezone, EXCLUDED.missed,
               EXCLUDED.args, EXCLUDED.queue, EXCLUDED.priority, EXCLUDED.max_attempts,
               EXCLUDED.timeout_ms)
        RETURNING (xmax = 0) AS inserted
        "#,
        ),
        s,
    )
    .fetch_optional(db)
    .await?;
    Ok(match row {
        Some(row) if row.try_get::<bool, _>(0)? => Some("inserted"),
        Some(_) => Some("updated"),
        None => None,
    })
}

/// Pauses a schedule. False if there is no such schedule.
pub(crate) async fn pause<'e>(db: impl PgExecutor<'e>, name: &str) -> Result<bool, Error> {
    let updated = sqlx::query(
        "UPDATE runledger.schedules SET paused = true, revision = revision + 1, \
         updated_at = now() WHERE name = $1",
    )
    .bind(name)
    .execute(db)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

/// Resumes a paused schedule with its cursor at `next_fire_at` (slots that passed while it was
/// paused are not fired), if it is still paused at `revision`. False if it is not (any more):
/// resumed meanwhile, changed, or removed.
pub(crate) async fn resume<'e>(
    db: impl PgExecutor<'e>,
    name: &str,
    revision: i64,
    next_fire_at: Option<DateTime<Utc>>,
) -> Result<bool, Error> {
    let updated = sqlx::query(
        r#"
        UPDATE runledger.schedules
        SET paused = false, next_fire_at = $3, revision = revision + 1, updated_at = now()
        WHERE name = $1 AND paused AND revision = $2
        "#,
    )
    .bind(name)
    .bind(revision)
    .bind(next_fire_at)
    .execute(db)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

/// Deletes a schedule and its fire rows; false if there was none.
pub(crate) async fn delete<'e>(db: impl PgExecutor<'e>, name: &str) -> Result<bool, Error> {
    let deleted = sqlx::query("DELETE FROM runledger.schedules WHERE name = $1")
        .bind(name)
        .execute(db)
        .await?
        .rows_affected();
    Ok(deleted == 1)
}

/// One schedule by name.
pub(crate) async fn get<'e>(
    db: impl PgExecutor<'e>,
    name: &str,
) -> Result<Option<ScheduleRow>, Error> {
    const SQL: &str = concat!(
        "SELECT ",
        schedule_columns!(),
        " FROM runledger.schedules WHERE name = $1"
    );
    Ok(sqlx::query_as::<_, ScheduleRow>(SQL)
        .bind(name)
        .fetch_optional(db)
        .await?)
}

/// Every schedule, by name.
pub(crate) async fn list<'e>(db: impl PgExecutor<'e>) -> Result<Vec<ScheduleRow>, Error> {
    const SQL: &str = concat!(
        "SELECT ",
        schedule_columns!(),
        " FROM runledger.schedules ORDER BY name"
    );
    Ok(sqlx::query_as::<_, ScheduleRow>(SQL).fetch_all(db).await?)
}

/// A schedule whose cursor is due.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct Due {
    pub(crate) name: String,
    pub(crate) expression: String,
    pub(crate) timezone: String,
    pub(crate) missed: String,
    pub(crate) next_fire_at: DateTime<Utc>,
    /// The definition's revision when the row was read.
    pub(crate) revision: i64,
    /// The database clock when the row was read.
    pub(crate) now: DateTime<Utc>,
}

/// Active schedules whose next slot has come, oldest first, at most `limit`.
pub(crate) async fn due(pool: &PgPool, limit: i64) -> Result<Vec<Due>, Error> {
    Ok(sqlx::query_as::<_, Due>(
        r#"
        SELECT name, expression, timezone, missed, next_fire_at, revision, now() AS now
        FROM runledger.schedules
        WHERE NOT paused AND next_fire_at <= now()
        ORDER BY next_fire_at
        LIMIT $1
        "#,
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Tells every worker's listener that the schedules changed (delivered when the surrounding
/// transaction commits), so that the leader's scheduler looks again at once.
pub(crate) async fn announce_change(conn: impl PgExecutor<'_>) -> Result<(), Error> {
    let wake = super::notify::Wake::Schedules;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(wake.channel())
        .bind(wake.payload())
        .execute(conn)
        .await?;
    Ok(())
}

/// Milliseconds until the next active schedule is due, if any.
pub(crate) async fn next_due_ms(pool: &PgPool) -> Result<Option<f64>, Error> {
    Ok(sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM (min(next_fire_at) - now()))::float8 * 1000 \
         FROM runledger.schedules WHERE NOT paused",
    )
    .fetch_one(pool)
    .await?)
}

/// What one fire did.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct Fired {
    /// False when the cursor was not where the caller read it (another scheduler moved it, or
    /// the schedule was paused, updated or removed): nothing was written.
    pub(crate) advanced: bool,
    /// The jobs enqueued, one per slot that had not fired before.
    pub(crate) job_ids: Vec<i64>,
}

/// Moves the cursor of the `due` schedule to `next` (compare-and-set on the cursor and the
/// revision it was read at), records a fire row for each of `slots` that has none, and enqueues
/// one job per new fire row (due at its slot), announcing them. One statement: all of it
/// happens, or none. With `leader`, nothing happens unless that holder has an unexpired lease
/// of the maintenance role, checked by the statement itself.
pub(crate) async fn fire(
    pool: &PgPool,
    due: &Due,
    next: Option<DateTime<Utc>>,
    slots: &[DateTime<Utc>],
    leader: Option<&str>,
) -> Result<Fired, Error> {
    Ok(sqlx::query_as::<_, Fired>(concat!(
        r#"
        WITH moved AS (
            UPDATE runledger.schedules
            SET next_fire_at = $3,
                last_slot = COALESCE((SELECT max(s) FROM unnest($4::timestamptz[]) AS s),
                                     last_slot),
                updated_at = now()
            WHERE name = $1 AND next_fire_at = $2 AND revision = $5 AND NOT paused
              AND "#,
        leader_holds_lease!("6"),
        r#"
            RETURNING name, kind, queue, args, priority, max_attempts, timeout_ms
        ),
        fired AS (
            INSERT INTO runledger.schedule_fires (schedule, slot, job_id)
            SELECT m.name, s.slot, nextval('runledger.jobs_id_seq')
            FROM moved m CROSS JOIN unnest($4::timestamptz[]) AS s(slot)
            ON CONFLICT (schedule, slot) DO NOTHING
            RETURNING slot, job_id
        ),
        enqueued AS (
            "#,
        insert_jobs!(),
        r#"(
                SELECT f.job_id AS id, m.kind, m.queue, m.priority, m.args, m.max_attempts,
                       f.slot AS run_at, m.timeout_ms, NULL::text AS unique_key,
                       NULL::int2 AS unique_states, NULL::int8 AS run_id, NULL::text AS step
                FROM fired f CROSS JOIN moved m
            ) j
            RETURNING id, queue
        ),
        notified AS (
            SELECT "#,
        notify_queue!("q.queue"),
        r#"
            FROM (SELECT DISTINCT queue FROM enqueued) q
        )
        SELECT EXISTS (SELECT 1 FROM moved) AS advanced,
               ARRAY(SELECT id FROM enqueued ORDER BY id) AS job_ids
        FROM (SELECT count(*) FROM notified) n
        "#
    ))
    .bind(&due.name)
    .bind(due.next_fire_at)
    .bind(next)
    .bind(slots)
    .bind(due.revision)
    .bind(leader)
    .fetch_one(pool)
    .await?)
}
