//! Crashes and restarts: worker processes killed or stopped under load, the server restarted or
//! stopped mid-run, backends terminated, outcomes that meet a database that is down.

use std::time::{Duration, Instant};

use runledger::job::JobId;
use runledger::{JobContext, JobError, Runledger, job};
use sqlx::{Connection, PgPool};

use crate::harness::{
    self, ChildSettings, ChildWorker, Expect, Row, Scenario, executed, executions, fresh_db,
    measure, prepare_private, private_cluster, start, start_again, stop_server, wait_finished,
    wait_until, worker,
};

const QUEUE: &str = "rel.crash";

/// Sleeps `millis`, then returns the attempt that ran it.
#[job(queue = "rel.crash")]
async fn crash_step(ctx: &JobContext, millis: u64) -> Result<i32, JobError> {
    executed(ctx).await;
    tokio::time::sleep(Duration::from_millis(millis)).await;
    Ok(ctx.attempt())
}

/// On its first attempt runs for `millis` without looking at stop requests; later attempts
/// return at once. Returns the attempt.
#[job(queue = "rel.crash")]
async fn stubborn_step(ctx: &JobContext, millis: u64) -> Result<i32, JobError> {
    executed(ctx).await;
    if ctx.attempt() == 1 {
        tokio::time::sleep(Duration::from_millis(millis)).await;
    }
    Ok(ctx.attempt())
}

const SIGKILL: &str = "worker process SIGKILLed mid-job";
const SIGKILL_HOLDING: &str = "worker process SIGKILLed holding prefetched jobs";
const SIGTERM: &str = "worker process SIGTERMed under load";
const RESTART_IMMEDIATE: &str = "server restarted mid-run (-m immediate)";
const RESTART_FAST: &str = "server restarted mid-run (-m fast)";
const TERMINATED: &str = "backends terminated while draining";
const DOWN_AT_COMPLETION: &str = "server down while handlers finish";
const SHUTDOWN_WHILE_DOWN: &str = "shutdown while the server is down";

pub const SCENARIOS: &[Scenario] = &[
    (SIGKILL, || Box::pin(sigkill())),
    (SIGKILL_HOLDING, || Box::pin(sigkill_holding())),
    (SIGTERM, || Box::pin(sigterm())),
    (RESTART_IMMEDIATE, || Box::pin(restart_immediate())),
    (RESTART_FAST, || Box::pin(restart_fast())),
    (TERMINATED, || Box::pin(terminated_backends())),
    (DOWN_AT_COMPLETION, || Box::pin(down_at_completion())),
    (SHUTDOWN_WHILE_DOWN, || Box::pin(shutdown_while_down())),
];

/// Ids of the jobs running under worker `id`.
async fn running_under(pool: &PgPool, id: &str) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT id FROM runledger.jobs WHERE state = 'running' AND attempted_by = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .unwrap_or_default()
}

/// After a worker process was killed at `killed_at`: a worker of `concurrency` (1 s leases,
/// polling every 100 ms) rescues and completes `ids`. Returns the recovery time (kill to the
/// last job finished) and that worker's metrics.
async fn rescue(
    pool: &PgPool,
    ids: &[i64],
    concurrency: usize,
    killed_at: Instant,
) -> (Duration, runledger::worker::WorkerMetrics) {
    let w = start(
        worker(pool, QUEUE)
            .kinds(["crash_step"])
            .concurrency(concurrency)
            .lease(Duration::from_secs(1))
            .poll_interval(Duration::from_millis(100)),
    )
    .await;
    wait_finished(pool, ids, Duration::from_secs(30)).await;
    let recovery = killed_at.elapsed();
    let metrics = w.shutdown().await.expect("shutdown").metrics;
    (recovery, metrics)
}

async fn enqueue_steps(rl: &Runledger, n: usize, millis: u64) -> Vec<i64> {
    rl.enqueue_many((0..n).map(|_| CrashStep { millis }))
        .await
        .expect("enqueue")
        .into_iter()
        .map(|h| h.id.0)
        .collect()
}

