//! The worker: one producer per queue claims jobs in batches, the executor runs each in its own
//! task, the completer writes outcomes in batches, the lease keeper renews leases, and the
//! maintenance services (stager, rescuer, leader elector; scheduler and pruner on the leader)
//! keep the tables moving.

mod completer;
pub(crate) mod config;
pub(crate) mod executor;
pub(crate) mod journaler;
mod lease;
mod listener;
mod producer;
pub(crate) mod shared;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinHandle;

use crate::client::Runledger;
use crate::error::Error;
use crate::job::{StateMap, StopReason};
use crate::registry::{self, JobRegistration};
use crate::validate;

pub use config::Retention;
use config::WorkerConfig;
pub use shared::WorkerMetrics;
use shared::{Metrics, Shared};

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

impl WorkerBuilder {
    pub(crate) fn new(pool: PgPool) -> Self {
        Self {
            pool,
            config: WorkerConfig {
                id: default_worker_id(),
                queues: vec!["default".to_owned()],
                concurrency: 10,
                batch_size: 100,
                prefetch: 200,
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

    /// Most jobs claimed per statement. Default 100.
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.config.batch_size = batch_size;
        self
    }

    /// Most claimed jobs a queue's producer holds ahead of the free slots, waiting for one
    /// (prefetch). Default 200; 0 claims only for free slots.
    ///
    /// Claiming in batches sized for the database, not for the slots, keeps a worker with few
    /// slots from paying one round trip per handful of jobs. What is held is bounded by count
    /// (this) and by time: the producer grows its buffer only while held jobs start within
    /// 100 ms of their claim and shrinks it when they wait longer, and hands back (without
    /// spending an attempt) any job held 2 s without a free slot. Other workers of the queue
    /// therefore wait at most that long for jobs this one holds. Held jobs start highest
    /// priority first; their leases are renewed like running jobs'; shutdown hands them back at
    /// once.
    pub fn prefetch(mut self, prefetch: usize) -> Self {
        self.config.prefetch = prefetch;
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

    /// Registers a value that handlers receive through a `State<T>` parameter. A worker needs
    /// the state of the kinds it runs: those on its queues by default, and those named in
    /// [`kinds`](Self::kinds). A kind on another queue whose state is missing is not run by this
    /// worker (not even if one of its jobs is sent to this worker's queue).
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
    /// workflows) share a name, when a job this worker runs (on its queues by default, or named
    /// in [`kinds`](Self::kinds)) needs a `State<T>` that was not registered, or when a setting
    /// is out of range.
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
        let mut handlers: HashMap<&'static str, &'static JobRegistration> = full
            .into_iter()
            .filter(|(_, reg)| {
                let keep = self
                    .only_kinds
                    .as_ref()
                    .is_none_or(|only| only.iter().any(|k| k == reg.kind));
                keep && !self.excluded_kinds.iter().any(|k| k == reg.kind)
            })
            .collect();
        // A kind whose injected state is missing is an error only if this worker is meant to
        // run it: listed in `kinds`, or on one of its queues by default. Other kinds (another
        // team's jobs linked into the same binary) are left to the workers that have their
        // state; this one does not claim them, even if one is sent to its queue.
        let mut skipped = Vec::new();
        for reg in handlers.values() {
            let Some(need) = (reg.required_state)()
                .into_iter()
                .find(|need| !self.state.contains(need.type_id))
            else {
                continue;
            };
            let listed = self
                .only_kinds
                .as_ref()
                .is_some_and(|only| only.iter().any(|k| k == reg.kind));
            if listed || self.config.queues.iter().any(|q| q == reg.options.queue) {
                return Err(Error::Config(format!(
                    "job `{}` takes `State<{}>`, but the worker has no such state; add \
                     `.state(value)` to the worker builder",
                    reg.kind, need.type_name
                )));
            }
            skipped.push(reg.kind);
        }
        if !skipped.is_empty() {
            tracing::debug!(
                kinds = ?skipped,
                "kinds on other queues whose injected state this worker lacks are left to \
                 other workers"
            );
            handlers.retain(|_, reg| !skipped.contains(&reg.kind));
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
    format!(
        "{}:{}:{:04x}",
        config::host_name(),
        std::process::id(),
        crate::random::random_u64() & 0xffff
    )
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

    /// The smallest pool this worker should be given: its queues plus 11, for the listener,
    /// the claims, the poller, the completer's two writers and the maintenance services, which
    /// can all be in a statement at once; twice its queues plus 11 when it has more than one
    /// slot and its concurrency and prefetch span two claim batches, as with the defaults (each
    /// queue then claims on two connections at once). Handlers that use `ctx.client().pool()`
    /// need connections on top. (Lease renewals use a connection of their own, outside the
    /// pool.)
    pub fn advised_pool_size(&self) -> u32 {
        let claims = producer::claims_per_queue(
            self.config.concurrency,
            self.config.prefetch,
            self.config.batch_size,
        );
        u32::try_from(self.config.queues.len() * claims)
            .unwrap_or(u32::MAX)
            .saturating_add(10 + completer::PIPELINES as u32 - 1)
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
        let (completions, completion_rx) =
            shared::completion_channel(self.config.concurrency + self.config.prefetch);
        let wakes: HashMap<String, Arc<Notify>> = self
            .config
            .queues
            .iter()
            .map(|q| (q.clone(), Arc::new(Notify::new())))
            .collect();
        let lease_pool = lease::pool(&self.pool, self.config.lease);
        let journaler = self
            .handlers
            .values()
            .any(|reg| reg.options.durable)
            .then(|| journaler::Journaler::start(self.pool.clone()));
        let shared = Arc::new(Shared {
            pool: self.pool.clone(),
            lease_pool,
            client,
            config: self.config.clone(),
            handlers: self.handlers,
            kinds: self.kinds,
            state: self.state,
            journaler,
            slots: Arc::new(Semaphore::new(self.config.concurrency)),
            running: Mutex::new(HashMap::new()),
            completions,
            queue_wakes: wakes,
            stager_wake: Notify::new(),
            scheduler_wake: Notify::new(),
            metrics: Metrics::default(),
            telemetry: crate::telemetry::Handles::new(),
            shutdown: shutdown_rx.clone(),
            maintenance: shared::Maintenance::new(&self.config.id),
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
    ///
    /// It takes at most the grace period, plus 10 s for stopped handlers to hand in their
    /// outcomes, plus the completion deadline while the database is unreachable, plus 5 s for
    /// the maintenance services to stop (the leader hands its lease back).
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
        // Maintenance services stop by themselves (the leader hands its lease back), all within
        // one 5 s window.
        let services_deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        for (name, task) in others {
            let abort = task.abort_handle();
            if crate::maintenance::is_service(name) {
                let stopped = tokio::time::timeout_at(services_deadline, join_task(name, task));
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

/// Maintenance settings.
impl WorkerBuilder {
    /// How long the maintenance leader's lease lasts without renewal. The leader renews it every
    /// third of this; when the leader stops gracefully it hands the lease back at once, and when
    /// it dies another worker takes over within about this long. Default 15 s, at least 500 ms.
    pub fn leader_lease(mut self, lease: Duration) -> Self {
        self.config.maintenance.leader_lease = lease;
        self
    }

    /// How long finished jobs are kept. Default [`Retention::default`].
    pub fn retention(mut self, retention: Retention) -> Self {
        self.config.maintenance.retention = retention;
        self
    }

    /// How often the leader looks for finished jobs past their retention. Default 60 s.
    pub fn prune_interval(mut self, interval: Duration) -> Self {
        self.config.maintenance.prune_interval = interval;
        self
    }

    /// How often the leader checks the hot tables (`jobs`, `workflow_runs`, `workflow_steps`)
    /// for dead rows and vacuums those that gathered at least 10,000 and a fifth of their live
    /// rows since their last vacuum; `None` leaves them to autovacuum alone. Default 5 s.
    ///
    /// Autovacuum visits a database once per `autovacuum_naptime` (1 min by default), and under
    /// sustained load a minute of dead rows slows every claim; see `docs/cron.md`. The worker's
    /// role must own the tables (it does when it ran the migrations) for `VACUUM` to act.
    pub fn vacuum_interval(mut self, interval: impl Into<Option<Duration>>) -> Self {
        self.config.maintenance.vacuum_interval = interval.into();
        self
    }

    /// How long available jobs may wait while no running worker serves their queue and kind
    /// (no worker has their `#[job]` linked in, or none works their queue) before the leader
    /// logs a warning about them; operators read the same with
    /// [`Runledger::unclaimed_kinds`](crate::Runledger::unclaimed_kinds). The jobs are left
    /// available for a worker that knows them. Default 5 minutes.
    pub fn unclaimed_after(mut self, after: Duration) -> Self {
        self.config.maintenance.unclaimed_after = after;
        self
    }
}
