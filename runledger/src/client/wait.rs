//! Waiting for a stored thing to reach a state: polls with a growing interval until done or
//! out of time.

use std::future::Future;
use std::time::Duration;

use crate::error::Error;

/// Calls `check` until it returns `Ok(Ok(value))` or an error, backing off from 5 ms to 250 ms
/// between calls. `Ok(Err(state))` means "not yet, still in `state`"; after `timeout` the last
/// such state is returned as `Ok(Err(state))`.
pub(crate) async fn poll<T, F, Fut>(
    timeout: Option<Duration>,
    mut check: F,
) -> Result<Result<T, String>, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Result<T, String>, Error>>,
{
    let started = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(5);
    loop {
        let state = match check().await? {
            Ok(value) => return Ok(Ok(value)),
            Err(state) => state,
        };
        if let Some(limit) = timeout
            && started.elapsed() >= limit
        {
            return Ok(Err(state));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(250));
    }
}
