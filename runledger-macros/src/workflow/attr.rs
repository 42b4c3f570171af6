//! The options of `#[workflow(...)]`. Only their syntax is checked here; what a value must be
//! (a valid name) is checked in `validate.rs`.

use proc_macro2::TokenStream;
use syn::parse::Parser as _;
use syn::{Expr, LitStr};

use crate::shared::ctxt::{Errors, closest};
use crate::shared::list;

/// The options `#[workflow(...)]` accepts.
pub(crate) const WORKFLOW_OPTIONS: &[&str] = &["name"];

/// The parsed options; an option given wrongly is reported and left out.
#[derive(Default)]
pub(crate) struct WorkflowAttr {
    /// `name = "orders.fulfil"`: the stored name.
    pub(crate) name: Option<LitStr>,
}

impl WorkflowAttr {
    /// Parses `tokens`, recording each mistake.
    pub(crate) fn parse(tokens: TokenStream, errors: &mut Errors) -> WorkflowAttr {
        let mut attr = WorkflowAttr::default();
        let parser = syn::meta::parser(|meta| {
            let key = meta.path.get_ident().cloned();
            match key {
                Some(key) if key == "name" => {
                    let Ok(value) = meta.value().and_then(|v| v.parse::<LitStr>()) else {
                        errors.spanned(
                            &key,
                            "`name` takes a string literal, such as `name = \"orders.fulfil\"`",
                        );
                        return Ok(());
                    };
                    if attr.name.is_some() {
                        errors.spanned(&key, "duplicate `#[workflow]` option `name`: give it once");
                    } else {
                        attr.name = Some(value);
                    }
                    Ok(())
                }
                _ => {
                    let given = quote::ToTokens::to_token_stream(&meta.path)
                        .to_string()
                        .replace(' ', "");
                    let hint = closest(&given, WORKFLOW_OPTIONS.iter().copied())
                        .map(|c| format!(" (did you mean `{c}`?)"))
                        .unwrap_or_default();
                    errors.spanned(
                        &meta.path,
                        format!(
                            "unknown `#[workflow]` option `{given}`{hint}; expected one of: {}",
                            list(WORKFLOW_OPTIONS)
                        ),
                    );
                    if meta.input.peek(syn::Token![=]) {
                        meta.value()?.parse::<Expr>()?;
                    } else if meta.input.peek(syn::token::Paren) {
                        meta.input.parse::<proc_macro2::TokenTree>()?;
                    }
                    Ok(())
                }
            }
        });
        if let Err(error) = parser.parse2(tokens) {
            errors.push(error);
        }
        attr
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    #[test]
    fn reads_the_name_and_rejects_unknown_options() {
        let mut errors = Errors::default();
        let attr = WorkflowAttr::parse(quote!(name = "orders.fulfil"), &mut errors);
        assert!(errors.finish().is_ok());
        assert_eq!(
            attr.name.map(|name| name.value()).as_deref(),
            Some("orders.fulfil")
        );

        let mut errors = Errors::default();
        let attr = WorkflowAttr::parse(quote!(nmae = "x", queue = "y"), &mut errors);
        assert!(attr.name.is_none());
        let messages: Vec<String> = errors
            .finish()
            .unwrap_err()
            .into_iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(messages.len(), 2);
        assert!(messages[0].contains("unknown `#[workflow]` option `nmae` (did you mean `name`?)"));
        assert!(messages[1].contains("option `queue`; expected one of: `name`"));
    }
}
