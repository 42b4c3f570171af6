//! Races: a late completion from a worker that lost its lease, heartbeats against the rescuer,
//! cancel against complete, workflow fan-in, unique keys, concurrent start-up, two schedulers
//! on one cron slot.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use runledger::job::{CancelOutcome, JobId, JobState};
use runledger::testing::TestDatabase;
use runledger::{JobContext, JobError, Schedule, Workflow, job, workflow};
use sqlx::PgPool;

use crate::harness::{
    self, Expect, Row, Scenario, executed, executions, fresh_db, install_audit, measure, start,
    wait_finished, wait_until, worker,
};

const QUEUE: &str = "rel.race";

const LEASE_LOST: &str = "lease lost while the handler runs";
const HEARTBEATS: &str = "long job with heartbeats at 3.5x the lease";
const CANCEL_RACE: &str = "cancel racing complete, 1,000 jobs";
const FAN_IN: &str = "workflow fan-in, K = 2, 8, 32 parents at once";
const UNIQUE: &str = "unique key, 16 concurrent enqueues";
const MIGRATE: &str = "4 workers starting at once on an empty database";
const CRON: &str = "8 schedulers on the same cron slots";

pub const SCENARIOS: &[Scenario] = &[
    (LEASE_LOST, || Box::pin(lease_lost())),
    (HEARTBEATS, || Box::pin(heartbeats())),
    (CANCEL_RACE, || Box::pin(cancel_race())),
    (FAN_IN, || Box::pin(fan_in())),
    (UNIQUE, || Box::pin(unique())),
    (MIGRATE, || Box::pin(migrate_once())),
    (CRON, || Box::pin(cron_slot())),
];

/// Sleeps `millis`, then returns the attempt that ran it.
#[job(queue = "rel.race")]
async fn race_step(ctx: &JobContext, millis: u64) -> Result<i32, JobError> {
    executed(ctx).await;
    tokio::time::sleep(Duration::from_millis(millis)).await;
    Ok(ctx.attempt())
}

/// Waits until a second execution of this job has started; then returns its attempt.
#[job(queue = "rel.race")]
async fn outlived(ctx: &JobContext, label: String) -> Result<i32, JobError> {
    let _ = label;
    executed(ctx).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while executions(ctx.client().pool(), ctx.id().0).await < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(ctx.attempt())
}

/// Worker A runs a job and stalls past its lease (a pause, a partition: here its lease is
/// expired by hand); worker B rescues the job and runs it as attempt 2 while A's handler still
/// runs. A's late completion changes no row; B's result is the one recorded.
async fn lease_lost() -> Row {
    let db = fresh_db().await;
    let rl = db.client();
    let handle = Outlived {
        label: "stale".into(),
    }
    .enqueue(&rl)
    .await
    .expect("enqueue");
    let id = handle.id().0;
    // A long lease: A does not notice losing it before its handler returns.
    let a = start(
        worker(db.pool(), QUEUE)
            .id("worker-a")
            .kinds(["outlived"])
            .concurrency(1)
            .lease(Duration::from_secs(60))
            .rescue_interval(Duration::from_secs(60)),
    )
    .await;
    wait_until(Duration::from_secs(10), "A runs the job", || async {
        executions(db.pool(), id).await == 1
    })
    .await;
    sqlx::query(
        "UPDATE runledger.jobs SET lease_expires_at = now() - interval '1 second' WHERE id = $1",
    )
    .bind(id)
    .execute(db.pool())
    .await
    .expect("expire the lease");
    let b = start(
        worker(db.pool(), QUEUE)
            .id("worker-b")
            .kinds(["outlived"])
            .rescue_interval(Duration::from_millis(100))
            .poll_interval(Duration::from_millis(100)),
    )
    .await;
    wait_until(Duration::from_secs(10), "B runs the job", || async {
        executions(db.pool(), id).await == 2
    })
    .await;
    wait_until(
        Duration::from_secs(10),
        "A's late write refused",
        || async { a.metrics().fenced == 1 },
    )
    .await;
    assert_eq!(
        handle.wait_timeout(Duration::from_secs(10)).await.unwrap(),
        2,
        "B's result"
    );
    let a_metrics = a.shutdown().await.expect("shutdown").metrics;
    let b_metrics = b.shutdown().await.expect("shutdown").metrics;
    assert_eq!(
        (a_metrics.completed, a_metrics.fenced),
        (1, 1),
        "A tried once and changed nothing"
    );
    assert_eq!(b_metrics.completed, 1);
    let recorded: Vec<(i32, String)> = sqlx::query_as(
        "SELECT attempt, new_state FROM public.reliability_audit WHERE job_id = $1 ORDER BY seq",
    )
    .bind(id)
    .fetch_all(db.pool())
    .await
    .expect("audit");
    assert_eq!(recorded, [(2, "completed".to_owned())], "only B's outcome");
    measure(LEASE_LOST, db.pool(), &Expect::completed([id])).await
}

