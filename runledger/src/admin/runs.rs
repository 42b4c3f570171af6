//! Workflow runs for operators: lists, details with the DAG's edges, and retries.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::api::{Admin, Page, PageRequest, REDACTED};
use crate::error::Error;
use crate::ids::RunId;
use crate::store::ops;
use crate::workflow::{GateOutcome, RunRecord, RunState};

/// Which runs a list shows. Every part narrows; an empty filter matches every run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunFilter {
    /// Only runs in one of these states.
    pub states: Vec<RunState>,
    /// Only runs of one of these workflows.
    pub names: Vec<String>,
}

impl RunFilter {
    /// Matches every run.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `state` to the states matched.
    pub fn state(mut self, state: RunState) -> Self {
        self.states.push(state);
        self
    }

    /// Adds workflow `name` to the workflows matched.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.names.push(name.into());
        self
    }
}

/// A run as a list shows it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct RunSummary {
    /// Its id.
    pub id: RunId,
    /// The workflow's name.
    pub name: String,
    /// Its state.
    pub state: RunState,
    /// Steps pending or running.
    pub steps_active: i32,
    /// Gates not yet completed.
    pub gates_waiting: i32,
    /// Steps failed, cancelled or skipped.
    pub steps_failed: i32,
    /// Why it failed (cut at 500 bytes).
    pub error: Option<String>,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
}

/// An edge of a run's DAG: `to` waits for `from`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct EdgeRecord {
    /// The prerequisite step.
    pub from: String,
    /// The step that waits for it.
    pub to: String,
    /// Whether `to` runs once `from` finishes whatever its outcome (else only if it completes).
    pub on_any: bool,
}

/// An earlier job of a step that was run again (a retried run).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct StepHistory {
    /// The step's job then.
    pub job_id: Option<i64>,
    /// The state the step ended in.
    pub state: String,
    /// Why it did not complete.
    pub error: Option<String>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// When the run was retried.
    pub retried_at: DateTime<Utc>,
}

/// Everything about one run: its record and steps, the edges of its DAG (as stored from the
/// workflow's compile-time shape when the run started), and each step's start and history.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct RunDetail {
    /// The run and its steps.
    #[serde(flatten)]
    pub run: RunRecord,
    /// The DAG's edges.
    pub edges: Vec<EdgeRecord>,
    /// When each step's (current) job started its latest attempt, by step key.
    pub started: Vec<(String, Option<DateTime<Utc>>)>,
    /// Earlier jobs of steps run again, by step key.
    pub history: Vec<(String, Vec<StepHistory>)>,
}

impl RunDetail {
    /// When step `key`'s job started its latest attempt.
    pub fn started_at(&self, key: &str) -> Option<DateTime<Utc>> {
        self.started.iter().find(|(k, _)| k == key)?.1
    }
}

impl Admin {
    /// Runs matching `filter`, newest first.
    pub async fn runs(
        &self,
        filter: &RunFilter,
        page: PageRequest,
    ) -> Result<Page<RunSummary>, Error> {
        let limit = page.limit();
        let q = ops::RunQuery {
            states: filter
                .states
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect(),
            names: filter.names.clone(),
            before_id: page.after,
        };
        let rows = ops::list_runs(self.pool(), &q, limit).await?;
        let items = rows
            .into_iter()
            .map(|r| RunSummary {
                id: RunId(r.id),
                state: r.state.parse().unwrap_or(RunState::Failed),
                name: r.name,
                steps_active: r.steps_active,
                gates_waiting: r.gates_waiting,
                steps_failed: r.steps_failed,
                error: r.error,
                created_at: r.created_at,
                finished_at: r.finished_at,
            })
            .collect();
        Ok(Page::of(items, limit, |r: &RunSummary| r.id.0))
    }

    /// Everything about run `id`, or `None` when there is no such run.
    pub async fn run(&self, id: RunId) -> Result<Option<RunDetail>, Error> {
        let Some(mut run) = self.client.workflow_run(id).await? else {
            return Ok(None);
        };
        // Outputs of sensitive steps are hidden, and so is the run's output when it is one.
        let sensitive = self.sensitive_kinds().await?;
        for step in &mut run.steps {
            let Some(kind) = &step.kind else { continue };
            if step.output.is_none() || !sensitive.is(kind) {
                continue;
            }
            if run.output.is_some() && run.output == step.output {
                run.output = Some(serde_json::Value::String(REDACTED.into()));
            }
            step.output = Some(serde_json::Value::String(REDACTED.into()));
        }
        let edges = ops::run_edges(self.pool(), id.0)
            .await?
            .into_iter()
            .map(|e| EdgeRecord {
                from: e.from_step,
                to: e.to_step,
                on_any: e.on_any,
            })
            .collect();
        let extras = ops::step_extras(self.pool(), id.0).await?;
        let started = extras
            .iter()
            .map(|e| (e.key.clone(), e.attempted_at))
            .collect();
        let history = extras
            .into_iter()
            .filter_map(|e| {
                let entries: Vec<StepHistory> = serde_json::from_value(e.history).ok()?;
                (!entries.is_empty()).then_some((e.key, entries))
            })
            .collect();
        Ok(Some(RunDetail {
            run,
            edges,
            started,
            history,
        }))
    }

    /// Retries failed or cancelled run `id` from the steps that did not complete: each gets a
    /// new job once its prerequisites have completed (its earlier job kept in its history);
    /// steps that completed keep their outputs. Returns the number of jobs enqueued now.
    ///
    /// Fails for a run that is running or completed, a cancelled run whose step jobs are still
    /// stopping, and a run with a step whose input could not be built from its parents'
    /// outputs.
    pub async fn retry_run(&self, id: RunId) -> Result<u32, Error> {
        match ops::retry_run(self.pool(), id.0).await {
            Ok(Some(jobs)) => Ok(jobs.max(0) as u32),
            Ok(None) => match self.client.workflow_run(id).await? {
                None => Err(Error::RunNotFound { run: id }),
                Some(run) => Err(Error::InvalidInput(format!(
                    "workflow run {id} is {}; only a failed or cancelled run can be retried",
                    run.state
                ))),
            },
            Err(Error::Database(sqlx::Error::Database(db)))
                if matches!(db.code().as_deref(), Some("22023") | Some("55000")) =>
            {
                Err(Error::InvalidInput(db.message().to_owned()))
            }
            Err(error) => Err(error),
        }
    }

    /// Cancels run `id` (see [`Runledger::cancel_workflow`](crate::Runledger::cancel_workflow)).
    pub async fn cancel_run(&self, id: RunId) -> Result<RunState, Error> {
        self.client.cancel_workflow(id).await
    }

    /// Completes gate `name` of run `id` (see
    /// [`Runledger::complete_gate`](crate::Runledger::complete_gate)).
    pub async fn complete_gate(&self, id: RunId, name: &str) -> Result<GateOutcome, Error> {
        self.client.complete_gate(id, name).await
    }
}
