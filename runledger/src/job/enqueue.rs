//! [`Enqueue`]: a typed enqueue being configured, awaited to insert the job.

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;

use sqlx::PgConnection;

use super::definition::Job;
use super::handle::JobHandle;
use super::request::JobRequest;
use crate::client::runledger::Runledger;
use crate::error::Error;
use crate::ids::JobId;

/// One job inserted by [`Runledger::enqueue_many`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnqueuedJob {
    /// Its id (for a duplicate, the id of the job that holds the unique key).
    pub id: JobId,
    /// False if the unique key was already held and nothing was inserted.
    pub inserted: bool,
}

enum Target<'a> {
    Pool,
    Tx(&'a mut PgConnection),
}

/// A typed enqueue being configured; `.await` it to insert the job.
///
/// ```no_run
/// # use runledger::{job, JobError, Runledger};
/// # #[job] async fn resize(image: String, width: u32) -> Result<(), JobError> { Ok(()) }
/// # async fn demo(rl: Runledger) -> Result<(), runledger::Error> {
/// let handle = Resize { image: "a.png".into(), width: 640 }
///     .enqueue(&rl)
///     .with_priority(5)
///     .run_in(std::time::Duration::from_secs(60))
///     .await?;
/// # Ok(()) }
/// ```
#[must_use = "an enqueue does nothing until it is awaited"]
pub struct Enqueue<'a, J: Job> {
    client: &'a Runledger,
    target: Target<'a>,
    request: JobRequest,
    _job: PhantomData<fn() -> J>,
}

impl<'a, J: Job> Enqueue<'a, J> {
    /// Enqueues `job` on `client`'s pool.
    pub fn new(client: &'a Runledger, job: J) -> Self {
        Self {
            client,
            target: Target::Pool,
            request: JobRequest::new(job),
            _job: PhantomData,
        }
    }

    /// Enqueues `job` inside the open transaction `tx`.
    pub fn new_tx(client: &'a Runledger, tx: &'a mut PgConnection, job: J) -> Self {
        Self {
            client,
            target: Target::Tx(tx),
            request: JobRequest::new(job),
            _job: PhantomData,
        }
    }

    override_methods!(request);

    async fn run(self) -> Result<JobHandle<J::Output>, Error> {
        let row = self.request.into_row(self.client.max_payload_bytes())?;
        let rows = std::slice::from_ref(&row);
        let inserted = match self.target {
            Target::Pool => {
                let mut conn = self.client.pool().acquire().await?;
                self.client.insert(&mut conn, rows, false).await?
            }
            Target::Tx(tx) => self.client.insert(tx, rows, true).await?,
        };
        let first = inserted[0];
        Ok(JobHandle::new(
            self.client.clone(),
            first.id,
            first.inserted,
        ))
    }
}

impl<'a, J: Job> IntoFuture for Enqueue<'a, J> {
    type Output = Result<JobHandle<J::Output>, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}
