//! Durable jobs under faults: a worker process killed between a step's side effect and its
//! record, and killed while its jobs sleep.

use std::time::{Duration, Instant};

use runledger::job::JobId;
use runledger::{JobContext, JobError, Runledger, job};
use sqlx::PgPool;

use crate::harness::{
    ChildSettings, ChildWorker, Expect, Row, Scenario, executed, fresh_db, measure, start,
    wait_finished, wait_until, worker,
};

const QUEUE: &str = "rel.durable";

const SIGKILL_MID_STEP: &str = "durable job SIGKILLed mid-step";
const KILLED_WHILE_SLEEPING: &str = "worker SIGKILLed while durable jobs sleep";
const KILLED_AFTER_SPAWN: &str = "durable parent SIGKILLed after spawning";

pub const SCENARIOS: &[Scenario] = &[
    (SIGKILL_MID_STEP, || Box::pin(sigkill_mid_step())),
    (KILLED_WHILE_SLEEPING, || Box::pin(killed_while_sleeping())),
    (KILLED_AFTER_SPAWN, || Box::pin(killed_after_spawn())),
];

/// Records one run of step `step` of the running job (its side effect) and returns how many
/// runs of it there have been.
async fn side_effect(ctx: &JobContext, step: &str) -> Result<i64, JobError> {
    sqlx::query("INSERT INTO public.reliability_steps (job_id, step) VALUES ($1, $2)")
        .bind(ctx.id().0)
        .bind(step)
        .execute(ctx.client().pool())
        .await?;
    Ok(runs(ctx.client().pool(), ctx.id().0, step).await)
}

/// Runs of step `step` of job `id` recorded so far.
async fn runs(pool: &PgPool, id: i64, step: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM public.reliability_steps WHERE job_id = $1 AND step = $2",
    )
    .bind(id)
    .bind(step)
    .fetch_one(pool)
    .await
    .unwrap_or(0)
}

async fn install_steps(pool: &PgPool) {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS public.reliability_steps (
             seq    bigserial PRIMARY KEY,
             job_id bigint    NOT NULL,
             step   text      NOT NULL
         )",
    )
    .execute(pool)
    .await
    .expect("install the steps table");
}

/// Three steps. The first run of `b` lingers for `linger_ms` after its side effect, before its
/// output is recorded: the window a crash hits.
#[job(durable, queue = "rel.durable")]
async fn durable_steps(ctx: &JobContext, linger_ms: u64) -> Result<i64, JobError> {
    executed(ctx).await;
    let a: i64 = ctx.step("a").run(|| side_effect(ctx, "a")).await?;
    let b: i64 = ctx
        .step("b")
        .run(|| async {
            let n = side_effect(ctx, "b").await?;
            if n == 1 {
                tokio::time::sleep(Duration::from_millis(linger_ms)).await;
            }
            Ok(n)
        })
        .await?;
    let c: i64 = ctx.step("c").run(|| side_effect(ctx, "c")).await?;
    Ok(a + b + c)
}

/// A step, a sleep of `millis`, a step.
#[job(durable, queue = "rel.durable")]
async fn durable_nap(ctx: &JobContext, millis: u64) -> Result<i64, JobError> {
    executed(ctx).await;
    let before: i64 = ctx
        .step("before")
        .run(|| side_effect(ctx, "before"))
        .await?;
    ctx.sleep("nap", Duration::from_millis(millis)).await?;
    let after: i64 = ctx.step("after").run(|| side_effect(ctx, "after")).await?;
    Ok(before + after)
}

/// The child of `durable_parent`: doubles its input, once per run recorded.
#[job(queue = "rel.durable")]
async fn durable_child(ctx: &JobContext, n: i64) -> Result<i64, JobError> {
    side_effect(ctx, "child").await?;
    Ok(2 * n)
}

/// Spawns a child, lingers `linger_ms` in a step on its first run (the window a crash hits),
/// then joins the child.
#[job(durable, queue = "rel.durable")]
async fn durable_parent(ctx: &JobContext, n: i64, linger_ms: u64) -> Result<i64, JobError> {
    executed(ctx).await;
    let child = ctx.spawn("double", DurableChild { n }).await?;
    let _: i64 = ctx
        .step("linger")
        .run(|| async {
            let runs = side_effect(ctx, "linger").await?;
            if runs == 1 {
                tokio::time::sleep(Duration::from_millis(linger_ms)).await;
            }
            Ok(runs)
        })
        .await?;
    child.join().await
}

