//! The operators' API: what the `runledger` command line and the dashboard call, and what an
//! application's own tools can call.
//!
//! [`Admin`] lists and filters jobs and runs (newest first, keyset pagination), shows a job
//! with its attempts, journal, events and children, retries, cancels and deletes (one or by
//! filter), retries failed runs from their failed steps, completes gates, emits events, lists
//! and drives schedules, reports queues and workers, and explains why a job is not moving.
//!
//! ```no_run
//! # async fn demo(rl: runledger::Runledger) -> Result<(), runledger::Error> {
//! use runledger::admin::{JobFilter, PageRequest};
//! use runledger::job::JobState;
//!
//! let admin = rl.admin();
//! let failed = admin
//!     .jobs(&JobFilter::new().state(JobState::Failed), PageRequest::first(50))
//!     .await?;
//! for job in &failed.items {
//!     println!("{} {} {:?}", job.id, job.kind, job.last_error);
//! }
//! let retried = admin.retry_jobs(&JobFilter::new().state(JobState::Failed), 1_000).await?;
//! println!("{} jobs retried", retried.len());
//! # Ok(()) }
//! ```
//!
//! Nothing here counts the whole jobs table: lists stop at their page, queue reports count the
//! unfinished jobs and those finished in the last hour. Arguments and outputs of kinds marked
//! `#[job(sensitive)]` (in this binary, or by any worker that recorded its kinds) are replaced
//! with [`REDACTED`].

mod api;
mod jobs;
mod runs;
mod system;

pub use api::{Admin, MAX_BULK, Page, PageRequest, REDACTED, Scope};
pub use jobs::{AttemptRecord, JobDetail, JobFilter, JobSummary};
pub use runs::{EdgeRecord, RunDetail, RunFilter, RunSummary, StepHistory};
pub use system::{
    Check, CheckLevel, DoctorReport, EventRecord, QueueReport, Stuck, ThroughputPoint, WorkerInfo,
};
