//! The vacuumer (leader only): keeps the hot tables (`jobs`, `workflow_runs`, `workflow_steps`)
//! free of dead rows, and their statistics current, between autovacuum's visits.
//!
//! Every claim, completion, heartbeat and prune leaves a dead row version behind, tens of
//! thousands a second under load. Autovacuum visits each database only once per
//! `autovacuum_naptime` (one minute by default, a server-wide setting no table option changes),
//! and a minute of dead rows slows every claim and completion until the table is vacuumed; at
//! 10,000 jobs/s the worker then falls behind for good. So every few seconds the leader reads
//! the tables' statistics (one query) and vacuums a table once it has gathered enough dead rows
//! since it was last vacuumed: at least [`MIN_DEAD_ROWS`], and a fifth of its live rows. The
//! vacuum also analyzes the table; a table whose rows changed as much since its statistics were
//! gathered, without dead rows to reclaim (a burst of inserts), is analyzed alone. Statistics
//! that still describe a nearly empty queue make every plan that depends on them wrong.
//!
//! `VACUUM` needs the table's or the database's owner (or `MAINTAIN` on PostgreSQL 17 and
//! newer): a role without it is reported once and the service leaves the tables to autovacuum.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::service::{IdleBackoff, Service};
use crate::error::Error;
use crate::runtime::shared::Shared;
use crate::store;
use crate::store::vacuum::HotTable;

/// Fewest dead rows worth a vacuum.
pub(crate) const MIN_DEAD_ROWS: i64 = 10_000;

/// The longest wait between two reads of the statistics while the tables stay quiet, in
/// intervals (5 s becomes at most 30 s).
const MAX_QUIET_FACTOR: u32 = 6;

#[derive(Debug, Default)]
pub(crate) struct Vacuumer {
    /// Dead rows each table still had after this service last vacuumed it: rows an old snapshot
    /// somewhere keeps alive. They do not count towards the next vacuum, so that a long
    /// transaction elsewhere does not make the service vacuum in vain every pass.
    floor: HashMap<HotTable, i64>,
    /// Whether the lack of permission was reported.
    warned: bool,
    /// The tables' dead and changed row counts at the last read, summed: unchanged, nothing
    /// happened in between.
    last_activity: Option<i64>,
    /// Each read that finds the tables as the one before doubles the wait before the next (up
    /// to [`MAX_QUIET_FACTOR`] times the interval), so that an idle worker reads the statistics
    /// every 30 s rather than every 5. The first read that finds a change goes back to the
    /// interval.
    backoff: IdleBackoff,
}

/// Whether a table with `live` and `dead` rows, `floor` of them left by the last vacuum, is due.
pub(crate) fn due(live: i64, dead: i64, floor: i64) -> bool {
    // A floor above the count is stale: something else (autovacuum) reclaimed rows since.
    let gathered = if dead < floor { dead } else { dead - floor };
    gathered >= MIN_DEAD_ROWS && gathered >= live / 5
}

impl Service for Vacuumer {
    const NAME: &'static str = "vacuumer";
    const LEADER_ONLY: bool = true;

    async fn pass(&mut self, shared: &Shared) -> Result<Duration, Error> {
        let Some(interval) = shared.config.maintenance.vacuum_interval else {
            // Turned off: the service only waits for shutdown.
            return Ok(Duration::from_secs(3600));
        };
        // (table, its health before, how long the vacuum took)
        let mut vacuumed = Vec::new();
        let tables = store::vacuum::health(&shared.pool).await?;
        let activity: i64 = tables.iter().map(|h| h.dead + h.modified).sum();
        let changed = self.last_activity != Some(activity);
        self.last_activity = Some(activity);
        for health in tables {
            let Some(table) = HotTable::ALL
                .into_iter()
                .find(|t| t.name() == health.table_name)
            else {
                continue;
            };
            if !health.permitted {
                if !self.warned {
                    self.warned = true;
                    tracing::warn!(
                        worker = %shared.config.id,
                        table = table.name(),
                        "this role may not vacuum the runledger tables (it owns neither them nor \
                         the database); leaving them to autovacuum, which may let dead rows pile \
                         up under load"
                    );
                }
                continue;
            }
            let floor = self.floor.entry(table).or_default();
            if health.dead < *floor {
                // Something else (autovacuum) reclaimed them since.
                *floor = 0;
            }
            if health.vacuuming {
                continue;
            }
            // One table's failure (a statement timeout on the pool, say) does not keep the
            // others from their turn.
            let started = Instant::now();
            if due(health.live, health.dead, *floor) {
                match store::vacuum::vacuum(&shared.pool, table).await {
                    Ok(()) => vacuumed.push((table, health, started.elapsed())),
                    Err(error) => tracing::warn!(
                        worker = %shared.config.id,
                        table = table.name(),
                        %error,
                        "vacuum failed"
                    ),
                }
            } else if due(health.live, health.modified, 0) {
                match store::vacuum::analyze(&shared.pool, table).await {
                    Ok(()) => tracing::info!(
                        worker = %shared.config.id,
                        table = table.name(),
                        live = health.live,
                        modified = health.modified,
                        took = ?started.elapsed(),
                        "analyzed"
                    ),
                    Err(error) => tracing::warn!(
                        worker = %shared.config.id,
                        table = table.name(),
                        %error,
                        "analyze failed"
                    ),
                }
            }
        }
        if !vacuumed.is_empty() {
            let after = store::vacuum::health(&shared.pool).await?;
            for (table, before, took) in vacuumed {
                let Some(now) = after.iter().find(|h| h.table_name == table.name()) else {
                    continue;
                };
                if now.vacuums <= before.vacuums {
                    // `SKIP_LOCKED` found another vacuum at work: nothing was reclaimed here.
                    tracing::debug!(
                        worker = %shared.config.id,
                        table = table.name(),
                        "vacuum skipped: another one holds the table"
                    );
                    continue;
                }
                self.floor.insert(table, now.dead);
                tracing::info!(
                    worker = %shared.config.id,
                    table = table.name(),
                    live = before.live,
                    dead_before = before.dead,
                    dead_after = now.dead,
                    took = ?took,
                    "vacuumed and analyzed"
                );
            }
        }
        Ok(self.backoff.next(changed, interval, MAX_QUIET_FACTOR))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vacuums_once_enough_dead_rows_gathered() {
        assert!(!due(0, MIN_DEAD_ROWS - 1, 0), "too few to bother");
        assert!(due(0, MIN_DEAD_ROWS, 0));
        assert!(
            !due(1_000_000, 150_000, 0),
            "under a fifth of a large table"
        );
        assert!(due(1_000_000, 200_000, 0));
        assert!(
            !due(100, 15_000, 10_000),
            "rows the last vacuum could not reclaim do not count"
        );
        assert!(due(100, 25_000, 10_000));
        assert!(due(100, 12_000, 50_000), "a floor above the count is stale");
    }

    #[test]
    fn quiet_tables_are_read_less_often_up_to_six_intervals() {
        let five = Duration::from_secs(5);
        let mut backoff = IdleBackoff::default();
        let mut waits: Vec<u64> = vec![backoff.next(true, five, MAX_QUIET_FACTOR).as_secs()];
        waits.extend((0..3).map(|_| backoff.next(false, five, MAX_QUIET_FACTOR).as_secs()));
        assert_eq!(waits, [5, 10, 20, 30]);
        assert_eq!(backoff.next(false, five, MAX_QUIET_FACTOR).as_secs(), 30);
        assert_eq!(backoff.next(true, five, MAX_QUIET_FACTOR).as_secs(), 5);
    }
}
