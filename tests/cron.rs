//! Cron schedules, leader election and retention, against a real PostgreSQL.

mod common;

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Timelike, Utc};
use common::{StartOk, db, flush_stats, hit, hits, token, wait_until};
use runledger::schedule::{CronSchedule, MissedSlots, ScheduleError};
use runledger::testing::TestDatabase;
use runledger::worker::{Retention, RunningWorker, WorkerBuilder};
use runledger::{Error, JobError, Schedule, Worker, job};
use sqlx::PgPool;

/// Counts its runs under `key`.
#[job(queue = "cron")]
async fn tick(key: String) -> Result<(), JobError> {
    hit(&key);
    Ok(())
}

/// Declared in code: every second, synced at worker start.
#[job(queue = "cron", cron = "* * * * * *", cron_args = DeclaredTick { key: "declared".into() })]
async fn declared_tick(key: String) -> Result<(), JobError> {
    hit(&key);
    Ok(())
}

/// Declared with a time zone that does not exist: a worker that runs it refuses to build.
#[job(cron = "0 0 * * * *", tz = "Mars/Olympus")]
async fn bad_zone() -> Result<(), JobError> {
    Ok(())
}

fn worker(pool: PgPool, id: &str) -> WorkerBuilder {
    Worker::builder(pool)
        .id(id)
        .queues(["cron"])
        .kinds(["tick"])
        .leader_lease(Duration::from_secs(1))
        .poll_interval(Duration::from_millis(200))
}

