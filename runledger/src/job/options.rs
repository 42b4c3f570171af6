//! Per-kind defaults: [`JobOptions`], the retry [`Backoff`] and the [`UniqueScope`] of unique
//! keys.

use std::time::Duration;

use crate::error::Error;
use crate::validate;

/// Defaults for every job of one kind; per-call overrides live on the enqueue builder.
///
/// Built in const context by `#[job(...)]`:
/// `JobOptions::new().queue("payments").max_attempts(5)`.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct JobOptions {
    /// Queue the job is placed on. Default `"default"`.
    pub queue: &'static str,
    /// Larger runs first. Default `0`.
    pub priority: i16,
    /// Attempts before the job is failed for good. Default `25`.
    pub max_attempts: i32,
    /// Time one attempt may take before it is abandoned and retried. Default: none.
    pub timeout: Option<Duration>,
    /// Delay between failed attempts.
    pub backoff: Backoff,
    /// How long a unique key blocks another job with the same key.
    pub unique_scope: UniqueScope,
    /// The cron schedule declared with `#[job(cron = "...")]`. Default: none.
    pub cron: Option<crate::schedule::cron::CronOptions>,
    /// Declared `#[job(sensitive)]`: the payload, output and unique key are left out of
    /// `Debug` output (of the payload struct, [`JobRequest`](crate::job::JobRequest) and
    /// [`JobRecord`](crate::job::JobRecord)) and of the error texts runledger writes, such as a
    /// payload that no longer deserializes. They are stored as usual. Default false.
    pub sensitive: bool,
    /// Declared `#[job(unique)]`: each enqueue derives a unique key from the payload. Such a
    /// job cannot be a workflow step (`#[workflow]` refuses it at compile time: a step is
    /// never deduplicated by a key; the run's idempotency key does that). Default false.
    pub unique: bool,
    /// Declared `#[job(durable)]`: the handler's journaled calls (steps, sleeps, waits,
    /// children) are recorded and replayed on later attempts; see [`crate::durable`].
    /// Default false.
    pub durable: bool,
    /// The version of a durable job's code, stored with each call it records. Default 1.
    pub version: i32,
    /// Earlier versions whose journals this code can resume (`#[job(durable, version = 3,
    /// resumes = [2])]`). A job recorded by a version not listed waits, visibly, for a worker
    /// that declares it. Default none.
    pub resumes: &'static [i32],
}

impl JobOptions {
    /// The defaults: queue `"default"`, priority 0, 25 attempts, no timeout, exponential backoff.
    pub const fn new() -> Self {
        Self {
            queue: "default",
            priority: 0,
            max_attempts: 25,
            timeout: None,
            backoff: Backoff::exponential(),
            unique_scope: UniqueScope::Active,
            cron: None,
            sensitive: false,
            unique: false,
            durable: false,
            version: 1,
            resumes: &[],
        }
    }
    /// Marks the kind as durable (see [`JobOptions::durable`]).
    pub const fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }
    /// Sets the durable code's version (see [`JobOptions::version`]).
    pub const fn version(mut self, version: i32) -> Self {
        self.version = version;
        self
    }
    /// Sets the earlier versions this code resumes (see [`JobOptions::resumes`]).
    pub const fn resumes(mut self, resumes: &'static [i32]) -> Self {
        self.resumes = resumes;
        self
    }
    /// Whether this code can resume a journal recorded by `version`.
    pub fn can_resume(&self, version: i32) -> bool {
        version == self.version || self.resumes.contains(&version)
    }
    /// Marks the kind as declared unique (see [`JobOptions::unique`]).
    pub const fn unique(mut self, unique: bool) -> Self {
        self.unique = unique;
        self
    }
    /// Marks the kind sensitive (see [`JobOptions::sensitive`]).
    pub const fn sensitive(mut self, sensitive: bool) -> Self {
        self.sensitive = sensitive;
        self
    }
    /// Sets the queue.
    pub const fn queue(mut self, queue: &'static str) -> Self {
        self.queue = queue;
        self
    }
    /// Sets the priority (larger runs first).
    pub const fn priority(mut self, priority: i16) -> Self {
        self.priority = priority;
        self
    }
    /// Sets the number of attempts.
    pub const fn max_attempts(mut self, max_attempts: i32) -> Self {
        self.max_attempts = max_attempts;
        self
    }
    /// Sets the per-attempt timeout.
    pub const fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
    /// Sets the retry backoff.
    pub const fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }
    /// Sets how long a unique key holds.
    pub const fn unique_scope(mut self, scope: UniqueScope) -> Self {
        self.unique_scope = scope;
        self
    }
    /// Declares a cron schedule for the kind, synced to the database when a worker starts.
    pub const fn cron(mut self, cron: crate::schedule::cron::CronOptions) -> Self {
        self.cron = Some(cron);
        self
    }
}

impl Default for JobOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// How long a unique key keeps a second job with the same key out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UniqueScope {
    /// While a job with the key is scheduled, available, running, retrying or waiting; once it
    /// finishes, the key is free again.
    Active,
    /// For every job whose enqueue time falls in the same window of this length (aligned to the
    /// Unix epoch), whatever its state, until the finished row is pruned.
    Period(Duration),
}

