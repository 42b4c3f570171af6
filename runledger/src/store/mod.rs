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

/// SQL text: the one insert of job rows, followed by the source of the rows. Every path that
/// creates jobs (enqueue, a workflow's first steps, released steps in `runledger.workflow_settle_many`,
/// cron fires) selects its rows as `j` with these columns, so the column list and the rule that
/// a row due later is `scheduled` live here; a test checks the migrations' functions use the same
/// text.
macro_rules! insert_jobs {
    () => {
        "INSERT INTO runledger.jobs (id, kind, queue, state, priority, args, max_attempts, run_at, \
         timeout_ms, unique_key, unique_states, run_id, step) \
         SELECT j.id, j.kind, j.queue, \
         CASE WHEN j.run_at <= now() THEN 'available' ELSE 'scheduled' END, \
         j.priority, j.args, j.max_attempts, j.run_at, j.timeout_ms, j.unique_key, \
         j.unique_states, j.run_id, j.step FROM "
    };
}

#[cfg(feature = "testing")]
pub(crate) mod admin;
#[cfg(feature = "bench")]
pub(crate) mod bench;
pub(crate) mod durable;
pub(crate) mod jobs;
pub(crate) mod leader;
pub(crate) mod notify;
pub(crate) mod ops;
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// `text` with every run of white space made one space.
    fn squeeze(text: &str) -> String {
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    fn files(dir: &Path, ext: &str, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("readable source tree") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                files(&path, ext, out);
            } else if path.extension().is_some_and(|e| e == ext) {
                out.push(path);
            }
        }
    }

    #[test]
    fn every_job_row_enters_through_the_one_insert() {
        let insert = concat!("INSERT INTO ", "runledger.jobs");
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        // Rust: only the fragment itself, here, names the insert.
        let mut sources = Vec::new();
        files(&root.join("src"), "rs", &mut sources);
        for path in &sources {
            // The benchmark's bare insert is a baseline, not a way jobs are created.
            if path.ends_with("store/mod.rs") || path.ends_with("store/bench.rs") {
                continue;
            }
            let text = std::fs::read_to_string(path).expect("a readable source file");
            assert!(
                !text.contains(insert),
                "{} inserts jobs without `insert_jobs!`",
                path.display()
            );
        }
        // SQL: the latest definition of every function that inserts jobs uses the same text.
        let mut migrations = Vec::new();
        files(&root.join("../migrations"), "sql", &mut migrations);
        migrations.sort();
        let mut latest = std::collections::BTreeMap::new();
        for path in &migrations {
            let text = std::fs::read_to_string(path).expect("a readable migration");
            for block in text.split("FUNCTION runledger.").skip(1) {
                let name = block.split('(').next().unwrap_or_default().to_owned();
                let body = block.split("$$;").next().unwrap_or_default().to_owned();
                latest.insert(name, body);
            }
        }
        let fragment = squeeze(insert_jobs!());
        let mut checked = 0;
        for (name, body) in &latest {
            if body.contains(insert) {
                assert!(
                    squeeze(body).contains(&fragment),
                    "runledger.{name} inserts jobs without the `insert_jobs!` text"
                );
                checked += 1;
            }
        }
        assert_eq!(
            checked, 2,
            "runledger.workflow_settle_many inserts the released steps' jobs, \
             runledger.retry_run the jobs of the steps it runs again"
        );
    }
}
