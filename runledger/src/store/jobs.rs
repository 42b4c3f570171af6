//! Statements on `runledger.jobs`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor, PgPool};

use super::notify::Wake;
use crate::error::Error;

/// A row to insert.
#[derive(Debug, Clone)]
pub(crate) struct NewJob {
    pub(crate) kind: String,
    pub(crate) queue: String,
    /// The payload as JSON text.
    pub(crate) args: String,
    pub(crate) priority: i16,
    pub(crate) max_attempts: i32,
    /// Absolute due time.
    pub(crate) run_at: Option<DateTime<Utc>>,
    /// Due this many seconds after the insert, by the database clock.
    pub(crate) delay_s: Option<f64>,
    pub(crate) timeout_ms: Option<i64>,
    pub(crate) unique_key: Option<String>,
    pub(crate) unique_states: Option<i16>,
    /// For period-scoped unique keys: the window length; the window index is appended to the key.
    pub(crate) unique_period_s: Option<i64>,
}

/// The result of inserting one row: its id, and whether it is new or an existing job that holds
/// the same unique key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Inserted {
    pub(crate) id: i64,
    pub(crate) inserted: bool,
}

#[derive(sqlx::FromRow)]
struct InsertRow {
    id: i64,
    inserted: bool,
    existing_id: Option<i64>,
}

impl NewJob {
    /// The notifications that announce this row: `a:<queue>` wakes the queue's producers, `s`
    /// wakes the stagers for a row due later. A row with an explicit time gets both, since
    /// whether it is due is decided by the database clock.
    pub(crate) fn wake_payloads(&self) -> impl Iterator<Item = String> + '_ {
        let scheduled = self.run_at.is_some() || self.delay_s.is_some();
        std::iter::once(Wake::Queue(self.queue.clone()).payload())
            .chain(scheduled.then(|| Wake::Stager.payload()))
    }
}

/// Inserts `jobs` in one statement (UNNEST). If any row is inserted, the statement also sends
/// each payload in `notify` on the jobs channel (delivered when the transaction commits).
/// Rows whose unique key is already held come back as `inserted: false` with the holder's id.
pub(crate) async fn insert(
    conn: &mut PgConnection,
    jobs: &[NewJob],
    notify: &[String],
) -> Result<Vec<Inserted>, Error> {
    // One job without a unique key: a plain single-row insert, a fraction of the batch
    // statement's server time. The row and its checks are the same (the same fragment, the same
    // `NewJob`); only the way the values travel differs.
    if let [job] = jobs
        && job.unique_key.is_none()
    {
        let id = insert_one(conn, job, notify).await?;
        return Ok(vec![Inserted { id, inserted: true }]);
    }
    let mut result: Vec<Option<Inserted>> = vec![None; jobs.len()];
    let mut pending: Vec<usize> = (0..jobs.len()).collect();
    // A conflicting row can be committed by another transaction after this statement's snapshot
    // was taken: the insert skips it but cannot see it. Looking again in a new statement finds it.
    for _round in 0..5 {
        if pending.is_empty() {
            break;
        }
        let batch: Vec<&NewJob> = pending.iter().map(|&i| &jobs[i]).collect();
        let rows = insert_once(&mut *conn, &batch, notify).await?;
        let mut still = Vec::new();
        for (row, &index) in rows.iter().zip(&pending) {
            if row.inserted {
                result[index] = Some(Inserted {
                    id: row.id,
                    inserted: true,
                });
            } else if let Some(existing) = row.existing_id {
                result[index] = Some(Inserted {
                    id: existing,
                    inserted: false,
                });
            } else {
                still.push(index);
            }
        }
        pending = still;
    }
    if !pending.is_empty() {
        return Err(Error::Conflict(
            "a unique key kept changing hands while enqueueing; try again".into(),
        ));
    }
    Ok(result
        .into_iter()
        .map(|r| r.expect("every row resolved"))
        .collect())
}