/// A child process runs 4 of 12 three-second jobs and is SIGKILLed. Another worker completes all
/// 12: the killed ones after their 1 s lease expires, as attempt 2. Recovery (kill to the last
/// completion) is bounded by the lease, a rescue interval and one run of a job, 4.2 s, plus
/// slack for this machine: 10 s.
async fn sigkill() -> Row {
    let db = fresh_db().await;
    let rl = db.client();
    let n = 12;
    let ids = enqueue_steps(&rl, n, 3_000).await;
    let settings = ChildSettings {
        id: "child-sigkill",
        queue: QUEUE,
        kinds: &["crash_step"],
        concurrency: 4,
        lease: Duration::from_secs(1),
        shutdown_grace: Duration::from_secs(5),
    };
    let mut child = ChildWorker::spawn(db.url(), &settings);
    wait_until(Duration::from_secs(30), "the child runs 4 jobs", || async {
        let running = running_under(db.pool(), settings.id).await;
        let mut started = 0;
        for &id in &running {
            started += executions(db.pool(), id).await;
        }
        running.len() == 4 && started == 4
    })
    .await;
    let killed = running_under(db.pool(), settings.id).await;
    child.kill();
    let killed_at = Instant::now();

    let (recovery, metrics) = rescue(db.pool(), &ids, n, killed_at).await;
    assert!(metrics.rescued >= killed.len() as u64, "{metrics:?}");
    assert_eq!(killed.len(), 4);
    for &id in &ids {
        let job = rl.job(JobId(id)).await.unwrap().expect("job exists");
        if killed.contains(&id) {
            assert_eq!(job.attempt, 2, "a killed job runs once more");
            assert_eq!(job.output, Some(serde_json::json!(2)));
            let error = job.last_error().unwrap_or_default();
            assert!(error.contains("lease expired"), "{:?}", job.errors);
        } else {
            assert_eq!(job.attempt, 1, "job {id} was not killed");
        }
    }
    let row = measure(SIGKILL, db.pool(), &Expect::completed(ids))
        .await
        .recovered(recovery, Duration::from_secs(10));
    assert_eq!(
        row.dup_executed,
        killed.len() as u64,
        "exactly the killed jobs ran twice"
    );
    row
}

/// A child process with one slot drains a stream of 2 ms jobs, so that it claims ahead of its
/// slot (prefetch), then reaches a 3 s job: while that runs, the jobs it claimed after it wait in
/// its buffer, `running` in the database under its lease but never started. It is SIGKILLed
/// there. Another worker rescues the held jobs like the running one once their 1 s leases
/// expire, and completes everything: each held job runs exactly once (its attempt 2: the
/// rescue counts the claim as an attempt), the long job twice.
async fn sigkill_holding() -> Row {
    let db = fresh_db().await;
    let rl = db.client();
    let mut ids = enqueue_steps(&rl, 150, 2).await;
    let long = enqueue_steps(&rl, 1, 3_000).await[0];
    ids.push(long);
    ids.extend(enqueue_steps(&rl, 150, 2).await);
    let settings = ChildSettings {
        id: "child-sigkill-holding",
        queue: QUEUE,
        kinds: &["crash_step"],
        concurrency: 1,
        lease: Duration::from_secs(1),
        shutdown_grace: Duration::from_secs(5),
    };
    let mut child = ChildWorker::spawn(db.url(), &settings);
    wait_until(
        Duration::from_secs(30),
        "the child runs the long job and holds jobs claimed after it",
        || async {
            executions(db.pool(), long).await == 1
                && running_under(db.pool(), settings.id).await.len() >= 2
        },
    )
    .await;
    child.kill();
    let killed_at = Instant::now();
    let held: Vec<i64> = running_under(db.pool(), settings.id)
        .await
        .into_iter()
        .filter(|&id| id != long)
        .collect();
    assert!(!held.is_empty(), "the child held no prefetched job");
    for &id in &held {
        assert!(
            id > long,
            "job {id} was held, but claimed before the long one"
        );
        assert_eq!(
            executions(db.pool(), id).await,
            0,
            "held job {id} had started"
        );
    }

    let (recovery, metrics) = rescue(db.pool(), &ids, 8, killed_at).await;
    assert!(metrics.rescued > held.len() as u64, "{metrics:?}");
    for &id in &held {
        let job = rl.job(JobId(id)).await.unwrap().expect("job exists");
        assert_eq!(
            job.attempt, 2,
            "held job {id} is rescued like a running one"
        );
        assert_eq!(executions(db.pool(), id).await, 1, "held job {id} ran once");
        let error = job.last_error().unwrap_or_default();
        assert!(error.contains("lease expired"), "{:?}", job.errors);
    }
    let row = measure(SIGKILL_HOLDING, db.pool(), &Expect::completed(ids))
        .await
        .recovered(recovery, Duration::from_secs(10));
    assert_eq!(row.dup_executed, 1, "only the long job ran twice");
    row
}

