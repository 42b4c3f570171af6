//! The producer of one queue: claims jobs in batches sized for the database, holds what it
//! cannot start yet in a small local buffer (prefetch), and starts held jobs as slots free up,
//! highest priority first. The poller is the fallback for lost notifications: one statement per
//! poll interval tells which of the worker's queues have available jobs, and wakes their
//! producers.
//!
//! The buffer is bounded by count (`prefetch`) and by time. How many jobs it may hold beyond the
//! free slots (the allowance) starts at zero and grows, doubling, each time the buffer ran dry
//! while slots were free less than [`TARGET_WAIT`] after a claim that came back full; it halves each time
//! a held job waited more than [`TARGET_WAIT`] for a slot. Short handlers get large claims; long
//! ones claim as many jobs as they have free slots, as without a buffer. A job held longer than
//! [`MAX_HOLD`] is handed back to the queue without spending an attempt, and shutdown hands back
//! at once every held job that finds no free slot.
//!
//! A second claim goes out while one is in flight when the room left beyond what that one asked
//! for (free slots plus allowance, less the held jobs) still covers a full batch and the last
//! two claims came back full (a backlog of more than a batch): a worker whose slots and buffer
//! span two batches claims on two connections while its jobs are short (see
//! [`claims_per_queue`]). Each claim locks its rows on its own, skipping those the other holds,
//! so the lock order and the fencing are those of a single claim. The jobs of a claim that comes
//! back before one sent ahead of it wait for that one, so that the jobs which usually locked
//! first, the higher ones, are in the buffer before any of them starts.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::executor;
use super::shared::{MetricKind, Shared};
use crate::error::Error;
use crate::job::StopReason;
use crate::store;
use crate::store::jobs::{Claimed, OutcomeKind};

/// A held job that waited longer than this for a slot halves the allowance.
const TARGET_WAIT: Duration = Duration::from_millis(100);

/// A job held this long without a free slot is handed back to the queue.
const MAX_HOLD: Duration = Duration::from_secs(2);

/// While the queue is busy, how long a claim for fewer jobs than a full batch of slots waits for
/// more slots to free up.
const GATHER: Duration = Duration::from_millis(2);

/// Most claims of one queue in flight at once.
const MAX_CLAIMS: usize = 2;

/// How many claims of one queue a worker may have in flight at once: two when it has more than
/// one slot and its slots and buffer together span two batches (a second claim is sent only
/// when a full batch of room is left beyond the first), else one.
///
/// Two claims in flight take their rows side by side: now and then the one sent second locks
/// the higher-priority rows and still comes back last, and a job of the first starts a claim's
/// round trip before a job of higher priority. A worker of one slot runs one job at a time and
/// keeps to one claim, so that its jobs start strictly in priority order.
pub(crate) fn claims_per_queue(concurrency: usize, prefetch: usize, batch_size: usize) -> usize {
    if concurrency >= 2 && concurrency + prefetch >= 2 * batch_size {
        MAX_CLAIMS
    } else {
        1
    }
}

/// A claimed job waiting for a slot, its lease already renewed by the keeper.
struct Held {
    job: Claimed,
    stop: watch::Receiver<Option<StopReason>>,
    since: Instant,
    /// Claim order (the claim's number, then the job's place in it), to keep it among jobs of
    /// one priority, whichever of two claims in flight comes back first.
    seq: (u64, usize),
}

