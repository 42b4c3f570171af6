//! Queues, workers, events, schedules, "why is this stuck", and the checks of `doctor`.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::api::{Admin, REDACTED};
use crate::error::Error;
use crate::ids::JobId;
use crate::job::JobState;
use crate::maintenance::registrar::LIVE;
use crate::schedule::ScheduleInfo;
use crate::store::{self, ops};

/// How long finished jobs count in a queue report.
const FINISHED_WINDOW_S: f64 = 3600.0;

/// One queue: its jobs by state, and how long its oldest available job has been due.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct QueueReport {
    /// The queue's name.
    pub queue: String,
    /// Unfinished jobs by state (`available`, `running`, `scheduled`, `retryable`, `waiting`).
    pub pending: BTreeMap<String, i64>,
    /// Jobs finished in the last hour by state (`completed`, `failed`, `cancelled`, `diverged`).
    pub finished_last_hour: BTreeMap<String, i64>,
    /// Seconds since its oldest available job was due (0 when none waits).
    pub oldest_available_s: f64,
}

/// Jobs that finished in one minute, by state.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ThroughputPoint {
    /// The minute.
    pub minute: DateTime<Utc>,
    /// Jobs finished in it, by state.
    pub finished: BTreeMap<String, i64>,
}

/// A worker that registered (and has not been forgotten: gone after 90 s of silence).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct WorkerInfo {
    /// The worker's id.
    pub id: String,
    /// This run of it (id and a token).
    pub instance: String,
    /// The queues it works.
    pub queues: Vec<String>,
    /// The kinds it has handlers for.
    pub kinds: Vec<String>,
    /// Its machine.
    pub host: Option<String>,
    /// Its process id.
    pub pid: Option<i32>,
    /// Its runledger version.
    pub version: Option<String>,
    /// Jobs it runs at once at most.
    pub concurrency: Option<i32>,
    /// Jobs it holds leases on now.
    pub running: i64,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it last refreshed its record (every 30 s).
    pub seen_at: DateTime<Utc>,
    /// Whether it refreshed within the last 90 s.
    pub live: bool,
    /// Whether it holds the maintenance leadership (it runs the stager, rescuer, scheduler).
    pub leader: bool,
}

/// An emitted event.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct EventRecord {
    /// The event's name.
    pub name: String,
    /// Its routing key.
    pub key: String,
    /// Its payload ([`REDACTED`] when shown with a sensitive job).
    pub payload: serde_json::Value,
    /// When it was emitted.
    pub emitted_at: DateTime<Utc>,
}

impl EventRecord {
    pub(crate) fn from_row(row: ops::EventListRow, redact: bool) -> Self {
        EventRecord {
            name: row.name,
            key: row.key,
            payload: if redact {
                serde_json::Value::String(REDACTED.into())
            } else {
                row.payload
            },
            emitted_at: row.emitted_at,
        }
    }
}

/// Why a job is not moving.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Stuck {
    /// Available, but no live worker serves its queue and kind.
    NoWorker {
        /// Its queue.
        queue: String,
        /// Its kind.
        kind: String,
        /// Whether any worker ever recorded a handler for the kind.
        kind_known: bool,
    },
    /// Available for a while although live workers serve it: they are busy (or paused).
    Backlog {
        /// How long it has been due, in seconds.
        due_for_s: i64,
    },
    /// Running, but its lease ran out: its worker crashed, hung or was cut off. The
    /// maintenance leader's rescuer makes it available again (or fails it).
    LeaseExpired {
        /// The worker that held it.
        worker: Option<String>,
        /// When the lease ran out.
        at: DateTime<Utc>,
        /// Whether a worker holds the maintenance leadership now.
        leader_present: bool,
    },
    /// Running and asked to stop; its handler has not returned yet.
    Stopping,
    /// Due, but not made available: the stager runs on the maintenance leader.
    Overdue {
        /// How long it has been due, in seconds.
        due_for_s: i64,
        /// Whether a worker holds the maintenance leadership now.
        leader_present: bool,
    },
    /// A durable job sleeping.
    Sleeping {
        /// When it wakes.
        until: DateTime<Utc>,
    },
    /// A durable job waiting for an event.
    WaitingForEvent {
        /// The event's name.
        name: String,
        /// Its key.
        key: String,
        /// When the job started waiting.
        since: Option<DateTime<Utc>>,
    },
    /// A durable job waiting for a child job to finish.
    WaitingForChild {
        /// The child.
        child: JobId,
        /// The child's state (`None`: it no longer exists).
        state: Option<JobState>,
    },
    /// A durable job whose journal was recorded by a version of its code no live worker can
    /// resume.
    AwaitingVersion {
        /// Its kind.
        kind: String,
        /// The version that recorded the journal.
        version: i64,
    },
}