/// A child process (concurrency 4, grace 1.5 s) runs two jobs that outlast any grace and a
/// stream of 400 ms jobs; it gets SIGTERM. It stops claiming, finishes the short jobs it runs,
/// hands back the ones it held unstarted and the two long ones, and exits within the grace
/// period plus 3 s (handing back,
/// last writes, stopping its maintenance services). Nothing is left `running`; another worker
/// completes the rest.
async fn sigterm() -> Row {
    let db = fresh_db().await;
    let rl = db.client();
    let grace = Duration::from_millis(1_500);
    // The long jobs are older, so they are claimed first.
    let stubborn: Vec<i64> = rl
        .enqueue_many((0..2).map(|_| StubbornStep { millis: 60_000 }))
        .await
        .expect("enqueue")
        .into_iter()
        .map(|h| h.id.0)
        .collect();
    let short = enqueue_steps(&rl, 24, 400).await;
    let settings = ChildSettings {
        id: "child-sigterm",
        queue: QUEUE,
        kinds: &["crash_step", "stubborn_step"],
        concurrency: 4,
        lease: Duration::from_secs(5),
        shutdown_grace: grace,
    };
    let mut child = ChildWorker::spawn(db.url(), &settings);
    wait_until(
        Duration::from_secs(30),
        "the child completed 4 jobs",
        || async { harness::count_state(db.pool(), "completed").await >= 4 },
    )
    .await;
    child.terminate();
    let signalled = Instant::now();
    let signalled_db: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT clock_timestamp()")
            .fetch_one(db.pool())
            .await
            .expect("clock");
    let status = child
        .wait_exit(Duration::from_secs(30))
        .await
        .expect("the child exits after SIGTERM");
    let exit_took = signalled.elapsed();
    assert!(status.success(), "the child exits cleanly: {status}");

    assert_eq!(
        harness::count_state(db.pool(), "running").await,
        0,
        "no job left running without an owner"
    );
    let late_claims: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM runledger.jobs \
         WHERE attempted_at > $1::timestamptz + interval '300 milliseconds'",
    )
    .bind(signalled_db)
    .fetch_one(db.pool())
    .await
    .expect("late claims");
    assert_eq!(late_claims, 0, "nothing claimed after SIGTERM");
    for &id in &stubborn {
        let job = rl.job(JobId(id)).await.unwrap().expect("job exists");
        assert_eq!(
            (job.state.as_str(), job.attempt, job.max_attempts),
            ("available", 1, 26),
            "handed back, its attempt given back"
        );
    }
    // A short job handed back was claimed ahead of the slots and never started: its attempt
    // was given back. Every short job that started finished within the grace period.
    let released: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM runledger.jobs \
         WHERE id = ANY($1) AND state = 'available' AND attempt > 0",
    )
    .bind(&short)
    .fetch_all(db.pool())
    .await
    .expect("released");
    for &id in &released {
        let job = rl.job(JobId(id)).await.unwrap().expect("job exists");
        assert_eq!(
            (
                job.attempt,
                job.max_attempts,
                executions(db.pool(), id).await
            ),
            (1, 26, 0),
            "short jobs that started finish within the grace period; the others are handed \
             back unstarted"
        );
    }

    let w = start(
        worker(db.pool(), QUEUE)
            .kinds(["crash_step", "stubborn_step"])
            .concurrency(4),
    )
    .await;
    let mut ids = stubborn.clone();
    ids.extend(&short);
    wait_finished(db.pool(), &ids, Duration::from_secs(30)).await;
    w.shutdown().await.expect("shutdown");
    for &id in &stubborn {
        let job = rl.job(JobId(id)).await.unwrap().expect("job exists");
        assert_eq!(
            job.output,
            Some(serde_json::json!(2)),
            "run again as attempt 2"
        );
    }
    measure(SIGTERM, db.pool(), &Expect::completed(ids))
        .await
        .recovered(exit_took, grace + Duration::from_secs(3))
}