impl Ord for Held {
    /// Higher priority first, then earlier claimed (the heap pops the greatest).
    fn cmp(&self, other: &Self) -> Ordering {
        self.job
            .priority
            .cmp(&other.job.priority)
            .then(other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Held {}

/// What a claim brings back: its jobs, how many it asked for, when it was sent and its number.
struct ClaimResult {
    jobs: Result<Vec<Claimed>, Error>,
    want: usize,
    sent: Instant,
    number: u64,
}

pub(crate) async fn run(shared: Arc<Shared>, queue: String) {
    let wake = shared.queue_wakes[&queue].clone();
    let batch = shared.config.batch_size;
    let prefetch = shared.config.prefetch;
    let mut held: BinaryHeap<Held> = BinaryHeap::new();
    // Jobs of a claim that came back while one sent before it is still in flight: they join
    // `held` once no earlier claim is in flight.
    let mut early: Vec<Held> = Vec::new();
    // Jobs to hold beyond the free slots; adapts between 0 and `prefetch`.
    let mut allowance = 0usize;
    // The last claim came back short: wait for a wake-up before claiming again.
    let mut dry = false;
    let mut error_delay = Duration::from_millis(100);
    // Claims in flight (at most `MAX_CLAIMS`).
    let mut claims = Claims::default();
    // Slots this producer took while waiting for one, kept for the jobs it starts next (the
    // producers of a worker's queues share its slots; one that let a slot go at once could
    // hand it to another that lets it go too, and neither would claim).
    let mut reserved = 0usize;
    let busy_batch = shared.config.concurrency.min(batch);
    let max_claims = claims_per_queue(shared.config.concurrency, prefetch, batch);
    // Until when a small claim waits for more free slots.
    let mut gather_until: Option<Instant> = None;
    // When the last claim that came back full was sent: full claims coming fast show that the
    // queue has work and that its jobs start and finish fast.
    let mut last_full_claim: Option<Instant> = None;
    // Claims that came back full in a row: two or more show a backlog of more than a batch,
    // which a second claim in flight can take; a queue fed a batch at a time has none.
    let mut full_in_row = 0u32;
    loop {
        // Start held jobs while slots are free. At shutdown too: a job claimed for a free slot
        // runs within the grace period, as it would have a moment earlier; only the jobs held
        // beyond the free slots are handed back.
        while !held.is_empty() {
            if reserved > 0 {
                reserved -= 1;
            } else if let Ok(permit) = shared.slots.try_acquire() {
                permit.forget();
            } else {
                break;
            }
            let Some(next) = held.pop() else { break };
            if next.since.elapsed() > TARGET_WAIT {
                allowance /= 2;
            }
            executor::spawn(shared.clone(), next.job, next.stop);
        }
        let stopping = shared.is_shutting_down();
        if reserved > 0 && held.is_empty() && (dry || stopping) && claims.is_empty() {
            // Nothing to start with them: the slots go back to the other producers.
            shared.slots.add_permits(reserved);
            reserved = 0;
        }
        if stopping && claims.is_empty() {
            // Claims in flight are awaited, never dropped: their rows are locked for this worker.
            shared.slots.add_permits(reserved);
            hand_back(&shared, std::mem::take(&mut held).into_vec()).await;
            return;
        }
        let free = shared.slots.available_permits() + reserved;
        let holding = held.len() + early.len();
        let busy = last_full_claim.is_some_and(|at| at.elapsed() < TARGET_WAIT);
        if claims.is_empty() && !dry && !stopping {
            let want = (free + allowance).saturating_sub(holding).min(batch);
            // While the queue is busy (a full claim moments ago) and the buffer does not cover a
            // batch of slots, a small claim waits a moment for more slots to free up: otherwise
            // each claim takes only the slots freed while the previous one was in flight, and
            // claims shrink to a job or two.
            let gathering = want > 0 && busy && holding == 0 && want < busy_batch && {
                let until = *gather_until.get_or_insert_with(|| Instant::now() + GATHER);
                Instant::now() < until
            };
            if !gathering {
                // Not waiting for slots (any more): a deadline left over would wake the loop
                // for nothing.
                gather_until = None;
            }
            // Claim once the buffer is half spent (or empty), not for every job started.
            if want > 0 && !gathering && (holding == 0 || holding * 2 <= allowance) {
                // Slots stand idle waiting for this claim, and the last full one was moments ago
                // (the jobs are short): hold more from now on. Long jobs never grow the buffer.
                if holding == 0 && free > 0 && busy {
                    allowance = doubled(allowance, prefetch);
                }
                claims.send(&shared, &queue, want);
            }
        }
        if !claims.is_empty()
            && claims.len() < max_claims
            && busy
            && full_in_row >= 2
            && !dry
            && !stopping
        {
            // Room for a full database batch beyond what the claim in flight asked for: a
            // second one.
            let want = (free + allowance)
                .saturating_sub(holding + claims.asked)
                .min(batch);
            if want >= batch {
                claims.send(&shared, &queue, want);
            }
        }
        let oldest = held.iter().map(|h| h.since).min();
        let gathering = claims.is_empty() && gather_until.is_some();
        let waiting_for_slot =
            !held.is_empty() || (claims.is_empty() && !dry && (free == 0 || gathering));
        tokio::select! {
            biased;
            Some(joined) = claims.tasks.join_next(), if !claims.is_empty() => {
                let ClaimResult { jobs, want, sent, number } = match joined {
                    Ok(result) => result,
                    Err(error) => {
                        // The claim task panicked. Whatever it claimed is not held here: its
                        // leases run out and the rescuer returns those jobs to the queue.
                        tracing::error!(worker = %shared.config.id, queue = %queue, %error,
                            "a claim failed unexpectedly");
                        claims.finished(None);
                        release_early(&claims, &mut early, &mut held);
                        continue;
                    }
                };
                claims.finished(Some((number, want)));
                match jobs {
                    Ok(jobs) => {
                        error_delay = Duration::from_millis(100);
                        // A short claim means the queue ran dry: no claim until a wake-up,
                        // whatever another claim in flight brings back.
                        if jobs.len() < want {
                            dry = true;
                            full_in_row = 0;
                        } else {
                            full_in_row = full_in_row.saturating_add(1);
                            // The buffer ran dry with slots idle while this claim was in flight,
                            // and the last full one was moments ago (the jobs are short): hold
                            // more from now on.
                            let idle = held.is_empty()
                                && early.is_empty()
                                && shared.slots.available_permits() + reserved > 0;
                            let recent =
                                last_full_claim.is_some_and(|at| at.elapsed() < TARGET_WAIT);
                            if idle && recent {
                                allowance = doubled(allowance, prefetch);
                            }
                            last_full_claim = Some(sent);
                        }
                        shared.metrics.add(MetricKind::Claimed, jobs.len() as u64);
                        let now = Instant::now();
                        let wait = claims.first() < number;
                        for (place, job) in jobs.into_iter().enumerate() {
                            let stop = executor::hold(&shared, &job, sent);
                            let job = Held { job, stop, since: now, seq: (number, place) };
                            if wait { early.push(job) } else { held.push(job) }
                        }
                    }
                    Err(error) => {
                        tracing::warn!(
                            worker = %shared.config.id,
                            queue = %queue,
                            %error,
                            retry_in = ?error_delay,
                            "claiming jobs failed; retrying"
                        );
                        tokio::select! {
                            _ = tokio::time::sleep(error_delay) => {},
                            _ = shared.shutting_down() => {},
                        }
                        error_delay = (error_delay * 2).min(Duration::from_secs(5));
                    }
                }
                release_early(&claims, &mut early, &mut held);
            }
            _ = shared.shutting_down(), if !stopping => {}
            permit = shared.slots.acquire(), if waiting_for_slot => {
                // A slot is free: kept, to start a held job or claim one at the top.
                if let Ok(permit) = permit {
                    permit.forget();
                    reserved += 1;
                }
            }
            _ = wake.notified(), if dry && claims.is_empty() => dry = false,
            _ = tokio::time::sleep_until(gather_until.unwrap_or_else(Instant::now)),
                if gathering => {}
            _ = tokio::time::sleep_until(oldest.map_or_else(Instant::now, |t| t + MAX_HOLD)),
                if oldest.is_some() =>
            {
                // Held too long without a slot: back to the queue, and hold less from now on.
                let (stale, keep): (Vec<Held>, Vec<Held>) = std::mem::take(&mut held)
                    .into_vec()
                    .into_iter()
                    .partition(|h| h.since.elapsed() >= MAX_HOLD);
                held = keep.into();
                allowance = 0;
                hand_back(&shared, stale).await;
            }
        }
    }
}

/// A queue's claims in flight.
#[derive(Default)]
struct Claims {
    tasks: JoinSet<ClaimResult>,
    /// Their numbers.
    numbers: Vec<u64>,
    /// How many jobs they asked for together.
    asked: usize,
    /// The last number given.
    last: u64,
}

impl Claims {
    fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    fn len(&self) -> usize {
        self.tasks.len()
    }

    /// The number of the earliest claim in flight (`u64::MAX` when none is).
    fn first(&self) -> u64 {
        self.numbers.iter().min().copied().unwrap_or(u64::MAX)
    }

    /// Forgets a claim that came back (its number and how many jobs it asked for), or one whose
    /// task panicked (`None`: known only once none is left in flight).
    fn finished(&mut self, claim: Option<(u64, usize)>) {
        if let Some((number, want)) = claim {
            self.asked = self.asked.saturating_sub(want);
            self.numbers.retain(|n| *n != number);
        }
        if self.is_empty() {
            self.asked = 0;
            self.numbers.clear();
        }
    }

    /// Sends a claim for `want` jobs of `queue`, numbered after the last one sent.
    fn send(&mut self, shared: &Arc<Shared>, queue: &str, want: usize) {
        self.last += 1;
        let number = self.last;
        self.numbers.push(number);
        self.asked += want;
        let shared = shared.clone();
        let queue = queue.to_owned();
        self.tasks.spawn(async move {
            let sent = Instant::now();
            let jobs = store::jobs::claim(
                &shared.pool,
                &queue,
                &shared.kinds,
                want as i64,
                &shared.config.id,
                shared.config.lease,
            )
            .await;
            // The enqueuing spans' contexts, one more statement per claim (feature `otel`).
            #[cfg(feature = "otel")]
            let jobs = match jobs {
                Ok(mut jobs) => {
                    // The jobs are claimed: they run without a parent rather than not at all.
                    if let Err(error) =
                        store::jobs::read_trace_contexts(&shared.pool, &mut jobs).await
                    {
                        tracing::debug!(%error, "could not read the claimed jobs' trace context");
                    }
                    Ok(jobs)
                }
                Err(e) => Err(e),
            };
            ClaimResult {
                jobs,
                want,
                sent,
                number,
            }
        });
    }
}

/// The allowance after a sign that the buffer should grow: doubled, at least one, at most
/// `prefetch`.
fn doubled(allowance: usize, prefetch: usize) -> usize {
    (allowance * 2).max(1).min(prefetch)
}

/// Moves the jobs that came back ahead of an earlier claim into the buffer once no claim sent
/// before theirs is in flight.
fn release_early(claims: &Claims, early: &mut Vec<Held>, held: &mut BinaryHeap<Held>) {
    if early.is_empty() {
        return;
    }
    let first = claims.first();
    let (ready, behind): (Vec<Held>, Vec<Held>) = early.drain(..).partition(|h| h.seq.0 < first);
    held.extend(ready);
    *early = behind;
}

/// Hands held jobs back to the queue without spending an attempt: a `Released` outcome each,
/// written by the completer like any other.
async fn hand_back(shared: &Shared, jobs: Vec<Held>) {
    for held in jobs {
        let job = held.job;
        // Dropping the stop receiver marks the attempt finished for the lease keeper.
        drop(held.stop);
        let outcome = executor::outcome(&job, OutcomeKind::Released, None, None, None);
        shared.record(&outcome);
        shared.completions.send(outcome).await;
    }
}

/// Every poll interval, wakes the producers of the queues that have available jobs of the
/// worker's kinds, in case their notification was lost.
pub(crate) async fn poll(shared: Arc<Shared>) {
    let queues: Vec<&str> = shared.config.queues.iter().map(String::as_str).collect();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(shared.config.poll_interval) => {},
            _ = shared.shutting_down() => return,
        }
        match store::jobs::queues_with_work(&shared.pool, &queues, &shared.kinds).await {
            Ok(busy) => {
                for queue in busy {
                    if let Some(wake) = shared.queue_wakes.get(&queue) {
                        wake.notify_one();
                    }
                }
            }
            Err(error) => {
                // Producers still run on notifications; wake them all rather than miss work.
                tracing::warn!(worker = %shared.config.id, %error, "polling for jobs failed");
                for wake in shared.queue_wakes.values() {
                    wake.notify_one();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(id: i64, priority: i16, seq: (u64, usize)) -> Held {
        let (_tx, stop) = watch::channel(None);
        Held {
            job: Claimed {
                id,
                kind: "k".into(),
                queue: "q".into(),
                args: "{}".into(),
                attempt: 1,
                max_attempts: 1,
                timeout_ms: None,
                run_id: None,
                priority,
                trace_context: None,
            },
            stop,
            since: Instant::now(),
            seq,
        }
    }

    #[test]
    fn slots_and_buffer_for_two_batches_claim_twice_at_once() {
        // Batches of 100.
        assert_eq!(claims_per_queue(10, 100, 100), 1);
        assert_eq!(claims_per_queue(10, 190, 100), 2);
        assert_eq!(claims_per_queue(50, 200, 100), 2);
        assert_eq!(claims_per_queue(200, 0, 100), 2);
        assert_eq!(claims_per_queue(199, 0, 100), 1);
        // One slot keeps to one claim, whatever its buffer: strict priority order.
        assert_eq!(claims_per_queue(1, 200, 1), 1);
        assert_eq!(claims_per_queue(2, 0, 1), 2);
    }

    #[test]
    fn held_jobs_start_by_priority_then_in_claim_order() {
        let mut heap = BinaryHeap::new();
        // A second claim (priority 9 and 0) came back before the first (0, 5, 0): the first's
        // jobs of priority 0 still go before the second's.
        for (id, priority, seq) in [(4, 9, (2, 0)), (5, 0, (2, 1))] {
            heap.push(held(id, priority, seq));
        }
        for (id, priority, seq) in [(1, 0, (1, 0)), (2, 5, (1, 1)), (3, 0, (1, 2))] {
            heap.push(held(id, priority, seq));
        }
        let order: Vec<i64> = std::iter::from_fn(|| heap.pop().map(|h| h.job.id)).collect();
        assert_eq!(order, [4, 2, 1, 3, 5]);
    }
}
