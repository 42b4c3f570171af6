//! Statements on the workflow tables. Steps are released and runs finished by the database
//! itself (`runledger.workflow_settle`, see migration 0002) in the transaction that finishes a
//! step's job; this module starts runs, reads them, cancels them and completes gates.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

use crate::error::Error;

/// A run to insert, with its whole DAG.
#[derive(Debug)]
pub(crate) struct NewRun<'a> {
    pub(crate) name: &'a str,
    pub(crate) fingerprint: String,
    /// The input as JSON text.
    pub(crate) input: String,
    pub(crate) output_step: Option<&'a str>,
    pub(crate) idempotency_key: Option<&'a str>,
    pub(crate) steps: Vec<NewStep<'a>>,
    pub(crate) edges: Vec<(&'a str, &'a str, bool)>,
    /// (from, to, param, path as a JSON array of strings).
    pub(crate) bindings: Vec<(&'a str, &'a str, &'a str, String)>,
}

/// One step of a run to insert.
#[derive(Debug)]
pub(crate) struct NewStep<'a> {
    pub(crate) key: &'a str,
    pub(crate) kind: Option<&'a str>,
    pub(crate) gate: Option<&'a str>,
    pub(crate) pending_deps: i32,
    /// The arguments known at enqueue, as JSON object text.
    pub(crate) args: String,
    pub(crate) queue: Option<&'a str>,
    pub(crate) priority: Option<i16>,
    pub(crate) max_attempts: Option<i32>,
    pub(crate) timeout_ms: Option<i64>,
}

/// The result of starting a run.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct Started {
    pub(crate) id: i64,
    /// False if a run with the same idempotency key already existed.
    pub(crate) inserted: bool,
    /// For an existing run: whether it was started with the same input.
    pub(crate) same_input: Option<bool>,
    /// For an existing run: the fingerprint it was started under.
    pub(crate) fingerprint: Option<String>,
}

/// Inserts the run row, or finds the run that holds the idempotency key. Must be followed by
/// [`insert_dag`] in the same transaction when a run was inserted.
pub(crate) async fn insert_run(
    conn: &mut PgConnection,
    run: &NewRun<'_>,
) -> Result<Started, Error> {
    let active = run.steps.iter().filter(|s| s.kind.is_some()).count() as i32;
    let gates = run.steps.len() as i32 - active;
    // An existing holder committed after this statement's snapshot is found by the next round.
    for _round in 0..5 {
        let row = sqlx::query_as::<_, Started>(
            r#"
            WITH ins AS (
                INSERT INTO runledger.workflow_runs
                    (name, fingerprint, input, output_step, idempotency_key, steps_active,
                     gates_waiting)
                VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7)
                ON CONFLICT (name, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
                RETURNING id
            )
            SELECT id, true AS inserted, NULL::bool AS same_input, NULL::text AS fingerprint
            FROM ins
            UNION ALL
            SELECT r.id, false, r.input = $3::jsonb, r.fingerprint
            FROM runledger.workflow_runs r
            WHERE NOT EXISTS (SELECT 1 FROM ins) AND r.name = $1 AND r.idempotency_key = $5
            "#,
        )
        .bind(run.name)
        .bind(&run.fingerprint)
        .bind(&run.input)
        .bind(run.output_step)
        .bind(run.idempotency_key)
        .bind(active)
        .bind(gates)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(row) = row {
            return Ok(row);
        }
    }
    Err(Error::Conflict(
        "an idempotency key kept changing hands while starting a workflow; try again".into(),
    ))
}