/// The input rows (ids drawn from the sequence, due time by the database clock) and the start
/// of the insert; the two insert statements differ only in conflict handling and result.
macro_rules! insert_head {
    () => {
        concat!(
            r#"
        WITH input AS MATERIALIZED (
            SELECT nextval('runledger.jobs_id_seq') AS id, u.ord, u.kind, u.queue,
                   u.args::jsonb AS args, u.priority, u.max_attempts,
                   COALESCE(u.run_at, now() + make_interval(secs => COALESCE(u.delay_s, 0)))
                       AS run_at,
                   u.timeout_ms,
                   CASE WHEN u.period_s IS NULL THEN u.unique_key
                        ELSE u.unique_key || '#' || u.period_s || 's:'
                             || floor(EXTRACT(EPOCH FROM now()) / u.period_s)::bigint
                   END AS unique_key,
                   u.unique_states, NULL::int8 AS run_id, NULL::text AS step
            FROM unnest($1::text[], $2::text[], $3::text[], $4::int2[], $5::int4[],
                        $6::timestamptz[], $7::int8[], $8::text[], $9::int2[], $10::float8[],
                        $11::int8[])
                 WITH ORDINALITY AS u(kind, queue, args, priority, max_attempts, run_at,
                                      timeout_ms, unique_key, unique_states, delay_s,
                                      period_s, ord)
        ),
        ins AS (
            "#,
            insert_jobs!(),
            r#"input j ORDER BY j.ord
"#
        )
    };
}

/// The end of the insert, the notifications, and the start of the result.
macro_rules! insert_mid {
    () => {
        r#"            RETURNING id, queue, state
        ),
        notified AS (
            SELECT pg_notify('runledger_jobs', p) FROM unnest($12::text[]) AS p
            WHERE EXISTS (SELECT 1 FROM ins)
        )
"#
    };
}

/// Inserts rows that may carry unique keys; a held key yields the holder's id.
const INSERT_UNIQUE: &str = concat!(
    insert_head!(),
    r#"            ON CONFLICT (unique_key)
                WHERE unique_key IS NOT NULL AND (unique_states & runledger.state_bit(state)) <> 0
                DO NOTHING
"#,
    insert_mid!(),
    r#"        SELECT input.id, (ins.id IS NOT NULL) AS inserted, existing.id AS existing_id
        FROM input
        LEFT JOIN ins ON ins.id = input.id
        LEFT JOIN LATERAL (
            SELECT j.id FROM runledger.jobs j
            WHERE ins.id IS NULL AND input.unique_key IS NOT NULL
              AND j.unique_key = input.unique_key
              AND (j.unique_states & runledger.state_bit(j.state)) <> 0
            LIMIT 1
        ) existing ON true
        CROSS JOIN (SELECT count(*) FROM notified) n
        ORDER BY input.ord
        "#
);

/// Inserts rows without unique keys: a plain insert, since `ON CONFLICT` costs a speculative
/// insertion per row.
const INSERT_PLAIN: &str = concat!(
    insert_head!(),
    insert_mid!(),
    r#"        SELECT input.id, true AS inserted, NULL::int8 AS existing_id
        FROM input CROSS JOIN (SELECT count(*) FROM notified) n
        ORDER BY input.ord
        "#
);

/// Inserts one job without a unique key, notifying `notify` in the same statement.
async fn insert_one(
    conn: &mut PgConnection,
    job: &NewJob,
    notify: &[String],
) -> Result<i64, Error> {
    Ok(sqlx::query_scalar(concat!(
        "WITH ins AS (",
        insert_jobs!(),
        r#"(
                SELECT nextval('runledger.jobs_id_seq') AS id, $1::text AS kind,
                       $2::text AS queue, $3::jsonb AS args, $4::int2 AS priority,
                       $5::int4 AS max_attempts,
                       COALESCE($6::timestamptz,
                                now() + make_interval(secs => COALESCE($7::float8, 0)))
                           AS run_at,
                       $8::int8 AS timeout_ms, NULL::text AS unique_key,
                       NULL::int2 AS unique_states, NULL::int8 AS run_id, NULL::text AS step
            ) j
            RETURNING id
        ),
        notified AS (
            SELECT pg_notify('runledger_jobs', p) FROM unnest($9::text[]) AS p
        )
        SELECT id FROM ins CROSS JOIN (SELECT count(*) FROM notified) n
        "#
    ))
    .bind(&job.kind)
    .bind(&job.queue)
    .bind(&job.args)
    .bind(job.priority)
    .bind(job.max_attempts)
    .bind(job.run_at)
    .bind(job.delay_s)
    .bind(job.timeout_ms)
    .bind(notify)
    .fetch_one(&mut *conn)
    .await?)
}

