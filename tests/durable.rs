//! Durable jobs against a real PostgreSQL: each test reads back the exact journal (position,
//! kind, name, key) the job recorded.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{StartOk, db, hit, hits, job, token, wait_until};
use runledger::durable::{Event, Selected, Waited};
use runledger::job::{JobId, JobState};
use runledger::testing::TestDatabase;
use runledger::worker::WorkerBuilder;
use runledger::{Error, JobContext, JobError, Runledger, Worker, job};
use serde::{Deserialize, Serialize};

/// (position, kind, name, key) of each recorded call.
async fn journal(rl: &Runledger, id: JobId) -> Vec<(i32, String, String, Option<String>)> {
    rl.journal(id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.position, e.kind, e.name, e.key))
        .collect()
}

fn call(
    position: i32,
    kind: &str,
    name: &str,
    key: Option<&str>,
) -> (i32, String, String, Option<String>) {
    (position, kind.into(), name.into(), key.map(Into::into))
}

/// Waits up to 5 s until job `id` is in `state`.
async fn reaches(rl: &Runledger, id: JobId, state: JobState, what: &str) {
    wait_until(Duration::from_secs(5), what, || async {
        job(rl, id).await.state == state
    })
    .await;
}

fn worker(db: &TestDatabase) -> WorkerBuilder {
    Worker::builder(db.pool().clone())
        .queues(["default", "durable"])
        .poll_interval(Duration::from_millis(100))
}

/// Three steps; the second fails on the job's first attempt, after the first was recorded.
#[job(durable, queue = "durable", backoff(constant = "50ms"))]
async fn three_steps(ctx: &JobContext, key: String) -> Result<String, JobError> {
    let a: String = ctx
        .step("a")
        .run(|| async {
            hit(&format!("{key}:a"));
            Ok("A".to_owned())
        })
        .await?;
    let b: u32 = ctx
        .step("b")
        .run(|| async {
            if hit(&format!("{key}:b")) == 1 {
                return Err(JobError::retry("provider down"));
            }
            Ok(2)
        })
        .await?;
    let c: String = ctx
        .step("c")
        .key(b)
        .run(|| async {
            hit(&format!("{key}:c"));
            Ok(format!("{a}{b}"))
        })
        .await?;
    Ok(c)
}

#[tokio::test]
async fn a_failed_step_runs_again_and_recorded_steps_do_not() {
    let db = db().await;
    let rl = db.client();
    let key = token("three");
    let handle = ThreeSteps { key: key.clone() }.enqueue(&rl).await.unwrap();
    let w = worker(&db).start_ok().await;
    assert_eq!(
        handle.wait_timeout(Duration::from_secs(10)).await.unwrap(),
        "A2"
    );
    w.shutdown().await.unwrap();
    assert_eq!(
        (
            hits(&format!("{key}:a")),
            hits(&format!("{key}:b")),
            hits(&format!("{key}:c"))
        ),
        (1, 2, 1)
    );
    assert_eq!(
        journal(&rl, handle.id()).await,
        [
            call(0, "step", "a", None),
            call(1, "step", "b", None),
            call(2, "step", "c", Some("2"))
        ]
    );
    let entries = rl.journal(handle.id()).await.unwrap();
    assert_eq!(
        entries.iter().map(|e| e.attempt).collect::<Vec<_>>(),
        [1, 2, 2]
    );
    assert_eq!(entries[0].output, Some(serde_json::json!("A")));
    assert_eq!(entries[0].version, 1);
}

/// Sleeps, then records a step.
#[job(durable, queue = "durable")]
async fn napper(ctx: &JobContext, key: String, millis: u64) -> Result<u64, JobError> {
    hit(&format!("{key}:start"));
    ctx.sleep("nap", Duration::from_millis(millis)).await?;
    let woke: u64 = ctx
        .step("woke")
        .run(|| async {
            hit(&format!("{key}:woke"));
            Ok(millis)
        })
        .await?;
    Ok(woke)
}

#[job(queue = "durable")]
async fn quick(key: String) -> Result<(), JobError> {
    hit(&key);
    Ok(())
}

