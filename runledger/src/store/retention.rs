//! Statements that delete what the retention policy no longer keeps.

use sqlx::PgPool;

use crate::error::Error;

/// Deletes up to `limit` jobs in the finished state `state` that finished more than `keep_s`
/// seconds ago, oldest first. The state is also checked against the finished states in the
/// statement itself, so no caller can make it delete an unfinished job. Returns the rows deleted.
///
/// With `leader`, nothing is deleted unless that holder has an unexpired lease of the
/// maintenance role, checked by the statement itself.
pub(crate) async fn prune_jobs(
    pool: &PgPool,
    state: &str,
    keep_s: f64,
    limit: i64,
    leader: Option<&str>,
) -> Result<u64, Error> {
    Ok(sqlx::query(concat!(
        r#"
        WITH doomed AS (
            SELECT id FROM runledger.jobs
            WHERE state = $1
              AND state IN ('completed', 'failed', 'cancelled', 'diverged')
              AND finished_at IS NOT NULL
              AND finished_at < now() - make_interval(secs => $2)
              AND "#,
        leader_holds_lease!("4"),
        r#"
            ORDER BY finished_at
            LIMIT $3
            FOR UPDATE SKIP LOCKED
        )
        DELETE FROM runledger.jobs j
        USING doomed
        WHERE j.id = doomed.id AND j.state IN ('completed', 'failed', 'cancelled', 'diverged')
        "#
    ))
    .bind(state)
    .bind(keep_s)
    .bind(limit)
    .bind(leader)
    .execute(pool)
    .await?
    .rows_affected())
}

/// Deletes up to `limit` events emitted more than `keep_s` seconds ago, oldest first. Returns
/// the rows deleted. With `leader`, as [`prune_jobs`].
pub(crate) async fn prune_events(
    pool: &PgPool,
    keep_s: f64,
    limit: i64,
    leader: Option<&str>,
) -> Result<u64, Error> {
    Ok(sqlx::query(concat!(
        r#"
        WITH doomed AS (
            SELECT name, key FROM runledger.events
            WHERE emitted_at < now() - make_interval(secs => $1)
              AND "#,
        leader_holds_lease!("3"),
        r#"
            ORDER BY emitted_at
            LIMIT $2
            FOR UPDATE SKIP LOCKED
        )
        DELETE FROM runledger.events e
        USING doomed
        WHERE e.name = doomed.name AND e.key = doomed.key
        "#
    ))
    .bind(keep_s)
    .bind(limit)
    .bind(leader)
    .execute(pool)
    .await?
    .rows_affected())
}

/// Deletes up to `limit` schedule fire rows older than `keep_s` seconds whose slot is behind
/// their schedule's cursor (such a slot can never be fired again). Returns the rows deleted.
///
/// With `leader`, nothing is deleted unless that holder has an unexpired lease of the
/// maintenance role, checked by the statement itself.
pub(crate) async fn prune_fires(
    pool: &PgPool,
    keep_s: f64,
    limit: i64,
    leader: Option<&str>,
) -> Result<u64, Error> {
    Ok(sqlx::query(concat!(
        r#"
        WITH doomed AS (
            SELECT f.schedule, f.slot
            FROM runledger.schedule_fires f
            JOIN runledger.schedules s ON s.name = f.schedule
            WHERE f.fired_at < now() - make_interval(secs => $1)
              AND f.slot < s.next_fire_at
              AND "#,
        leader_holds_lease!("3"),
        r#"
            ORDER BY f.fired_at
            LIMIT $2
        )
        DELETE FROM runledger.schedule_fires f
        USING doomed
        WHERE f.schedule = doomed.schedule AND f.slot = doomed.slot
        "#
    ))
    .bind(keep_s)
    .bind(limit)
    .bind(leader)
    .execute(pool)
    .await?
    .rows_affected())
}

/// Deletes up to `limit` finished workflow runs (completed, failed or cancelled) that finished
/// more than `keep_s` seconds ago, oldest first; their steps, edges and bindings go with them.
/// A cancelled run whose step jobs are still running (asked to stop, not yet stopped) is kept
/// until they finish. Returns the runs deleted.
///
/// With `leader`, nothing is deleted unless that holder has an unexpired lease of the
/// maintenance role, checked by the statement itself.
pub(crate) async fn prune_runs(
    pool: &PgPool,
    keep_s: f64,
    limit: i64,
    leader: Option<&str>,
) -> Result<u64, Error> {
    Ok(sqlx::query(concat!(
        r#"
        WITH doomed AS (
            SELECT id FROM runledger.workflow_runs
            WHERE state IN ('completed', 'failed', 'cancelled')
              AND finished_at IS NOT NULL
              AND finished_at < now() - make_interval(secs => $1)
              AND NOT EXISTS (
                  SELECT 1 FROM runledger.jobs j
                  WHERE j.run_id = workflow_runs.id
                    AND j.state NOT IN ('completed', 'failed', 'cancelled'))
              AND "#,
        leader_holds_lease!("3"),
        r#"
            ORDER BY finished_at
            LIMIT $2
            FOR UPDATE SKIP LOCKED
        )
        DELETE FROM runledger.workflow_runs r
        USING doomed
        WHERE r.id = doomed.id AND r.state <> 'running'
        "#
    ))
    .bind(keep_s)
    .bind(limit)
    .bind(leader)
    .execute(pool)
    .await?
    .rows_affected())
}
