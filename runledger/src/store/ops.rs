//! Statements of the operators' API ([`crate::admin`]): lists with keyset pagination, details,
//! bulk actions, queue and worker reports, and the checks of `doctor`.
//!
//! Lists are assembled from fixed fragments with every value bound, so that each filter gets a
//! plan of its own (a state filter reads its partial index) and no user text ever becomes SQL.
//! They never read payloads, and nothing here counts the whole jobs table: queue reports count
//! the unfinished states (their partial indexes) and the jobs finished in the last hour (the
//! finish-time index).

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, QueryBuilder};

use crate::error::Error;

/// The filter of a job list or a bulk action, as bound values.
#[derive(Debug, Default, Clone)]
pub(crate) struct JobQuery {
    pub(crate) ids: Vec<i64>,
    pub(crate) states: Vec<String>,
    pub(crate) kinds: Vec<String>,
    pub(crate) queues: Vec<String>,
    pub(crate) created_after: Option<DateTime<Utc>>,
    pub(crate) created_before: Option<DateTime<Utc>>,
    /// Text searched (case-insensitively) in the job's recorded errors.
    pub(crate) error_contains: Option<String>,
    pub(crate) run: Option<i64>,
    pub(crate) parent: Option<i64>,
    /// Keyset: only jobs with a smaller id.
    pub(crate) before_id: Option<i64>,
    /// Only jobs with a larger id: the floor of a list's window (see [`list_jobs`]).
    pub(crate) after_id: Option<i64>,
}

impl JobQuery {
    /// Whether an index leads to the jobs this query matches whatever the table's size: given
    /// ids, a run's or a parent's jobs, or only states with partial indexes of their own
    /// (failed, cancelled, diverged, running, scheduled, retryable, waiting).
    fn narrow(&self) -> bool {
        !self.ids.is_empty()
            || self.run.is_some()
            || self.parent.is_some()
            || (!self.states.is_empty()
                && self
                    .states
                    .iter()
                    .all(|s| !matches!(s.as_str(), "completed" | "available")))
    }
}

/// The most ids one page of a list that no index narrows looks through: with a million finished
/// jobs, a filter on a rare kind reads at most this many rows per page, not the table.
pub(crate) const WINDOW: i64 = 100_000;

/// The `WHERE` clause of `q`, all values bound.
fn push_job_filter(b: &mut QueryBuilder<Postgres>, q: &JobQuery) {
    b.push(" WHERE true");
    if !q.ids.is_empty() {
        b.push(" AND j.id = ANY(")
            .push_bind(q.ids.clone())
            .push(")");
    }
    if !q.states.is_empty() {
        b.push(" AND j.state = ANY(")
            .push_bind(q.states.clone())
            .push(")");
        if q.states.iter().all(|s| s == "running") {
            // Running jobs hold a lease: the lease index leads to them.
            b.push(" AND j.lease_expires_at IS NOT NULL");
        }
    }
    if !q.kinds.is_empty() {
        b.push(" AND j.kind = ANY(")
            .push_bind(q.kinds.clone())
            .push(")");
    }
    if !q.queues.is_empty() {
        b.push(" AND j.queue = ANY(")
            .push_bind(q.queues.clone())
            .push(")");
    }
    if let Some(t) = q.created_after {
        b.push(" AND j.created_at >= ").push_bind(t);
    }
    if let Some(t) = q.created_before {
        b.push(" AND j.created_at < ").push_bind(t);
    }
    if let Some(text) = &q.error_contains {
        b.push(" AND j.errors::text ILIKE ")
            .push_bind(format!("%{}%", like_escaped(text)));
    }
    if let Some(run) = q.run {
        b.push(" AND j.run_id = ").push_bind(run);
    }
    if let Some(parent) = q.parent {
        b.push(" AND j.parent_id = ").push_bind(parent);
    }
    if let Some(id) = q.before_id {
        b.push(" AND j.id < ").push_bind(id);
    }
    if let Some(id) = q.after_id {
        b.push(" AND j.id > ").push_bind(id);
    }
}