#[tokio::test]
async fn a_sleep_releases_the_worker_and_wakes_on_time() {
    let db = db().await;
    let rl = db.client();
    let key = token("nap");
    let started = Instant::now();
    let sleeper = Napper {
        key: key.clone(),
        millis: 3000,
    }
    .enqueue(&rl)
    .await
    .unwrap();
    let w = worker(&db).concurrency(1).start_ok().await;
    reaches(&rl, sleeper.id(), JobState::Waiting, "the sleeper suspends").await;
    let record = job(&rl, sleeper.id()).await;
    assert_eq!(
        record.waiting_for,
        Some(serde_json::json!([{ "sleep": "nap" }]))
    );
    // One slot, and the sleeper does not hold it: another job runs meanwhile.
    let other = token("other");
    let quick = Quick { key: other.clone() }.enqueue(&rl).await.unwrap();
    quick.wait_timeout(Duration::from_secs(5)).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(3000));
    assert_eq!(job(&rl, sleeper.id()).await.state, JobState::Waiting);
    assert_eq!(
        sleeper.wait_timeout(Duration::from_secs(10)).await.unwrap(),
        3000
    );
    assert!(started.elapsed() >= Duration::from_millis(3000));
    w.shutdown().await.unwrap();
    assert_eq!(hits(&format!("{key}:start")), 2);
    assert_eq!(hits(&format!("{key}:woke")), 1);
    assert_eq!(
        journal(&rl, sleeper.id()).await,
        [call(0, "sleep", "nap", None), call(1, "step", "woke", None)]
    );
    let record = job(&rl, sleeper.id()).await;
    // Suspending spends no attempt and records no error.
    assert!(record.errors.is_empty(), "{:?}", record.errors);
    assert_eq!(record.waiting_for, None);
}

#[tokio::test]
async fn a_sleep_outlives_its_worker() {
    let db = db().await;
    let rl = db.client();
    let key = token("restart");
    let sleeper = Napper {
        key: key.clone(),
        millis: 1200,
    }
    .enqueue(&rl)
    .await
    .unwrap();
    let w = worker(&db).start_ok().await;
    reaches(&rl, sleeper.id(), JobState::Waiting, "the sleeper suspends").await;
    w.shutdown().await.unwrap();
    let due = job(&rl, sleeper.id()).await.run_at;
    let w = worker(&db).start_ok().await;
    assert_eq!(
        sleeper.wait_timeout(Duration::from_secs(10)).await.unwrap(),
        1200
    );
    w.shutdown().await.unwrap();
    let woke = rl.journal(sleeper.id()).await.unwrap()[1].recorded_at;
    assert!(woke >= due, "woke at {woke}, due at {due}");
    assert!(
        woke - due < chrono::Duration::seconds(5),
        "woke {} late",
        woke - due
    );
    assert_eq!(hits(&format!("{key}:woke")), 1);
    assert_eq!(
        journal(&rl, sleeper.id()).await,
        [call(0, "sleep", "nap", None), call(1, "step", "woke", None)]
    );
}

/// A parcel packed for an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Event)]
#[event(name = "test.packed", key = order)]
struct Packed {
    order: String,
    parcels: u32,
}

/// A signal that carries nothing: its payload is JSON `null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Ping;

impl Event for Ping {
    const NAME: &'static str = "test.ping";
    fn key(&self) -> String {
        String::new()
    }
}

#[job(durable, queue = "durable")]
async fn await_packed(
    ctx: &JobContext,
    order: String,
    timeout_ms: u64,
) -> Result<Option<u32>, JobError> {
    let waited = ctx
        .wait::<Packed>(&order)
        .timeout(Duration::from_millis(timeout_ms))
        .await?;
    Ok(waited.received().map(|p| p.parcels))
}

#[job(durable, queue = "durable")]
async fn await_ping(ctx: &JobContext, timeout_ms: u64) -> Result<String, JobError> {
    match ctx
        .wait::<Ping>("")
        .timeout(Duration::from_millis(timeout_ms))
        .await?
    {
        Waited::Received(Ping) => Ok("received".into()),
        Waited::TimedOut => Ok("timed out".into()),
    }
}

