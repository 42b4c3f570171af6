//! `#[derive(Event)]`: the `runledger::durable::Event` impl of a struct, from
//! `#[event(name = "orders.packed", key = order_id)]`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput, Fields, Ident, LitStr};

/// Expands `#[derive(Event)]` on `input`.
pub(crate) fn derive(input: TokenStream) -> TokenStream {
    match expand(input) {
        Ok(tokens) => tokens,
        Err(error) => error.to_compile_error(),
    }
}

fn expand(input: TokenStream) -> syn::Result<TokenStream> {
    let input: DeriveInput = syn::parse2(input)?;
    let mut name: Option<LitStr> = None;
    let mut key: Option<Ident> = None;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("event")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("name") {
                name = Some(meta.value()?.parse()?);
                Ok(())
            } else if meta.path.is_ident("key") {
                key = Some(meta.value()?.parse()?);
                Ok(())
            } else {
                Err(meta.error(
                    "unknown `#[event]` option; expected `name = \"...\"` and `key = field`",
                ))
            }
        })?;
    }
    let ident = &input.ident;
    let Some(name) = name else {
        return Err(syn::Error::new_spanned(
            ident,
            "an event needs a name: add `#[event(name = \"orders.packed\", key = order_id)]`",
        ));
    };
    let value = name.value();
    let valid = !value.is_empty()
        && value.len() <= 128
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'));
    if !valid {
        return Err(syn::Error::new_spanned(
            &name,
            "an event name is 1 to 128 characters from `A-Z a-z 0-9 _ . : -`",
        ));
    }
    let Some(key) = key else {
        return Err(syn::Error::new_spanned(
            ident,
            "an event needs a routing key: add `key = field` to `#[event(...)]`, naming the \
             field whose value a wait is for",
        ));
    };
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            ident,
            "`#[derive(Event)]` takes a struct",
        ));
    };
    let Fields::Named(fields) = &data.fields else {
        return Err(syn::Error::new_spanned(
            ident,
            "`#[derive(Event)]` takes a struct with named fields (one is the routing key)",
        ));
    };
    if !fields.named.iter().any(|f| f.ident.as_ref() == Some(&key)) {
        let names: Vec<String> = fields
            .named
            .iter()
            .filter_map(|f| f.ident.as_ref().map(|i| format!("`{i}`")))
            .collect();
        return Err(syn::Error::new_spanned(
            &key,
            format!(
                "`{key}` is not a field of `{ident}`; the routing key is one of: {}",
                names.join(", ")
            ),
        ));
    }
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        impl #impl_generics ::runledger::durable::Event for #ident #ty_generics #where_clause {
            const NAME: &'static str = #name;
            fn key(&self) -> ::std::string::String {
                ::std::string::ToString::to_string(&self.#key)
            }
        }
    })
}
