//! The worker: one producer per queue claims jobs in batches, the executor runs each in its own
//! task, the completer writes outcomes in batches, the lease keeper renews leases, and the
//! maintenance services (stager, rescuer, leader elector; scheduler and pruner on the leader)
//! keep the tables moving.

mod completer;
mod executor;
mod lease;
mod listener;
mod producer;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinHandle;

use crate::client::Runledger;
use crate::error::Error;
use crate::job::{StateMap, StopReason};
use crate::registry::{self, JobRegistration};
use crate::store::jobs::Outcome;
use crate::validate;

pub(crate) use completer::CompletionSender;

/// Builds a [`Worker`]: which queues, how many jobs at once, which injected state.
///
/// ```no_run
/// # async fn demo(pool: sqlx::PgPool) -> Result<(), runledger::Error> {
/// use runledger::Worker;
/// Worker::builder(pool)
///     .queues(["default", "payments"])
///     .concurrency(64)
///     .build()?
///     .run_until(async { tokio::signal::ctrl_c().await.ok(); })
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "call `.build()` to get the worker"]
pub struct WorkerBuilder {
    pool: PgPool,
    pub(crate) config: WorkerConfig,
    state: StateMap,
    only_kinds: Option<Vec<String>>,
    excluded_kinds: Vec<String>,
    registrations: Option<Vec<&'static JobRegistration>>,
}

impl std::fmt::Debug for StateMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateMap")
    }
}

#[derive(Debug, Clone)]
pub(crate) struct WorkerConfig {
    pub(crate) id: String,
    pub(crate) queues: Vec<String>,
    pub(crate) concurrency: usize,
    pub(crate) batch_size: usize,
    pub(crate) poll_interval: Duration,
    pub(crate) lease: Duration,
    pub(crate) shutdown_grace: Duration,
    pub(crate) completion_deadline: Duration,
    pub(crate) rescue_interval: Duration,
    pub(crate) stage_max_interval: Duration,
    pub(crate) migrate: bool,
    pub(crate) max_payload_bytes: usize,
    pub(crate) maintenance: crate::maintenance::MaintenanceConfig,
}

impl WorkerBuilder {
    pub(crate) fn new(pool: PgPool) -> Self {
        Self {
            pool,
            config: WorkerConfig {
                id: default_worker_id(),
                queues: vec!["default".to_owned()],
                concurrency: 10,
                batch_size: 100,
                poll_interval: Duration::from_secs(2),
                lease: Duration::from_secs(30),
                shutdown_grace: Duration::from_secs(30),
                completion_deadline: Duration::from_secs(60),
                rescue_interval: Duration::from_secs(15),
                // The stager sleeps until the next scheduled job is due; new scheduled jobs
                // (a notification) and this worker's own retries wake it. The bound covers
                // retries written by a worker that stopped before they were due.
                stage_max_interval: Duration::from_secs(30),
                migrate: true,
                max_payload_bytes: crate::client::DEFAULT_MAX_PAYLOAD_BYTES,
                maintenance: Default::default(),
            },
            state: StateMap::default(),
            only_kinds: None,
            excluded_kinds: Vec::new(),
            registrations: None,
        }
    }

    /// Queues to work, in no particular order. Default `["default"]`.
    pub fn queues<I, S>(mut self, queues: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config.queues = queues.into_iter().map(Into::into).collect();
        self
    }