/// `text` with the `LIKE` wildcards `%`, `_` and the escape `\` taken literally.
fn like_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A job in a list: no payload, the last error only.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct JobSummaryRow {
    pub(crate) id: i64,
    pub(crate) kind: String,
    pub(crate) queue: String,
    pub(crate) state: String,
    pub(crate) priority: i16,
    pub(crate) attempt: i32,
    pub(crate) max_attempts: i32,
    pub(crate) run_at: DateTime<Utc>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) attempted_at: Option<DateTime<Utc>>,
    pub(crate) finished_at: Option<DateTime<Utc>>,
    pub(crate) last_error: Option<String>,
    pub(crate) run_id: Option<i64>,
    pub(crate) step: Option<String>,
    pub(crate) parent_id: Option<i64>,
    pub(crate) waiting_for: Option<serde_json::Value>,
}

const SUMMARY_COLUMNS: &str = "j.id, j.kind, j.queue, j.state, j.priority, j.attempt, \
     j.max_attempts, j.run_at, j.created_at, j.attempted_at, j.finished_at, \
     left(j.errors -> -1 ->> 'error', 500) AS last_error, j.run_id, j.step, j.parent_id, \
     j.waiting_for";

/// Jobs matching `q`, newest first, at most `limit`; and, when no index narrows the query, the
/// floor of the window of ids it looked through ([`WINDOW`] below `q.before_id`, or below the
/// newest id): the next page starts there even when this one came back short.
pub(crate) async fn list_jobs(
    pool: &PgPool,
    q: &JobQuery,
    limit: i64,
) -> Result<(Vec<JobSummaryRow>, Option<i64>), Error> {
    let mut q = q.clone();
    let mut floor = None;
    if !q.narrow() {
        let top = match q.before_id {
            Some(id) => id,
            None => sqlx::query_scalar::<_, Option<i64>>("SELECT max(id) + 1 FROM runledger.jobs")
                .fetch_one(pool)
                .await?
                .unwrap_or(0),
        };
        if top.saturating_sub(WINDOW) > 0 {
            floor = Some(top - WINDOW);
            q.after_id = floor;
        }
    }
    // Several states: one branch per state, each read in id order from its own index and cut
    // at the page's length, then merged (one scan over every matching state would read all of
    // them before sorting).
    let states: Vec<Vec<String>> = if q.states.len() > 1 {
        q.states.iter().map(|s| vec![s.clone()]).collect()
    } else {
        vec![q.states.clone()]
    };
    let mut b = QueryBuilder::<Postgres>::new("SELECT * FROM (");
    for (i, state) in states.into_iter().enumerate() {
        if i > 0 {
            b.push(" UNION ALL ");
        }
        let branch = JobQuery {
            states: state,
            ..q.clone()
        };
        // One failure state: the order of its index (state, id), read backwards and stopped
        // at the page's length, even under a filter the planner guesses to match few rows.
        let order = match branch.states.as_slice() {
            [s] if matches!(s.as_str(), "failed" | "cancelled" | "diverged") => {
                " ORDER BY j.state DESC, j.id DESC LIMIT "
            }
            _ => " ORDER BY j.id DESC LIMIT ",
        };
        b.push("(SELECT ")
            .push(SUMMARY_COLUMNS)
            .push(" FROM runledger.jobs j");
        push_job_filter(&mut b, &branch);
        b.push(order).push_bind(limit).push(")");
    }
    b.push(") page ORDER BY id DESC LIMIT ").push_bind(limit);
    let rows = b.build_query_as::<JobSummaryRow>().fetch_all(pool).await?;
    Ok((rows, floor))
}

/// Ids of jobs matching `q`, newest first, at most `limit` (the targets of a bulk action).
pub(crate) async fn job_ids(pool: &PgPool, q: &JobQuery, limit: i64) -> Result<Vec<i64>, Error> {
    let mut b = QueryBuilder::<Postgres>::new("SELECT j.id FROM runledger.jobs j");
    push_job_filter(&mut b, q);
    b.push(" ORDER BY j.id DESC LIMIT ").push_bind(limit);
    Ok(b.build_query_scalar::<i64>().fetch_all(pool).await?)
}

