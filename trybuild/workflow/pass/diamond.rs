//! a -> {b, c} -> d with data along every edge, and the constants the macro generates.

use runledger::{JobError, Workflow, job, workflow};
use runledger::workflow::StepKind;

#[job]
async fn seed(value: i64) -> Result<i64, JobError> {
    Ok(value)
}

#[job]
async fn add(x: i64, y: i64) -> Result<i64, JobError> {
    Ok(x + y)
}

#[job(kind = "sum.v2")]
async fn sum(left: i64, right: i64) -> Result<i64, JobError> {
    Ok(left + right)
}

/// A diamond.
#[workflow(name = "math.diamond")]
fn diamond(start: i64) {
    let a = seed(start);
    let b = add(a, 1);
    let c = add(a, 10);
    sum(b, c)
}

fn main() {
    let shape = Diamond::SHAPE;
    assert_eq!(Diamond::NAME, "math.diamond");
    assert_eq!(shape.steps.len(), 4);
    assert_eq!(shape.output, Some("sum"));
    assert!(matches!(shape.steps[3].kind, StepKind::Job { kind: "sum.v2", .. }));
    let d = shape.step("sum").unwrap();
    assert_eq!(d.bindings[1].param, "right");
    assert_eq!(d.bindings[1].step, "c");
    let _: fn(&Diamond) -> Result<_, _> = Diamond::step_args;
    let args = Diamond { start: 2 }.step_args().unwrap();
    assert_eq!(args[0]["value"], 2);
    assert_eq!(args[1]["y"], 1);
    assert!(!args[1].contains_key("x"));
    const F: u64 = Diamond::SHAPE.fingerprint();
    assert_eq!(F, shape.fingerprint());
    let _: Option<i64> = None::<<Diamond as Workflow>::Output>;
}
