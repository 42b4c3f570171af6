//! Registration: two job kinds with the same name make `build()` fail, naming both, and the
//! one-line `testing::check_registrations` test finds them without a database.

mod common;

use runledger::{Error, JobError, Worker, job};

mod billing {
    use super::*;

    #[job(kind = "invoice")]
    pub(crate) async fn send_invoice(id: i64) -> Result<(), JobError> {
        let _ = id;
        Ok(())
    }
}

mod legacy {
    use super::*;

    #[job(kind = "invoice")]
    pub(crate) async fn old_invoice(number: String) -> Result<(), JobError> {
        let _ = number;
        Ok(())
    }
}

#[tokio::test]
async fn duplicate_kinds_fail_the_build_with_both_names() {
    let db = common::db().await;
    let err = Worker::builder(db.pool().clone()).build().unwrap_err();
    let Error::Config(message) = &err else {
        panic!("expected a configuration error, got {err:?}");
    };
    assert!(
        message.contains("job kind `invoice` is registered twice"),
        "{message}"
    );
    assert!(
        message.contains("SendInvoice") && message.contains("OldInvoice"),
        "{message}"
    );
    // Leaving one out resolves it.
    let worker = Worker::builder(db.pool().clone())
        .kinds(["renamed"])
        .build();
    assert!(
        worker.is_err(),
        "the table is checked before the kinds are filtered"
    );
}

#[test]
fn one_line_test_finds_duplicate_kinds_without_a_database() {
    let message = runledger::testing::check_registrations()
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("job kind `invoice` is registered twice"),
        "{message}"
    );
}
