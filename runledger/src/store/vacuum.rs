//! Statements of the vacuumer: how many dead and changed rows the hot tables carry, `VACUUM`
//! and `ANALYZE`.

use sqlx::PgPool;

use crate::error::Error;

/// A table the vacuumer looks after: rewritten row by row many times over, so it gathers dead
/// rows far faster than it grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum HotTable {
    Jobs,
    WorkflowRuns,
    WorkflowSteps,
}

impl HotTable {
    pub(crate) const ALL: [HotTable; 3] = [
        HotTable::Jobs,
        HotTable::WorkflowRuns,
        HotTable::WorkflowSteps,
    ];

    /// The table's name in schema `runledger`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            HotTable::Jobs => "jobs",
            HotTable::WorkflowRuns => "workflow_runs",
            HotTable::WorkflowSteps => "workflow_steps",
        }
    }

    /// The statement that vacuums the table and refreshes its statistics. `SKIP_LOCKED`: when
    /// autovacuum (or another vacuum) is already at work on it, this one returns at once instead
    /// of queueing behind.
    fn vacuum_statement(self) -> &'static str {
        match self {
            HotTable::Jobs => "VACUUM (SKIP_LOCKED, ANALYZE) runledger.jobs",
            HotTable::WorkflowRuns => "VACUUM (SKIP_LOCKED, ANALYZE) runledger.workflow_runs",
            HotTable::WorkflowSteps => "VACUUM (SKIP_LOCKED, ANALYZE) runledger.workflow_steps",
        }
    }

    /// The statement that refreshes the table's statistics only.
    fn analyze_statement(self) -> &'static str {
        match self {
            HotTable::Jobs => "ANALYZE (SKIP_LOCKED) runledger.jobs",
            HotTable::WorkflowRuns => "ANALYZE (SKIP_LOCKED) runledger.workflow_runs",
            HotTable::WorkflowSteps => "ANALYZE (SKIP_LOCKED) runledger.workflow_steps",
        }
    }
}

/// What the statistics say of one hot table.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct TableHealth {
    pub(crate) table_name: String,
    /// Live rows, as last counted.
    pub(crate) live: i64,
    /// Dead rows not yet reclaimed, as last counted.
    pub(crate) dead: i64,
    /// Rows inserted, updated or deleted since the statistics were last gathered.
    pub(crate) modified: i64,
    /// Whether a vacuum this session's role can see is working on it now (a role without
    /// `pg_read_all_stats` does not see autovacuum's; `SKIP_LOCKED` covers that case).
    pub(crate) vacuuming: bool,
    /// Manual vacuums of it so far: a `VACUUM` that skipped the table does not count one.
    pub(crate) vacuums: i64,
    /// Whether this session's role may vacuum it (owns it or the database, or has `MAINTAIN`
    /// on PostgreSQL 17 and newer). Without it, `VACUUM` only warns and does nothing.
    pub(crate) permitted: bool,
}

/// Reads the health of every hot table in one statement.
pub(crate) async fn health(pool: &PgPool) -> Result<Vec<TableHealth>, Error> {
    let names: Vec<&str> = HotTable::ALL.iter().map(|t| t.name()).collect();
    Ok(sqlx::query_as::<_, TableHealth>(
        r#"
        SELECT c.relname::text AS table_name,
               coalesce(s.n_live_tup, 0) AS live,
               coalesce(s.n_dead_tup, 0) AS dead,
               coalesce(s.n_mod_since_analyze, 0) AS modified,
               EXISTS (SELECT 1 FROM pg_stat_progress_vacuum p WHERE p.relid = c.oid) AS vacuuming,
               coalesce(s.vacuum_count, 0) AS vacuums,
               pg_has_role(c.relowner, 'USAGE')
                 OR pg_has_role((SELECT datdba FROM pg_database
                                 WHERE datname = current_database()), 'USAGE')
                 OR CASE WHEN current_setting('server_version_num')::int >= 170000
                         THEN has_table_privilege(c.oid, 'MAINTAIN')
                         ELSE false END AS permitted
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
        WHERE n.nspname = 'runledger' AND c.relname = ANY($1)
        "#,
    )
    .bind(names)
    .fetch_all(pool)
    .await?)
}

/// Vacuums and analyzes `table` (outside any transaction, as `VACUUM` must run).
pub(crate) async fn vacuum(pool: &PgPool, table: HotTable) -> Result<(), Error> {
    sqlx::raw_sql(table.vacuum_statement())
        .execute(pool)
        .await?;
    Ok(())
}

/// Gathers fresh statistics of `table`.
pub(crate) async fn analyze(pool: &PgPool, table: HotTable) -> Result<(), Error> {
    sqlx::raw_sql(table.analyze_statement())
        .execute(pool)
        .await?;
    Ok(())
}
