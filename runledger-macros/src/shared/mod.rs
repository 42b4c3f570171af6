//! What both macros share: the error collector, the serde impls of generated structs, and
//! the small helpers for names, types and attributes.

pub(crate) mod codec;
pub(crate) mod ctxt;

use proc_macro2::TokenStream;
use quote::{ToTokens as _, quote};
use syn::visit::Visit;
use syn::{Attribute, Type};

use self::ctxt::Errors;

/// Longest accepted job kind, queue, workflow or gate name.
pub(crate) const MAX_NAME_LEN: usize = 128;

/// Job kinds and queue names: 1 to 128 characters from `[A-Za-z0-9_.:-]`.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))
}

pub(crate) fn name_rule() -> String {
    format!("use 1 to {MAX_NAME_LEN} characters from `A-Z`, `a-z`, `0-9`, `_`, `.`, `:` and `-`")
}

/// `charge_card` → `ChargeCard`: each `_`-separated word capitalised, underscores dropped. A
/// result that would start with a digit keeps one leading underscore (`_2fa` → `_2fa`).
pub(crate) fn pascal_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for word in name.split('_').filter(|word| !word.is_empty()) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// "`a`, `b`, `c`" for messages.
pub(crate) fn list<S: AsRef<str>>(names: &[S]) -> String {
    names
        .iter()
        .map(|name| format!("`{}`", name.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rejects borrowed or opaque types where an owned, `'static` type is stored.
pub(crate) fn check_owned(ty: &Type, what: &str, errors: &mut Errors) {
    struct Borrows<'e> {
        what: &'e str,
        errors: &'e mut Errors,
    }
    impl<'ast> Visit<'ast> for Borrows<'_> {
        fn visit_type_reference(&mut self, reference: &'ast syn::TypeReference) {
            let owned = match &*reference.elem {
                Type::Path(path) if path.path.is_ident("str") => "String".to_owned(),
                Type::Slice(slice) => format!("Vec<{}>", type_string(&slice.elem)),
                elem => type_string(elem),
            };
            let borrowed = type_string(&Type::Reference(reference.clone()));
            self.errors.spanned(
                reference,
                format!(
                    "{} must be owned: use `{owned}` instead of `{borrowed}`",
                    self.what
                ),
            );
        }
        fn visit_type_impl_trait(&mut self, impl_trait: &'ast syn::TypeImplTrait) {
            self.errors.spanned(
                impl_trait,
                format!(
                    "{} must be concrete types, not `impl Trait`: they are stored as JSON and \
                     read back into that type",
                    self.what
                ),
            );
        }
        fn visit_lifetime(&mut self, lifetime: &'ast syn::Lifetime) {
            if lifetime.ident != "static" {
                self.errors.spanned(
                    lifetime,
                    format!(
                        "{} must be owned: they are stored as JSON and read back, so they \
                         cannot borrow `{lifetime}`",
                        self.what
                    ),
                );
            }
        }
        fn visit_type_bare_fn(&mut self, _: &'ast syn::TypeBareFn) {
            // Function pointers do not serialize; the serde check reports them.
        }
    }
    Borrows { what, errors }.visit_type(ty);
}

/// A type as a user would write it: `Vec<u8>` rather than `Vec < u8 >`.
pub(crate) fn type_string(ty: &Type) -> String {
    compact(ty.to_token_stream())
}

pub(crate) fn compact(tokens: TokenStream) -> String {
    let text = tokens.to_string();
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ' ' {
            let prev = out.chars().last();
            let next = chars.peek().copied();
            let glue_prev = matches!(prev, Some('<' | '&' | ':' | '(' | '[' | '\''));
            let glue_next = matches!(next, Some('<' | '>' | ',' | ':' | ')' | ']' | ';'));
            if glue_prev || glue_next {
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// The typed `enqueue` and `enqueue_tx` of a job payload or a workflow input: each hands `self`
/// to `builder` (`Enqueue` or `WorkflowEnqueue`), on the pool or in the caller's transaction.
pub(crate) fn enqueue_methods(
    vis: &syn::Visibility,
    builder: &TokenStream,
    pool_doc: &str,
    tx_doc: &str,
) -> TokenStream {
    quote! {
        #[doc = #pool_doc]
        #vis fn enqueue(self, client: &::runledger::__private::Runledger) -> #builder<'_, Self> {
            #builder::new(client, self)
        }

        #[doc = #tx_doc]
        #vis fn enqueue_tx<'a>(
            self,
            client: &'a ::runledger::__private::Runledger,
            tx: &'a mut ::runledger::__private::PgConnection,
        ) -> #builder<'a, Self> {
            #builder::new_tx(client, tx, self)
        }
    }
}

/// The attributes of `attrs` named `name` (`cfg`, `doc`), to carry onto generated items.
pub(crate) fn attrs_named<'a>(attrs: &'a [Attribute], name: &str) -> Vec<&'a Attribute> {
    attrs
        .iter()
        .filter(|attr| attr.path().is_ident(name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pascal_case_conversion() {
        assert_eq!(pascal_case("charge_card"), "ChargeCard");
        assert_eq!(pascal_case("send2fa_code"), "Send2faCode");
        assert_eq!(pascal_case("a"), "A");
        assert_eq!(pascal_case("ping"), "Ping");
        assert_eq!(pascal_case("charge_card_v2"), "ChargeCardV2");
        assert_eq!(pascal_case("_private_job"), "PrivateJob");
        assert_eq!(pascal_case("double__underscore_"), "DoubleUnderscore");
        assert_eq!(pascal_case("already_Pascal"), "AlreadyPascal");
        assert_eq!(pascal_case("HTTPCall"), "HTTPCall");
        assert_eq!(pascal_case("_2fa"), "_2fa");
        assert_eq!(pascal_case("été_été"), "ÉtéÉté");
    }
}
