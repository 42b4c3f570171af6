//! runledger-bench: the workloads of PERFORMANCE.md, measured against a real PostgreSQL.
//!
//! ```text
//! cargo run --release -p runledger-bench -- <w1|w2|w3|w4|w5|idle|raw|all> [--jobs N] [--concurrency C] [--json]
//! ```
//!
//! Uses `DATABASE_URL` if set, else starts an embedded PostgreSQL with `fsync` and
//! `synchronous_commit` on. Every workload runs in a fresh database. Prints a table, and with
//! `--json` one JSON line per result.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use runledger::__bench::Counters;
use runledger::embedded::EmbeddedPostgres;
use runledger::testing::TestDatabase;
use runledger::{JobContext, JobError, Runledger, Worker, job, workflow};
use serde_json::json;

/// A no-op job: the cost measured is the framework's and the database's.
#[job(queue = "bench")]
async fn bench_noop(seq: u64) -> Result<(), JobError> {
    let _ = seq;
    Ok(())
}

/// W6's durable job: `steps` journaled no-op steps.
#[job(durable, queue = "durable")]
async fn bench_steps(ctx: &JobContext, steps: u32) -> Result<(), JobError> {
    for i in 0..steps {
        ctx.step("noop").key(i).run(|| async { Ok(()) }).await?;
    }
    Ok(())
}

/// W6's sleeper: sleeps `millis`, then records when it woke (wall clock, microseconds).
#[job(durable, queue = "sleepy")]
async fn bench_sleeper(ctx: &JobContext, seq: u64, millis: u64) -> Result<(), JobError> {
    ctx.sleep("nap", Duration::from_millis(millis)).await?;
    wakes().lock().expect("wakes").insert(seq, wall_clock_us());
    Ok(())
}

fn wakes() -> &'static Mutex<HashMap<u64, i64>> {
    static WAKES: OnceLock<Mutex<HashMap<u64, i64>>> = OnceLock::new();
    WAKES.get_or_init(Default::default)
}

/// Records when its handler started, for pickup latency.
#[job(queue = "latency")]
async fn bench_latency(seq: u64) -> Result<(), JobError> {
    starts().lock().expect("starts").insert(seq, Instant::now());
    Ok(())
}

/// W5's job: records how long after its enqueue it started (wall clock, same machine).
#[job(queue = "sustained")]
async fn bench_e2e(enqueued_us: i64) -> Result<(), JobError> {
    let now_us = wall_clock_us();
    latencies()
        .lock()
        .expect("latencies")
        .push((now_us - enqueued_us).max(0) as u64);
    Ok(())
}

fn wall_clock_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn latencies() -> &'static Mutex<Vec<u64>> {
    static LATENCIES: OnceLock<Mutex<Vec<u64>>> = OnceLock::new();
    LATENCIES.get_or_init(Default::default)
}

/// W4's first step: passes its seed on.
#[job(queue = "bench")]
async fn bench_seed(seed: u64) -> Result<u64, JobError> {
    Ok(seed)
}

/// W4's middle steps: add to their parent's output.
#[job(queue = "bench")]
async fn bench_add(x: u64, y: u64) -> Result<u64, JobError> {
    Ok(x + y)
}

/// W4's last step: joins the two branches.
#[job(queue = "bench")]
async fn bench_join(left: u64, right: u64) -> Result<u64, JobError> {
    Ok(left + right)
}

/// W4: a diamond a -> {b, c} -> d, every edge carrying data.
#[workflow(name = "bench.diamond")]
fn bench_diamond(seed: u64) {
    let a = bench_seed(seed);
    let b = bench_add(a, 1);
    let c = bench_add(a, 2);
    bench_join(b, c)
}

fn starts() -> &'static Mutex<HashMap<u64, Instant>> {
    static STARTS: OnceLock<Mutex<HashMap<u64, Instant>>> = OnceLock::new();
    STARTS.get_or_init(Default::default)
}

