//! The [`Runledger`] client itself (`runledger.rs`): a pool, the payload limit and the wake-up
//! debouncer (`notify.rs`), and waiting for stored things (`wait.rs`). Its operations live with
//! their concepts: `job/client.rs`, `workflow/client.rs`, `schedule/client.rs`,
//! `maintenance/client.rs`.

pub(crate) mod notify;
pub(crate) mod runledger;
pub(crate) mod wait;

pub use self::runledger::{DEFAULT_MAX_PAYLOAD_BYTES, Runledger, RunledgerBuilder};
