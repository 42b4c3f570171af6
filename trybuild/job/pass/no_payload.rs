//! Jobs without payload parameters still get a (braced, empty) payload struct.

use runledger::{Job, JobContext, JobError, job};

#[job]
async fn ping() -> Result<(), JobError> {
    Ok(())
}

// Plain `unique` without payload: at most one active job of this kind.
#[job(unique)]
pub async fn rebuild_index(ctx: &JobContext) -> Result<u32, JobError> {
    Ok(ctx.attempt() as u32)
}

fn main() {
    let ping = Ping {};
    assert_eq!(serde_json::to_string(&ping).unwrap(), "{}");
    let _: Ping = serde_json::from_str("{}").unwrap();
    assert_eq!(Ping::KIND, "ping");
    assert_eq!(
        RebuildIndex {}.unique_key().as_deref(),
        Some("rebuild_index:{}")
    );
}