async fn insert_once(
    conn: &mut PgConnection,
    jobs: &[&NewJob],
    notify: &[String],
) -> Result<Vec<InsertRow>, Error> {
    let n = jobs.len();
    let mut kinds = Vec::with_capacity(n);
    let mut queues = Vec::with_capacity(n);
    let mut args = Vec::with_capacity(n);
    let mut priorities = Vec::with_capacity(n);
    let mut max_attempts = Vec::with_capacity(n);
    let mut run_ats = Vec::with_capacity(n);
    let mut timeouts = Vec::with_capacity(n);
    let mut unique_keys = Vec::with_capacity(n);
    let mut unique_states = Vec::with_capacity(n);
    let mut delays = Vec::with_capacity(n);
    let mut periods = Vec::with_capacity(n);
    for job in jobs {
        delays.push(job.delay_s);
        periods.push(job.unique_period_s);
        kinds.push(job.kind.as_str());
        queues.push(job.queue.as_str());
        args.push(job.args.as_str());
        priorities.push(job.priority);
        max_attempts.push(job.max_attempts);
        run_ats.push(job.run_at);
        timeouts.push(job.timeout_ms);
        unique_keys.push(job.unique_key.as_deref());
        unique_states.push(job.unique_states);
    }
    let sql = if jobs.iter().any(|j| j.unique_key.is_some()) {
        INSERT_UNIQUE
    } else {
        INSERT_PLAIN
    };
    let rows = sqlx::query_as::<_, InsertRow>(sql)
        .bind(&kinds)
        .bind(&queues)
        .bind(&args)
        .bind(&priorities)
        .bind(&max_attempts)
        .bind(&run_ats)
        .bind(&timeouts)
        .bind(&unique_keys)
        .bind(&unique_states)
        .bind(&delays)
        .bind(&periods)
        .bind(notify)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows)
}

/// Sends each payload on the jobs channel, outside any transaction.
pub(crate) async fn notify(pool: &PgPool, payloads: &[String]) -> Result<(), Error> {
    sqlx::query("SELECT pg_notify('runledger_jobs', p) FROM unnest($1::text[]) AS p")
        .bind(payloads)
        .execute(pool)
        .await?;
    Ok(())
}

/// A job claimed by a worker.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct Claimed {
    pub(crate) id: i64,
    pub(crate) kind: String,
    pub(crate) queue: String,
    /// The payload as JSON text.
    pub(crate) args: String,
    pub(crate) attempt: i32,
    pub(crate) max_attempts: i32,
    pub(crate) timeout_ms: Option<i64>,
    /// The workflow run, for a step's job.
    pub(crate) run_id: Option<i64>,
    pub(crate) priority: i16,
    /// The `traceparent` of the span that enqueued it (feature `otel`, read after the claim).
    #[sqlx(default)]
    #[cfg_attr(not(feature = "otel"), allow(dead_code))]
    pub(crate) trace_context: Option<String>,
}

