//! Jobs for operators: lists, details with history, and the actions on them.

use chrono::{DateTime, Datelike, TimeDelta, Utc};
use serde::Serialize;

use super::api::{Admin, MAX_BULK, Page, PageRequest, REDACTED};
use super::system::{EventRecord, Stuck};
use crate::durable::JournalEntry;
use crate::error::Error;
use crate::ids::{JobId, RunId};
use crate::job::{CancelOutcome, JobState};
use crate::store::{self, ops};

/// Which jobs a list or a bulk action is about. Every part narrows; an empty filter matches
/// every job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobFilter {
    /// Only these jobs.
    pub ids: Vec<JobId>,
    /// Only jobs in one of these states.
    pub states: Vec<JobState>,
    /// Only jobs of one of these kinds.
    pub kinds: Vec<String>,
    /// Only jobs in one of these queues.
    pub queues: Vec<String>,
    /// Only jobs created at or after this time.
    pub created_after: Option<DateTime<Utc>>,
    /// Only jobs created before this time.
    pub created_before: Option<DateTime<Utc>>,
    /// Only jobs whose recorded errors contain this text (case-insensitive). Without
    /// [`states`](Self::states), only jobs that failed, were cancelled or diverged are searched
    /// (their own index leads to them; the rest of the table is not read); name the states to
    /// search others, such as `retryable`.
    pub error_contains: Option<String>,
    /// Only the step jobs of this workflow run.
    pub run: Option<RunId>,
    /// Only the children of this durable job.
    pub parent: Option<JobId>,
}

impl JobFilter {
    /// Matches every job.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds job `id` to the ids matched.
    pub fn id(mut self, id: JobId) -> Self {
        self.ids.push(id);
        self
    }

    /// Adds `state` to the states matched.
    pub fn state(mut self, state: JobState) -> Self {
        self.states.push(state);
        self
    }

    /// Adds `kind` to the kinds matched.
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kinds.push(kind.into());
        self
    }

    /// Adds `queue` to the queues matched.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queues.push(queue.into());
        self
    }

    /// Only jobs created at or after `at`.
    pub fn created_after(mut self, at: DateTime<Utc>) -> Self {
        self.created_after = Some(at);
        self
    }

    /// Only jobs created before `at`.
    pub fn created_before(mut self, at: DateTime<Utc>) -> Self {
        self.created_before = Some(at);
        self
    }

    /// Only jobs whose errors contain `text`.
    pub fn error_contains(mut self, text: impl Into<String>) -> Self {
        self.error_contains = Some(text.into()).filter(|t: &String| !t.is_empty());
        self
    }

    /// Only the step jobs of run `run`.
    pub fn run(mut self, run: RunId) -> Self {
        self.run = Some(run);
        self
    }

    /// Only the children of durable job `parent`.
    pub fn parent(mut self, parent: JobId) -> Self {
        self.parent = Some(parent);
        self
    }

    pub(crate) fn query(&self, before_id: Option<i64>) -> ops::JobQuery {
        ops::JobQuery {
            ids: self.ids.iter().map(|id| id.0).collect(),
            states: if self.states.is_empty() && self.error_contains.is_some() {
                [JobState::Failed, JobState::Cancelled, JobState::Diverged]
                    .iter()
                    .map(|s| s.as_str().to_owned())
                    .collect()
            } else {
                self.states.iter().map(|s| s.as_str().to_owned()).collect()
            },
            kinds: self.kinds.clone(),
            queues: self.queues.clone(),
            created_after: self.created_after,
            created_before: self.created_before,
            error_contains: self.error_contains.clone(),
            run: self.run.map(|r| r.0),
            parent: self.parent.map(|p| p.0),
            before_id,
            after_id: None,
        }
    }
}

