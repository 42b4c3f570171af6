//! Workflows written through `macro_rules!` (expression fragments arrive wrapped in invisible
//! groups) and a step named with a raw identifier.

use runledger::{JobError, Workflow, job, workflow};

#[job]
async fn produce(seed: u64) -> Result<u64, JobError> {
    Ok(seed)
}

#[job]
async fn consume(value: u64, extra: u64) -> Result<u64, JobError> {
    Ok(value + extra)
}

macro_rules! two_steps {
    ($name:ident, $seed:ident, $first:expr, $extra:expr) => {
        #[workflow]
        fn $name($seed: u64) {
            let r#type = $first;
            let second = consume(r#type, $extra).after(r#type);
            second
        }
    };
}

two_steps!(generated, seed, produce(seed), seed + 1);

fn main() {
    let shape = Generated::SHAPE;
    assert_eq!(shape.steps[0].key, "type");
    assert_eq!(shape.steps[1].bindings[0].step, "type");
    assert_eq!(shape.steps[1].after.len(), 1);
    let args = Generated { seed: 4 }.step_args().unwrap();
    assert_eq!(args[1]["extra"], 5);
}
