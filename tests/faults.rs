//! Faults: a worker killed mid-job, a worker that lost its lease, a long job kept alive by
//! heartbeats. Each asserts on the database at the end.

mod common;

use std::time::{Duration, Instant};

use common::{count, db, flush_stats, hit, hits, job, token, wait_until};
use runledger::{JobContext, JobError, JobState, Runledger, Worker, job};

/// Sleeps `millis`, then returns the attempt that ran it.
#[job]
async fn slow_step(ctx: &JobContext, key: String, millis: u64) -> Result<i32, JobError> {
    hit(&key);
    tokio::time::sleep(Duration::from_millis(millis)).await;
    Ok(ctx.attempt())
}

/// Entry point of the child worker process used by `sigkilled_worker_jobs_are_rescued`. It runs
/// only when that test starts this binary with `--ignored` and the child's database URL.
#[tokio::test]
#[ignore = "run as a child process by sigkilled_worker_jobs_are_rescued"]
async fn child_worker_process() {
    common::child_worker_main().await;
}

#[tokio::test]
async fn sigkilled_worker_jobs_are_rescued_and_completed() {
    let db = db().await;
    let rl = db.client();
    let key = token("sigkill");
    let n = 12;
    let jobs: Vec<SlowStep> = (0..n)
        .map(|_| SlowStep {
            key: key.clone(),
            millis: 3_000,
        })
        .collect();
    let handles = rl.enqueue_many(jobs).await.unwrap();

    let mut child = common::spawn_child_worker("child_worker_process", db.url());
    wait_until(Duration::from_secs(30), "child running 4 jobs", || async {
        count(&rl, JobState::Running).await == 4
    })
    .await;
    let killed: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM runledger.jobs WHERE state = 'running'")
            .fetch_all(db.pool())
            .await
            .unwrap();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let killed_at = Instant::now();

    let w = Worker::builder(db.pool().clone())
        .concurrency(n)
        .lease(Duration::from_secs(1))
        .rescue_interval(Duration::from_millis(200))
        .poll_interval(Duration::from_millis(100))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    for h in &handles {
        rl.handle::<SlowStep>(h.id)
            .wait_timeout(Duration::from_secs(30))
            .await
            .unwrap();
    }
    let recovered = killed_at.elapsed();
    let metrics = w.shutdown().await.unwrap().metrics;

    let counts = common::counts(&rl).await;
    assert_eq!(
        counts.get(&JobState::Completed),
        Some(&(n as i64)),
        "{counts:?}"
    );
    assert_eq!(
        counts.get(&JobState::Running),
        None,
        "nothing stuck running"
    );
    assert!(metrics.rescued >= killed.len() as u64, "{metrics:?}");
    for h in &handles {
        let row = job(&rl, h.id).await;
        if killed.contains(&h.id.0) {
            assert_eq!(row.attempt, 2, "a killed job runs once more");
            assert_eq!(row.output, Some(serde_json::json!(2)));
            assert!(
                row.last_error().unwrap().contains("lease expired"),
                "{:?}",
                row.errors
            );
        } else {
            assert_eq!(row.attempt, 1);
        }
    }
    println!(
        "sigkill: jobs={n} killed_mid_job={} completed={n} stuck=0 recovered_in={recovered:?}",
        killed.len()
    );
}

/// The first attempt waits until a second attempt has started; then both return their attempt.
#[job]
async fn outlived(ctx: &JobContext, key: String) -> Result<i32, JobError> {
    hit(&key);
    let deadline = Instant::now() + Duration::from_secs(30);
    while hits(&key) < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(ctx.attempt())
}