/// What a job's detail adds to its record.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct JobExtraRow {
    pub(crate) history: serde_json::Value,
    pub(crate) run_id: Option<i64>,
    pub(crate) step: Option<String>,
    pub(crate) timeout_ms: Option<i64>,
    pub(crate) lease_expires_at: Option<DateTime<Utc>>,
    pub(crate) attempted_by: Option<String>,
    pub(crate) cancel_requested: bool,
    /// The database's clock when read.
    pub(crate) now: DateTime<Utc>,
}

/// The history and bookkeeping columns of job `id`.
pub(crate) async fn job_extra(pool: &PgPool, id: i64) -> Result<Option<JobExtraRow>, Error> {
    Ok(sqlx::query_as::<_, JobExtraRow>(
        "SELECT history, run_id, step, timeout_ms, lease_expires_at, attempted_by, \
                cancel_requested, now() AS now \
         FROM runledger.jobs WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// An event as listed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct EventListRow {
    pub(crate) name: String,
    pub(crate) key: String,
    pub(crate) payload: serde_json::Value,
    pub(crate) emitted_at: DateTime<Utc>,
}

/// Events, newest first, before `before` (keyset on the emission time and name, key), at most
/// `limit`; only those named `name` when given.
pub(crate) async fn list_events(
    pool: &PgPool,
    name: Option<&str>,
    before: Option<(DateTime<Utc>, String, String)>,
    limit: i64,
) -> Result<Vec<EventListRow>, Error> {
    let (at, bname, bkey) = before.unzip3();
    Ok(sqlx::query_as::<_, EventListRow>(
        "SELECT name, key, payload, emitted_at FROM runledger.events \
         WHERE ($1::text IS NULL OR name = $1) \
           AND ($2::timestamptz IS NULL OR (emitted_at, name, key) < ($2, $3, $4)) \
         ORDER BY emitted_at DESC, name DESC, key DESC LIMIT $5",
    )
    .bind(name)
    .bind(at)
    .bind(bname)
    .bind(bkey)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

trait Unzip3<A, B, C> {
    fn unzip3(self) -> (Option<A>, Option<B>, Option<C>);
}

impl<A, B, C> Unzip3<A, B, C> for Option<(A, B, C)> {
    fn unzip3(self) -> (Option<A>, Option<B>, Option<C>) {
        match self {
            Some((a, b, c)) => (Some(a), Some(b), Some(c)),
            None => (None, None, None),
        }
    }
}

/// Events named in `conditions` (`{"event", "key"}` objects), as recorded.
pub(crate) async fn events_of(
    pool: &PgPool,
    names: &[String],
    keys: &[String],
) -> Result<Vec<EventListRow>, Error> {
    Ok(sqlx::query_as::<_, EventListRow>(
        "SELECT e.name, e.key, e.payload, e.emitted_at \
         FROM unnest($1::text[], $2::text[]) AS c(name, key) \
         JOIN runledger.events e ON e.name = c.name AND e.key = c.key \
         ORDER BY e.emitted_at",
    )
    .bind(names)
    .bind(keys)
    .fetch_all(pool)
    .await?)
}

/// Makes failed, cancelled or diverged jobs `ids` available again now, with one more attempt
/// allowed if they had used all theirs. Jobs of workflow steps are left alone (a run is retried
/// as a whole). Returns the ids retried.
pub(crate) async fn retry_jobs(pool: &PgPool, ids: &[i64]) -> Result<Vec<i64>, Error> {
    Ok(sqlx::query_scalar::<_, i64>(concat!(
        r#"
        WITH retried AS (
            UPDATE runledger.jobs j
            SET state = 'available', run_at = now(), finished_at = NULL, output = NULL,
                cancel_requested = false, waiting_for = NULL,
                -- The finished attempt, kept in the row until now, goes to the history.
                history = CASE WHEN j.attempt = 0
                                 OR (j.history -> -1 ->> 'attempt')::int = j.attempt
                               THEN j.history
                               ELSE runledger.pushed(j.history, jsonb_build_object(
                                   'attempt', j.attempt, 'worker', j.attempted_by,
                                   'started_at', j.attempted_at, 'finished_at', j.finished_at,
                                   'outcome', j.state,
                                   'error_kind', CASE WHEN (j.errors -> -1 ->> 'attempt')::int
                                                          = j.attempt
                                                      THEN j.errors -> -1 ->> 'kind' END)) END,
                max_attempts = GREATEST(j.max_attempts, j.attempt + 1)
            WHERE j.id = ANY($1) AND j.state IN ('failed', 'cancelled', 'diverged')
              AND j.run_id IS NULL
            RETURNING j.id, j.queue
        ),
        notified AS (
            SELECT "#,
        notify_queue!("q.queue"),
        r#"
            FROM (SELECT DISTINCT queue FROM retried) q
        )
        SELECT r.id FROM retried r CROSS JOIN (SELECT count(*) FROM notified) n ORDER BY r.id
        "#
    ))
    .bind(ids)
    .fetch_all(pool)
    .await?)
}

/// Deletes jobs `ids` with their journals, except running jobs and unfinished jobs of a
/// workflow step or of a durable parent (their run or parent waits for them: cancel them
/// instead). Returns the ids deleted.
pub(crate) async fn delete_jobs(pool: &PgPool, ids: &[i64]) -> Result<Vec<i64>, Error> {
    Ok(sqlx::query_scalar::<_, i64>(
        "DELETE FROM runledger.jobs j \
         WHERE j.id = ANY($1) AND j.state <> 'running' \
           AND ((j.run_id IS NULL AND j.parent_id IS NULL) \
                OR j.state IN ('completed', 'failed', 'cancelled', 'diverged')) \
         RETURNING j.id",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?)
}

/// The filter of a run list.
#[derive(Debug, Default, Clone)]
pub(crate) struct RunQuery {
    pub(crate) states: Vec<String>,
    pub(crate) names: Vec<String>,
    pub(crate) before_id: Option<i64>,
}

/// A run in a list.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct RunSummaryRow {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) state: String,
    pub(crate) steps_active: i32,
    pub(crate) gates_waiting: i32,
    pub(crate) steps_failed: i32,
    pub(crate) error: Option<String>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) finished_at: Option<DateTime<Utc>>,
}

/// Runs matching `q`, newest first, at most `limit`.
pub(crate) async fn list_runs(
    pool: &PgPool,
    q: &RunQuery,
    limit: i64,
) -> Result<Vec<RunSummaryRow>, Error> {
    let mut b = QueryBuilder::<Postgres>::new(
        "SELECT r.id, r.name, r.state, r.steps_active, r.gates_waiting, r.steps_failed, \
         left(r.error, 500) AS error, r.created_at, r.finished_at \
         FROM runledger.workflow_runs r WHERE true",
    );
    if !q.states.is_empty() {
        b.push(" AND r.state = ANY(")
            .push_bind(q.states.clone())
            .push(")");
    }
    if !q.names.is_empty() {
        b.push(" AND r.name = ANY(")
            .push_bind(q.names.clone())
            .push(")");
    }
    if let Some(id) = q.before_id {
        b.push(" AND r.id < ").push_bind(id);
    }
    b.push(" ORDER BY r.id DESC LIMIT ").push_bind(limit);
    Ok(b.build_query_as::<RunSummaryRow>().fetch_all(pool).await?)
}

/// One edge of a run's DAG.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct EdgeRow {
    pub(crate) from_step: String,
    pub(crate) to_step: String,
    pub(crate) on_any: bool,
}

/// The edges of run `id`.
pub(crate) async fn run_edges(pool: &PgPool, id: i64) -> Result<Vec<EdgeRow>, Error> {
    Ok(sqlx::query_as::<_, EdgeRow>(
        "SELECT from_step, to_step, on_any FROM runledger.workflow_edges \
         WHERE run_id = $1 ORDER BY from_step, to_step",
    )
    .bind(id)
    .fetch_all(pool)
    .await?)
}

/// What the run detail adds to each step: when its job started and the earlier jobs of a step
/// run again.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct StepExtraRow {
    pub(crate) key: String,
    pub(crate) attempted_at: Option<DateTime<Utc>>,
    pub(crate) history: serde_json::Value,
}

/// Start times and step histories of run `id`'s steps.
pub(crate) async fn step_extras(pool: &PgPool, id: i64) -> Result<Vec<StepExtraRow>, Error> {
    Ok(sqlx::query_as::<_, StepExtraRow>(
        "SELECT s.key, j.attempted_at, s.history FROM runledger.workflow_steps s \
         LEFT JOIN runledger.jobs j ON j.id = s.job_id WHERE s.run_id = $1",
    )
    .bind(id)
    .fetch_all(pool)
    .await?)
}

/// Retries failed run `id` from its failed steps (see `runledger.retry_run`, migration 0013).
/// Returns the number of step jobs enqueued, or `None` when the run is not failed or cancelled.
pub(crate) async fn retry_run(pool: &PgPool, id: i64) -> Result<Option<i32>, Error> {
    Ok(
        sqlx::query_scalar::<_, Option<i32>>("SELECT runledger.retry_run($1)")
            .bind(id)
            .fetch_one(pool)
            .await?,
    )
}

/// Fires schedule `name` now, outside its cron slots: one job from its template. Returns the
/// job's id, or `None` when there is no such schedule.
pub(crate) async fn trigger_schedule(pool: &PgPool, name: &str) -> Result<Option<i64>, Error> {
    Ok(sqlx::query_scalar::<_, i64>(concat!(
        r#"
        WITH s AS (
            SELECT name, kind, queue, args, priority, max_attempts, timeout_ms,
                   nextval('runledger.jobs_id_seq') AS job_id
            FROM runledger.schedules WHERE name = $1
        ),
        enqueued AS (
            "#,
        insert_jobs!(),
        r#"(
                SELECT s.job_id AS id, s.kind, s.queue, s.priority, s.args, s.max_attempts,
                       now() AS run_at, s.timeout_ms, NULL::text AS unique_key,
                       NULL::int2 AS unique_states, NULL::int8 AS run_id, NULL::text AS step
                FROM s
            ) j
            RETURNING id, queue
        ),
        notified AS (
            SELECT "#,
        notify_queue!("q.queue"),
        r#"
            FROM (SELECT DISTINCT queue FROM enqueued) q
        )
        SELECT e.id FROM enqueued e CROSS JOIN (SELECT count(*) FROM notified) n
        "#
    ))
    .bind(name)
    .fetch_optional(pool)
    .await?)
}

