//! Random numbers for jitter and names, from the standard library's per-process hash keys (not
//! for secrets: the embedded server's password reads `/dev/urandom`).

use std::sync::atomic::{AtomicU64, Ordering};

/// A random number from the standard library's per-process hash keys.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A uniformly random number in `0.0..1.0`.
pub(crate) fn random_unit() -> f64 {
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}
