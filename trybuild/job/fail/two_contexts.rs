use runledger::{JobContext, JobError, job};

#[job]
async fn send_email(ctx: &JobContext, to: String, again: &JobContext) -> Result<(), JobError> {
    let _ = (ctx, to, again);
    Ok(())
}

fn main() {}
