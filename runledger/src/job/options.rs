//! Per-kind defaults: [`JobOptions`], the retry [`Backoff`] and the [`UniqueScope`] of unique
//! keys.

use std::time::Duration;

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
    /// `Debug` output (of the payload struct, [`JobRequest`](crate::JobRequest) and
    /// [`JobRecord`](crate::JobRecord)) and of the error texts runledger writes, such as a
    /// payload that no longer deserializes. They are stored as usual. Default false.
    pub sensitive: bool,
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
        }
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
