//! Jobs: the [`Job`] trait that `#[job]` implements, the [`JobError`] outcomes a handler
//! returns, the [`JobContext`] it receives, per-kind [`JobOptions`], injected [`State`], and the
//! client side: [`Enqueue`] (typed enqueue), [`JobRequest`] (untyped, for batches),
//! [`JobHandle`] (wait for the output) and [`JobRecord`] (a job as stored).

#[macro_use]
pub(crate) mod request;

mod client;
pub(crate) mod context;
pub(crate) mod definition;
mod enqueue;
pub(crate) mod error;
mod handle;
pub(crate) mod inject;
pub(crate) mod options;
pub(crate) mod record;
pub(crate) mod state;

pub use self::context::{JobContext, StopReason};
pub use self::definition::{Job, Storable};
pub use self::enqueue::{Enqueue, EnqueuedJob};
pub use self::error::JobError;
pub(crate) use self::error::JobErrorKind;
pub use self::handle::JobHandle;
pub(crate) use self::inject::StateMap;
pub use self::inject::{State, StateRequirement};
pub(crate) use self::options::RowSettings;
pub use self::options::{Backoff, JobOptions, UniqueScope};
pub use self::record::{CancelOutcome, JobRecord};
pub use self::request::JobRequest;
pub use self::state::JobState;
pub use crate::client::DEFAULT_MAX_PAYLOAD_BYTES;
pub use crate::ids::JobId;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_mark_keeps_the_cause_chain() {
        let io = std::io::Error::other("disk on fire");
        let e: JobError = io.into();
        assert_eq!(e.to_string(), "disk on fire");
        assert!(!e.is_fatal());
    }
}
