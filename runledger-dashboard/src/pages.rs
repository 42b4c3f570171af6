//! The pages, rendered on the server with `maud` (every value escaped).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};
use runledger::admin::{JobFilter, PageRequest, RunFilter};
use runledger::job::{JobId, JobState};
use runledger::workflow::{RunId, RunState};

use crate::app::{App, Ctx, parse_state};
use crate::form;

const PAGE: u32 = 50;

fn layout(ctx: &Ctx, app: &App, title: &str, body: Markup) -> Markup {
    let nav = [
        ("/", "Overview"),
        ("/jobs", "Jobs"),
        ("/runs", "Runs"),
        ("/schedules", "Schedules"),
        ("/workers", "Workers"),
        ("/events", "Events"),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="csrf-token" content=(ctx.csrf);
                title { (title) " · " (app.title) }
                link rel="stylesheet" href=(ctx.link("/assets/app.css"));
                script src=(ctx.link("/assets/app.js")) defer {}
            }
            body data-access=(if ctx.can_write() { "write" } else { "read" }) {
                header {
                    a.brand href=(ctx.link("/")) { (app.title) }
                    nav {
                        @for (path, name) in nav {
                            a href=(ctx.link(path)) { (name) }
                        }
                    }
                    @if !ctx.can_write() { span.badge.readonly { "read-only" } }
                }
                main {
                    @if let Some(notice) = form::first(&ctx.query, "notice") {
                        p.notice role="status" { (notice) }
                    }
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page saying what went wrong.
pub(crate) fn error_page(ctx: &Ctx, message: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { "Error" } link rel="stylesheet" href=(ctx.link("/assets/app.css")); }
            body { main { h1 { "That did not work" } p.error { (message) } p { a href=(ctx.link("/")) { "Back to the overview" } } } }
        }
    }
}

fn time(at: Option<DateTime<Utc>>) -> Markup {
    match at {
        Some(at) => {
            html! { time datetime=(at.to_rfc3339()) title=(at.to_rfc3339()) { (at.format("%Y-%m-%d %H:%M:%S")) } }
        }
        None => html! { span.muted { "—" } },
    }
}

fn json(value: &serde_json::Value) -> Markup {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    html! { pre.json { (text) } }
}

fn state_badge(state: &str) -> Markup {
    html! { span class=(format!("state state-{state}")) { (state) } }
}

/// A hidden CSRF field and a button posting to `action`.
fn action_button(ctx: &Ctx, action: &str, label: &str, confirm: Option<&str>) -> Markup {
    html! {
        form.inline method="post" action=(ctx.link(action)) data-confirm=[confirm] {
            input type="hidden" name="csrf" value=(ctx.csrf);
            button type="submit" class=(format!("action action-{}", label.to_lowercase().replace(' ', "-"))) { (label) }
        }
    }
}

fn failure(ctx: &Ctx, app: &App, error: runledger::Error) -> Response {
    ctx.respond(
        StatusCode::INTERNAL_SERVER_ERROR,
        layout(ctx, app, "Error", html! { p.error { (error.to_string()) } }),
    )
}

fn not_found(ctx: &Ctx, app: &App, what: &str) -> Response {
    ctx.respond(
        StatusCode::NOT_FOUND,
        layout(ctx, app, "Not found", html! { p.error { (what) } }),
    )
}

macro_rules! tri {
    ($ctx:expr, $app:expr, $e:expr) => {
        match $e {
            Ok(v) => v,
            Err(error) => return failure(&$ctx, &$app, error),
        }
    };
}

