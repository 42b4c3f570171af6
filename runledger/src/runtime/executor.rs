//! The executor: runs one claimed job in its own task, with its timeout, its stop signal and a
//! panic guard, and hands the outcome to the completer.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::watch;

use super::{MetricKind, RunningEntry, Shared, random_unit};
use crate::job::{JobContext, JobErrorKind, JobId, StopReason};
use crate::store::jobs::{Claimed, Outcome, OutcomeKind};

/// Starts the task for one claimed job. The caller has taken one slot for it; the task gives it
/// back when the handler is done and its outcome is queued for the completer.
/// `claimed_at` is when the claim was sent: the lease runs from no earlier than that.
pub(crate) fn spawn(shared: Arc<Shared>, job: Claimed, claimed_at: tokio::time::Instant) {
    let (stop_tx, stop_rx) = watch::channel(None);
    let key = (job.id, job.attempt);
    {
        let mut running = shared.running.lock().expect("running map poisoned");
        running.insert(
            key,
            RunningEntry {
                stop: stop_tx,
                lease_until: claimed_at + shared.config.lease,
                finished: false,
            },
        );
    }
    tokio::spawn(async move {
        let outcome = execute(&shared, job, stop_rx).await;
        if let Some(outcome) = outcome {
            shared.record(&outcome);
            if let Some(entry) = shared
                .running
                .lock()
                .expect("running map poisoned")
                .get_mut(&key)
            {
                entry.finished = true;
            }
            // The slot is given back once the outcome is in the completer's queue: while the
            // database records outcomes more slowly than handlers produce them, the worker
            // claims no more than it can record, instead of piling up unwritten outcomes (and
            // leases to renew) without bound. At shutdown, every slot free then also means every
            // outcome queued.
            shared.completions.send(outcome).await;
        }
        shared.slots.add_permits(1);
    });
}

enum Ended {
    Returned(Result<String, crate::job::JobError>),
    Panicked(String),
    TimedOut(Duration),
    Stopped(StopReason),
}