/// Jobs of one queue in one state.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct QueueCountRow {
    pub(crate) queue: String,
    pub(crate) state: String,
    pub(crate) jobs: i64,
}

/// Jobs per queue and unfinished state, and jobs per queue and finished state that finished in
/// the last `window_s` seconds. Each part reads a partial index (running jobs: the lease index)
/// or the index of finished jobs by state and time.
pub(crate) async fn queue_counts(
    pool: &PgPool,
    window_s: f64,
) -> Result<Vec<QueueCountRow>, Error> {
    Ok(sqlx::query_as::<_, QueueCountRow>(
        r#"
        SELECT queue, state, count(*) AS jobs FROM runledger.jobs
        WHERE state = 'available' GROUP BY queue, state
        UNION ALL
        SELECT queue, state, count(*) FROM runledger.jobs
        WHERE state IN ('scheduled', 'retryable', 'waiting') GROUP BY queue, state
        UNION ALL
        SELECT queue, state, count(*) FROM runledger.jobs
        WHERE lease_expires_at IS NOT NULL AND state = 'running' GROUP BY queue, state
        UNION ALL
        SELECT queue, state, count(*) FROM runledger.jobs
        WHERE state IN ('completed', 'failed', 'cancelled', 'diverged')
          AND finished_at > now() - make_interval(secs => $1)
        GROUP BY queue, state
        "#,
    )
    .bind(window_s)
    .fetch_all(pool)
    .await?)
}