struct Args {
    workload: String,
    jobs: Option<usize>,
    concurrency: Option<usize>,
    clients: Option<usize>,
    prefetch: Option<usize>,
    json: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        workload: String::new(),
        jobs: None,
        concurrency: None,
        clients: None,
        prefetch: None,
        json: false,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--jobs" => parsed.jobs = Some(number(args.next(), "--jobs")?),
            "--concurrency" => parsed.concurrency = Some(number(args.next(), "--concurrency")?),
            "--clients" => parsed.clients = Some(number(args.next(), "--clients")?),
            "--prefetch" => {
                parsed.prefetch = Some(
                    args.next()
                        .and_then(|v| v.parse().ok())
                        .ok_or("--prefetch takes a whole number")?,
                )
            }
            "--json" => parsed.json = true,
            "-h" | "--help" => return Err(String::new()),
            w if !w.starts_with('-') && parsed.workload.is_empty() => {
                parsed.workload = w.to_owned()
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if !matches!(
        parsed.workload.as_str(),
        "w1" | "w2" | "w3" | "w4" | "w5" | "w6" | "idle" | "pages" | "raw" | "raw-insert" | "all"
    ) {
        return Err(format!("unknown workload `{}`", parsed.workload));
    }
    Ok(parsed)
}

fn number(value: Option<String>, flag: &str) -> Result<usize, String> {
    value
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{flag} takes a positive whole number"))
}

const USAGE: &str =
    "usage: runledger-bench <w1|w2|w3|w4|w5|w6|idle|pages|raw|raw-insert|all> [--jobs N] [--concurrency C]
       [--clients K] [--prefetch P] [--json]
  w1   bulk-enqueue N jobs (default 20000), drain with one worker (concurrency 10 and 50, or C);
       also runs raw (ratio_to_raw) and raw --clients 8 (ratio_to_raw8), and reports the
       database work per job (commits, rows, WAL bytes)
  w2   5000 single-job enqueues (N), one client, then 8 concurrent clients; also runs
       raw-insert (ratio_to_raw_insert)
  w3   500 jobs (N) enqueued 20 ms apart to an idle worker: pickup latency
  w4   1000 runs (N) of a diamond workflow a -> {b, c} -> d passing outputs along, started
       by 8 clients, then run by one worker (concurrency 50, or C): steps/s and runs/s
  w5   producers enqueue 10000 jobs/s (N) for 60 s while one worker (concurrency 50, or C)
       runs them, completed jobs pruned after 10 s: completed/s, end-to-end latency, backlog,
       finished rows kept and dead tuples of the jobs table over time (not part of `all`)
  w6   durable jobs: 2000 jobs (N) of 10 journaled no-op steps run by one worker
       (concurrency 50, or C): journaled steps/s; then 10000 jobs (5 x N) that sleep 1 s:
       wake-up lag after each sleep's end, p50 and p99 (not part of `all`)
  idle one worker (the maintenance leader) on an empty database for 30 s (N): the
       transactions it sends per second (not part of `all`)
  pages
       the operators' pages over 1000000 finished jobs (N, one in 100 failed) plus 200
       workflow runs: the SQL time of each dashboard page (the operators' API calls it
       makes), the slowest of 5 loads, and the jobs table's rows read by sequential scans
       meanwhile (not part of `all`)
  raw  the claim/complete cycle of w1 with no framework around it: one task claims batches
       (batch 10 or 50, from C) and one completes them; with --clients K, K connections
       each claim and complete 100 jobs per transaction (the server's batched limit)
  raw-insert
       N (default 5000) bare single-row INSERTs, each its own transaction, one client
  all  w1, w2, w3 and w4
  --prefetch P sets the workers' prefetch (default: the worker's default)";

/// The machine's CPU time counters (`/proc/stat`, all CPUs) and this process's own, to tell
/// where a run's CPU time went: how much other guests of a shared virtual machine took
/// (`steal`: a slow run with a high share measured the neighbours rather than the code), how
/// much nobody used (`idle`: a run with idle CPU waits on round trips, not on the processors),
/// and how much this process (the worker and the benchmark's own loop) used; the rest is the
/// server's.
#[derive(Clone, Copy)]
struct CpuTimes {
    steal: u64,
    idle: u64,
    total: u64,
    process: u64,
}

/// Shares of the machine's CPU time over a run, in percent.
struct CpuShares {
    steal: f64,
    idle: f64,
    process: f64,
}

impl CpuTimes {
    /// `None` where `/proc/stat` cannot be read (not Linux).
    fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        // cpu user nice system idle iowait irq softirq steal ...
        let fields: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .take(8)
            .filter_map(|f| f.parse().ok())
            .collect();
        // pid (comm) state ... utime stime: the 14th and 15th fields, 12th and 13th after the
        // command name (which may hold spaces).
        let own = std::fs::read_to_string("/proc/self/stat").ok()?;
        let after_comm: Vec<u64> = own[own.rfind(')')? + 2..]
            .split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|f| f.parse().ok())
            .collect();
        Some(CpuTimes {
            steal: *fields.get(7)?,
            idle: fields.get(3)? + fields.get(4)?,
            total: fields.iter().sum(),
            process: after_comm.iter().sum(),
        })
    }

    /// The shares of CPU time since `earlier`.
    fn since(earlier: Option<Self>) -> Option<CpuShares> {
        let (earlier, now) = (earlier?, Self::read()?);
        let total = now.total.checked_sub(earlier.total).filter(|t| *t > 0)? as f64;
        let share = |now: u64, then: u64| 100.0 * now.saturating_sub(then) as f64 / total;
        Some(CpuShares {
            steal: share(now.steal, earlier.steal),
            idle: share(now.idle, earlier.idle),
            process: share(now.process, earlier.process),
        })
    }
}

/// Records a run's CPU shares as three figures named after `what`.
fn record_cpu(
    bench: &mut Bench,
    workload: &'static str,
    what: &str,
    shares: Option<CpuShares>,
    extra: serde_json::Value,
) {
    let Some(shares) = shares else { return };
    for (name, value) in [
        ("cpu steal", shares.steal),
        ("cpu idle", shares.idle),
        ("cpu of the bench process", shares.process),
    ] {
        bench.record(
            workload,
            format!("{name}, {what}"),
            value,
            "%",
            extra.clone(),
        );
    }
}

/// One measured figure.
struct Figure {
    workload: &'static str,
    name: String,
    value: f64,
    unit: &'static str,
    extra: serde_json::Value,
}

struct Bench {
    server_url: String,
    json: bool,
    figures: Vec<Figure>,
}

impl Bench {
    fn record(
        &mut self,
        workload: &'static str,
        name: impl Into<String>,
        value: f64,
        unit: &'static str,
        extra: serde_json::Value,
    ) {
        let figure = Figure {
            workload,
            name: name.into(),
            value,
            unit,
            extra,
        };
        if self.json {
            let mut line = json!({
                "workload": figure.workload,
                "figure": figure.name,
                "value": figure.value,
                "unit": figure.unit,
            });
            if let (Some(map), serde_json::Value::Object(extra)) =
                (line.as_object_mut(), &figure.extra)
            {
                for (k, v) in extra {
                    map.insert(k.clone(), v.clone());
                }
            }
            println!("{line}");
        }
        self.figures.push(figure);
    }

