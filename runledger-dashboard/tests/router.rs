//! The dashboard's router driven without a socket, against seeded data on the embedded
//! PostgreSQL: pages, escaping, redaction, the read-only role, CSRF, a path prefix, the DAG.

#![allow(missing_docs)]

mod support;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use runledger::job::JobState;
use runledger_dashboard::{Access, DashboardConfig};
use support::{SECRET, seed};
use tower::ServiceExt;

fn app(rl: &runledger::Runledger, access: Access) -> Router {
    Router::new().nest(
        "/ops",
        runledger_dashboard::router(
            rl.admin(),
            DashboardConfig::new(access).metrics(|| "runledger_test_metric 1\n".to_owned()),
        ),
    )
}

async fn get(app: &Router, path: &str) -> (StatusCode, String, Response<Body>) {
    let response = app
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    (status, text, Response::from_parts(parts, Body::empty()))
}

async fn post(app: &Router, path: &str, cookie: Option<&str>, body: &str) -> Response<Body> {
    let mut request = Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::HOST, "localhost");
    if let Some(token) = cookie {
        request = request.header(header::COOKIE, format!("runledger_csrf={token}"));
    }
    app.clone()
        .oneshot(request.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap()
}

/// The CSRF token a page set as its cookie.
fn token(response: &Response<Body>) -> String {
    let cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .expect("a CSRF cookie")
        .to_str()
        .unwrap();
    assert!(cookie.contains("SameSite=Strict") && cookie.contains("HttpOnly"));
    assert!(cookie.contains("Path=/ops"), "{cookie}");
    cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned()
}

#[tokio::test]
async fn every_page_renders_escaped_redacted_and_under_the_prefix() {
    let db = support::db().await;
    let rl = db.client();
    let s = seed(&rl).await;
    let app = app(&rl, Access::Write);
    let pages = [
        "/ops".to_owned(),
        "/ops/jobs".to_owned(),
        "/ops/jobs?state=failed".to_owned(),
        format!("/ops/jobs/{}", s.failed[0]),
        format!("/ops/jobs/{}", s.markup),
        format!("/ops/jobs/{}", s.secret),
        format!("/ops/jobs/{}", s.pending),
        "/ops/runs".to_owned(),
        format!("/ops/runs/{}", s.run),
        "/ops/schedules".to_owned(),
        "/ops/workers".to_owned(),
        "/ops/events".to_owned(),
    ];
    for page in &pages {
        let (status, html, response) = get(&app, page).await;
        assert_eq!(status, StatusCode::OK, "{page}: {html}");
        let csp = response
            .headers()
            .get(header::CONTENT_SECURITY_POLICY)
            .unwrap();
        assert!(csp.to_str().unwrap().contains("script-src 'self'"));
        assert!(
            !html.contains(SECRET),
            "{page} shows the sensitive argument"
        );
        assert!(
            !html.contains("<script>document"),
            "{page} renders markup from data"
        );
        for href in html.split("href=\"").skip(1) {
            let link = href.split('"').next().unwrap();
            assert!(
                link == "/ops" || link.starts_with("/ops/"),
                "{page}: link {link} leaves the prefix"
            );
        }
    }
    let (_, markup, _) = get(&app, &format!("/ops/jobs/{}", s.markup)).await;
    assert!(
        markup.contains("&lt;script&gt;document.title="),
        "escaped, shown"
    );
    let (_, secret, _) = get(&app, &format!("/ops/jobs/{}", s.secret)).await;
    assert!(secret.contains("Sensitive kind"));

    let (_, failed, _) = get(&app, "/ops/jobs?state=failed").await;
    let rows = failed.matches("class=\"job state-").count();
    assert_eq!(
        rows, 5,
        "three bounces, the markup job and the failed step's job"
    );
    assert_eq!(failed.matches("class=\"job state-failed\"").count(), 5);
    let (_, pending, _) = get(&app, &format!("/ops/jobs/{}", s.pending)).await;
    assert!(
        pending.contains("no live worker serves kind `later` on queue `idle`"),
        "the stuck explanation"
    );
    let (status, _, _) = get(&app, "/ops/jobs/999999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, text, _) = get(&app, "/ops/metrics").await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::OK, "runledger_test_metric 1\n")
    );
}

