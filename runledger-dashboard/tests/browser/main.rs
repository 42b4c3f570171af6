//! The dashboard in Chromium (Debian's `chromium` and `chromium-driver`), served on a real
//! socket against seeded data on the embedded PostgreSQL: filtering, bulk retry with its
//! confirmation and the new states, the DAG, the read-only role, markup in arguments left inert,
//! navigation under a path prefix.
//!
//! Without `chromedriver` the test says so and passes, unless `RUNLEDGER_REQUIRE_BROWSER` is
//! set (the CI script sets it). With `RUNLEDGER_SCREENSHOTS=<dir>` it saves the overview, a job
//! and a run's DAG there as PNG.

#![allow(missing_docs)]

#[path = "../support/mod.rs"]
mod support;
mod webdriver;

use std::time::Duration;

use axum::Router;
use runledger::job::JobState;
use runledger_dashboard::{Access, DashboardConfig};
use webdriver::{Driver, Session};

const WAIT: Duration = Duration::from_secs(10);

/// Serves `router` on a free loopback port; returns its base URL.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    format!("http://{addr}")
}

async fn states(s: &Session) -> Vec<String> {
    let mut out = Vec::new();
    for row in s.find_all("#jobs tbody tr").await.unwrap() {
        out.push(row.attr("class").await.unwrap().unwrap_or_default());
    }
    out
}