    async fn database(&self) -> Result<TestDatabase, runledger::Error> {
        TestDatabase::on_server(&self.server_url).await
    }
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("error: {message}");
            }
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(args).await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), runledger::Error> {
    // Keep the embedded server alive for the whole run.
    let (_embedded, server_url) = match std::env::var("DATABASE_URL") {
        Ok(url) => (None, url),
        Err(_) => {
            let mut builder = EmbeddedPostgres::builder().durable(true);
            if args.workload == "idle" {
                // Counts every statement; kept off for the throughput workloads it would slow.
                builder = builder.setting("shared_preload_libraries", "pg_stat_statements");
            }
            let pg = builder.start()?;
            let url = pg.url();
            (Some(pg), url)
        }
    };
    let mut bench = Bench {
        server_url,
        json: args.json,
        figures: Vec::new(),
    };
    let _ = PREFETCH.set(args.prefetch);
    let w = args.workload.as_str();
    if w == "w1" || w == "all" {
        let jobs = args.jobs.unwrap_or(20_000);
        let concurrencies = match args.concurrency {
            Some(c) => vec![c],
            None => vec![10, 50],
        };
        let raw8 = raw_clients(&mut bench, jobs, 8).await?;
        for c in concurrencies {
            let raw = raw(&mut bench, jobs, c).await?;
            w1(&mut bench, jobs, c, raw, raw8).await?;
        }
    }
    if w == "raw" {
        let jobs = args.jobs.unwrap_or(20_000);
        match args.clients {
            Some(clients) => {
                raw_clients(&mut bench, jobs, clients).await?;
            }
            None => {
                raw(&mut bench, jobs, args.concurrency.unwrap_or(50)).await?;
            }
        }
    }
    if w == "raw-insert" {
        raw_insert(&mut bench, args.jobs.unwrap_or(5_000)).await?;
    }
    if w == "w2" || w == "all" {
        w2(&mut bench, args.jobs.unwrap_or(5_000)).await?;
    }
    if w == "w3" || w == "all" {
        w3(&mut bench, args.jobs.unwrap_or(500)).await?;
    }
    if w == "w4" || w == "all" {
        w4(
            &mut bench,
            args.jobs.unwrap_or(1_000),
            args.concurrency.unwrap_or(50),
        )
        .await?;
    }
    if w == "w6" {
        let jobs = args.jobs.unwrap_or(2_000);
        w6(&mut bench, jobs, args.concurrency.unwrap_or(50)).await?;
    }
    if w == "idle" {
        idle(&mut bench, args.jobs.unwrap_or(30)).await?;
    }
    if w == "pages" {
        pages(&mut bench, args.jobs.unwrap_or(1_000_000)).await?;
    }
    if w == "w5" {
        w5(
            &mut bench,
            args.jobs.unwrap_or(10_000),
            args.concurrency.unwrap_or(50),
        )
        .await?;
    }
    if !bench.json {
        println!("{:<6} {:<34} {:>14}  unit", "load", "figure", "value");
        for f in &bench.figures {
            let places = match f.unit {
                "x" | "commits" | "rows" | "entries" => 2,
                _ => 1,
            };
            println!(
                "{:<6} {:<34} {:>14.places$}  {}",
                f.workload, f.name, f.value, f.unit
            );
        }
    }
    Ok(())
}

/// The dashboard's pages over a large table: `jobs` finished jobs (one in 100 failed) seeded in
/// one statement, 200 diamond runs, a few hundred pending jobs. Each page's operators' API
/// calls (what its SQL costs; rendering is not timed) run 5 times; the slowest load counts.
/// The jobs table's rows read by sequential scans over all the loads show whether any page
/// reads the table rather than an index.
async fn pages(bench: &mut Bench, jobs: usize) -> Result<(), runledger::Error> {
    use runledger::admin::{JobFilter, PageRequest, RunFilter};
    use runledger::job::JobState;
    let db = bench.database().await?;
    let rl = db.client();
    let seeding = Instant::now();
    runledger::__bench::seed_finished(rl.pool(), jobs as i64, 100).await?;
    for seed in 0..200 {
        rl.start(BenchDiamond { seed }).await?;
    }
    rl.enqueue_many((0..300).map(|seq| BenchNoop { seq }))
        .await?;
    if !bench.json {
        eprintln!("seeded {jobs} finished jobs in {:.0?}", seeding.elapsed());
    }
    let admin = rl.admin();
    let failed = admin
        .jobs(
            &JobFilter::new().state(JobState::Failed),
            PageRequest::first(1),
        )
        .await?
        .items[0]
        .id;
    let middle = (jobs / 2) as i64;
    let run = admin
        .runs(&RunFilter::new(), PageRequest::first(1))
        .await?
        .items[0]
        .id;
    let page = PageRequest::first(50);
    let before = runledger::__bench::Counters::read(rl.pool()).await?;
    macro_rules! timed {
        ($name:literal, $body:expr) => {{
            let mut worst = 0.0f64;
            for _ in 0..5 {
                let started = Instant::now();
                $body;
                worst = worst.max(started.elapsed().as_secs_f64() * 1000.0);
            }
            bench.record("pages", $name, worst, "ms", json!({ "jobs": jobs, "loads": 5 }));
        }};
    }
    timed!("overview", {
        admin.queues().await?;
        admin.throughput(60).await?;
        admin.workers().await?;
    });
    timed!("jobs", admin.jobs(&JobFilter::new(), page).await?);
    timed!(
        "jobs, page 2 (older)",
        admin
            .jobs(&JobFilter::new(), PageRequest::after(middle, 50))
            .await?
    );
    timed!(
        "jobs ?state=failed",
        admin
            .jobs(&JobFilter::new().state(JobState::Failed), page)
            .await?
    );
    timed!(
        "jobs ?state=completed&kind=kind7",
        admin
            .jobs(
                &JobFilter::new().state(JobState::Completed).kind("kind7"),
                page
            )
            .await?
    );
    timed!(
        "jobs ?queue=q2",
        admin.jobs(&JobFilter::new().queue("q2"), page).await?
    );
    timed!(
        "jobs ?kind=unknown (none: a window)",
        admin
            .jobs(&JobFilter::new().kind("no-such-kind"), page)
            .await?
    );
    timed!(
        "jobs ?error=timeout",
        admin
            .jobs(&JobFilter::new().error_contains("timeout"), page)
            .await?
    );
    timed!(
        "jobs ?state=diverged (none)",
        admin
            .jobs(&JobFilter::new().state(JobState::Diverged), page)
            .await?
    );
    timed!("job (failed)", admin.job(failed).await?);
    timed!("runs", admin.runs(&RunFilter::new(), page).await?);
    timed!("run", admin.run(run).await?);
    timed!("schedules", admin.schedules().await?);
    timed!("workers", admin.workers().await?);
    timed!("events", admin.events(None, None, 50).await?);
    // The statistics reach the counters when sessions report them (within a second or so).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = runledger::__bench::Counters::read(rl.pool()).await?;
    bench.record(
        "pages",
        "jobs rows read by seq scans",
        (after.seq_read - before.seq_read) as f64,
        "rows",
        json!({ "jobs": jobs }),
    );
    Ok(())
}

