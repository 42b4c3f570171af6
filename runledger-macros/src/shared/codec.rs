//! The serde impls of the structs both macros generate (a job's payload, a workflow's input), and
//! the check that each of their field types is storable.
//!
//! The impls are written out rather than derived so that a field type without serde does not
//! break them: every use of a field type's serde impls goes through `__private::Serde<T>`,
//! which falls back to refusing stand-ins when `T` has none. The one error the user then sees is
//! [`storable_check`]'s, at the field's type, in `Storable`'s words.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned as _;
use syn::{Ident, Type};

/// One field of a generated struct: its identifier, its name in JSON and its type.
pub(crate) struct Field<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) name: String,
    pub(crate) ty: &'a Type,
}

/// A check, spanned at `ty`, that `ty` is `Storable`: a type without serde is reported there,
/// once.
pub(crate) fn storable_check(ty: &Type) -> TokenStream {
    quote_spanned! {ty.span()=>
        let _ = <#ty as ::runledger::__private::Storable>::to_json;
    }
}

/// `Serialize` and `Deserialize` for struct `name` with `fields`, behaving as serde's derive
/// does for a struct with named fields: a map (or a sequence) in, a map out, unknown keys
/// skipped, a duplicate key refused, a missing `Option` field `None`. `expecting` completes
/// "invalid type: ..., expected {expecting}".
pub(crate) fn serde_impls(name: &Ident, fields: &[Field<'_>], expecting: &str) -> TokenStream {
    let p = quote!(::runledger::__private);
    let count = fields.len();
    let type_name = name.to_string();
    let idents: Vec<&Ident> = fields.iter().map(|field| field.ident).collect();
    let names: Vec<&str> = fields.iter().map(|field| field.name.as_str()).collect();
    let types: Vec<&Type> = fields.iter().map(|field| field.ty).collect();
    let slots: Vec<Ident> = (0..count)
        .map(|index| format_ident!("__runledger_field_{index}"))
        .collect();
    let indices: Vec<Literal> = (0..count).map(Literal::usize_unsuffixed).collect();
    let some = quote!(::core::option::Option::Some);
    let none = quote!(::core::option::Option::None);
    let ok = quote!(::core::result::Result::Ok);
    let err = quote!(::core::result::Result::Err);
    quote! {
        impl #p::serde::Serialize for #name {
            fn serialize<__S: #p::serde::Serializer>(
                &self,
                __serializer: __S,
            ) -> ::core::result::Result<__S::Ok, __S::Error> {
                use #p::Unimplemented as _;
                use #p::serde::ser::SerializeStruct as _;
                #[allow(unused_mut)]
                let mut __state = __serializer.serialize_struct(#type_name, #count)?;
                #(__state.serialize_field(#names, <#p::Serde<#types>>::ser(&self.#idents))?;)*
                __state.end()
            }
        }

        impl<'de> #p::serde::Deserialize<'de> for #name {
            fn deserialize<__D: #p::serde::Deserializer<'de>>(
                __deserializer: __D,
            ) -> ::core::result::Result<Self, __D::Error> {
                use #p::Unimplemented as _;
                const FIELDS: &[&str] = &[#(#names),*];

                struct __Visitor;

                impl<'de> #p::serde::de::Visitor<'de> for __Visitor {
                    type Value = #name;

                    fn expecting(
                        &self,
                        __formatter: &mut ::core::fmt::Formatter<'_>,
                    ) -> ::core::fmt::Result {
                        __formatter.write_str(#expecting)
                    }

                    fn visit_map<__A: #p::serde::de::MapAccess<'de>>(
                        self,
                        mut __map: __A,
                    ) -> ::core::result::Result<#name, __A::Error> {
                        #(let mut #slots = #none;)*
                        while let #some(__field) = __map.next_key_seed(#p::FieldIndex(FIELDS))? {
                            match __field {
                                #(#some(#indices) => {
                                    if #slots.is_some() {
                                        return #err(
                                            <__A::Error as #p::serde::de::Error>::duplicate_field(#names),
                                        );
                                    }
                                    #slots = #some(
                                        __map.next_value_seed(<#p::Serde<#types>>::seed())?,
                                    );
                                })*
                                _ => {
                                    __map.next_value::<#p::serde::de::IgnoredAny>()?;
                                }
                            }
                        }
                        #ok(#name {
                            #(#idents: match #slots {
                                #some(__value) => __value,
                                #none => <#p::Serde<#types>>::missing(#names)?,
                            },)*
                        })
                    }

                    #[allow(unused_mut)]
                    fn visit_seq<__A: #p::serde::de::SeqAccess<'de>>(
                        self,
                        mut __seq: __A,
                    ) -> ::core::result::Result<#name, __A::Error> {
                        #(let #slots = match __seq.next_element_seed(<#p::Serde<#types>>::seed())? {
                            #some(__value) => __value,
                            #none => {
                                return #err(<__A::Error as #p::serde::de::Error>::invalid_length(
                                    #indices,
                                    &self,
                                ));
                            }
                        };)*
                        #ok(#name { #(#idents: #slots,)* })
                    }
                }

                __deserializer.deserialize_struct(#type_name, FIELDS, __Visitor)
            }
        }
    }
}
