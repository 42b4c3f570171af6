//! The resolved workflow that `expand.rs` quotes: inputs, steps, edges, bindings and output,
//! built by `validate.rs` from the syntactic model.

use proc_macro2::Span;
use syn::{Expr, Ident, ItemFn, Member, Type};

/// A resolved workflow.
pub(crate) struct WorkflowDef {
    pub(crate) item: ItemFn,
    /// The stored name (`name = "..."`, default: the function's name).
    pub(crate) name: String,
    /// The input struct's name: the function's name in PascalCase.
    pub(crate) input: Ident,
    pub(crate) inputs: Vec<(Ident, Type)>,
    pub(crate) steps: Vec<StepDef>,
    /// Index of the step whose output is the run's output.
    pub(crate) output: Option<usize>,
}

/// One step.
pub(crate) struct StepDef {
    pub(crate) key: String,
    pub(crate) what: StepWhat,
    /// Steps waited for, deduplicated, in order of first mention.
    pub(crate) deps: Vec<Dep>,
}

pub(crate) enum StepWhat {
    Job {
        /// The job function's path as written; `#[job]` makes the same path name its payload.
        path: syn::Path,
        /// The call expression, for spans.
        call: Span,
        /// The call's parentheses, for spans.
        parens: proc_macro2::extra::DelimSpan,
        args: Vec<Arg>,
    },
    Gate {
        name: String,
    },
}

pub(crate) struct Dep {
    pub(crate) step: usize,
    pub(crate) on_any: bool,
    /// Whether an argument takes this step's output.
    pub(crate) data: bool,
}

pub(crate) enum Arg {
    /// Reported as a mistake: checked as a value of the parameter's type, never stored.
    Rejected,
    /// Evaluated at enqueue from the inputs.
    Static(Expr),
    /// Taken from step `step`'s output at `path` when that step completes.
    Edge {
        step: usize,
        /// The step's name as written, carrying its span.
        root: Ident,
        path: Vec<Member>,
        expr: Expr,
    },
}
