//! Routes, the per-request context (access, path prefix, CSRF token), and the write actions.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, OriginalUri, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use runledger::admin::{Admin, JobFilter};
use runledger::job::{JobId, JobState};
use runledger::workflow::RunId;

use crate::auth::{self, Access, Authorizer};
use crate::form;
use crate::pages;

/// What every handler shares.
pub(crate) struct App {
    pub(crate) admin: Admin,
    authorizer: Arc<dyn Authorizer>,
    metrics: Option<Arc<dyn Fn() -> String + Send + Sync>>,
    pub(crate) title: String,
    /// The overview's figures, computed at most once per [`FIGURES_FOR`] whatever the number
    /// of viewers (the lock also makes concurrent loads wait for one computation).
    figures: tokio::sync::Mutex<Option<(std::time::Instant, Arc<Figures>)>>,
}

/// What the overview shows.
pub(crate) struct Figures {
    pub(crate) queues: Vec<runledger::admin::QueueReport>,
    pub(crate) throughput: Vec<runledger::admin::ThroughputPoint>,
    pub(crate) workers: Vec<runledger::admin::WorkerInfo>,
}

/// How long the overview's figures are reused.
const FIGURES_FOR: std::time::Duration = std::time::Duration::from_secs(5);

impl App {
    /// The overview's figures, at most [`FIGURES_FOR`] old.
    pub(crate) async fn figures(&self) -> Result<Arc<Figures>, runledger::Error> {
        let mut cached = self.figures.lock().await;
        if let Some((at, figures)) = cached.as_ref()
            && at.elapsed() < FIGURES_FOR
        {
            return Ok(figures.clone());
        }
        let figures = Arc::new(Figures {
            queues: self.admin.queues().await?,
            throughput: self.admin.throughput(60).await?,
            workers: self.admin.workers().await?,
        });
        *cached = Some((std::time::Instant::now(), figures.clone()));
        Ok(figures)
    }
}

impl App {
    pub(crate) fn new(admin: Admin, config: crate::DashboardConfig) -> Arc<Self> {
        Arc::new(App {
            admin,
            authorizer: config.authorizer,
            metrics: config.metrics,
            title: config.title,
            figures: tokio::sync::Mutex::new(None),
        })
    }
}

type Shared = Arc<App>;

/// The request as a page sees it.
pub(crate) struct Ctx {
    pub(crate) access: Access,
    /// The path the router is nested under (`""` at the root, `/ops` when nested there).
    pub(crate) base: String,
    /// The browser's CSRF token, and whether it is new (then set as a cookie).
    pub(crate) csrf: String,
    new_token: bool,
    pub(crate) query: Vec<(String, String)>,
    headers: axum::http::HeaderMap,
    /// The request's authority (`host:port`), which HTTP/2 sends instead of `Host`.
    authority: Option<String>,
}

impl Ctx {
    /// The link to `path` (which starts with `/`) under the router's prefix.
    pub(crate) fn link(&self, path: &str) -> String {
        match path {
            // The overview: the prefix itself (a nested router's root has no trailing slash).
            "/" if !self.base.is_empty() => self.base.clone(),
            _ => format!("{}{path}", self.base),
        }
    }

    pub(crate) fn can_write(&self) -> bool {
        self.access >= Access::Write
    }

    /// `body` as the response, with the CSRF cookie when it is new and the security headers.
    pub(crate) fn respond(&self, status: StatusCode, body: maud::Markup) -> Response {
        let mut response = (status, body.into_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        secure(headers);
        if self.new_token {
            let path = if self.base.is_empty() {
                "/"
            } else {
                self.base.as_str()
            };
            let cookie = format!(
                "{}={}; Path={path}; HttpOnly; SameSite=Strict",
                auth::CSRF_COOKIE,
                self.csrf
            );
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                headers.append(header::SET_COOKIE, value);
            }
        }
        response
    }
}

fn secure(headers: &mut axum::http::HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

impl FromRequestParts<Shared> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Shared) -> Result<Self, Response> {
        let access = app.authorizer.authorize(parts);
        if access == Access::None {
            return Err(forbidden("this dashboard is not open to you"));
        }
        let original = parts
            .extensions
            .get::<OriginalUri>()
            .map(|o| o.0.path().to_owned())
            .unwrap_or_else(|| parts.uri.path().to_owned());
        let inner = parts.uri.path();
        // Nested under `/ops`, a request for `/ops/jobs` reaches this router as `/jobs`, and
        // one for `/ops` as `/`.
        let base = original
            .strip_suffix(inner)
            .or_else(|| (inner == "/").then_some(original.as_str()))
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_owned();
        let (csrf, new_token) = match auth::csrf_cookie(&parts.headers) {
            Some(token) => (token, false),
            None => (auth::new_token(), true),
        };
        Ok(Ctx {
            access,
            base,
            csrf,
            new_token,
            query: form::pairs(parts.uri.query().unwrap_or_default()),
            headers: parts.headers.clone(),
            authority: parts.uri.authority().map(|a| a.to_string()),
        })
    }
}

