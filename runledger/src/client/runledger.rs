//! The [`Runledger`] client itself: a pool, the payload limit and the wake-up debouncer,
//! shared by its clones. Its operations live with their concepts (`client/mod.rs` for jobs,
//! `workflow/client.rs`, `schedule/client.rs`, `maintenance/client.rs`); this file is a leaf that
//! the job context can hold without importing them.

use std::sync::Arc;

use sqlx::PgPool;

use super::notify;

/// Default limit on the JSON size of one payload or output: 1 MiB.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1 << 20;

/// A handle on runledger's tables in one database: enqueue, cancel, inspect.
///
/// Cheap to clone; clones share the pool.
///
/// ```no_run
/// # async fn demo(pool: sqlx::PgPool) -> Result<(), runledger::Error> {
/// let rl = runledger::Runledger::new(pool);
/// runledger::migrate(rl.pool()).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Runledger {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: PgPool,
    max_payload_bytes: usize,
    notifier: Arc<notify::Notifier>,
}

/// Configures a [`Runledger`] client.
#[derive(Debug)]
#[must_use = "call `.build()` to get the client"]
pub struct RunledgerBuilder {
    pool: PgPool,
    max_payload_bytes: usize,
}

impl RunledgerBuilder {
    /// Largest payload or output accepted, as JSON bytes. Default 1 MiB.
    pub fn max_payload_bytes(mut self, bytes: usize) -> Self {
        self.max_payload_bytes = bytes;
        self
    }
    /// The client.
    pub fn build(self) -> Runledger {
        Runledger {
            inner: Arc::new(Inner {
                pool: self.pool,
                max_payload_bytes: self.max_payload_bytes,
                notifier: Arc::default(),
            }),
        }
    }
}

impl Runledger {
    /// A client with default settings on `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self::builder(pool).build()
    }

    /// A client builder on `pool`.
    pub fn builder(pool: PgPool) -> RunledgerBuilder {
        RunledgerBuilder {
            pool,
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
        }
    }

    /// The pool this client uses.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// The payload and output size limit in bytes.
    pub fn max_payload_bytes(&self) -> usize {
        self.inner.max_payload_bytes
    }

    /// The wake-up debouncer of this client and its clones.
    pub(crate) fn notifier(&self) -> &Arc<notify::Notifier> {
        &self.inner.notifier
    }
}