pub(crate) async fn overview(State(app): State<Arc<App>>, ctx: Ctx) -> Response {
    let figures = tri!(ctx, app, app.figures().await);
    let (queues, throughput, workers) = (&figures.queues, &figures.throughput, &figures.workers);
    let pending = ["available", "running", "scheduled", "retryable", "waiting"];
    let finished = ["completed", "failed", "cancelled", "diverged"];
    let start = Utc::now();
    let max = throughput
        .iter()
        .map(|p| p.finished.values().sum::<i64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let body = html! {
        section #queues {
            h2 { "Queues" }
            @if queues.is_empty() { p.muted { "No jobs pending and none finished in the last hour." } }
            @else {
                table.queues {
                    thead { tr {
                        th { "Queue" }
                        @for s in pending { th { (s) } }
                        @for s in finished { th title="in the last hour" { (s) " (1 h)" } }
                        th { "Oldest available" }
                    } }
                    tbody {
                        @for q in queues {
                            tr data-queue=(q.queue) {
                                td { a href=(ctx.link(&format!("/jobs?queue={}", form::encode(&q.queue)))) { (q.queue) } }
                                @for s in pending {
                                    td.num { (q.pending.get(s).copied().unwrap_or(0)) }
                                }
                                @for s in finished {
                                    td.num { (q.finished_last_hour.get(s).copied().unwrap_or(0)) }
                                }
                                td.num { (format!("{:.0} s", q.oldest_available_s)) }
                            }
                        }
                    }
                }
            }
        }
        section #throughput {
            h2 { "Finished per minute, last hour" }
            @if throughput.is_empty() { p.muted { "Nothing finished in the last hour." } }
            @else {
                svg.chart viewBox="0 0 600 130" preserveAspectRatio="none" role="img" aria-label="jobs finished per minute" {
                    text.axis x="0" y="128" { "60 min ago" }
                    text.axis x="600" y="128" text-anchor="end" { "now" }
                    @for p in throughput {
                        @let i = 59 - (start - p.minute).num_minutes().clamp(0, 59);
                        @let done = p.finished.get("completed").copied().unwrap_or(0);
                        @let bad = p.finished.values().sum::<i64>() - done;
                        @let x = (i as f64) * 600.0 / 60.0;
                        @let h_done = done as f64 * 110.0 / max as f64;
                        @let h_bad = bad as f64 * 110.0 / max as f64;
                        rect.ok x=(format!("{x:.1}")) y=(format!("{:.1}", 115.0 - h_done)) width="8" height=(format!("{h_done:.1}")) {
                            title { (p.minute.format("%H:%M")) ": " (done) " completed" }
                        }
                        rect.bad x=(format!("{x:.1}")) y=(format!("{:.1}", 115.0 - h_done - h_bad)) width="8" height=(format!("{h_bad:.1}")) {
                            title { (p.minute.format("%H:%M")) ": " (bad) " failed, cancelled or diverged" }
                        }
                    }
                }
            }
        }
        section #fleet {
            h2 { "Workers" }
            p { (workers.iter().filter(|w| w.live).count()) " live, "
                (workers.iter().filter(|w| w.leader).count()) " leading maintenance. "
                a href=(ctx.link("/workers")) { "Details" } }
        }
    };
    ctx.respond(StatusCode::OK, layout(&ctx, &app, "Overview", body))
}

fn job_filter(ctx: &Ctx) -> (JobFilter, Vec<String>) {
    let q = &ctx.query;
    let mut filter = JobFilter::new();
    let mut problems = Vec::new();
    for s in form::all(q, "state") {
        match parse_state(s) {
            Some(state) => filter = filter.state(state),
            None => problems.push(format!("unknown state `{s}`")),
        }
    }
    for k in form::all(q, "kind") {
        filter = filter.kind(k);
    }
    for k in form::all(q, "queue") {
        filter = filter.queue(k);
    }
    if let Some(text) = form::first(q, "error") {
        filter = filter.error_contains(text);
    }
    if let Some(run) = form::first(q, "run").and_then(|r| r.parse().ok()) {
        filter = filter.run(RunId(run));
    }
    (filter, problems)
}

