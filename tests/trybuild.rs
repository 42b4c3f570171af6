//! Compile-pass and compile-fail cases for the macros; refresh snapshots with
//! `TRYBUILD=overwrite cargo test -p runledger --test trybuild`.

#[test]
fn job_macro() {
    let t = trybuild::TestCases::new();
    t.pass("../trybuild/job/pass/*.rs");
    t.compile_fail("../trybuild/job/fail/*.rs");
}

#[test]
fn workflow_macro() {
    let t = trybuild::TestCases::new();
    t.pass("../trybuild/workflow/pass/*.rs");
    t.compile_fail("../trybuild/workflow/fail/*.rs");
}