/// A job as a list shows it: no arguments or output, the last error only (cut at 500 bytes).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct JobSummary {
    /// The job's id.
    pub id: JobId,
    /// Its kind.
    pub kind: String,
    /// Its queue.
    pub queue: String,
    /// Its state.
    pub state: JobState,
    /// Its priority (higher runs first).
    pub priority: i16,
    /// Attempts started so far.
    pub attempt: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// When it is (or was) due.
    pub run_at: DateTime<Utc>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When its latest attempt started.
    pub attempted_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// The error of its latest failed attempt.
    pub last_error: Option<String>,
    /// The workflow run it is a step of.
    pub run_id: Option<RunId>,
    /// The step of that run.
    pub step: Option<String>,
    /// The durable job that spawned it.
    pub parent_id: Option<JobId>,
    /// For a waiting durable job: what wakes it (a JSON array of conditions).
    pub waiting_for: Option<serde_json::Value>,
}

impl JobSummary {
    pub(crate) fn from_row(row: ops::JobSummaryRow) -> Self {
        JobSummary {
            id: JobId(row.id),
            kind: row.kind,
            queue: row.queue,
            state: JobState::parse(&row.state).unwrap_or(JobState::Failed),
            priority: row.priority,
            attempt: row.attempt,
            max_attempts: row.max_attempts,
            run_at: row.run_at,
            created_at: row.created_at,
            attempted_at: row.attempted_at,
            finished_at: row.finished_at,
            last_error: row.last_error,
            run_id: row.run_id.map(RunId),
            step: row.step,
            parent_id: row.parent_id.map(JobId),
            waiting_for: row.waiting_for,
        }
    }
}

/// One attempt of a job, as its history records it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct AttemptRecord {
    /// The attempt's number (from 1).
    pub attempt: i32,
    /// The worker that ran it.
    pub worker: Option<String>,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// How it ended: `completed`, `retried`, `failed`, `cancelled`, `snoozed`, `released`
    /// (handed back at shutdown), `suspended` (a durable job waits), `diverged` or
    /// `lease_expired` (its worker stopped renewing the lease); `running` for an attempt that
    /// has not ended.
    pub outcome: String,
    /// The kind of error, for an attempt that failed: `error` (the handler returned one to
    /// retry), `fatal`, `panic`, `timeout`, `cancelled`, `diverged`, `output` (an output that
    /// cannot be stored), `journal`, `no_handler`, `unstorable` or `lease_expired`.
    pub error_kind: Option<String>,
    /// The error's text, from the job's errors.
    #[serde(default)]
    pub error: Option<String>,
}

impl AttemptRecord {
    /// How long the attempt ran.
    pub fn duration(&self) -> Option<chrono::TimeDelta> {
        Some(self.finished_at? - self.started_at?)
    }
}

/// Everything about one job. Arguments and output of a sensitive kind hold [`REDACTED`].
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct JobDetail {
    /// The job as a list shows it.
    #[serde(flatten)]
    pub summary: JobSummary,
    /// Its arguments.
    pub args: serde_json::Value,
    /// Its output, once completed.
    pub output: Option<serde_json::Value>,
    /// Whether the kind is sensitive (arguments and output hidden).
    pub sensitive: bool,
    /// The errors of its attempts (the last 32), oldest first: `{"attempt", "at", "error"}`.
    pub errors: Vec<serde_json::Value>,
    /// Its attempts, oldest first, each with its error's text: the last 32 that did not finish
    /// the job, and the latest.
    pub attempts: Vec<AttemptRecord>,
    /// A durable job's journal.
    pub journal: Vec<JournalEntry>,
    /// The jobs it spawned.
    pub children: Vec<JobSummary>,
    /// The events its waits name that have been emitted.
    pub events: Vec<EventRecord>,
    /// A durable job's latest progress report.
    pub progress: Option<serde_json::Value>,
    /// Its unique key.
    pub unique_key: Option<String>,
    /// Its attempt's time limit, in milliseconds.
    pub timeout_ms: Option<i64>,
    /// For a running job: when its lease runs out.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// For a running job: the worker that holds it.
    pub attempted_by: Option<String>,
    /// Whether a cancel was asked for while it ran.
    pub cancel_requested: bool,
    /// Why it is not moving, when it looks stuck.
    pub stuck: Vec<Stuck>,
}