#[tokio::test]
async fn events_before_during_twice_and_after_the_timeout() {
    let db = db().await;
    let rl = db.client();
    let w = worker(&db).start_ok().await;
    let packed = |order: &str, parcels| Packed {
        order: order.into(),
        parcels,
    };

    // Emitted before the wait begins: found at once.
    assert!(rl.emit(&packed("early", 3)).await.unwrap());
    let early = AwaitPacked {
        order: "early".into(),
        timeout_ms: 60_000,
    }
    .enqueue(&rl)
    .await
    .unwrap();
    assert_eq!(
        early.wait_timeout(Duration::from_secs(5)).await.unwrap(),
        Some(3)
    );

    // Emitted while the job is suspended, twice: the first emission wins.
    let during = AwaitPacked {
        order: "during".into(),
        timeout_ms: 60_000,
    }
    .enqueue(&rl)
    .await
    .unwrap();
    reaches(&rl, during.id(), JobState::Waiting, "the wait suspends").await;
    assert_eq!(
        job(&rl, during.id()).await.waiting_for,
        Some(serde_json::json!([{ "event": "test.packed", "key": "during" }]))
    );
    let mut tx = rl.pool().begin().await.unwrap();
    assert!(rl.emit_tx(&mut tx, &packed("during", 5)).await.unwrap());
    tx.commit().await.unwrap();
    assert!(!rl.emit(&packed("during", 9)).await.unwrap());
    assert_eq!(
        during.wait_timeout(Duration::from_secs(5)).await.unwrap(),
        Some(5)
    );
    assert_eq!(
        rl.event::<Packed>("during").await.unwrap().unwrap().event,
        packed("during", 5)
    );

    // Emitted after the timeout: the wait ended timed out, the event is kept and visible.
    let late = AwaitPacked {
        order: "late".into(),
        timeout_ms: 300,
    }
    .enqueue(&rl)
    .await
    .unwrap();
    assert_eq!(
        late.wait_timeout(Duration::from_secs(5)).await.unwrap(),
        None
    );
    assert!(rl.emit(&packed("late", 1)).await.unwrap());
    let entries = rl.journal(late.id()).await.unwrap();
    assert_eq!(entries.len(), 1);
    let output = entries[0].output.clone().unwrap();
    assert_eq!(output["timed_out"], true);
    let emitted = rl.event::<Packed>("late").await.unwrap().unwrap();
    assert!(emitted.emitted_at > entries[0].recorded_at);

    // A `null` payload is an event, not a timeout.
    let timed_out = AwaitPing { timeout_ms: 200 }.enqueue(&rl).await.unwrap();
    assert_eq!(
        timed_out
            .wait_timeout(Duration::from_secs(5))
            .await
            .unwrap(),
        "timed out"
    );
    let ping = AwaitPing { timeout_ms: 60_000 }.enqueue(&rl).await.unwrap();
    reaches(&rl, ping.id(), JobState::Waiting, "the ping wait suspends").await;
    assert!(rl.emit(&Ping).await.unwrap());
    assert_eq!(
        ping.wait_timeout(Duration::from_secs(5)).await.unwrap(),
        "received"
    );
    let pinged = rl.journal(ping.id()).await.unwrap();
    let recorded = pinged[0].output.as_ref().unwrap();
    assert_eq!(recorded.get("event"), Some(&serde_json::Value::Null));
    assert_eq!(recorded.get("timed_out"), None);
    for handle in [ping.id(), timed_out.id()] {
        assert_eq!(
            journal(&rl, handle).await,
            [call(0, "wait", "test.ping", Some(""))]
        );
    }
    let gave_up = rl.journal(timed_out.id()).await.unwrap();
    assert_eq!(gave_up[0].output.as_ref().unwrap()["timed_out"], true);
    w.shutdown().await.unwrap();

    for (handle, key) in [
        (early.id(), "early"),
        (during.id(), "during"),
        (late.id(), "late"),
    ] {
        assert_eq!(
            journal(&rl, handle).await,
            [call(0, "wait", "test.packed", Some(key))]
        );
    }
}

#[job(queue = "durable")]
async fn label(key: String, parcel: u32) -> Result<String, JobError> {
    hit(&format!("{key}:label"));
    Ok(format!("L{parcel}"))
}

#[job(durable, queue = "durable", backoff(constant = "50ms"))]
async fn ship(ctx: &JobContext, key: String) -> Result<String, JobError> {
    let child = ctx
        .spawn(
            "label",
            Label {
                key: key.clone(),
                parcel: 7,
            },
        )
        .await?;
    // The first attempt stops right after the spawn, as a crash would.
    if hit(&format!("{key}:after-spawn")) == 1 {
        return Err(JobError::retry("stopped after the spawn"));
    }
    let label = child.join().await?;
    Ok(label)
}

