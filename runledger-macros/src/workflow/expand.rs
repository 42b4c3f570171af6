//! Code generation for `#[workflow]`. Only quotes: mistakes were reported by `validate.rs`.
//!
//! What rustc checks for us, at the user's tokens:
//! - each step's job exists (the job's path names its payload type, which `#[job]` declares
//!   under the function's name) and takes that many arguments;
//! - each argument known at enqueue has the parameter's type (it is passed to the payload's
//!   `__runledger_step`, which has the job's parameters and spans);
//! - each data edge names a field that exists, of the parameter's type: the same call receives
//!   a never-taken branch that reads the field from a value of the parent's output type.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::Member;

use super::dag::{Arg, StepDef, StepWhat, WorkflowDef};
use crate::shared::codec;
use crate::shared::{attrs_named, enqueue_methods};

pub(crate) fn expand(def: &WorkflowDef) -> TokenStream {
    let item = &def.item;
    let vis = &item.vis;
    let input = &def.input;
    let name = &def.name;
    let fn_name = &item.sig.ident;
    let cfgs = attrs_named(&item.attrs, "cfg");
    let docs = attrs_named(&item.attrs, "doc");

    let fields = def.inputs.iter().map(|(ident, ty)| {
        let doc = format!(
            " The `{}` input of the workflow.",
            syn::ext::IdentExt::unraw(ident)
        );
        quote!(#[doc = #doc] #vis #ident: #ty)
    });
    let serde_checks = def.inputs.iter().map(|(_, ty)| codec::storable_check(ty));
    let stored: Vec<codec::Field<'_>> = def
        .inputs
        .iter()
        .map(|(ident, ty)| codec::Field {
            ident,
            name: syn::ext::IdentExt::unraw(ident).to_string(),
            ty,
        })
        .collect();
    let serde_impls =
        codec::serde_impls(input, &stored, &format!("the input of workflow `{name}`"));
    let input_idents: Vec<_> = def.inputs.iter().map(|(ident, _)| ident).collect();
    // A job declared `unique` cannot be a step: a step is never deduplicated by a payload key
    // (the run's idempotency key does that), so the option would be silently ignored.
    let unique_checks = def.steps.iter().filter_map(|step| {
        let StepWhat::Job { path, .. } = &step.what else {
            return None;
        };
        let message = format!(
            "step `{}` runs a job declared `#[job(unique)]`, and a workflow step is never \
             deduplicated by a unique key; remove `unique` from the job (the run's \
             `idempotency_key` deduplicates runs), or enqueue the job on its own",
            step.key
        );
        let span = syn::spanned::Spanned::span(path);
        Some(quote_spanned! {span=>
            const _: () = ::core::assert!(
                !<#path as ::runledger::__private::Job>::OPTIONS.unique,
                #message
            );
        })
    });

    let shapes = def.steps.iter().map(|step| step_shape(def, step));
    let args = def
        .steps
        .iter()
        .map(|step| step_args(def, step, &input_idents));
    let (output_key, output_ty) = match def.output.map(|i| &def.steps[i]) {
        Some(step) => {
            let key = &step.key;
            let ty = match &step.what {
                StepWhat::Job { path, .. } => {
                    quote!(<#path as ::runledger::__private::Job>::Output)
                }
                StepWhat::Gate { .. } => quote!(()),
            };
            (quote!(::core::option::Option::Some(#key)), ty)
        }
        None => (quote!(::core::option::Option::None), quote!(())),
    };

    let summary = format!(
        " Input of the workflow `{name}` (declared by `{fn_name}`): build it and call \
         [`enqueue`]({input}::enqueue) to start a run, or [`enqueue_tx`]({input}::enqueue_tx) \
         inside an open transaction."
    );
    let dag = describe(def);
    let fn_docs = if docs.is_empty() {
        quote!()
    } else {
        quote!(#[doc = ""] #(#docs)*)
    };

    let enqueue_methods = enqueue_methods(
        vis,
        &quote!(::runledger::__private::WorkflowEnqueue),
        "Starts a run of this workflow on `client`'s pool; await the returned builder (after an \
         optional idempotency key) to insert it.",
        "Starts a run inside the caller's open transaction; a rollback leaves nothing behind.",
    );
    quote! {
        #(#cfgs)*
        #[doc = #summary]
        #fn_docs
        #[doc = ""]
        #[doc = #dag]
        #[derive(::core::fmt::Debug, ::core::clone::Clone)]
        #vis struct #input {
            #(#fields,)*
        }

        #(#cfgs)*
        const _: () = {
            const _: () = {
                #(#serde_checks)*
            };
            #(#unique_checks)*

            #serde_impls

            impl ::runledger::__private::Workflow for #input {
                const NAME: &'static str = #name;
                const SHAPE: ::runledger::__private::WorkflowShape = ::runledger::__private::WorkflowShape {
                    name: #name,
                    steps: &[#(#shapes),*],
                    output: #output_key,
                };
                type Output = #output_ty;

                #[allow(unused_variables, clippy::redundant_clone)]
                fn step_args(
                    &self,
                ) -> ::core::result::Result<
                    ::std::vec::Vec<
                        ::runledger::__private::serde_json::Map<
                            ::std::string::String,
                            ::runledger::__private::serde_json::Value,
                        >,
                    >,
                    ::runledger::__private::Error,
                > {
                    ::core::result::Result::Ok(::std::vec![#(#args),*])
                }
            }

            impl #input {
                #enqueue_methods
            }

            ::runledger::__private::inventory::submit! {
                ::runledger::__private::WorkflowRegistration::of::<#input>()
            }
        };
    }
}

/// The `StepShape` constant of one step.
fn step_shape(def: &WorkflowDef, step: &StepDef) -> TokenStream {
    let key = &step.key;
    let deps = step.deps.iter().map(|dep| {
        let from = &def.steps[dep.step].key;
        let on_any = dep.on_any;
        quote!(::runledger::__private::Dependency { step: #from, on_any: #on_any })
    });
    match &step.what {
        StepWhat::Job { path, args, .. } => {
            let bindings = args.iter().enumerate().filter_map(|(index, arg)| {
                let Arg::Edge {
                    step: from,
                    path: fields,
                    ..
                } = arg
                else {
                    return None;
                };
                let from = &def.steps[*from].key;
                let fields = fields.iter().map(member_name);
                Some(quote! {
                    ::runledger::__private::Binding {
                        param: ::runledger::__private::field_name(
                            <#path>::__RUNLEDGER_FIELDS,
                            #index,
                        ),
                        step: #from,
                        path: &[#(#fields),*],
                    }
                })
            });
            quote! {
                ::runledger::__private::StepShape {
                    key: #key,
                    kind: ::runledger::__private::StepKind::Job {
                        kind: <#path as ::runledger::__private::Job>::KIND,
                        options: <#path as ::runledger::__private::Job>::OPTIONS,
                    },
                    after: &[#(#deps),*],
                    bindings: &[#(#bindings),*],
                }
            }
        }
        StepWhat::Gate { name } => quote! {
            ::runledger::__private::StepShape {
                key: #key,
                kind: ::runledger::__private::StepKind::Gate { name: #name },
                after: &[#(#deps),*],
                bindings: &[],
            }
        },
    }
}

/// The expression that yields one step's arguments known at enqueue (a JSON object by
/// parameter name). Each argument known at enqueue is evaluated once into a local; a call that
/// is never made then passes every argument, these locals and the data edges alike, to the job's
/// own parameters (`__runledger_step`, which carries the job's signature and spans), so a wrong
/// count or type is reported in the job's terms and the locals take the parameters' types.
fn step_args(def: &WorkflowDef, step: &StepDef, input_idents: &[&syn::Ident]) -> TokenStream {
    let StepWhat::Job {
        path,
        call,
        parens,
        args,
    } = &step.what
    else {
        return quote!(::runledger::__private::serde_json::Map::new());
    };
    let p = quote!(::runledger::__private);
    let key = &step.key;
    let input = &def.input;
    let mut lets = Vec::new();
    let mut values = Vec::new();
    let checked = args.iter().enumerate().map(|(index, arg)| match arg {
        Arg::Rejected => quote!(#p::placeholder()),
        Arg::Static(expr) => {
            // Spanned at the expression: a type mismatch is reported there.
            let local = quote::format_ident!(
                "__runledger_arg_{index}",
                span = syn::spanned::Spanned::span(expr)
            );
            lets.push(quote! {
                let #local = #expr;
            });
            values.push(quote! {
                #p::ArgValue::new(#p::field_name(<#path>::__RUNLEDGER_FIELDS, #index), &#local)
            });
            quote!(#local)
        }
        Arg::Edge {
            step: from,
            root,
            expr,
            ..
        } => {
            let parent = match &def.steps[*from].what {
                StepWhat::Job { path, .. } => quote!(<#path as #p::Job>::Output),
                StepWhat::Gate { .. } => quote!(()),
            };
            quote_spanned! {syn::spanned::Spanned::span(expr)=>
                {
                    let #root: #parent = #p::placeholder();
                    #expr
                }
            }
        }
    });
    // The arguments go in a group with the user's parentheses' span, so that rustc's
    // suggestions (such as where to add a missing argument) land inside the user's call.
    let mut arguments =
        proc_macro2::Group::new(proc_macro2::Delimiter::Parenthesis, quote!(#(#checked),*));
    arguments.set_span(parens.join());
    let check = quote_spanned! {*call=>
        <#path>::__runledger_step #arguments
    };
    let inputs = (!lets.is_empty()).then(|| {
        quote! {
            let #input { #(#input_idents),* } = ::core::clone::Clone::clone(self);
        }
    });
    // The values are serialized before the check takes the locals: the check's call is the
    // locals' last use, and it never runs.
    quote! {
        {
            #inputs
            #(#lets)*
            let __runledger_args = [#(#values),*];
            if false {
                #check;
            }
            #p::step_args(#key, __runledger_args)?
        }
    }
}

fn member_name(member: &Member) -> String {
    match member {
        Member::Named(ident) => syn::ext::IdentExt::unraw(ident).to_string(),
        Member::Unnamed(index) => index.index.to_string(),
    }
}

/// A line per step for the input struct's docs.
fn describe(def: &WorkflowDef) -> String {
    let mut text = String::from(" Steps:\n");
    for step in &def.steps {
        let what = match &step.what {
            StepWhat::Job { path, .. } => {
                format!("job `{}`", quote!(#path).to_string().replace(' ', ""))
            }
            StepWhat::Gate { name } => format!("gate `{name}`"),
        };
        let after: Vec<String> = step
            .deps
            .iter()
            .map(|d| {
                let key = &def.steps[d.step].key;
                if d.on_any {
                    format!("`{key}` (any outcome)")
                } else {
                    format!("`{key}`")
                }
            })
            .collect();
        let after = if after.is_empty() {
            String::new()
        } else {
            format!(", after {}", after.join(", "))
        };
        text.push_str(&format!(" - `{}`: {what}{after}\n", step.key));
    }
    if let Some(output) = def.output {
        text.push_str(&format!(
            "\n The run's output is the output of `{}`.",
            def.steps[output].key
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use crate::shared::ctxt::Errors;
    use crate::workflow::ast::WorkflowFn;
    use crate::workflow::attr::WorkflowAttr;
    use crate::workflow::validate::workflow;

    fn expand(item: proc_macro2::TokenStream) -> String {
        let mut errors = Errors::default();
        let attr = WorkflowAttr::parse(quote!(name = "orders.fulfil"), &mut errors);
        let def = workflow(
            &attr,
            &WorkflowFn::parse(item).expect("a function"),
            &mut errors,
        );
        errors.finish().expect("no errors");
        super::expand(&def).to_string()
    }

    #[test]
    fn expands_shape_arguments_and_checks() {
        let out = expand(quote! {
            /// Fulfils an order.
            pub fn fulfil_order(order_id: u64, email: String) {
                let charge = charge_card(order_id);
                let ok = external!("approval");
                send_receipt(email, charge.receipt_url).after(ok)
            }
        });
        let has = |tokens: proc_macro2::TokenStream| {
            let text = tokens.to_string();
            assert!(out.contains(&text), "missing {text}\nin {out}");
        };
        has(quote!(pub struct FulfilOrder));
        has(quote!(
            const NAME: &'static str = "orders.fulfil";
        ));
        has(quote!(kind: <charge_card as ::runledger::__private::Job>::KIND));
        has(quote!(kind: ::runledger::__private::StepKind::Gate { name: "approval" }));
        has(quote!(::runledger::__private::Dependency {
            step: "charge",
            on_any: false
        }));
        has(quote!(::runledger::__private::Dependency {
            step: "ok",
            on_any: false
        }));
        has(
            quote!(param: ::runledger::__private::field_name(<send_receipt>::__RUNLEDGER_FIELDS, 1usize,)),
        );
        has(quote!(path: &["receipt_url"]));
        has(quote!(output: ::core::option::Option::Some("send_receipt")));
        has(quote!(
            type Output = <send_receipt as ::runledger::__private::Job>::Output;
        ));
        has(
            quote!(let charge: <charge_card as ::runledger::__private::Job>::Output = ::runledger::__private::placeholder();),
        );
        has(quote!(let __runledger_arg_0 = email;));
        has(quote!(<send_receipt>::__runledger_step(
            __runledger_arg_0,
            {
                let charge: <charge_card as ::runledger::__private::Job>::Output =
                    ::runledger::__private::placeholder();
                charge.receipt_url
            }
        )));
        has(quote!(::runledger::__private::ArgValue::new(
            ::runledger::__private::field_name(<send_receipt>::__RUNLEDGER_FIELDS, 0usize),
            &__runledger_arg_0
        )));
        assert!(out.contains("Fulfils an order."));
    }
}
