//! Quick start: define jobs, enqueue them, run a worker until they finish.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! Uses `DATABASE_URL` if set; otherwise starts a throwaway PostgreSQL from the server binaries
//! installed on this machine and removes it on exit.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use runledger::embedded::EmbeddedPostgres;
use runledger::{JobContext, JobError, Runledger, State, Worker, job};
use serde::{Deserialize, Serialize};

/// What `charge_card` returns; stored as JSON and handed back to whoever waits for the job.
#[derive(Debug, Serialize, Deserialize)]
pub struct Charge {
    /// The payment provider's reference.
    pub id: String,
    /// Where the customer finds the receipt.
    pub receipt_url: String,
}

/// A stand-in for a payment provider that is down on the first call.
#[derive(Default)]
pub struct PaymentProvider {
    calls: AtomicU32,
}

/// Charges an order. The provider fails the first call, so the first attempt errs and the job
/// is retried after its backoff.
#[job(
    queue = "payments",
    max_attempts = 5,
    timeout = "30s",
    backoff(constant = "200ms")
)]
async fn charge_card(
    ctx: &JobContext,
    provider: State<PaymentProvider>,
    order_id: i64,
    cents: i64,
) -> Result<Charge, JobError> {
    let call = provider.calls.fetch_add(1, Ordering::SeqCst) + 1;
    println!(
        "  charge_card: attempt {} for order {order_id} ({cents} cents)",
        ctx.attempt()
    );
    if call == 1 {
        // Any error type works with `?`; it means "retry with backoff".
        Err(std::io::Error::other("payment provider timed out"))?;
    }
    Ok(Charge {
        id: format!("ch_{order_id}_{call}"),
        receipt_url: format!("https://pay.example/receipts/{order_id}"),
    })
}

/// Sends the receipt e-mail.
#[job]
async fn send_receipt(email: String, receipt_url: String) -> Result<(), JobError> {
    println!("  send_receipt: to {email}: {receipt_url}");
    Ok(())
}

/// Refuses orders it cannot fulfil: a fatal error is not retried.
#[job]
async fn reserve_stock(sku: String, quantity: u32) -> Result<u32, JobError> {
    if quantity > 100 {
        return Err(JobError::fatal(format!(
            "cannot reserve {quantity} of {sku}: limit is 100"
        )));
    }
    println!("  reserve_stock: {quantity} x {sku}");
    Ok(quantity)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A database: DATABASE_URL, or a throwaway embedded server (dropped at the end of main).
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

    // Typed enqueue: `ChargeCard` and friends were generated from the functions above.
    let charge = ChargeCard {
        order_id: 1001,
        cents: 4_990,
    }
    .enqueue(&rl)
    .await?;
    let stock = ReserveStock {
        sku: "tea-kettle".into(),
        quantity: 2,
    }
    .enqueue(&rl)
    .await?;
    let too_much = ReserveStock {
        sku: "tea-kettle".into(),
        quantity: 500,
    }
    .enqueue(&rl)
    .await?;

    // Enqueue inside your own transaction: the job exists only if the transaction commits.
    let mut tx = pool.begin().await?;
    let receipt = SendReceipt {
        email: "ada@example.com".into(),
        receipt_url: "https://pay.example/receipts/1001".into(),
    }
    .enqueue_tx(&rl, &mut tx)
    .run_in(Duration::from_millis(300))
    .await?;
    tx.commit().await?;
    println!(
        "enqueued jobs {}, {}, {}, {}",
        charge.id(),
        stock.id(),
        too_much.id(),
        receipt.id()
    );

    // One worker runs every #[job] linked into this binary.
    let worker = Worker::builder(pool.clone())
        .queues(["default", "payments"])
        .concurrency(8)
        .state(PaymentProvider::default())
        .build()?
        .start()
        .await?;

    let limit = Duration::from_secs(30);
    let charged: Charge = charge.wait_timeout(limit).await?;
    println!("charged: {} (receipt {})", charged.id, charged.receipt_url);
    println!("reserved: {}", stock.wait_timeout(limit).await?);
    match too_much.wait_timeout(limit).await {
        Err(runledger::Error::JobFailed {
            error, attempts, ..
        }) => {
            println!("reservation refused after {attempts} attempt(s): {error}");
        }
        other => {
            return Err(format!("expected the large reservation to fail, got {other:?}").into());
        }
    }
    receipt.wait_timeout(limit).await?;

    let report = worker.shutdown().await?;
    let m = report.metrics;
    println!(
        "worker stopped: {} completed, {} retried, {} failed",
        m.completed, m.retried, m.failed
    );
    let record = rl.job(charge.id()).await?.expect("the charge job exists");
    println!(
        "charge job {}: {} after {} attempts; first error: {}",
        record.id,
        record.state,
        record.attempt,
        record
            .errors
            .first()
            .and_then(|e| e["error"].as_str())
            .unwrap_or("none")
    );
    pool.close().await;
    Ok(())
}