/// The kinds recorded as sensitive in the database.
pub(crate) struct SensitiveKinds(Vec<String>);

impl SensitiveKinds {
    /// Whether `kind` is sensitive: declared so in this binary, or recorded so by a worker.
    pub(crate) fn is(&self, kind: &str) -> bool {
        crate::registry::is_sensitive(kind) || self.0.iter().any(|k| k == kind)
    }
}

/// The latest attempt as the job's row holds it: number, worker, start, end and state.
struct Latest<'a> {
    attempt: i32,
    worker: Option<&'a str>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    state: JobState,
}

/// The attempts of a job: those in `history` (the ones that did not finish it), then the
/// latest one from the row itself when the history does not hold it; each with its error's
/// text (and, for the latest, kind) from `errors`.
fn attempts(
    history: serde_json::Value,
    errors: &[serde_json::Value],
    latest: Latest<'_>,
) -> Vec<AttemptRecord> {
    let mut list: Vec<AttemptRecord> = match history {
        serde_json::Value::Array(entries) => entries
            .into_iter()
            .filter_map(|entry| serde_json::from_value::<AttemptRecord>(entry).ok())
            .collect(),
        _ => Vec::new(),
    };
    let error_of = |attempt: i32| {
        errors
            .iter()
            .rev()
            .find(|e| e.get("attempt").and_then(|n| n.as_i64()) == Some(i64::from(attempt)))
    };
    let recorded = list.last().is_some_and(|a| a.attempt == latest.attempt);
    let ended = latest.state.is_finished();
    if latest.attempt > 0 && !recorded && (ended || latest.state == JobState::Running) {
        let error = error_of(latest.attempt);
        list.push(AttemptRecord {
            attempt: latest.attempt,
            worker: latest.worker.map(str::to_owned),
            started_at: latest.started_at,
            finished_at: if ended { latest.finished_at } else { None },
            outcome: latest.state.as_str().to_owned(),
            error_kind: error.and_then(|e| e.get("kind")?.as_str().map(str::to_owned)),
            error: None,
        });
    }
    for a in &mut list {
        a.error = error_of(a.attempt).and_then(|e| e.get("error")?.as_str().map(str::to_owned));
    }
    list
}

impl Admin {
    /// Jobs matching `filter`, newest first.
    ///
    /// A filter that no index narrows (no state, or `completed` or `available` among them,
    /// with a kind, a queue, a time range...) looks through at most 100,000 ids per page, so
    /// that a filter on a rare kind costs the same over ten million jobs as over one: such a
    /// page may hold fewer jobs than asked, or none, while [`Page::next`] still says where the
    /// older ones continue.
    pub async fn jobs(
        &self,
        filter: &JobFilter,
        page: PageRequest,
    ) -> Result<Page<JobSummary>, Error> {
        let limit = page.limit();
        let (rows, floor) = ops::list_jobs(self.pool(), &filter.query(page.after), limit).await?;
        let mut page = Page::of(
            rows.into_iter().map(JobSummary::from_row).collect(),
            limit,
            |j| j.id.0,
        );
        if page.next.is_none() {
            // A short page of a window: older jobs were not looked at yet.
            page.next = floor.map(|f| f.saturating_add(1));
        }
        Ok(page)
    }

    /// Whether kind `kind` is sensitive: declared so in this binary, or recorded so by a worker.
    pub async fn is_sensitive(&self, kind: &str) -> Result<bool, Error> {
        Ok(self.sensitive_kinds().await?.is(kind))
    }

    /// The kinds workers recorded as sensitive, read once for many checks.
    pub(crate) async fn sensitive_kinds(&self) -> Result<SensitiveKinds, Error> {
        Ok(SensitiveKinds(
            ops::kinds(self.pool())
                .await?
                .into_iter()
                .filter(|k| k.sensitive)
                .map(|k| k.kind)
                .collect(),
        ))
    }

