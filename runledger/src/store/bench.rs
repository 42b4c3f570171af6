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