/// Waits until the browser's address contains `part`.
async fn wait_for_url(s: &Session, part: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let url = s.current_url().await.unwrap();
        if url.contains(part) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the address is still {url}, without {part}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn screenshot(s: &Session, name: &str) {
    if let Ok(dir) = std::env::var("RUNLEDGER_SCREENSHOTS") {
        let png = s.screenshot_png().await.unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(std::path::Path::new(&dir).join(name), png).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_chromium() {
    let driver = match Driver::start().await.unwrap() {
        Some(d) => d,
        None => {
            assert!(
                std::env::var_os("RUNLEDGER_REQUIRE_BROWSER").is_none(),
                "RUNLEDGER_REQUIRE_BROWSER is set but chromedriver is not installed"
            );
            eprintln!("chromedriver not found: the browser test is skipped");
            return;
        }
    };
    let db = support::db().await;
    let rl = db.client();
    let seeded = support::seed(&rl).await;
    let writer = serve(Router::new().nest(
        "/ops",
        runledger_dashboard::router(rl.admin(), DashboardConfig::new(Access::Write)),
    ))
    .await;
    let reader = serve(Router::new().nest(
        "/ops",
        runledger_dashboard::router(rl.admin(), DashboardConfig::new(Access::Read)),
    ))
    .await;
    let s = driver.session().await.unwrap();

    // Overview, and navigation under the prefix.
    s.goto(&format!("{writer}/ops")).await.unwrap();
    s.wait_for("#queues table", WAIT).await.unwrap();
    assert!(s.find("tr[data-queue='mail']").await.is_ok());
    screenshot(&s, "overview.png").await;
    s.find("header nav a[href='/ops/runs']")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    s.wait_for("#runs", WAIT).await.unwrap();
    assert_eq!(s.current_url().await.unwrap(), format!("{writer}/ops/runs"));
    s.find("header nav a[href='/ops/jobs']")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    s.wait_for("#jobs", WAIT).await.unwrap();

    // Filtering by state through the form.
    s.execute(
        "document.querySelector('#filters select[name=state]').value = 'failed';",
        vec![],
    )
    .await
    .unwrap();
    s.find("#apply").await.unwrap().click().await.unwrap();
    // The old page also has `#jobs`: wait for the new address first.
    wait_for_url(&s, "state=failed").await;
    s.wait_for("#jobs", WAIT).await.unwrap();
    let rows = states(&s).await;
    assert_eq!(rows.len(), 5, "{rows:?}");
    assert!(rows.iter().all(|c| c == "job state-failed"), "{rows:?}");

    // Bulk retry: two rows selected, the confirmation dismissed (nothing happens), then accepted.
    let a = seeded.failed[0].0;
    let b = seeded.failed[1].0;
    for id in [a, b] {
        s.find(&format!("#jobs input.select[value='{id}']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }
    s.find("#bulk-retry").await.unwrap().click().await.unwrap();
    assert_eq!(s.alert_text().await.unwrap(), "Retry the selected jobs?");
    s.dismiss_alert().await.unwrap();
    assert_eq!(
        rl.job(seeded.failed[0]).await.unwrap().unwrap().state,
        JobState::Failed
    );
    s.find("#bulk-retry").await.unwrap().click().await.unwrap();
    s.accept_alert().await.unwrap();
    let notice = s.wait_for(".notice", WAIT).await.unwrap();
    assert_eq!(notice.text().await.unwrap(), "2 of 2 job(s) retried");
    assert_eq!(
        states(&s).await.len(),
        3,
        "the retried jobs left the failed list"
    );
    s.goto(&format!("{writer}/ops/jobs?state=available&queue=mail"))
        .await
        .unwrap();
    s.wait_for("#jobs", WAIT).await.unwrap();
    let available: Vec<String> = {
        let mut ids = Vec::new();
        for row in s.find_all("#jobs tbody tr").await.unwrap() {
            ids.push(row.attr("data-id").await.unwrap().unwrap_or_default());
        }
        ids
    };
    assert_eq!(available, [b.to_string(), a.to_string()]);

    // Markup in arguments is shown as text and never runs.
    s.goto(&format!("{writer}/ops/jobs/{}", seeded.markup))
        .await
        .unwrap();
    let args = s.wait_for("#args pre", WAIT).await.unwrap();
    assert!(
        args.text()
            .await
            .unwrap()
            .contains("<script>document.title='pwned'</script>")
    );
    assert_ne!(s.title().await.unwrap(), "pwned");
    assert!(s.find_all("#args script").await.unwrap().is_empty());
    s.goto(&format!("{writer}/ops/jobs/{}", seeded.failed[2]))
        .await
        .unwrap();
    s.wait_for("#attempts table", WAIT).await.unwrap();
    screenshot(&s, "job.png").await;

    // The run's DAG: one node per step, classed by state.
    s.goto(&format!("{writer}/ops/runs/{}", seeded.run))
        .await
        .unwrap();
    s.wait_for("svg#dag", WAIT).await.unwrap();
    let nodes = s.find_all("svg#dag g.node").await.unwrap();
    assert_eq!(nodes.len(), 4);
    let mut classes = Vec::new();
    for n in &nodes {
        let step = n.attr("data-step").await.unwrap().unwrap();
        let class = n.attr("class").await.unwrap().unwrap();
        classes.push((step, class));
    }
    let run = rl.workflow_run(seeded.run).await.unwrap().unwrap();
    let class_of = |kind: &str| {
        let key = &run
            .steps
            .iter()
            .find(|st| st.kind.as_deref() == Some(kind))
            .unwrap()
            .key;
        classes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, c)| c.clone())
            .unwrap()
    };
    assert_eq!(class_of("transform"), "node state-failed");
    assert_eq!(class_of("publish"), "node state-skipped");
    let drawn = s
        .execute(
            "const r = document.querySelector('svg#dag g.node rect').getBoundingClientRect(); \
             return [r.width, r.height];",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        drawn[0].as_f64().unwrap() > 100.0,
        "nodes are drawn: {drawn}"
    );
    screenshot(&s, "run-dag.png").await;

    // The read-only role: no buttons, and a forged POST from the page gets 403.
    s.goto(&format!("{reader}/ops/jobs?state=failed"))
        .await
        .unwrap();
    s.wait_for("#jobs", WAIT).await.unwrap();
    assert!(
        s.find_all("button[type=submit][name=action]")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.find_all("#jobs input.select").await.unwrap().is_empty());
    // A form built in the page, with the page's own token: what a forged request can best do.
    s.execute(
        "const token = document.querySelector('meta[name=csrf-token]').content; \
         const f = document.createElement('form'); \
         f.method = 'post'; f.action = '/ops/jobs/bulk'; \
         for (const [k, v] of [['csrf', token], ['action', 'retry'], ['ids', arguments[0]]]) { \
             const i = document.createElement('input'); i.type = 'hidden'; \
             i.name = k; i.value = v; f.appendChild(i); \
         } \
         document.body.appendChild(f); f.submit();",
        vec![serde_json::json!(seeded.failed[2].0.to_string())],
    )
    .await
    .unwrap();
    let refused = s.wait_for("body pre", WAIT).await.unwrap();
    assert!(
        refused.text().await.unwrap().starts_with("403 Forbidden"),
        "the forged write is refused"
    );
    assert_eq!(
        rl.job(seeded.failed[2]).await.unwrap().unwrap().state,
        JobState::Failed
    );

    s.close().await.unwrap();
}
