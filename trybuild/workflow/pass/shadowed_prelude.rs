//! Generated code names nothing through the prelude, and compiles without warnings.
#![deny(warnings, missing_docs)]
//! A crate.

use runledger::{job, workflow};

#[allow(dead_code)]
enum Result {}
#[allow(dead_code)]
enum Option {}
#[allow(dead_code)]
struct Ok;
#[allow(dead_code)]
struct Some;
#[allow(dead_code)]
struct Vec;
#[allow(dead_code)]
struct String;

/// Doubles.
#[job]
pub async fn double(x: i64) -> core::result::Result<i64, runledger::JobError> {
    core::result::Result::Ok(x * 2)
}

/// Doubles twice.
#[workflow]
pub fn twice(x: i64) {
    let once = double(x);
    double(once)
}

fn main() {}