/// The oldest available job of each queue: how long it has been due.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct OldestRow {
    pub(crate) queue: String,
    pub(crate) oldest_s: f64,
}

/// For each queue with available jobs, the seconds since its oldest available job was due.
pub(crate) async fn oldest_available(pool: &PgPool) -> Result<Vec<OldestRow>, Error> {
    Ok(sqlx::query_as::<_, OldestRow>(
        "SELECT queue, GREATEST(EXTRACT(EPOCH FROM now() - min(run_at)), 0)::float8 AS oldest_s \
         FROM runledger.jobs WHERE state = 'available' GROUP BY queue ORDER BY queue",
    )
    .fetch_all(pool)
    .await?)
}

/// Jobs finished per minute over the last `minutes` minutes, by state (for throughput).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct ThroughputRow {
    pub(crate) minute: DateTime<Utc>,
    pub(crate) state: String,
    pub(crate) jobs: i64,
}

/// Jobs finished per minute and state over the last `minutes` minutes (finish-time index).
pub(crate) async fn throughput(pool: &PgPool, minutes: i32) -> Result<Vec<ThroughputRow>, Error> {
    Ok(sqlx::query_as::<_, ThroughputRow>(
        "SELECT date_trunc('minute', finished_at) AS minute, state, count(*) AS jobs \
         FROM runledger.jobs \
         WHERE state IN ('completed', 'failed', 'cancelled', 'diverged') \
           AND finished_at > now() - make_interval(mins => $1) \
         GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .bind(minutes)
    .fetch_all(pool)
    .await?)
}

/// A registered worker.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct WorkerRow {
    pub(crate) holder: String,
    pub(crate) worker: String,
    pub(crate) queues: Vec<String>,
    pub(crate) kinds: Vec<String>,
    pub(crate) host: Option<String>,
    pub(crate) pid: Option<i32>,
    pub(crate) version: Option<String>,
    pub(crate) concurrency: Option<i32>,
    pub(crate) started_at: DateTime<Utc>,
    pub(crate) seen_at: DateTime<Utc>,
    /// Jobs this worker instance holds leases on now.
    pub(crate) running: i64,
    /// Seconds since it last refreshed its record.
    pub(crate) silent_s: f64,
    pub(crate) leader: bool,
}

