//! The error type of every runledger operation.

use crate::ids::{JobId, RunId};

/// What went wrong in a runledger call.
///
/// Each message says what happened and what to do about it. Branch on the variant; the message
/// text is for people and logs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database reported an error, or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),

    /// Applying runledger's migrations failed.
    #[error(
        "runledger migrations failed: {0}; each migration applies in its own transaction, so the \
         schema `runledger` is as the last successful one left it"
    )]
    Migrate(#[source] sqlx::migrate::MigrateError),

    /// The worker, client or job was configured wrongly; the message names the setting.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// A value passed in (name, key, option) is not acceptable; nothing was written.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// A payload or output is larger than the configured limit; nothing was written.
    #[error(
        "{what} is {size} bytes, over the limit of {limit} bytes; store large data elsewhere \
         and pass a reference, or raise the limit with `RunledgerBuilder::max_payload_bytes`"
    )]
    PayloadTooLarge {
        /// What was too large (`"payload of kind \`x\`"`, `"output"`).
        what: String,
        /// Its size in bytes, as JSON.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },

    /// A payload or output could not be converted to or from JSON.
    #[error("{context}: {source}")]
    Json {
        /// What was being converted.
        context: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },

    /// Two operations wanted the same row at once and this one gave way; retrying is safe.
    #[error("conflict: {0}")]
    Conflict(String),

    /// No job has this id (it may have been pruned after finishing).
    #[error("job {id} does not exist (it may have been pruned after it finished)")]
    JobNotFound {
        /// The id asked for.
        id: JobId,
    },

    /// The job failed for good; `error` is the last recorded attempt error.
    #[error("job {id} failed after {attempts} attempt(s): {error}")]
    JobFailed {
        /// The job.
        id: JobId,
        /// Attempts made.
        attempts: i32,
        /// The last recorded error.
        error: String,
    },

    /// The job was cancelled before it could complete.
    #[error("job {id} was cancelled{}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    JobCancelled {
        /// The job.
        id: JobId,
        /// The reason recorded, if any.
        reason: Option<String>,
    },

    /// A durable job's code no longer matches its journal; the job stopped for good in the
    /// terminal state `diverged`, its journal kept for inspection. Change the code so that it
    /// makes the recorded calls again (branching on a version the payload carries, say) before
    /// the next deploy, and enqueue the work again; see `docs/durable.md`.
    #[error("job {id} diverged from its journal: {diff}")]
    JobDiverged {
        /// The job.
        id: JobId,
        /// The first difference between the journal and what the code does now.
        diff: String,
    },

    /// Waiting for a job took longer than the given timeout; the job goes on.
    #[error("timed out waiting for job {id}; it is still {state}")]
    WaitTimeout {
        /// The job.
        id: JobId,
        /// Its state when the wait gave up.
        state: String,
    },

    /// This attempt's lease is held by someone else now; its writes are ignored.
    #[error("job {id}: this attempt lost its lease; another worker may be running the job")]
    LeaseLost {
        /// The job.
        id: JobId,
    },

    /// No workflow run has this id (it may have been pruned after it finished).
    #[error("workflow run {run} does not exist (it may have been pruned after it finished)")]
    RunNotFound {
        /// The id asked for.
        run: RunId,
    },

    /// The run failed: a step failed for good (or was cancelled) and nothing is left to run.
    #[error("workflow run {run} failed: {error}")]
    WorkflowFailed {
        /// The run.
        run: RunId,
        /// The first failure: which step, and its last error.
        error: String,
    },

    /// The run was cancelled as a whole.
    #[error("workflow run {run} was cancelled")]
    WorkflowCancelled {
        /// The run.
        run: RunId,
    },

    /// Waiting for a run took longer than the given timeout; the run goes on.
    #[error("timed out waiting for workflow run {run}; it is still running")]
    WorkflowWaitTimeout {
        /// The run.
        run: RunId,
    },

    /// The run was started by another version of the workflow, whose DAG differs from the one
    /// compiled into this program; its steps follow the shape it was started with.
    #[error(
        "workflow run {run} of `{name}` was started under shape {stored}, but this program's \
         `{name}` has shape {current}; read it with `Runledger::workflow_run` instead of a typed \
         handle, or let it finish on a worker of the version that started it"
    )]
    ShapeChanged {
        /// The run.
        run: RunId,
        /// The workflow's name.
        name: String,
        /// The fingerprint the run was started under.
        stored: String,
        /// The fingerprint of the workflow compiled into this program.
        current: String,
    },

    /// A run with this idempotency key exists and was started with a different input.
    #[error(
        "workflow `{name}` already has run {run} under idempotency key `{key}`, started with a \
         different input; use a new key for a different request"
    )]
    IdempotencyConflict {
        /// The workflow's name.
        name: String,
        /// The key.
        key: String,
        /// The run that holds the key.
        run: RunId,
    },

    /// The run has no gate of this name.
    #[error(
        "workflow run {run} has no gate `{gate}`; gates are declared with `external!(\"{gate}\")` \
         and completed in their own run"
    )]
    GateNotFound {
        /// The run.
        run: RunId,
        /// The gate's name.
        gate: String,
    },

    /// A cron schedule was refused: its expression or time zone is invalid; nothing was written.
    #[error("schedule `{schedule}`: {error}")]
    Schedule {
        /// The schedule's name (the job kind for schedules declared with `#[job(cron = ...)]`).
        schedule: String,
        /// What is wrong.
        #[source]
        error: ScheduleError,
    },

    /// A schedule of this name exists already; nothing was written.
    #[error(
        "a schedule named `{schedule}` already exists; change it with \
         `Runledger::update_schedule`, or remove it first"
    )]
    ScheduleExists {
        /// The name.
        schedule: String,
    },

    /// No cron schedule has this name.
    #[error(
        "no schedule named `{schedule}`; list them with `Runledger::schedules` or add it with \
         `Runledger::add_schedule`"
    )]
    ScheduleNotFound {
        /// The name asked for.
        schedule: String,
    },

    /// The embedded PostgreSQL could not be started or used.
    #[error("embedded PostgreSQL: {0}")]
    Embedded(String),
}

impl Error {
    pub(crate) fn json(context: impl Into<String>, source: serde_json::Error) -> Self {
        Error::Json {
            context: context.into(),
            source,
        }
    }
}

/// Why a cron expression or time zone was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// The cron expression does not parse, or matches no date.
    #[error("invalid cron expression `{expression}`: {reason}")]
    InvalidCron {
        /// The expression as given.
        expression: String,
        /// What is wrong with it, and what to write instead.
        reason: String,
    },
    /// The time zone is not an IANA name known to this build.
    #[error("unknown time zone `{timezone}`; use an IANA name such as `UTC` or `Europe/London`")]
    InvalidTimezone {
        /// The name as given.
        timezone: String,
    },
}
