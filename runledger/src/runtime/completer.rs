//! The completer: collects attempt outcomes from the executors and writes them to the database
//! many at a time, one statement per batch. While one batch is being written the next gathers;
//! once [`SECOND_WRITE`] outcomes wait, they are written too, on a second connection: two
//! statements at most, each taking its job rows in id order (the run rows of workflow steps
//! first, also in id order), so that they never wait on each other crosswise. A write that fails
//! is retried, never dropped; at shutdown it keeps trying until the completion deadline.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use super::shared::{CompletionReceiver, MetricKind, Shared};
use crate::store;
use crate::store::jobs::{Outcome, OutcomeKind};

/// Most outcomes written by one statement.
const MAX_BATCH: usize = 1000;

/// How long shutdown's last writes wait for executors still handing in outcomes.
const STRAGGLERS: Duration = Duration::from_secs(5);

/// Most batches written at once.
pub(crate) const PIPELINES: usize = 2;

/// Outcomes waiting while a batch is being written that make a batch of their own, written at
/// once on another connection. Fewer wait for the write in flight: small batches written side
/// by side cost the database a commit each for the same work.
const SECOND_WRITE: usize = 50;

pub(crate) async fn run(shared: Arc<Shared>, mut input: CompletionReceiver) {
    let mut batch: Vec<Outcome> = Vec::with_capacity(64);
    let mut writing: JoinSet<()> = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            Some(_) = writing.join_next(), if !writing.is_empty() => {}
            received = input.rx.recv(), if writing.len() < PIPELINES => match received {
                Some(outcome) => batch.push(outcome),
                None => break,
            },
            _ = async { input.closing.wait_for(|c| *c).await.map(|_| ()) } => {
                while writing.join_next().await.is_some() {}
                finish(&shared, &mut input, &mut batch).await;
                break;
            }
        }
        while batch.len() < MAX_BATCH {
            match input.rx.try_recv() {
                Ok(outcome) => batch.push(outcome),
                Err(_) => break,
            }
        }
        let ready = !batch.is_empty()
            && (writing.is_empty() || (writing.len() < PIPELINES && batch.len() >= SECOND_WRITE));
        if ready {
            let mut part = std::mem::take(&mut batch);
            let shared = shared.clone();
            writing.spawn(async move { write(&shared, &mut part).await });
        }
    }
    while writing.join_next().await.is_some() {}
    write(&shared, &mut batch).await;
}

/// At shutdown: writes what is queued and what executors still hand in. An executor gives its
/// slot back only after its outcome is queued, so once every slot is free nothing more can
/// come. After a grace period that ran out, some executors may still be waiting for room in
/// the queue (or a handler may block its thread and never finish): they are waited for up to
/// [`STRAGGLERS`] more.
async fn finish(shared: &Shared, input: &mut CompletionReceiver, batch: &mut Vec<Outcome>) {
    let deadline = tokio::time::Instant::now() + STRAGGLERS;
    loop {
        // Read before draining: when every slot is free, every send has finished, so the
        // drain below takes the last outcome.
        let all_free = shared.slots.available_permits() >= shared.config.concurrency;
        while let Ok(outcome) = input.rx.try_recv() {
            batch.push(outcome);
            if batch.len() >= MAX_BATCH {
                write(shared, batch).await;
            }
        }
        if all_free {
            break;
        }
        write(shared, batch).await;
        if tokio::time::Instant::now() >= deadline {
            tracing::error!(
                worker = %shared.config.id,
                jobs = shared.config.concurrency - shared.slots.available_permits(),
                "jobs still running after shutdown asked them to stop; they will be rescued \
                 after their leases expire and run again"
            );
            break;
        }
        match tokio::time::timeout_at(
            deadline.min(tokio::time::Instant::now() + Duration::from_millis(50)),
            input.rx.recv(),
        )
        .await
        {
            Ok(Some(outcome)) => batch.push(outcome),
            Ok(None) => break,
            Err(_) => {}
        }
    }
    write(shared, batch).await;
    // This worker's stager has stopped: retries and snoozes it would have staged (and those
    // just written) would wait for another stager's longest sleep. Tell the others to look.
    if let Err(error) =
        store::jobs::notify(&shared.pool, &[store::notify::Wake::Stager.payload()]).await
    {
        tracing::debug!(worker = %shared.config.id, %error, "could not wake the other stagers");
    }
}