/// Inserts the steps, edges and bindings of run `run_id`, and the jobs of the steps that wait
/// for nothing, announcing them on the jobs channel at commit.
pub(crate) async fn insert_dag(
    conn: &mut PgConnection,
    run_id: i64,
    run: &NewRun<'_>,
) -> Result<(), Error> {
    let steps = &run.steps;
    let keys: Vec<&str> = steps.iter().map(|s| s.key).collect();
    let kinds: Vec<Option<&str>> = steps.iter().map(|s| s.kind).collect();
    let gates: Vec<Option<&str>> = steps.iter().map(|s| s.gate).collect();
    let pending: Vec<i32> = steps.iter().map(|s| s.pending_deps).collect();
    let args: Vec<&str> = steps.iter().map(|s| s.args.as_str()).collect();
    let queues: Vec<Option<&str>> = steps.iter().map(|s| s.queue).collect();
    let priorities: Vec<Option<i16>> = steps.iter().map(|s| s.priority).collect();
    let attempts: Vec<Option<i32>> = steps.iter().map(|s| s.max_attempts).collect();
    let timeouts: Vec<Option<i64>> = steps.iter().map(|s| s.timeout_ms).collect();
    let edge_from: Vec<&str> = run.edges.iter().map(|e| e.0).collect();
    let edge_to: Vec<&str> = run.edges.iter().map(|e| e.1).collect();
    let edge_any: Vec<bool> = run.edges.iter().map(|e| e.2).collect();
    let bind_from: Vec<&str> = run.bindings.iter().map(|b| b.0).collect();
    let bind_to: Vec<&str> = run.bindings.iter().map(|b| b.1).collect();
    let bind_param: Vec<&str> = run.bindings.iter().map(|b| b.2).collect();
    let bind_path: Vec<&str> = run.bindings.iter().map(|b| b.3.as_str()).collect();
    sqlx::query(
        concat!(r#"
        WITH steps AS MATERIALIZED (
            SELECT s.*,
                   CASE WHEN s.gate IS NOT NULL THEN 'waiting'
                        WHEN s.pending_deps = 0 THEN 'ready' ELSE 'pending' END AS state,
                   CASE WHEN s.gate IS NULL AND s.pending_deps = 0
                        THEN nextval('runledger.jobs_id_seq') END AS job_id
            FROM unnest($2::text[], $3::text[], $4::text[], $5::int4[], $6::text[], $7::text[],
                        $8::int2[], $9::int4[], $10::int8[])
                 WITH ORDINALITY
                 AS s(key, kind, gate, pending_deps, args, queue, priority, max_attempts,
                      timeout_ms, ord)
        ),
        ins_steps AS (
            INSERT INTO runledger.workflow_steps
                (run_id, key, ord, kind, gate, state, pending_deps, args, queue, priority,
                 max_attempts, timeout_ms, job_id)
            SELECT $1, key, ord, kind, gate, state, pending_deps, args::jsonb, queue, priority,
                   max_attempts, timeout_ms, job_id
            FROM steps
        ),
        ins_edges AS (
            INSERT INTO runledger.workflow_edges (run_id, from_step, to_step, on_any)
            SELECT $1, e.f, e.t, e.a FROM unnest($11::text[], $12::text[], $13::bool[]) AS e(f, t, a)
        ),
        ins_bindings AS (
            INSERT INTO runledger.workflow_bindings (run_id, from_step, to_step, param, path)
            SELECT $1, b.f, b.t, b.p, ARRAY(SELECT jsonb_array_elements_text(b.path::jsonb))
            FROM unnest($14::text[], $15::text[], $16::text[], $17::text[]) AS b(f, t, p, path)
        ),
        ins_jobs AS (
            "#, insert_jobs!(), r#"(
                SELECT job_id AS id, kind, queue, priority, args::jsonb AS args, max_attempts,
                       now() AS run_at, timeout_ms, NULL::text AS unique_key,
                       NULL::int2 AS unique_states, $1::int8 AS run_id, key AS step
                FROM steps WHERE job_id IS NOT NULL
            ) j
            RETURNING queue
        )
        SELECT count(*) FROM (
            SELECT "#, notify_queue!("d.queue"), r#"
            FROM (SELECT DISTINCT queue FROM ins_jobs) d
        ) n
        "#),
    )
    .bind(run_id)
    .bind(&keys)
    .bind(&kinds)
    .bind(&gates)
    .bind(&pending)
    .bind(&args)
    .bind(&queues)
    .bind(&priorities)
    .bind(&attempts)
    .bind(&timeouts)
    .bind(&edge_from)
    .bind(&edge_to)
    .bind(&edge_any)
    .bind(&bind_from)
    .bind(&bind_to)
    .bind(&bind_param)
    .bind(&bind_path)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A run as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct RunRow {
    pub(crate) name: String,
    pub(crate) fingerprint: String,
    pub(crate) state: String,
    pub(crate) input: serde_json::Value,
    pub(crate) output: Option<serde_json::Value>,
    pub(crate) error: Option<String>,
    pub(crate) idempotency_key: Option<String>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) finished_at: Option<DateTime<Utc>>,
}

/// One run by id.
pub(crate) async fn get<'e>(db: impl PgExecutor<'e>, id: i64) -> Result<Option<RunRow>, Error> {
    Ok(sqlx::query_as::<_, RunRow>(
        "SELECT name, fingerprint, state, input, output, error, idempotency_key, created_at, \
         finished_at FROM runledger.workflow_runs WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await?)
}

/// A step as stored, with its job's state and attempts.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct StepRow {
    pub(crate) key: String,
    pub(crate) kind: Option<String>,
    pub(crate) gate: Option<String>,
    pub(crate) state: String,
    pub(crate) job_id: Option<i64>,
    pub(crate) job_state: Option<String>,
    pub(crate) attempt: Option<i32>,
    pub(crate) output: Option<serde_json::Value>,
    pub(crate) error: Option<String>,
    pub(crate) finished_at: Option<DateTime<Utc>>,
}

/// The steps of run `id`, in the order they were declared.
pub(crate) async fn steps<'e>(db: impl PgExecutor<'e>, id: i64) -> Result<Vec<StepRow>, Error> {
    Ok(sqlx::query_as::<_, StepRow>(
        "SELECT s.key, s.kind, s.gate, s.state, s.job_id, j.state AS job_state, j.attempt, \
                s.output, s.error, s.finished_at \
         FROM runledger.workflow_steps s \
         LEFT JOIN runledger.jobs j ON j.id = s.job_id \
         WHERE s.run_id = $1 ORDER BY s.ord",
    )
    .bind(id)
    .fetch_all(db)
    .await?)
}