#[tokio::test]
async fn stale_worker_completion_changes_nothing() {
    let db = db().await;
    let rl = db.client();
    let key = token("stale");
    let handle = Outlived { key: key.clone() }.enqueue(&rl).await.unwrap();

    // Worker A: long lease, so it will not notice losing it before its handler returns.
    let a = Worker::builder(db.pool().clone())
        .id("worker-a")
        .concurrency(1)
        .lease(Duration::from_secs(60))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    wait_until(Duration::from_secs(10), "A runs the job", || async {
        hits(&key) == 1
    })
    .await;
    // A stalls (GC pause, network partition): its lease runs out.
    sqlx::query(
        "UPDATE runledger.jobs SET lease_expires_at = now() - interval '1 second' WHERE id = $1",
    )
    .bind(handle.id().0)
    .execute(db.pool())
    .await
    .unwrap();
    // Worker B rescues the job and runs it again as attempt 2.
    let b = Worker::builder(db.pool().clone())
        .id("worker-b")
        .rescue_interval(Duration::from_millis(100))
        .poll_interval(Duration::from_millis(100))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    wait_until(Duration::from_secs(10), "B runs the job", || async {
        hits(&key) == 2
    })
    .await;
    // A's handler returns too; its completion is fenced off.
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
    let a_metrics = a.shutdown().await.unwrap().metrics;
    let b_metrics = b.shutdown().await.unwrap().metrics;
    assert_eq!(
        (a_metrics.completed, a_metrics.fenced),
        (1, 1),
        "A tried once, changed nothing"
    );
    assert_eq!(b_metrics.completed, 1);
    let row = job(&rl, handle.id()).await;
    assert_eq!((row.state, row.attempt), (JobState::Completed, 2));
}