impl fmt::Display for Stuck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stuck::NoWorker {
                queue,
                kind,
                kind_known,
            } => {
                write!(f, "no live worker serves kind `{kind}` on queue `{queue}`")?;
                if !kind_known {
                    write!(
                        f,
                        " (no worker has ever registered a handler for it: is the kind spelled as in the code, or was it renamed without an alias?)"
                    )?;
                }
                Ok(())
            }
            Stuck::Backlog { due_for_s } => write!(
                f,
                "due for {due_for_s} s while workers serve it: they are busy with older or \
                 higher-priority jobs (add workers or concurrency)"
            ),
            Stuck::LeaseExpired {
                worker,
                at,
                leader_present,
            } => {
                write!(
                    f,
                    "lease expired at {at} (worker {} stopped renewing it)",
                    worker.as_deref().unwrap_or("?")
                )?;
                if *leader_present {
                    write!(f, "; the maintenance leader's rescuer will release it")
                } else {
                    write!(
                        f,
                        "; no worker holds the maintenance leadership, so nothing rescues it until one runs"
                    )
                }
            }
            Stuck::Stopping => write!(f, "asked to stop; its handler has not returned yet"),
            Stuck::Overdue {
                due_for_s,
                leader_present,
            } => {
                write!(f, "due for {due_for_s} s but not made available")?;
                if *leader_present {
                    write!(f, "; the maintenance leader's stager is behind")
                } else {
                    write!(
                        f,
                        "; no worker holds the maintenance leadership (the stager runs there): start a worker"
                    )
                }
            }
            Stuck::Sleeping { until } => write!(f, "sleeping until {until}"),
            Stuck::WaitingForEvent { name, key, since } => {
                write!(f, "waiting for event `{name}` with key `{key}`")?;
                if let Some(since) = since {
                    write!(f, " since {since}")?;
                }
                Ok(())
            }
            Stuck::WaitingForChild { child, state } => match state {
                Some(state) => write!(f, "waiting for child job {child} ({state})"),
                None => write!(f, "waiting for child job {child}, which no longer exists"),
            },
            Stuck::AwaitingVersion { kind, version } => write!(
                f,
                "its journal was recorded by version {version} of `{kind}`, which no live \
                 worker resumes: deploy code declaring `resumes = [{version}]`"
            ),
        }
    }
}

/// How serious a finding of [`Admin::doctor`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckLevel {
    /// All is well.
    Ok,
    /// Worth a look.
    Warning,
    /// Something is broken or will be.
    Problem,
}

/// One finding of [`Admin::doctor`].
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Check {
    /// What was checked (`schema`, `workers`, `leader`, `stuck`, `kinds`, `bloat`, `settings`).
    pub name: &'static str,
    /// The verdict.
    pub level: CheckLevel,
    /// What was found, and what to do about it.
    pub message: String,
}

/// What [`Admin::doctor`] found.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct DoctorReport {
    /// Each check.
    pub checks: Vec<Check>,
}

impl DoctorReport {
    /// The worst level found.
    pub fn worst(&self) -> CheckLevel {
        self.checks
            .iter()
            .map(|c| c.level)
            .max()
            .unwrap_or(CheckLevel::Ok)
    }
}

/// The number of the latest migration this version of runledger ships.
pub(crate) fn latest_migration() -> i64 {
    sqlx::migrate!("../migrations")
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap_or(0)
}

impl Admin {
    /// Every queue with unfinished jobs or jobs finished in the last hour.
    pub async fn queues(&self) -> Result<Vec<QueueReport>, Error> {
        let mut queues: BTreeMap<String, QueueReport> = BTreeMap::new();
        for row in ops::queue_counts(self.pool(), FINISHED_WINDOW_S).await? {
            let q = queues
                .entry(row.queue.clone())
                .or_insert_with(|| QueueReport {
                    queue: row.queue.clone(),
                    ..QueueReport::default()
                });
            let finished = JobState::parse(&row.state).is_ok_and(JobState::is_finished);
            let counts = if finished {
                &mut q.finished_last_hour
            } else {
                &mut q.pending
            };
            *counts.entry(row.state).or_default() += row.jobs;
        }
        for row in ops::oldest_available(self.pool()).await? {
            if let Some(q) = queues.get_mut(&row.queue) {
                q.oldest_available_s = row.oldest_s;
            }
        }
        Ok(queues.into_values().collect())
    }

