//! # runledger
//!
//! Typed background jobs and DAG workflows, durable in PostgreSQL.
//!
//! Annotate an `async fn` with [`#[job]`](macro@job): you get a payload struct named after the
//! function, a typed enqueue (also inside your own transaction), and a handler that registers
//! itself. A [`Worker`] runs every job linked into the binary against Postgres, with leases
//! and fencing, retries with backoff, timeouts, batching and graceful shutdown.
//!
//! ## Quick start
//!
//! ```no_run
//! use runledger::{job, JobContext, JobError, Runledger, Worker};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Serialize, Deserialize)]
//! pub struct Receipt {
//!     pub number: String,
//! }
//!
//! /// Charges an order; retried with backoff when the payment provider fails.
//! #[job(queue = "payments", max_attempts = 5, timeout = "30s")]
//! async fn charge(ctx: &JobContext, order_id: i64, cents: i64) -> Result<Receipt, JobError> {
//!     Ok(Receipt { number: format!("R-{order_id}-{cents}-{}", ctx.attempt()) })
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), runledger::Error> {
//!     // A worker wants its queues + 11 connections, plus what handlers take themselves.
//!     let pool = sqlx::postgres::PgPoolOptions::new()
//!         .max_connections(16)
//!         .connect(&std::env::var("DATABASE_URL").unwrap())
//!         .await?;
//!     runledger::migrate(&pool).await?;
//!     let rl = Runledger::new(pool.clone());
//!
//!     // Typed enqueue: the payload struct `Charge` was generated from the function.
//!     let handle = Charge { order_id: 42, cents: 1999 }.enqueue(&rl).await?;
//!
//!     // One line runs every #[job] linked into the binary.
//!     let worker = Worker::builder(pool).queues(["payments"]).build()?.start().await?;
//!     let receipt: Receipt = handle.wait().await?;
//!     println!("charged: {}", receipt.number);
//!     worker.shutdown().await?;
//!     Ok(())
//! }
//! ```
//!
//! ## Workflows
//!
//! [`#[workflow]`](macro@workflow) declares a DAG of jobs; the compiler checks that every step exists,
//! that each field passed along an edge exists and has the parameter's type, and that the body
//! has no branches or loops. Steps are released in the transaction that completes their
//! prerequisites.
//!
//! ```no_run
//! use runledger::{job, workflow, JobError, Runledger};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! pub struct Charge { pub receipt_url: String }
//!
//! #[job]
//! async fn charge_card(order_id: i64, cents: i64) -> Result<Charge, JobError> {
//!     Ok(Charge { receipt_url: format!("https://pay.example/{order_id}/{cents}") })
//! }
//!
//! #[job]
//! async fn send_receipt(email: String, receipt_url: String) -> Result<bool, JobError> {
//!     Ok(!email.is_empty() && !receipt_url.is_empty())
//! }
//!
//! #[workflow(name = "orders.fulfil")]
//! fn fulfil_order(order_id: i64, email: String, cents: i64) {
//!     let charge = charge_card(order_id, cents);
//!     let ok = external!("approval");
//!     send_receipt(email, charge.receipt_url).after(ok)
//! }
//!
//! # async fn demo(rl: Runledger) -> Result<(), runledger::Error> {
//! let run = FulfilOrder { order_id: 42, email: "ada@example.com".into(), cents: 1999 }
//!     .enqueue(&rl)
//!     .idempotency_key("order-42")
//!     .await?;
//! run.complete_gate("approval").await?;
//! let sent: bool = run.wait().await?;
//! # Ok(()) }
//! ```
//!
//! Without a database at hand, [`EmbeddedPostgres`](embedded::EmbeddedPostgres) starts a throwaway server from the
//! PostgreSQL binaries installed on the machine; the examples and tests use it when
//! `DATABASE_URL` is unset.
//!
//! ## Semantics in brief
//!
//! - Delivery is at least once. A claimed job holds a lease renewed while it runs; every write of
//!   its outcome is fenced by `(id, attempt)`, so a worker that lost its lease changes nothing.
//! - A handler's `Err` is retried with the kind's exponential backoff while attempts remain;
//!   [`JobError::fatal`], [`JobError::snooze`] and [`JobError::cancel`] say otherwise. Panics and
//!   timeouts are failed attempts.
//! - All times are the database's clock.
//! - Cron schedules ([`#[job(cron = "...")]`](macro@job) or [`Runledger::add_schedule`]) fire each
//!   slot once across any number of workers; an elected leader also prunes finished jobs
//!   ([`Retention`](worker::Retention)). See `docs/cron.md`.
//!
//! See `docs/` in the repository for the job state machine and the architecture.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod admin;
mod client;
pub mod durable;
mod error;
mod ids;
pub mod job;
mod maintenance;
#[cfg(feature = "otel")]
mod otel;
mod random;
mod registry;
mod runtime;
pub mod schedule;
mod store;
mod telemetry;
mod validate;
pub mod workflow;

/// The worker: [`Worker`] and its builder, the running handle and what it
/// reports, the retention of finished jobs, and what the maintenance services tell operators.
pub mod worker {
    pub use crate::maintenance::{LeaderInfo, UnclaimedKind};
    pub use crate::runtime::{
        Retention, RunningWorker, ShutdownReport, Worker, WorkerBuilder, WorkerMetrics,
    };
}

#[cfg(unix)]
#[cfg_attr(docsrs, doc(cfg(unix)))]
pub mod embedded;

#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

#[doc(hidden)]
pub mod __private;

#[cfg(feature = "bench")]
#[doc(hidden)]
pub mod __bench;

pub use client::{Runledger, RunledgerBuilder};
pub use error::Error;
pub use job::{Job, JobContext, JobError, State};
pub use runtime::Worker;
pub use schedule::Schedule;
pub use store::migrate;
pub use workflow::Workflow;

/// Turns an `async fn` into a background job; see the crate docs and the options below.
pub use runledger_macros::job;

/// Declares a workflow: a DAG of `#[job]` steps checked when it compiles; see below.
pub use runledger_macros::workflow;
