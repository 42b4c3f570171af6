//! What the worker's tasks share ([`Shared`]): the pools, the configuration, the handler table,
//! the slots, the attempts running, the completer's queue, the wake-ups, the counters and the
//! maintenance state. A leaf of the runtime: the worker's tasks and the maintenance services
//! import it, it imports none of them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sqlx::PgPool;
use tokio::sync::{Notify, Semaphore, mpsc, watch};

use super::config::WorkerConfig;
use crate::client::runledger::Runledger;
use crate::job::{StateMap, StopReason};
use crate::registry::JobRegistration;
use crate::store::jobs::Outcome;

/// A record of one running attempt, kept until its outcome is written.
pub(crate) struct RunningEntry {
    pub(crate) stop: watch::Sender<Option<StopReason>>,
    /// When the lease ends at the latest, by this process's clock: the lease's length after the
    /// claim or the last renewal was sent (the database counts from a later instant, so its
    /// lease never ends before this). The lease guard stops the attempt before this passes.
    pub(crate) lease_until: tokio::time::Instant,
}

impl RunningEntry {
    /// Whether the handler is done: the attempt's stop receivers (the executor's and the
    /// `JobContext`'s) are dropped when it returns, just before its outcome is queued for the
    /// completer. A renewal that no longer finds such an attempt running means its outcome was
    /// written, not that its lease was lost; and there is nothing left to stop.
    pub(crate) fn finished(&self) -> bool {
        self.stop.is_closed()
    }
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
    /// Records the calls of durable jobs in batches; `None` when the worker runs none.
    pub(crate) journaler: Option<super::journaler::Journaler>,
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
    /// Handles of the metrics reported through the `metrics` facade.
    pub(crate) telemetry: crate::telemetry::Handles,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) maintenance: Maintenance,
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

    /// Reports the handler slots in use (`runledger_worker_busy_slots`).
    pub(crate) fn report_busy(&self) {
        self.telemetry.busy(
            self.config
                .concurrency
                .saturating_sub(self.slots.available_permits()),
        );
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
            K::Suspended => &self.metrics.suspended,
            K::Diverged => &self.metrics.diverged,
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
    suspended: AtomicU64,
    diverged: AtomicU64,
    fenced: AtomicU64,
    lease_lost: AtomicU64,
    rescued: AtomicU64,
    staged: AtomicU64,
    /// Released outcomes the database recorded (jobs actually handed back).
    pub(crate) handed_back: AtomicU64,
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

    pub(crate) fn snapshot(&self) -> WorkerMetrics {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WorkerMetrics {
            claimed: get(&self.claimed),
            completed: get(&self.completed),
            retried: get(&self.retried),
            failed: get(&self.failed),
            cancelled: get(&self.cancelled),
            snoozed: get(&self.snoozed),
            released: get(&self.released),
            suspended: get(&self.suspended),
            diverged: get(&self.diverged),
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
    /// Attempts of durable jobs that suspended (sleep, event, child).
    pub suspended: u64,
    /// Attempts of durable jobs that found their code no longer matches their journal.
    pub diverged: u64,
    /// Outcomes the database refused because this worker no longer held the lease.
    pub fenced: u64,
    /// Running attempts that found their lease taken and were dropped.
    pub lease_lost: u64,
    /// Expired leases this worker's rescuer returned to the queue.
    pub rescued: u64,
    /// Scheduled and retryable jobs this worker's stager made available.
    pub staged: u64,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("id", &self.config.id)
            .finish_non_exhaustive()
    }
}

/// Per-worker maintenance state shared by the services.
#[derive(Debug)]
pub(crate) struct Maintenance {
    /// Whether this worker holds the maintenance leader's lease.
    pub(crate) leader: watch::Sender<bool>,
    /// The name this worker holds the lease under: its id and a token unique to this worker
    /// instance (`<id>/<token>`), so that two workers configured with one id never share it.
    pub(crate) holder: String,
}

impl Maintenance {
    pub(crate) fn new(worker_id: &str) -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static INSTANCE: AtomicU64 = AtomicU64::new(0);
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let token = format!(
            "{:x}.{:x}.{:x}",
            std::process::id(),
            started,
            INSTANCE.fetch_add(1, Ordering::Relaxed)
        );
        Maintenance {
            leader: watch::Sender::new(false),
            holder: format!("{worker_id}/{token}"),
        }
    }
}

/// The executors' side of the completer's queue.
#[derive(Debug, Clone)]
pub(crate) struct CompletionSender {
    tx: mpsc::Sender<Outcome>,
    closing: watch::Sender<bool>,
}

impl CompletionSender {
    /// Queues an outcome; waits while the queue is full (back-pressure on the executors).
    pub(crate) async fn send(&self, outcome: Outcome) {
        // The receiver lives until every outcome sent before `close` is written.
        let _ = self.tx.send(outcome).await;
    }

    /// Tells the completer that no more outcomes will come once the queue is empty.
    pub(crate) fn close(&self) {
        self.closing.send_replace(true);
    }
}

pub(crate) struct CompletionReceiver {
    pub(crate) rx: mpsc::Receiver<Outcome>,
    pub(crate) closing: watch::Receiver<bool>,
}

/// The completer's queue holds twice the jobs a worker can have at once (its slots and its
/// prefetch buffer). Smaller, it filled whenever a write took a few milliseconds longer than
/// usual: executors then waited for room while keeping their slots, claims stopped, and a
/// drain ran at half its rate for the rest of the run.
pub(crate) fn completion_channel(in_hand: usize) -> (CompletionSender, CompletionReceiver) {
    let (tx, rx) = mpsc::channel(in_hand.max(16) * 2);
    let (closing_tx, closing_rx) = watch::channel(false);
    (
        CompletionSender {
            tx,
            closing: closing_tx,
        },
        CompletionReceiver {
            rx,
            closing: closing_rx,
        },
    )
}
