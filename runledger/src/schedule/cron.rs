//! [`CronSchedule`]: a parsed cron expression in a time zone, and the computation of its slots.
//! The scheduler fires exactly the slots this file computes, so its DST behaviour is the
//! database firing path's.

use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use crate::error::ScheduleError;

/// What happens to slots that came due while no scheduler ran (every worker was down, or the
/// schedule's leader was being replaced for longer than a minute).
///
/// A slot is *on time* while it is at most 60 seconds old; on-time slots always fire. Older,
/// unfired slots are *missed*.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MissedSlots {
    /// Missed slots are dropped; the schedule goes on with its next slot. The default.
    #[default]
    Skip,
    /// If any slots were missed, one job is enqueued for the most recent of them (not one per
    /// missed slot), unless an on-time slot fires in the same pass and stands in for them.
    RunOnce,
}

impl MissedSlots {
    /// The name stored in the database: `"skip"` or `"run_once"`.
    pub fn as_str(self) -> &'static str {
        match self {
            MissedSlots::Skip => "skip",
            MissedSlots::RunOnce => "run_once",
        }
    }

    pub(crate) fn from_db(value: &str) -> Self {
        match value {
            "run_once" => MissedSlots::RunOnce,
            _ => MissedSlots::Skip,
        }
    }
}

/// The cron schedule of a job kind, declared with `#[job(cron = "...", tz = "...",
/// missed = "...")]`. Part of [`JobOptions`](crate::job::JobOptions); built in const context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CronOptions {
    /// The cron expression (5 fields, or 6 with seconds first).
    pub expression: &'static str,
    /// IANA time zone the expression is read in. Default `"UTC"`.
    pub timezone: &'static str,
    /// What happens to slots missed while no worker ran. Default [`MissedSlots::Skip`].
    pub missed: MissedSlots,
}

impl CronOptions {
    /// A schedule on `expression` in UTC that skips missed slots.
    pub const fn new(expression: &'static str) -> Self {
        Self {
            expression,
            timezone: "UTC",
            missed: MissedSlots::Skip,
        }
    }
    /// Sets the time zone.
    pub const fn timezone(mut self, timezone: &'static str) -> Self {
        self.timezone = timezone;
        self
    }
    /// Sets the missed-slot policy.
    pub const fn missed(mut self, missed: MissedSlots) -> Self {
        self.missed = missed;
        self
    }
}

/// A cron expression evaluated in an IANA time zone.
///
/// Expressions have five fields (`min hour day month weekday`) or six, with seconds first
/// (`sec min hour day month weekday`); `@hourly`-style nicknames, ranges, steps, names, `L`, `W`
/// and `#` are accepted. Day of month and day of week combine with OR, as in Vixie cron.
///
/// Slots are wall-clock times in the zone, which decides what happens on the days the clocks
/// change:
/// - a time that does not exist (skipped by a spring-forward gap) fires once, at the first
///   instant after the gap;
/// - a time that happens twice (repeated by a fall-back overlap) fires once, on its first
///   occurrence, for expressions that name a fixed hour and minute; expressions with a wildcard
///   or step in the seconds, minutes or hours field (`*/5 * * * *`) run through both passes of
///   the repeated hour, as wall-clock schedules that repeat within the hour should.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use runledger::schedule::CronSchedule;
///
/// let daily = CronSchedule::parse("30 1 * * *", "Europe/London").unwrap();
/// let from = Utc.with_ymd_and_hms(2026, 3, 28, 12, 0, 0).unwrap();
/// let until = Utc.with_ymd_and_hms(2026, 3, 30, 12, 0, 0).unwrap();
/// // 01:30 does not exist on 29 March 2026 in London; that day's slot is 02:00 BST (01:00 UTC).
/// let slots = daily.slots(from, until, 10);
/// assert_eq!(
///     slots,
///     [
///         Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap(),
///         Utc.with_ymd_and_hms(2026, 3, 30, 0, 30, 0).unwrap(),
///     ]
/// );
/// // 25 October 2026: 01:30 happens twice (BST, then GMT); the slot is the first, 00:30 UTC.
/// let from = Utc.with_ymd_and_hms(2026, 10, 24, 23, 0, 0).unwrap();
/// let until = Utc.with_ymd_and_hms(2026, 10, 25, 23, 59, 59).unwrap();
/// assert_eq!(
///     daily.slots(from, until, 10),
///     [Utc.with_ymd_and_hms(2026, 10, 25, 0, 30, 0).unwrap()]
/// );
/// ```
#[derive(Clone)]
pub struct CronSchedule {
    expression: String,
    zone: Tz,
    cron: Cron,
}

impl fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CronSchedule")
            .field("expression", &self.expression)
            .field("timezone", &self.zone.name())
            .finish()
    }
}

impl CronSchedule {
    /// Parses `expression` in the IANA time zone `timezone` (such as `"UTC"` or
    /// `"Europe/London"`). Fails with [`ScheduleError::InvalidCron`] or
    /// [`ScheduleError::InvalidTimezone`], naming the problem.
    pub fn parse(expression: &str, timezone: &str) -> Result<Self, ScheduleError> {
        let zone: Tz = timezone
            .parse()
            .map_err(|_| ScheduleError::InvalidTimezone {
                timezone: timezone.to_owned(),
            })?;
        let invalid = |reason: String| ScheduleError::InvalidCron {
            expression: expression.to_owned(),
            reason,
        };
        let cron = parser().parse(expression).map_err(|e| {
            invalid(format!(
                "{}; write 5 fields (`min hour day month weekday`) or 6 with seconds first, \
                 such as `0 */5 * * * *`",
                e.to_string().trim_end_matches('.')
            ))
        })?;
        let schedule = CronSchedule {
            expression: expression.to_owned(),
            zone,
            cron,
        };
        // A fixed reference, not the clock: whether an expression can match depends only on
        // the calendar (it has no year field), and the check must not read the worker's clock.
        let reference = DateTime::<Utc>::from_timestamp(946_684_800, 0).unwrap_or_default();
        if schedule.next_after(reference).is_none() {
            return Err(invalid(
                "it matches no date (check the day of month against the month, such as \
                 30 February)"
                    .into(),
            ));
        }
        Ok(schedule)
    }

