//! `#[job]`, by stage: `attr.rs` parses the options, `ast.rs` models the function,
//! `validate.rs` holds one check per rule and `expand.rs` only quotes.

pub(crate) mod ast;
pub(crate) mod attr;
pub(crate) mod expand;
pub(crate) mod validate;