/// A 3.5 s job under a 1 s lease, kept alive by the worker's heartbeats, while a second worker's
/// rescuer looks for expired leases every 50 ms: it is never rescued and runs once.
async fn heartbeats() -> Row {
    let db = fresh_db().await;
    let rl = db.client();
    let handle = RaceStep { millis: 3_500 }
        .enqueue(&rl)
        .await
        .expect("enqueue");
    let w = start(
        worker(db.pool(), QUEUE)
            .kinds(["race_step"])
            .lease(Duration::from_secs(1))
            .rescue_interval(Duration::from_millis(100)),
    )
    .await;
    let watcher = start(
        worker(db.pool(), "rel.nothing-here")
            .kinds(["race_step"])
            .rescue_interval(Duration::from_millis(50)),
    )
    .await;
    assert_eq!(
        handle.wait_timeout(Duration::from_secs(20)).await.unwrap(),
        1
    );
    let m = w.shutdown().await.expect("shutdown").metrics;
    let watcher_m = watcher.shutdown().await.expect("shutdown").metrics;
    assert_eq!((m.rescued, watcher_m.rescued, m.lease_lost), (0, 0, 0));
    assert_eq!(executions(db.pool(), handle.id().0).await, 1);
    let row = measure(HEARTBEATS, db.pool(), &Expect::completed([handle.id().0])).await;
    assert_eq!(row.dup_executed, 0, "ran exactly once");
    row
}

/// Runs for 0 to 4 ms, so that cancels land before, during and after it runs.
#[job(queue = "rel.race")]
async fn brief(ctx: &JobContext, seq: u64) -> Result<u64, JobError> {
    executed(ctx).await;
    tokio::time::sleep(Duration::from_millis(seq % 5)).await;
    Ok(seq)
}

/// 1,000 short jobs; four cancellers walk them from the newest back while a worker runs them
/// from the oldest forward. Every job ends in exactly one terminal state that agrees with what
/// its cancel said.
async fn cancel_race() -> Row {
    let db = fresh_db().await;
    let rl = db.client();
    let n = 1000u64;
    let ids: Vec<JobId> = rl
        .enqueue_many((0..n).map(|seq| Brief { seq }))
        .await
        .expect("enqueue")
        .into_iter()
        .map(|h| h.id)
        .collect();
    let w = start(worker(db.pool(), QUEUE).kinds(["brief"]).concurrency(10)).await;
    let mut tasks = Vec::new();
    for lane in 0..4usize {
        let rl = rl.clone();
        let lane_ids: Vec<JobId> = ids.iter().rev().skip(lane).step_by(4).copied().collect();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for id in lane_ids {
                out.push((id, rl.cancel(id).await.expect("cancel")));
            }
            out
        }));
    }
    let mut outcomes: HashMap<JobId, CancelOutcome> = HashMap::new();
    for t in tasks {
        outcomes.extend(t.await.expect("canceller"));
    }
    let raw: Vec<i64> = ids.iter().map(|id| id.0).collect();
    wait_finished(db.pool(), &raw, Duration::from_secs(60)).await;
    w.shutdown().await.expect("shutdown");
    let (mut before, mut during, mut after) = (0, 0, 0);
    for id in &ids {
        let job = rl.job(*id).await.unwrap().expect("job exists");
        assert!(job.state.is_finished(), "job {id} left {}", job.state);
        match outcomes[id] {
            CancelOutcome::Cancelled => {
                before += 1;
                assert_eq!(job.state, JobState::Cancelled);
                assert_eq!(
                    job.attempt, 0,
                    "a job cancelled before it started never runs"
                );
            }
            CancelOutcome::Requested => {
                during += 1;
                assert!(matches!(
                    job.state,
                    JobState::Completed | JobState::Cancelled
                ));
            }
            CancelOutcome::AlreadyFinished(state) => {
                after += 1;
                assert_eq!(job.state, state, "a finished job never changes state");
            }
            other => panic!("unexpected {other:?}"),
        }
        match job.state {
            JobState::Completed => {
                assert_eq!(job.output, Some(job.args["seq"].clone()));
            }
            _ => assert_eq!(job.output, None, "only completed jobs have output"),
        }
        assert!(job.finished_at.is_some());
    }
    assert_eq!(before + during + after, n);
    measure(CANCEL_RACE, db.pool(), &Expect::finished(raw)).await
}