/// Claims up to `limit` available jobs of `kinds` from `queue`, highest priority first, for
/// `worker`, with a lease of `lease`. Rows locked by another claimer are skipped, never waited on.
/// One queue per statement, so that the partial fetch index is read in order and the `LIMIT`
/// stops the scan early.
pub(crate) async fn claim<'e>(
    db: impl PgExecutor<'e>,
    queue: &str,
    kinds: &[&str],
    limit: i64,
    worker: &str,
    lease: Duration,
) -> Result<Vec<Claimed>, Error> {
    // The statement is `runledger.claim_jobs` (migration 0004), which pins the ordered
    // index scan whatever the table's statistics say.
    let rows = sqlx::query_as::<_, Claimed>(
        "SELECT id, kind, queue, args, attempt, max_attempts, timeout_ms, run_id, priority \
         FROM runledger.claim_jobs($1, $2, $3, $4, $5)",
    )
    .bind(queue)
    .bind(kinds)
    .bind(limit)
    .bind(worker)
    .bind(lease.as_secs_f64())
    .fetch_all(db)
    .await?;
    Ok(rows)
}

/// Sets (or, with `""`, clears) the trace context that jobs inserted on `conn` record: for the
/// rest of the transaction with `local`, else for the session.
#[cfg(feature = "otel")]
pub(crate) async fn set_trace_context(
    conn: &mut PgConnection,
    traceparent: &str,
    local: bool,
) -> Result<(), Error> {
    sqlx::query("SELECT set_config('runledger.trace_context', $1, $2)")
        .bind(traceparent)
        .bind(local)
        .execute(conn)
        .await?;
    Ok(())
}

/// Fills in the trace contexts of claimed `jobs` that have one (one statement).
#[cfg(feature = "otel")]
pub(crate) async fn read_trace_contexts(pool: &PgPool, jobs: &mut [Claimed]) -> Result<(), Error> {
    if jobs.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
    let found: Vec<(i64, String)> = sqlx::query_as(
        "SELECT id, trace_context FROM runledger.jobs \
         WHERE id = ANY($1) AND trace_context IS NOT NULL",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    for (id, context) in found {
        if let Some(job) = jobs.iter_mut().find(|j| j.id == id) {
            job.trace_context = Some(context);
        }
    }
    Ok(())
}

/// The queues among `queues` that have available jobs of `kinds` (one index probe each).
pub(crate) async fn queues_with_work(
    pool: &PgPool,
    queues: &[&str],
    kinds: &[&str],
) -> Result<Vec<String>, Error> {
    Ok(sqlx::query_scalar(
        r#"
        SELECT q FROM unnest($1::text[]) AS q
        WHERE EXISTS (
            SELECT 1 FROM runledger.jobs j
            WHERE j.state = 'available' AND j.queue = q AND j.kind = ANY($2)
        )
        "#,
    )
    .bind(queues)
    .bind(kinds)
    .fetch_all(pool)
    .await?)
}

/// How an attempt ended, as written by the completer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutcomeKind {
    Completed,
    /// Failed; retried after the delay while attempts remain, else failed for good.
    Retry,
    /// Failed for good.
    Failed,
    Cancelled,
    /// Run again after the delay without spending an attempt.
    Snoozed,
    /// Handed back by a worker that is shutting down; run again now without spending an attempt.
    Released,
    /// A durable job waits (for time, an event, a child) without spending an attempt.
    Suspended,
    /// A durable job's code no longer matches its journal: finished for good.
    Diverged,
}

impl OutcomeKind {
    fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Completed => "completed",
            OutcomeKind::Retry => "retry",
            OutcomeKind::Failed => "failed",
            OutcomeKind::Cancelled => "cancelled",
            OutcomeKind::Snoozed => "snoozed",
            OutcomeKind::Released => "released",
            OutcomeKind::Suspended => "suspended",
            OutcomeKind::Diverged => "diverged",
        }
    }
}

/// One attempt's result, fenced by (id, attempt).
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub(crate) id: i64,
    pub(crate) attempt: i32,
    pub(crate) kind: OutcomeKind,
    /// Output JSON text, for `Completed`.
    pub(crate) output: Option<String>,
    /// Delay before the next run, for `Retry` and `Snoozed`.
    pub(crate) delay: Option<Duration>,
    pub(crate) error: Option<String>,
    /// What kind of error `error` is (`error`, `fatal`, `panic`, `timeout`, ...), recorded in
    /// the job's history.
    pub(crate) error_kind: Option<&'static str>,
    /// The workflow run of a step's job: its row is locked before the write (see
    /// [`complete_batch`]).
    pub(crate) run_id: Option<i64>,
    /// For `Suspended`: what wakes the job (a JSON array of conditions) and when time does.
    pub(crate) wait: Option<Wait>,
}