#[tokio::test]
async fn a_child_is_spawned_once_and_its_output_joined() {
    let db = db().await;
    let rl = db.client();
    let key = token("ship");
    let parent = Ship { key: key.clone() }.enqueue(&rl).await.unwrap();
    let w = worker(&db).start_ok().await;
    assert_eq!(
        parent.wait_timeout(Duration::from_secs(10)).await.unwrap(),
        "L7"
    );
    w.shutdown().await.unwrap();
    let children = rl.children(parent.id()).await.unwrap();
    assert_eq!(children.len(), 1);
    assert_eq!(hits(&format!("{key}:label")), 1);
    let child = job(&rl, children[0]).await;
    assert_eq!(child.parent_id, Some(parent.id()));
    let child_key = children[0].to_string();
    assert_eq!(
        journal(&rl, parent.id()).await,
        [
            call(0, "spawn", "label", None),
            call(1, "join", "label", Some(&child_key))
        ]
    );
}

#[job(queue = "durable")]
async fn stuck(ctx: &JobContext, key: String) -> Result<(), JobError> {
    hit(&key);
    ctx.stopped().await;
    Ok(())
}

#[job(durable, queue = "durable")]
async fn fan_out(ctx: &JobContext, key: String) -> Result<(), JobError> {
    let a = ctx
        .spawn(
            "a",
            Stuck {
                key: format!("{key}:a"),
            },
        )
        .await?;
    let b = ctx
        .spawn(
            "b",
            Stuck {
                key: format!("{key}:b"),
            },
        )
        .await?;
    let _ = b;
    a.join().await?;
    Ok(())
}

#[tokio::test]
async fn cancelling_a_parent_cancels_its_children() {
    let db = db().await;
    let rl = db.client();
    let key = token("fan");
    let parent = FanOut { key: key.clone() }.enqueue(&rl).await.unwrap();
    let w = worker(&db).start_ok().await;
    reaches(
        &rl,
        parent.id(),
        JobState::Waiting,
        "the parent waits for a",
    )
    .await;
    wait_until(Duration::from_secs(5), "both children run", || async {
        hits(&format!("{key}:a")) == 1 && hits(&format!("{key}:b")) == 1
    })
    .await;
    rl.cancel(parent.id()).await.unwrap();
    let children = rl.children(parent.id()).await.unwrap();
    assert_eq!(children.len(), 2);
    for child in &children {
        let child = *child;
        reaches(&rl, child, JobState::Cancelled, "the child is cancelled").await;
    }
    assert_eq!(job(&rl, parent.id()).await.state, JobState::Cancelled);
    w.shutdown().await.unwrap();
}

#[job(durable, queue = "durable")]
async fn pair(ctx: &JobContext, key: String, slow_first: bool) -> Result<(u64, u64), JobError> {
    let delays = if slow_first { (120, 10) } else { (10, 120) };
    let first = ctx.step("first").run(|| async move {
        tokio::time::sleep(Duration::from_millis(delays.0)).await;
        Ok(delays.0)
    });
    let second = ctx.step("second").run(|| async move {
        tokio::time::sleep(Duration::from_millis(delays.1)).await;
        Ok(delays.1)
    });
    let both = ctx.join(first, second).await?;
    let raced = ctx
        .select(
            ctx.sleep(
                "short",
                Duration::from_millis(if slow_first { 50 } else { 5_000 }),
            ),
            ctx.wait::<Packed>(&key).timeout(Duration::from_secs(60)),
        )
        .await?;
    let now = ctx.now().await?;
    let id = ctx.uuid7().await?;
    let roll = ctx.random().await?;
    assert!(now.timestamp() > 0 && id.len() == 36 && (0.0..1.0).contains(&roll));
    match raced {
        Selected::First(()) => Ok(both),
        Selected::Second(_) => Ok((both.1, both.0)),
    }
}