async fn restart_immediate() -> Row {
    restart_mid_run(RESTART_IMMEDIATE, false).await
}

async fn restart_fast() -> Row {
    restart_mid_run(RESTART_FAST, true).await
}

/// The worker's poll interval in the restart scenarios: long, so that a job that starts soon
/// after the restart was found through a notification.
const RESTART_POLL: Duration = Duration::from_secs(10);

/// A worker drains 40 jobs on a private cluster; the server is restarted mid-run (immediate,
/// like `pg_ctl restart -m immediate`, or fast, like `-m fast`); 20
/// more jobs are enqueued once it is back. The worker never stops: every job completes, and a
/// job enqueued at the end starts at once (its listener is back). Recovery (the stop to the last
/// of the 60 completions) is bounded by the restart, a pool acquire timeout (3 s), the
/// completer's longest backoff (2 s) and a lease (2 s): 15 s.
async fn restart_mid_run(scenario: &'static str, fast: bool) -> Row {
    let mut pg = private_cluster().await;
    let pool = prepare_private(&pg, 10).await;
    let rl = Runledger::new(pool.clone());
    let mut ids = enqueue_steps(&rl, 40, 100).await;
    let w = start(
        worker(&pool, QUEUE)
            .kinds(["crash_step"])
            .concurrency(4)
            .lease(Duration::from_secs(2))
            .rescue_interval(Duration::from_millis(500))
            .poll_interval(RESTART_POLL),
    )
    .await;
    wait_until(Duration::from_secs(20), "8 jobs completed", || async {
        harness::finished_count(&pool, &ids).await >= 8
    })
    .await;
    assert!(
        harness::finished_count(&pool, &ids).await < 30,
        "the restart comes mid-run"
    );
    let stopped = Instant::now();
    tokio::task::block_in_place(|| {
        if fast {
            pg.restart_fast()
        } else {
            pg.restart()
        }
    })
    .expect("restart");
    let more = loop {
        match rl
            .enqueue_many((0..20).map(|_| CrashStep { millis: 100 }))
            .await
        {
            Ok(more) => break more,
            Err(error) => {
                assert!(
                    stopped.elapsed() < Duration::from_secs(15),
                    "enqueue after the restart: {error}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    ids.extend(more.iter().map(|h| h.id.0));
    wait_finished(&pool, &ids, Duration::from_secs(60)).await;
    let recovery = stopped.elapsed();
    let probe = enqueue_steps(&rl, 1, 1).await;
    let probed = Instant::now();
    wait_finished(&pool, &probe, RESTART_POLL).await;
    assert!(
        probed.elapsed() < Duration::from_secs(2),
        "a new job started after {:?}: not by a notification",
        probed.elapsed()
    );
    ids.extend(probe);
    w.shutdown().await.expect("the worker shuts down normally");
    let row = measure(scenario, &pool, &Expect::completed(ids))
        .await
        .recovered(recovery, Duration::from_secs(15));
    pool.close().await;
    row
}

/// The worker's poll interval while its backends are terminated.
const TERMINATE_POLL: Duration = Duration::from_secs(5);

/// Terminates every client backend of the database but the caller's; returns how many, and how
/// many of them were listening.
async fn terminate_backends(conn: &mut sqlx::PgConnection) -> (i64, i64) {
    sqlx::query_as(
        "SELECT count(pg_terminate_backend(pid)), \
                count(*) FILTER (WHERE query ILIKE 'listen%') \
         FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() \
           AND backend_type = 'client backend'",
    )
    .fetch_one(conn)
    .await
    .expect("terminate backends")
}

async fn listening(conn: &mut sqlx::PgConnection) -> bool {
    sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND query ILIKE 'listen%'",
    )
    .fetch_one(conn)
    .await
    .is_ok_and(|n| n > 0)
}

/// A worker drains 300 jobs while every backend of its database (claims, listener, completer,
/// lease keeper, handlers) is terminated every 250 ms. Then three more rounds: after each, the
/// listener is back and a new job completes within the poll interval (5 s), the recovery bound.
async fn terminated_backends() -> Row {
    let db = fresh_db().await;
    let rl = db.client();
    let mut killer = sqlx::PgConnection::connect(db.url())
        .await
        .expect("connection");
    let worker_pool = harness::pool(db.url(), 12).await;
    let w = start(
        worker(&worker_pool, QUEUE)
            .kinds(["crash_step"])
            .concurrency(8)
            .poll_interval(TERMINATE_POLL),
    )
    .await;
    let mut ids = enqueue_steps(&rl, 300, 30).await;
    let (mut rounds, mut listeners) = (0, 0);
    while harness::finished_count(db.pool(), &ids).await < ids.len() && rounds < 40 {
        let (_, listening) = terminate_backends(&mut killer).await;
        listeners += listening;
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    wait_finished(db.pool(), &ids, Duration::from_secs(60)).await;
    assert!(
        rounds >= 3,
        "only {rounds} rounds of terminations while draining"
    );
    assert!(listeners >= 1, "the listener's backend was among them");
    let mut worst = Duration::ZERO;
    for round in 0..3 {
        let settled = Instant::now();
        while !listening(&mut killer).await {
            assert!(
                settled.elapsed() < TERMINATE_POLL * 2,
                "round {round}: no listener before the round"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (killed, listening_killed) = terminate_backends(&mut killer).await;
        let killed_at = Instant::now();
        assert!(
            killed >= 1 && listening_killed == 1,
            "round {round}: killed {killed}, listening {listening_killed}"
        );
        while !listening(&mut killer).await {
            assert!(
                killed_at.elapsed() < TERMINATE_POLL,
                "round {round}: LISTEN not re-established"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let next = loop {
            match rl.enqueue(CrashStep { millis: 1 }).await {
                Ok(handle) => break handle.id().0,
                Err(error) => {
                    assert!(killed_at.elapsed() < TERMINATE_POLL, "enqueue: {error}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        wait_finished(db.pool(), &[next], TERMINATE_POLL * 2).await;
        worst = worst.max(killed_at.elapsed());
        ids.push(next);
    }
    w.shutdown().await.expect("shutdown");
    measure(TERMINATED, db.pool(), &Expect::completed(ids))
        .await
        .recovered(worst, TERMINATE_POLL)
}

/// Eight 1.5 s jobs run; the server stops (immediately) while they run and stays down 3 s, so
/// every handler finishes while it is down. The completer keeps retrying; once the server is
/// back every outcome is recorded, once, for attempt 1: none is dropped or run again. Recovery
/// (the start of the server to the last outcome recorded) is bounded by a pool acquire timeout
/// (3 s), the completer's longest backoff (2 s) and the server's start: 8 s.
async fn down_at_completion() -> Row {
    let mut pg = private_cluster().await;
    let pool = prepare_private(&pg, 12).await;
    let rl = Runledger::new(pool.clone());
    let ids = enqueue_steps(&rl, 8, 1_500).await;
    let w = start(
        worker(&pool, QUEUE)
            .kinds(["crash_step"])
            .concurrency(8)
            .lease(Duration::from_secs(20)),
    )
    .await;
    wait_until(Duration::from_secs(10), "8 jobs running", || async {
        let mut n = 0;
        for &id in &ids {
            n += executions(&pool, id).await;
        }
        n == 8
    })
    .await;
    tokio::task::block_in_place(|| stop_server(&pg, "QUIT"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(w.running() <= 8);
    let back = Instant::now();
    tokio::task::block_in_place(|| start_again(&mut pg));
    wait_finished(&pool, &ids, Duration::from_secs(30)).await;
    let recovery = back.elapsed();
    let metrics = w.shutdown().await.expect("shutdown").metrics;
    assert_eq!(metrics.completed, 8, "{metrics:?}");
    for &id in &ids {
        let job = rl.job(JobId(id)).await.unwrap().expect("job exists");
        assert_eq!(
            (job.state.as_str(), job.attempt),
            ("completed", 1),
            "recorded from the first run"
        );
    }
    let row = measure(DOWN_AT_COMPLETION, &pool, &Expect::completed(ids))
        .await
        .recovered(recovery, Duration::from_secs(8));
    pool.close().await;
    row
}

/// Four 1 s jobs run; the server stops; the handlers finish while it is down; shutdown is asked
/// for. Shutdown does not give up on the outcomes: it is still waiting 2 s later, and once the
/// server is back it records all four (attempt 1) and returns. Recovery (the start of the server
/// to shutdown's return) is bounded like the scenario above, plus stopping the maintenance
/// services: 10 s.
async fn shutdown_while_down() -> Row {
    let mut pg = private_cluster().await;
    let pool = prepare_private(&pg, 12).await;
    let rl = Runledger::new(pool.clone());
    let ids = enqueue_steps(&rl, 4, 1_000).await;
    let w = start(
        worker(&pool, QUEUE)
            .kinds(["crash_step"])
            .concurrency(4)
            .lease(Duration::from_secs(20))
            .completion_deadline(Duration::from_secs(30)),
    )
    .await;
    wait_until(Duration::from_secs(10), "4 jobs running", || async {
        let mut n = 0;
        for &id in &ids {
            n += executions(&pool, id).await;
        }
        n == 4
    })
    .await;
    tokio::task::block_in_place(|| stop_server(&pg, "QUIT"));
    // The handlers finish; their outcomes wait in the completer.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let shutdown = tokio::spawn(w.shutdown());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !shutdown.is_finished(),
        "shutdown waits while the outcomes cannot be written"
    );
    let back = Instant::now();
    tokio::task::block_in_place(|| start_again(&mut pg));
    let report = tokio::time::timeout(Duration::from_secs(40), shutdown)
        .await
        .expect("shutdown returns once the server is back")
        .expect("shutdown task")
        .expect("shutdown");
    let recovery = back.elapsed();
    assert_eq!(report.metrics.completed, 4, "{:?}", report.metrics);
    assert_eq!(report.released, 0);
    for &id in &ids {
        let job = rl.job(JobId(id)).await.unwrap().expect("job exists");
        assert_eq!(
            (job.state.as_str(), job.attempt),
            ("completed", 1),
            "recorded by the shutdown"
        );
    }
    let row = measure(SHUTDOWN_WHILE_DOWN, &pool, &Expect::completed(ids))
        .await
        .recovered(recovery, Duration::from_secs(10));
    pool.close().await;
    row
}
