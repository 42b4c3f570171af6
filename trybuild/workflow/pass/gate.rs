//! A gate completed from outside, and steps that wait for it.

use runledger::{JobError, Workflow, job, workflow};
use runledger::workflow::StepKind;

#[job]
async fn ship(order_id: u64, address: String) -> Result<String, JobError> {
    Ok(format!("{order_id} to {address}"))
}

#[workflow]
fn approval_flow(order_id: u64, address: String) {
    let approved = external!("manager-approval");
    let shipped = ship(order_id, address).after(approved);
    shipped
}

fn main() {
    let shape = ApprovalFlow::SHAPE;
    assert!(matches!(shape.steps[0].kind, StepKind::Gate { name: "manager-approval" }));
    assert_eq!(shape.steps[1].after[0].step, "approved");
    let _: Option<String> = None::<<ApprovalFlow as Workflow>::Output>;
}