#[tokio::test]
async fn join_and_select_record_the_same_journal_whatever_finishes_first() {
    let db = db().await;
    let rl = db.client();
    let w = worker(&db).start_ok().await;
    let mut journals = Vec::new();
    for slow_first in [true, false] {
        let key = token("pair");
        let handle = Pair {
            key: key.clone(),
            slow_first,
        }
        .enqueue(&rl)
        .await
        .unwrap();
        if !slow_first {
            // The event wins the select this time, while the sleep still runs.
            reaches(&rl, handle.id(), JobState::Waiting, "the pair suspends").await;
            rl.emit(&Packed {
                order: key.clone(),
                parcels: 1,
            })
            .await
            .unwrap();
        }
        let out = handle.wait_timeout(Duration::from_secs(10)).await.unwrap();
        // Either way round, the outputs come back in the same order.
        assert_eq!(out, (120, 10));
        let recorded: Vec<_> = journal(&rl, handle.id())
            .await
            .into_iter()
            .map(|(p, k, n, key)| (p, k, n, key.map(|_| "key")))
            .collect();
        journals.push(recorded);
    }
    assert_eq!(journals[0], journals[1]);
    let kinds: Vec<_> = journals[0]
        .iter()
        .map(|c| (c.0, c.1.as_str(), c.2.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (0, "step", "first"),
            (1, "step", "second"),
            (2, "sleep", "short"),
            (3, "wait", "test.packed"),
            (4, "select", "select"),
            (5, "now", "now"),
            (6, "uuid", "uuid"),
            (7, "random", "random"),
        ]
    );
    w.shutdown().await.unwrap();
}

static DEPLOYED: AtomicBool = AtomicBool::new(false);

/// Records a step; "after a deploy" the code sleeps at that position instead.
#[job(durable, queue = "durable", backoff(constant = "50ms"))]
async fn evolving(ctx: &JobContext, key: String) -> Result<(), JobError> {
    if DEPLOYED.load(Ordering::SeqCst) {
        ctx.sleep("cool-off", Duration::from_millis(1)).await?;
    } else {
        ctx.step("charge").run(|| async { Ok(hit(&key)) }).await?;
        return Err(JobError::retry("crash after charging"));
    }
    Ok(())
}

#[tokio::test]
async fn changed_code_against_an_old_journal_ends_diverged_with_the_difference() {
    let db = db().await;
    let rl = db.client();
    let key = token("evolving");
    let handle = Evolving { key: key.clone() }.enqueue(&rl).await.unwrap();
    let w = worker(&db).start_ok().await;
    wait_until(
        Duration::from_secs(5),
        "the first attempt charges",
        || async { !rl.journal(handle.id()).await.unwrap().is_empty() },
    )
    .await;
    DEPLOYED.store(true, Ordering::SeqCst);
    let error = handle
        .wait_timeout(Duration::from_secs(10))
        .await
        .unwrap_err();
    w.shutdown().await.unwrap();
    let diff = "position 0: recorded step `charge`, the code now calls sleep `cool-off`";
    match error {
        Error::JobDiverged { diff: got, .. } => assert_eq!(got, diff),
        other => panic!("expected a divergence, got {other:?}"),
    }
    let record = job(&rl, handle.id()).await;
    assert_eq!(record.state, JobState::Diverged);
    assert!(record.finished_at.is_some());
    assert_eq!(
        journal(&rl, handle.id()).await,
        [call(0, "step", "charge", None)]
    );
    assert_eq!(hits(&key), 1);
}

#[job(durable, queue = "durable", timeout = "1s")]
async fn patient(ctx: &JobContext, key: String) -> Result<(), JobError> {
    hit(&key);
    ctx.sleep("long", Duration::from_millis(4500)).await?;
    Ok(())
}

#[tokio::test]
async fn a_suspended_job_is_never_rescued_or_timed_out() {
    let db = db().await;
    let rl = db.client();
    let key = token("patient");
    let handle = Patient { key: key.clone() }.enqueue(&rl).await.unwrap();
    // Leases of 1.5 s, a rescuer every 100 ms and a timeout of 1 s: all far shorter than the
    // sleep (leases long enough that a loaded machine's late renewal does not lose a running
    // attempt's).
    let w = worker(&db)
        .lease(Duration::from_millis(1500))
        .rescue_interval(Duration::from_millis(100))
        .start_ok()
        .await;
    handle.wait_timeout(Duration::from_secs(10)).await.unwrap();
    let metrics = w.metrics();
    w.shutdown().await.unwrap();
    assert_eq!(metrics.rescued, 0);
    let record = job(&rl, handle.id()).await;
    assert!(record.errors.is_empty(), "{:?}", record.errors);
    assert_eq!(record.attempt, 2);
    assert_eq!(hits(&key), 2);
}

#[tokio::test]
async fn calls_of_a_job_that_is_not_durable_fail_with_advice() {
    let db = db().await;
    let rl = db.client();
    let handle = NotDurable {}.enqueue(&rl).await.unwrap();
    let w = worker(&db).start_ok().await;
    let error = handle
        .wait_timeout(Duration::from_secs(5))
        .await
        .unwrap_err();
    w.shutdown().await.unwrap();
    assert!(
        error
            .to_string()
            .contains("declare the job `#[job(durable)]`"),
        "{error}"
    );
}

