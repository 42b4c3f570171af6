//! The dashboard over seeded work: jobs that complete, fail, retry and wait, workflow runs (one
//! failed, to retry from the page), a durable job waiting for an event, a cron schedule, a
//! sensitive job, and a live worker; Prometheus metrics at `/ops/metrics`.
//!
//! ```text
//! cargo run -p runledger-dashboard --example dashboard
//! # then open http://127.0.0.1:7890/ops
//! ```
//!
//! Uses `DATABASE_URL` if set; otherwise starts a throwaway PostgreSQL and removes it on exit.
//! `RUNLEDGER_DASHBOARD_LISTEN` changes the address. With `--check`, it fetches every page once,
//! says how each answered, and exits (non-zero if one failed).

use std::time::Duration;

use runledger::durable::Event;
use runledger::embedded::EmbeddedPostgres;
use runledger::{JobContext, JobError, Runledger, Schedule, Worker, job, workflow};
use runledger_dashboard::{Access, DashboardConfig};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends an e-mail; addresses with `bounce` fail for good.
#[job(queue = "mail", max_attempts = 3, backoff(constant = "2s"))]
async fn send_mail(to: String, subject: String) -> Result<(), JobError> {
    tokio::time::sleep(Duration::from_millis(20)).await;
    if to.contains("bounce") {
        return Err(JobError::fatal(format!("mailbox {to} does not exist")));
    }
    let _ = subject;
    Ok(())
}

/// Resizes an image; every fifth one times out once and is retried.
#[job(queue = "images", backoff(constant = "1s"))]
async fn resize_image(ctx: &JobContext, image_id: u32, width: u32) -> Result<u32, JobError> {
    tokio::time::sleep(Duration::from_millis(u64::from(image_id % 7) * 30)).await;
    if image_id.is_multiple_of(5) && ctx.attempt() == 1 {
        return Err(JobError::retry("the image store timed out"));
    }
    Ok(width)
}

/// Stores a card: its arguments never show in the dashboard.
#[job(queue = "mail", sensitive)]
async fn store_card(customer: u32, number: String) -> Result<(), JobError> {
    let _ = (customer, number);
    Ok(())
}

/// Sent to approve an order.
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(name = "order.approved", key = order_id)]
pub struct Approved {
    /// The order.
    pub order_id: u32,
}

/// Waits (durably, holding no worker) for an order's approval, up to a day.
#[job(durable, queue = "mail")]
async fn ship_when_approved(ctx: &JobContext, order_id: u32) -> Result<bool, JobError> {
    let approved = ctx
        .wait::<Approved>(order_id)
        .timeout(Duration::from_secs(86_400))
        .await?;
    Ok(approved.received().is_some())
}

/// Looks a customer up.
#[job(queue = "mail")]
async fn fetch_profile(customer: u32) -> Result<String, JobError> {
    Ok(format!("customer{customer}@example.com"))
}

/// Checks the profile; customers above 900 fail it.
#[job(queue = "mail", max_attempts = 1)]
async fn check_profile(customer: u32, email: String) -> Result<String, JobError> {
    if customer > 900 {
        return Err(JobError::fatal(format!("{email}: no consent on record")));
    }
    Ok(email)
}

/// Welcomes the customer.
#[job(queue = "mail")]
async fn welcome(email: String, plan: String) -> Result<String, JobError> {
    Ok(format!("welcomed {email} to {plan}"))
}

#[workflow(name = "onboarding")]
fn onboarding(customer: u32, plan: String) {
    let email = fetch_profile(customer);
    let checked = check_profile(customer, email);
    let avatar = resize_image(customer, 128);
    welcome(checked, plan).after(avatar)
}

/// A job nobody runs: its queue has no worker (the job page says so).
#[job(queue = "reports")]
async fn nightly_report(day: String) -> Result<(), JobError> {
    let _ = day;
    Ok(())
}

async fn seed(rl: &Runledger) -> Result<(), runledger::Error> {
    for i in 0..40 {
        let to = if i % 9 == 4 {
            format!("bounce{i}@example.com")
        } else {
            format!("user{i}@example.com")
        };
        rl.enqueue(SendMail {
            to,
            subject: "<b>Your order</b> & more".into(),
        })
        .await?;
    }
    for image_id in 1..=30 {
        rl.enqueue(ResizeImage {
            image_id,
            width: 640,
        })
        .await?;
    }
    rl.enqueue(StoreCard {
        customer: 7,
        number: "4111 1111 1111 1111".into(),
    })
    .await?;
    rl.enqueue(ShipWhenApproved { order_id: 5001 }).await?;
    for customer in [101, 102, 950, 103, 999] {
        rl.start(Onboarding {
            customer,
            plan: "pro".into(),
        })
        .await?;
    }
    rl.enqueue(NightlyReport {
        day: "2026-12-06".into(),
    })
    .await?;
    rl.add_schedule(Schedule::new(
        "nightly-report",
        "0 2 * * *",
        NightlyReport {
            day: "today".into(),
        },
    ))
    .await?;
    Ok(())
}

/// GETs `path` from `addr`; returns the status code.
async fn status_of(addr: &str, path: &str) -> std::io::Result<u16> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let head = String::from_utf8_lossy(&response[..response.len().min(64)]).into_owned();
    Ok(head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let check = std::env::args().any(|a| a == "--check");
    let (_embedded, url) = match std::env::var("DATABASE_URL") {
        Ok(url) => (None, url),
        Err(_) => {
            println!("DATABASE_URL is not set: starting an embedded PostgreSQL");
            let pg = EmbeddedPostgres::start()?;
            let url = pg.url();
            (Some(pg), url)
        }
    };
    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(20)
        .connect(&url)
        .await?;
    runledger::migrate(&pool).await?;
    let rl = Runledger::new(pool.clone());
    seed(&rl).await?;
    let worker = Worker::builder(pool.clone())
        .queues(["mail", "images"])
        .concurrency(8)
        .build()?
        .start()
        .await?;

    // The host decides who may do what; this example lets every request act.
    let config = DashboardConfig::new(Access::Write).metrics(move || prometheus.render());
    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::get(|| async { axum::response::Redirect::to("/ops") }),
        )
        .nest("/ops", runledger_dashboard::router(rl.admin(), config));
    let addr =
        std::env::var("RUNLEDGER_DASHBOARD_LISTEN").unwrap_or_else(|_| "127.0.0.1:7890".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let addr = listener.local_addr()?.to_string();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    println!("dashboard: http://{addr}/ops (Ctrl-C stops)");

    if check {
        // Let the worker run what it can, then read every page once.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut failed = 0;
        for path in [
            "/ops",
            "/ops/jobs",
            "/ops/jobs?state=failed",
            "/ops/jobs/1",
            "/ops/runs",
            "/ops/runs/1",
            "/ops/runs/3",
            "/ops/schedules",
            "/ops/workers",
            "/ops/events",
            "/ops/metrics",
        ] {
            let status = status_of(&addr, path).await?;
            println!("  {status} {path}");
            if status != 200 {
                failed += 1;
            }
        }
        worker.shutdown().await?;
        server.abort();
        if failed > 0 {
            return Err(format!("{failed} page(s) did not answer 200").into());
        }
        println!("every page answered");
        return Ok(());
    }
    tokio::signal::ctrl_c().await?;
    worker.shutdown().await?;
    server.abort();
    Ok(())
}