    /// Jobs finished per minute over the last `minutes` minutes (at most a day), oldest first.
    pub async fn throughput(&self, minutes: u32) -> Result<Vec<ThroughputPoint>, Error> {
        let minutes = minutes.clamp(1, 1440) as i32;
        let mut points: Vec<ThroughputPoint> = Vec::new();
        for row in ops::throughput(self.pool(), minutes).await? {
            match points.last_mut() {
                Some(p) if p.minute == row.minute => {
                    p.finished.insert(row.state, row.jobs);
                }
                _ => points.push(ThroughputPoint {
                    minute: row.minute,
                    finished: BTreeMap::from([(row.state, row.jobs)]),
                }),
            }
        }
        Ok(points)
    }

    /// The workers that registered and have not been forgotten.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>, Error> {
        Ok(ops::workers(self.pool())
            .await?
            .into_iter()
            .map(|w| WorkerInfo {
                id: w.worker,
                instance: w.holder,
                queues: w.queues,
                kinds: w.kinds,
                host: w.host,
                pid: w.pid,
                version: w.version,
                concurrency: w.concurrency,
                running: w.running,
                started_at: w.started_at,
                seen_at: w.seen_at,
                live: w.silent_s < LIVE.as_secs_f64(),
                leader: w.leader,
            })
            .collect())
    }

    /// Emitted events, newest first, `name`'s only when given; `before` is the last event of
    /// the previous page.
    pub async fn events(
        &self,
        name: Option<&str>,
        before: Option<&EventRecord>,
        limit: u32,
    ) -> Result<Vec<EventRecord>, Error> {
        let before = before.map(|e| (e.emitted_at, e.name.clone(), e.key.clone()));
        Ok(
            ops::list_events(self.pool(), name, before, i64::from(limit.clamp(1, 500)))
                .await?
                .into_iter()
                .map(|e| EventRecord::from_row(e, false))
                .collect(),
        )
    }

    /// Emits event `name` with `key` and a JSON `payload`, waking the durable jobs waiting for
    /// it (the typed form is [`Runledger::emit`](crate::Runledger::emit)). Returns whether this
    /// emission was the first for (`name`, `key`); a later one changes nothing.
    pub async fn emit_event(
        &self,
        name: &str,
        key: &str,
        payload: &serde_json::Value,
    ) -> Result<bool, Error> {
        crate::validate::name("event", name)?;
        if key.is_empty() {
            return Err(Error::InvalidInput("an event needs a key".to_owned()));
        }
        crate::validate::text("the event key", key)?;
        let text = serde_json::to_string(payload)
            .map_err(|e| Error::json(format!("event `{name}` does not serialize"), e))?;
        crate::validate::json_value(&format!("event `{name}`"), &text)?;
        store::durable::emit(self.pool(), name, key, &text).await
    }

    /// Every schedule.
    pub async fn schedules(&self) -> Result<Vec<ScheduleInfo>, Error> {
        self.client.schedules().await
    }

    /// Pauses schedule `name`.
    pub async fn pause_schedule(&self, name: &str) -> Result<(), Error> {
        self.client.pause_schedule(name).await
    }

    /// Resumes schedule `name`.
    pub async fn resume_schedule(&self, name: &str) -> Result<(), Error> {
        self.client.resume_schedule(name).await
    }

    /// Enqueues one job from schedule `name`'s template now, outside its cron slots (a paused
    /// schedule too). Returns the job's id.
    pub async fn trigger_schedule(&self, name: &str) -> Result<JobId, Error> {
        ops::trigger_schedule(self.pool(), name)
            .await?
            .map(JobId)
            .ok_or_else(|| Error::InvalidInput(format!("there is no schedule named `{name}`")))
    }

    /// Checks the database and the fleet: schema version, workers and leader, stuck work, kinds
    /// no worker knows, table bloat, server settings.
    pub async fn doctor(&self) -> Result<DoctorReport, Error> {
        let pool = self.pool();
        let mut checks = Vec::new();
        let mut check = |name, level, message: String| {
            checks.push(Check {
                name,
                level,
                message,
            })
        };
        let shipped = latest_migration();
        match ops::schema_version(pool).await {
            Ok(Some((version, true))) if version == shipped => check(
                "schema",
                CheckLevel::Ok,
                format!("migrations applied up to {version}, the latest this version ships"),
            ),
            Ok(Some((version, true))) if version > shipped => check(
                "schema",
                CheckLevel::Warning,
                format!(
                    "migrations applied up to {version}, newer than this version's {shipped}: \
                     this tool is older than the workers"
                ),
            ),
            Ok(Some((version, true))) => check(
                "schema",
                CheckLevel::Problem,
                format!(
                    "migrations applied up to {version}, this version ships {shipped}: run \
                     `runledger migrate`"
                ),
            ),
            Ok(Some((version, false))) => check(
                "schema",
                CheckLevel::Problem,
                format!(
                    "migration {version} is recorded as failed: see runledger.schema_migrations"
                ),
            ),
            Ok(None) => check(
                "schema",
                CheckLevel::Problem,
                "no runledger schema: run `runledger migrate`".to_owned(),
            ),
            Err(error) => check(
                "schema",
                CheckLevel::Problem,
                format!(
                    "could not read runledger.schema_migrations ({error}): run `runledger \
                     migrate` if the schema is missing, or check the role's privileges"
                ),
            ),
        }
        let workers = self.workers().await?;
        let live = workers.iter().filter(|w| w.live).count();
        check(
            "workers",
            if live == 0 {
                CheckLevel::Warning
            } else {
                CheckLevel::Ok
            },
            format!("{live} live worker(s), {} registered", workers.len()),
        );
        match self.client.maintenance_leader().await? {
            Some(leader) => check(
                "leader",
                CheckLevel::Ok,
                format!("maintenance leader: {}", leader.worker),
            ),
            None => check(
                "leader",
                CheckLevel::Warning,
                "no maintenance leader: scheduled jobs, retries, expired leases and cron wait \
                 until a worker runs"
                    .to_owned(),
            ),
        }
        let unclaimed = self
            .client
            .unclaimed_kinds(std::time::Duration::from_secs(60))
            .await?;
        for u in &unclaimed {
            check(
                "stuck",
                CheckLevel::Problem,
                format!(
                    "{} available `{}` job(s) on queue `{}` waiting since {}: no live worker serves them",
                    u.jobs, u.kind, u.queue, u.waiting_since
                ),
            );
        }
        let expired = ops::expired_leases(pool, 60.0).await?;
        if !expired.is_empty() {
            check(
                "stuck",
                CheckLevel::Problem,
                format!(
                    "{} running job(s) with a lease expired over a minute ago (first: {}): the \
                     rescuer runs on the maintenance leader",
                    expired.len(),
                    expired[0]
                ),
            );
        }
        let overdue = ops::overdue(pool, 60.0).await?;
        if !overdue.is_empty() {
            check(
                "stuck",
                CheckLevel::Problem,
                format!(
                    "{} job(s) due over a minute ago and not made available (first: {}): the \
                     stager runs on the maintenance leader",
                    overdue.len(),
                    overdue[0]
                ),
            );
        }
        if unclaimed.is_empty() && expired.is_empty() && overdue.is_empty() {
            check("stuck", CheckLevel::Ok, "nothing stuck".to_owned());
        }
        let unknown = ops::unknown_kinds(pool).await?;
        if unknown.is_empty() {
            check(
                "kinds",
                CheckLevel::Ok,
                "every pending job's kind has a handler in some worker".to_owned(),
            );
        }
        for (kind, jobs) in unknown {
            check(
                "kinds",
                CheckLevel::Warning,
                format!(
                    "{jobs} pending job(s) of kind `{kind}`, which no worker has registered a \
                     handler for"
                ),
            );
        }
        for t in store::vacuum::health(pool).await? {
            let ratio = t.dead as f64 / (t.live + t.dead).max(1) as f64;
            let level = if t.dead > 100_000 && ratio > 0.5 {
                CheckLevel::Problem
            } else if t.dead > 10_000 && ratio > 0.2 {
                CheckLevel::Warning
            } else {
                CheckLevel::Ok
            };
            check(
                "bloat",
                level,
                format!(
                    "{}: {} live, {} dead rows ({:.0}% dead)",
                    t.table_name,
                    t.live,
                    t.dead,
                    ratio * 100.0
                ),
            );
        }
        for s in ops::settings(pool).await? {
            let (level, advice) = match (s.name.as_str(), s.setting.as_str()) {
                ("autovacuum", "off") => (
                    CheckLevel::Problem,
                    ": a queue table bloats without vacuum; turn it on",
                ),
                ("track_counts", "off") => {
                    (CheckLevel::Problem, ": autovacuum cannot work without it")
                }
                ("idle_in_transaction_session_timeout", "0") => (
                    CheckLevel::Ok,
                    " (an idle open transaction holds back vacuum; consider a limit)",
                ),
                _ => (CheckLevel::Ok, ""),
            };
            check(
                "settings",
                level,
                format!("{} = {}{advice}", s.name, s.setting),
            );
        }
        if let Some(age) = ops::oldest_transaction_s(pool).await?
            && age > 300.0
        {
            check(
                "settings",
                CheckLevel::Warning,
                format!(
                    "a transaction has been open for {age:.0} s: it holds back vacuum of the \
                     queue tables"
                ),
            );
        }
        Ok(DoctorReport { checks })
    }
}