#[job(queue = "durable")]
async fn not_durable(ctx: &JobContext) -> Result<(), JobError> {
    ctx.sleep("nap", Duration::from_millis(1)).await
}

/// Version 1 of a durable job: records a step, then fails its first attempt.
#[job(durable, queue = "durable", backoff(constant = "300ms"))]
async fn versioned(ctx: &JobContext, key: String) -> Result<String, JobError> {
    let one: String = ctx
        .step("one")
        .run(|| async { Ok("v1".to_owned()) })
        .await?;
    if hit(&key) == 1 {
        return Err(JobError::retry("first attempt fails"));
    }
    Ok(one)
}

/// Version 8 of the same kind, which resumes only journals of version 7 (and its own): the
/// code another deploy would run. Not registered with the linked jobs; a worker is given it.
#[derive(Debug, Serialize, Deserialize)]
struct VersionedV8 {
    key: String,
}

impl runledger::Job for VersionedV8 {
    const KIND: &'static str = "versioned";
    const OPTIONS: runledger::job::JobOptions = runledger::job::JobOptions::new()
        .queue("durable")
        .durable(true)
        .version(8)
        .resumes(&[7]);
    type Output = String;
    async fn run(self, _ctx: &JobContext) -> Result<String, JobError> {
        Ok("v8".into())
    }
}

static VERSIONED_V8: runledger::__private::JobRegistration =
    runledger::__private::JobRegistration::of::<VersionedV8>();

#[tokio::test]
async fn a_journal_of_a_version_the_worker_cannot_resume_waits_visibly_for_one_that_can() {
    let db = db().await;
    let rl = db.client();
    let key = token("versioned");
    let handle = Versioned { key: key.clone() }.enqueue(&rl).await.unwrap();
    let v1 = worker(&db).start_ok().await;
    wait_until(
        Duration::from_secs(5),
        "version 1 records its step",
        || async { job(&rl, handle.id()).await.state == JobState::Retryable },
    )
    .await;
    v1.shutdown().await.unwrap();
    assert_eq!(rl.journal(handle.id()).await.unwrap()[0].version, 1);

    let v8 = worker(&db)
        .__registrations(vec![&VERSIONED_V8])
        .start_ok()
        .await;
    wait_until(
        Duration::from_secs(5),
        "version 8 leaves it waiting",
        || async { job(&rl, handle.id()).await.state == JobState::Waiting },
    )
    .await;
    v8.shutdown().await.unwrap();
    let record = job(&rl, handle.id()).await;
    assert_eq!(
        record.waiting_for,
        Some(serde_json::json!([{ "kind": "versioned", "version": 1 }]))
    );
    assert_eq!(hits(&key), 1, "version 8 ran nothing");

    // A worker that runs version 1 wakes it when it starts.
    let v1 = worker(&db).start_ok().await;
    assert_eq!(
        handle.wait_timeout(Duration::from_secs(5)).await.unwrap(),
        "v1"
    );
    v1.shutdown().await.unwrap();
    assert_eq!(
        journal(&rl, handle.id()).await,
        [call(0, "step", "one", None)]
    );
}

#[job(durable, queue = "durable")]
async fn reporter(ctx: &JobContext, order: String) -> Result<(), JobError> {
    ctx.progress(serde_json::json!({ "done": 1, "of": 2 }))
        .await
        .map_err(JobError::retry)?;
    ctx.wait::<Packed>(&order).await?;
    Ok(())
}

#[tokio::test]
async fn progress_is_readable_while_the_job_waits() {
    let db = db().await;
    let rl = db.client();
    let order = token("progress");
    let handle = Reporter {
        order: order.clone(),
    }
    .enqueue(&rl)
    .await
    .unwrap();
    let w = worker(&db).start_ok().await;
    reaches(&rl, handle.id(), JobState::Waiting, "the job waits").await;
    assert_eq!(
        job(&rl, handle.id()).await.progress,
        Some(serde_json::json!({ "done": 1, "of": 2 }))
    );
    assert_eq!(
        handle.progress().await.unwrap(),
        Some(serde_json::json!({ "done": 1, "of": 2 }))
    );
    rl.emit(&Packed { order, parcels: 2 }).await.unwrap();
    handle.wait_timeout(Duration::from_secs(5)).await.unwrap();
    w.shutdown().await.unwrap();
}