    /// Everything about job `id`, or `None` when there is no such job.
    pub async fn job(&self, id: JobId) -> Result<Option<JobDetail>, Error> {
        let pool = self.pool();
        let Some(row) = store::jobs::get(pool, id.0).await? else {
            return Ok(None);
        };
        let Some(extra) = ops::job_extra(pool, id.0).await? else {
            return Ok(None);
        };
        let sensitive = self.is_sensitive(&row.kind).await?;
        let errors = match row.errors {
            serde_json::Value::Array(items) => items,
            other => vec![other],
        };
        let journal = self.client.journal(id).await?;
        let children = self
            .jobs(&JobFilter::new().parent(id), PageRequest::first(500))
            .await?
            .items;
        let (names, keys): (Vec<String>, Vec<String>) = journal
            .iter()
            .filter(|e| e.kind == "wait")
            .filter_map(|e| Some((e.name.clone(), e.key.clone()?)))
            .chain(
                row.waiting_for
                    .iter()
                    .flat_map(|w| w.as_array().into_iter().flatten())
                    .filter_map(|c| {
                        Some((
                            c.get("event")?.as_str()?.to_owned(),
                            c.get("key")?.as_str()?.to_owned(),
                        ))
                    }),
            )
            .unzip();
        let events = ops::events_of(pool, &names, &keys)
            .await?
            .into_iter()
            .map(|e| EventRecord::from_row(e, sensitive))
            .collect();
        let summary = JobSummary {
            id,
            kind: row.kind,
            queue: row.queue,
            state: JobState::parse(&row.state).unwrap_or(JobState::Failed),
            priority: row.priority,
            attempt: row.attempt,
            max_attempts: row.max_attempts,
            run_at: row.run_at,
            created_at: row.created_at,
            attempted_at: row.attempted_at,
            finished_at: row.finished_at,
            last_error: errors
                .last()
                .and_then(|e| e.get("error")?.as_str().map(str::to_owned)),
            run_id: extra.run_id.map(RunId),
            step: extra.step.clone(),
            parent_id: row.parent_id.map(JobId),
            waiting_for: row.waiting_for,
        };
        let hide = |value: serde_json::Value| {
            if sensitive {
                serde_json::Value::String(REDACTED.into())
            } else {
                value
            }
        };
        let latest = Latest {
            attempt: row.attempt,
            worker: extra.attempted_by.as_deref(),
            started_at: row.attempted_at,
            finished_at: row.finished_at,
            state: summary.state,
        };
        let mut detail = JobDetail {
            attempts: attempts(extra.history, &errors, latest),
            args: hide(row.args),
            output: row.output.map(hide),
            sensitive,
            errors,
            journal: if sensitive {
                journal
                    .into_iter()
                    .map(|mut e| {
                        e.output = e.output.map(|_| serde_json::Value::String(REDACTED.into()));
                        e
                    })
                    .collect()
            } else {
                journal
            },
            children,
            events,
            progress: row.progress.map(hide),
            unique_key: if sensitive {
                row.unique_key.map(|_| REDACTED.to_owned())
            } else {
                row.unique_key
            },
            timeout_ms: extra.timeout_ms,
            lease_expires_at: extra.lease_expires_at,
            attempted_by: extra.attempted_by,
            cancel_requested: extra.cancel_requested,
            stuck: Vec::new(),
            summary,
        };
        detail.stuck = self.explain(&detail, extra.now).await?;
        Ok(Some(detail))
    }

    /// The ids of the jobs `filter` matches, newest first, at most `limit` (capped at
    /// [`MAX_BULK`]): what a bulk action would touch.
    pub async fn job_ids(&self, filter: &JobFilter, limit: usize) -> Result<Vec<JobId>, Error> {
        let limit = limit.min(MAX_BULK) as i64;
        Ok(ops::job_ids(self.pool(), &filter.query(None), limit)
            .await?
            .into_iter()
            .map(JobId)
            .collect())
    }

