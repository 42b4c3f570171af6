//! Statements on `runledger.workers`: the running workers and what they serve, and the
//! available jobs that none of them serves.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::error::Error;

/// What a worker says of itself when it registers.
pub(crate) struct Registration<'a> {
    pub(crate) holder: &'a str,
    pub(crate) worker: &'a str,
    pub(crate) queues: &'a [String],
    pub(crate) kinds: &'a [&'a str],
    pub(crate) host: &'a str,
    pub(crate) concurrency: usize,
}

/// Records (or refreshes) a worker instance with what it serves.
pub(crate) async fn register(pool: &PgPool, me: &Registration<'_>) -> Result<(), Error> {
    sqlx::query(
        r#"
        INSERT INTO runledger.workers (holder, worker, queues, kinds, host, pid, version, concurrency)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        ON CONFLICT (holder) DO UPDATE SET seen_at = now()
        "#,
    )
    .bind(me.holder)
    .bind(me.worker)
    .bind(me.queues)
    .bind(me.kinds)
    .bind(me.host)
    .bind(i32::try_from(std::process::id()).unwrap_or(i32::MAX))
    .bind(env!("CARGO_PKG_VERSION"))
    .bind(i32::try_from(me.concurrency).unwrap_or(i32::MAX))
    .execute(pool)
    .await?;
    Ok(())
}

/// Removes worker instance `holder` (at graceful shutdown).
pub(crate) async fn deregister(pool: &PgPool, holder: &str) -> Result<(), Error> {
    sqlx::query("DELETE FROM runledger.workers WHERE holder = $1")
        .bind(holder)
        .execute(pool)
        .await?;
    Ok(())
}

/// Removes workers not seen for `stale_s` seconds (they crashed or were cut off).
pub(crate) async fn forget_stale(pool: &PgPool, stale_s: f64) -> Result<u64, Error> {
    Ok(sqlx::query(
        "DELETE FROM runledger.workers WHERE seen_at < now() - make_interval(secs => $1)",
    )
    .bind(stale_s)
    .execute(pool)
    .await?
    .rows_affected())
}

/// Available jobs of one queue and kind that no worker seen in the last `live_s` seconds serves.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct Unclaimed {
    pub(crate) queue: String,
    pub(crate) kind: String,
    pub(crate) jobs: i64,
    pub(crate) waiting_since: DateTime<Utc>,
}

/// Queues and kinds whose available jobs have waited longer than `older_than_s` seconds while no
/// worker seen in the last `live_s` seconds serves them. One read of the fetch index's
/// `available` part, grouped; the workers table is tiny.
pub(crate) async fn unclaimed(
    pool: &PgPool,
    older_than_s: f64,
    live_s: f64,
) -> Result<Vec<Unclaimed>, Error> {
    Ok(sqlx::query_as::<_, Unclaimed>(
        r#"
        WITH served AS (
            SELECT DISTINCT q AS queue, k AS kind
            FROM runledger.workers w, unnest(w.queues) AS q, unnest(w.kinds) AS k
            WHERE w.seen_at > now() - make_interval(secs => $2)
        )
        SELECT j.queue, j.kind, count(*) AS jobs, min(j.run_at) AS waiting_since
        FROM runledger.jobs j
        WHERE j.state = 'available'
          AND NOT EXISTS (SELECT 1 FROM served s WHERE s.queue = j.queue AND s.kind = j.kind)
        GROUP BY j.queue, j.kind
        HAVING min(j.run_at) < now() - make_interval(secs => $1)
        ORDER BY min(j.run_at)
        "#,
    )
    .bind(older_than_s)
    .bind(live_s)
    .fetch_all(pool)
    .await?)
}