/// An order: charge, a day's cool-off, the warehouse's event, a label from a child job.
#[job(durable, queue = "durable")]
async fn order_flow(ctx: &JobContext, order: String) -> Result<String, JobError> {
    let receipt: String = ctx
        .step("charge")
        .run(|| async { Ok("R-1".to_owned()) })
        .await?;
    ctx.sleep("cool-off", Duration::from_secs(86_400)).await?;
    let packed = ctx
        .wait::<Packed>(&order)
        .await?
        .received()
        .ok_or_else(|| JobError::fatal("never packed"))?;
    let child = ctx
        .spawn(
            "label",
            Label {
                key: order.clone(),
                parcel: packed.parcels,
            },
        )
        .await?;
    let label = child.join().await?;
    let done: String = ctx
        .step("notify")
        .run(|| async { Ok(format!("{receipt}/{label}")) })
        .await?;
    Ok(done)
}

/// The same kind after a change: a fraud check where the sleep was.
#[derive(Debug, Serialize, Deserialize)]
struct OrderFlowChanged {
    order: String,
}

impl runledger::Job for OrderFlowChanged {
    const KIND: &'static str = "order_flow";
    type Output = String;
    async fn run(self, ctx: &JobContext) -> Result<String, JobError> {
        let _: String = ctx
            .step("charge")
            .run(|| async { Ok("R-1".to_owned()) })
            .await?;
        let _: bool = ctx.step("fraud-check").run(|| async { Ok(true) }).await?;
        Ok(self.order)
    }
}

#[tokio::test]
async fn the_test_driver_skips_sleeps_supplies_events_and_stops_where_asked() {
    use runledger::testing::durable::{DurableDriver, Outcome, Replay, replay, replay_journal};
    let db = db().await;
    let rl = db.client();
    let order = token("flow");
    let packed = Packed {
        order: order.clone(),
        parcels: 4,
    };

    let started = Instant::now();
    let run = DurableDriver::new(&rl)
        .event(packed.clone())
        .run(OrderFlow {
            order: order.clone(),
        })
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(run.outcome, Outcome::Completed("R-1/L4".to_owned()));
    let child = rl.children(run.id).await.unwrap()[0].to_string();
    let recorded: Vec<_> = run
        .journal
        .iter()
        .map(|e| (e.position, e.kind.clone(), e.name.clone(), e.key.clone()))
        .collect();
    assert_eq!(
        recorded,
        [
            call(0, "step", "charge", None),
            call(1, "sleep", "cool-off", None),
            call(2, "wait", "test.packed", Some(&order)),
            call(3, "spawn", "label", None),
            call(4, "join", "label", Some(&child)),
            call(5, "step", "notify", None),
        ]
    );

    // Replaying the journal against the same code matches it to the end; against the changed
    // code it reports the first difference, and writes nothing.
    assert_eq!(
        replay::<OrderFlow>(&rl, run.id).await.unwrap(),
        Replay::Matches {
            replayed: 6,
            next: None
        }
    );
    assert_eq!(
        replay::<OrderFlowChanged>(&rl, run.id).await.unwrap(),
        Replay::Diverged {
            diff: "position 1: recorded sleep `cool-off`, the code now calls step `fraud-check`"
                .into()
        }
    );
    assert_eq!(rl.journal(run.id).await.unwrap().len(), 6);

    // Without the event it stops waiting for it; stopped before a named call, it resumes.
    let other = token("flow");
    let waiting = DurableDriver::new(&rl)
        .run(OrderFlow {
            order: other.clone(),
        })
        .await
        .unwrap();
    assert_eq!(
        waiting.outcome,
        Outcome::Waiting {
            waiting_for: serde_json::json!([{ "event": "test.packed", "key": other }])
        }
    );
    let partial = replay_journal(
        &rl,
        OrderFlow {
            order: other.clone(),
        },
        waiting.journal.clone(),
    )
    .await
    .unwrap();
    assert_eq!(
        partial,
        Replay::Matches {
            replayed: 2,
            next: Some(format!(
                "wait `test.packed` (key `{other}`) (still waiting)"
            )),
        }
    );

    let third = token("flow");
    let driver = DurableDriver::new(&rl)
        .event(Packed {
            order: third.clone(),
            parcels: 1,
        })
        .stop_before("label");
    let stopped = driver
        .run(OrderFlow {
            order: third.clone(),
        })
        .await
        .unwrap();
    assert_eq!(
        stopped.outcome,
        Outcome::Stopped {
            before: "label".into()
        }
    );
    assert_eq!(stopped.journal.len(), 3);
    let resumed = driver.resume::<String>(stopped.id).await.unwrap();
    assert_eq!(resumed.outcome, Outcome::Completed("R-1/L1".to_owned()));
}