/// `run_at` of every job of `kind`, in order.
async fn slots_of(pool: &PgPool, kind: &str) -> Vec<DateTime<Utc>> {
    sqlx::query_scalar("SELECT run_at FROM runledger.jobs WHERE kind = $1 ORDER BY run_at, id")
        .bind(kind)
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn start(pool: PgPool, id: &str) -> RunningWorker {
    worker(pool, id).build().unwrap().start().await.unwrap()
}

async fn wait_for_leader(db: &TestDatabase, id: &str, within: Duration) {
    wait_until(within, &format!("{id} leads"), || async {
        leader(db).await.as_deref() == Some(id)
    })
    .await;
}

async fn leader(db: &TestDatabase) -> Option<String> {
    db.client()
        .maintenance_leader()
        .await
        .unwrap()
        .map(|l| l.worker)
}

async fn stop(worker: RunningWorker) {
    tokio::time::timeout(Duration::from_secs(30), worker.shutdown())
        .await
        .expect("shutdown in time")
        .expect("shutdown");
}

fn assert_each_slot_once(slots: &[DateTime<Utc>]) {
    for pair in slots.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            chrono::TimeDelta::seconds(1),
            "every second fires exactly once: {slots:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_fire_each_slot_once_across_a_change_of_leader() {
    let db = db().await;
    let rl = db.client();
    let key = token("two-workers");
    rl.add_schedule(Schedule::new(
        "every-second",
        "* * * * * *",
        Tick { key: key.clone() },
    ))
    .await
    .unwrap();
    let a = start(db.pool().clone(), "a").await;
    let b = start(db.pool().clone(), "b").await;
    wait_until(Duration::from_secs(10), "a leader", || async {
        leader(&db).await.is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Stop whichever leads; the other takes over and goes on from the next slot.
    let (first, second) = if leader(&db).await.as_deref() == Some("a") {
        (a, b)
    } else {
        (b, a)
    };
    let before = slots_of(db.pool(), "tick").await.len();
    stop(first).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(leader(&db).await.as_deref(), Some(second.id()));
    stop(second).await;

    let slots = slots_of(db.pool(), "tick").await;
    assert!(
        slots.len() > before && before >= 2,
        "{before} then {slots:?}"
    );
    assert_each_slot_once(&slots);
    let fires: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM runledger.schedule_fires WHERE schedule = 'every-second'",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(fires as usize, slots.len());
    let info = rl.schedule("every-second").await.unwrap().unwrap();
    assert_eq!(info.last_slot, slots.last().copied());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_with_a_fire_row_is_never_enqueued_again() {
    let db = db().await;
    let rl = db.client();
    let key = token("guard");
    rl.add_schedule(Schedule::new("guarded", "* * * * * *", Tick { key }))
        .await
        .unwrap();
    // Another scheduler already fired the next three slots.
    let cursor: DateTime<Utc> =
        sqlx::query_scalar("SELECT next_fire_at FROM runledger.schedules WHERE name = 'guarded'")
            .fetch_one(db.pool())
            .await
            .unwrap();
    let taken: Vec<DateTime<Utc>> = (0..3)
        .map(|s| cursor + chrono::TimeDelta::seconds(s))
        .collect();
    sqlx::query(
        "INSERT INTO runledger.schedule_fires (schedule, slot) SELECT 'guarded', unnest($1::timestamptz[])",
    )
    .bind(&taken)
    .execute(db.pool())
    .await
    .unwrap();
    let w = start(db.pool().clone(), "w").await;
    wait_until(Duration::from_secs(10), "two later slots fired", || async {
        slots_of(db.pool(), "tick").await.len() >= 2
    })
    .await;
    stop(w).await;
    let slots = slots_of(db.pool(), "tick").await;
    assert!(
        slots.iter().all(|s| !taken.contains(s)),
        "{slots:?} vs {taken:?}"
    );
    assert_eq!(slots[0], cursor + chrono::TimeDelta::seconds(3));
    assert_each_slot_once(&slots);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_schedule_is_synced_and_fires() {
    let db = db().await;
    let w = Worker::builder(db.pool().clone())
        .queues(["cron"])
        .kinds(["declared_tick"])
        .start_ok()
        .await;
    // Synced before `start` returns.
    let info = db
        .client()
        .schedule("declared_tick")
        .await
        .unwrap()
        .unwrap();
    assert!(info.declared_in_code);
    assert_eq!(info.expression, "* * * * * *");
    assert_eq!(info.args, serde_json::json!({ "key": "declared" }));
    let before = hits("declared");
    wait_until(Duration::from_secs(10), "declared schedule ran", || async {
        hits("declared") > before
    })
    .await;
    stop(w).await;
    assert_each_slot_once(&slots_of(db.pool(), "declared_tick").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_is_replaced_after_graceful_stop_and_after_lease_expiry() {
    let db = db().await;
    // Graceful stop: the lease is handed back, the other worker takes it within a renewal.
    let a = start(db.pool().clone(), "a").await;
    wait_for_leader(&db, "a", Duration::from_secs(5)).await;
    let b = start(db.pool().clone(), "b").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        leader(&db).await.as_deref(),
        Some("a"),
        "the leader keeps its lease"
    );
    stop(a).await;
    let stopped = Instant::now();
    wait_for_leader(&db, "b", Duration::from_secs(5)).await;
    // Typically one renewal period (a third of the 1 s lease); the bound leaves room for a
    // loaded machine.
    assert!(
        stopped.elapsed() < Duration::from_millis(2500),
        "{:?}",
        stopped.elapsed()
    );

    // Death: b loses its database (pool closed) without releasing; its lease runs out and c,
    // already running, takes over.
    let c = start(db.pool().clone(), "c").await;
    stop(b).await;
    wait_for_leader(&db, "c", Duration::from_secs(3)).await;
    let own = PgPool::connect(db.url()).await.unwrap();
    let d = start(own.clone(), "d").await;
    stop(c).await;
    wait_for_leader(&db, "d", Duration::from_secs(3)).await;
    let e = start(db.pool().clone(), "e").await;
    let closing = own.clone();
    tokio::spawn(async move { closing.close().await });
    let died = Instant::now();
    wait_until(
        Duration::from_secs(8),
        "e leads after d's lease expired",
        || async { leader(&db).await.as_deref() == Some("e") },
    )
    .await;
    // Lease 1 s, renewals every third of it: typically about 1.3 s.
    assert!(
        died.elapsed() < Duration::from_millis(4000),
        "{:?}",
        died.elapsed()
    );
    stop(e).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), d.shutdown()).await;
}

#[test]
fn daily_london_slot_fires_once_on_both_dst_days_of_2026() {
    let daily = CronSchedule::parse("0 30 1 * * *", "Europe/London").unwrap();
    let day = |m, d| {
        let from = Utc.with_ymd_and_hms(2026, m, d, 0, 0, 0).unwrap() - chrono::TimeDelta::hours(1);
        daily.slots(
            from,
            from + chrono::TimeDelta::hours(24) - chrono::TimeDelta::seconds(1),
            10,
        )
    };
    // 29 March: 01:00 GMT jumps to 02:00 BST; 01:30 does not exist and fires at 02:00 BST.
    let spring = day(3, 29);
    assert_eq!(
        spring,
        [Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap()]
    );
    // 25 October: 02:00 BST falls back to 01:00 GMT; 01:30 happens twice and fires once.
    let autumn = day(10, 25);
    assert_eq!(
        autumn,
        [Utc.with_ymd_and_hms(2026, 10, 25, 0, 30, 0).unwrap()]
    );
    // The day before each: 01:30 local as usual.
    assert_eq!(
        day(3, 28),
        [Utc.with_ymd_and_hms(2026, 3, 28, 1, 30, 0).unwrap()]
    );
    assert_eq!(
        day(10, 24),
        [Utc.with_ymd_and_hms(2026, 10, 24, 0, 30, 0).unwrap()]
    );
}

#[tokio::test]
async fn a_declared_schedule_with_an_unknown_zone_fails_the_build() {
    let db = db().await;
    let error = Worker::builder(db.pool().clone())
        .kinds(["bad_zone"])
        .build()
        .unwrap_err();
    assert!(
        matches!(
            &error,
            Error::Schedule { schedule, error: ScheduleError::InvalidTimezone { timezone } }
                if schedule == "bad_zone" && timezone == "Mars/Olympus"
        ),
        "{error}"
    );
}

#[tokio::test]
async fn schedules_are_added_updated_paused_resumed_listed_and_removed() {
    let db = db().await;
    let rl = db.client();
    let tick = |key: &str| Tick { key: key.into() };
    let info = rl
        .add_schedule(
            Schedule::new("nightly", "0 0 3 * * *", tick("n"))
                .timezone("Europe/London")
                .missed(MissedSlots::RunOnce),
        )
        .await
        .unwrap();
    assert_eq!(info.kind, "tick");
    assert_eq!(info.queue, "cron");
    assert_eq!(info.timezone, "Europe/London");
    assert_eq!(info.missed, MissedSlots::RunOnce);
    assert!(!info.paused && !info.declared_in_code);
    let next = info.next_fire_at.unwrap();
    assert_eq!(next.with_timezone(&chrono_tz::Europe::London).hour(), 3);
    let again = rl
        .add_schedule(Schedule::new("nightly", "0 0 4 * * *", tick("n")))
        .await
        .unwrap_err();
    assert!(matches!(again, Error::ScheduleExists { .. }), "{again}");

    rl.pause_schedule("nightly").await.unwrap();
    assert!(rl.schedule("nightly").await.unwrap().unwrap().paused);
    let updated = rl
        .update_schedule(Schedule::new("nightly", "*/10 * * * *", tick("m")).timezone("UTC"))
        .await
        .unwrap();
    assert!(updated.paused, "an update keeps the pause");
    assert_eq!(updated.expression, "*/10 * * * *");
    assert_eq!(updated.missed, MissedSlots::Skip);
    assert_eq!(updated.args, serde_json::json!({ "key": "m" }));
    rl.resume_schedule("nightly").await.unwrap();
    let resumed = rl.schedule("nightly").await.unwrap().unwrap();
    assert!(!resumed.paused);
    assert_eq!(resumed.next_fire_at.unwrap().minute() % 10, 0);

    rl.add_schedule(Schedule::new("hourly", "@hourly", tick("h")))
        .await
        .unwrap();
    let names: Vec<String> = rl
        .schedules()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["hourly", "nightly"]);
    assert!(rl.remove_schedule("nightly").await.unwrap());
    assert!(!rl.remove_schedule("nightly").await.unwrap());
    assert!(matches!(
        rl.pause_schedule("nightly").await,
        Err(Error::ScheduleNotFound { .. })
    ));
    assert!(matches!(
        rl.update_schedule(Schedule::new("nightly", "@daily", tick("n")))
            .await,
        Err(Error::ScheduleNotFound { .. })
    ));
}

/// A daily schedule at an hour far from now whose cursor is three days old: three slots were
/// missed and none is on time.
async fn missed_for_three_days(db: &TestDatabase, name: &str, missed: MissedSlots) {
    let hour = (Utc::now().hour() + 12) % 24;
    db.client()
        .add_schedule(
            Schedule::new(name, format!("0 0 {hour} * * *"), Tick { key: token(name) })
                .missed(missed),
        )
        .await
        .unwrap();
    sqlx::query(
        "UPDATE runledger.schedules SET next_fire_at = next_fire_at - interval '3 days' \
         WHERE name = $1",
    )
    .bind(name)
    .execute(db.pool())
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_slots_are_skipped_or_run_once() {
    let db = db().await;
    let rl = db.client();
    missed_for_three_days(&db, "skips", MissedSlots::Skip).await;
    missed_for_three_days(&db, "catches-up", MissedSlots::RunOnce).await;
    let cursor_of = |name: &'static str| {
        let pool = db.pool().clone();
        async move {
            sqlx::query_scalar::<_, DateTime<Utc>>(
                "SELECT next_fire_at FROM runledger.schedules WHERE name = $1",
            )
            .bind(name)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let old = cursor_of("catches-up").await;
    let w = start(db.pool().clone(), "w").await;
    wait_until(Duration::from_secs(10), "both cursors moved", || async {
        cursor_of("skips").await > Utc::now() && cursor_of("catches-up").await > Utc::now()
    })
    .await;
    stop(w).await;
    // Only the run-once schedule enqueued a job: one, for its latest missed slot.
    let slots = slots_of(db.pool(), "tick").await;
    assert_eq!(slots, [old + chrono::TimeDelta::days(2)]);
    let fires: Vec<String> = sqlx::query_scalar("SELECT schedule FROM runledger.schedule_fires")
        .fetch_all(db.pool())
        .await
        .unwrap();
    assert_eq!(fires, ["catches-up"]);
    assert!(
        rl.schedule("skips")
            .await
            .unwrap()
            .unwrap()
            .last_slot
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruner_deletes_only_finished_jobs_past_their_retention() {
    let db = db().await;
    let rl = db.client();
    // One job per (state, finished how long ago), on a queue no worker runs.
    let cases: &[(&str, Option<i64>)] = &[
        ("completed", Some(7200)),
        ("completed", Some(60)),
        ("failed", Some(7200)),
        ("cancelled", Some(7200)),
        ("cancelled", Some(60)),
        ("running", None),
        ("available", None),
        ("scheduled", None),
        ("retryable", None),
        ("waiting", None),
    ];
    for (state, finished_ago) in cases {
        let job = rl
            .enqueue(Tick {
                key: format!("{state}-{finished_ago:?}"),
            })
            .with_queue("held")
            .await
            .unwrap();
        sqlx::query(
            "UPDATE runledger.jobs SET state = $2, created_at = now() - interval '1 day', \
                 run_at = now() + CASE WHEN $2 IN ('scheduled', 'retryable', 'waiting') \
                                       THEN interval '1 day' ELSE interval '-1 day' END, \
                 finished_at = now() - make_interval(secs => $3), \
                 lease_expires_at = CASE WHEN $2 = 'running' THEN now() + interval '1 hour' END \
             WHERE id = $1",
        )
        .bind(job.id().0)
        .bind(state)
        .bind(finished_ago.map(|s| s as f64))
        .execute(db.pool())
        .await
        .unwrap();
    }
    let remaining = || async {
        let rows: Vec<(String, Option<f64>)> = sqlx::query_as(
            "SELECT state, round(EXTRACT(EPOCH FROM now() - finished_at))::float8 \
             FROM runledger.jobs ORDER BY id",
        )
        .fetch_all(db.pool())
        .await
        .unwrap();
        rows.into_iter()
            .map(|(state, ago)| (state, ago.map(|a| if a > 3600.0 { "old" } else { "new" })))
            .collect::<Vec<_>>()
    };
    // Keep an hour; keep failed jobs forever.
    let w = worker(db.pool().clone(), "pruner")
        .retention(Retention::all(Duration::from_secs(3600)).failed(None))
        .prune_interval(Duration::from_millis(100))
        .start_ok()
        .await;
    wait_until(Duration::from_secs(10), "old jobs pruned", || async {
        remaining().await.len() == cases.len() - 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop(w).await;
    let s = |state: &str, ago: Option<&'static str>| (state.to_owned(), ago);
    assert_eq!(
        remaining().await,
        [
            s("completed", Some("new")),
            s("failed", Some("old")),
            s("cancelled", Some("new")),
            s("running", None),
            s("available", None),
            s("scheduled", None),
            s("retryable", None),
            s("waiting", None),
        ]
    );
}

#[tokio::test]
async fn a_leader_that_lost_its_lease_fires_nothing() {
    let db = db().await;
    let rl = db.client();
    let key = token("fenced");
    rl.add_schedule(Schedule::new(
        "fenced",
        "* * * * * *",
        Tick { key: key.clone() },
    ))
    .await
    .unwrap();
    // A long lease: the worker renews only every 10 s, so it goes on believing it leads for a
    // while after the lease is taken from it below.
    let w = worker(db.pool().clone(), "old-leader")
        .leader_lease(Duration::from_secs(30))
        .start_ok()
        .await;
    wait_until(Duration::from_secs(10), "the schedule fired", || async {
        !slots_of(db.pool(), "tick").await.is_empty()
    })
    .await;
    // Another holder takes the role (as after a lease that expired during a stall).
    sqlx::query(
        "UPDATE runledger.leaders SET holder = 'intruder/0', expires_at = now() + interval '1 minute' \
         WHERE role = 'maintenance'",
    )
    .execute(db.pool())
    .await
    .unwrap();
    let before = slots_of(db.pool(), "tick").await.len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after = slots_of(db.pool(), "tick").await.len();
    assert_eq!(before, after, "a worker without the lease fired slots");
    stop(w).await;
}

/// `(manual vacuums, dead rows, manual analyzes)` of `runledger.jobs` in the statistics.
async fn jobs_vacuum_stats(pool: &PgPool) -> (i64, i64, i64) {
    sqlx::query_as(
        "SELECT vacuum_count, n_dead_tup, analyze_count FROM pg_stat_user_tables \
         WHERE schemaname = 'runledger' AND relname = 'jobs'",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Leaves `updates` dead row versions of each of `jobs` jobs, flushed to the statistics.
async fn leave_dead_rows(db: &TestDatabase, jobs: usize, updates: usize) {
    let rl = db.client();
    let key = token("dead");
    rl.enqueue_many((0..jobs).map(|_| Tick { key: key.clone() }))
        .await
        .unwrap();
    let mut conn = db.pool().acquire().await.unwrap();
    for _ in 0..updates {
        // A queue no worker runs, so the rows stay put.
        sqlx::query("UPDATE runledger.jobs SET queue = 'held', priority = priority + 1")
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    flush_stats(&mut conn).await;
}

#[tokio::test]
async fn the_leader_vacuums_the_jobs_table_once_dead_rows_pile_up() {
    let db = db().await;
    leave_dead_rows(&db, 6_000, 3).await;
    let (vacuums, dead, _) = jobs_vacuum_stats(db.pool()).await;
    assert_eq!(vacuums, 0);
    assert!(dead >= 18_000, "the statistics see the dead rows: {dead}");
    let worker = worker(db.pool().clone(), "vacuumer")
        .vacuum_interval(Duration::from_millis(200))
        .start_ok()
        .await;
    // `VACUUM (ANALYZE)` reports the vacuum, then the analyze.
    wait_until(
        Duration::from_secs(20),
        "a vacuum and analyze of the jobs table",
        || async {
            let (vacuums, _, analyzes) = jobs_vacuum_stats(db.pool()).await;
            vacuums >= 1 && analyzes >= 1
        },
    )
    .await;
    // How many it reclaimed is PostgreSQL's affair: a transaction open elsewhere in the cluster
    // (another test's) can keep the newest dead rows alive. Those do not count towards the
    // next vacuum, so the vacuumer does not vacuum again in vain.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(jobs_vacuum_stats(db.pool()).await.0, 1, "one vacuum only");
    worker.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_burst_of_new_jobs_gets_fresh_statistics_without_a_vacuum() {
    let db = db().await;
    let rl = db.client();
    let key = token("burst");
    rl.enqueue_many((0..20_000).map(|_| Tick { key: key.clone() }))
        .await
        .unwrap();
    let worker = worker(db.pool().clone(), "analyzer")
        .queues(["elsewhere"])
        .vacuum_interval(Duration::from_millis(200))
        .start_ok()
        .await;
    wait_until(
        Duration::from_secs(20),
        "an analyze of the jobs table",
        || async { jobs_vacuum_stats(db.pool()).await.2 >= 1 },
    )
    .await;
    assert_eq!(
        jobs_vacuum_stats(db.pool()).await.0,
        0,
        "no dead rows, no vacuum"
    );
    worker.shutdown().await.unwrap();
}

#[tokio::test]
async fn without_a_vacuum_interval_the_tables_are_left_to_autovacuum() {
    let db = db().await;
    leave_dead_rows(&db, 6_000, 3).await;
    let worker = worker(db.pool().clone(), "no-vacuumer")
        .vacuum_interval(None)
        .start_ok()
        .await;
    let rl = db.client();
    wait_until(Duration::from_secs(10), "the worker leads", || async {
        rl.maintenance_leader().await.unwrap().is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (vacuums, _, analyzes) = jobs_vacuum_stats(db.pool()).await;
    assert_eq!((vacuums, analyzes), (0, 0), "no manual vacuum or analyze");
    worker.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_vacuum_interval_below_100_ms_is_refused() {
    let db = db().await;
    let error = worker(db.pool().clone(), "busy")
        .vacuum_interval(Duration::from_millis(10))
        .build()
        .unwrap_err();
    assert!(
        error.to_string().contains("vacuum interval"),
        "names the setting: {error}"
    );
}

#[tokio::test]
async fn a_schedule_added_while_the_leader_sleeps_fires_at_once() {
    let db = db().await;
    let worker = start(db.pool().clone(), "sleeper").await;
    wait_for_leader(&db, "sleeper", Duration::from_secs(10)).await;
    // No schedule: the scheduler sleeps for its longest interval (30 s)...
    tokio::time::sleep(Duration::from_millis(500)).await;
    // ...until a schedule added by another client wakes it.
    let other = runledger::Runledger::new(
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(db.url())
            .await
            .unwrap(),
    );
    let key = token("woken");
    other
        .add_schedule(Schedule::new(
            "woken",
            "* * * * * *",
            Tick { key: key.clone() },
        ))
        .await
        .unwrap();
    wait_until(Duration::from_secs(5), "the new schedule fires", || async {
        hits(&key) >= 2
    })
    .await;
    // Paused and resumed: the resume wakes it too.
    other.pause_schedule("woken").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let paused_at = hits(&key);
    other.resume_schedule("woken").await.unwrap();
    wait_until(
        Duration::from_secs(5),
        "fires again once resumed",
        || async { hits(&key) >= paused_at + 2 },
    )
    .await;
    stop(worker).await;
}

#[tokio::test]
async fn schedule_writes_join_the_callers_transaction() {
    let db = db().await;
    let rl = db.client();
    let schedule = || Schedule::new("tx-digest", "0 0 8 * * *", Tick { key: token("tx") });
    let mut tx = db.pool().begin().await.unwrap();
    rl.add_schedule_tx(&mut tx, schedule()).await.unwrap();
    rl.pause_schedule_tx(&mut tx, "tx-digest").await.unwrap();
    tx.rollback().await.unwrap();
    assert!(rl.schedule("tx-digest").await.unwrap().is_none());

    let mut tx = db.pool().begin().await.unwrap();
    rl.add_schedule_tx(&mut tx, schedule()).await.unwrap();
    rl.pause_schedule_tx(&mut tx, "tx-digest").await.unwrap();
    rl.update_schedule_tx(&mut tx, schedule().timezone("Europe/London"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let stored = rl.schedule("tx-digest").await.unwrap().unwrap();
    assert!(stored.paused, "{stored:?}");
    assert_eq!(stored.timezone, "Europe/London");

    let mut tx = db.pool().begin().await.unwrap();
    rl.resume_schedule_tx(&mut tx, "tx-digest").await.unwrap();
    assert!(rl.remove_schedule_tx(&mut tx, "tx-digest").await.unwrap());
    tx.rollback().await.unwrap();
    assert!(rl.schedule("tx-digest").await.unwrap().unwrap().paused);
}