/// What a suspended job waits for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Wait {
    /// Each condition as JSON text (`{"event": .., "key": ..}`, `{"child": id}`, ...).
    pub(crate) conditions: Vec<String>,
    /// The time that wakes the job regardless.
    pub(crate) until: Option<DateTime<Utc>>,
}

/// What a fenced write changed.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct Written {
    pub(crate) id: i64,
    pub(crate) state: String,
    pub(crate) queue: String,
    /// Milliseconds until the job is due again, for retries, snoozes and timed waits.
    pub(crate) due_in_ms: Option<f64>,
}

impl Written {
    /// Finished: completed, failed, cancelled or diverged.
    pub(crate) fn is_finished(&self) -> bool {
        matches!(
            self.state.as_str(),
            "completed" | "failed" | "cancelled" | "diverged"
        )
    }
}

/// Writes many attempts' outcomes in one statement. A row is changed only if it is still
/// `running` under the same attempt: a worker that lost its lease changes nothing. Returns the
/// rows actually changed.
pub(crate) async fn complete<'e>(
    db: impl PgExecutor<'e>,
    outcomes: &[Outcome],
) -> Result<Vec<Written>, Error> {
    let n = outcomes.len();
    let mut ids = Vec::with_capacity(n);
    let mut attempts = Vec::with_capacity(n);
    let mut kinds = Vec::with_capacity(n);
    let mut outputs = Vec::with_capacity(n);
    let mut delays = Vec::with_capacity(n);
    let mut errors = Vec::with_capacity(n);
    let mut error_kinds = Vec::with_capacity(n);
    let mut waits = Vec::with_capacity(n);
    let mut untils = Vec::with_capacity(n);
    for o in outcomes {
        ids.push(o.id);
        attempts.push(o.attempt);
        kinds.push(o.kind.as_str());
        outputs.push(o.output.as_deref());
        delays.push(o.delay.map(|d| d.as_secs_f64()));
        errors.push(o.error.as_deref());
        error_kinds.push(o.error_kind);
        waits.push(
            o.wait
                .as_ref()
                .map(|w| format!("[{}]", w.conditions.join(","))),
        );
        untils.push(o.wait.as_ref().and_then(|w| w.until));
    }
    // The statement is `runledger.complete_jobs` (migrations 0010, 0012, 0013), which plans it
    // without regard to the table's statistics or the batch's size.
    Ok(sqlx::query_as::<_, Written>(
        "SELECT id, state, queue, due_in_ms \
         FROM runledger.complete_jobs($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&ids)
    .bind(&attempts)
    .bind(&kinds)
    .bind(&outputs)
    .bind(&delays)
    .bind(&errors)
    .bind(&waits)
    .bind(&untils)
    .bind(&error_kinds)
    .fetch_all(db)
    .await?)
}

/// Writes `outcomes` like [`complete`]. When some belong to workflow runs, their run rows are
/// locked first, in id order, in the same transaction, so two workers' batches that touch the
/// same runs cannot deadlock (lock order everywhere: run rows, then job rows, then step rows);
/// the steps whose jobs finished are then settled together, in that transaction.
///
/// What durable jobs need on top (locks of the conditions suspensions wait for, parents of
/// finished children woken, descendants of failed jobs cancelled) happens inside the write's
/// own function (migration 0012).
pub(crate) async fn complete_batch(
    pool: &PgPool,
    outcomes: &[Outcome],
) -> Result<Vec<Written>, Error> {
    let mut runs: Vec<i64> = outcomes.iter().filter_map(|o| o.run_id).collect();
    if runs.is_empty() {
        return complete(pool, outcomes).await;
    }
    runs.sort_unstable();
    runs.dedup();
    let mut tx = pool.begin().await?;
    if !runs.is_empty() {
        super::workflows::lock_runs_to_settle(&mut tx, &runs).await?;
    }
    let written = complete(&mut *tx, outcomes).await?;
    let mut step_jobs: Vec<i64> = outcomes
        .iter()
        .filter(|o| o.run_id.is_some())
        .map(|o| o.id)
        .collect();
    step_jobs.sort_unstable();
    let steps: Vec<i64> = written
        .iter()
        .filter(|w| w.is_finished())
        .filter(|w| step_jobs.binary_search(&w.id).is_ok())
        .map(|w| w.id)
        .collect();
    if !steps.is_empty() {
        super::workflows::settle_jobs(&mut tx, &steps).await?;
    }
    tx.commit().await?;
    Ok(written)
}

/// A running job whose lease was renewed.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct Renewed {
    pub(crate) id: i64,
    pub(crate) attempt: i32,
    pub(crate) cancel_requested: bool,
}

