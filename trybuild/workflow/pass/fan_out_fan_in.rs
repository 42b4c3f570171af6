//! One step fanned out to ten and gathered into one.

use runledger::{JobError, Workflow, job, workflow};

#[job]
async fn split(n: u32) -> Result<Vec<u32>, JobError> {
    Ok((0..n).collect())
}

#[job]
async fn work(items: Vec<u32>, index: usize) -> Result<u32, JobError> {
    Ok(items[index])
}

#[job]
#[allow(clippy::too_many_arguments)]
async fn gather(
    a: u32, b: u32, c: u32, d: u32, e: u32, f: u32, g: u32, h: u32, i: u32, j: u32,
) -> Result<u32, JobError> {
    Ok(a + b + c + d + e + f + g + h + i + j)
}

#[workflow]
fn fan(n: u32) {
    let s = split(n);
    let w0 = work(s, 0);
    let w1 = work(s, 1);
    let w2 = work(s, 2);
    let w3 = work(s, 3);
    let w4 = work(s, 4);
    let w5 = work(s, 5);
    let w6 = work(s, 6);
    let w7 = work(s, 7);
    let w8 = work(s, 8);
    let w9 = work(s, 9);
    gather(w0, w1, w2, w3, w4, w5, w6, w7, w8, w9)
}

fn main() {
    let shape = Fan::SHAPE;
    assert_eq!(shape.steps.len(), 12);
    assert_eq!(shape.step("gather").unwrap().after.len(), 10);
    assert!(shape.steps[1..11].iter().all(|s| s.after.len() == 1 && s.after[0].step == "s"));
}
