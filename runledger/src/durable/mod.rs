//! Durable jobs: journaled steps, durable sleeps, typed events and child jobs.
//!
//! A `#[job(durable)]` handler may call the journaled methods of its
//! [`JobContext`](crate::JobContext):
//! [`step`](crate::JobContext::step), [`sleep`](crate::JobContext::sleep) /
//! [`sleep_until`](crate::JobContext::sleep_until), [`wait`](crate::JobContext::wait) for an [`Event`],
//! [`spawn`](crate::JobContext::spawn) a child job and [`join`](Child::join) it,
//! [`now`](crate::JobContext::now), [`uuid7`](crate::JobContext::uuid7), [`random`](crate::JobContext::random),
//! and [`join`](crate::JobContext::join) / [`select`](crate::JobContext::select) over several of them.
//! Each call's result is recorded once, in the job's journal. When the job runs again (after a
//! crash, a retry, a sleep or a wait), the handler starts from the top and every call already
//! recorded returns its recorded result without running again.
//!
//! ```no_run
//! use std::time::Duration;
//! use runledger::durable::{Event, Waited};
//! use runledger::{job, JobContext, JobError};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Serialize, Deserialize, Event)]
//! #[event(name = "orders.packed", key = order_id)]
//! pub struct Packed { pub order_id: i64, pub parcels: u32 }
//!
//! #[job(durable)]
//! async fn fulfil(ctx: &JobContext, order_id: i64) -> Result<u32, JobError> {
//!     let receipt: String = ctx.step("charge").run(|| async move {
//!         Ok(format!("R-{order_id}")) // call the payment provider here
//!     }).await?;
//!     ctx.sleep("cool-off", Duration::from_secs(3600)).await?; // holds no worker meanwhile
//!     match ctx.wait::<Packed>(order_id).timeout(Duration::from_secs(86_400)).await? {
//!         Waited::Received(packed) => Ok(packed.parcels),
//!         Waited::TimedOut => Err(JobError::fatal(format!("{receipt}: never packed"))),
//!     }
//! }
//! ```
//!
//! The rules for durable code, the states and what is stored are in `docs/durable.md`.

mod calls;
mod event;
pub(crate) mod journal;

mod record;
pub(crate) mod suspension;

pub use calls::{Child, Join, Selected, Sleep, Spawn, Step, Wait, Waited};
pub use event::{Event, EventRecord};
pub use record::JournalEntry;
pub use suspension::Suspension;

/// Derives [`Event`]: `#[event(name = "orders.packed", key = order_id)]` names the event
/// and the field whose value routes it to the jobs waiting for it.
pub use runledger_macros::Event;
