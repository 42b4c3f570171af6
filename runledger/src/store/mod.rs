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

/// SQL text: the notification that queue `$queue` (an SQL expression) has available jobs, in the
/// wake-up protocol of [`notify::Wake::Queue`].
macro_rules! notify_queue {
    ($queue:literal) => {
        concat!("pg_notify('runledger_jobs', 'a:' || ", $queue, ")")
    };
}

/// SQL text: the control message asking the workers to stop job `$id` (an SQL expression), in the
/// wake-up protocol of [`notify::Wake::Cancel`].
macro_rules! notify_cancel {
    ($id:literal) => {
        concat!("pg_notify('runledger_control', 'cancel:' || ", $id, ")")
    };
}

#[cfg(feature = "testing")]
pub(crate) mod admin;
pub(crate) mod jobs;
pub(crate) mod leader;
pub(crate) mod notify;
pub(crate) mod retention;
pub(crate) mod schedules;
pub(crate) mod vacuum;
pub(crate) mod workers;
pub(crate) mod workflows;

use sqlx::PgPool;

use crate::error::Error;

/// The schema every runledger table lives in.
pub(crate) const SCHEMA: &str = "runledger";

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
    match migrator.run(pool).await {
        Ok(()) => Ok(()),
        // Failed before any migration ran (no connection, no lock): a database error, and the
        // schema is untouched.
        Err(sqlx::migrate::MigrateError::Execute(error)) => {
            Err(Error::Database(connect_failure(pool, error).await))
        }
        Err(error) => Err(Error::Migrate(error)),
    }
}

/// `error`, or, when it is the pool's "timed out" (which hides why no connection could be
/// opened: the pool retries a full server until its acquire timeout), the error of one direct
/// connection attempt, such as "sorry, too many clients already".
pub(crate) async fn connect_failure(pool: &PgPool, error: sqlx::Error) -> sqlx::Error {
    if !matches!(error, sqlx::Error::PoolTimedOut) {
        return error;
    }
    let options = pool.connect_options();
    match tokio::time::timeout(
        std::time::Duration::from_secs(10),
        <sqlx::PgConnection as sqlx::Connection>::connect_with(&*options),
    )
    .await
    {
        Ok(Err(direct)) => direct,
        Ok(Ok(conn)) => {
            let _ = sqlx::Connection::close(conn).await;
            error
        }
        Err(_) => error,
    }
}

/// Whether a statement that failed with `error` may pass when sent again unchanged: the
/// connection or the server failed (class 08, 53, 57, 58, I/O, pool), or the statement lost a
/// race (class 40: serialization failure, deadlock; 55P03: lock not available). Anything else
/// (bad data, a constraint, a program limit) fails again with the same input.
pub(crate) fn is_transient(error: &Error) -> bool {
    let Error::Database(error) = error else {
        return false;
    };
    match error {
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            matches!(code.get(..2), Some("08" | "40" | "53" | "57" | "58")) || code == "55P03"
        }),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        _ => false,
    }
}