/// The settings of one job row, checked: what every path that writes jobs (an enqueue, a
/// workflow step, a cron slot) stores for a kind's queue, priority, attempts and timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RowSettings {
    pub(crate) queue: String,
    pub(crate) priority: i16,
    pub(crate) max_attempts: i32,
    pub(crate) timeout_ms: Option<i64>,
}

impl RowSettings {
    /// Checks the settings of a `kind` job: valid kind and queue names, at least one attempt,
    /// no zero timeout (`None` means no timeout).
    pub(crate) fn check(
        kind: &str,
        queue: impl Into<String>,
        priority: i16,
        max_attempts: i32,
        timeout: Option<Duration>,
    ) -> Result<Self, Error> {
        let queue = queue.into();
        validate::name("kind", kind)?;
        validate::name("queue", &queue)?;
        if max_attempts < 1 {
            return Err(Error::InvalidInput(format!(
                "max_attempts of a `{kind}` job is {max_attempts}; it must be at least 1"
            )));
        }
        let timeout_ms = match timeout {
            Some(t) if t.is_zero() => {
                return Err(Error::InvalidInput(format!(
                    "the timeout of a `{kind}` job is zero; use `None` for no timeout"
                )));
            }
            Some(t) => Some(i64::try_from(t.as_millis()).unwrap_or(i64::MAX).max(1)),
            None => None,
        };
        Ok(RowSettings {
            queue,
            priority,
            max_attempts,
            timeout_ms,
        })
    }
}

/// Exponential backoff with jitter: attempt `n` (1-based) waits
/// `min(base * factor^(n-1), max)`, then a random fraction of up to `jitter` is taken off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay after the first failed attempt.
    pub base: Duration,
    /// Growth per attempt.
    pub factor: f64,
    /// Upper bound of the delay.
    pub max: Duration,
    /// Fraction (0.0..=1.0) of the delay that is randomised away, so that jobs failing together
    /// do not retry together.
    pub jitter: f64,
}

impl Backoff {
    /// Base 1 s, factor 2, max 1 h, jitter 0.25.
    pub const fn exponential() -> Self {
        Self {
            base: Duration::from_secs(1),
            factor: 2.0,
            max: Duration::from_secs(3600),
            jitter: 0.25,
        }
    }
    /// A fixed delay without jitter.
    pub const fn constant(delay: Duration) -> Self {
        Self {
            base: delay,
            factor: 1.0,
            max: delay,
            jitter: 0.0,
        }
    }
    /// Sets the delay after the first failed attempt.
    pub const fn base(mut self, base: Duration) -> Self {
        self.base = base;
        self
    }
    /// Sets the growth per attempt.
    pub const fn factor(mut self, factor: f64) -> Self {
        self.factor = factor;
        self
    }
    /// Sets the upper bound of the delay.
    pub const fn max(mut self, max: Duration) -> Self {
        self.max = max;
        self
    }
    /// Sets the fraction of the delay that is randomised away.
    pub const fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }
    /// The delay after failed attempt `attempt` (1-based), using `random` in `0.0..1.0`.
    pub fn delay(&self, attempt: i32, random: f64) -> Duration {
        let exp = (attempt.max(1) - 1).min(62);
        let raw = self.base.as_secs_f64() * self.factor.powi(exp);
        let capped = raw.min(self.max.as_secs_f64()).max(0.0);
        let jitter = self.jitter.clamp(0.0, 1.0) * random.clamp(0.0, 1.0);
        Duration::from_secs_f64(capped * (1.0 - jitter))
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::exponential()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_settings_are_checked_alike_on_every_path() {
        let ok = RowSettings::check("k", "q", 3, 2, Some(Duration::from_micros(10))).unwrap();
        assert_eq!(
            ok.timeout_ms,
            Some(1),
            "a sub-millisecond timeout rounds up to 1 ms"
        );
        let zero = RowSettings::check("k", "q", 0, 1, Some(Duration::ZERO)).unwrap_err();
        assert!(
            zero.to_string().contains("timeout of a `k` job is zero"),
            "{zero}"
        );
        assert!(RowSettings::check("k", "q", 0, 0, None).is_err());
        assert!(RowSettings::check("k", "bad queue", 0, 1, None).is_err());
        assert!(RowSettings::check("", "q", 0, 1, None).is_err());
    }

    #[test]
    fn backoff_builders_start_from_the_defaults() {
        let b = Backoff::exponential()
            .base(Duration::from_secs(2))
            .jitter(0.0);
        assert_eq!(
            (b.base, b.factor, b.max, b.jitter),
            (Duration::from_secs(2), 2.0, Duration::from_secs(3600), 0.0)
        );
    }

    #[test]
    fn backoff_grows_and_caps() {
        let b = Backoff {
            base: Duration::from_secs(1),
            factor: 2.0,
            max: Duration::from_secs(10),
            jitter: 0.0,
        };
        assert_eq!(b.delay(1, 0.5), Duration::from_secs(1));
        assert_eq!(b.delay(3, 0.5), Duration::from_secs(4));
        assert_eq!(b.delay(10, 0.5), Duration::from_secs(10));
        assert_eq!(b.delay(i32::MAX, 0.5), Duration::from_secs(10));
    }

    #[test]
    fn backoff_jitter_only_shortens() {
        let b = Backoff::exponential();
        let d = b.delay(2, 0.999);
        assert!(
            d <= Duration::from_secs(2) && d >= Duration::from_millis(1500),
            "{d:?}"
        );
    }
}