/// Renews the leases of the given attempts; attempts missing from the result lost their lease.
pub(crate) async fn heartbeat(
    pool: &PgPool,
    ids: &[i64],
    attempts: &[i32],
    lease: Duration,
) -> Result<Vec<Renewed>, Error> {
    // The statement is `runledger.renew_leases` (migration 0011): rows looked up by key, in
    // the order of `ids`, whatever the statistics say.
    let rows = sqlx::query_as::<_, Renewed>(
        "SELECT id, attempt, cancel_requested FROM runledger.renew_leases($1, $2, $3)",
    )
    .bind(ids)
    .bind(attempts)
    .bind(lease.as_secs_f64())
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// Returns running jobs whose lease expired to the queue (or fails them when no attempt is left,
/// or cancels them when a cancel was requested). At most `limit` rows per call.
pub(crate) async fn rescue(pool: &PgPool, limit: i64) -> Result<Vec<Written>, Error> {
    // Almost always nothing has expired: one read of the lease index says so, without the
    // transaction below.
    let any_expired: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM runledger.jobs \
                        WHERE state = 'running' AND lease_expires_at < now())",
    )
    .fetch_one(pool)
    .await?;
    if !any_expired {
        return Ok(Vec::new());
    }
    // The runs of expired step jobs are locked first, in id order (see `complete_batch`).
    let mut tx = pool.begin().await?;
    sqlx::query(
        "SELECT r.id FROM runledger.workflow_runs r \
         WHERE r.id IN (SELECT run_id FROM runledger.jobs \
                        WHERE state = 'running' AND lease_expires_at < now() \
                          AND run_id IS NOT NULL) \
         ORDER BY r.id FOR UPDATE",
    )
    .execute(&mut *tx)
    .await?;
    let rows = sqlx::query_as::<_, Written>(concat!(
        r#"
        WITH expired AS (
            SELECT id FROM runledger.jobs
            WHERE state = 'running' AND lease_expires_at < now()
            ORDER BY lease_expires_at
            LIMIT $1
            FOR UPDATE SKIP LOCKED
        ),
        done AS (
            UPDATE runledger.jobs j
            SET state = CASE WHEN j.cancel_requested THEN 'cancelled'
                             WHEN j.attempt >= j.max_attempts THEN 'failed'
                             ELSE 'available' END,
                finished_at = CASE WHEN j.cancel_requested OR j.attempt >= j.max_attempts
                                   THEN now() END,
                run_at = now(),
                lease_expires_at = NULL,
                errors = runledger.pushed(j.errors, jsonb_build_object(
                    'attempt', j.attempt, 'at', now(),
                    'error', 'lease expired: worker ' || COALESCE(j.attempted_by, '?')
                             || ' stopped renewing it (crashed, hung or cut off)',
                    'kind', 'lease_expired')),
                -- Run again: the attempt goes to the history before the next claim.
                history = CASE WHEN j.cancel_requested OR j.attempt >= j.max_attempts
                               THEN j.history
                               ELSE runledger.pushed(j.history, jsonb_build_object(
                                   'attempt', j.attempt, 'worker', j.attempted_by,
                                   'started_at', j.attempted_at, 'finished_at', now(),
                                   'outcome', 'lease_expired',
                                   'error_kind', 'lease_expired')) END
            FROM expired
            WHERE j.id = expired.id
            RETURNING j.id, j.state, j.queue
        ),
        notified AS (
            SELECT "#,
        notify_queue!("q.queue"),
        r#"
            FROM (SELECT DISTINCT queue FROM done WHERE state = 'available') q
        )
        SELECT done.id, done.state, done.queue, NULL::float8 AS due_in_ms
        FROM done CROSS JOIN (SELECT count(*) FROM notified) n
        "#
    ))
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    // Whatever ended here (failed, cancelled) wakes its parent and takes its descendants along.
    let ended: Vec<i64> = rows
        .iter()
        .filter(|w| w.is_finished())
        .map(|w| w.id)
        .collect();
    if !ended.is_empty() {
        super::durable::settle(&mut *tx, &ended, &ended).await?;
    }
    tx.commit().await?;
    Ok(rows)
}

