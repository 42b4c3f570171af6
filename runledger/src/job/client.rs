//! The job operations of the [`Runledger`] client: enqueue (alone, in bulk, or inside the
//! caller's transaction), cancel, read back, and typed handles.

use sqlx::PgConnection;
use tracing::Instrument;

use super::definition::Job;
use super::enqueue::{Enqueue, EnqueuedJob};
use super::handle::JobHandle;
use super::record::{CancelOutcome, JobRecord};
use super::request::JobRequest;
use crate::client::notify;
use crate::client::runledger::Runledger;
use crate::error::Error;
use crate::ids::JobId;
use crate::store;
use crate::store::jobs::NewJob;

impl Runledger {
    /// Enqueues `job` with its kind's defaults. Same as `job.enqueue(&rl)`.
    pub fn enqueue<J: Job>(&self, job: J) -> Enqueue<'_, J> {
        Enqueue::new(self, job)
    }

    /// Enqueues `job` inside the caller's transaction. Same as `job.enqueue_tx(&rl, &mut tx)`.
    pub fn enqueue_tx<'a, J: Job>(&'a self, tx: &'a mut PgConnection, job: J) -> Enqueue<'a, J> {
        Enqueue::new_tx(self, tx, job)
    }

    /// Enqueues many jobs in one statement and one round trip. Returns a handle per job, in
    /// order. Jobs can be of different kinds: pass [`JobRequest`]s built with
    /// [`JobRequest::new`], or any `Job` value (it converts).
    pub async fn enqueue_many<R: Into<JobRequest>>(
        &self,
        jobs: impl IntoIterator<Item = R>,
    ) -> Result<Vec<EnqueuedJob>, Error> {
        let rows = self.rows(jobs)?;
        let mut conn = self.pool().acquire().await?;
        self.insert(&mut conn, &rows, false).await
    }

    /// [`enqueue_many`](Self::enqueue_many) inside the caller's transaction.
    pub async fn enqueue_many_tx<R: Into<JobRequest>>(
        &self,
        tx: &mut PgConnection,
        jobs: impl IntoIterator<Item = R>,
    ) -> Result<Vec<EnqueuedJob>, Error> {
        let rows = self.rows(jobs)?;
        self.insert(tx, &rows, true).await
    }

    fn rows<R: Into<JobRequest>>(
        &self,
        jobs: impl IntoIterator<Item = R>,
    ) -> Result<Vec<NewJob>, Error> {
        jobs.into_iter()
            .map(|r| r.into().into_row(self.max_payload_bytes()))
            .collect()
    }

    /// Inserts `rows` on `conn` with their wake-up notifications: all of them inside a caller's
    /// transaction, debounced otherwise (see `notify`).
    pub(super) async fn insert(
        &self,
        conn: &mut PgConnection,
        rows: &[NewJob],
        in_caller_tx: bool,
    ) -> Result<Vec<EnqueuedJob>, Error> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let payloads = notify::payloads(rows);
        let send_now = if in_caller_tx {
            payloads
        } else {
            self.notifier().take(self.pool(), payloads)
        };
        let span = tracing::info_span!(
            "send",
            otel.name = %format_args!("send {}", rows[0].queue),
            otel.kind = "producer",
            messaging.system = "runledger",
            messaging.operation.type = "send",
            messaging.destination.name = %rows[0].queue,
            messaging.batch.message_count = rows.len(),
        );
        let inserted = self
            .insert_traced(conn, rows, &send_now, in_caller_tx, &span)
            .instrument(span.clone())
            .await?;
        // One increment per queue and kind of the batch.
        let mut counts: Vec<(&str, &str, u64)> = Vec::new();
        for (row, written) in rows.iter().zip(&inserted) {
            if !written.inserted {
                continue;
            }
            match counts
                .iter_mut()
                .find(|(q, k, _)| *q == row.queue && *k == row.kind)
            {
                Some((_, _, n)) => *n += 1,
                None => counts.push((&row.queue, &row.kind, 1)),
            }
        }
        for (queue, kind, n) in counts {
            crate::telemetry::enqueued(queue, kind, n);
        }
        Ok(inserted
            .into_iter()
            .map(|i| EnqueuedJob {
                id: JobId(i.id),
                inserted: i.inserted,
            })
            .collect())
    }

    /// Inserts `rows`, recording in them the trace context of `span` when there is one (feature
    /// `otel`): set for the transaction only (the caller's, or a short one of its own, so that
    /// no pooled connection keeps it even if this future is dropped), and cleared after.
    #[cfg_attr(not(feature = "otel"), allow(unused_variables))]
    async fn insert_traced(
        &self,
        conn: &mut PgConnection,
        rows: &[NewJob],
        send_now: &[String],
        in_caller_tx: bool,
        span: &tracing::Span,
    ) -> Result<Vec<store::jobs::Inserted>, Error> {
        #[cfg(feature = "otel")]
        if let Some(traceparent) = crate::otel::traceparent(span) {
            if in_caller_tx {
                store::jobs::set_trace_context(conn, &traceparent, true).await?;
                let inserted = store::jobs::insert(conn, rows, send_now).await?;
                store::jobs::set_trace_context(conn, "", true).await?;
                return Ok(inserted);
            }
            let mut tx = sqlx::Connection::begin(conn).await?;
            store::jobs::set_trace_context(&mut tx, &traceparent, true).await?;
            let inserted = store::jobs::insert(&mut tx, rows, send_now).await?;
            tx.commit().await?;
            return Ok(inserted);
        }
        store::jobs::insert(conn, rows, send_now).await
    }

    /// Cancels a job. A job that has not started is cancelled at once; a running job is asked
    /// to stop (its handler's future is dropped at the worker's next lease renewal or sooner)
    /// and is recorded `cancelled` unless it completes first; a finished job is left as it is.
    pub async fn cancel(&self, id: JobId) -> Result<CancelOutcome, Error> {
        let mut tx = self.pool().begin().await?;
        let before = store::jobs::cancel(&mut tx, id.0).await?;
        tx.commit().await?;
        CancelOutcome::from_previous_state(id, before)
    }

    /// [`cancel`](Self::cancel) inside the caller's transaction.
    pub async fn cancel_tx(
        &self,
        tx: &mut PgConnection,
        id: JobId,
    ) -> Result<CancelOutcome, Error> {
        let before = store::jobs::cancel(tx, id.0).await?;
        CancelOutcome::from_previous_state(id, before)
    }

    /// Reads a job as stored, or `None` if there is none with this id.
    pub async fn job(&self, id: JobId) -> Result<Option<JobRecord>, Error> {
        Ok(store::jobs::get(self.pool(), id.0)
            .await?
            .map(JobRecord::from_row))
    }

    /// A typed handle on an existing job (for instance one enqueued in a transaction).
    pub fn handle<J: Job>(&self, id: JobId) -> JobHandle<J::Output> {
        JobHandle::new(self.clone(), id, true)
    }
}