    /// The expression as given.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The time zone's IANA name.
    pub fn timezone(&self) -> &'static str {
        self.zone.name()
    }

    /// The first slot strictly after `after`, or `None` if there is none in the coming years.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.find(after, false)
    }

    /// The first slot at `from` or after it.
    pub fn first_from(&self, from: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.find(from, true)
    }

    /// The last slot strictly before `before`.
    pub fn previous_before(&self, before: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // A sub-second instant is after its whole second, which is then a candidate.
        let inclusive = before.timestamp_subsec_nanos() != 0;
        let local = DateTime::from_timestamp(before.timestamp(), 0)?.with_timezone(&self.zone);
        let found = self.cron.find_previous_occurrence(&local, inclusive).ok()?;
        Some(found.with_timezone(&Utc))
    }

    /// The slots `s` with `from <= s <= until`, in order, at most `limit` of them.
    pub fn slots(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut slots = Vec::new();
        let mut next = self.first_from(from);
        while let Some(slot) = next {
            if slot > until || slots.len() >= limit {
                break;
            }
            slots.push(slot);
            next = self.next_after(slot);
        }
        slots
    }

    fn find(&self, at: DateTime<Utc>, inclusive: bool) -> Option<DateTime<Utc>> {
        // Slots are whole seconds: a sub-second start is rounded up (inclusive) or down.
        let whole = at.timestamp();
        let (start, inclusive) = match at.timestamp_subsec_nanos() {
            0 => (whole, inclusive),
            _ if inclusive => (whole + 1, true),
            _ => (whole, false),
        };
        let local = DateTime::from_timestamp(start, 0)?.with_timezone(&self.zone);
        let found = self.cron.find_next_occurrence(&local, inclusive).ok()?;
        Some(found.with_timezone(&Utc))
    }
}

/// Slots at most this far back still fire on time; older ones are missed (see
/// [`MissedSlots`](super::MissedSlots)).
pub(crate) const ON_TIME: TimeDelta = TimeDelta::seconds(60);

/// The parser every expression goes through (the `#[job]` macro uses the same settings): five
/// or six fields, no year field, day of month OR day of week.
fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn daily_slot_fires_once_on_both_dst_days_in_london() {
        let daily = CronSchedule::parse("0 30 1 * * *", "Europe/London").unwrap();
        // Spring forward: 01:00 GMT becomes 02:00 BST, so 01:30 does not exist.
        let spring = daily.slots(utc(2026, 3, 29, 0, 0, 0), utc(2026, 3, 29, 23, 59, 59), 10);
        assert_eq!(spring, [utc(2026, 3, 29, 1, 0, 0)], "gap day");
        // Fall back: 02:00 BST becomes 01:00 GMT, so 01:30 happens twice.
        let autumn = daily.slots(
            utc(2026, 10, 24, 23, 0, 0),
            utc(2026, 10, 25, 23, 59, 59),
            10,
        );
        assert_eq!(autumn, [utc(2026, 10, 25, 0, 30, 0)], "overlap day");
        // Ordinary days around them: 01:30 local each day.
        let week = daily.slots(utc(2026, 3, 26, 0, 0, 0), utc(2026, 4, 1, 0, 0, 0), 10);
        assert_eq!(
            week,
            [
                utc(2026, 3, 26, 1, 30, 0),
                utc(2026, 3, 27, 1, 30, 0),
                utc(2026, 3, 28, 1, 30, 0),
                utc(2026, 3, 29, 1, 0, 0),
                utc(2026, 3, 30, 0, 30, 0),
                utc(2026, 3, 31, 0, 30, 0),
            ]
        );
    }

    #[test]
    fn seconds_field_and_bounds() {
        let every_second = CronSchedule::parse("* * * * * *", "UTC").unwrap();
        let from = utc(2026, 1, 1, 0, 0, 0);
        let slots = every_second.slots(from, from + TimeDelta::seconds(4), 100);
        assert_eq!(slots.len(), 5);
        assert_eq!(
            every_second
                .slots(from, from + TimeDelta::hours(1), 10)
                .len(),
            10
        );
        let half = from + TimeDelta::milliseconds(500);
        assert_eq!(
            every_second.first_from(half),
            Some(from + TimeDelta::seconds(1))
        );
        assert_eq!(
            every_second.next_after(half),
            Some(from + TimeDelta::seconds(1))
        );
        assert_eq!(every_second.previous_before(half), Some(from));
        let five = CronSchedule::parse("*/5 * * * *", "UTC").unwrap();
        assert_eq!(five.next_after(from), Some(utc(2026, 1, 1, 0, 5, 0)));
    }

    #[test]
    fn rejects_bad_expressions_and_zones() {
        for bad in [
            "",
            "* * *",
            "61 * * * *",
            "* * * * * * * *",
            "0 0 30 2 *",
            "every day",
        ] {
            let error = CronSchedule::parse(bad, "UTC").unwrap_err();
            assert!(
                matches!(error, ScheduleError::InvalidCron { .. }),
                "{bad:?}: {error}"
            );
        }
        let error = CronSchedule::parse("* * * * *", "Mars/Olympus").unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown time zone `Mars/Olympus`; use an IANA name such as `UTC` or `Europe/London`"
        );
    }
}
