//! `#[workflow]`: `parse.rs` reads the function into a DAG and reports mistakes, `expand.rs`
//! quotes the input struct, the `Workflow` impl with its constant shape, and the registration.

mod expand;
mod parse;

use proc_macro2::TokenStream;

use crate::shared::ctxt::Errors;

/// Expands `#[workflow(attr)] item`, or returns every error found in it.
pub(crate) fn workflow(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let def = parse::parse(attr, item, &mut errors);
    errors.finish()?;
    match def {
        Some(def) => Ok(expand::expand(&def)),
        None => Ok(TokenStream::new()),
    }
}
