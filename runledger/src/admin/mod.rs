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
//! use runledger::JobState;
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

mod jobs;
mod runs;
mod system;

pub use jobs::{AttemptRecord, JobDetail, JobFilter, JobSummary};
pub use runs::{EdgeRecord, RunDetail, RunFilter, RunSummary, StepHistory};
pub use system::{
    Check, CheckLevel, DoctorReport, EventRecord, QueueReport, Stuck, ThroughputPoint, WorkerInfo,
};

use crate::client::runledger::Runledger;

/// What replaces the arguments and output of a sensitive job.
pub const REDACTED: &str = "<redacted>";

/// The most jobs one bulk action touches.
pub const MAX_BULK: usize = 10_000;

/// The part of the data an [`Admin`] sees and acts on. Today every scope sees everything; the
/// type is here so that callers pass a scope from the start and keep working when scopes narrow
/// (per tenant).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scope {
    /// Everything in the database.
    #[default]
    All,
}

/// Where a page of a list starts, and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// The id after which (in newest-first order) the page starts: the `next` of the previous
    /// page, or `None` for the first page.
    pub after: Option<i64>,
    /// The most items on the page (1 to 500).
    pub limit: u32,
}

impl PageRequest {
    /// The first page, of at most `limit` items.
    pub fn first(limit: u32) -> Self {
        PageRequest { after: None, limit }
    }

    /// The page after the item with id `after`.
    pub fn after(after: i64, limit: u32) -> Self {
        PageRequest {
            after: Some(after),
            limit,
        }
    }

    fn limit(self) -> i64 {
        i64::from(self.limit.clamp(1, 500))
    }
}

/// One page of a list, newest first.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Where the next page starts ([`PageRequest::after`]), or `None` on the last page. A page
    /// can be short, or empty, and still have a next one (see [`Admin::jobs`]).
    pub next: Option<i64>,
}

impl<T> Page<T> {
    fn of(items: Vec<T>, limit: i64, id: impl Fn(&T) -> i64) -> Self {
        let next = if items.len() as i64 >= limit {
            items.last().map(&id)
        } else {
            None
        };
        Page { items, next }
    }
}

/// The operators' API over one database; see the [module](self) docs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Admin {
    client: Runledger,
    scope: Scope,
}

impl Runledger {
    /// The operators' API over this client's database, seeing [`Scope::All`].
    pub fn admin(&self) -> Admin {
        Admin {
            client: self.clone(),
            scope: Scope::All,
        }
    }
}

impl Admin {
    /// The same API, limited to `scope`.
    pub fn scoped(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// The scope this API sees.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The client underneath.
    pub fn client(&self) -> &Runledger {
        &self.client
    }

    fn pool(&self) -> &sqlx::PgPool {
        self.client.pool()
    }
}