/// A fan-in parent.
#[job(queue = "rel.fanin")]
async fn rel_fan_parent(key: String) -> Result<(), JobError> {
    let _ = key;
    Ok(())
}

/// The child every parent of a fan-in run feeds.
#[job(queue = "rel.fanin")]
async fn rel_fan_child(ctx: &JobContext, key: String) -> Result<String, JobError> {
    executed(ctx).await;
    Ok(key)
}

macro_rules! fan_in_workflow {
    ($name:ident: $($parent:ident)*) => {
        /// Parents that all feed one child.
        #[workflow]
        fn $name(key: String) {
            $(let $parent = rel_fan_parent(key.clone());)*
            rel_fan_child(key).after($($parent),*)
        }
    };
}

fan_in_workflow!(rel_fan_in_2: p0 p1);
fan_in_workflow!(rel_fan_in_8: p0 p1 p2 p3 p4 p5 p6 p7);
fan_in_workflow!(rel_fan_in_32: p0 p1 p2 p3 p4 p5 p6 p7 p8 p9 p10 p11 p12 p13 p14 p15 p16 p17
    p18 p19 p20 p21 p22 p23 p24 p25 p26 p27 p28 p29 p30 p31);

/// Starts one run and completes all its parents at the same instant, each in its own
/// transaction on its own connection; the child is released exactly once, and its count of
/// pending parents ends at 0, never below. Returns the run's id.
async fn fan_in_once<W: Workflow>(
    db: &TestDatabase,
    pool: &PgPool,
    input: W,
    parents: usize,
) -> i64 {
    let rl = db.client();
    let run = rl.start(input).await.expect("start the run");
    let tokens = runledger::__bench::claim(pool, "rel.fanin", &["rel_fan_parent"], 100)
        .await
        .expect("claim the parents");
    assert_eq!(tokens.len(), parents);
    let barrier = Arc::new(tokio::sync::Barrier::new(parents));
    let mut tasks = Vec::new();
    for token in tokens {
        let pool = pool.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            runledger::__bench::complete(&pool, &[token])
                .await
                .expect("complete a parent")
        }));
    }
    for task in tasks {
        assert_eq!(task.await.expect("completer task"), 1);
    }
    let (child_jobs, pending, state): (i64, i32, String) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM runledger.jobs \
                 WHERE run_id = $1 AND kind = 'rel_fan_child'), \
                s.pending_deps, s.state \
         FROM runledger.workflow_steps s WHERE s.run_id = $1 AND s.kind = 'rel_fan_child'",
    )
    .bind(run.id().0)
    .fetch_one(pool)
    .await
    .expect("the child step");
    assert_eq!(
        (child_jobs, pending, state.as_str()),
        (1, 0, "ready"),
        "run {} with {parents} parents",
        run.id()
    );
    run.id().0
}