    /// Most jobs running at once. Default 10.
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.config.concurrency = concurrency;
        self
    }

    /// Most jobs claimed per statement. Default 100 (never more than the free slots).
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.config.batch_size = batch_size;
        self
    }

    /// How often the worker looks for available jobs when no notification arrives. Default
    /// 2 s. Notifications wake the worker at once; the poll is the fallback when they are lost.
    /// One statement checks every queue of the worker; only the queues with jobs are claimed
    /// from.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.config.poll_interval = interval;
        self
    }

    /// How long a claim is valid without renewal. Leases are renewed every third of this while
    /// the job runs; a job whose lease expires (worker crashed or cut off) is rescued by any
    /// worker. Default 30 s, at least 500 ms.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.config.lease = lease;
        self
    }

    /// How often expired leases are looked for. Default 15 s.
    pub fn rescue_interval(mut self, interval: Duration) -> Self {
        self.config.rescue_interval = interval;
        self
    }

    /// How long shutdown waits for running jobs before asking them to stop and handing them
    /// back to the queue. Default 30 s.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.config.shutdown_grace = grace;
        self
    }

    /// How long shutdown keeps retrying to record finished jobs while the database is
    /// unreachable. Jobs whose result could not be recorded are rescued after their lease
    /// expires and run again. Default 60 s.
    pub fn completion_deadline(mut self, deadline: Duration) -> Self {
        self.config.completion_deadline = deadline;
        self
    }

    /// A name for this worker, recorded on the jobs it claims. Default: host, pid and a random
    /// suffix.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.config.id = id.into();
        self
    }

    /// Whether to apply runledger's migrations at start. Default true.
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.config.migrate = migrate;
        self
    }

    /// Largest output accepted from a handler, as JSON bytes. Default 1 MiB.
    pub fn max_payload_bytes(mut self, bytes: usize) -> Self {
        self.config.max_payload_bytes = bytes;
        self
    }

    /// Registers a value that handlers receive through a `State<T>` parameter.
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.state.insert(value);
        self
    }

    /// Runs only these kinds (all linked kinds by default). Unknown names fail `build()`.
    pub fn kinds<I, S>(mut self, kinds: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.only_kinds = Some(kinds.into_iter().map(Into::into).collect());
        self
    }

    /// Does not run these kinds; jobs of these kinds are left for other workers.
    pub fn exclude_kinds<I, S>(mut self, kinds: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.excluded_kinds
            .extend(kinds.into_iter().map(Into::into));
        self
    }

    #[doc(hidden)]
    /// Uses these registrations instead of the linked ones (tests of the registry).
    pub fn __registrations(mut self, regs: Vec<&'static JobRegistration>) -> Self {
        self.registrations = Some(regs);
        self
    }

    /// Checks the configuration and builds the worker. Fails when two job kinds (or two
    /// workflows) share a name, when a job needs a `State<T>` that was not registered, or when a setting is out of range.
    pub fn build(self) -> Result<Worker, Error> {
        let c = &self.config;
        if c.queues.is_empty() {
            return Err(Error::Config(
                "the worker has no queues; pass at least one to `queues`".into(),
            ));
        }
        for q in &c.queues {
            validate::name("queue", q).map_err(|e| Error::Config(e.to_string()))?;
        }
        let mut seen = std::collections::HashSet::new();
        for q in &c.queues {
            if !seen.insert(q) {
                return Err(Error::Config(format!("queue `{q}` is listed twice")));
            }
        }
        if c.id.is_empty() || c.id.len() > 200 {
            return Err(Error::Config(format!(
                "the worker id must be 1 to 200 bytes long; `{}` is {} bytes",
                c.id.chars().take(40).collect::<String>(),
                c.id.len()
            )));
        }
        if c.concurrency == 0 {
            return Err(Error::Config("concurrency must be at least 1".into()));
        }
        if c.batch_size == 0 {
            return Err(Error::Config("batch_size must be at least 1".into()));
        }
        if c.lease < Duration::from_millis(500) {
            return Err(Error::Config(format!(
                "a lease of {:?} is too short to renew reliably; use at least 500 ms",
                c.lease
            )));
        }
        if c.poll_interval.is_zero() || c.rescue_interval.is_zero() {
            return Err(Error::Config(
                "poll and rescue intervals must be above zero".into(),
            ));
        }
        let regs: Vec<&'static JobRegistration> = match self.registrations {
            Some(regs) => regs,
            None => registry::all().collect(),
        };
        let full = registry::table(regs.iter().copied())?;
        crate::workflow::check_registrations()?;
        if let Some(only) = &self.only_kinds {
            for k in only {
                if !full.contains_key(k.as_str()) {
                    return Err(Error::Config(format!(
                        "kind `{k}` passed to `kinds` has no `#[job]` linked into this binary"
                    )));
                }
            }
        }
        let handlers: HashMap<&'static str, &'static JobRegistration> = full
            .into_iter()
            .filter(|(_, reg)| {
                let keep = self
                    .only_kinds
                    .as_ref()
                    .is_none_or(|only| only.iter().any(|k| k == reg.kind));
                keep && !self.excluded_kinds.iter().any(|k| k == reg.kind)
            })
            .collect();
        for reg in handlers.values() {
            for need in (reg.required_state)() {
                if !self.state.contains(need.type_id) {
                    return Err(Error::Config(format!(
                        "job `{}` takes `State<{}>`, but the worker has no such state; add \
                         `.state(value)` to the worker builder",
                        reg.kind, need.type_name
                    )));
                }
            }
        }
        crate::maintenance::check(&self.config, handlers.values().copied())?;
        let mut kinds: Vec<&'static str> = handlers.keys().copied().collect();
        kinds.sort_unstable();
        Ok(Worker {
            pool: self.pool,
            config: self.config,
            state: Arc::new(self.state),
            handlers,
            kinds,
        })
    }
}

fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!(
        "{host}:{}:{:04x}",
        std::process::id(),
        random_u64() & 0xffff
    )
}

/// A random number from the standard library's per-process hash keys.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A uniformly random number in `0.0..1.0`.
pub(crate) fn random_unit() -> f64 {
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// A configured worker; [`start`](Worker::start) it or [`run_until`](Worker::run_until) a signal.
#[derive(Debug)]
pub struct Worker {
    pool: PgPool,
    config: WorkerConfig,
    state: Arc<StateMap>,
    handlers: HashMap<&'static str, &'static JobRegistration>,
    kinds: Vec<&'static str>,
}

impl Worker {
    /// A builder on `pool`.
    pub fn builder(pool: PgPool) -> WorkerBuilder {
        WorkerBuilder::new(pool)
    }

    /// The kinds (and aliases) this worker runs.
    pub fn kinds(&self) -> &[&'static str] {
        &self.kinds
    }

    /// The queues this worker works.
    pub fn queues(&self) -> &[String] {
        &self.config.queues
    }

    /// The pool this worker uses.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The smallest pool this worker should be given: its queues plus 10, for the listener,
    /// the claims, the poller, the completer and the maintenance services, which can all be in
    /// a statement at once. Handlers that use `ctx.client().pool()` need connections on top.
    /// (Lease renewals use a connection of their own, outside the pool.)
    pub fn advised_pool_size(&self) -> u32 {
        u32::try_from(self.config.queues.len())
            .unwrap_or(u32::MAX)
            .saturating_add(10)
    }

    /// Runs until `signal` resolves, then shuts down gracefully (see
    /// [`RunningWorker::shutdown`]).
    pub async fn run_until(
        self,
        signal: impl Future<Output = ()>,
    ) -> Result<ShutdownReport, Error> {
        let running = self.start().await?;
        signal.await;
        running.shutdown().await
    }

    /// Applies migrations (unless turned off), starts every component in the background and
    /// returns a handle to stop it.
    pub async fn start(self) -> Result<RunningWorker, Error> {
        let pool_size = self.pool.options().get_max_connections();
        if pool_size < self.advised_pool_size() {
            tracing::warn!(
                worker = %self.config.id,
                pool_size,
                advised = self.advised_pool_size(),
                "the worker's pool is smaller than advised (queues + 10): claims, outcomes and \
                 maintenance will wait for each other; raise `max_connections`"
            );
        }
        if self.config.migrate {
            crate::store::migrate(&self.pool).await?;
        }
        let client = Runledger::builder(self.pool.clone())
            .max_payload_bytes(self.config.max_payload_bytes)
            .build();
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (completions, completion_rx) = completer::channel(self.config.concurrency);
        let wakes: HashMap<String, Arc<Notify>> = self
            .config
            .queues
            .iter()
            .map(|q| (q.clone(), Arc::new(Notify::new())))
            .collect();
        let lease_pool = lease::pool(&self.pool, self.config.lease);
        let shared = Arc::new(Shared {
            pool: self.pool.clone(),
            lease_pool,
            client,
            config: self.config.clone(),
            handlers: self.handlers,
            kinds: self.kinds,
            state: self.state,
            slots: Arc::new(Semaphore::new(self.config.concurrency)),
            running: Mutex::new(HashMap::new()),
            completions,
            queue_wakes: wakes,
            stager_wake: Notify::new(),
            scheduler_wake: Notify::new(),
            metrics: Metrics::default(),
            shutdown: shutdown_rx.clone(),
            maintenance: crate::maintenance::Maintenance::new(&self.config.id),
        });

        // Syncs declared schedules, then starts the stager, rescuer and leader elector (and the
        // scheduler and pruner, which run while this worker is the leader).
        let mut tasks: Vec<(&'static str, JoinHandle<()>)> =
            crate::maintenance::start(&shared).await?;
        let completer = tokio::spawn(completer::run(shared.clone(), completion_rx));
        tasks.push(("listener", tokio::spawn(listener::run(shared.clone()))));
        for queue in &shared.config.queues {
            tasks.push((
                "producer",
                tokio::spawn(producer::run(shared.clone(), queue.clone())),
            ));
        }
        tasks.push(("poller", tokio::spawn(producer::poll(shared.clone()))));
        tasks.push(("lease keeper", tokio::spawn(lease::run(shared.clone()))));
        tasks.push(("lease guard", tokio::spawn(lease::guard(shared.clone()))));
        tracing::info!(
            worker = %shared.config.id,
            queues = ?shared.config.queues,
            kinds = shared.kinds.len(),
            concurrency = shared.config.concurrency,
            "runledger worker started"
        );
        Ok(RunningWorker {
            shared,
            shutdown_tx,
            tasks,
            completer,
        })
    }
}

/// A record of one running attempt, kept until its outcome is written.
pub(crate) struct RunningEntry {
    pub(crate) stop: watch::Sender<Option<StopReason>>,
    /// When the lease ends at the latest, by this process's clock: the lease's length after the
    /// claim or the last renewal was sent (the database counts from a later instant, so its
    /// lease never ends before this). The lease guard stops the attempt before this passes.
    pub(crate) lease_until: tokio::time::Instant,
    /// The handler is done and its outcome queued for the completer: a renewal that no longer
    /// finds the row running means the outcome was written, not that the lease was lost.
    pub(crate) finished: bool,
}

/// Everything the worker's tasks share.
pub(crate) struct Shared {
    pub(crate) pool: PgPool,
    /// The lease keeper's own connection, outside `pool`: renewals never wait behind handlers
    /// (or anything else) that hold the pool's connections.
    pub(crate) lease_pool: PgPool,
    pub(crate) client: Runledger,
    pub(crate) config: WorkerConfig,
    pub(crate) handlers: HashMap<&'static str, &'static JobRegistration>,
    pub(crate) kinds: Vec<&'static str>,
    pub(crate) state: Arc<StateMap>,
    /// One permit per job slot, held from the claim until the job's outcome is queued for the
    /// completer.
    pub(crate) slots: Arc<Semaphore>,
    /// Attempts whose outcome is not yet written, by (job id, attempt). One worker can hold two
    /// attempts of a job: a stale one whose lease it lost and the current one.
    pub(crate) running: Mutex<HashMap<(i64, i32), RunningEntry>>,
    pub(crate) completions: CompletionSender,
    pub(crate) queue_wakes: HashMap<String, Arc<Notify>>,
    pub(crate) stager_wake: Notify,
    /// Woken when a schedule is added, changed or resumed (by any process).
    pub(crate) scheduler_wake: Notify,
    pub(crate) metrics: Metrics,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) maintenance: crate::maintenance::Maintenance,
}

impl Shared {
    /// Asks the attempts of job `id` that this worker runs to stop.
    pub(crate) fn stop_job(&self, id: i64, reason: StopReason) {
        let running = self.running.lock().expect("running map poisoned");
        for ((job, _), entry) in running.iter() {
            if *job == id {
                entry.stop.send_replace(Some(reason));
            }
        }
    }

    /// Asks one attempt to stop.
    pub(crate) fn stop_attempt(&self, key: (i64, i32), reason: StopReason) {
        let running = self.running.lock().expect("running map poisoned");
        if let Some(entry) = running.get(&key) {
            entry.stop.send_replace(Some(reason));
        }
    }

    /// Wakes every producer, the stager and the scheduler (after a reconnect, when
    /// notifications may have been missed).
    pub(crate) fn wake_all(&self) {
        for wake in self.queue_wakes.values() {
            wake.notify_one();
        }
        self.stager_wake.notify_one();
        self.scheduler_wake.notify_one();
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Resolves when shutdown starts.
    pub(crate) async fn shutting_down(&self) {
        let mut rx = self.shutdown.clone();
        // An error means the sender is gone, which only happens after shutdown.
        let _ = rx.wait_for(|s| *s).await;
    }

    pub(crate) fn record(&self, outcome: &Outcome) {
        use crate::store::jobs::OutcomeKind as K;
        let counter = match outcome.kind {
            K::Completed => &self.metrics.completed,
            K::Retry => &self.metrics.retried,
            K::Failed => &self.metrics.failed,
            K::Cancelled => &self.metrics.cancelled,
            K::Snoozed => &self.metrics.snoozed,
            K::Released => &self.metrics.released,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Counters of what a worker did, since it started.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    claimed: AtomicU64,
    completed: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
    cancelled: AtomicU64,
    snoozed: AtomicU64,
    released: AtomicU64,
    fenced: AtomicU64,
    lease_lost: AtomicU64,
    rescued: AtomicU64,
    staged: AtomicU64,
    /// Released outcomes the database recorded (jobs actually handed back).
    handed_back: AtomicU64,
}

impl Metrics {
    pub(crate) fn add(&self, counter: MetricKind, n: u64) {
        let c = match counter {
            MetricKind::Claimed => &self.claimed,
            MetricKind::Fenced => &self.fenced,
            MetricKind::LeaseLost => &self.lease_lost,
            MetricKind::Rescued => &self.rescued,
            MetricKind::Staged => &self.staged,
            MetricKind::HandedBack => &self.handed_back,
        };
        c.fetch_add(n, Ordering::Relaxed);
    }

    fn snapshot(&self) -> WorkerMetrics {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WorkerMetrics {
            claimed: get(&self.claimed),
            completed: get(&self.completed),
            retried: get(&self.retried),
            failed: get(&self.failed),
            cancelled: get(&self.cancelled),
            snoozed: get(&self.snoozed),
            released: get(&self.released),
            fenced: get(&self.fenced),
            lease_lost: get(&self.lease_lost),
            rescued: get(&self.rescued),
            staged: get(&self.staged),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum MetricKind {
    Claimed,
    Fenced,
    LeaseLost,
    Rescued,
    Staged,
    HandedBack,
}

/// A snapshot of a worker's counters. Outcome counters count outcomes handed to the completer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerMetrics {
    /// Jobs claimed.
    pub claimed: u64,
    /// Attempts that completed.
    pub completed: u64,
    /// Attempts that failed and were scheduled for retry (or failed for good when exhausted).
    pub retried: u64,
    /// Attempts that failed fatally.
    pub failed: u64,
    /// Attempts that ended cancelled.
    pub cancelled: u64,
    /// Attempts that snoozed.
    pub snoozed: u64,
    /// Attempts handed back at shutdown.
    pub released: u64,
    /// Outcomes the database refused because this worker no longer held the lease.
    pub fenced: u64,
    /// Running attempts that found their lease taken and were dropped.
    pub lease_lost: u64,
    /// Expired leases this worker's rescuer returned to the queue.
    pub rescued: u64,
    /// Scheduled and retryable jobs this worker's stager made available.
    pub staged: u64,
}

/// What a graceful shutdown did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Jobs that were still running after the grace period and were handed back to the queue
    /// (counted as the database recorded them: an attempt that finished on its own, or whose
    /// lease was lost, is not counted).
    pub released: u64,
    /// Final counters.
    pub metrics: WorkerMetrics,
}

/// A started worker. Dropping it without [`shutdown`](RunningWorker::shutdown) stops claiming
/// but leaves running jobs to be rescued after their lease expires.
#[derive(Debug)]
pub struct RunningWorker {
    shared: Arc<Shared>,
    shutdown_tx: watch::Sender<bool>,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
    completer: JoinHandle<()>,
}

async fn join_task(name: &str, task: JoinHandle<()>) {
    if let Err(e) = task.await
        && e.is_panic()
    {
        tracing::error!(task = name, "worker task panicked: {e}");
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("id", &self.config.id)
            .finish_non_exhaustive()
    }
}

impl RunningWorker {
    /// The worker's counters now.
    pub fn metrics(&self) -> WorkerMetrics {
        self.shared.metrics.snapshot()
    }

    /// The worker's id, as recorded on the jobs it claims.
    pub fn id(&self) -> &str {
        &self.shared.config.id
    }

    /// Jobs this worker holds a slot for now: running, or finished with the outcome waiting for
    /// room in the completer's queue.
    pub fn running(&self) -> usize {
        self.shared.config.concurrency - self.shared.slots.available_permits()
    }

    /// Stops claiming, waits up to the grace period for running jobs, asks the rest to stop and
    /// hands them back to the queue (without spending an attempt), writes every outcome, and
    /// returns. No job is left `running` under this worker's lease unless the database stayed
    /// unreachable past the completion deadline.
    pub async fn shutdown(self) -> Result<ShutdownReport, Error> {
        let RunningWorker {
            shared,
            shutdown_tx,
            tasks,
            completer,
        } = self;
        tracing::info!(worker = %shared.config.id, "runledger worker shutting down");
        shutdown_tx.send_replace(true);
        // Producers finish the claim in flight (its jobs run normally) and exit. They are
        // joined, never aborted: an aborted claim could commit rows nobody runs.
        let (producers, others): (Vec<_>, Vec<_>) =
            tasks.into_iter().partition(|(name, _)| *name == "producer");
        for (name, task) in producers {
            join_task(name, task).await;
        }
        let concurrency = u32::try_from(shared.config.concurrency).unwrap_or(u32::MAX);
        // Every slot free means every handler has finished.
        let all_slots = || shared.slots.acquire_many(concurrency);
        if tokio::time::timeout(shared.config.shutdown_grace, all_slots())
            .await
            .is_err()
        {
            let attempts: Vec<(i64, i32)> = {
                let running = shared.running.lock().expect("running map poisoned");
                running.keys().copied().collect()
            };
            tracing::warn!(
                worker = %shared.config.id,
                jobs = attempts.len(),
                "grace period over; handing running jobs back to the queue"
            );
            for key in attempts {
                shared.stop_attempt(key, StopReason::Shutdown);
            }
            // Dropped handler futures free their slots once their outcome (released) is queued;
            // a handler that blocks its thread cannot be stopped, and its job is rescued after
            // its lease expires.
            let _ = tokio::time::timeout(Duration::from_secs(5), all_slots()).await;
        }
        // Every outcome is now queued, or about to be: the completer writes them all (waiting
        // a little for executors still handing theirs in, and retrying while the database is
        // unreachable, up to the completion deadline) and exits. The lease keeper renews the
        // leases of unwritten outcomes until then.
        shared.completions.close();
        join_task("completer", completer).await;
        for (name, task) in others {
            let abort = task.abort_handle();
            // Maintenance services stop by themselves (the leader hands its lease back).
            if crate::maintenance::is_service(name) {
                let stopped = tokio::time::timeout(Duration::from_secs(5), join_task(name, task));
                if stopped.await.is_err() {
                    abort.abort();
                }
                continue;
            }
            task.abort();
            join_task(name, task).await;
        }
        shared.lease_pool.close().await;
        let metrics = shared.metrics.snapshot();
        let released = shared.metrics.handed_back.load(Ordering::Relaxed);
        tracing::info!(worker = %shared.config.id, ?metrics, "runledger worker stopped");
        Ok(ShutdownReport { released, metrics })
    }
}
