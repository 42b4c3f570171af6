//! [`Suspension`]: why a durable job left its worker. A leaf: `JobError` carries it.

use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::Value;

/// Why a durable job left its worker: what wakes it, and the time that wakes it regardless.
///
/// A suspending call returns it inside a [`JobError`](crate::JobError)
/// ([`JobError::is_suspended`](crate::JobError::is_suspended)); return that
/// error with `?` so the job can leave its worker.
#[derive(Debug, Clone, PartialEq)]
pub struct Suspension {
    /// Conditions as stored in `waiting_for`: `{"event": name, "key": key}`, `{"child": id}`,
    /// `{"sleep": name}`, `{"kind": kind, "version": v}`.
    pub(crate) conditions: Vec<Value>,
    pub(crate) until: Option<DateTime<Utc>>,
}

impl Suspension {
    pub(crate) fn new(condition: Value, until: Option<DateTime<Utc>>) -> Self {
        Self {
            conditions: vec![condition],
            until,
        }
    }

    /// Waiting for either: every condition wakes the job, and the earlier time.
    pub(crate) fn or(mut self, other: Suspension) -> Self {
        for c in other.conditions {
            if !self.conditions.contains(&c) {
                self.conditions.push(c);
            }
        }
        self.until = match (self.until, other.until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self
    }

    /// The time that wakes the job regardless, if any.
    pub fn until(&self) -> Option<DateTime<Utc>> {
        self.until
    }
}

impl fmt::Display for Suspension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("waiting for ")?;
        for (i, c) in self.conditions.iter().enumerate() {
            if i > 0 {
                f.write_str(" or ")?;
            }
            if let Some(name) = c.get("event").and_then(Value::as_str) {
                let key = c.get("key").and_then(Value::as_str).unwrap_or_default();
                write!(f, "event `{name}` with key `{key}`")?;
            } else if let Some(child) = c.get("child") {
                write!(f, "child job {child}")?;
            } else if let Some(name) = c.get("sleep").and_then(Value::as_str) {
                write!(f, "sleep `{name}` to end")?;
            } else if let Some(version) = c.get("version") {
                write!(f, "a worker that resumes version {version}")?;
            } else {
                write!(f, "{c}")?;
            }
        }
        if let Some(until) = self.until {
            write!(f, " until {until}")?;
        }
        Ok(())
    }
}
