//! Several jobs: a context, an output type, a custom error type, visibility, a raw name.

use std::time::Duration;

use runledger::{Job, JobContext, JobError, job};
use runledger::job::JobOptions;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Charge {
    pub id: String,
    pub receipt_url: String,
}

/// Charges the order's card.
#[job(queue = "payments", max_attempts = 5, timeout = "30s", priority = 10)]
pub async fn charge_card(ctx: &JobContext, order_id: i64, cents: i64) -> Result<Charge, JobError> {
    Ok(Charge {
        id: format!("ch_{order_id}_{cents}_{}", ctx.attempt()),
        receipt_url: String::new(),
    })
}

/// Sends the receipt.
#[job]
async fn send_receipt(email: String, receipt_url: String) -> Result<(), JobError> {
    let _ = (email, receipt_url);
    Ok(())
}

#[derive(Debug)]
pub struct ReportError;

impl std::fmt::Display for ReportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("report failed")
    }
}

impl std::error::Error for ReportError {}

// Any `std::error::Error + Send + Sync + 'static` converts into `JobError`.
#[job(queue = "reports")]
pub(crate) async fn build_report(mut year: i32, tags: Vec<String>) -> Result<u64, ReportError> {
    year += 1;
    Ok(year as u64 + tags.len() as u64)
}

// A raw identifier: kind `move`, payload struct `Move`.
#[job]
async fn r#move(r#from: String, to: String) -> Result<(), std::io::Error> {
    let _ = (r#from, to);
    Ok(())
}

fn main() {
    assert_eq!(<ChargeCard as Job>::KIND, "charge_card");
    assert!(ChargeCard::ALIASES.is_empty());
    let expected = JobOptions::new()
        .queue("payments")
        .priority(10)
        .max_attempts(5)
        .timeout(Duration::from_secs(30));
    assert_eq!(ChargeCard::OPTIONS, expected);
    assert_eq!(SendReceipt::KIND, "send_receipt");
    assert_eq!(SendReceipt::OPTIONS, JobOptions::new());
    assert_eq!(BuildReport::OPTIONS.queue, "reports");
    assert_eq!(Move::KIND, "move");

    // The payload struct: fields named after the parameters, serde, Debug, Clone.
    let payload = ChargeCard {
        order_id: 7,
        cents: 1999,
    };
    let json = serde_json::to_string(&payload.clone()).unwrap();
    assert_eq!(json, r#"{"order_id":7,"cents":1999}"#);
    let back: ChargeCard = serde_json::from_str(&json).unwrap();
    assert_eq!((back.order_id, back.cents), (7, 1999));
    assert!(format!("{back:?}").contains("ChargeCard"));
    assert_eq!(payload.unique_key(), None);
    assert!(ChargeCard::required_state().is_empty());
    let moved = Move {
        from: "a".into(),
        to: "b".into(),
    };
    assert_eq!(
        serde_json::to_string(&moved).unwrap(),
        r#"{"from":"a","to":"b"}"#
    );
    let _ = BuildReport {
        year: 2025,
        tags: vec![],
    };

    // The output types.
    let _: fn(<ChargeCard as Job>::Output) -> Charge = |charge| charge;
    let _: fn(<SendReceipt as Job>::Output) = |()| {};
    let _: fn(<BuildReport as Job>::Output) -> u64 = |n| n;

    // The functions are kept as written.
    let _ = send_receipt(String::new(), String::new());
    let _ = build_report(2025, Vec::new());

    // Every job registered itself.
    let kinds: Vec<&str> = runledger::__private::inventory::iter::<runledger::__private::JobRegistration>
        .into_iter()
        .map(|registration| registration.kind())
        .collect();
    for kind in ["charge_card", "send_receipt", "build_report", "move"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
}

// The typed enqueue compiles: the builder resolves to a handle of the job's output type.
#[allow(dead_code)]
async fn enqueue(rl: &runledger::Runledger) -> Result<Charge, runledger::Error> {
    SendReceipt {
        email: "a@example.com".into(),
        receipt_url: "https://example.com/r/1".into(),
    }
    .enqueue(rl)
    .await?;
    let handle = ChargeCard {
        order_id: 1,
        cents: 2,
    }
    .enqueue(rl)
    .with_priority(3)
    .await?;
    handle.wait().await
}

#[allow(dead_code)]
async fn enqueue_in_transaction(
    rl: &runledger::Runledger,
    tx: &mut sqlx::PgConnection,
) -> Result<(), runledger::Error> {
    ChargeCard {
        order_id: 1,
        cents: 2,
    }
    .enqueue_tx(rl, tx)
    .await?;
    Ok(())
}