/// The workers that registered and have not been forgotten, with what each runs now.
pub(crate) async fn workers(pool: &PgPool) -> Result<Vec<WorkerRow>, Error> {
    Ok(sqlx::query_as::<_, WorkerRow>(
        r#"
        SELECT w.holder, w.worker, w.queues, w.kinds, w.host, w.pid, w.version, w.concurrency,
               w.started_at, w.seen_at,
               (SELECT count(*) FROM runledger.jobs j
                WHERE j.lease_expires_at IS NOT NULL AND j.state = 'running'
                  AND j.attempted_by = w.worker) AS running,
               EXTRACT(EPOCH FROM now() - w.seen_at)::float8 AS silent_s,
               EXISTS (SELECT 1 FROM runledger.leaders l
                       WHERE l.role = 'maintenance' AND l.holder = w.holder
                         AND l.expires_at > now()) AS leader
        FROM runledger.workers w ORDER BY w.started_at, w.holder
        "#,
    )
    .fetch_all(pool)
    .await?)
}

/// Kinds that live workers serve and whether any of them marks the kind sensitive.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct KindRow {
    pub(crate) kind: String,
    pub(crate) sensitive: bool,
}

/// Records the kinds a worker has handlers for, and which of them are sensitive. Rows are never
/// removed: a kind once known sensitive stays hidden from the operators' tools.
pub(crate) async fn record_kinds(
    pool: &PgPool,
    kinds: &[&str],
    sensitive: &[bool],
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO runledger.kinds (kind, sensitive) \
         SELECT * FROM unnest($1::text[], $2::bool[]) \
         ON CONFLICT (kind) DO UPDATE \
         SET sensitive = runledger.kinds.sensitive OR EXCLUDED.sensitive, seen_at = now() \
         WHERE (EXCLUDED.sensitive AND NOT runledger.kinds.sensitive) \
            OR runledger.kinds.seen_at < now() - interval '1 hour'",
    )
    .bind(kinds)
    .bind(sensitive)
    .execute(pool)
    .await?;
    Ok(())
}

