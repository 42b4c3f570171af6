//! Statements only the benchmark program runs (feature `bench`): the bare baselines it measures
//! runledger against, and the server's own counters of the work done.

use sqlx::{PgExecutor, PgPool};

use crate::error::Error;

/// Inserts one job row with a plain parameterized `INSERT` and nothing else: no unique keys,
/// no notification, the columns' defaults for the rest. The floor of a single enqueue.
pub(crate) async fn bare_insert<'e>(
    db: impl PgExecutor<'e>,
    kind: &str,
    queue: &str,
    args: &str,
) -> Result<(), Error> {
    sqlx::query("INSERT INTO runledger.jobs (kind, queue, args) VALUES ($1, $2, $3::jsonb)")
        .bind(kind)
        .bind(queue)
        .bind(args)
        .execute(db)
        .await?;
    Ok(())
}

/// The server's counters of work done: transaction ids assigned (each writing transaction takes
/// one), the WAL insert position, this database's rows written (`pg_stat_database`), and the
/// jobs table's rows read by sequential scans and the claim index's entries read (both from the
/// statistics views, which other sessions reach when they end their connections or up to
/// seconds after their transactions).
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub(crate) struct Counters {
    pub(crate) xids: i64,
    pub(crate) wal_lsn: String,
    pub(crate) inserted: i64,
    pub(crate) updated: i64,
    pub(crate) deleted: i64,
    pub(crate) seq_read: i64,
    pub(crate) fetch_index_read: i64,
}

/// Inserts `n` finished jobs in one statement, as if they had run over the last two days: one
/// in `failed_every` failed (with an error and an attempt in its history), the rest completed;
/// kinds `kind0` to `kind19`, queues `q0` to `q3`. Then gathers the table's statistics.
pub(crate) async fn seed_finished(pool: &PgPool, n: i64, failed_every: i64) -> Result<(), Error> {
    sqlx::query(
        r#"
        INSERT INTO runledger.jobs (kind, queue, state, args, output, errors, history, attempt,
                                    max_attempts, run_at, created_at, attempted_at, finished_at,
                                    attempted_by)
        SELECT 'kind' || (g % 20), 'q' || (g % 4),
               CASE WHEN g % $2 = 0 THEN 'failed' ELSE 'completed' END,
               jsonb_build_object('n', g, 'note', 'seeded'),
               CASE WHEN g % $2 = 0 THEN NULL ELSE to_jsonb(g) END,
               CASE WHEN g % $2 = 0 THEN jsonb_build_array(jsonb_build_object(
                   'attempt', 1, 'at', t, 'error', 'upstream timeout after 30s (seeded)'))
                    ELSE '[]'::jsonb END,
               jsonb_build_array(jsonb_build_object(
                   'attempt', 1, 'worker', 'seed', 'started_at', t, 'finished_at', t,
                   'outcome', CASE WHEN g % $2 = 0 THEN 'failed' ELSE 'completed' END,
                   'error_kind', CASE WHEN g % $2 = 0 THEN 'fatal' END)),
               1, 1, t, t, t, t, 'seed'
        FROM generate_series(1, $1) AS g,
             LATERAL (SELECT now() - make_interval(secs => ($1 - g) * 172800.0 / $1) AS t) x
        "#,
    )
    .bind(n)
    .bind(failed_every)
    .execute(pool)
    .await?;
    sqlx::raw_sql("VACUUM ANALYZE runledger.jobs")
        .execute(pool)
        .await?;
    Ok(())
}

/// Reads [`Counters`].
pub(crate) async fn counters(pool: &PgPool) -> Result<Counters, Error> {
    Ok(sqlx::query_as::<_, Counters>(
        "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::int8 AS xids, \
         pg_current_wal_insert_lsn()::text AS wal_lsn, d.tup_inserted AS inserted, \
         d.tup_updated AS updated, d.tup_deleted AS deleted, \
         COALESCE((SELECT seq_tup_read FROM pg_stat_user_tables \
                   WHERE schemaname = 'runledger' AND relname = 'jobs'), 0) AS seq_read, \
         COALESCE((SELECT idx_tup_read FROM pg_stat_user_indexes \
                   WHERE schemaname = 'runledger' AND indexrelname = 'jobs_fetch_idx'), 0) \
             AS fetch_index_read \
         FROM pg_stat_database d WHERE d.datname = current_database()",
    )
    .fetch_one(pool)
    .await?)
}

/// Bytes of WAL between two insert positions (`pg_current_wal_insert_lsn()` text).
pub(crate) async fn wal_between(pool: &PgPool, from: &str, to: &str) -> Result<i64, Error> {
    Ok(
        sqlx::query_scalar("SELECT pg_wal_lsn_diff($2::pg_lsn, $1::pg_lsn)::int8")
            .bind(from)
            .bind(to)
            .fetch_one(pool)
            .await?,
    )
}