fn forbidden(why: &str) -> Response {
    let mut response = (StatusCode::FORBIDDEN, format!("403 Forbidden: {why}\n")).into_response();
    secure(response.headers_mut());
    response
}

pub(crate) fn router(app: Shared) -> Router {
    Router::new()
        .route("/", get(pages::overview))
        .route("/jobs", get(pages::jobs))
        .route("/jobs/bulk", post(jobs_bulk))
        .route("/jobs/{id}", get(pages::job))
        .route("/jobs/{id}/{action}", post(job_action))
        .route("/runs", get(pages::runs))
        .route("/runs/{id}", get(pages::run))
        .route("/runs/{id}/{action}", post(run_action))
        .route("/schedules", get(pages::schedules))
        .route("/schedules/{name}/{action}", post(schedule_action))
        .route("/workers", get(pages::workers))
        .route("/events", get(pages::events))
        .route("/events/emit", post(emit_event))
        .route("/metrics", get(metrics))
        .route("/assets/app.css", get(css))
        .route("/assets/app.js", get(js))
        .with_state(app)
}

/// A checked write: the form's pairs, or the response refusing it.
fn checked_write(ctx: &Ctx, body: &Bytes) -> Result<Vec<(String, String)>, Response> {
    if !ctx.can_write() {
        return Err(forbidden("your access is read-only"));
    }
    let pairs = form::pairs(std::str::from_utf8(body).unwrap_or_default());
    auth::check_write(
        &ctx.headers,
        ctx.authority.as_deref(),
        form::first(&pairs, "csrf"),
    )
    .map_err(|refusal| forbidden(refusal.message()))?;
    Ok(pairs)
}

/// Back to `to` with a notice.
fn done(ctx: &Ctx, to: &str, notice: &str) -> Response {
    let sep = if to.contains('?') { '&' } else { '?' };
    Redirect::to(&format!(
        "{}{sep}notice={}",
        ctx.link(to),
        form::encode(notice)
    ))
    .into_response()
}

/// Back to `to` with what `result` says, or the error page.
fn finish(ctx: &Ctx, to: &str, result: Result<String, runledger::Error>) -> Response {
    match result {
        Ok(notice) => done(ctx, to, &notice),
        Err(error) => failed(ctx, error),
    }
}

fn unknown(ctx: &Ctx, action: &str) -> Response {
    failed(
        ctx,
        runledger::Error::InvalidInput(format!("unknown action `{action}`")),
    )
}

