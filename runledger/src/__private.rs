//! Support for the code that `#[job]` and `#[workflow]` generate. Not a public API: anything here
//! may change in any release.

pub use inventory;
pub use serde;
pub use serde_json;

pub use crate::registry::JobRegistration;

/// The unique key of a job declared `unique`: its kind and the JSON of the chosen fields.
pub fn unique_key<T: serde::Serialize + ?Sized>(kind: &str, fields: &T) -> String {
    match serde_json::to_string(fields) {
        Ok(json) => format!("{kind}:{json}"),
        // A payload that does not serialize is rejected at enqueue anyway.
        Err(_) => kind.to_owned(),
    }
}

/// Compile-time check that a payload field or output type round-trips through serde.
pub const fn assert_serde<T: serde::Serialize + serde::de::DeserializeOwned>() {}
pub use sqlx::PgConnection;