/// Durable jobs. First `jobs` jobs of ten journaled no-op steps, enqueued in bulk, then run by
/// one worker: journaled steps per second (each step is one fenced insert into the journal; each
/// attempt reads its journal once). Then `5 * jobs` jobs that sleep one second each: the lag
/// between the end of each sleep (the wake time recorded in its journal, by the database's
/// clock) and the moment its handler passed the sleep (this machine's clock, the same one).
async fn w6(bench: &mut Bench, jobs: usize, concurrency: usize) -> Result<(), runledger::Error> {
    const STEPS: u32 = 10;
    let db = bench.database().await?;
    let rl = db.client();
    rl.enqueue_many((0..jobs).map(|_| BenchSteps { steps: STEPS }))
        .await?;
    let worker_pool = own_pool(&db).await?;
    let worker = tuned(
        Worker::builder(worker_pool.clone())
            .queues(["durable"])
            .kinds(["bench_steps"])
            .concurrency(concurrency)
            .migrate(false),
    )
    .build()?;
    let cpu = CpuTimes::read();
    let started = Instant::now();
    let running = worker.start().await?;
    loop {
        let counts = runledger::testing::count_by_state(&rl).await?;
        let done = counts
            .iter()
            .find(|(state, _)| *state == runledger::job::JobState::Completed)
            .map_or(0, |c| c.1);
        if done as usize >= jobs {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = CpuTimes::since(cpu);
    running.shutdown().await?;
    worker_pool.close().await;
    let steps: i64 = sqlx::query_scalar("SELECT count(*) FROM runledger.journal")
        .fetch_one(db.pool())
        .await?;
    assert_eq!(
        steps as usize,
        jobs * STEPS as usize,
        "every step recorded once"
    );
    let extra = json!({"jobs": jobs, "steps_per_job": STEPS, "concurrency": concurrency});
    bench.record(
        "w6",
        format!("journaled steps, C={concurrency}"),
        steps as f64 / elapsed,
        "steps/s",
        extra.clone(),
    );
    bench.record(
        "w6",
        format!("durable jobs, C={concurrency}"),
        jobs as f64 / elapsed,
        "jobs/s",
        extra.clone(),
    );
    record_cpu(bench, "w6", "steps", cpu, extra);
    drop(db);

    let sleepers = jobs * 5;
    let db = bench.database().await?;
    let rl = db.client();
    let worker_pool = own_pool(&db).await?;
    let running = tuned(
        Worker::builder(worker_pool.clone())
            .queues(["sleepy"])
            .kinds(["bench_sleeper"])
            .concurrency(concurrency)
            .migrate(false),
    )
    .build()?
    .start()
    .await?;
    wakes().lock().expect("wakes").clear();
    rl.enqueue_many((0..sleepers as u64).map(|seq| BenchSleeper { seq, millis: 1_000 }))
        .await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while wakes().lock().expect("wakes").len() < sleepers && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.shutdown().await?;
    worker_pool.close().await;
    let ends: Vec<(String, f64)> = sqlx::query_as(
        "SELECT j.args ->> 'seq', \
                EXTRACT(EPOCH FROM (r.output ->> 'until')::timestamptz)::float8 * 1e6 \
         FROM runledger.journal r JOIN runledger.jobs j ON j.id = r.job_id \
         WHERE r.kind = 'sleep'",
    )
    .fetch_all(db.pool())
    .await?;
    let woke = wakes().lock().expect("wakes").clone();
    let mut lags: Vec<f64> = ends
        .iter()
        .filter_map(|(seq, until_us)| {
            let at = *woke.get(&seq.parse::<u64>().ok()?)?;
            Some((at as f64 - until_us) / 1000.0)
        })
        .collect();
    if lags.len() < sleepers {
        eprintln!(
            "warning: {} of {sleepers} sleepers did not wake within 120 s",
            sleepers - lags.len()
        );
    }
    lags.sort_by(f64::total_cmp);
    let pct = |p: f64| lags[((lags.len() as f64 - 1.0) * p).round() as usize];
    let extra = json!({"jobs": sleepers, "sleep_ms": 1000, "concurrency": concurrency});
    bench.record("w6", "wake-up lag p50", pct(0.50), "ms", extra.clone());
    bench.record("w6", "wake-up lag p99", pct(0.99), "ms", extra.clone());
    bench.record("w6", "wake-up lag max", pct(1.0), "ms", extra);
    Ok(())
}

/// One idle worker, the maintenance leader, with its default settings and two queues: how many
/// transactions a second it costs the database while there is nothing to do.
async fn idle(bench: &mut Bench, seconds: usize) -> Result<(), runledger::Error> {
    let db = bench.database().await?;
    let rl = db.client();
    let running = Worker::builder(db.pool().clone())
        .queues(["default", "idle"])
        .kinds(["bench_noop"])
        .migrate(false)
        .build()?
        .start()
        .await?;
    // Let the start-up work (election, schedule sync, first passes) settle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    // The statistics are flushed by each backend at most once a second; the margin covers it.
    let tx_before = runledger::testing::database_transactions(&rl).await?;
    let calls_before = runledger::testing::statement_calls(&rl).await?;
    tokio::time::sleep(Duration::from_secs(seconds as u64)).await;
    let calls_after = runledger::testing::statement_calls(&rl).await?;
    let tx_after = runledger::testing::database_transactions(&rl).await?;
    running.shutdown().await?;
    let extra = json!({"seconds": seconds, "queues": 2});
    // The readings count themselves: three statements between the two sums (the first sum,
    // the second check and extension), seven transactions between the two totals.
    if let (Some(before), Some(after)) = (calls_before, calls_after) {
        let sent = (after - before - 3).max(0);
        bench.record(
            "idle",
            "statements per second, one idle worker",
            sent as f64 / seconds as f64,
            "stmt/s",
            extra.clone(),
        );
    }
    let sent = (tx_after - tx_before - 7).max(0);
    bench.record(
        "idle",
        "transactions per second (with autovacuum's)",
        sent as f64 / seconds as f64,
        "tx/s",
        extra,
    );
    Ok(())
}

/// Sustained load: a producer enqueues `rate` jobs per second (a batch every 10 ms) for 60 s
/// while one worker runs them; completed jobs are pruned 10 s after they finish.
async fn w5(bench: &mut Bench, rate: usize, concurrency: usize) -> Result<(), runledger::Error> {
    const SECONDS: u64 = 60;
    const TICK: Duration = Duration::from_millis(10);
    let db = bench.database().await?;
    let rl = db.client();
    latencies().lock().expect("latencies").clear();
    let worker = tuned(
        Worker::builder(db.pool().clone())
            .queues(["sustained"])
            .kinds(["bench_e2e"])
            .concurrency(concurrency)
            .retention(runledger::worker::Retention::all(Duration::from_secs(10)))
            .prune_interval(Duration::from_secs(1))
            .migrate(false),
    )
    .build()?;
    let running = worker.start().await?;
    let per_tick = (rate as u64 * TICK.as_millis() as u64 / 1000).max(1) as usize;
    let sent = Arc::new(AtomicU64::new(0));
    let producer = {
        let rl = rl.clone();
        let sent = sent.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(TICK);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let ticks = SECONDS * 1000 / TICK.as_millis() as u64;
            for _ in 0..ticks {
                interval.tick().await;
                let now = wall_clock_us();
                let jobs = (0..per_tick).map(|_| BenchE2e { enqueued_us: now });
                let n = rl.enqueue_many(jobs).await?.len();
                sent.fetch_add(n as u64, Ordering::Relaxed);
            }
            Ok::<_, runledger::Error>(())
        })
    };
    let started = Instant::now();
    // Backlog (enqueued, not yet finished by a handler) from the counters every 100 ms, which
    // costs the database nothing; the table's health every 5 s (a count of finished rows reads
    // the whole table, so it is not done more often).
    let mut max_backlog = 0u64;
    let mut last_backlog = 0u64;
    // (second, finished rows still in the table, dead tuples)
    let mut health: Vec<(u64, i64, i64)> = Vec::new();
    let mut next_health = Duration::from_secs(5);
    while !producer.is_finished() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let handled = running.metrics().completed;
        last_backlog = sent.load(Ordering::Relaxed).saturating_sub(handled);
        max_backlog = max_backlog.max(last_backlog);
        if started.elapsed() >= next_health {
            next_health += Duration::from_secs(5);
            let counts = runledger::testing::count_by_state(&rl).await?;
            let finished: i64 = counts
                .iter()
                .filter(|(s, _)| s.is_finished())
                .map(|(_, n)| *n)
                .sum();
            let (_, dead) = runledger::testing::jobs_table_tuples(&rl).await?;
            let secs = started.elapsed().as_secs();
            if !bench.json {
                eprintln!(
                    "  w5 {secs:>3} s: backlog {last_backlog}, finished rows {finished}, dead tuples {dead}"
                );
            }
            health.push((secs, finished, dead));
        }
    }
    let max_finished = health.iter().map(|h| h.1).max().unwrap_or(0);
    let dead_between = |from: u64, to: u64| {
        health
            .iter()
            .filter(|h| (from..to).contains(&h.0))
            .map(|h| h.2)
            .max()
            .unwrap_or(0)
    };
    // Dead tuples must not grow: the worst of the third quarter against the worst of the last.
    let dead_third_quarter = dead_between(SECONDS / 2, SECONDS * 3 / 4);
    let dead_last_quarter = dead_between(SECONDS * 3 / 4, u64::MAX);
    producer.await.expect("producer task")?;
    let sent = sent.load(Ordering::Relaxed) as usize;
    let produced_in = started.elapsed();
    let completed_in_window = running.metrics().completed;
    // Let the worker finish what is queued, then read the table's health.
    let drain_started = Instant::now();
    while (running.metrics().completed as usize) < sent
        && drain_started.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (live, dead) = runledger::testing::jobs_table_tuples(&rl).await?;
    running.shutdown().await?;
    let mut lat = std::mem::take(&mut *latencies().lock().expect("latencies"));
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(0.0, |us| *us as f64 / 1000.0)
    };
    let extra = json!({
        "target_rate": rate, "seconds": SECONDS, "concurrency": concurrency, "enqueued": sent,
    });
    let per_s = |n: f64| n / produced_in.as_secs_f64();
    let figures = [
        (
            format!("enqueued, target {rate}/s"),
            per_s(sent as f64),
            "jobs/s",
        ),
        (
            "completed during the 60 s".into(),
            per_s(completed_in_window as f64),
            "jobs/s",
        ),
        ("end-to-end p50".into(), pct(0.50), "ms"),
        ("end-to-end p99".into(), pct(0.99), "ms"),
        ("end-to-end max".into(), pct(1.0), "ms"),
        (
            "backlog, max (enqueued, not handled)".into(),
            max_backlog as f64,
            "jobs",
        ),
        ("backlog at 60 s".into(), last_backlog as f64, "jobs"),
        (
            "finished rows kept, max".into(),
            max_finished as f64,
            "rows",
        ),
        (
            "dead tuples, max 30-45 s".into(),
            dead_third_quarter as f64,
            "rows",
        ),
        (
            "dead tuples, max 45-60 s".into(),
            dead_last_quarter as f64,
            "rows",
        ),
        (
            "jobs table live rows at the end".into(),
            live as f64,
            "rows",
        ),
        (
            "jobs table dead rows at the end".into(),
            dead as f64,
            "rows",
        ),
    ];
    for (name, value, unit) in figures {
        bench.record("w5", name, value, unit, extra.clone());
    }
    Ok(())
}