/// What one stager pass did.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct Staged {
    pub(crate) moved: i64,
    /// Milliseconds until the next scheduled or retryable job is due, if any.
    pub(crate) next_due_ms: Option<f64>,
}

/// Makes up to `limit` due scheduled and retryable jobs available, and reports when the next one
/// is due.
pub(crate) async fn stage(pool: &PgPool, limit: i64) -> Result<Staged, Error> {
    let row = sqlx::query_as::<_, Staged>(concat!(
        r#"
        WITH due AS (
            SELECT id FROM runledger.jobs
            WHERE state IN ('scheduled', 'retryable', 'waiting') AND run_at <= now()
            ORDER BY run_at
            LIMIT $1
            FOR UPDATE SKIP LOCKED
        ),
        moved AS (
            UPDATE runledger.jobs j SET state = 'available', waiting_for = NULL
            FROM due WHERE j.id = due.id
            RETURNING j.queue
        ),
        notified AS (
            SELECT "#,
        notify_queue!("q.queue"),
        r#"
            FROM (SELECT DISTINCT queue FROM moved) q
        )
        SELECT (SELECT count(*) FROM moved) AS moved,
               (SELECT EXTRACT(EPOCH FROM (min(run_at) - now()))::float8 * 1000
                FROM runledger.jobs
                WHERE state IN ('scheduled', 'retryable', 'waiting') AND run_at > now()
                  AND run_at < runledger.never()) AS next_due_ms
        FROM (SELECT count(*) FROM notified) n
        "#
    ))
    .bind(limit)
    .fetch_one(pool)
    .await?;
    Ok(row)
}

