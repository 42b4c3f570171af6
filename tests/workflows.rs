//! Workflows against a real PostgreSQL: data flow along edges, failure propagation, retries,
//! cancellation, gates, idempotent starts, many runs on three workers and a worker killed
//! mid-run. Fan-in under concurrent completion is in the reliability suite.

#![allow(missing_docs)]

mod common;

use std::time::Duration;

use common::{db, hit, hits, token, wait_until};
use runledger::job::JobState;
use runledger::testing::TestDatabase;
use runledger::worker::WorkerBuilder;
use runledger::workflow::{GateOutcome, RunState, StepState};
use runledger::{Error, JobContext, JobError, Runledger, Worker, Workflow, job, workflow};
use serde::{Deserialize, Serialize};

// ---- jobs -------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Charge {
    pub id: String,
    pub cents: i64,
    pub receipt_url: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stock {
    pub warehouse: String,
    pub items: (u32, u32),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    pub sent_to: String,
    pub url: String,
    pub label: String,
}

#[job(queue = "payments")]
async fn charge_card(order_id: u64, cents: i64) -> Result<Charge, JobError> {
    Ok(Charge {
        id: format!("ch_{order_id}"),
        cents,
        receipt_url: format!("https://pay.example/r/{order_id}"),
    })
}

#[job]
async fn reserve_stock(order_id: u64) -> Result<Stock, JobError> {
    Ok(Stock {
        warehouse: if order_id.is_multiple_of(2) {
            "north"
        } else {
            "south"
        }
        .into(),
        items: (3, 4),
    })
}

#[job]
async fn print_label(order_id: u64, warehouse: String, second: u32) -> Result<String, JobError> {
    Ok(format!("label-{order_id}-{warehouse}-{second}"))
}

#[job]
async fn send_receipt(email: String, url: String, label: String) -> Result<Receipt, JobError> {
    Ok(Receipt {
        sent_to: email,
        url,
        label,
    })
}

/// Orders: two parallel branches, a gate, data along field paths, a typed output.
#[workflow(name = "orders.fulfil")]
fn fulfil_order(order_id: u64, email: String, cents: i64) {
    let charge = charge_card(order_id, cents);
    let stock = reserve_stock(order_id);
    let ok = external!("approval");
    let label = print_label(order_id, stock.warehouse, stock.items.1).after(ok);
    send_receipt(email, charge.receipt_url, label).after(label)
}

#[job]
async fn seed_value(seed: i64) -> Result<i64, JobError> {
    Ok(seed)
}

