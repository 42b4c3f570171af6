use std::rc::Rc;

use runledger::{JobError, job};

async fn flush() {}

#[job]
async fn count(n: u32) -> Result<u32, JobError> {
    let shared = Rc::new(n);
    flush().await;
    Ok(*shared)
}

fn main() {}