#[tokio::test]
async fn long_job_with_heartbeats_is_never_rescued() {
    let db = db().await;
    let rl: Runledger = db.client();
    let key = token("heartbeat");
    let lease = Duration::from_secs(1);
    let handle = SlowStep {
        key: key.clone(),
        millis: 3_500,
    }
    .enqueue(&rl)
    .await
    .unwrap();
    let w = Worker::builder(db.pool().clone())
        .lease(lease)
        .rescue_interval(Duration::from_millis(100))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    // A second worker whose rescuer looks for expired leases all the time.
    let watcher = Worker::builder(db.pool().clone())
        .queues(["nothing-here"])
        .rescue_interval(Duration::from_millis(50))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    assert_eq!(
        handle.wait_timeout(Duration::from_secs(20)).await.unwrap(),
        1
    );
    let m = w.shutdown().await.unwrap().metrics;
    let watcher_m = watcher.shutdown().await.unwrap().metrics;
    assert_eq!((m.rescued, watcher_m.rescued, m.lease_lost), (0, 0, 0));
    assert_eq!(hits(&key), 1, "ran exactly once over 3.5x its lease");
    assert_eq!(job(&rl, handle.id()).await.attempt, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_survives_a_database_restart() {
    // A cluster of its own: the restart must not disturb the other tests' databases.
    let mut pg = runledger::EmbeddedPostgres::start().unwrap();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&pg.url())
        .await
        .unwrap();
    runledger::migrate(&pool).await.unwrap();
    let rl = Runledger::new(pool.clone());
    let key = token("restart");
    let job = |_| SlowStep {
        key: key.clone(),
        millis: 50,
    };
    let mut handles = rl.enqueue_many((0..20).map(job)).await.unwrap();
    let w = Worker::builder(pool.clone())
        .concurrency(4)
        .lease(Duration::from_secs(2))
        .rescue_interval(Duration::from_millis(500))
        .poll_interval(Duration::from_millis(500))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    wait_until(Duration::from_secs(20), "some jobs done", || async {
        hits(&key) >= 4
    })
    .await;
    let restarted = Instant::now();
    tokio::task::block_in_place(|| pg.restart()).unwrap();
    // Enqueue after the restart: the pool replaces its broken connections.
    let more = loop {
        match rl.enqueue_many((0..20).map(job)).await {
            Ok(more) => break more,
            Err(_) if restarted.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("enqueue after restart: {e}"),
        }
    };
    handles.extend(more);
    for h in &handles {
        rl.handle::<SlowStep>(h.id)
            .wait_timeout(Duration::from_secs(30))
            .await
            .unwrap();
    }
    let recovered = restarted.elapsed();
    let metrics = w.shutdown().await.unwrap().metrics;
    let counts = common::counts(&rl).await;
    assert_eq!(counts.get(&JobState::Completed), Some(&40), "{counts:?}");
    assert_eq!(counts.len(), 1, "nothing stuck: {counts:?}");
    println!(
        "restart: jobs=40 completed=40 stuck=0 executions={} recovered_in={recovered:?} rescued={}",
        hits(&key),
        metrics.rescued
    );
    pool.close().await;
}

#[tokio::test]
async fn killed_backends_do_not_strand_jobs_and_listen_comes_back() {
    let db = db().await;
    let rl = db.client();
    let key = token("terminate");
    // A poll interval far beyond the test's patience: pickups must come from notifications.
    let w = Worker::builder(db.pool().clone())
        .poll_interval(Duration::from_secs(600))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let first = SlowStep {
        key: key.clone(),
        millis: 1,
    }
    .enqueue(&rl)
    .await
    .unwrap();
    first.wait_timeout(Duration::from_secs(10)).await.unwrap();
    for round in 0..3 {
        let killed: i64 = sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_one(db.pool())
        .await
        .unwrap();
        assert!(
            killed >= 1,
            "round {round}: the listener's backend at least"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        let next = SlowStep {
            key: key.clone(),
            millis: 1,
        }
        .enqueue(&rl)
        .await
        .unwrap();
        next.wait_timeout(Duration::from_secs(10)).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "round {round}: picked up after {:?}, not by a notification",
            started.elapsed()
        );
    }
    w.shutdown().await.unwrap();
    assert_eq!(count(&rl, JobState::Completed).await, 4);
    assert_eq!(hits(&key), 4);
}

/// Runs for 0 to 4 ms, so that cancels land before, during and after it runs.
#[job]
async fn brief(seq: u64) -> Result<u64, JobError> {
    tokio::time::sleep(Duration::from_millis(seq % 5)).await;
    Ok(seq)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_racing_completion_ends_in_exactly_one_terminal_state() {
    use runledger::CancelOutcome;
    let db = db().await;
    let rl = db.client();
    let n = 1000u64;
    let handles = rl
        .enqueue_many((0..n).map(|seq| Brief { seq }))
        .await
        .unwrap();
    let w = Worker::builder(db.pool().clone())
        .concurrency(10)
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    // Four cancellers, each walking its share from the newest job back, meet the worker
    // walking from the oldest forward.
    let mut tasks = Vec::new();
    for lane in 0..4usize {
        let rl = rl.clone();
        let ids: Vec<runledger::JobId> = handles
            .iter()
            .rev()
            .skip(lane)
            .step_by(4)
            .map(|h| h.id)
            .collect();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for id in ids {
                out.push((id, rl.cancel(id).await.unwrap()));
            }
            out
        }));
    }
    let mut by_id = std::collections::HashMap::new();
    for t in tasks {
        by_id.extend(t.await.unwrap());
    }
    let outcomes: Vec<CancelOutcome> = handles.iter().map(|h| by_id[&h.id]).collect();
    for h in &handles {
        let _ = rl
            .handle::<Brief>(h.id)
            .wait_timeout(Duration::from_secs(30))
            .await;
    }
    w.shutdown().await.unwrap();
    let (mut before, mut during, mut after) = (0, 0, 0);
    for (h, outcome) in handles.iter().zip(&outcomes) {
        let row = job(&rl, h.id).await;
        assert!(row.state.is_finished(), "job {} left {}", h.id, row.state);
        match outcome {
            CancelOutcome::Cancelled => {
                before += 1;
                assert_eq!(row.state, JobState::Cancelled);
                assert_eq!(
                    row.attempt, 0,
                    "a job cancelled before it started never runs"
                );
            }
            CancelOutcome::Requested => {
                during += 1;
                assert!(matches!(
                    row.state,
                    JobState::Completed | JobState::Cancelled
                ));
            }
            CancelOutcome::AlreadyFinished(state) => {
                after += 1;
                assert_eq!(row.state, *state, "a finished job never changes state");
            }
            other => panic!("unexpected {other:?}"),
        }
        match row.state {
            JobState::Completed => assert_eq!(row.output, Some(serde_json::json!(row.args["seq"]))),
            _ => assert_eq!(row.output, None, "only completed jobs have output"),
        }
        assert!(row.finished_at.is_some());
    }
    println!(
        "cancel race: jobs={n} cancelled_before_start={before} while_running={during} after_finish={after}"
    );
    assert_eq!(before + during + after, n);
}

/// A no-op job for the back-pressure test.
#[job(queue = "pressure")]
async fn quick_step(key: String) -> Result<(), JobError> {
    hit(&key);
    Ok(())
}

