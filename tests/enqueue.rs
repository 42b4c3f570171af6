//! Enqueueing: transactions, batches, unique keys, options, cancel before start. Concurrent
//! unique enqueues, oversized payloads and invalid names are in the reliability suite.

mod common;

use std::time::Duration;

use common::{count, counts, db, job};
use runledger::job::{CancelOutcome, JobRequest, JobState, UniqueScope};
use runledger::{Error, JobError, job};

#[job(queue = "mail", priority = 3, max_attempts = 7, timeout = "5s")]
async fn send_email(to: String, subject: String) -> Result<(), JobError> {
    let _ = (to, subject);
    Ok(())
}

#[job(unique(period = "1h"))]
async fn hourly_report(name: String) -> Result<(), JobError> {
    let _ = name;
    Ok(())
}

#[job]
async fn blob(data: String) -> Result<(), JobError> {
    let _ = data;
    Ok(())
}

fn email(to: &str) -> SendEmail {
    SendEmail {
        to: to.into(),
        subject: "hi".into(),
    }
}

#[tokio::test]
async fn enqueue_stores_kind_defaults() {
    let db = db().await;
    let rl = db.client();
    let handle = email("a@example.com").enqueue(&rl).await.unwrap();
    assert!(handle.inserted());
    let row = job(&rl, handle.id()).await;
    assert_eq!(row.kind, "send_email");
    assert_eq!(row.queue, "mail");
    assert_eq!(row.priority, 3);
    assert_eq!(row.max_attempts, 7);
    assert_eq!(row.state, JobState::Available);
    assert_eq!(row.attempt, 0);
    assert_eq!(row.args["to"], "a@example.com");
}

#[tokio::test]
async fn per_call_overrides_win() {
    let db = db().await;
    let rl = db.client();
    let handle = email("b@example.com")
        .enqueue(&rl)
        .with_queue("urgent")
        .with_priority(-5)
        .with_max_attempts(2)
        .await
        .unwrap();
    let row = job(&rl, handle.id()).await;
    assert_eq!(
        (row.queue.as_str(), row.priority, row.max_attempts),
        ("urgent", -5, 2)
    );
}

#[tokio::test]
async fn transactional_enqueue_commits_or_rolls_back_with_the_caller() {
    let db = db().await;
    let rl = db.client();

    let mut tx = db.pool().begin().await.unwrap();
    let handle = email("rollback@example.com")
        .enqueue_tx(&rl, &mut tx)
        .await
        .unwrap();
    // Visible inside the transaction, not outside.
    let inside: i64 = sqlx::query_scalar("SELECT count(*) FROM runledger.jobs")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(inside, 1);
    assert!(rl.job(handle.id()).await.unwrap().is_none());
    tx.rollback().await.unwrap();
    assert!(
        counts(&rl).await.is_empty(),
        "a rolled-back enqueue leaves nothing"
    );

    let mut tx = db.pool().begin().await.unwrap();
    let handle = email("commit@example.com")
        .enqueue_tx(&rl, &mut tx)
        .await
        .unwrap();
    rl.enqueue_many_tx(&mut tx, [email("x@example.com"), email("y@example.com")])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(count(&rl, JobState::Available).await, 3);
    assert_eq!(job(&rl, handle.id()).await.args["to"], "commit@example.com");
}

