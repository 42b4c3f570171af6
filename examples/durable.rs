//! A durable job end to end: an order is charged, its stock reserved, it cools off for two
//! seconds without holding a worker, waits for the warehouse's "packed" event (emitted by this
//! program inside a transaction), spawns a child job that prints the label, and notifies the
//! customer. The first worker runs in a separate process that is killed (SIGKILL) while the
//! stock is being reserved, after the charge was recorded: the worker started next replays the
//! journal, so the card is charged once.
//!
//! Run with `cargo run --example durable`.
//!
//! Uses `DATABASE_URL` if set; otherwise starts a throwaway PostgreSQL from the server binaries
//! on the machine and removes it on exit.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use runledger::durable::{Event, Waited};
use runledger::embedded::EmbeddedPostgres;
use runledger::job::JobState;
use runledger::{JobContext, JobError, Runledger, Worker, job};
use serde::{Deserialize, Serialize};

/// Set in the child process, which only runs a worker until it is killed.
const CHILD: &str = "RUNLEDGER_EXAMPLE_WORKER_URL";

/// The warehouse packed an order.
#[derive(Debug, Clone, Serialize, Deserialize, Event)]
#[event(name = "orders.packed", key = order_id)]
struct Packed {
    order_id: u64,
    parcels: u32,
}

/// Prints a shipping label: an ordinary job, spawned as a child of the order.
#[job(queue = "labels")]
async fn print_label(order_id: u64, parcels: u32) -> Result<String, JobError> {
    Ok(format!("LBL-{order_id}-{parcels}"))
}

/// Counts a side effect in the database, so that the program can show how often it happened.
async fn side_effect(ctx: &JobContext, what: &str) -> Result<i64, JobError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO example_side_effects (what) VALUES ($1) RETURNING \
         (SELECT count(*) + 1 FROM example_side_effects WHERE what = $1)",
    )
    .bind(what)
    .fetch_one(ctx.client().pool())
    .await?)
}

