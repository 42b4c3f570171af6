//! `State<T>` parameters are injected by the worker, are not part of the payload, and are
//! declared as requirements.

use runledger::{Job, JobContext, JobError, State, job};

pub struct Mailer {
    pub from: String,
}

pub struct Db;

#[job]
async fn send_receipt(
    mailer: State<Mailer>,
    ctx: &JobContext,
    email: String,
    db: runledger::State<Db>,
) -> Result<(), JobError> {
    let _ = (&mailer.from, ctx.attempt(), email, db);
    Ok(())
}

// Context and state parameters may use any pattern; they are passed, not stored.
#[job]
async fn welcome(
    State(mailer): State<Mailer>,
    _: &JobContext,
    user_id: i64,
) -> Result<String, JobError> {
    Ok(format!("{} welcomes {user_id}", mailer.from))
}

fn main() {
    let payload = SendReceipt {
        email: "a@example.com".into(),
    };
    assert_eq!(
        serde_json::to_string(&payload).unwrap(),
        r#"{"email":"a@example.com"}"#
    );
    let required = format!("{:?}", SendReceipt::required_state());
    assert!(
        required.contains("Mailer") && required.contains("Db"),
        "{required}"
    );
    assert_eq!(SendReceipt::required_state().len(), 2);
    assert_eq!(Welcome::required_state().len(), 1);
    let _ = Welcome { user_id: 1 };
}