    /// Retries job `id`: a failed, cancelled or diverged job becomes available now, with one
    /// more attempt if it had used all of them. Returns whether it was retried (`false` for a
    /// job in another state). A workflow step's job is refused: retry its run.
    pub async fn retry_job(&self, id: JobId) -> Result<bool, Error> {
        let Some(extra) = ops::job_extra(self.pool(), id.0).await? else {
            return Err(Error::JobNotFound { id });
        };
        if let Some(run) = extra.run_id {
            let step = extra.step.unwrap_or_default();
            return Err(Error::InvalidInput(format!(
                "job {id} is step `{step}` of workflow run {run}: retry the run instead \
                 (`runledger runs retry {run}`, or `Admin::retry_run`), which runs its failed \
                 steps again and keeps the steps that completed"
            )));
        }
        Ok(!self
            .retry_jobs(&JobFilter::new().id(id), 1)
            .await?
            .is_empty())
    }

    /// Retries the failed, cancelled or diverged jobs `filter` matches (at most `limit`, capped
    /// at [`MAX_BULK`]; jobs of workflow steps excluded). Returns the ids retried.
    pub async fn retry_jobs(&self, filter: &JobFilter, limit: usize) -> Result<Vec<JobId>, Error> {
        let mut narrowed = filter.clone();
        if narrowed.states.is_empty() {
            narrowed.states = vec![JobState::Failed, JobState::Cancelled, JobState::Diverged];
        }
        let ids: Vec<i64> = self
            .job_ids(&narrowed, limit)
            .await?
            .into_iter()
            .map(|id| id.0)
            .collect();
        match ops::retry_jobs(self.pool(), &ids).await {
            Ok(retried) => Ok(retried.into_iter().map(JobId).collect()),
            Err(Error::Database(sqlx::Error::Database(db)))
                if db.code().as_deref() == Some("23505") =>
            {
                Err(Error::Conflict(format!(
                    "nothing was retried: a job among them has a unique key that another job \
                     holds now ({}); retry the others by id, or wait for (or cancel) the \
                     holder",
                    db.message()
                )))
            }
            Err(error) => Err(error),
        }
    }

    /// Cancels job `id` (see [`Runledger::cancel`](crate::Runledger::cancel)).
    pub async fn cancel_job(&self, id: JobId) -> Result<CancelOutcome, Error> {
        self.client.cancel(id).await
    }