/// The order, as a durable job: each journaled call runs once; a later attempt replays it.
#[job(durable, queue = "orders")]
async fn fulfil_order(ctx: &JobContext, order_id: u64, cents: i64) -> Result<String, JobError> {
    let charge: String = ctx
        .step("charge")
        .run(|| async move {
            let n = side_effect(ctx, "charge").await?;
            println!(
                "  [attempt {}] charged {cents} cents (charge #{n})",
                ctx.attempt()
            );
            Ok(format!("ch_{order_id}"))
        })
        .await?;
    let _: bool = ctx
        .step("reserve-stock")
        .run(|| async {
            let n = side_effect(ctx, "reserve").await?;
            println!("  [attempt {}] reserving stock (run #{n})", ctx.attempt());
            if n == 1 {
                // The first run is slow: the worker process is killed meanwhile.
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
            Ok(true)
        })
        .await?;
    ctx.sleep("cool-off", Duration::from_secs(2)).await?;
    let packed = match ctx
        .wait::<Packed>(order_id)
        .timeout(Duration::from_secs(3600))
        .await?
    {
        Waited::Received(packed) => packed,
        Waited::TimedOut => return Err(JobError::fatal("the warehouse never packed the order")),
    };
    let label = ctx
        .spawn(
            "label",
            PrintLabel {
                order_id,
                parcels: packed.parcels,
            },
        )
        .await?
        .join()
        .await?;
    let sent: String = ctx
        .step("notify")
        .run(|| async {
            side_effect(ctx, "notify").await?;
            Ok(format!(
                "{charge}: {} parcel(s), label {label}",
                packed.parcels
            ))
        })
        .await?;
    Ok(sent)
}

async fn connect(url: &str) -> Result<sqlx::PgPool, sqlx::Error> {
    // A worker wants its queues + 11 connections (`Worker::advised_pool_size`).
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .connect(url)
        .await
}

/// The child process: a worker with one-second leases, until it is killed.
async fn child_worker(url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let worker = Worker::builder(connect(url).await?)
        .queues(["orders", "labels"])
        .lease(Duration::from_secs(1))
        .migrate(false)
        .build()?
        .start()
        .await?;
    tokio::time::sleep(Duration::from_secs(120)).await;
    worker.shutdown().await?;
    Ok(())
}

/// Waits until `check` holds, polling every 50 ms, for at most 30 s.
async fn until<F, Fut>(what: &str, mut check: F) -> Result<(), Box<dyn std::error::Error>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, runledger::Error>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await? {
        if Instant::now() > deadline {
            return Err(format!("timed out waiting until {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Ok(url) = std::env::var(CHILD) {
        return child_worker(&url).await;
    }
    let (_embedded, url) = match std::env::var("DATABASE_URL") {
        Ok(url) => (None, url),
        Err(_) => {
            println!("DATABASE_URL is not set: starting an embedded PostgreSQL");
            let pg = EmbeddedPostgres::start()?;
            let url = pg.url();
            (Some(pg), url)
        }
    };
    let pool = connect(&url).await?;
    runledger::migrate(&pool).await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS example_side_effects (id bigserial PRIMARY KEY, what text)",
    )
    .execute(&pool)
    .await?;
    sqlx::query("TRUNCATE example_side_effects")
        .execute(&pool)
        .await?;
    let rl = Runledger::new(pool.clone());

    let order = FulfilOrder {
        order_id: 42,
        cents: 12_900,
    }
    .enqueue(&rl)
    .await?;
    println!("enqueued order job {}", order.id());

    // A worker in another process takes the order, charges the card and is killed while it
    // reserves the stock: after the charge was recorded, before the reservation was.
    let mut child = Command::new(std::env::current_exe()?)
        .env(CHILD, &url)
        .stdin(Stdio::null())
        .spawn()?;
    until("the stock is being reserved", || async {
        Ok(rl.journal(order.id()).await?.len() == 1)
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    child.kill()?;
    child.wait()?;
    println!("worker process {} killed (SIGKILL) mid-step", child.id());

    // A new worker rescues the order once the dead worker's lease has run out, and replays it.
    let worker = Worker::builder(pool.clone())
        .queues(["orders", "labels"])
        .rescue_interval(Duration::from_millis(200))
        .poll_interval(Duration::from_millis(100))
        .build()?
        .start()
        .await?;
    until("the order waits for the warehouse", || async {
        let record = rl.job(order.id()).await?;
        Ok(record.is_some_and(|r| {
            r.state == JobState::Waiting
                && r.waiting_for
                    .as_ref()
                    .is_some_and(|w| w.to_string().contains("packed"))
        }))
    })
    .await?;
    println!("the order cooled off and now waits for `orders.packed`, holding no worker");

    // The warehouse records the packing and emits the event in one transaction.
    let mut tx = pool.begin().await?;
    let packed = Packed {
        order_id: 42,
        parcels: 2,
    };
    rl.emit_tx(&mut tx, &packed).await?;
    tx.commit().await?;
    println!("warehouse emitted {packed:?}");

    let summary = order.wait_timeout(Duration::from_secs(30)).await?;
    println!("order done: {summary}");

    println!("journal:");
    for entry in rl.journal(order.id()).await? {
        println!(
            "  {} {:<6} {:<14} {:<6} attempt {} -> {}",
            entry.position,
            entry.kind,
            entry.name,
            entry.key.as_deref().unwrap_or("-"),
            entry.attempt,
            entry.output.map(|o| o.to_string()).unwrap_or_default()
        );
    }
    let counts: Vec<(String, i64)> = sqlx::query_as(
        "SELECT what, count(*) FROM example_side_effects GROUP BY what ORDER BY what",
    )
    .fetch_all(&pool)
    .await?;
    println!("side effects: {counts:?}");
    let charged = counts
        .iter()
        .find(|(w, _)| w == "charge")
        .map_or(0, |c| c.1);
    assert_eq!(charged, 1, "the card is charged exactly once");

    worker.shutdown().await?;
    pool.close().await;
    Ok(())
}