/// Starts `runs` diamond runs from 8 clients, then drains them with one worker.
async fn w4(bench: &mut Bench, runs: usize, concurrency: usize) -> Result<(), runledger::Error> {
    let db = bench.database().await?;
    let rl = db.client();
    let start_pool = own_pool(&db).await?;
    let starter = Runledger::new(start_pool.clone());
    let clients = 8;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..clients {
        let rl = starter.clone();
        tasks.push(tokio::spawn(async move {
            let mut handles = Vec::new();
            for seed in (client..runs).step_by(clients) {
                handles.push(BenchDiamond { seed: seed as u64 }.enqueue(&rl).await?);
            }
            Ok::<_, runledger::Error>(handles)
        }));
    }
    let mut handles = Vec::with_capacity(runs);
    for task in tasks {
        handles.extend(task.await.expect("starter task")?);
    }
    let start_rate = runs as f64 / started.elapsed().as_secs_f64();
    start_pool.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let work_before = Counters::read(db.pool()).await?;
    let worker_pool = own_pool(&db).await?;
    let worker = tuned(
        Worker::builder(worker_pool.clone())
            .queues(["bench"])
            .kinds(["bench_seed", "bench_add", "bench_join"])
            .concurrency(concurrency)
            .migrate(false),
    )
    .build()?;
    let cpu = CpuTimes::read();
    let started = Instant::now();
    let running = worker.start().await?;
    loop {
        let open = runledger::testing::count_open_runs(&rl).await?;
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = started.elapsed();
    let cpu = CpuTimes::since(cpu);
    running.shutdown().await?;
    worker_pool.close().await;
    let work = work_done(db.pool(), work_before, runs * 4).await?;
    // Every run computed seed + 1 + seed + 2.
    for (i, handle) in handles.iter().enumerate().step_by(97) {
        let _ = i;
        // The starters' pool is closed: wait through the test database's.
        let output = rl
            .workflow_handle::<BenchDiamond>(handle.id())
            .wait_timeout(Duration::from_secs(5))
            .await?;
        let seed = rl
            .workflow_run(handle.id())
            .await?
            .and_then(|r| r.input["seed"].as_u64())
            .unwrap_or_default();
        assert_eq!(
            output,
            2 * seed + 3,
            "run {} computed a wrong total",
            handle.id()
        );
    }
    let extra = json!({"runs": runs, "steps": runs * 4, "concurrency": concurrency});
    bench.record(
        "w4",
        "runs started, 8 clients",
        start_rate,
        "runs/s",
        extra.clone(),
    );
    bench.record(
        "w4",
        format!("steps, concurrency {concurrency}"),
        (runs * 4) as f64 / elapsed.as_secs_f64(),
        "steps/s",
        extra.clone(),
    );
    bench.record(
        "w4",
        format!("runs, concurrency {concurrency}"),
        runs as f64 / elapsed.as_secs_f64(),
        "runs/s",
        extra.clone(),
    );
    record_work(bench, "w4", "per step", &work, &extra);
    record_cpu(
        bench,
        "w4",
        &format!("concurrency {concurrency}"),
        cpu,
        extra,
    );
    Ok(())
}

/// The database work of a workload, per unit (job or step).
struct Work {
    commits: f64,
    inserted: f64,
    updated: f64,
    deleted: f64,
    wal_bytes: f64,
    seq_read: f64,
    fetch_index_read: f64,
}

/// The counters' growth since `before`, per one of `units`. The writers' connections must be
/// closed by now, so that their row statistics have landed.
async fn work_done(
    pool: &sqlx::PgPool,
    before: Counters,
    units: usize,
) -> Result<Work, runledger::Error> {
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = Counters::read(pool).await?;
    let wal = before.wal_bytes_until(&after, pool).await?;
    let per = |a: i64, b: i64| (a - b) as f64 / units as f64;
    Ok(Work {
        // The read of `after` took no transaction id.
        commits: per(after.xids, before.xids),
        inserted: per(after.inserted, before.inserted),
        updated: per(after.updated, before.updated),
        deleted: per(after.deleted, before.deleted),
        wal_bytes: wal as f64 / units as f64,
        seq_read: per(after.seq_read, before.seq_read),
        fetch_index_read: per(after.fetch_index_read, before.fetch_index_read),
    })
}

/// A pool of its own on `db`, sized like the test database's, so that closing it ends its
/// sessions and their statistics land.
async fn own_pool(db: &TestDatabase) -> Result<sqlx::PgPool, runledger::Error> {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .connect(db.url())
        .await
        .map_err(runledger::Error::from)
}

fn record_work(
    bench: &mut Bench,
    workload: &'static str,
    label: &str,
    work: &Work,
    extra: &serde_json::Value,
) {
    for (name, value, unit) in [
        ("commits", work.commits, "commits"),
        ("rows inserted", work.inserted, "rows"),
        ("rows updated", work.updated, "rows"),
        ("rows deleted", work.deleted, "rows"),
        ("WAL", work.wal_bytes, "bytes"),
        ("jobs rows read by seq scans", work.seq_read, "rows"),
        ("claim index entries read", work.fetch_index_read, "entries"),
    ] {
        bench.record(
            workload,
            format!("{name} per unit, {label}"),
            value,
            unit,
            extra.clone(),
        );
    }
}

/// Inserts `n` no-op jobs in chunks; returns the rate.
async fn bulk_enqueue(rl: &Runledger, n: usize) -> Result<f64, runledger::Error> {
    let started = Instant::now();
    let mut seq = 0u64;
    while (seq as usize) < n {
        let chunk = (n - seq as usize).min(5_000);
        let jobs: Vec<BenchNoop> = (0..chunk as u64)
            .map(|i| BenchNoop { seq: seq + i })
            .collect();
        rl.enqueue_many(jobs).await?;
        seq += chunk as u64;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// `--prefetch`, when given.
static PREFETCH: OnceLock<Option<usize>> = OnceLock::new();

/// A worker builder for a workload: with `--prefetch` applied.
fn tuned(builder: runledger::worker::WorkerBuilder) -> runledger::worker::WorkerBuilder {
    match PREFETCH.get().copied().flatten() {
        Some(prefetch) => builder.prefetch(prefetch),
        None => builder,
    }
}

fn batch_for(concurrency: usize) -> usize {
    concurrency.min(100)
}

/// The claim/complete cycle with nothing around it: one task claims batches, one completes them.
async fn raw(bench: &mut Bench, n: usize, concurrency: usize) -> Result<f64, runledger::Error> {
    let db = bench.database().await?;
    let rl = db.client();
    bulk_enqueue(&rl, n).await?;
    let pool = db.pool().clone();
    let batch = batch_for(concurrency) as i64;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<runledger::__bench::Token>>(4);
    let started = Instant::now();
    let claimer = {
        let pool = pool.clone();
        tokio::spawn(async move {
            loop {
                let claimed =
                    runledger::__bench::claim(&pool, "bench", &["bench_noop"], batch).await?;
                if claimed.is_empty() {
                    return Ok::<(), runledger::Error>(());
                }
                if tx.send(claimed).await.is_err() {
                    return Ok(());
                }
            }
        })
    };
    let mut done = 0usize;
    while let Some(mut tokens) = rx.recv().await {
        while let Ok(more) = rx.try_recv() {
            tokens.extend(more);
        }
        done += runledger::__bench::complete(&pool, &tokens).await?;
    }
    claimer.await.expect("claimer task")?;
    let rate = done as f64 / started.elapsed().as_secs_f64();
    assert_eq!(done, n, "raw cycle completed {done} of {n}");
    bench.record(
        "raw",
        format!("raw jobs/s (batch {batch})"),
        rate,
        "jobs/s",
        json!({"jobs": n, "batch": batch}),
    );
    Ok(rate)
}

/// `clients` connections, each claiming and completing 100 jobs per transaction with the bare
/// statements: what the server does when batching is not limited by one pipeline.
async fn raw_clients(bench: &mut Bench, n: usize, clients: usize) -> Result<f64, runledger::Error> {
    let db = bench.database().await?;
    let rl = db.client();
    bulk_enqueue(&rl, n).await?;
    let cpu = CpuTimes::read();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let pool = db.pool().clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            loop {
                let n =
                    runledger::__bench::claim_and_complete(&pool, "bench", &["bench_noop"], 100)
                        .await?;
                if n == 0 {
                    return Ok::<usize, runledger::Error>(done);
                }
                done += n;
            }
        }));
    }
    let mut done = 0;
    for task in tasks {
        done += task.await.expect("raw client task")?;
    }
    let rate = done as f64 / started.elapsed().as_secs_f64();
    let cpu = CpuTimes::since(cpu);
    assert_eq!(done, n, "raw clients completed {done} of {n}");
    let extra = json!({"jobs": n, "clients": clients, "batch": 100});
    bench.record(
        "raw",
        format!("raw jobs/s ({clients} clients, 100 per transaction)"),
        rate,
        "jobs/s",
        extra.clone(),
    );
    record_cpu(bench, "raw", &format!("{clients} clients"), cpu, extra);
    Ok(rate)
}