#[tokio::test]
async fn events_are_emitted_only_in_read_committed_transactions() {
    let db = db().await;
    let rl = db.client();
    let mut tx = rl.pool().begin().await.unwrap();
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *tx)
        .await
        .unwrap();
    let error = rl
        .emit_tx(
            &mut tx,
            &Packed {
                order: "rr".into(),
                parcels: 1,
            },
        )
        .await
        .unwrap_err();
    assert!(error.to_string().contains("read committed"), "{error}");
    tx.rollback().await.unwrap();
    assert!(rl.event::<Packed>("rr").await.unwrap().is_none());
}

#[job(durable, queue = "durable")]
async fn nested(ctx: &JobContext) -> Result<String, JobError> {
    let id: String = ctx
        .step("charge")
        .run(|| async { ctx.uuid7().await })
        .await?;
    Ok(id)
}

#[tokio::test]
async fn a_journaled_call_inside_a_step_fails_the_job_with_advice() {
    let db = db().await;
    let rl = db.client();
    let handle = Nested {}.enqueue(&rl).await.unwrap();
    let w = worker(&db).start_ok().await;
    let error = handle
        .wait_timeout(Duration::from_secs(5))
        .await
        .unwrap_err();
    w.shutdown().await.unwrap();
    assert!(
        error
            .to_string()
            .contains("`ctx.uuid` was called inside the closure of step `charge`"),
        "{error}"
    );
    assert!(rl.journal(handle.id()).await.unwrap().is_empty());
}

#[job(durable, queue = "durable")]
async fn stubborn_waiter(ctx: &JobContext, key: String) -> Result<(), JobError> {
    hit(&key);
    // Keeps running past its cancel request until the wait is built.
    tokio::time::sleep(Duration::from_millis(300)).await;
    ctx.wait::<Packed>(&key).await?;
    Ok(())
}

#[tokio::test]
async fn a_cancel_requested_while_a_job_suspends_cancels_it() {
    let db = db().await;
    let rl = db.client();
    let key = token("stubborn");
    let handle = StubbornWaiter { key: key.clone() }
        .enqueue(&rl)
        .await
        .unwrap();
    let w = worker(&db).start_ok().await;
    wait_until(Duration::from_secs(5), "the job runs", || async {
        hits(&key) == 1
    })
    .await;
    // The request is recorded while the handler runs; the worker may see it only after the
    // handler has suspended.
    sqlx::query("UPDATE runledger.jobs SET cancel_requested = true WHERE id = $1")
        .bind(handle.id().0)
        .execute(rl.pool())
        .await
        .unwrap();
    reaches(
        &rl,
        handle.id(),
        JobState::Cancelled,
        "the job is cancelled",
    )
    .await;
    w.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_suspension_racing_an_uncommitted_emission_is_woken_once_it_commits() {
    let db = db().await;
    let rl = db.client();
    let order = token("racing");
    // The emission holds its condition's lock until the caller's transaction commits.
    let mut tx = rl.pool().begin().await.unwrap();
    rl.emit_tx(
        &mut tx,
        &Packed {
            order: order.clone(),
            parcels: 6,
        },
    )
    .await
    .unwrap();
    let handle = AwaitPacked {
        order: order.clone(),
        timeout_ms: 600_000,
    }
    .enqueue(&rl)
    .await
    .unwrap();
    let w = worker(&db).start_ok().await;
    // The job suspends meanwhile: it cannot see the event, and the worker does not wait for
    // the caller's transaction (other jobs keep flowing).
    reaches(&rl, handle.id(), JobState::Waiting, "the job suspends").await;
    let other = token("flowing");
    Quick { key: other.clone() }
        .enqueue(&rl)
        .await
        .unwrap()
        .wait_timeout(Duration::from_secs(5))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        handle.wait_timeout(Duration::from_secs(10)).await.unwrap(),
        Some(6)
    );
    w.shutdown().await.unwrap();
    assert_eq!(
        journal(&rl, handle.id()).await,
        [call(0, "wait", "test.packed", Some(&order))]
    );
}
