//! Cleanup that runs whatever happens to the steps before it, and a workflow without output.

use runledger::{JobError, Workflow, job, workflow};

#[job]
async fn reserve(order_id: u64) -> Result<u64, JobError> {
    Ok(order_id)
}

#[job]
async fn charge(reservation: u64) -> Result<(), JobError> {
    let _ = reservation;
    Ok(())
}

#[job]
async fn release(order_id: u64) -> Result<(), JobError> {
    let _ = order_id;
    Ok(())
}

#[workflow]
fn checkout(order_id: u64) {
    let reservation = reserve(order_id);
    let charged = charge(reservation);
    let cleanup = release(order_id).after_any(reservation).after_any(charged);
}

fn main() {
    let shape = Checkout::SHAPE;
    assert_eq!(shape.output, None);
    let cleanup = shape.step("cleanup").unwrap();
    assert!(cleanup.after.iter().all(|d| d.on_any));
    assert_eq!(cleanup.after.len(), 2);
    let _: () = None::<<Checkout as Workflow>::Output>.unwrap_or(());
}
