//! The journaler: records the finished calls of a worker's running durable jobs in batches.
//!
//! Every journaled call waits for its record before it returns, so one statement per call
//! would cost each step a round trip and a commit of its own. Calls are sent here instead; the
//! journaler writes whatever has queued up in one statement (`runledger.record_calls`) while
//! the previous one runs, and answers each call. With fifty jobs stepping at once, fifty steps
//! share a commit.

use tokio::sync::{mpsc, oneshot};

use crate::store::durable::{CallRow, RecordedCall, record_calls};

/// The most calls one statement records.
const MAX_BATCH: usize = 512;

/// What a call gets back: its record (`None`: the attempt no longer holds its job), or why the
/// database refused the batch.
pub(crate) type Reply = Result<Option<RecordedCall>, String>;

struct Request {
    row: CallRow,
    reply: oneshot::Sender<Reply>,
}

/// The sending side, held by each durable attempt's journal.
#[derive(Debug, Clone)]
pub(crate) struct Journaler {
    tx: mpsc::Sender<Request>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.row.fmt(f)
    }
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
            .map_err(|_| "the worker's journaler has stopped".to_owned())?;
        answer
            .await
            .map_err(|_| "the worker's journaler has stopped".to_owned())?
    }
}

async fn run(pool: sqlx::PgPool, mut rx: mpsc::Receiver<Request>) {
    let mut batch: Vec<Request> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let rows: Vec<&CallRow> = batch.iter().map(|r| &r.row).collect();
        match record_calls(&pool, &rows).await {
            Ok(recorded) => {
                for request in batch.drain(..) {
                    let found = recorded
                        .iter()
                        .find(|c| c.job_id == request.row.job && c.position == request.row.position)
                        .cloned();
                    let _ = request.reply.send(Ok(found));
                }
            }
            Err(error) if batch.len() == 1 || crate::store::is_transient(&error) => {
                let message = error.to_string();
                for request in batch.drain(..) {
                    let _ = request.reply.send(Err(message.clone()));
                }
            }
            Err(_) => {
                // Refused for its content: record the calls one by one, so that only the call
                // the database refuses fails.
                for request in batch.drain(..) {
                    let reply = record_calls(&pool, &[&request.row])
                        .await
                        .map(|mut recorded| recorded.pop())
                        .map_err(|e| e.to_string());
                    let _ = request.reply.send(reply);
                }
            }
        }
    }
}