    /// Cancels the unfinished jobs `filter` matches (at most `limit`, capped at [`MAX_BULK`]):
    /// those not started are cancelled, running ones are asked to stop. Returns each job with
    /// what happened to it.
    pub async fn cancel_jobs(
        &self,
        filter: &JobFilter,
        limit: usize,
    ) -> Result<Vec<(JobId, CancelOutcome)>, Error> {
        let mut narrowed = filter.clone();
        if narrowed.states.is_empty() {
            narrowed.states = JobState::ALL
                .into_iter()
                .filter(|s| !s.is_finished())
                .collect();
        }
        let mut done = Vec::new();
        for id in self.job_ids(&narrowed, limit).await? {
            match self.client.cancel(id).await {
                Ok(outcome) => done.push((id, outcome)),
                // Pruned or deleted meanwhile.
                Err(Error::JobNotFound { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(done)
    }

    /// Deletes job `id` with its journal. A running job, and an unfinished job of a workflow
    /// step or of a durable parent (its run or parent waits for it), are refused: cancel them
    /// instead. Returns whether it was deleted.
    pub async fn delete_job(&self, id: JobId) -> Result<bool, Error> {
        Ok(!ops::delete_jobs(self.pool(), &[id.0]).await?.is_empty())
    }

    /// Deletes the jobs `filter` matches that may be deleted (see [`Admin::delete_job`]), at
    /// most `limit` (capped at [`MAX_BULK`]). Returns the ids deleted.
    pub async fn delete_jobs(&self, filter: &JobFilter, limit: usize) -> Result<Vec<JobId>, Error> {
        let ids: Vec<i64> = self
            .job_ids(filter, limit)
            .await?
            .into_iter()
            .map(|id| id.0)
            .collect();
        Ok(ops::delete_jobs(self.pool(), &ids)
            .await?
            .into_iter()
            .map(JobId)
            .collect())
    }

    /// Why job `detail` is not moving, as far as the database tells (empty when it is moving
    /// or finished).
    pub(crate) async fn explain(
        &self,
        detail: &JobDetail,
        now: DateTime<Utc>,
    ) -> Result<Vec<Stuck>, Error> {
        let job = &detail.summary;
        let mut found = Vec::new();
        let leader_present =
            || async { Ok::<_, Error>(self.client.maintenance_leader().await?.is_some()) };
        let due_for = (now - job.run_at).num_seconds();
        match job.state {
            JobState::Available => {
                let served = self.workers().await?.iter().any(|w| {
                    w.live && w.queues.contains(&job.queue) && w.kinds.contains(&job.kind)
                });
                if !served {
                    let kind_known = ops::kinds(self.pool())
                        .await?
                        .iter()
                        .any(|k| k.kind == job.kind);
                    found.push(Stuck::NoWorker {
                        queue: job.queue.clone(),
                        kind: job.kind.clone(),
                        kind_known,
                    });
                } else if due_for > 60 {
                    found.push(Stuck::Backlog { due_for_s: due_for });
                }
            }
            JobState::Running => {
                if let Some(at) = detail.lease_expires_at.filter(|at| *at < now) {
                    found.push(Stuck::LeaseExpired {
                        worker: detail.attempted_by.clone(),
                        at,
                        leader_present: leader_present().await?,
                    });
                } else if detail.cancel_requested {
                    found.push(Stuck::Stopping);
                }
            }
            JobState::Scheduled | JobState::Retryable if due_for > 30 => {
                found.push(Stuck::Overdue {
                    due_for_s: due_for,
                    leader_present: leader_present().await?,
                });
            }
            JobState::Waiting => {
                let since = detail
                    .attempts
                    .last()
                    .filter(|a| a.outcome == "suspended")
                    .and_then(|a| a.finished_at);
                for condition in job
                    .waiting_for
                    .iter()
                    .flat_map(|w| w.as_array().into_iter().flatten())
                {
                    if let (Some(name), Some(key)) = (
                        condition.get("event").and_then(|v| v.as_str()),
                        condition.get("key").and_then(|v| v.as_str()),
                    ) {
                        found.push(Stuck::WaitingForEvent {
                            name: name.to_owned(),
                            key: key.to_owned(),
                            since,
                        });
                    } else if let Some(child) = condition.get("child").and_then(|v| v.as_i64()) {
                        let state = store::jobs::get(self.pool(), child)
                            .await?
                            .and_then(|c| JobState::parse(&c.state).ok());
                        found.push(Stuck::WaitingForChild {
                            child: JobId(child),
                            state,
                        });
                    } else if let (Some(kind), Some(version)) = (
                        condition.get("kind").and_then(|v| v.as_str()),
                        condition.get("version").and_then(|v| v.as_i64()),
                    ) {
                        found.push(Stuck::AwaitingVersion {
                            kind: kind.to_owned(),
                            version,
                        });
                    }
                }
                if job.run_at.year() < 9999 && job.run_at > now {
                    found.push(Stuck::Sleeping { until: job.run_at });
                } else if job.run_at <= now - TimeDelta::seconds(30) {
                    found.push(Stuck::Overdue {
                        due_for_s: due_for,
                        leader_present: leader_present().await?,
                    });
                }
            }
            _ => {}
        }
        Ok(found)
    }
}