async fn execute(
    shared: &Arc<Shared>,
    mut job: Claimed,
    mut stop: watch::Receiver<Option<StopReason>>,
) -> Option<Outcome> {
    let Some(registration) = shared.handlers.get(job.kind.as_str()).copied() else {
        // Claims only ask for known kinds; this is unreachable unless the table changed under us.
        return Some(outcome(
            &job,
            OutcomeKind::Retry,
            None,
            None,
            Some(format!(
                "worker {} has no handler for kind `{}`",
                shared.config.id, job.kind
            )),
        ));
    };
    let ctx = Arc::new(JobContext {
        id: JobId(job.id),
        kind: registration.kind,
        queue: std::mem::take(&mut job.queue),
        attempt: job.attempt,
        max_attempts: job.max_attempts,
        state: shared.state.clone(),
        client: shared.client.clone(),
        stop: stop.clone(),
        lease: shared.config.lease,
    });
    let args = std::mem::take(&mut job.args);
    let handler = CatchUnwind((registration.handler)(ctx, args));
    let timeout = job
        .timeout_ms
        .and_then(|ms| u64::try_from(ms).ok())
        .map(Duration::from_millis);
    let run = async {
        match timeout {
            Some(limit) => match tokio::time::timeout(limit, handler).await {
                Ok(ended) => ended,
                Err(_) => Ended::TimedOut(limit),
            },
            None => handler.await,
        }
    };
    // A stop request wins over a handler that became ready in the same poll: the handler's
    // future is dropped at the stop, as documented on `JobContext::stopped`.
    let ended = tokio::select! {
        biased;
        reason = async {
            loop {
                if let Some(reason) = *stop.borrow_and_update() {
                    break reason;
                }
                if stop.changed().await.is_err() {
                    break StopReason::Shutdown;
                }
            }
        } => Ended::Stopped(reason),
        ended = run => ended,
    };
    let options = &registration.options;
    Some(match ended {
        Ended::Returned(Ok(value)) => {
            let text = value;
            if crate::validate::json_has_nul(&text) {
                outcome(
                    &job,
                    OutcomeKind::Failed,
                    None,
                    None,
                    Some(
                        "output contains a NUL character (`\\u0000`), which PostgreSQL cannot \
                         store; the attempt is failed rather than run again, since the handler \
                         would likely return the same; remove the character or encode binary \
                         data (base64, hex)"
                            .into(),
                    ),
                )
            } else if text.len() > shared.config.max_payload_bytes {
                outcome(
                    &job,
                    OutcomeKind::Failed,
                    None,
                    None,
                    Some(format!(
                        "output is {} bytes, over the limit of {} bytes; store large results \
                     elsewhere and return a reference",
                        text.len(),
                        shared.config.max_payload_bytes
                    )),
                )
            } else {
                outcome(&job, OutcomeKind::Completed, Some(text), None, None)
            }
        }
        Ended::Returned(Err(error)) => match error.kind {
            JobErrorKind::Retry { message, delay } => {
                let delay =
                    delay.unwrap_or_else(|| options.backoff.delay(job.attempt, random_unit()));
                outcome(&job, OutcomeKind::Retry, None, Some(delay), Some(message))
            }
            JobErrorKind::Fatal(message) => {
                outcome(&job, OutcomeKind::Failed, None, None, Some(message))
            }
            JobErrorKind::Snooze(delay) => {
                outcome(&job, OutcomeKind::Snoozed, None, Some(delay), None)
            }
            JobErrorKind::Cancel(reason) => {
                outcome(&job, OutcomeKind::Cancelled, None, None, Some(reason))
            }
        },
        Ended::Panicked(message) => {
            let delay = options.backoff.delay(job.attempt, random_unit());
            outcome(
                &job,
                OutcomeKind::Retry,
                None,
                Some(delay),
                Some(format!("handler panicked: {message}")),
            )
        }
        Ended::TimedOut(limit) => {
            let delay = options.backoff.delay(job.attempt, random_unit());
            outcome(
                &job,
                OutcomeKind::Retry,
                None,
                Some(delay),
                Some(format!("attempt timed out after {limit:?}")),
            )
        }
        Ended::Stopped(StopReason::Cancelled) => outcome(
            &job,
            OutcomeKind::Cancelled,
            None,
            None,
            Some("cancelled while running".into()),
        ),
        Ended::Stopped(StopReason::Shutdown) => {
            outcome(&job, OutcomeKind::Released, None, None, None)
        }
        Ended::Stopped(StopReason::LeaseLost) => {
            // Someone else owns the job now: nothing this attempt could write would count.
            shared.metrics.add(MetricKind::LeaseLost, 1);
            let mut running = shared.running.lock().expect("running map poisoned");
            running.remove(&(job.id, job.attempt));
            return None;
        }
    })
}

/// The outcome to hand to the completer, made storable: an error message keeps its text with
/// any NUL written as `\0` and is cut at [`MAX_ERROR_BYTES`](crate::validate::MAX_ERROR_BYTES);
/// a delay is capped at [`MAX_DELAY`](crate::validate::MAX_DELAY).
fn outcome(
    job: &Claimed,
    kind: OutcomeKind,
    output: Option<String>,
    delay: Option<Duration>,
    error: Option<String>,
) -> Outcome {
    Outcome {
        id: job.id,
        attempt: job.attempt,
        kind,
        output,
        delay: delay.map(|d| d.min(crate::validate::MAX_DELAY)),
        error: error.map(crate::validate::error_message),
        run_id: job.run_id,
    }
}

/// Polls the handler's future inside `catch_unwind`, turning a panic into [`Ended::Panicked`].
struct CatchUnwind(Pin<Box<dyn Future<Output = Result<String, crate::job::JobError>> + Send>>);

impl Future for CatchUnwind {
    type Output = Ended;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Ended> {
        let inner = self.0.as_mut();
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(result)) => Poll::Ready(Ended::Returned(result)),
            Err(payload) => Poll::Ready(Ended::Panicked(panic_message(payload.as_ref()))),
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}
