//! Every `#[job]` option, and the defaults of the ones left out.

use std::time::Duration;

use runledger::{Job, JobError, job};
use runledger::job::{Backoff, JobOptions, UniqueScope};

#[job(
    kind = "orders.charge:v2",
    aliases = ["charge_card", "orders.charge"],
    queue = "payments-eu",
    priority = -32768,
    max_attempts = 2147483647,
    timeout = "1d",
    backoff(base = "500ms", factor = 1.5, max = "10m", jitter = 0),
    unique(by = [order_id], period = "2h"),
)]
async fn charge(order_id: i64, note: String) -> Result<(), JobError> {
    let _ = (order_id, note);
    Ok(())
}

#[job(
    backoff(constant = "5s"),
    priority = 32767,
    max_attempts = 1,
    timeout = "500ms"
)]
async fn poll() -> Result<(), JobError> {
    Ok(())
}

#[job(backoff(factor = 3), queue = "a.b:c-d_e")]
async fn partial_backoff() -> Result<(), JobError> {
    Ok(())
}

fn main() {
    assert_eq!(Charge::KIND, "orders.charge:v2");
    assert_eq!(Charge::ALIASES, ["charge_card", "orders.charge"]);
    let expected = JobOptions::new()
        .queue("payments-eu")
        .priority(i16::MIN)
        .max_attempts(i32::MAX)
        .timeout(Duration::from_secs(86_400))
        .backoff(Backoff {
            base: Duration::from_millis(500),
            factor: 1.5,
            max: Duration::from_secs(600),
            jitter: 0.0,
        })
        .unique_scope(UniqueScope::Period(Duration::from_secs(7_200)))
        .unique(true);
    assert_eq!(Charge::OPTIONS, expected);
    let key = Charge {
        order_id: 9,
        note: "ignored".into(),
    }
    .unique_key();
    assert_eq!(key.as_deref(), Some("orders.charge:v2:[9]"));

    let expected = JobOptions::new()
        .priority(i16::MAX)
        .max_attempts(1)
        .timeout(Duration::from_millis(500))
        .backoff(Backoff::constant(Duration::from_secs(5)));
    assert_eq!(Poll::OPTIONS, expected);
    assert_eq!(Poll {}.unique_key(), None);

    let backoff = PartialBackoff::OPTIONS.backoff;
    assert_eq!(
        backoff,
        Backoff {
            factor: 3.0,
            ..Backoff::exponential()
        }
    );
    assert_eq!(PartialBackoff::OPTIONS.queue, "a.b:c-d_e");
    assert_eq!(PartialBackoff::OPTIONS.unique_scope, UniqueScope::Active);
}