#[tokio::test]
async fn a_worker_claims_no_more_than_it_can_record() {
    let db = db().await;
    let rl = db.client();
    // Recording a completion costs 20 ms a row here: far slower than the handlers finish.
    sqlx::raw_sql(
        "CREATE FUNCTION public.slow_completion() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN PERFORM pg_sleep(0.02); RETURN NEW; END $$; \
         CREATE TRIGGER slow_completion BEFORE UPDATE ON runledger.jobs FOR EACH ROW \
         WHEN (NEW.state = 'completed') EXECUTE FUNCTION public.slow_completion();",
    )
    .execute(db.pool())
    .await
    .unwrap();
    let key = token("pressure");
    let jobs = 400;
    rl.enqueue_many((0..jobs).map(|_| QuickStep { key: key.clone() }))
        .await
        .unwrap();
    let worker = Worker::builder(db.pool().clone())
        .queues(["pressure"])
        .concurrency(4)
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let mut most_running = 0;
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(3) {
        most_running = most_running.max(count(&rl, JobState::Running).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Concurrency 4: four handlers, the completer's queue (32 outcomes) and the batch being
    // written (at most what that queue held, plus the handlers waiting to join it).
    assert!(
        (4..=72).contains(&most_running),
        "at most 72 claimed jobs without a recorded outcome, saw {most_running}"
    );
    assert!(
        count(&rl, JobState::Available).await > 0,
        "the backlog waits in the queue, where any worker can take it"
    );
    sqlx::raw_sql("DROP TRIGGER slow_completion ON runledger.jobs")
        .execute(db.pool())
        .await
        .unwrap();
    wait_until(Duration::from_secs(30), "every job completed", || async {
        count(&rl, JobState::Completed).await == jobs as i64
    })
    .await;
    let metrics = worker.shutdown().await.unwrap().metrics;
    assert_eq!(metrics.completed, jobs as u64);
    assert_eq!(hits(&key), jobs as u32, "each job ran once");
}

/// `idx_tup_read` of the fetch index, as this connection's statistics see it after a flush.
async fn fetch_index_entries_read(conn: &mut sqlx::PgConnection) -> i64 {
    flush_stats(conn).await;
    sqlx::query_scalar(
        "SELECT idx_tup_read FROM pg_stat_user_indexes \
         WHERE schemaname = 'runledger' AND indexrelname = 'jobs_fetch_idx'",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_claim_reads_the_queue_in_index_order_whatever_the_statistics_say() {
    let db = db().await;
    let rl = db.client();
    // A table of finished jobs, vacuumed (which counts its rows but gathers no statistics of
    // their states), then a burst of 60,000 jobs.
    for statement in [
        "INSERT INTO runledger.jobs (kind, queue, state, finished_at) \
         SELECT 'quick_step', 'pressure', 'completed', now() FROM generate_series(1, 10000)",
        "VACUUM runledger.jobs",
    ] {
        sqlx::raw_sql(statement).execute(db.pool()).await.unwrap();
    }
    let key = token("burst");
    for _ in 0..12 {
        rl.enqueue_many((0..5_000).map(|_| QuickStep { key: key.clone() }))
            .await
            .unwrap();
    }
    let mut conn = db.pool().acquire().await.unwrap();
    // Planned on those statistics, the bare query reads every available job and sorts them.
    let before = fetch_index_entries_read(&mut conn).await;
    sqlx::query(
        "SELECT id FROM runledger.jobs \
         WHERE state = 'available' AND queue = 'pressure' AND kind = ANY('{quick_step}') \
         ORDER BY priority DESC, run_at, id LIMIT 10",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let bare = fetch_index_entries_read(&mut conn).await - before;
    assert!(
        bare >= 60_000,
        "the statistics mislead the planner here: the bare query read {bare} entries"
    );
    // The claim reads the index in order and stops after the jobs it takes.
    let before = fetch_index_entries_read(&mut conn).await;
    let claimed: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM runledger.claim_jobs('pressure', '{quick_step}', 10, 'probe', 30)",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let read = fetch_index_entries_read(&mut conn).await - before;
    assert_eq!(claimed.len(), 10);
    assert!(
        read <= 20,
        "the claim read {read} index entries for 10 jobs of 60,000 waiting"
    );
    let mut sorted = claimed.clone();
    sorted.sort_unstable();
    assert_eq!(claimed.len(), sorted.len());
    assert_eq!(
        sorted[9] - sorted[0],
        9,
        "the oldest jobs, in order: {claimed:?}"
    );
}
