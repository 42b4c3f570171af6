//! The scheduler (leader only): fires the cron schedules whose next slot has come. For each due
//! schedule it computes, with [`CronSchedule`], the slots to fire under the schedule's
//! [`MissedSlots`] policy, then in one statement moves the schedule's cursor (compare-and-set),
//! records one fire row per slot (primary key `(schedule, slot)`) and enqueues one job per new
//! fire row. Leadership keeps a second scheduler from doing the work twice; the cursor's
//! compare-and-set and the fire rows make a double fire impossible even when two schedulers
//! overlap during a change of leader.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::Notify;

use super::service::{Service, until_due};
use crate::error::Error;
use crate::runtime::shared::Shared;
use crate::schedule::{CronSchedule, MissedSlots, ON_TIME, Schedule};
use crate::store;

/// Schedules handled per pass at most.
const SCHEDULES_PER_PASS: i64 = 100;

/// Slots one schedule fires per pass at most; the rest follow in the next pass.
const SLOTS_PER_FIRE: usize = 100;

/// Missed slots counted (for the log) at most.
const MISSED_COUNTED: usize = 1000;

pub(crate) struct Scheduler;

impl Service for Scheduler {
    const NAME: &'static str = "scheduler";
    const LEADER_ONLY: bool = true;

    async fn pass(&mut self, shared: &Shared) -> Result<Duration, Error> {
        let lease = shared.config.maintenance.leader_lease;
        let handled = fire_due(
            &shared.pool,
            &shared.config.id,
            Some(&shared.maintenance.holder),
            on_time_window(lease),
        )
        .await?;
        if handled as i64 >= SCHEDULES_PER_PASS {
            return Ok(Duration::ZERO);
        }
        let next = store::schedules::next_due_ms(&shared.pool).await?;
        Ok(until_due(
            next,
            shared.config.maintenance.schedule_max_interval,
        ))
    }

    /// A schedule added, changed or resumed anywhere wakes the leader's scheduler, which
    /// otherwise sleeps until the next slot is due.
    fn wake(shared: &Shared) -> Option<&Notify> {
        Some(&shared.scheduler_wake)
    }
}

/// How late a slot may be and still count as on time: [`ON_TIME`], or twice the leader's lease
/// when that is longer, so that a change of leader after a crash loses no slot.
pub(crate) fn on_time_window(leader_lease: Duration) -> chrono::TimeDelta {
    let twice = chrono::TimeDelta::from_std(leader_lease * 2).unwrap_or(ON_TIME);
    ON_TIME.max(twice)
}

/// Fires every due schedule (at most [`SCHEDULES_PER_PASS`]) and returns how many were due.
/// Safe to run from many places at once: each slot still enqueues one job. With `leader`, each
/// fire happens only while that holder's lease is current. One schedule that cannot be fired
/// does not hold up the others; the pass fails only if none could be.
pub(crate) async fn fire_due(
    pool: &PgPool,
    worker: &str,
    leader: Option<&str>,
    on_time: chrono::TimeDelta,
) -> Result<usize, Error> {
    let due = store::schedules::due(pool, SCHEDULES_PER_PASS).await?;
    let mut last_error = None;
    let mut fired = 0;
    for row in &due {
        match fire(pool, worker, row, leader, on_time).await {
            Ok(()) => fired += 1,
            Err(error) => {
                tracing::warn!(
                    worker,
                    schedule = %row.name,
                    %error,
                    "firing a cron schedule failed; will retry"
                );
                last_error = Some(error);
            }
        }
    }
    match last_error {
        Some(error) if fired == 0 => Err(error),
        _ => Ok(due.len()),
    }
}

/// The slots one pass fires for a schedule, and where its cursor goes next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Slots to fire, in order.
    pub(crate) fire: Vec<DateTime<Utc>>,
    /// Missed slots not fired (at most [`MISSED_COUNTED`]).
    pub(crate) skipped: usize,
    /// The new cursor: the first slot not handled by this plan.
    pub(crate) next: Option<DateTime<Utc>>,
}

/// Plans the fire of a schedule whose cursor is `cursor`, at database time `now`. Slots in
/// `[now - on_time, now]` (and not before the cursor) are on time and all fire; older slots from
/// the cursor on are missed: dropped, or under [`MissedSlots::RunOnce`] the latest of them fires
/// when no on-time slot does.
pub(crate) fn plan(
    cron: &CronSchedule,
    missed: MissedSlots,
    cursor: DateTime<Utc>,
    now: DateTime<Utc>,
    on_time: chrono::TimeDelta,
) -> Plan {
    let on_time_from = cursor.max(now - on_time);
    let mut fire = cron.slots(on_time_from, now, SLOTS_PER_FIRE);
    let next = match fire.last() {
        Some(&last) if fire.len() >= SLOTS_PER_FIRE => cron.next_after(last),
        _ => cron.next_after(now),
    };
    let mut skipped = 0;
    if cursor < on_time_from {
        let late = cron.slots(
            cursor,
            on_time_from - chrono::TimeDelta::nanoseconds(1),
            MISSED_COUNTED,
        );
        skipped = late.len();
        if missed == MissedSlots::RunOnce
            && fire.is_empty()
            && let Some(latest) = cron.previous_before(on_time_from).filter(|s| *s >= cursor)
        {
            fire.push(latest);
            skipped = skipped.saturating_sub(1);
        }
    }
    Plan {
        fire,
        skipped,
        next,
    }
}