#[tokio::test]
async fn the_run_page_draws_one_node_per_step_with_its_state() {
    let db = support::db().await;
    let rl = db.client();
    let s = seed(&rl).await;
    let app = app(&rl, Access::Read);
    let (status, html, _) = get(&app, &format!("/ops/runs/{}", s.run)).await;
    assert_eq!(status, StatusCode::OK);
    let svg = html
        .split("id=\"dag\"")
        .nth(1)
        .expect("the DAG")
        .split("</svg>")
        .next()
        .unwrap();
    let nodes: Vec<(&str, &str)> = svg
        .split("<g class=\"node state-")
        .skip(1)
        .map(|n| {
            let state = n.split('"').next().unwrap();
            let step = n
                .split("data-step=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            (step, state)
        })
        .collect();
    assert_eq!(nodes.len(), 4, "{nodes:?}");
    let run = rl.workflow_run(s.run).await.unwrap().unwrap();
    let key_of = |kind: &str| {
        run.steps
            .iter()
            .find(|st| st.kind.as_deref() == Some(kind))
            .unwrap()
            .key
            .clone()
    };
    let state_of = |kind: &str| {
        let key = key_of(kind);
        nodes.iter().find(|(k, _)| *k == key).unwrap().1
    };
    assert_eq!(state_of("transform"), "failed");
    assert_eq!(state_of("publish"), "skipped");
    assert_eq!(svg.matches("class=\"edge").count(), 3);
}

#[tokio::test]
async fn the_read_only_role_sees_no_buttons_and_its_posts_are_refused() {
    let db = support::db().await;
    let rl = db.client();
    let s = seed(&rl).await;
    let app = app(&rl, Access::Read);
    for page in [
        "/ops/jobs".to_owned(),
        format!("/ops/jobs/{}", s.failed[0]),
        format!("/ops/runs/{}", s.run),
        "/ops/schedules".to_owned(),
        "/ops/events".to_owned(),
    ] {
        let (_, html, _) = get(&app, &page).await;
        assert!(!html.contains("method=\"post\""), "{page} offers a write");
        assert!(html.contains("read-only"));
    }
    let (_, _, page) = get(&app, "/ops/jobs").await;
    let t = token(&page);
    let forged = post(
        &app,
        "/ops/jobs/bulk",
        Some(&t),
        &format!("csrf={t}&action=retry&ids={}", s.failed[0]),
    )
    .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        rl.job(s.failed[0]).await.unwrap().unwrap().state,
        JobState::Failed
    );
    let none = app_none(&rl);
    let (status, _, _) = get(&none, "/ops").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

fn app_none(rl: &runledger::Runledger) -> Router {
    app(rl, Access::None)
}

#[tokio::test]
async fn writes_need_the_token_and_then_act() {
    let db = support::db().await;
    let rl = db.client();
    let s = seed(&rl).await;
    let app = app(&rl, Access::Write);
    let (_, html, page) = get(&app, "/ops/jobs?state=failed").await;
    assert!(html.contains("id=\"bulk-retry\""));
    let t = token(&page);
    let body = format!(
        "csrf={t}&action=retry&back=%2Fjobs%3Fstate%3Dfailed&ids={}&ids={}",
        s.failed[0], s.failed[1]
    );
    // No cookie, a wrong token, another origin: refused, nothing changes.
    assert_eq!(
        post(&app, "/ops/jobs/bulk", None, &body).await.status(),
        StatusCode::FORBIDDEN
    );
    let wrong = post(
        &app,
        "/ops/jobs/bulk",
        Some("0123456789abcdef0123456789abcdef"),
        &body,
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let cross = app
        .clone()
        .oneshot(
            Request::post("/ops/jobs/bulk")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::HOST, "localhost")
                .header(header::ORIGIN, "https://evil.example")
                .header(header::COOKIE, format!("runledger_csrf={t}"))
                .body(Body::from(body.clone()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        rl.job(s.failed[0]).await.unwrap().unwrap().state,
        JobState::Failed
    );

    let ok = post(&app, "/ops/jobs/bulk", Some(&t), &body).await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    let to = ok
        .headers()
        .get(header::LOCATION)
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        to.starts_with("/ops/jobs?state=failed&notice=2%20of%202"),
        "{to}"
    );
    for id in &s.failed[..2] {
        assert_eq!(
            rl.job(*id).await.unwrap().unwrap().state,
            JobState::Available
        );
    }
    assert_eq!(
        rl.job(s.failed[2]).await.unwrap().unwrap().state,
        JobState::Failed
    );

    // The run is retried from its failed step.
    let retried = post(
        &app,
        &format!("/ops/runs/{}/retry", s.run),
        Some(&t),
        &format!("csrf={t}"),
    )
    .await;
    assert_eq!(retried.status(), StatusCode::SEE_OTHER);
    let run = rl.workflow_run(s.run).await.unwrap().unwrap();
    assert_eq!(run.state, runledger::workflow::RunState::Running);

    // Schedules: trigger.
    let fired = post(
        &app,
        "/ops/schedules/nightly-mail/trigger",
        Some(&t),
        &format!("csrf={t}"),
    )
    .await;
    assert_eq!(fired.status(), StatusCode::SEE_OTHER);
    let later = rl
        .admin()
        .jobs(
            &runledger::admin::JobFilter::new().kind("later"),
            runledger::admin::PageRequest::first(10),
        )
        .await
        .unwrap();
    assert_eq!(later.items.len(), 2);
}
