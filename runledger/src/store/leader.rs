//! Statements on `runledger.leaders`: leases of elected roles, timed by the database clock.

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool};

use crate::error::Error;

/// Takes the lease of `role` for `holder` if it is free, expired or already `holder`'s, and
/// (re)sets its expiry to `lease_s` seconds from now. True if `holder` holds the role after the
/// statement.
pub(crate) async fn claim(
    pool: &PgPool,
    role: &str,
    holder: &str,
    lease_s: f64,
) -> Result<bool, Error> {
    let held = sqlx::query(
        r#"
        INSERT INTO runledger.leaders AS l (role, holder, elected_at, expires_at)
        VALUES ($1, $2, now(), now() + make_interval(secs => $3))
        ON CONFLICT (role) DO UPDATE
        SET holder = EXCLUDED.holder,
            elected_at = CASE WHEN l.holder = EXCLUDED.holder THEN l.elected_at ELSE now() END,
            expires_at = EXCLUDED.expires_at
        WHERE l.holder = EXCLUDED.holder OR l.expires_at <= now()
        "#,
    )
    .bind(role)
    .bind(holder)
    .bind(lease_s)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(held == 1)
}

/// Gives up `holder`'s lease of `role`, if it holds it.
pub(crate) async fn release(pool: &PgPool, role: &str, holder: &str) -> Result<bool, Error> {
    let released = sqlx::query("DELETE FROM runledger.leaders WHERE role = $1 AND holder = $2")
        .bind(role)
        .bind(holder)
        .execute(pool)
        .await?
        .rows_affected();
    Ok(released == 1)
}

/// The current, unexpired holder of a role.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct Holder {
    pub(crate) holder: String,
    pub(crate) elected_at: DateTime<Utc>,
    pub(crate) expires_at: DateTime<Utc>,
}

/// Who holds `role` now, if anyone.
pub(crate) async fn holder<'e>(
    db: impl PgExecutor<'e>,
    role: &str,
) -> Result<Option<Holder>, Error> {
    Ok(sqlx::query_as::<_, Holder>(
        "SELECT holder, elected_at, expires_at FROM runledger.leaders \
         WHERE role = $1 AND expires_at > now()",
    )
    .bind(role)
    .fetch_optional(db)
    .await?)
}