/// Every kind a worker has recorded.
pub(crate) async fn kinds(pool: &PgPool) -> Result<Vec<KindRow>, Error> {
    Ok(
        sqlx::query_as::<_, KindRow>("SELECT kind, sensitive FROM runledger.kinds ORDER BY kind")
            .fetch_all(pool)
            .await?,
    )
}

/// Kinds of unfinished jobs that no worker has ever recorded a handler for.
pub(crate) async fn unknown_kinds(pool: &PgPool) -> Result<Vec<(String, i64)>, Error> {
    Ok(sqlx::query_as::<_, (String, i64)>(
        "SELECT j.kind, count(*) FROM runledger.jobs j \
         WHERE j.state IN ('available', 'scheduled', 'retryable') \
           AND NOT EXISTS (SELECT 1 FROM runledger.kinds k WHERE k.kind = j.kind) \
         GROUP BY j.kind ORDER BY j.kind",
    )
    .fetch_all(pool)
    .await?)
}

/// Running jobs whose lease ran out `grace_s` seconds ago or more (the rescuer has not come).
pub(crate) async fn expired_leases(pool: &PgPool, grace_s: f64) -> Result<Vec<i64>, Error> {
    Ok(sqlx::query_scalar::<_, i64>(
        "SELECT id FROM runledger.jobs WHERE lease_expires_at IS NOT NULL AND state = 'running' \
           AND lease_expires_at < now() - make_interval(secs => $1) \
         ORDER BY lease_expires_at LIMIT 100",
    )
    .bind(grace_s)
    .fetch_all(pool)
    .await?)
}

/// Scheduled or retryable jobs due `grace_s` seconds ago or more (the stager has not come).
pub(crate) async fn overdue(pool: &PgPool, grace_s: f64) -> Result<Vec<i64>, Error> {
    Ok(sqlx::query_scalar::<_, i64>(
        "SELECT id FROM runledger.jobs WHERE state IN ('scheduled', 'retryable', 'waiting') \
           AND run_at < now() - make_interval(secs => $1) \
         ORDER BY run_at LIMIT 100",
    )
    .bind(grace_s)
    .fetch_all(pool)
    .await?)
}

/// The latest migration applied, and whether every applied one succeeded.
pub(crate) async fn schema_version(pool: &PgPool) -> Result<Option<(i64, bool)>, Error> {
    Ok(sqlx::query_as::<_, (i64, bool)>(
        "SELECT max(version), bool_and(success) FROM runledger.schema_migrations HAVING count(*) > 0",
    )
    .fetch_optional(pool)
    .await?)
}

/// A server setting that matters to a queue's health.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct SettingRow {
    pub(crate) name: String,
    pub(crate) setting: String,
}

/// The settings `doctor` looks at.
pub(crate) async fn settings(pool: &PgPool) -> Result<Vec<SettingRow>, Error> {
    Ok(sqlx::query_as::<_, SettingRow>(
        "SELECT name, setting FROM pg_settings WHERE name = ANY(ARRAY[ \
           'server_version', 'autovacuum', 'max_connections', 'idle_in_transaction_session_timeout', \
           'statement_timeout', 'default_transaction_isolation', 'synchronous_commit', \
           'track_counts']) ORDER BY name",
    )
    .fetch_all(pool)
    .await?)
}

/// The oldest transaction open in the database, in seconds (it holds back vacuum).
pub(crate) async fn oldest_transaction_s(pool: &PgPool) -> Result<Option<f64>, Error> {
    Ok(sqlx::query_scalar::<_, Option<f64>>(
        "SELECT EXTRACT(EPOCH FROM now() - min(xact_start))::float8 FROM pg_stat_activity \
         WHERE datname = current_database() AND xact_start IS NOT NULL AND pid <> pg_backend_pid()",
    )
    .fetch_one(pool)
    .await?)
}
