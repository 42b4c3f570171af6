use runledger::{JobError, job};

#[job]
async fn resize((width, height): (u32, u32)) -> Result<(), JobError> {
    let _ = (width, height);
    Ok(())
}

fn main() {}