/// Bare single-row inserts, each its own transaction, from one client.
async fn raw_insert(bench: &mut Bench, n: usize) -> Result<f64, runledger::Error> {
    let db = bench.database().await?;
    let pool = db.pool().clone();
    let started = Instant::now();
    for seq in 0..n {
        let args = format!("{{\"seq\":{seq}}}");
        runledger::__bench::bare_insert(&pool, "bench_noop", "bench", &args).await?;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    bench.record(
        "raw",
        "raw single-row insert, 1 client",
        rate,
        "jobs/s",
        json!({"jobs": n, "clients": 1}),
    );
    Ok(rate)
}

async fn w1(
    bench: &mut Bench,
    n: usize,
    concurrency: usize,
    raw: f64,
    raw8: f64,
) -> Result<(), runledger::Error> {
    let db = bench.database().await?;
    let rl = db.client();
    let enqueue_pool = own_pool(&db).await?;
    let enqueue_rate = bulk_enqueue(&Runledger::new(enqueue_pool.clone()), n).await?;
    enqueue_pool.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let work_before = Counters::read(db.pool()).await?;
    reset_peak_rss();
    let worker_pool = own_pool(&db).await?;
    let worker = tuned(
        Worker::builder(worker_pool.clone())
            .queues(["bench"])
            .kinds(["bench_noop"])
            .concurrency(concurrency)
            .migrate(false),
    )
    .build()?;
    let cpu = CpuTimes::read();
    let started = Instant::now();
    let running = worker.start().await?;
    while running.metrics().completed < n as u64 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // The counter counts outcomes handed to the completer; the drain ends when the database
    // says every job is completed.
    loop {
        let counts = runledger::testing::count_by_state(&rl).await?;
        let completed = counts
            .iter()
            .find(|(s, _)| *s == runledger::job::JobState::Completed)
            .map_or(0, |(_, n)| *n);
        if completed as usize >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = started.elapsed();
    let cpu = CpuTimes::since(cpu);
    let rss = peak_rss_kib();
    let report = running.shutdown().await?;
    if std::env::var_os("RUNLEDGER_BENCH_METRICS").is_some() {
        eprintln!("w1 c{concurrency}: {:?}", report.metrics);
    }
    worker_pool.close().await;
    let work = work_done(db.pool(), work_before, n).await?;
    let drain = n as f64 / elapsed.as_secs_f64();
    let extra = json!({"jobs": n, "concurrency": concurrency});
    bench.record(
        "w1",
        format!("bulk enqueue (c{concurrency} run)"),
        enqueue_rate,
        "jobs/s",
        extra.clone(),
    );
    bench.record(
        "w1",
        format!("drain, concurrency {concurrency}"),
        drain,
        "jobs/s",
        extra.clone(),
    );
    bench.record(
        "w1",
        format!("ratio_to_raw, concurrency {concurrency}"),
        drain / raw,
        "x",
        extra.clone(),
    );
    bench.record(
        "w1",
        format!("ratio_to_raw8, concurrency {concurrency}"),
        drain / raw8,
        "x",
        extra.clone(),
    );
    record_work(
        bench,
        "w1",
        &format!("concurrency {concurrency}"),
        &work,
        &extra,
    );
    record_cpu(
        bench,
        "w1",
        &format!("concurrency {concurrency}"),
        cpu,
        extra.clone(),
    );
    if let Some(kib) = rss {
        bench.record(
            "w1",
            format!("worker peak RSS, concurrency {concurrency}"),
            kib as f64 / 1024.0,
            "MiB",
            extra,
        );
    }
    Ok(())
}

async fn w2(bench: &mut Bench, n: usize) -> Result<(), runledger::Error> {
    let bare = raw_insert(bench, n).await?;
    let db = bench.database().await?;
    let rl = db.client();
    let started = Instant::now();
    for seq in 0..n as u64 {
        BenchNoop { seq }.enqueue(&rl).await?;
    }
    let one = n as f64 / started.elapsed().as_secs_f64();
    bench.record(
        "w2",
        "single enqueue, 1 client",
        one,
        "jobs/s",
        json!({"jobs": n, "clients": 1}),
    );
    bench.record(
        "w2",
        "ratio_to_raw_insert, 1 client",
        one / bare,
        "x",
        json!({"jobs": n, "clients": 1}),
    );

    let clients = 8;
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let rl = rl.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                if seq >= n as u64 {
                    return Ok::<(), runledger::Error>(());
                }
                BenchNoop {
                    seq: seq + n as u64,
                }
                .enqueue(&rl)
                .await?;
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task")?;
    }
    let eight = n as f64 / started.elapsed().as_secs_f64();
    bench.record(
        "w2",
        "single enqueue, 8 clients",
        eight,
        "jobs/s",
        json!({"jobs": n, "clients": clients}),
    );
    Ok(())
}

async fn w3(bench: &mut Bench, n: usize) -> Result<(), runledger::Error> {
    let db = bench.database().await?;
    let rl = db.client();
    let running = Worker::builder(db.pool().clone())
        .queues(["latency"])
        .kinds(["bench_latency"])
        .concurrency(10)
        .migrate(false)
        .build()?
        .start()
        .await?;
    // Let the listener settle.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut committed = HashMap::new();
    for seq in 0..n as u64 {
        BenchLatency { seq }.enqueue(&rl).await?;
        committed.insert(seq, Instant::now());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while starts().lock().expect("starts").len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    running.shutdown().await?;
    let starts = starts().lock().expect("starts").clone();
    let mut latencies: Vec<f64> = committed
        .iter()
        .filter_map(|(seq, at)| {
            let start = starts.get(seq)?;
            Some(start.saturating_duration_since(*at).as_secs_f64() * 1000.0)
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    if latencies.len() < n {
        eprintln!(
            "warning: {} of {n} latency jobs did not start within 10 s",
            n - latencies.len()
        );
    }
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    let extra = json!({"jobs": n, "interval_ms": 20});
    bench.record("w3", "pickup p50", pct(0.50), "ms", extra.clone());
    bench.record("w3", "pickup p95", pct(0.95), "ms", extra.clone());
    bench.record("w3", "pickup p99", pct(0.99), "ms", extra.clone());
    bench.record("w3", "pickup max", pct(1.0), "ms", extra);
    Ok(())
}

/// Resets the peak resident set size of this process (Linux), so the next reading covers only
/// what follows.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident set size of this process in KiB (Linux).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