#[job]
async fn add(x: i64, y: i64) -> Result<i64, JobError> {
    Ok(x + y)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Total {
    pub left: i64,
    pub right: i64,
    pub total: i64,
}

#[job]
async fn combine(left: i64, right: i64) -> Result<Total, JobError> {
    Ok(Total {
        left,
        right,
        total: left + right,
    })
}

/// a -> {b, c} -> d, each step computing from its parents' outputs.
#[workflow]
fn diamond(seed: i64) {
    let a = seed_value(seed);
    let b = add(a, 1);
    let c = add(a, 10);
    combine(b, c)
}

#[job]
async fn square(base: i64, offset: i64) -> Result<i64, JobError> {
    Ok((base + offset) * (base + offset))
}

#[job]
#[allow(clippy::too_many_arguments)]
async fn sum10(
    a: i64,
    b: i64,
    c: i64,
    d: i64,
    e: i64,
    f: i64,
    g: i64,
    h: i64,
    i: i64,
    j: i64,
) -> Result<i64, JobError> {
    Ok(a + b + c + d + e + f + g + h + i + j)
}

/// One source, ten parallel steps, one step that takes all ten outputs.
#[workflow]
fn fan(n: i64) {
    let s = seed_value(n);
    let p0 = square(s, 0);
    let p1 = square(s, 1);
    let p2 = square(s, 2);
    let p3 = square(s, 3);
    let p4 = square(s, 4);
    let p5 = square(s, 5);
    let p6 = square(s, 6);
    let p7 = square(s, 7);
    let p8 = square(s, 8);
    let p9 = square(s, 9);
    sum10(p0, p1, p2, p3, p4, p5, p6, p7, p8, p9)
}

#[job(max_attempts = 3, backoff(constant = "10ms"))]
async fn fails_for_good(key: String) -> Result<(), JobError> {
    hit(&format!("{key}:fail"));
    Err(JobError::fatal("the card was declined"))
}

#[job]
async fn record(key: String, what: String) -> Result<String, JobError> {
    hit(&format!("{key}:{what}"));
    Ok(what)
}

/// `b` needs `a`'s success; `cleanup` runs whatever happens to `a`; `side` is independent.
#[workflow]
fn with_cleanup(key: String) {
    let a = fails_for_good(key.clone());
    let b = record(key.clone(), "b".to_string()).after(a);
    let c = record(key.clone(), "c".to_string()).after(b);
    let side = record(key.clone(), "side".to_string());
    let cleanup = record(key, "cleanup".to_string()).after_any(a);
}

/// `a` fails; everything after it is skipped.
#[workflow]
fn without_cleanup(key: String) {
    let a = fails_for_good(key.clone());
    let b = record(key.clone(), "b".to_string()).after(a);
    record(key, "c".to_string()).after(b)
}

#[job(max_attempts = 5, backoff(constant = "10ms"))]
async fn fails_once(ctx: &JobContext, key: String) -> Result<i32, JobError> {
    hit(&key);
    if ctx.attempt() == 1 {
        return Err(JobError::retry("first attempt fails"));
    }
    Ok(ctx.attempt())
}

#[job]
async fn double(x: i32) -> Result<i32, JobError> {
    Ok(x * 2)
}

/// A step that fails once and is retried inside the run.
#[workflow]
fn retried(key: String) {
    let first = fails_once(key);
    double(first)
}

#[job]
async fn waits_for_cancel(ctx: &JobContext, key: String) -> Result<(), JobError> {
    hit(&key);
    ctx.stopped().await;
    Err(JobError::cancel("stopped"))
}

/// A long step and a step after it.
#[workflow]
fn cancellable(key: String) {
    let long = waits_for_cancel(key.clone());
    let side = record(key.clone(), "side".to_string());
    record(key, "after".to_string()).after(long)
}

/// A gate in front of the only job.
#[workflow]
fn gated(key: String) {
    let approval = external!("approval");
    record(key, "approved".to_string()).after(approval)
}

#[job]
async fn slow_record(key: String, millis: u64) -> Result<u64, JobError> {
    hit(&key);
    tokio::time::sleep(Duration::from_millis(millis)).await;
    Ok(millis)
}

/// Two slow steps, then one that adds their outputs.
#[workflow]
fn slow_pair(key: String, millis: u64) {
    let a = slow_record(key.clone(), millis);
    let b = slow_record(key.clone(), millis);
    let sum = add_u64(a, b);
    sum
}

#[job]
async fn add_u64(a: u64, b: u64) -> Result<u64, JobError> {
    Ok(a + b)
}

// ---- helpers ------------------------------------------------------------------------------

fn worker(db: &TestDatabase) -> WorkerBuilder {
    Worker::builder(db.pool().clone())
        .queues(["default", "payments"])
        .poll_interval(Duration::from_millis(100))
}

async fn start(builder: WorkerBuilder) -> runledger::worker::RunningWorker {
    builder.build().unwrap().start().await.unwrap()
}

async fn step_state(rl: &Runledger, run: runledger::workflow::RunId, key: &str) -> StepState {
    rl.workflow_run(run)
        .await
        .unwrap()
        .unwrap()
        .step(key)
        .unwrap()
        .state
}

const WAIT: Duration = Duration::from_secs(20);

// ---- tests --------------------------------------------------------------------------------

#[tokio::test]
async fn diamond_passes_outputs_along() {
    let db = db().await;
    let rl = db.client();
    let w = start(worker(&db)).await;
    let run = Diamond { seed: 5 }.enqueue(&rl).await.unwrap();
    let total = run.wait_timeout(WAIT).await.unwrap();
    assert_eq!(
        total,
        Total {
            left: 6,
            right: 15,
            total: 21
        }
    );
    let record = run.status().await.unwrap();
    assert_eq!(record.state, RunState::Completed);
    assert_eq!(record.name, "diamond");
    assert_eq!(record.fingerprint, Diamond::SHAPE.fingerprint_hex());
    let keys: Vec<_> = record.steps.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(keys, ["a", "b", "c", "combine"]);
    assert!(record.steps.iter().all(|s| s.state == StepState::Completed));
    assert_eq!(
        record.step("c").unwrap().output,
        Some(serde_json::json!(15))
    );
    // Each step ran as one job whose payload was assembled from its parents.
    let job = rl
        .job(record.step("combine").unwrap().job.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.args, serde_json::json!({"left": 6, "right": 15}));
    w.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_design_example_runs_with_its_gate() {
    let db = db().await;
    let rl = db.client();
    let w = start(worker(&db)).await;
    let run = FulfilOrder {
        order_id: 42,
        email: "ada@example.com".into(),
        cents: 1999,
    }
    .enqueue(&rl)
    .await
    .unwrap();
    wait_until(WAIT, "charge and stock done", || async {
        step_state(&rl, run.id(), "stock").await == StepState::Completed
            && step_state(&rl, run.id(), "charge").await == StepState::Completed
    })
    .await;
    assert_eq!(step_state(&rl, run.id(), "label").await, StepState::Pending);
    assert_eq!(step_state(&rl, run.id(), "ok").await, StepState::Waiting);
    assert_eq!(
        run.complete_gate("approval").await.unwrap(),
        GateOutcome::Completed
    );
    let receipt = run.wait_timeout(WAIT).await.unwrap();
    assert_eq!(
        receipt,
        Receipt {
            sent_to: "ada@example.com".into(),
            url: "https://pay.example/r/42".into(),
            label: "label-42-north-4".into(),
        }
    );
    w.shutdown().await.unwrap();
}

#[tokio::test]
async fn wide_fan_out_and_fan_in() {
    let db = db().await;
    let rl = db.client();
    let w = start(worker(&db).concurrency(16)).await;
    let runs = futures_join(&rl, (0..5).map(|n| Fan { n })).await;
    for (n, run) in runs.iter().enumerate() {
        let n = n as i64;
        let expected: i64 = (0..10).map(|k| (n + k) * (n + k)).sum();
        assert_eq!(run.wait_timeout(WAIT).await.unwrap(), expected);
    }
    w.shutdown().await.unwrap();
}

async fn futures_join<W: Workflow>(
    rl: &Runledger,
    inputs: impl Iterator<Item = W>,
) -> Vec<runledger::workflow::WorkflowHandle<W::Output>> {
    let mut handles = Vec::new();
    for input in inputs {
        handles.push(rl.start(input).await.unwrap());
    }
    handles
}

#[tokio::test]
async fn a_failed_step_skips_its_dependents_and_after_any_still_runs() {
    let db = db().await;
    let rl = db.client();
    let key = token("cleanup");
    let w = start(worker(&db)).await;
    let run = WithCleanup { key: key.clone() }.enqueue(&rl).await.unwrap();
    let error = run.wait_timeout(WAIT).await.unwrap_err();
    let Error::WorkflowFailed { error, .. } = &error else {
        panic!("expected a failed run, got {error}");
    };
    assert!(
        error.contains("step `a` failed") && error.contains("the card was declined"),
        "{error}"
    );
    let record = run.status().await.unwrap();
    let states: Vec<_> = record
        .steps
        .iter()
        .map(|s| (s.key.as_str(), s.state))
        .collect();
    assert_eq!(
        states,
        [
            ("a", StepState::Failed),
            ("b", StepState::Skipped),
            ("c", StepState::Skipped),
            ("side", StepState::Completed),
            ("cleanup", StepState::Completed),
        ]
    );
    assert_eq!(hits(&format!("{key}:fail")), 1, "fatal: no retry");
    assert_eq!(hits(&format!("{key}:cleanup")), 1);
    assert_eq!(hits(&format!("{key}:b")), 0);
    assert_eq!(hits(&format!("{key}:c")), 0);
    assert!(
        record
            .step("c")
            .unwrap()
            .error
            .as_deref()
            .unwrap()
            .contains("`b`")
    );
    w.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_failed_step_without_after_any_fails_the_run() {
    let db = db().await;
    let rl = db.client();
    let key = token("plain");
    let w = start(worker(&db)).await;
    let run = WithoutCleanup { key: key.clone() }
        .enqueue(&rl)
        .await
        .unwrap();
    assert!(matches!(
        run.wait_timeout(WAIT).await,
        Err(Error::WorkflowFailed { .. })
    ));
    let record = run.status().await.unwrap();
    assert_eq!(record.state, RunState::Failed);
    assert!(record.finished_at.is_some());
    let states: Vec<_> = record.steps.iter().map(|s| s.state).collect();
    assert_eq!(
        states,
        [StepState::Failed, StepState::Skipped, StepState::Skipped]
    );
    assert_eq!(hits(&format!("{key}:b")) + hits(&format!("{key}:c")), 0);
    w.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_step_is_retried_inside_its_run() {
    let db = db().await;
    let rl = db.client();
    let key = token("retried");
    let w = start(worker(&db)).await;
    let run = Retried { key: key.clone() }.enqueue(&rl).await.unwrap();
    assert_eq!(run.wait_timeout(WAIT).await.unwrap(), 4);
    assert_eq!(hits(&key), 2);
    let record = run.status().await.unwrap();
    assert_eq!(record.step("first").unwrap().attempt, Some(2));
    w.shutdown().await.unwrap();
}

#[tokio::test]
async fn cancelling_a_run_cancels_pending_and_running_steps() {
    let db = db().await;
    let rl = db.client();
    let key = token("cancel");
    let w = start(worker(&db)).await;
    let run = Cancellable { key: key.clone() }.enqueue(&rl).await.unwrap();
    wait_until(WAIT, "long step running", || async { hits(&key) == 1 }).await;
    wait_until(WAIT, "side step done", || async {
        step_state(&rl, run.id(), "side").await == StepState::Completed
    })
    .await;
    assert_eq!(run.cancel().await.unwrap(), RunState::Running);
    assert!(matches!(
        run.wait_timeout(WAIT).await,
        Err(Error::WorkflowCancelled { .. })
    ));
    wait_until(WAIT, "running step job cancelled", || async {
        step_state(&rl, run.id(), "long").await == StepState::Cancelled
    })
    .await;
    let record = run.status().await.unwrap();
    assert_eq!(record.state, RunState::Cancelled);
    assert_eq!(record.step("record").unwrap().state, StepState::Cancelled);
    assert_eq!(record.step("side").unwrap().state, StepState::Completed);
    let long_job = rl
        .job(record.step("long").unwrap().job.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(long_job.state, JobState::Cancelled);
    assert_eq!(hits(&format!("{key}:after")), 0);
    // Cancelling again changes nothing.
    assert_eq!(run.cancel().await.unwrap(), RunState::Cancelled);
    w.shutdown().await.unwrap();
}

#[tokio::test]
async fn gates_complete_once_and_only_in_their_own_run() {
    let db = db().await;
    let rl = db.client();
    let key = token("gate");
    let run = Gated { key: key.clone() }.enqueue(&rl).await.unwrap();
    let other = Diamond { seed: 1 }.enqueue(&rl).await.unwrap();
    // A run without that gate, and a gate name the run does not have, are rejected.
    assert!(matches!(
        rl.complete_gate(other.id(), "approval").await,
        Err(Error::GateNotFound { .. })
    ));
    assert!(matches!(
        run.complete_gate("approvall").await,
        Err(Error::GateNotFound { .. })
    ));
    assert!(matches!(
        rl.complete_gate(runledger::workflow::RunId(i64::MAX), "approval")
            .await,
        Err(Error::GateNotFound { .. })
    ));
    assert_eq!(
        step_state(&rl, run.id(), "record").await,
        StepState::Pending
    );
    assert_eq!(
        run.complete_gate("approval").await.unwrap(),
        GateOutcome::Completed
    );
    assert_eq!(
        run.complete_gate("approval").await.unwrap(),
        GateOutcome::AlreadyCompleted
    );
    // Completed twice, released once.
    let jobs = rl
        .job(
            rl.workflow_run(run.id())
                .await
                .unwrap()
                .unwrap()
                .step("record")
                .unwrap()
                .job
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(jobs.is_some());
    let w = start(worker(&db)).await;
    assert_eq!(run.wait_timeout(WAIT).await.unwrap(), "approved");
    assert_eq!(hits(&format!("{key}:approved")), 1);
    assert_eq!(
        run.complete_gate("approval").await.unwrap(),
        GateOutcome::AlreadyCompleted
    );
    w.shutdown().await.unwrap();
}

#[tokio::test]
async fn idempotent_start_returns_the_same_run() {
    let db = db().await;
    let rl = db.client();
    let first = Diamond { seed: 3 }
        .enqueue(&rl)
        .idempotency_key("order-3")
        .await
        .unwrap();
    assert!(first.inserted());
    let again = Diamond { seed: 3 }
        .enqueue(&rl)
        .idempotency_key("order-3")
        .await
        .unwrap();
    assert!(!again.inserted());
    assert_eq!(first.id(), again.id());
    let conflict = Diamond { seed: 4 }
        .enqueue(&rl)
        .idempotency_key("order-3")
        .await
        .unwrap_err();
    assert!(
        matches!(&conflict, Error::IdempotencyConflict { run, .. } if *run == first.id()),
        "{conflict}"
    );
    assert!(
        conflict.to_string().contains("different input"),
        "{conflict}"
    );
    // Another workflow may use the same key.
    let fan = Fan { n: 1 }
        .enqueue(&rl)
        .idempotency_key("order-3")
        .await
        .unwrap();
    assert_ne!(fan.id(), first.id());

    // Sixteen concurrent starts with one key: one run.
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let rl = rl.clone();
        tasks.push(tokio::spawn(async move {
            Diamond { seed: 9 }
                .enqueue(&rl)
                .idempotency_key("burst")
                .await
                .unwrap()
                .id()
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let steps: i64 =
        sqlx::query_scalar("SELECT count(*) FROM runledger.workflow_steps WHERE run_id = $1")
            .bind(ids[0].0)
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(steps, 4);

    let w = start(worker(&db)).await;
    assert_eq!(
        again.wait_timeout(WAIT).await.unwrap().total,
        3 + 1 + 3 + 10
    );
    w.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_run_started_in_a_rolled_back_transaction_leaves_nothing() {
    let db = db().await;
    let rl = db.client();
    let mut tx = db.pool().begin().await.unwrap();
    let run = Diamond { seed: 1 }.enqueue_tx(&rl, &mut tx).await.unwrap();
    tx.rollback().await.unwrap();
    assert!(rl.workflow_run(run.id()).await.unwrap().is_none());
    assert_eq!(common::counts(&rl).await.values().sum::<i64>(), 0);

    let mut tx = db.pool().begin().await.unwrap();
    let run = Diamond { seed: 1 }.enqueue_tx(&rl, &mut tx).await.unwrap();
    tx.commit().await.unwrap();
    let w = start(worker(&db)).await;
    assert_eq!(run.wait_timeout(WAIT).await.unwrap().total, 13);
    w.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_run_of_another_shape_is_reported() {
    let db = db().await;
    let rl = db.client();
    let run = Diamond { seed: 2 }
        .enqueue(&rl)
        .idempotency_key("k")
        .await
        .unwrap();
    // As if an older version of the program had started it.
    sqlx::query("UPDATE runledger.workflow_runs SET fingerprint = 'older' WHERE id = $1")
        .bind(run.id().0)
        .execute(db.pool())
        .await
        .unwrap();
    let typed = rl.workflow_handle::<Diamond>(run.id());
    let error = typed.wait_timeout(WAIT).await.unwrap_err();
    assert!(matches!(error, Error::ShapeChanged { .. }), "{error}");
    let error = Diamond { seed: 2 }
        .enqueue(&rl)
        .idempotency_key("k")
        .await
        .unwrap_err();
    assert!(matches!(error, Error::ShapeChanged { .. }), "{error}");
    // Read untyped, it is still there, with the shape it was started under.
    let record = rl.workflow_run(run.id()).await.unwrap().unwrap();
    assert_eq!(record.fingerprint, "older");
}

#[tokio::test]
async fn shapes_are_registered() {
    let names: Vec<_> = runledger::workflow::workflows().map(|s| s.name).collect();
    assert!(names.contains(&"orders.fulfil"), "{names:?}");
    let shape = FulfilOrder::SHAPE;
    assert_eq!(shape.output, Some("send_receipt"));
    let label = shape.step("label").unwrap();
    let after: Vec<_> = label.after.iter().map(|d| d.step).collect();
    assert_eq!(after, ["stock", "ok"]);
    let params: Vec<_> = label
        .bindings
        .iter()
        .map(|b| (b.param, b.step, b.path.to_vec()))
        .collect();
    assert_eq!(
        params,
        [
            ("warehouse", "stock", vec!["warehouse"]),
            ("second", "stock", vec!["items", "1"])
        ]
    );
    assert!(matches!(
        shape.step("charge").unwrap().kind,
        runledger::workflow::StepKind::Job { kind: "charge_card", options } if options.queue == "payments"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_runs_on_three_workers_finish_exactly_once_without_deadlocks() {
    let db = db().await;
    let rl = db.client();
    let key = token("pairs");
    let workers = [
        start(worker(&db).concurrency(8)).await,
        start(worker(&db).concurrency(8)).await,
        start(worker(&db).concurrency(8)).await,
    ];
    let mut runs = Vec::new();
    let mut fan_ins = Vec::new();
    for _ in 0..40 {
        runs.push(
            SlowPair {
                key: key.clone(),
                millis: 5,
            }
            .enqueue(&rl)
            .await
            .unwrap(),
        );
        fan_ins.push(FanIn8 { key: key.clone() }.enqueue(&rl).await.unwrap());
    }
    for run in &runs {
        assert_eq!(run.wait_timeout(WAIT).await.unwrap(), 10);
    }
    for run in &fan_ins {
        run.wait_timeout(WAIT).await.unwrap();
    }
    assert_eq!(hits(&key), 80 + 40 * 8);
    assert_eq!(hits(&format!("{key}:child")), 40);
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM runledger.jobs WHERE step = 'sum'")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(jobs, 40, "each fan-in step released once per run");
    for w in workers {
        w.shutdown().await.unwrap();
    }
    // Three workers' completers wrote batches touching the same runs; none may have deadlocked
    // (a guard: the lock order of `complete_batch` is what rules it out). Statistics reach the
    // view within a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let deadlocks: i64 = sqlx::query_scalar(
        "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(deadlocks, 0);
}

/// Entry point of the child worker process used by `a_run_whose_worker_is_killed_finishes`.
#[tokio::test]
#[ignore = "run as a child process by a_run_whose_worker_is_killed_finishes"]
async fn child_workflow_worker() {
    common::child_worker_main().await;
}

#[tokio::test]
async fn a_run_whose_worker_is_killed_finishes_after_rescue() {
    let db = db().await;
    let rl = db.client();
    let key = token("killed");
    let run = SlowPair {
        key: key.clone(),
        millis: 3_000,
    }
    .enqueue(&rl)
    .await
    .unwrap();
    let mut child = common::spawn_child_worker("child_workflow_worker", db.url());
    wait_until(WAIT, "both slow steps running in the child", || async {
        common::count(&rl, JobState::Running).await == 2
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();

    let w = start(
        worker(&db)
            .lease(Duration::from_secs(1))
            .rescue_interval(Duration::from_millis(200)),
    )
    .await;
    assert_eq!(
        run.wait_timeout(Duration::from_secs(30)).await.unwrap(),
        6_000
    );
    let record = run.status().await.unwrap();
    assert_eq!(record.step("a").unwrap().attempt, Some(2));
    assert_eq!(record.step("b").unwrap().attempt, Some(2));
    assert_eq!(record.step("sum").unwrap().attempt, Some(1));
    w.shutdown().await.unwrap();
}

#[job]
async fn fan_parent(key: String) -> Result<(), JobError> {
    hit(&key);
    Ok(())
}

macro_rules! fan_in_workflow {
    ($name:ident: $($parent:ident)*) => {
        /// Parents that all feed one child.
        #[workflow]
        fn $name(key: String) {
            $(let $parent = fan_parent(key.clone());)*
            record(key, "child".to_string()).after($($parent),*)
        }
    };
}

fan_in_workflow!(fan_in_8: p0 p1 p2 p3 p4 p5 p6 p7);

#[tokio::test]
async fn finished_runs_are_pruned_after_their_retention_and_running_ones_never() {
    let db = db().await;
    let rl = db.client();
    let w = start(worker(&db)).await;
    let old = Diamond { seed: 1 }.enqueue(&rl).await.unwrap();
    let recent = Diamond { seed: 2 }.enqueue(&rl).await.unwrap();
    old.wait_timeout(WAIT).await.unwrap();
    recent.wait_timeout(WAIT).await.unwrap();
    w.shutdown().await.unwrap();
    let open = Gated {
        key: token("prune"),
    }
    .enqueue(&rl)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE runledger.workflow_runs SET finished_at = now() - interval '2 hours' WHERE id = $1",
    )
    .bind(old.id().0)
    .execute(db.pool())
    .await
    .unwrap();

    let w = start(
        worker(&db)
            .retention(
                runledger::worker::Retention::forever().workflow_runs(Duration::from_secs(3600)),
            )
            .prune_interval(Duration::from_millis(100)),
    )
    .await;
    wait_until(WAIT, "the old run pruned", || async {
        rl.workflow_run(old.id()).await.unwrap().is_none()
    })
    .await;
    w.shutdown().await.unwrap();
    assert!(rl.workflow_run(recent.id()).await.unwrap().is_some());
    let open = rl.workflow_run(open.id()).await.unwrap().unwrap();
    assert_eq!(open.state, RunState::Running);
    let left: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM runledger.workflow_steps WHERE run_id = $1) \
              + (SELECT count(*) FROM runledger.workflow_edges WHERE run_id = $1) \
              + (SELECT count(*) FROM runledger.workflow_bindings WHERE run_id = $1)",
    )
    .bind(old.id().0)
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(left, 0, "steps, edges and bindings of the pruned run");
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Renamed {
    #[serde(rename = "amountCents")]
    pub amount_cents: i64,
}

#[job]
async fn renamed_output(cents: i64) -> Result<Renamed, JobError> {
    Ok(Renamed {
        amount_cents: cents,
    })
}

/// Reads a field whose serialized name differs from its Rust name.
#[workflow]
fn reads_renamed(cents: i64, key: String) {
    let r = renamed_output(cents);
    let sum = add(r.amount_cents, 1);
    let cleanup = record(key, "cleanup".to_string()).after_any(sum);
}

#[tokio::test]
async fn a_field_missing_from_the_serialized_output_fails_the_step_with_the_reason() {
    let db = db().await;
    let rl = db.client();
    let key = token("renamed");
    let w = start(worker(&db)).await;
    let run = ReadsRenamed {
        cents: 5,
        key: key.clone(),
    }
    .enqueue(&rl)
    .await
    .unwrap();
    let error = run.wait_timeout(WAIT).await.unwrap_err();
    w.shutdown().await.unwrap();
    assert!(matches!(error, Error::WorkflowFailed { .. }), "{error}");
    let record = run.status().await.unwrap();
    let sum = record.step("sum").unwrap();
    assert_eq!(sum.state, StepState::Failed);
    assert!(sum.job.is_none(), "never released as a job");
    let reason = sum.error.as_deref().unwrap();
    assert!(
        reason.contains("the output of step `r` has no field `amount_cents` for argument `x`"),
        "{reason}"
    );
    assert!(error.to_string().contains("amount_cents"), "{error}");
    // Propagated like any failure: `after_any` still runs.
    assert_eq!(record.step("cleanup").unwrap().state, StepState::Completed);
    assert_eq!(hits(&format!("{key}:cleanup")), 1);
}

#[tokio::test]
async fn drain_runs_a_whole_workflow_inline() {
    let db = db().await;
    let rl = db.client();
    let run = Diamond { seed: 7 }.enqueue(&rl).await.unwrap();
    let report = runledger::testing::drain(&rl, ["default"]).await.unwrap();
    assert_eq!(report.completed, 4, "{report:?}");
    let record = run.status().await.unwrap();
    assert_eq!(record.state, RunState::Completed);
    assert_eq!(run.wait().await.unwrap().total, 7 + 1 + 7 + 10);
}

#[tokio::test]
async fn gates_and_cancels_join_the_callers_transaction() {
    let db = db().await;
    let rl = db.client();
    let run = Gated {
        key: token("gate-tx"),
    }
    .enqueue(&rl)
    .await
    .unwrap();
    // Rolled back: the gate still waits and the run still runs.
    let mut tx = db.pool().begin().await.unwrap();
    assert_eq!(
        rl.complete_gate_tx(&mut tx, run.id(), "approval")
            .await
            .unwrap(),
        GateOutcome::Completed
    );
    assert_eq!(
        rl.cancel_workflow_tx(&mut tx, run.id()).await.unwrap(),
        RunState::Running
    );
    tx.rollback().await.unwrap();
    assert_eq!(
        step_state(&rl, run.id(), "approval").await,
        StepState::Waiting
    );
    assert_eq!(run.status().await.unwrap().state, RunState::Running);
    // Committed: both hold.
    let mut tx = db.pool().begin().await.unwrap();
    rl.complete_gate_tx(&mut tx, run.id(), "approval")
        .await
        .unwrap();
    rl.cancel_workflow_tx(&mut tx, run.id()).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        step_state(&rl, run.id(), "approval").await,
        StepState::Completed
    );
    assert_eq!(run.status().await.unwrap().state, RunState::Cancelled);
}

/// Three workers with the default claim and completion pipelines (prefetch, two writers each)
/// drain fan-in workflows and plain jobs together: every run completes with the right totals,
/// and the server records no deadlock (a deadlock would be retried, so only its counter shows).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_finish_everything_without_a_deadlock() {
    let db = db().await;
    let rl = db.client();
    let deadlocks = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(db.pool())
        .await
        .unwrap()
    };
    let before = deadlocks().await;
    let mut fans = Vec::new();
    for n in 0..60 {
        fans.push(Fan { n }.enqueue(&rl).await.unwrap().id());
        Diamond { seed: n }.enqueue(&rl).await.unwrap();
    }
    rl.enqueue_many((0..1500).map(|x| Add { x, y: 1 }))
        .await
        .unwrap();
    // Pools of their own, closed at the end: a session's statistics (deadlocks among them)
    // reach `pg_stat_database` when it ends.
    let mut pools = Vec::new();
    let mut workers = Vec::new();
    for id in ["w1", "w2", "w3"] {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(16)
            .connect(db.url())
            .await
            .unwrap();
        let builder = Worker::builder(pool.clone())
            .id(id)
            .queues(["default", "payments"])
            .poll_interval(Duration::from_millis(100))
            // The third has room for more than one batch of claims: it claims on two
            // connections at once.
            .concurrency(if id == "w3" { 250 } else { 50 });
        workers.push(start(builder).await);
        pools.push(pool);
    }
    wait_until(Duration::from_secs(60), "every job completed", || async {
        common::counts(&rl)
            .await
            .iter()
            .filter(|(state, _)| **state != JobState::Completed)
            .all(|(_, n)| *n == 0)
    })
    .await;
    for worker in workers {
        let metrics = worker.shutdown().await.unwrap().metrics;
        assert_eq!((metrics.fenced, metrics.lease_lost), (0, 0), "{metrics:?}");
    }
    for n in 0..60 {
        let handle = rl.workflow_handle::<Fan>(fans[n as usize]);
        let s = n;
        let expected: i64 = (0..10).map(|o| (s + o) * (s + o)).sum();
        assert_eq!(handle.wait().await.unwrap(), expected);
    }
    for pool in pools {
        pool.close().await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        deadlocks().await,
        before,
        "no deadlock between the workers' statements"
    );
}
