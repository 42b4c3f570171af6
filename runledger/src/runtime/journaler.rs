//! The journaler: records the finished calls of a worker's running durable jobs in batches.
//!
//! Every journaled call waits for its record before it returns, so one statement per call
//! would cost each step a round trip and a commit of its own. Calls are sent here instead; the
//! journaler writes whatever has queued up in one statement (`runledger.record_calls`) while
//! the previous one runs, and answers each call. With fifty jobs stepping at once, fifty steps
//! share a commit.
//!
//! A batch that fails for a reason that may pass (a lost connection, a restarting server, a
//! deadlock) is sent again, a few times, with backoff; rows its attempts recorded already (the
//! error may have come after the commit) are answered as recorded. A batch the database refuses
//! for its content is written row by row, so that only the refused call fails, for good.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::store::durable::{CallRow, RecordedCall, record_calls};

/// The most calls one statement records.
const MAX_BATCH: usize = 512;

/// Sends of a batch after the first, for errors that may pass.
const RETRIES: u32 = 5;

/// Why a call was not recorded.
#[derive(Debug, Clone)]
pub(crate) struct RecordError {
    pub(crate) message: String,
    /// The database refused the call itself: recording it again would fail again.
    pub(crate) refused: bool,
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl RecordError {
    pub(crate) fn of(error: &crate::error::Error) -> Self {
        RecordError {
            message: error.to_string(),
            refused: !crate::store::is_transient(error),
        }
    }

    fn stopped() -> Self {
        RecordError {
            message: "the worker's journaler has stopped".to_owned(),
            refused: false,
        }
    }
}

/// What a call gets back: its record (`None`: the attempt no longer holds its job), or why it
/// was not recorded.
pub(crate) type Reply = Result<Option<RecordedCall>, RecordError>;

struct Request {
    row: CallRow,
    reply: oneshot::Sender<Reply>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.row.fmt(f)
    }
}

/// The sending side, held by each durable attempt's journal.
#[derive(Debug, Clone)]
pub(crate) struct Journaler {
    tx: mpsc::Sender<Request>,
}

impl Journaler {
    /// Starts the journaler's task on `pool`; it ends when every sender is dropped.
    pub(crate) fn start(pool: sqlx::PgPool) -> Self {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(pool, rx));
        Self { tx }
    }

    /// Records `row`, with every call queued meanwhile.
    pub(crate) async fn record(&self, row: CallRow) -> Reply {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Request { row, reply })
            .await
            .map_err(|_| RecordError::stopped())?;
        answer.await.map_err(|_| RecordError::stopped())?
    }
}

/// The record of `row` among `recorded`: the same call of the same attempt.
fn find(recorded: &[RecordedCall], row: &CallRow) -> Option<RecordedCall> {
    recorded
        .iter()
        .find(|c| c.job_id == row.job && c.position == row.position && c.attempt == row.attempt)
        .cloned()
}

async fn run(pool: sqlx::PgPool, mut rx: mpsc::Receiver<Request>) {
    let mut batch: Vec<Request> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let rows: Vec<&CallRow> = batch.iter().map(|r| &r.row).collect();
        let mut sent = 0;
        let result = loop {
            match record_calls(&pool, &rows, sent > 0).await {
                Err(error) if crate::store::is_transient(&error) && sent < RETRIES => {
                    sent += 1;
                    tokio::time::sleep(Duration::from_millis(50 << sent)).await;
                }
                other => break other,
            }
        };
        match result {
            Ok(recorded) => {
                for request in batch.drain(..) {
                    let found = find(&recorded, &request.row);
                    let _ = request.reply.send(Ok(found));
                }
            }
            Err(error) if batch.len() == 1 || crate::store::is_transient(&error) => {
                let error = RecordError::of(&error);
                for request in batch.drain(..) {
                    let _ = request.reply.send(Err(error.clone()));
                }
            }
            Err(_) => {
                // Refused for its content: record the calls one by one, so that only the call
                // the database refuses fails.
                for request in batch.drain(..) {
                    let reply = record_calls(&pool, &[&request.row], true)
                        .await
                        .map(|recorded| find(&recorded, &request.row))
                        .map_err(|e| RecordError::of(&e));
                    let _ = request.reply.send(reply);
                }
            }
        }
    }
}