pub(crate) async fn jobs(State(app): State<Arc<App>>, ctx: Ctx) -> Response {
    let (filter, problems) = job_filter(&ctx);
    let after = form::first(&ctx.query, "after").and_then(|a| a.parse().ok());
    let page = tri!(
        ctx,
        app,
        app.admin
            .jobs(&filter, PageRequest { after, limit: PAGE })
            .await
    );
    let current: String = ctx
        .query
        .iter()
        .filter(|(k, v)| k != "after" && k != "notice" && !v.is_empty())
        .map(|(k, v)| format!("{}={}", form::encode(k), form::encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let back = if current.is_empty() {
        "/jobs".to_owned()
    } else {
        format!("/jobs?{current}")
    };
    let chosen_state = form::first(&ctx.query, "state").unwrap_or("");
    let list = html! {
        table #jobs {
            thead { tr {
                @if ctx.can_write() { th { input type="checkbox" #select-all title="select all"; } }
                th { "Id" } th { "Kind" } th { "Queue" } th { "State" } th { "Attempt" }
                th { "Created" } th { "Finished" } th { "Last error" }
            } }
            tbody {
                @for j in &page.items {
                    tr class=(format!("job state-{}", j.state)) data-id=(j.id.0) {
                        @if ctx.can_write() { td { input.select type="checkbox" name="ids" value=(j.id.0); } }
                        td { a href=(ctx.link(&format!("/jobs/{}", j.id))) { (j.id.0) } }
                        td { (j.kind) }
                        td { (j.queue) }
                        td { (state_badge(j.state.as_str())) }
                        td.num { (j.attempt) "/" (j.max_attempts) }
                        td { (time(Some(j.created_at))) }
                        td { (time(j.finished_at)) }
                        td.error-text { (j.last_error.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
    };
    let body = html! {
        form #filters method="get" action=(ctx.link("/jobs")) {
            label { "State "
                select name="state" {
                    option value="" { "any" }
                    @for s in JobState::ALL {
                        option value=(s.as_str()) selected[chosen_state == s.as_str()] { (s.as_str()) }
                    }
                }
            }
            label { "Kind " input name="kind" value=(form::first(&ctx.query, "kind").unwrap_or("")); }
            label { "Queue " input name="queue" value=(form::first(&ctx.query, "queue").unwrap_or("")); }
            label { "Error contains " input name="error" value=(form::first(&ctx.query, "error").unwrap_or("")); }
            button type="submit" #apply { "Filter" }
            a href=(ctx.link("/jobs")) { "Clear" }
        }
        @for p in &problems { p.error { (p) } }
        @if ctx.can_write() {
            form #bulk method="post" action=(ctx.link("/jobs/bulk")) {
                input type="hidden" name="csrf" value=(ctx.csrf);
                input type="hidden" name="back" value=(back);
                div.bulk-actions {
                    button type="submit" name="action" value="retry" data-confirm="Retry the selected jobs?" #bulk-retry { "Retry selected" }
                    button type="submit" name="action" value="cancel" data-confirm="Cancel the selected jobs?" #bulk-cancel { "Cancel selected" }
                    button type="submit" name="action" value="delete" data-confirm="Delete the selected jobs? This cannot be undone." #bulk-delete { "Delete selected" }
                }
                (list)
            }
        } @else {
            (list)
        }
        @if page.items.is_empty() && page.next.is_none() { p.muted #no-jobs { "No job matches." } }
        @if (page.items.len() as u32) < PAGE && page.next.is_some() {
            p.muted #window { "This filter has no index of its own: each page looks through 100,000 jobs. Older jobs continue on the next page." }
        }
        @if let Some(next) = page.next {
            p { a #next href=(ctx.link(&format!("{}{}after={next}", back, if back.contains('?') { "&" } else { "?" }))) { "Older →" } }
        }
    };
    ctx.respond(StatusCode::OK, layout(&ctx, &app, "Jobs", body))
}

pub(crate) async fn job(State(app): State<Arc<App>>, Path(id): Path<i64>, ctx: Ctx) -> Response {
    let Some(d) = tri!(ctx, app, app.admin.job(JobId(id)).await) else {
        return not_found(
            &ctx,
            &app,
            &format!("job {id} does not exist (it may have been pruned)"),
        );
    };
    let j = &d.summary;
    let longest = d
        .attempts
        .iter()
        .filter_map(|a| a.duration())
        .map(|t| t.num_milliseconds())
        .max()
        .unwrap_or(1)
        .max(1);
    let body = html! {
        section #summary {
            dl.facts {
                dt { "Kind" } dd { (j.kind) }
                dt { "Queue" } dd { (j.queue) }
                dt { "State" } dd #state { (state_badge(j.state.as_str())) }
                dt { "Attempt" } dd { (j.attempt) " of " (j.max_attempts) }
                dt { "Priority" } dd { (j.priority) }
                dt { "Created" } dd { (time(Some(j.created_at))) }
                dt { "Due" } dd { (time(Some(j.run_at))) }
                dt { "Finished" } dd { (time(j.finished_at)) }
                @if let Some(run) = j.run_id {
                    dt { "Workflow run" } dd { a href=(ctx.link(&format!("/runs/{run}"))) { (run) } " step " (j.step.as_deref().unwrap_or("")) }
                }
                @if let Some(parent) = j.parent_id {
                    dt { "Parent" } dd { a href=(ctx.link(&format!("/jobs/{parent}"))) { (parent) } }
                }
                @if let Some(worker) = &d.attempted_by { dt { "Worker" } dd { (worker) } }
                @if let Some(key) = &d.unique_key { dt { "Unique key" } dd { (key) } }
            }
            @if ctx.can_write() {
                div.actions {
                    @if matches!(j.state, JobState::Failed | JobState::Cancelled | JobState::Diverged) && j.run_id.is_none() {
                        (action_button(&ctx, &format!("/jobs/{id}/retry"), "Retry", None))
                    }
                    @if !j.state.is_finished() {
                        (action_button(&ctx, &format!("/jobs/{id}/cancel"), "Cancel", Some("Cancel this job?")))
                    }
                    @if j.state != JobState::Running {
                        (action_button(&ctx, &format!("/jobs/{id}/delete"), "Delete", Some("Delete this job and its history?")))
                    }
                }
            }
        }
        @if !d.stuck.is_empty() {
            section #stuck {
                h2 { "Why it is not moving" }
                ul { @for s in &d.stuck { li { (s.to_string()) } } }
            }
        }
        section #args { h2 { "Arguments" } @if d.sensitive { p.muted { "Sensitive kind: arguments and output are hidden." } } (json(&d.args)) }
        @if let Some(output) = &d.output { section #output { h2 { "Output" } (json(output)) } }
        @if let Some(progress) = &d.progress { section #progress { h2 { "Progress" } (json(progress)) } }
        section #attempts {
            h2 { "Attempts" }
            @if d.attempts.is_empty() { p.muted { "No attempt has ended yet." } }
            @else {
                table.attempts {
                    thead { tr { th { "#" } th { "Outcome" } th { "Worker" } th { "Started" } th { "Duration" } th { "Error" } } }
                    tbody {
                        @for a in &d.attempts {
                            @let ms = a.duration().map(|t| t.num_milliseconds());
                            tr class=(format!("attempt outcome-{}", a.outcome)) {
                                td.num { (a.attempt) }
                                td { (state_badge(&a.outcome)) @if let Some(kind) = &a.error_kind { " " span.kind { (kind) } } }
                                td { (a.worker.as_deref().unwrap_or("")) }
                                td { (time(a.started_at)) }
                                td {
                                    @if let Some(ms) = ms {
                                        svg.bar width="122" height="8" { rect x="0" y="0" height="8" width=(2 + ms * 120 / longest) {} }
                                        " " (ms) " ms"
                                    }
                                }
                                td.error-text { (a.error.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
        }
        @if !d.journal.is_empty() {
            section #journal {
                h2 { "Journal" }
                table.journal {
                    thead { tr { th { "#" } th { "Call" } th { "Name" } th { "Key" } th { "State" } th { "Recorded" } th { "Value" } } }
                    tbody {
                        @for e in &d.journal {
                            tr { td.num { (e.position) } td { (e.kind) } td { (e.name) } td { (e.key.as_deref().unwrap_or("")) }
                                 td { (e.state) } td { (time(Some(e.recorded_at))) }
                                 td { @if let Some(o) = &e.output { code { (o.to_string()) } } } }
                        }
                    }
                }
            }
        }
        @if !d.children.is_empty() {
            section #children {
                h2 { "Children" }
                ul { @for c in &d.children { li { a href=(ctx.link(&format!("/jobs/{}", c.id))) { (c.id) } " " (c.kind) " " (state_badge(c.state.as_str())) } } }
            }
        }
        @if !d.events.is_empty() {
            section #events {
                h2 { "Events" }
                ul { @for e in &d.events { li { code { (e.name) } " / " code { (e.key) } " at " (time(Some(e.emitted_at))) } } }
            }
        }
    };
    ctx.respond(
        StatusCode::OK,
        layout(&ctx, &app, &format!("Job {id}"), body),
    )
}

pub(crate) async fn runs(State(app): State<Arc<App>>, ctx: Ctx) -> Response {
    let mut filter = RunFilter::new();
    if let Some(state) = form::first(&ctx.query, "state").and_then(|s| s.parse::<RunState>().ok()) {
        filter = filter.state(state);
    }
    if let Some(name) = form::first(&ctx.query, "name") {
        filter = filter.name(name);
    }
    let after = form::first(&ctx.query, "after").and_then(|a| a.parse().ok());
    let page = tri!(
        ctx,
        app,
        app.admin
            .runs(&filter, PageRequest { after, limit: PAGE })
            .await
    );
    let chosen = form::first(&ctx.query, "state").unwrap_or("");
    // The next page keeps the filters.
    let older = page.next.map(|next| {
        let mut query = format!("/runs?after={next}");
        for key in ["state", "name"] {
            if let Some(value) = form::first(&ctx.query, key) {
                query.push_str(&format!("&{key}={}", form::encode(value)));
            }
        }
        query
    });
    let body = html! {
        form #filters method="get" action=(ctx.link("/runs")) {
            label { "State "
                select name="state" {
                    option value="" { "any" }
                    @for s in ["running", "completed", "failed", "cancelled"] {
                        option value=(s) selected[chosen == s] { (s) }
                    }
                }
            }
            label { "Workflow " input name="name" value=(form::first(&ctx.query, "name").unwrap_or("")); }
            button type="submit" { "Filter" }
        }
        table #runs {
            thead { tr { th { "Id" } th { "Workflow" } th { "State" } th { "Active" } th { "Failed" } th { "Started" } th { "Finished" } th { "Error" } } }
            tbody {
                @for r in &page.items {
                    tr class=(format!("run state-{}", r.state)) {
                        td { a href=(ctx.link(&format!("/runs/{}", r.id))) { (r.id) } }
                        td { (r.name) } td { (state_badge(r.state.as_str())) }
                        td.num { (r.steps_active) } td.num { (r.steps_failed) }
                        td { (time(Some(r.created_at))) } td { (time(r.finished_at)) }
                        td.error-text { (r.error.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
        @if let Some(older) = &older {
            p { a #next href=(ctx.link(older)) { "Older →" } }
        }
    };
    ctx.respond(StatusCode::OK, layout(&ctx, &app, "Runs", body))
}

pub(crate) async fn run(State(app): State<Arc<App>>, Path(id): Path<i64>, ctx: Ctx) -> Response {
    let Some(d) = tri!(ctx, app, app.admin.run(RunId(id)).await) else {
        return not_found(
            &ctx,
            &app,
            &format!("workflow run {id} does not exist (it may have been pruned)"),
        );
    };
    let r = &d.run;
    let svg = crate::dag::render(&ctx, &d);
    let body = html! {
        section #summary {
            dl.facts {
                dt { "Workflow" } dd { (r.name) }
                dt { "State" } dd #state { (state_badge(r.state.as_str())) }
                dt { "Started" } dd { (time(Some(r.created_at))) }
                dt { "Finished" } dd { (time(r.finished_at)) }
                @if let Some(e) = &r.error { dt { "Error" } dd.error-text { (e) } }
            }
            @if ctx.can_write() {
                div.actions {
                    @if matches!(r.state, RunState::Failed | RunState::Cancelled) {
                        (action_button(&ctx, &format!("/runs/{id}/retry"), "Retry", Some("Run the steps that did not complete again?")))
                    }
                    @if r.state == RunState::Running {
                        (action_button(&ctx, &format!("/runs/{id}/cancel"), "Cancel", Some("Cancel this run?")))
                    }
                }
            }
        }
        section #graph { h2 { "Steps" } (svg) }
        section #steps {
            table.steps {
                thead { tr { th { "Step" } th { "Job" } th { "State" } th { "Attempt" } th { "Started" } th { "Finished" } th { "Error" } th {} } }
                tbody {
                    @for s in &r.steps {
                        tr class=(format!("step state-{}", s.state)) data-step=(s.key) {
                            td { (s.key) " " span.muted { (s.kind.as_deref().or(s.gate.as_deref()).unwrap_or("")) } }
                            td { @if let Some(job) = s.job { a href=(ctx.link(&format!("/jobs/{job}"))) { (job) } } }
                            td { (state_badge(s.state.as_str())) }
                            td.num { (s.attempt.map(|a| a.to_string()).unwrap_or_default()) }
                            td { (time(d.started_at(&s.key))) }
                            td { (time(s.finished_at)) }
                            td.error-text { (s.error.as_deref().unwrap_or("")) }
                            td {
                                @if let (Some(gate), true) = (&s.gate, ctx.can_write() && s.state.as_str() == "waiting") {
                                    form.inline method="post" action=(ctx.link(&format!("/runs/{id}/gate"))) data-confirm=(format!("Complete gate `{gate}`?")) {
                                        input type="hidden" name="csrf" value=(ctx.csrf);
                                        input type="hidden" name="gate" value=(gate);
                                        button.action type="submit" { "Complete gate" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if !d.history.is_empty() {
            section #history {
                h2 { "Earlier attempts of steps run again" }
                ul { @for (step, entries) in &d.history { @for e in entries {
                    li { (step) ": job " @if let Some(job) = e.job_id { a href=(ctx.link(&format!("/jobs/{job}"))) { (job) } } " " (state_badge(&e.state)) " " (e.error.as_deref().unwrap_or("")) }
                } } }
            }
        }
        section #input { h2 { "Input" } (json(&r.input)) }
        @if let Some(output) = &r.output { section #output { h2 { "Output" } (json(output)) } }
    };
    ctx.respond(
        StatusCode::OK,
        layout(&ctx, &app, &format!("Run {id}"), body),
    )
}

pub(crate) async fn schedules(State(app): State<Arc<App>>, ctx: Ctx) -> Response {
    let list = tri!(ctx, app, app.admin.schedules().await);
    let body = html! {
        table #schedules {
            thead { tr { th { "Name" } th { "Kind" } th { "Cron" } th { "Zone" } th { "Queue" } th { "Next" } th { "Last slot" } th { "State" } th {} } }
            tbody {
                @for s in &list {
                    tr data-schedule=(s.name) class=(if s.paused { "paused" } else { "active" }) {
                        td { (s.name) } td { (s.kind) } td { code { (s.expression) } } td { (s.timezone) } td { (s.queue) }
                        td { (time(s.next_fire_at)) } td { (time(s.last_slot)) }
                        td { @if s.paused { span.state.state-paused { "paused" } } @else { span.state.state-active { "active" } } }
                        td {
                            @if ctx.can_write() {
                                @if s.paused { (action_button(&ctx, &format!("/schedules/{}/resume", form::encode(&s.name)), "Resume", None)) }
                                @else { (action_button(&ctx, &format!("/schedules/{}/pause", form::encode(&s.name)), "Pause", None)) }
                                (action_button(&ctx, &format!("/schedules/{}/trigger", form::encode(&s.name)), "Trigger now", Some("Enqueue one job from this schedule now?")))
                            }
                        }
                    }
                }
            }
        }
        @if list.is_empty() { p.muted { "No schedules." } }
    };
    ctx.respond(StatusCode::OK, layout(&ctx, &app, "Schedules", body))
}

pub(crate) async fn workers(State(app): State<Arc<App>>, ctx: Ctx) -> Response {
    let list = tri!(ctx, app, app.admin.workers().await);
    let body = html! {
        table #workers {
            thead { tr { th { "Worker" } th { "Host" } th { "Pid" } th { "Version" } th { "Running" } th { "Queues" } th { "Kinds" } th { "Started" } th { "Seen" } th {} } }
            tbody {
                @for w in &list {
                    tr class=(if w.live { "live" } else { "silent" }) {
                        td { (w.id) } td { (w.host.as_deref().unwrap_or("")) } td.num { (w.pid.map(|p| p.to_string()).unwrap_or_default()) }
                        td { (w.version.as_deref().unwrap_or("")) }
                        td.num { (w.running) "/" (w.concurrency.map(|c| c.to_string()).unwrap_or_default()) }
                        td { (w.queues.join(", ")) } td { (w.kinds.join(", ")) }
                        td { (time(Some(w.started_at))) } td { (time(Some(w.seen_at))) }
                        td { @if w.leader { span.badge { "leader" } } @if !w.live { span.badge.bad { "silent" } } }
                    }
                }
            }
        }
        @if list.is_empty() { p.muted { "No worker is registered: jobs are not being run." } }
    };
    ctx.respond(StatusCode::OK, layout(&ctx, &app, "Workers", body))
}

pub(crate) async fn events(State(app): State<Arc<App>>, ctx: Ctx) -> Response {
    let name = form::first(&ctx.query, "name");
    let list = tri!(ctx, app, app.admin.events(name, None, PAGE).await);
    let body = html! {
        form #filters method="get" action=(ctx.link("/events")) {
            label { "Name " input name="name" value=(name.unwrap_or("")); }
            button type="submit" { "Filter" }
        }
        table #events {
            thead { tr { th { "Name" } th { "Key" } th { "Emitted" } th { "Payload" } } }
            tbody {
                @for e in &list {
                    tr { td { (e.name) } td { (e.key) } td { (time(Some(e.emitted_at))) } td { code { (e.payload.to_string()) } } }
                }
            }
        }
        @if list.is_empty() { p.muted { "No events." } }
        @if ctx.can_write() {
            h2 { "Emit an event" }
            form #emit method="post" action=(ctx.link("/events/emit")) data-confirm="Emit this event? Jobs waiting for it wake." {
                input type="hidden" name="csrf" value=(ctx.csrf);
                label { "Name " input name="name" required; }
                label { "Key " input name="key" required; }
                label { "Payload (JSON) " textarea name="payload" rows="3" { "null" } }
                button type="submit" { "Emit" }
            }
        }
    };
    ctx.respond(StatusCode::OK, layout(&ctx, &app, "Events", body))
}