/// Locks the rows of `runs` (sorted, distinct) in id order, for the rest of the transaction,
/// and sets the transaction to settle its finished steps itself: the row trigger stands aside
/// until [`settle_jobs`] settles them all at once, before the transaction commits.
pub(crate) async fn lock_runs_to_settle(
    conn: &mut PgConnection,
    runs: &[i64],
) -> Result<(), Error> {
    sqlx::query(
        "WITH locked AS (\
             SELECT id FROM runledger.workflow_runs WHERE id = ANY($1) ORDER BY id FOR UPDATE) \
         SELECT set_config('runledger.settle', 'deferred', true), (SELECT count(*) FROM locked)",
    )
    .bind(runs)
    .execute(conn)
    .await?;
    Ok(())
}

/// Settles the steps whose jobs, among `jobs`, are terminal: one call for the whole batch, in
/// the transaction that finished them (see [`lock_runs_to_settle`]).
pub(crate) async fn settle_jobs(conn: &mut PgConnection, jobs: &[i64]) -> Result<(), Error> {
    sqlx::query(
        "SELECT runledger.workflow_settle_many(\
             array_agg(run_id ORDER BY id), array_agg(step ORDER BY id), \
             array_agg(CASE WHEN state = 'diverged' THEN 'failed' ELSE state END ORDER BY id), \
             array_agg(CASE WHEN state = 'completed' THEN COALESCE(output, 'null'::jsonb) END \
                       ORDER BY id), \
             array_agg(runledger.workflow_job_error(j, true) ORDER BY id), \
             array_agg(false)) \
         FROM runledger.jobs j \
         WHERE id = ANY($1) AND run_id IS NOT NULL \
           AND state IN ('completed', 'failed', 'cancelled', 'diverged')",
    )
    .bind(jobs)
    .execute(conn)
    .await?;
    Ok(())
}

/// Cancels run `id`; returns its state before, or `None` if there is no such run.
pub(crate) async fn cancel<'e>(db: impl PgExecutor<'e>, id: i64) -> Result<Option<String>, Error> {
    Ok(
        sqlx::query_scalar::<_, Option<String>>("SELECT runledger.workflow_cancel($1)")
            .bind(id)
            .fetch_one(db)
            .await?,
    )
}

/// Cancels the unfinished descendants of run `id`'s step jobs (children spawned by durable
/// step jobs).
pub(crate) async fn cancel_spawned(conn: &mut PgConnection, id: i64) -> Result<(), Error> {
    sqlx::query(
        "SELECT runledger.require_read_committed(), runledger.cancel_descendants( \
             ARRAY(SELECT j.id FROM runledger.jobs j WHERE j.run_id = $1))",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Completes gate `gate` of run `id`. Returns `None` if the run has no such gate, else
/// `"settled"` or the gate's state when it was no longer waiting.
pub(crate) async fn complete_gate<'e>(
    db: impl PgExecutor<'e>,
    id: i64,
    gate: &str,
) -> Result<Option<String>, Error> {
    Ok(sqlx::query_scalar::<_, String>(
        "SELECT runledger.workflow_settle(s.run_id, s.key, 'completed', 'null'::jsonb, NULL, true) \
         FROM runledger.workflow_steps s WHERE s.run_id = $1 AND s.gate = $2",
    )
    .bind(id)
    .bind(gate)
    .fetch_optional(db)
    .await?)
}

#[cfg_attr(not(feature = "testing"), allow(dead_code))]
/// Runs still running.
pub(crate) async fn count_running(pool: &sqlx::PgPool) -> Result<i64, Error> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM runledger.workflow_runs WHERE state = 'running'")
            .fetch_one(pool)
            .await?,
    )
}
