//! `#[workflow]`, by stage: `attr.rs` parses the options, `ast.rs` models the function,
//! `validate.rs` checks each rule and resolves the steps into the DAG of `dag.rs`, and
//! `expand.rs` only quotes.

mod ast;
mod attr;
mod dag;
mod expand;
mod validate;

use proc_macro2::TokenStream;

use crate::shared::ctxt::Errors;

/// Expands `#[workflow(attr)] item`. On mistakes, the errors come with the expansion of what
/// was right (the input struct, its `Workflow` impl and the steps that resolved), so that the
/// code using the workflow does not add errors of its own: one mistake, one error.
pub(crate) fn workflow(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let attr = attr::WorkflowAttr::parse(attr, &mut errors);
    let ast = match ast::WorkflowFn::parse(item) {
        Ok(ast) => ast,
        Err(error) => {
            errors.push(error);
            return errors.to_compile_errors();
        }
    };
    let def = validate::workflow(&attr, &ast, &mut errors);
    let mut tokens = errors.to_compile_errors();
    // A generic signature leaves types the expansion cannot name: the errors alone say it.
    if ast.item.sig.generics.params.is_empty() {
        tokens.extend(expand::expand(&def));
    }
    tokens
}