/// (position, kind, name, key) of each recorded call of job `id`.
async fn journal(rl: &Runledger, id: i64) -> Vec<(i32, String, String, Option<String>)> {
    rl.journal(JobId(id))
        .await
        .expect("journal")
        .into_iter()
        .map(|e| (e.position, e.kind, e.name, e.key))
        .collect()
}

type Call<'a> = (i32, &'a str, &'a str, Option<&'a str>);

fn calls(list: &[Call<'_>]) -> Vec<(i32, String, String, Option<String>)> {
    list.iter()
        .map(|(p, k, n, key)| (*p, (*k).to_owned(), (*n).to_owned(), key.map(str::to_owned)))
        .collect()
}

fn child(id: &'static str, kinds: &'static [&'static str]) -> ChildSettings {
    ChildSettings {
        id,
        queue: QUEUE,
        kinds,
        concurrency: 4,
        lease: Duration::from_secs(1),
        shutdown_grace: Duration::from_secs(5),
    }
}

/// A child process runs 4 of 8 durable jobs into their step `b` and is SIGKILLed while `b`
/// lingers after its side effect, before its record. Another worker completes all 8: in each
/// killed job `b` runs exactly once more and `a` never again; `c` runs once everywhere.
async fn sigkill_mid_step() -> Row {
    let db = fresh_db().await;
    install_steps(db.pool()).await;
    let rl = db.client();
    let ids: Vec<i64> = rl
        .enqueue_many((0..8).map(|_| DurableSteps { linger_ms: 2_000 }))
        .await
        .expect("enqueue")
        .into_iter()
        .map(|h| h.id.0)
        .collect();
    let mut worker_process =
        ChildWorker::spawn(db.url(), &child("child-durable", &["durable_steps"]));
    wait_until(Duration::from_secs(30), "4 jobs reach step b", || async {
        let mut in_b = 0;
        for &id in &ids {
            in_b += runs(db.pool(), id, "b").await;
        }
        in_b == 4
    })
    .await;
    let mut killed = Vec::new();
    for &id in &ids {
        if runs(db.pool(), id, "b").await == 1 {
            killed.push(id);
        }
    }
    worker_process.kill();
    let killed_at = Instant::now();
    let w = start(
        worker(db.pool(), QUEUE)
            .kinds(["durable_steps"])
            .concurrency(8)
            .lease(Duration::from_secs(1)),
    )
    .await;
    wait_finished(db.pool(), &ids, Duration::from_secs(60)).await;
    let recovery = killed_at.elapsed();
    w.shutdown().await.expect("shutdown");
    let expected = calls(&[
        (0, "step", "a", None),
        (1, "step", "b", None),
        (2, "step", "c", None),
    ]);
    for &id in &ids {
        let was_killed = killed.contains(&id);
        let counts = (
            runs(db.pool(), id, "a").await,
            runs(db.pool(), id, "b").await,
            runs(db.pool(), id, "c").await,
        );
        assert_eq!(
            counts,
            (1, if was_killed { 2 } else { 1 }, 1),
            "side effects of job {id} (killed: {was_killed})"
        );
        assert_eq!(journal(&rl, id).await, expected, "journal of job {id}");
    }
    measure(SIGKILL_MID_STEP, db.pool(), &Expect::completed(ids.clone()))
        .await
        .recovered(recovery, Duration::from_secs(15))
}

/// A child process takes 20 durable jobs into a 2 s sleep and is SIGKILLed while they sleep
/// (they hold no lease then). A worker started afterwards wakes each on time and completes it:
/// the step before the sleep never runs again, and the last job completes within 3 s of the
/// end of the sleeps.
async fn killed_while_sleeping() -> Row {
    let db = fresh_db().await;
    install_steps(db.pool()).await;
    let rl = db.client();
    let ids: Vec<i64> = rl
        .enqueue_many((0..20).map(|_| DurableNap { millis: 2_000 }))
        .await
        .expect("enqueue")
        .into_iter()
        .map(|h| h.id.0)
        .collect();
    let mut worker_process =
        ChildWorker::spawn(db.url(), &child("child-napping", &["durable_nap"]));
    wait_until(Duration::from_secs(30), "all 20 sleep", || async {
        crate::harness::count_state(db.pool(), "waiting").await == 20
    })
    .await;
    worker_process.kill();
    let due: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT max(run_at) FROM runledger.jobs WHERE id = ANY($1)")
            .bind(&ids)
            .fetch_one(db.pool())
            .await
            .expect("due time");
    let w = start(
        worker(db.pool(), QUEUE)
            .kinds(["durable_nap"])
            .concurrency(8),
    )
    .await;
    wait_finished(db.pool(), &ids, Duration::from_secs(30)).await;
    let finished: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT max(finished_at) FROM runledger.jobs WHERE id = ANY($1)")
            .bind(&ids)
            .fetch_one(db.pool())
            .await
            .expect("finish time");
    w.shutdown().await.expect("shutdown");
    let expected = calls(&[
        (0, "step", "before", None),
        (1, "sleep", "nap", None),
        (2, "step", "after", None),
    ]);
    for &id in &ids {
        assert_eq!(runs(db.pool(), id, "before").await, 1, "job {id}");
        assert_eq!(runs(db.pool(), id, "after").await, 1, "job {id}");
        assert_eq!(journal(&rl, id).await, expected, "journal of job {id}");
    }
    let late = (finished - due).to_std().unwrap_or_default();
    measure(
        KILLED_WHILE_SLEEPING,
        db.pool(),
        &Expect::completed(ids.clone()),
    )
    .await
    .recovered(late, Duration::from_secs(3))
}

/// A child process runs 4 durable parents; each spawns a child job and is SIGKILLed while it
/// lingers after the spawn. Another worker completes everything: each parent's spawn is
/// replayed (one child each, run once), and each parent resumes with its child's output.
async fn killed_after_spawn() -> Row {
    let db = fresh_db().await;
    install_steps(db.pool()).await;
    let rl = db.client();
    let ids: Vec<i64> = rl
        .enqueue_many((0..4).map(|n| DurableParent {
            n,
            linger_ms: 2_000,
        }))
        .await
        .expect("enqueue")
        .into_iter()
        .map(|h| h.id.0)
        .collect();
    // The child process runs only the parents: their children wait for the next worker.
    let mut worker_process =
        ChildWorker::spawn(db.url(), &child("child-parents", &["durable_parent"]));
    wait_until(
        Duration::from_secs(30),
        "4 parents spawn and linger",
        || async {
            let mut lingering = 0;
            for &id in &ids {
                lingering += runs(db.pool(), id, "linger").await;
            }
            lingering == 4
        },
    )
    .await;
    worker_process.kill();
    let killed_at = Instant::now();
    let w = start(
        worker(db.pool(), QUEUE)
            .kinds(["durable_parent", "durable_child"])
            .concurrency(8)
            .lease(Duration::from_secs(1)),
    )
    .await;
    wait_finished(db.pool(), &ids, Duration::from_secs(60)).await;
    let recovery = killed_at.elapsed();
    w.shutdown().await.expect("shutdown");
    let mut all = ids.clone();
    for (n, &id) in ids.iter().enumerate() {
        let children = rl.children(JobId(id)).await.expect("children");
        assert_eq!(children.len(), 1, "parent {id} spawned once");
        let child_id = children[0].0;
        all.push(child_id);
        assert_eq!(
            runs(db.pool(), child_id, "child").await,
            1,
            "child {child_id} ran once"
        );
        let parent = rl.job(JobId(id)).await.expect("job").expect("exists");
        assert_eq!(parent.output, Some(serde_json::json!(2 * n as i64)));
        let key = child_id.to_string();
        assert_eq!(
            journal(&rl, id).await,
            calls(&[
                (0, "spawn", "double", None),
                (1, "step", "linger", None),
                (2, "join", "double", Some(key.as_str())),
            ]),
            "journal of job {id}"
        );
    }
    measure(KILLED_AFTER_SPAWN, db.pool(), &Expect::completed(all))
        .await
        .recovered(recovery, Duration::from_secs(15))
}
