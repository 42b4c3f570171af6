//! A workflow end to end: an order is charged while its items are picked in parallel (fan-out),
//! the picks are packed together (fan-in), a manager approves the shipment (a gate completed
//! by this program), and the carrier booking fails once and is retried inside the run.
//!
//! Run with `cargo run --example workflow`.
//!
//! Uses `DATABASE_URL` if set; otherwise starts a throwaway PostgreSQL from the server binaries
//! on the machine and removes it on exit.

use std::time::Duration;

use runledger::embedded::EmbeddedPostgres;
use runledger::{JobContext, JobError, Runledger, Worker, job, workflow};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Payment {
    id: String,
    cents: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Picked {
    sku: String,
    shelf: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Parcel {
    items: Vec<String>,
    weight_grams: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Shipment {
    tracking: String,
    carrier: String,
    parcel_items: usize,
    payment: String,
}

/// Charges the customer.
#[job(queue = "payments")]
async fn charge(order_id: u64, cents: i64) -> Result<Payment, JobError> {
    Ok(Payment {
        id: format!("pay_{order_id}"),
        cents,
    })
}

/// Picks one item from its shelf.
#[job]
async fn pick(sku: String) -> Result<Picked, JobError> {
    tokio::time::sleep(Duration::from_millis(50)).await;
    let shelf = format!("aisle-{}", sku.len() % 4 + 1);
    Ok(Picked { sku, shelf })
}

/// Packs the three picks into one parcel.
#[job]
async fn pack(first: Picked, second: Picked, third: Picked) -> Result<Parcel, JobError> {
    let items: Vec<String> = [first, second, third].into_iter().map(|p| p.sku).collect();
    Ok(Parcel {
        weight_grams: 250 * items.len() as u32,
        items,
    })
}

/// Books the carrier; the carrier's API times out on the first attempt.
#[job(max_attempts = 3, backoff(constant = "200ms"))]
async fn book_carrier(
    ctx: &JobContext,
    order_id: u64,
    parcel: Parcel,
    payment_id: String,
) -> Result<Shipment, JobError> {
    if ctx.attempt() == 1 {
        return Err(JobError::retry("carrier API timed out"));
    }
    Ok(Shipment {
        tracking: format!("TRK{order_id:08}"),
        carrier: "parcelline".into(),
        parcel_items: parcel.items.len(),
        payment: payment_id,
    })
}

/// The whole order: the compiler checks every edge below, including that `payment.id` is a
/// `String` and that `pack` takes three `Picked`s.
#[workflow(name = "orders.ship")]
fn ship_order(order_id: u64, cents: i64, skus: [String; 3]) {
    let payment = charge(order_id, cents);
    let first = pick(skus[0].clone());
    let second = pick(skus[1].clone());
    let third = pick(skus[2].clone());
    let parcel = pack(first, second, third);
    let approval = external!("manager-approval");
    book_carrier(order_id, parcel, payment.id).after(approval)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_embedded, url) = match std::env::var("DATABASE_URL") {
        Ok(url) => (None, url),
        Err(_) => {
            println!("DATABASE_URL is not set: starting an embedded PostgreSQL");
            let pg = EmbeddedPostgres::start()?;
            let url = pg.url();
            (Some(pg), url)
        }
    };
    // A worker wants its queues + 11 connections (`Worker::advised_pool_size`).
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .connect(&url)
        .await?;
    runledger::migrate(&pool).await?;
    let rl = Runledger::new(pool.clone());

    let worker = Worker::builder(pool.clone())
        .queues(["default", "payments"])
        .build()?
        .start()
        .await?;

    let run = ShipOrder {
        order_id: 7,
        cents: 12_900,
        skus: ["lamp".into(), "shade".into(), "bulb".into()],
    }
    .enqueue(&rl)
    .idempotency_key("order-7")
    .await?;
    println!("started run {} of `orders.ship`", run.id());

    // Everything up to the gate runs on its own; the booking waits for the approval.
    loop {
        let status = run.status().await?;
        if status.step("parcel").map(|s| s.state) == Some(runledger::workflow::StepState::Completed)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("parcel packed; approving the shipment");
    run.complete_gate("manager-approval").await?;

    let shipment: Shipment = run.wait_timeout(Duration::from_secs(30)).await?;

    for step in run.status().await?.steps {
        let what = match (&step.kind, &step.gate) {
            (Some(kind), _) => format!("job `{kind}`"),
            (_, Some(gate)) => format!("gate `{gate}`"),
            _ => String::new(),
        };
        let attempts = step
            .attempt
            .map(|a| format!(", {a} attempt(s)"))
            .unwrap_or_default();
        let output = step
            .output
            .filter(|o| !o.is_null())
            .map(|o| format!(" -> {o}"))
            .unwrap_or_default();
        println!(
            "  {:<12} {:<24} {}{attempts}{output}",
            step.key, what, step.state
        );
    }
    println!(
        "shipment {} via {}: {} items, payment {}",
        shipment.tracking, shipment.carrier, shipment.parcel_items, shipment.payment
    );

    // Starting again with the same idempotency key returns the same run.
    let again = ShipOrder {
        order_id: 7,
        cents: 12_900,
        skus: ["lamp".into(), "shade".into(), "bulb".into()],
    }
    .enqueue(&rl)
    .idempotency_key("order-7")
    .await?;
    println!("same key, same run: {}", again.id() == run.id());

    worker.shutdown().await?;
    pool.close().await;
    Ok(())
}
