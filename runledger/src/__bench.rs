//! The claim/complete cycle without the framework around it: the same statements the worker
//! uses, called directly. The benchmark program measures it as the machine's physical limit.
//! Not a public API.

use std::time::Duration;

use sqlx::PgPool;

use crate::error::Error;
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
    let outcomes: Vec<Outcome> = tokens
        .iter()
        .map(|t| Outcome {
            id: t.id,
            attempt: t.attempt,
            kind: OutcomeKind::Completed,
            output: Some("null".to_owned()),
            delay: None,
            error: None,
            run_id: None,
        })
        .collect();
    Ok(jobs::complete(pool, &outcomes).await?.len())
}