fn failed(ctx: &Ctx, error: runledger::Error) -> Response {
    let status = match &error {
        runledger::Error::InvalidInput(_)
        | runledger::Error::JobNotFound { .. }
        | runledger::Error::RunNotFound { .. } => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ctx.respond(status, pages::error_page(ctx, &error.to_string()))
}

async fn jobs_bulk(State(app): State<Shared>, ctx: Ctx, body: Bytes) -> Response {
    let pairs = match checked_write(&ctx, &body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let ids: Vec<JobId> = form::all(&pairs, "ids")
        .into_iter()
        .filter_map(|v| v.parse().ok().map(JobId))
        .collect();
    let back = form::first(&pairs, "back").unwrap_or("/jobs");
    let back = if back.starts_with("/jobs") {
        back
    } else {
        "/jobs"
    };
    if ids.is_empty() {
        return done(&ctx, back, "no job selected");
    }
    let filter = ids.iter().fold(JobFilter::new(), |f, id| f.id(*id));
    let result = match form::first(&pairs, "action") {
        Some("retry") => app
            .admin
            .retry_jobs(&filter, ids.len())
            .await
            .map(|done| format!("{} of {} job(s) retried", done.len(), ids.len())),
        Some("cancel") => app.admin.cancel_jobs(&filter, ids.len()).await.map(|done| {
            format!(
                "{} of {} job(s) cancelled or asked to stop",
                done.len(),
                ids.len()
            )
        }),
        Some("delete") => app
            .admin
            .delete_jobs(&filter, ids.len())
            .await
            .map(|done| format!("{} of {} job(s) deleted", done.len(), ids.len())),
        _ => return done(&ctx, back, "unknown action"),
    };
    finish(&ctx, back, result)
}

async fn job_action(
    State(app): State<Shared>,
    Path((id, action)): Path<(i64, String)>,
    ctx: Ctx,
    body: Bytes,
) -> Response {
    if let Err(r) = checked_write(&ctx, &body) {
        return r;
    }
    let id = JobId(id);
    let page = format!("/jobs/{id}");
    let result = match action.as_str() {
        "retry" => app.admin.retry_job(id).await.map(|ok| {
            if ok {
                "retried".to_owned()
            } else {
                "not retried: only a failed, cancelled or diverged job can be".to_owned()
            }
        }),
        "cancel" => app
            .admin
            .cancel_job(id)
            .await
            .map(|outcome| format!("cancel: {outcome:?}")),
        "delete" => match app.admin.delete_job(id).await {
            Ok(true) => return done(&ctx, "/jobs", &format!("job {id} deleted")),
            Ok(false) => Ok(
                "not deleted: a running job, or the job of a run still going, cannot be".to_owned(),
            ),
            Err(e) => Err(e),
        },
        _ => return unknown(&ctx, &action),
    };
    finish(&ctx, &page, result)
}

async fn run_action(
    State(app): State<Shared>,
    Path((id, action)): Path<(i64, String)>,
    ctx: Ctx,
    body: Bytes,
) -> Response {
    let pairs = match checked_write(&ctx, &body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let id = RunId(id);
    let page = format!("/runs/{id}");
    let result = match action.as_str() {
        "retry" => app
            .admin
            .retry_run(id)
            .await
            .map(|jobs| format!("retried: {jobs} step job(s) enqueued")),
        "cancel" => app
            .admin
            .cancel_run(id)
            .await
            .map(|before| format!("cancel: the run was {before}")),
        "gate" => match form::first(&pairs, "gate") {
            Some(gate) => app
                .admin
                .complete_gate(id, gate)
                .await
                .map(|outcome| format!("gate `{gate}`: {outcome:?}")),
            None => Ok("no gate named".to_owned()),
        },
        _ => return unknown(&ctx, &action),
    };
    finish(&ctx, &page, result)
}

async fn schedule_action(
    State(app): State<Shared>,
    Path((name, action)): Path<(String, String)>,
    ctx: Ctx,
    body: Bytes,
) -> Response {
    if let Err(r) = checked_write(&ctx, &body) {
        return r;
    }
    let result = match action.as_str() {
        "pause" => app
            .admin
            .pause_schedule(&name)
            .await
            .map(|()| format!("`{name}` paused")),
        "resume" => app
            .admin
            .resume_schedule(&name)
            .await
            .map(|()| format!("`{name}` resumed")),
        "trigger" => app
            .admin
            .trigger_schedule(&name)
            .await
            .map(|id| format!("`{name}` triggered: job {id}")),
        _ => return unknown(&ctx, &action),
    };
    finish(&ctx, "/schedules", result)
}

async fn emit_event(State(app): State<Shared>, ctx: Ctx, body: Bytes) -> Response {
    let pairs = match checked_write(&ctx, &body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let (Some(name), Some(key)) = (form::first(&pairs, "name"), form::first(&pairs, "key")) else {
        return done(&ctx, "/events", "an event needs a name and a key");
    };
    let payload = match serde_json::from_str::<serde_json::Value>(
        form::first(&pairs, "payload").unwrap_or("null"),
    ) {
        Ok(p) => p,
        Err(e) => return done(&ctx, "/events", &format!("the payload is not JSON: {e}")),
    };
    match app.admin.emit_event(name, key, &payload).await {
        Ok(true) => done(
            &ctx,
            "/events",
            &format!("event `{name}` / `{key}` emitted"),
        ),
        Ok(false) => done(
            &ctx,
            "/events",
            &format!("event `{name}` / `{key}` was emitted before; the first emission stands"),
        ),
        Err(error) => failed(&ctx, error),
    }
}

async fn metrics(State(app): State<Shared>, _ctx: Ctx) -> Response {
    match &app.metrics {
        Some(render) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            render(),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "no metrics: the host did not configure DashboardConfig::metrics\n",
        )
            .into_response(),
    }
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", include_str!("../assets/app.css"))
}

async fn js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../assets/app.js"),
    )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// The states the jobs filter offers.
pub(crate) fn parse_state(s: &str) -> Option<JobState> {
    s.parse().ok()
}