#[tokio::test]
async fn batch_enqueue_inserts_all_in_order() {
    let db = db().await;
    let rl = db.client();
    let jobs: Vec<JobRequest> = (0..1000)
        .map(|i| {
            if i % 2 == 0 {
                JobRequest::new(email(&format!("{i}@example.com")))
            } else {
                JobRequest::new(Blob {
                    data: i.to_string(),
                })
                .with_priority(1)
            }
        })
        .collect();
    let handles = rl.enqueue_many(jobs).await.unwrap();
    assert_eq!(handles.len(), 1000);
    assert!(handles.iter().all(|h| h.inserted));
    assert!(
        handles.windows(2).all(|w| w[0].id < w[1].id),
        "ids come back in input order"
    );
    assert_eq!(count(&rl, JobState::Available).await, 1000);
    let odd = job(&rl, handles[501].id).await;
    assert_eq!(
        (odd.kind.as_str(), odd.args["data"].as_str()),
        ("blob", Some("501"))
    );
    assert!(
        rl.enqueue_many(Vec::<JobRequest>::new())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn unique_keys_in_one_batch_and_explicit_keys() {
    let db = db().await;
    let rl = db.client();
    let results = rl
        .enqueue_many([
            JobRequest::new(blob_job("a")).unique_key("k1"),
            JobRequest::new(blob_job("b")).unique_key("k1"),
            JobRequest::new(blob_job("c")).unique_key("k2"),
            JobRequest::new(blob_job("d")),
        ])
        .await
        .unwrap();
    let inserted: Vec<bool> = results.iter().map(|r| r.inserted).collect();
    assert_eq!(inserted, [true, false, true, true]);
    assert_eq!(results[0].id, results[1].id);
    assert_eq!(count(&rl, JobState::Available).await, 3);
}

fn blob_job(data: &str) -> Blob {
    Blob { data: data.into() }
}

#[tokio::test]
async fn period_unique_key_holds_after_the_job_finishes() {
    let db = db().await;
    let rl = db.client();
    let first = HourlyReport {
        name: "sales".into(),
    }
    .enqueue(&rl)
    .await
    .unwrap();
    assert_eq!(
        rl.cancel(first.id()).await.unwrap(),
        CancelOutcome::Cancelled
    );
    let second = HourlyReport {
        name: "sales".into(),
    }
    .enqueue(&rl)
    .await
    .unwrap();
    assert!(
        !second.inserted(),
        "same window: the finished job still holds the key"
    );
    assert_eq!(second.id(), first.id());
    let other = blob_job("x")
        .enqueue(&rl)
        .unique_key("window")
        .unique_scope(UniqueScope::Period(Duration::from_secs(3600)))
        .await
        .unwrap();
    assert!(other.inserted());
}

#[tokio::test]
async fn run_in_and_run_at_schedule_by_the_database_clock() {
    let db = db().await;
    let rl = db.client();
    let later = email("later@example.com")
        .enqueue(&rl)
        .run_in(Duration::from_secs(3600))
        .await
        .unwrap();
    let row = job(&rl, later.id()).await;
    assert_eq!(row.state, JobState::Scheduled);
    let delta = row.run_at - row.created_at;
    assert!(
        (delta.num_seconds() - 3600).abs() <= 1,
        "run_at is created_at + 1 h by the database clock, got {delta}"
    );
    let past = email("past@example.com")
        .enqueue(&rl)
        .run_at(chrono::Utc::now() - chrono::Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(job(&rl, past.id()).await.state, JobState::Available);
}

#[tokio::test]
async fn cancel_before_start_and_after_finish() {
    let db = db().await;
    let rl = db.client();
    let handle = email("c@example.com").enqueue(&rl).await.unwrap();
    assert_eq!(
        rl.cancel(handle.id()).await.unwrap(),
        CancelOutcome::Cancelled
    );
    assert_eq!(
        rl.cancel(handle.id()).await.unwrap(),
        CancelOutcome::AlreadyFinished(JobState::Cancelled)
    );
    let row = job(&rl, handle.id()).await;
    assert_eq!(row.state, JobState::Cancelled);
    assert!(row.finished_at.is_some());
    assert!(matches!(
        handle.wait().await,
        Err(Error::JobCancelled { .. })
    ));
    assert!(matches!(
        rl.cancel(runledger::job::JobId(999_999)).await,
        Err(Error::JobNotFound { .. })
    ));
}

#[tokio::test]
async fn testing_helpers_see_enqueued_jobs() {
    let db = db().await;
    let rl = db.client();
    runledger::testing::refute_enqueued::<SendEmail>(&rl)
        .await
        .unwrap();
    email("t@example.com").enqueue(&rl).await.unwrap();
    runledger::testing::assert_enqueued::<SendEmail>(&rl, |j| j.to == "t@example.com")
        .await
        .unwrap();
    let found = runledger::testing::enqueued::<SendEmail>(&rl)
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    let report = runledger::testing::drain(&rl, ["mail"]).await.unwrap();
    assert_eq!(report.completed, 1);
    runledger::testing::refute_enqueued::<SendEmail>(&rl)
        .await
        .unwrap();
    assert_eq!(count(&rl, JobState::Completed).await, 1);
}
