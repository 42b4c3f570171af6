//! `unique`: the whole payload, chosen fields, and a period.

use std::time::Duration;

use runledger::{Job, JobError, job};
use runledger::job::UniqueScope;

#[job(unique)]
async fn sync_account(account_id: i64, full: bool) -> Result<(), JobError> {
    let _ = (account_id, full);
    Ok(())
}

#[job(unique(by = [email, order_id]))]
async fn send_receipt(order_id: i64, email: String, body: String) -> Result<(), JobError> {
    let _ = (order_id, email, body);
    Ok(())
}

#[job(unique(period = "1h"), kind = "digest.daily")]
async fn daily_digest(user_id: i64) -> Result<(), JobError> {
    let _ = user_id;
    Ok(())
}

fn main() {
    let key = SyncAccount {
        account_id: 3,
        full: true,
    }
    .unique_key();
    assert_eq!(
        key.as_deref(),
        Some(r#"sync_account:{"account_id":3,"full":true}"#)
    );
    assert_eq!(SyncAccount::OPTIONS.unique_scope, UniqueScope::Active);

    let receipt = |body: &str| SendReceipt {
        order_id: 42,
        email: "a@example.com".into(),
        body: body.into(),
    };
    let key = receipt("first").unique_key();
    assert_eq!(key.as_deref(), Some(r#"send_receipt:["a@example.com",42]"#));
    assert_eq!(key, receipt("second").unique_key());

    let key = DailyDigest { user_id: 5 }.unique_key();
    assert_eq!(key.as_deref(), Some(r#"digest.daily:{"user_id":5}"#));
    assert_eq!(
        DailyDigest::OPTIONS.unique_scope,
        UniqueScope::Period(Duration::from_secs(3_600))
    );
}