/// 80 runs with 2 parents, 40 with 8, 20 with 32: in each, every parent completes at the same
/// instant. Each child is released once and runs once; every run completes.
async fn fan_in() -> Row {
    let db = fresh_db().await;
    let pool = harness::pool(db.url(), 40).await;
    let mut runs = Vec::new();
    for i in 0..80 {
        let key = format!("2-{i}");
        runs.push(fan_in_once(&db, &pool, RelFanIn2 { key }, 2).await);
    }
    for i in 0..40 {
        let key = format!("8-{i}");
        runs.push(fan_in_once(&db, &pool, RelFanIn8 { key }, 8).await);
    }
    for i in 0..20 {
        let key = format!("32-{i}");
        runs.push(fan_in_once(&db, &pool, RelFanIn32 { key }, 32).await);
    }
    let w = start(worker(db.pool(), "rel.fanin").kinds(["rel_fan_child"])).await;
    wait_until(
        Duration::from_secs(30),
        "all 140 runs completed",
        || async {
            let open: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM runledger.workflow_runs WHERE state <> 'completed'",
            )
            .fetch_one(db.pool())
            .await
            .unwrap_or(-1);
            open == 0
        },
    )
    .await;
    w.shutdown().await.expect("shutdown");
    let children: i64 =
        sqlx::query_scalar("SELECT count(*) FROM runledger.jobs WHERE kind = 'rel_fan_child'")
            .fetch_one(db.pool())
            .await
            .expect("children");
    assert_eq!(children, 140, "one child per run");
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM runledger.jobs ORDER BY id")
        .fetch_all(db.pool())
        .await
        .expect("jobs");
    assert_eq!(ids.len(), 140 + 80 * 2 + 40 * 8 + 20 * 32);
    pool.close().await;
    let expect = Expect {
        complete: ids,
        runs,
        ..Expect::default()
    };
    measure(FAN_IN, db.pool(), &expect).await
}

/// Unique per account.
#[job(queue = "rel.race", unique(by = [account_id]))]
async fn rel_sync_account(ctx: &JobContext, account_id: i64, full: bool) -> Result<(), JobError> {
    let _ = (account_id, full);
    executed(ctx).await;
    Ok(())
}

/// 16 tasks enqueue a job with the same unique key at once: one row, and every handle points at
/// it. Another key is another job; a finished holder frees the key. All run.
async fn unique() -> Row {
    let db = fresh_db().await;
    let rl = db.client();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let rl = rl.clone();
        tasks.push(tokio::spawn(async move {
            RelSyncAccount {
                account_id: 42,
                full: i % 2 == 0,
            }
            .enqueue(&rl)
            .await
            .expect("enqueue")
        }));
    }
    let mut handles = Vec::new();
    for t in tasks {
        handles.push(t.await.expect("enqueuer"));
    }
    assert_eq!(handles.iter().filter(|h| h.inserted()).count(), 1);
    let holder = handles[0].id();
    assert!(
        handles.iter().all(|h| h.id() == holder),
        "every duplicate points at the holder"
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM runledger.jobs")
        .fetch_one(db.pool())
        .await
        .expect("count");
    assert_eq!(rows, 1, "one row");

    let other = RelSyncAccount {
        account_id: 7,
        full: false,
    }
    .enqueue(&rl)
    .await
    .expect("enqueue");
    assert!(other.inserted());
    assert_eq!(
        rl.cancel(holder).await.expect("cancel"),
        CancelOutcome::Cancelled
    );
    let again = RelSyncAccount {
        account_id: 42,
        full: true,
    }
    .enqueue(&rl)
    .await
    .expect("enqueue");
    assert!(again.inserted());
    assert_ne!(again.id(), holder);
    let w = start(worker(db.pool(), QUEUE).kinds(["rel_sync_account"])).await;
    let ran = [other.id().0, again.id().0];
    wait_finished(db.pool(), &ran, Duration::from_secs(10)).await;
    w.shutdown().await.expect("shutdown");
    let expect = Expect {
        complete: ran.to_vec(),
        finish: vec![holder.0],
        ..Expect::default()
    };
    measure(UNIQUE, db.pool(), &expect).await
}