/// Writes `batch` (and empties it). A write that fails for a reason that may pass (a lost
/// connection, a restarting server, a deadlock) is retried with backoff until it succeeds, or,
/// once shutdown has begun, until the completion deadline passes. A write the database refuses
/// for its content is split in halves until the refused outcome is alone: that job alone records
/// a failed attempt saying why its outcome could not be stored, and every other outcome lands.
async fn write(shared: &Shared, batch: &mut Vec<Outcome>) {
    if batch.is_empty() {
        return;
    }
    // Rows are written in id order, so that two statements locking some of the same job rows
    // (a heartbeat, another batch) take them in the same order.
    batch.sort_unstable_by_key(|o| o.id);
    let mut shutdown_started: Option<tokio::time::Instant> = None;
    // Parts still to write, the next on top; `true` marks a stand-in for a refused outcome.
    let mut handled: Vec<(i64, i32)> = Vec::with_capacity(batch.len());
    let mut parts: Vec<(Vec<Outcome>, bool)> = vec![(std::mem::take(batch), false)];
    while let Some((mut part, stand_in)) = parts.pop() {
        match write_part(shared, &part, &mut shutdown_started).await {
            Ok(()) => {}
            Err(error) if part.len() > 1 => {
                tracing::debug!(
                    worker = %shared.config.id,
                    jobs = part.len(),
                    %error,
                    "the database refused a batch of outcomes; writing it in halves"
                );
                let right = part.split_off(part.len() / 2);
                parts.push((right, false));
                parts.push((part, false));
                continue;
            }
            Err(error) if !stand_in => {
                let refused = part.pop().expect("a part of one outcome");
                tracing::error!(
                    worker = %shared.config.id,
                    job = refused.id,
                    attempt = refused.attempt,
                    %error,
                    "the database refused this job's outcome; recording a failed attempt instead"
                );
                parts.push((vec![unstorable(refused, &error)], true));
                continue;
            }
            Err(error) => {
                // Even the failure could not be written: leave the job to the rescuer, which
                // returns it to the queue once its lease expires.
                tracing::error!(
                    worker = %shared.config.id,
                    job = part[0].id,
                    %error,
                    "could not record that this job's outcome was refused; it will be rescued \
                     after its lease expires"
                );
            }
        }
        handled.extend(part.iter().map(|o| (o.id, o.attempt)));
    }
    let mut running = shared.running.lock().expect("running map poisoned");
    for key in handled {
        running.remove(&key);
    }
}

/// The failed attempt recorded in place of an outcome the database refused.
fn unstorable(refused: Outcome, error: &crate::error::Error) -> Outcome {
    let what = match refused.kind {
        OutcomeKind::Completed => "output",
        _ => "outcome",
    };
    Outcome {
        kind: OutcomeKind::Failed,
        output: None,
        delay: None,
        error: Some(crate::validate::error_message(format!(
            "the {what} of this attempt could not be stored: {error}; the attempt is failed \
             rather than run again"
        ))),
        error_kind: Some("unstorable"),
        ..refused
    }
}

/// Writes one part, retrying while the failure may pass. `Err` is a refusal of the content,
/// which the same statement would meet again.
async fn write_part(
    shared: &Shared,
    part: &[Outcome],
    shutdown_started: &mut Option<tokio::time::Instant>,
) -> Result<(), crate::error::Error> {
    let mut delay = Duration::from_millis(50);
    loop {
        match store::jobs::complete_batch(&shared.pool, part).await {
            Ok(written) => {
                let fenced = part.len() - written.len();
                if fenced > 0 {
                    shared.metrics.add(MetricKind::Fenced, fenced as u64);
                    tracing::warn!(
                        worker = %shared.config.id,
                        jobs = fenced,
                        "outcomes ignored: this worker no longer holds the lease"
                    );
                }
                if written.iter().any(|w| w.due_in_ms.is_some()) {
                    shared.stager_wake.notify_one();
                }
                if part.iter().any(|o| o.kind == OutcomeKind::Released) {
                    let handed_back = part
                        .iter()
                        .filter(|o| o.kind == OutcomeKind::Released)
                        .filter(|o| written.iter().any(|w| w.id == o.id))
                        .count();
                    shared
                        .metrics
                        .add(MetricKind::HandedBack, handed_back as u64);
                }
                return Ok(());
            }
            Err(error) if !store::is_transient(&error) => return Err(error),
            Err(error) => {
                if shared.is_shutting_down() {
                    let started = *shutdown_started.get_or_insert_with(tokio::time::Instant::now);
                    if started.elapsed() >= shared.config.completion_deadline {
                        tracing::error!(
                            worker = %shared.config.id,
                            jobs = part.len(),
                            %error,
                            "could not record job outcomes before the completion deadline; \
                             these jobs will be rescued after their leases expire and run again"
                        );
                        return Ok(());
                    }
                }
                tracing::warn!(
                    worker = %shared.config.id,
                    jobs = part.len(),
                    %error,
                    retry_in = ?delay,
                    "could not record job outcomes; retrying"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}