/// The state a job was in when a cancel was requested; `None` if no such job exists. The job's
/// unfinished descendants are cancelled with it, and a parent waiting for it wakes.
pub(crate) async fn cancel(conn: &mut PgConnection, id: i64) -> Result<Option<String>, Error> {
    let before: Option<String> = sqlx::query_scalar(concat!(
        r#"
        WITH target AS (
            SELECT id, state FROM runledger.jobs WHERE id = $1 FOR UPDATE
        ),
        upd AS (
            UPDATE runledger.jobs j
            SET state = CASE WHEN t.state = 'running' THEN j.state ELSE 'cancelled' END,
                finished_at = CASE WHEN t.state = 'running' THEN j.finished_at ELSE now() END,
                waiting_for = CASE WHEN t.state = 'running' THEN j.waiting_for END,
                cancel_requested = true
            FROM target t
            WHERE j.id = t.id AND t.state NOT IN ('completed', 'failed', 'cancelled', 'diverged')
            RETURNING j.id
        ),
        notified AS (
            SELECT "#,
        notify_cancel!("t.id"),
        r#" FROM target t
            WHERE t.state = 'running'
        )
        SELECT t.state FROM target t
        CROSS JOIN (SELECT count(*) FROM upd) u
        CROSS JOIN (SELECT count(*) FROM notified) n
        "#
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(state) = &before
        && !matches!(
            state.as_str(),
            "completed" | "failed" | "cancelled" | "diverged"
        )
    {
        let finished: &[i64] = if state == "running" { &[] } else { &[id] };
        super::durable::settle(&mut *conn, finished, &[id]).await?;
    }
    Ok(before)
}

/// A job as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct JobRow {
    pub(crate) id: i64,
    pub(crate) kind: String,
    pub(crate) queue: String,
    pub(crate) state: String,
    pub(crate) priority: i16,
    pub(crate) args: serde_json::Value,
    pub(crate) output: Option<serde_json::Value>,
    pub(crate) errors: serde_json::Value,
    pub(crate) attempt: i32,
    pub(crate) max_attempts: i32,
    pub(crate) run_at: DateTime<Utc>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) attempted_at: Option<DateTime<Utc>>,
    pub(crate) finished_at: Option<DateTime<Utc>>,
    pub(crate) unique_key: Option<String>,
    pub(crate) parent_id: Option<i64>,
    pub(crate) waiting_for: Option<serde_json::Value>,
    pub(crate) progress: Option<serde_json::Value>,
}

macro_rules! job_columns {
    () => {
        "id, kind, queue, state, priority, args, output, errors, attempt, max_attempts, run_at, \
         created_at, attempted_at, finished_at, unique_key, parent_id, waiting_for, progress"
    };
}

/// One job by id.
pub(crate) async fn get<'e>(db: impl PgExecutor<'e>, id: i64) -> Result<Option<JobRow>, Error> {
    const SQL: &str = concat!(
        "SELECT ",
        job_columns!(),
        " FROM runledger.jobs WHERE id = $1"
    );
    Ok(sqlx::query_as::<_, JobRow>(SQL)
        .bind(id)
        .fetch_optional(db)
        .await?)
}

#[cfg_attr(not(feature = "testing"), allow(dead_code))]
/// Jobs of one kind (or all kinds), optionally in one of `states`, oldest first, at most `limit`.
pub(crate) async fn list<'e>(
    db: impl PgExecutor<'e>,
    kind: Option<&str>,
    states: Option<&[&str]>,
    limit: i64,
) -> Result<Vec<JobRow>, Error> {
    const SQL: &str = concat!(
        "SELECT ",
        job_columns!(),
        " FROM runledger.jobs \
         WHERE ($1::text IS NULL OR kind = $1) AND ($2::text[] IS NULL OR state = ANY($2)) \
         ORDER BY id LIMIT $3"
    );
    Ok(sqlx::query_as::<_, JobRow>(SQL)
        .bind(kind)
        .bind(states)
        .bind(limit)
        .fetch_all(db)
        .await?)
}

/// What `wait` needs to know about a job.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct Status {
    pub(crate) state: String,
    pub(crate) output: Option<serde_json::Value>,
    pub(crate) last_error: Option<String>,
    pub(crate) attempt: i32,
}

/// A job's state, output and last recorded error.
pub(crate) async fn status(pool: &PgPool, id: i64) -> Result<Option<Status>, Error> {
    Ok(sqlx::query_as::<_, Status>(
        "SELECT state, output, errors -> -1 ->> 'error' AS last_error, attempt \
         FROM runledger.jobs WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

#[cfg_attr(not(feature = "testing"), allow(dead_code))]
/// Jobs of `kinds` in `queues` that are available, running, or due now.
pub(crate) async fn count_pending(
    pool: &PgPool,
    queues: &[String],
    kinds: &[String],
) -> Result<i64, Error> {
    Ok(sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM runledger.jobs \
         WHERE queue = ANY($1) AND kind = ANY($2) \
           AND (state IN ('available', 'running') \
                OR (state IN ('scheduled', 'retryable') AND run_at <= now()))",
    )
    .bind(queues)
    .bind(kinds)
    .fetch_one(pool)
    .await?)
}