async fn fire(
    pool: &PgPool,
    worker: &str,
    row: &store::schedules::Due,
    leader: Option<&str>,
    on_time: chrono::TimeDelta,
) -> Result<(), Error> {
    let cron = match CronSchedule::parse(&row.expression, &row.timezone) {
        Ok(cron) => cron,
        Err(error) => {
            // Only a row written around the client can be invalid; stop it from firing.
            tracing::error!(
                worker,
                schedule = %row.name,
                %error,
                "stored schedule is invalid; it will not fire until updated"
            );
            store::schedules::fire(pool, row, None, &[], leader).await?;
            return Ok(());
        }
    };
    let missed = MissedSlots::from_db(&row.missed);
    let plan = plan(&cron, missed, row.next_fire_at, row.now, on_time);
    let fired = store::schedules::fire(pool, row, plan.next, &plan.fire, leader).await?;
    if !fired.advanced {
        tracing::debug!(
            worker,
            schedule = %row.name,
            "schedule moved on, changed, or this worker lost the lead; nothing fired"
        );
        return Ok(());
    }
    if plan.skipped > 0 {
        tracing::warn!(
            worker,
            schedule = %row.name,
            skipped = plan.skipped,
            policy = missed.as_str(),
            "missed cron slots were not fired"
        );
    }
    tracing::info!(
        worker,
        schedule = %row.name,
        slots = ?plan.fire,
        jobs = ?fired.job_ids,
        next = ?plan.next,
        "fired cron schedule"
    );
    Ok(())
}

/// Stores the schedules declared with `#[job(cron = ...)]` by the kinds this worker runs.
pub(crate) async fn sync_declared(shared: &Arc<Shared>) -> Result<(), Error> {
    let now = store::schedules::now(&shared.pool).await?;
    let mut regs: Vec<_> = shared.handlers.values().copied().collect();
    regs.sort_by_key(|reg| reg.kind);
    regs.dedup_by_key(|reg| reg.kind);
    for reg in regs {
        let Some(schedule) = Schedule::declared(reg) else {
            continue;
        };
        let row = schedule.into_row(now, shared.config.max_payload_bytes)?;
        match store::schedules::upsert_declared(&shared.pool, &row).await? {
            Some(change) => {
                tracing::info!(
                    worker = %shared.config.id,
                    schedule = %row.name,
                    expression = %row.expression,
                    timezone = %row.timezone,
                    change,
                    "synced declared cron schedule"
                );
                // The leader may be another, sleeping worker; it looks within 30 s anyway.
                if let Err(error) = store::schedules::announce_change(&shared.pool).await {
                    tracing::warn!(
                        worker = %shared.config.id,
                        %error,
                        "could not announce the synced schedule"
                    );
                }
            }
            None => {
                let owner = store::schedules::get(&shared.pool, &row.name).await?;
                if owner.is_some_and(|s| !s.declared) {
                    tracing::warn!(
                        worker = %shared.config.id,
                        schedule = %row.name,
                        "the cron schedule declared on this job is not applied: a schedule \
                         added at run time has the same name; remove it (`remove_schedule`) \
                         to let the declaration take over"
                    );
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone};

    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + TimeDelta::seconds(s)
    }

    #[test]
    fn on_time_slots_all_fire() {
        let cron = CronSchedule::parse("*/10 * * * * *", "UTC").unwrap();
        let plan = plan(&cron, MissedSlots::Skip, at(10), at(35), ON_TIME);
        assert_eq!(plan.fire, [at(10), at(20), at(30)]);
        assert_eq!(plan.next, Some(at(40)));
        assert_eq!(plan.skipped, 0);
    }

    #[test]
    fn missed_slots_are_skipped_or_run_once() {
        let hourly = CronSchedule::parse("0 * * * *", "UTC").unwrap();
        // Down from 00:00 to 05:30: slots 01:00 .. 05:00 were missed.
        let skip = plan(
            &hourly,
            MissedSlots::Skip,
            at(3600),
            at(5 * 3600 + 1800),
            ON_TIME,
        );
        assert!(skip.fire.is_empty());
        assert_eq!(skip.skipped, 5);
        assert_eq!(skip.next, Some(at(6 * 3600)));
        let once = plan(
            &hourly,
            MissedSlots::RunOnce,
            at(3600),
            at(5 * 3600 + 1800),
            ON_TIME,
        );
        assert_eq!(once.fire, [at(5 * 3600)]);
        assert_eq!(once.skipped, 4);
        // An on-time slot stands in for the missed ones.
        let on_time = plan(
            &hourly,
            MissedSlots::RunOnce,
            at(3600),
            at(5 * 3600 + 30),
            ON_TIME,
        );
        assert_eq!(on_time.fire, [at(5 * 3600)]);
        assert_eq!(on_time.skipped, 4);
    }

    #[test]
    fn the_on_time_window_covers_a_change_of_leader() {
        assert_eq!(on_time_window(Duration::from_secs(15)), ON_TIME);
        assert_eq!(
            on_time_window(Duration::from_secs(90)),
            TimeDelta::seconds(180)
        );
    }

    #[test]
    fn a_long_backlog_is_bounded() {
        let cron = CronSchedule::parse("* * * * * *", "UTC").unwrap();
        let plan = plan(&cron, MissedSlots::Skip, at(0), at(86_400), ON_TIME);
        assert_eq!(plan.fire.len(), 61);
        assert_eq!(plan.skipped, MISSED_COUNTED);
        assert_eq!(plan.next, Some(at(86_401)));
    }
}
