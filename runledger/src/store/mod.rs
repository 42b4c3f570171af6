//! The only place with SQL. One function per statement, typed parameters and rows; no SQL is
//! ever assembled from user input (kinds, queues and keys travel as bind parameters).

/// SQL text: true when bind parameter `$n` (a holder name, or NULL for "no check") holds an
/// unexpired lease of the maintenance role. Leader-only statements include it so that a worker
/// that lost its lease changes nothing, whatever it believes.
macro_rules! leader_holds_lease {
    ($n:literal) => {
        concat!(
            "($",
            $n,
            "::text IS NULL OR EXISTS (SELECT 1 FROM runledger.leaders ",
            "WHERE role = 'maintenance' AND holder = $",
            $n,
            " AND expires_at > now()))"
        )
    };
}

#[cfg(feature = "testing")]
pub(crate) mod admin;
pub(crate) mod jobs;
pub(crate) mod leader;
pub(crate) mod retention;
pub(crate) mod schedules;
pub(crate) mod vacuum;
pub(crate) mod workflows;

use sqlx::PgPool;

use crate::error::Error;

/// The schema every runledger table lives in.
pub(crate) const SCHEMA: &str = "runledger";

/// Channel on which enqueues and the stager announce available work (`a:<queue>`) and newly
/// scheduled work (`s`).
pub(crate) const JOBS_CHANNEL: &str = "runledger_jobs";

/// Channel for control messages to workers (`cancel:<id>`, and [`schedules::CHANGED`]).
pub(crate) const CONTROL_CHANNEL: &str = "runledger_control";

/// Applies runledger's migrations to the database behind `pool`.
///
/// The tables live in the schema `runledger` and the applied versions in
/// `runledger.schema_migrations`, so they never mix with the application's own migrations.
/// Safe to call from many processes at once: the migrator holds an advisory lock while it
/// works, and versions already applied are skipped.
///
/// ```no_run
/// # async fn demo(pool: sqlx::PgPool) -> Result<(), runledger::Error> {
/// runledger::migrate(&pool).await?;
/// # Ok(()) }
/// ```
pub async fn migrate(pool: &PgPool) -> Result<(), Error> {
    let mut migrator = sqlx::migrate!("../migrations");
    migrator.create_schema(SCHEMA);
    migrator.dangerous_set_table_name("runledger.schema_migrations");
    migrator.run(pool).await.map_err(Error::Migrate)
}
