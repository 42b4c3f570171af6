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
use tracing::Instrument;

use super::shared::{MetricKind, RunningEntry, Shared};
use crate::client::runledger::Runledger;
use crate::durable::journal::Journal;
use crate::job::StateMap;
use crate::job::{JobContext, JobError, JobErrorKind, JobId, JobOptions, StopReason};
use crate::random::random_unit;
use crate::registry::JobRegistration;
use crate::store::jobs::{Claimed, Outcome, OutcomeKind, Wait};

/// Records a claimed job's attempt as held by this worker, from the claim until its outcome is
/// written: its lease is renewed and guarded from now on, whether it runs at once or waits in
/// the producer's buffer. `claimed_at` is when the claim was sent: the lease runs from no
/// earlier than that. Returns the attempt's stop signal, for [`spawn`].
pub(crate) fn hold(
    shared: &Shared,
    job: &Claimed,
    claimed_at: tokio::time::Instant,
) -> watch::Receiver<Option<StopReason>> {
    let (stop_tx, stop_rx) = watch::channel(None);
    let mut running = shared.running.lock().expect("running map poisoned");
    running.insert(
        (job.id, job.attempt),
        RunningEntry {
            stop: stop_tx,
            lease_until: claimed_at + shared.config.lease,
        },
    );
    stop_rx
}

/// Starts the task for one held job. The caller has taken one slot for it; the task gives it
/// back when the handler is done and its outcome is queued for the completer. A stop requested
/// while the job waited (cancelled, lease lost, shutdown) takes effect before the handler runs.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    job: Claimed,
    stop_rx: watch::Receiver<Option<StopReason>>,
) {
    tokio::spawn(async move {
        shared.report_busy();
        let outcome = execute(&shared, job, stop_rx).await;
        if let Some(outcome) = outcome {
            shared.record(&outcome);
            // The slot is given back once the outcome is in the completer's queue: while the
            // database records outcomes more slowly than handlers produce them, the worker
            // claims no more than it can record, instead of piling up unwritten outcomes (and
            // leases to renew) without bound. At shutdown, every slot free then also means every
            // outcome queued.
            shared.completions.send(outcome).await;
        }
        shared.slots.add_permits(1);
        shared.report_busy();
    });
}

/// How a handler's run ended.
#[derive(Debug)]
pub(crate) enum Ended {
    Returned(Result<String, crate::job::JobError>),
    Panicked(String),
    TimedOut(Duration),
    Stopped(StopReason),
}

async fn execute(
    shared: &Arc<Shared>,
    job: Claimed,
    stop: watch::Receiver<Option<StopReason>>,
) -> Option<Outcome> {
    let Some(registration) = shared.handlers.get(job.kind.as_str()).copied() else {
        // Claims only ask for known kinds; this is unreachable unless the table changed under us.
        return Some(outcome(
            &job,
            OutcomeKind::Retry,
            None,
            None,
            Some((
                "no_handler",
                format!(
                    "worker {} has no handler for kind `{}`",
                    shared.config.id, job.kind
                ),
            )),
        ));
    };
    let env = Env {
        client: &shared.client,
        state: &shared.state,
        lease: shared.config.lease,
        max_output_bytes: shared.config.max_payload_bytes,
        stop_before: None,
        journaler: shared.journaler.clone(),
    };
    let (id, attempt, max_attempts) = (job.id, job.attempt, job.max_attempts);
    let metrics = shared.telemetry.of(&job.queue, registration.kind);
    let span = tracing::info_span!(
        "process",
        otel.name = %format_args!("process {}", job.queue),
        otel.kind = "consumer",
        messaging.system = "runledger",
        messaging.operation.type = "process",
        messaging.destination.name = %job.queue,
        messaging.message.id = id,
        runledger.job.kind = registration.kind,
        runledger.job.attempt = attempt,
        runledger.workflow.run_id = job.run_id,
        runledger.outcome = tracing::field::Empty,
    );
    #[cfg(feature = "otel")]
    if let Some(traceparent) = &job.trace_context {
        crate::otel::set_parent(&span, traceparent);
    }
    let started = std::time::Instant::now();
    let written = attempt_job(&env, registration, job, stop)
        .instrument(span.clone())
        .await;
    match &written {
        Some(outcome) => {
            // A retry with no attempt left is written as a failure.
            let label = if outcome.kind == OutcomeKind::Retry && attempt >= max_attempts {
                "failed"
            } else {
                outcome_label(outcome.kind)
            };
            span.record("runledger.outcome", label);
            metrics.ended(label, started.elapsed());
        }
        None => {
            span.record("runledger.outcome", "lease_lost");
            metrics.lease_lost();
        }
    }
    if written.is_none() {
        // Someone else owns the job now: nothing this attempt could write would count.
        shared.metrics.add(MetricKind::LeaseLost, 1);
        let mut running = shared.running.lock().expect("running map poisoned");
        running.remove(&(id, attempt));
    }
    written
}