/// Four workers start at the same moment on a database without runledger's schema: the
/// migrations are applied once, every worker starts, and a job runs.
async fn migrate_once() -> Row {
    let db = TestDatabase::new().await.expect("test database");
    sqlx::query("DROP SCHEMA runledger CASCADE")
        .execute(db.pool())
        .await
        .expect("drop the schema");
    let mut starts = Vec::new();
    for _ in 0..4 {
        let builder = worker(db.pool(), QUEUE).kinds(["race_step"]);
        starts.push(tokio::spawn(async move {
            builder.build().expect("builds").start().await
        }));
    }
    let mut workers = Vec::new();
    for s in starts {
        workers.push(s.await.expect("start task").expect("every worker starts"));
    }
    let versions: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT version, count(*) FROM runledger.schema_migrations GROUP BY version",
    )
    .fetch_all(db.pool())
    .await
    .expect("migrations");
    assert!(!versions.is_empty());
    assert!(versions.iter().all(|(_, n)| *n == 1), "{versions:?}");
    install_audit(db.pool()).await;
    let rl = db.client();
    let ids: Vec<i64> = rl
        .enqueue_many((0..4).map(|_| RaceStep { millis: 1 }))
        .await
        .expect("enqueue")
        .into_iter()
        .map(|h| h.id.0)
        .collect();
    wait_finished(db.pool(), &ids, Duration::from_secs(10)).await;
    for w in workers {
        w.shutdown().await.expect("shutdown");
    }
    measure(MIGRATE, db.pool(), &Expect::completed(ids)).await
}

/// Fired by the cron schedule.
#[job(queue = "rel.cron")]
async fn rel_tick(ctx: &JobContext, key: String) -> Result<(), JobError> {
    let _ = key;
    executed(ctx).await;
    Ok(())
}

/// A schedule that fires every second; ten times, its cursor is put 20 s back (partly over slots
/// fired before) and 8 schedulers fire what is due at once. Each slot is enqueued once; a worker
/// then runs every fired job.
async fn cron_slot() -> Row {
    let db = fresh_db().await;
    let rl = db.client();
    rl.add_schedule(Schedule::new(
        "raced",
        "* * * * * *",
        RelTick {
            key: "raced".into(),
        },
    ))
    .await
    .expect("add the schedule");
    let slots = || async {
        sqlx::query_scalar::<_, chrono::DateTime<chrono::Utc>>(
            "SELECT run_at FROM runledger.jobs WHERE kind = 'rel_tick' ORDER BY run_at, id",
        )
        .fetch_all(db.pool())
        .await
        .expect("slots")
    };
    for round in 0..10 {
        sqlx::query(
            "UPDATE runledger.schedules SET next_fire_at = date_trunc('second', now()) \
             - interval '20 seconds' WHERE name = 'raced'",
        )
        .execute(db.pool())
        .await
        .expect("move the cursor");
        let racers: Vec<_> = (0..8)
            .map(|_| {
                let rl = rl.clone();
                tokio::spawn(async move { runledger::testing::fire_due_schedules(&rl).await })
            })
            .collect();
        for racer in racers {
            racer.await.expect("racer").expect("fire");
        }
        let fired = slots().await;
        let mut distinct = fired.clone();
        distinct.dedup();
        assert_eq!(distinct, fired, "round {round}: a slot fired twice");
        assert!(fired.len() >= 20, "round {round}: {}", fired.len());
    }
    assert!(rl.remove_schedule("raced").await.expect("remove"));
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM runledger.jobs ORDER BY id")
        .fetch_all(db.pool())
        .await
        .expect("jobs");
    let w = start(worker(db.pool(), "rel.cron").kinds(["rel_tick"])).await;
    wait_finished(db.pool(), &ids, Duration::from_secs(20)).await;
    w.shutdown().await.expect("shutdown");
    measure(CRON, db.pool(), &Expect::completed(ids)).await
}
