//! The baselines the benchmark program measures runledger against: the claim/complete cycle
//! without the framework around it (the same statements the worker uses, called directly), a
//! bare single-row insert, and the server's counters of work done. Not a public API.

use std::time::Duration;

use sqlx::PgPool;

use crate::error::Error;
use crate::store::bench;
use crate::store::jobs::{self, Outcome, OutcomeKind};

/// A claimed job's fencing token.
#[derive(Debug, Clone, Copy)]
pub struct Token {
    id: i64,
    attempt: i32,
}

/// Claims up to `limit` jobs of `kinds` from `queue`.
pub async fn claim(
    pool: &PgPool,
    queue: &str,
    kinds: &[&str],
    limit: i64,
) -> Result<Vec<Token>, Error> {
    Ok(
        jobs::claim(pool, queue, kinds, limit, "raw", Duration::from_secs(30))
            .await?
            .into_iter()
            .map(|c| Token {
                id: c.id,
                attempt: c.attempt,
            })
            .collect(),
    )
}

/// Completes the claimed jobs with a `null` output, in one statement.
pub async fn complete(pool: &PgPool, tokens: &[Token]) -> Result<usize, Error> {
    Ok(jobs::complete(pool, &completions(tokens)).await?.len())
}

/// Completes the claimed jobs like [`complete`], on `conn` (in its transaction, if one is open).
pub async fn complete_on(conn: &mut sqlx::PgConnection, tokens: &[Token]) -> Result<usize, Error> {
    Ok(jobs::complete(conn, &completions(tokens)).await?.len())
}

/// In one transaction, claims up to `limit` jobs and completes them: the cycle at the size the
/// database handles best, with nothing around it. Returns how many were completed.
pub async fn claim_and_complete(
    pool: &PgPool,
    queue: &str,
    kinds: &[&str],
    limit: i64,
) -> Result<usize, Error> {
    let mut tx = pool.begin().await?;
    let claimed = jobs::claim(
        &mut *tx,
        queue,
        kinds,
        limit,
        "raw",
        Duration::from_secs(30),
    )
    .await?;
    let tokens: Vec<Token> = claimed
        .into_iter()
        .map(|c| Token {
            id: c.id,
            attempt: c.attempt,
        })
        .collect();
    let done = if tokens.is_empty() {
        0
    } else {
        jobs::complete(&mut *tx, &completions(&tokens)).await?.len()
    };
    tx.commit().await?;
    Ok(done)
}

/// Inserts `n` finished jobs (one in `failed_every` failed) spread over the last two days, and
/// gathers the table's statistics (see the store's `seed_finished`).
pub async fn seed_finished(pool: &PgPool, n: i64, failed_every: i64) -> Result<(), Error> {
    bench::seed_finished(pool, n, failed_every).await
}

/// Inserts one job with a plain single-row `INSERT` in its own transaction: no unique keys,
/// no notification.
pub async fn bare_insert(pool: &PgPool, kind: &str, queue: &str, args: &str) -> Result<(), Error> {
    bench::bare_insert(pool, kind, queue, args).await
}

/// The server's counters of work done, to diff around a workload.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// Transaction ids assigned so far: one per writing transaction (a read-only one takes
    /// none).
    pub xids: i64,
    /// Rows inserted in this database, by the statistics: a session's rows show up once it
    /// closes its connection (or seconds after its transactions end).
    pub inserted: i64,
    /// Rows updated in this database, by the statistics (as `inserted`).
    pub updated: i64,
    /// Rows deleted in this database, by the statistics (as `inserted`).
    pub deleted: i64,
    /// Rows of the jobs table read by sequential scans (as `inserted`): a plan that scans the
    /// table where it should look rows up by key shows here.
    pub seq_read: i64,
    /// Entries of the claim's index read (as `inserted`): claims that step over many entries
    /// of rows no longer available show here.
    pub fetch_index_read: i64,
    wal_lsn: String,
}

impl Counters {
    /// Reads the counters.
    pub async fn read(pool: &PgPool) -> Result<Counters, Error> {
        let c = bench::counters(pool).await?;
        Ok(Counters {
            xids: c.xids,
            inserted: c.inserted,
            updated: c.updated,
            deleted: c.deleted,
            seq_read: c.seq_read,
            fetch_index_read: c.fetch_index_read,
            wal_lsn: c.wal_lsn,
        })
    }

    /// Bytes of WAL the whole cluster wrote between `self` and `later`.
    pub async fn wal_bytes_until(&self, later: &Counters, pool: &PgPool) -> Result<i64, Error> {
        bench::wal_between(pool, &self.wal_lsn, &later.wal_lsn).await
    }
}

fn completions(tokens: &[Token]) -> Vec<Outcome> {
    tokens
        .iter()
        .map(|t| Outcome {
            id: t.id,
            attempt: t.attempt,
            kind: OutcomeKind::Completed,
            output: Some("null".to_owned()),
            delay: None,
            error: None,
            error_kind: None,
            run_id: None,
            wait: None,
        })
        .collect()
}