/// The `outcome` label of an attempt that ended as `kind`.
fn outcome_label(kind: OutcomeKind) -> &'static str {
    match kind {
        OutcomeKind::Completed => "completed",
        OutcomeKind::Retry => "retried",
        OutcomeKind::Failed => "failed",
        OutcomeKind::Cancelled => "cancelled",
        OutcomeKind::Snoozed => "snoozed",
        OutcomeKind::Released => "released",
        OutcomeKind::Suspended => "suspended",
        OutcomeKind::Diverged => "diverged",
    }
}

/// What an attempt runs with.
pub(crate) struct Env<'a> {
    pub(crate) client: &'a Runledger,
    pub(crate) state: &'a Arc<StateMap>,
    pub(crate) lease: Duration,
    pub(crate) max_output_bytes: usize,
    /// Stops a durable job before the first call of this name it has not recorded (testing).
    pub(crate) stop_before: Option<&'static str>,
    /// Records durable jobs' calls in batches; without it, one statement each.
    pub(crate) journaler: Option<super::journaler::Journaler>,
}

/// Runs one attempt of `job` with `registration`'s handler, under its timeout and stop signal,
/// and returns the outcome to write; `None` when nothing may be written (the lease was lost).
pub(crate) async fn attempt_job(
    env: &Env<'_>,
    registration: &JobRegistration,
    mut job: Claimed,
    mut stop: watch::Receiver<Option<StopReason>>,
) -> Option<Outcome> {
    let durable = registration.options.durable;
    let journal = if durable {
        match Journal::load(
            env.client.clone(),
            job.id,
            job.attempt,
            registration.options.version,
            env.journaler.clone(),
        )
        .await
        {
            Ok(journal) => Some(Arc::new(journal.stop_before(env.stop_before))),
            Err(error) => {
                let delay = registration
                    .options
                    .backoff
                    .delay(job.attempt, random_unit());
                return Some(outcome(
                    &job,
                    OutcomeKind::Retry,
                    None,
                    Some(delay),
                    Some((
                        "journal",
                        format!("could not read the job's journal: {error}"),
                    )),
                ));
            }
        }
    } else {
        None
    };
    // A journal recorded by a version this code does not declare it can resume: the job waits
    // for a worker that does (a worker wakes such jobs when it starts).
    if let Some(version) = journal.as_ref().and_then(|j| j.recorded_version())
        && !registration.options.can_resume(version)
    {
        let mut held = outcome(&job, OutcomeKind::Suspended, None, None, None);
        held.wait = Some(Wait {
            conditions: vec![version_condition(registration.kind, version)],
            until: None,
        });
        return Some(held);
    }
    let ctx = Arc::new(JobContext {
        id: JobId(job.id),
        kind: registration.kind,
        queue: std::mem::take(&mut job.queue),
        attempt: job.attempt,
        max_attempts: job.max_attempts,
        state: env.state.clone(),
        client: env.client.clone(),
        stop: stop.clone(),
        lease: env.lease,
        journal: journal.clone(),
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
    // A durable attempt ends as its journal says first: changed code, a lost lease, or recorded
    // calls the code no longer reaches.
    let ended = match &journal {
        Some(journal) => journal_verdict(journal, ended),
        None => ended,
    };
    // A durable job's suspensions raise `max_attempts` with each claim they cost: its backoff
    // counts the attempts that failed, not the times it woke.
    let spent = if durable {
        (job.attempt - (job.max_attempts - registration.options.max_attempts)).max(1)
    } else {
        job.attempt
    };
    let decided = decide(
        ended,
        spent,
        &registration.options,
        env.max_output_bytes,
        random_unit(),
    )?;
    Some(decided.into_outcome(&job))
}

/// What an attempt's end means for its job: the outcome to write, without the job's identity.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Decided {
    pub(crate) kind: OutcomeKind,
    /// Output JSON text, for `Completed`.
    pub(crate) output: Option<String>,
    /// Delay before the next run, for `Retry` and `Snoozed`.
    pub(crate) delay: Option<Duration>,
    /// The error, with its kind (see [`Outcome::error_kind`]).
    pub(crate) error: Option<(&'static str, String)>,
    /// What a suspended job waits for.
    pub(crate) wait: Option<Wait>,
}

/// The wait condition of a job recorded by `version` of `kind`'s code.
pub(crate) fn version_condition(kind: &str, version: i32) -> String {
    serde_json::json!({ "kind": kind, "version": version }).to_string()
}

/// How a durable attempt ended, given its journal: a difference from the journal wins over
/// anything the handler returned, a lost lease over the rest.
fn journal_verdict(journal: &Journal, ended: Ended) -> Ended {
    if let Some(diff) = journal.diverged() {
        return Ended::Returned(Err(JobError::new(JobErrorKind::Diverged(diff))));
    }
    if journal.lease_lost() {
        return Ended::Stopped(StopReason::LeaseLost);
    }
    match ended {
        Ended::Returned(Ok(output)) => match journal.check_complete() {
            Some(diff) => Ended::Returned(Err(JobError::new(JobErrorKind::Diverged(diff)))),
            None => Ended::Returned(Ok(output)),
        },
        other => other,
    }
}

impl Decided {
    fn new(
        kind: OutcomeKind,
        output: Option<String>,
        delay: Option<Duration>,
        error: Option<(&'static str, String)>,
    ) -> Self {
        Decided {
            kind,
            output,
            delay,
            error,
            wait: None,
        }
    }

    fn into_outcome(self, job: &Claimed) -> Outcome {
        let mut written = outcome(job, self.kind, self.output, self.delay, self.error);
        written.wait = self.wait;
        written
    }
}

/// The outcome policy: how attempt `attempt` of a job with `options` ended, as the outcome to
/// write, or `None` when nothing may be written (the attempt lost its lease). `jitter` is a
/// uniform random number in `0.0..1.0` for the backoff. Pure: no clock, no I/O.
pub(crate) fn decide(
    ended: Ended,
    attempt: i32,
    options: &JobOptions,
    max_output_bytes: usize,
    jitter: f64,
) -> Option<Decided> {
    let backoff = || options.backoff.delay(attempt, jitter);
    Some(match ended {
        Ended::Returned(Ok(text)) => {
            if crate::validate::json_has_nul(&text) {
                Decided::new(
                    OutcomeKind::Failed,
                    None,
                    None,
                    Some((
                        "output",
                        "output contains a NUL character (`\\u0000`), which PostgreSQL cannot \
                         store; the attempt is failed rather than run again, since the handler \
                         would likely return the same; remove the character or encode binary \
                         data (base64, hex)"
                            .into(),
                    )),
                )
            } else if text.len() > max_output_bytes {
                Decided::new(
                    OutcomeKind::Failed,
                    None,
                    None,
                    Some((
                        "output",
                        format!(
                            "output is {} bytes, over the limit of {max_output_bytes} bytes; \
                             store large results elsewhere and return a reference",
                            text.len(),
                        ),
                    )),
                )
            } else {
                Decided::new(OutcomeKind::Completed, Some(text), None, None)
            }
        }
        Ended::Returned(Err(error)) => match error.kind {
            JobErrorKind::Retry { message, delay } => Decided::new(
                OutcomeKind::Retry,
                None,
                Some(delay.unwrap_or_else(backoff)),
                Some(("error", message)),
            ),
            JobErrorKind::Fatal(message) => {
                Decided::new(OutcomeKind::Failed, None, None, Some(("fatal", message)))
            }
            JobErrorKind::Snooze(delay) => {
                Decided::new(OutcomeKind::Snoozed, None, Some(delay), None)
            }
            JobErrorKind::Cancel(reason) => Decided::new(
                OutcomeKind::Cancelled,
                None,
                None,
                Some(("cancelled", reason)),
            ),
            JobErrorKind::Suspended(suspension) => Decided {
                wait: Some(Wait {
                    conditions: suspension
                        .conditions
                        .iter()
                        .map(|c| c.to_string())
                        .collect(),
                    until: suspension.until,
                }),
                ..Decided::new(OutcomeKind::Suspended, None, None, None)
            },
            JobErrorKind::Diverged(diff) => {
                Decided::new(OutcomeKind::Diverged, None, None, Some(("diverged", diff)))
            }
            JobErrorKind::LeaseLost => return None,
        },
        Ended::Panicked(message) => Decided::new(
            OutcomeKind::Retry,
            None,
            Some(backoff()),
            Some(("panic", format!("handler panicked: {message}"))),
        ),
        Ended::TimedOut(limit) => Decided::new(
            OutcomeKind::Retry,
            None,
            Some(backoff()),
            Some(("timeout", format!("attempt timed out after {limit:?}"))),
        ),
        Ended::Stopped(StopReason::Cancelled) => Decided::new(
            OutcomeKind::Cancelled,
            None,
            None,
            Some(("cancelled", "cancelled while running".into())),
        ),
        Ended::Stopped(StopReason::Shutdown) => {
            Decided::new(OutcomeKind::Released, None, None, None)
        }
        Ended::Stopped(StopReason::LeaseLost) => return None,
    })
}

/// The outcome to hand to the completer, made storable: an error message keeps its text with
/// any NUL written as `\0` and is cut at [`MAX_ERROR_BYTES`](crate::validate::MAX_ERROR_BYTES);
/// a delay is capped at [`MAX_DELAY`](crate::validate::MAX_DELAY).
pub(crate) fn outcome(
    job: &Claimed,
    kind: OutcomeKind,
    output: Option<String>,
    delay: Option<Duration>,
    error: Option<(&'static str, String)>,
) -> Outcome {
    let (error_kind, error) = error.unzip();
    Outcome {
        id: job.id,
        attempt: job.attempt,
        kind,
        output,
        delay: delay.map(|d| d.min(crate::validate::MAX_DELAY)),
        error: error.map(crate::validate::error_message),
        error_kind,
        run_id: job.run_id,
        wait: None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{Backoff, JobError};

    fn options() -> JobOptions {
        JobOptions::new().backoff(Backoff::constant(Duration::from_secs(7)))
    }

    fn decided(ended: Ended) -> Option<Decided> {
        decide(ended, 2, &options(), 64, 0.5)
    }

    #[test]
    fn a_returned_output_completes_unless_it_cannot_be_stored() {
        let done = decided(Ended::Returned(Ok("\"ok\"".into()))).unwrap();
        assert_eq!(
            done,
            Decided::new(OutcomeKind::Completed, Some("\"ok\"".into()), None, None)
        );
        let nul = decided(Ended::Returned(Ok("\"a\\u0000b\"".into()))).unwrap();
        assert_eq!((nul.kind, nul.output), (OutcomeKind::Failed, None));
        let (kind, message) = nul.error.unwrap();
        assert_eq!(kind, "output");
        assert!(message.contains("NUL character"));
        let big = decided(Ended::Returned(Ok(format!("\"{}\"", "x".repeat(64))))).unwrap();
        assert_eq!(big.kind, OutcomeKind::Failed);
        assert!(
            big.error
                .unwrap()
                .1
                .contains("66 bytes, over the limit of 64")
        );
    }

    #[test]
    fn errors_map_to_their_outcomes() {
        let retry = decided(Ended::Returned(Err(JobError::retry("flaky")))).unwrap();
        assert_eq!(
            retry,
            Decided::new(
                OutcomeKind::Retry,
                None,
                Some(Duration::from_secs(7)),
                Some(("error", "flaky".into()))
            )
        );
        let after = decided(Ended::Returned(Err(JobError::retry_after(
            "later",
            Duration::from_secs(1),
        ))))
        .unwrap();
        assert_eq!(after.delay, Some(Duration::from_secs(1)));
        let fatal = decided(Ended::Returned(Err(JobError::fatal("declined")))).unwrap();
        assert_eq!(
            (fatal.kind, fatal.error),
            (OutcomeKind::Failed, Some(("fatal", "declined".into())))
        );
        let snooze = decided(Ended::Returned(Err(JobError::snooze(Duration::from_secs(
            3,
        )))))
        .unwrap();
        assert_eq!(
            (snooze.kind, snooze.delay),
            (OutcomeKind::Snoozed, Some(Duration::from_secs(3)))
        );
        let cancel = decided(Ended::Returned(Err(JobError::cancel("withdrawn")))).unwrap();
        assert_eq!(
            (cancel.kind, cancel.error),
            (
                OutcomeKind::Cancelled,
                Some(("cancelled", "withdrawn".into()))
            )
        );
    }

    #[test]
    fn panics_and_timeouts_are_retried_with_the_backoff() {
        let panic = decided(Ended::Panicked("boom".into())).unwrap();
        assert_eq!(panic.kind, OutcomeKind::Retry);
        assert_eq!(panic.delay, Some(Duration::from_secs(7)));
        assert_eq!(
            panic.error,
            Some(("panic", "handler panicked: boom".into()))
        );
        let timeout = decided(Ended::TimedOut(Duration::from_millis(200))).unwrap();
        assert_eq!(
            timeout.error,
            Some(("timeout", "attempt timed out after 200ms".into()))
        );
    }

    #[test]
    fn stops_release_cancel_or_write_nothing() {
        assert_eq!(
            decided(Ended::Stopped(StopReason::Shutdown)).unwrap().kind,
            OutcomeKind::Released
        );
        assert_eq!(
            decided(Ended::Stopped(StopReason::Cancelled)).unwrap().kind,
            OutcomeKind::Cancelled
        );
        assert_eq!(decided(Ended::Stopped(StopReason::LeaseLost)), None);
    }
}
