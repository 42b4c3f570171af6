//! The runledger dashboard: server-rendered pages over [`runledger::admin`], as an axum
//! [`Router`] a host application nests under any path.
//!
//! # Quick start
//!
//! ```no_run
//! use runledger_dashboard::{Access, DashboardConfig};
//!
//! # async fn demo(rl: runledger::Runledger) -> std::io::Result<()> {
//! // The host decides who may do what; here: read for everyone, write with a header the
//! // host's proxy sets after its own login.
//! let config = DashboardConfig::new(|req: &axum::http::request::Parts| {
//!     match req.headers.get("x-operator") {
//!         Some(_) => Access::Write,
//!         None => Access::Read,
//!     }
//! });
//! let app = axum::Router::new().nest("/ops", runledger_dashboard::router(rl.admin(), config));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7890").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
//!
//! Pages: overview (queues, throughput, workers), jobs (filters, bulk retry and cancel), a job
//! (arguments, output, attempts, errors, journal, children, events, why it is stuck), runs, a run
//! (its DAG drawn as SVG from the shape stored when it started, coloured by step state),
//! schedules, workers, events. With [`DashboardConfig::metrics`], `/metrics` serves Prometheus
//! text.
//!
//! # Safety
//!
//! - Auth is the host's: the [`Authorizer`] grants [`Access::Read`], [`Access::Write`] or
//!   [`Access::None`] per request. A read-only request sees no buttons and its POSTs get 403.
//! - Writes are POST forms carrying a token that must match a `SameSite=Strict` cookie (double
//!   submit), and a request whose `Origin` is another host is refused.
//! - Every value is HTML-escaped; arguments and outputs of sensitive kinds are redacted by the
//!   operators' API before they reach a page; pages send a `Content-Security-Policy` that
//!   admits only the dashboard's own script and style.
//! - No page counts the jobs table: lists stop at their page, queue figures come from the
//!   unfinished states and the last hour.

mod app;
mod auth;
mod dag;
mod form;
mod pages;

use std::sync::Arc;

pub use auth::{Access, Authorizer};
use axum::Router;
use runledger::admin::Admin;

/// How the dashboard is set up: who may do what, and what it serves besides its pages.
pub struct DashboardConfig {
    authorizer: Arc<dyn Authorizer>,
    metrics: Option<Arc<dyn Fn() -> String + Send + Sync>>,
    title: String,
}

impl DashboardConfig {
    /// A dashboard whose requests `authorizer` grants access to. There is no default: a
    /// dashboard that lets anyone retry and cancel must be asked for ([`Access::Write`] for
    /// every request).
    pub fn new(authorizer: impl Authorizer) -> Self {
        DashboardConfig {
            authorizer: Arc::new(authorizer),
            metrics: None,
            title: "runledger".to_owned(),
        }
    }

    /// Serves `/metrics` with the text `render` returns (Prometheus exposition format, e.g.
    /// the `render` of a `metrics-exporter-prometheus` handle). The route asks for read access.
    pub fn metrics(mut self, render: impl Fn() -> String + Send + Sync + 'static) -> Self {
        self.metrics = Some(Arc::new(render));
        self
    }

    /// The name shown in the header and the page titles (default `runledger`).
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }
}

/// The dashboard as a router, to serve on its own or to [`nest`](Router::nest) under a path
/// prefix of the host's application (links follow the prefix).
pub fn router(admin: Admin, config: DashboardConfig) -> Router {
    app::router(app::App::new(admin, config))
}
