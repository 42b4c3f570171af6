//! Procedural macros of runledger: `#[job]` and `#[workflow]`.
//!
//! **Use them through the `runledger` crate** (`use runledger::job;`). The code they generate
//! names `::runledger::...` paths only, so depending on this crate alone is of no use.
//!
//! The crate is laid out by stage, so each part can be unit-tested on `proc_macro2` tokens:
//! `attr.rs` parses the options, `ast.rs` models the function, `validate.rs` holds one check
//! per rule and `expand.rs` only quotes. This file holds the thin entry points.
//!
//! # `#[job]`
//!
#![doc = include_str!("job.md")]

mod event;
mod job;
mod shared;
mod workflow;

use proc_macro::TokenStream;

/// Turns an `async fn` into a typed background job: a payload struct named after the
/// function, its `runledger::Job` impl, typed `enqueue` / `enqueue_tx` and the registration
/// that lets a worker find the handler.
///
#[doc = include_str!("job.md")]
#[proc_macro_attribute]
pub fn job(attr: TokenStream, item: TokenStream) -> TokenStream {
    job::expand::job(attr.into(), item.into()).into()
}

/// Declares a workflow: a static DAG of `#[job]` steps, checked when it compiles. The function
/// becomes an input struct named after it (PascalCase) with typed `enqueue` / `enqueue_tx`,
/// an impl of `runledger::Workflow` and a registration.
///
#[doc = include_str!("workflow.md")]
#[proc_macro_attribute]
pub fn workflow(attr: TokenStream, item: TokenStream) -> TokenStream {
    workflow::workflow(attr.into(), item.into()).into()
}

/// Derives `runledger::durable::Event` for a struct:
/// `#[event(name = "orders.packed", key = order_id)]` names the event and the field whose
/// value routes it (any type that implements `Display`).
#[proc_macro_derive(Event, attributes(event))]
pub fn derive_event(item: TokenStream) -> TokenStream {
    event::derive(item.into()).into()
}
