//! Code generation for `#[job]`. This file only quotes: user mistakes are found and reported by
//! `attr.rs`, `ast.rs` and `validate.rs` before anything here runs.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned as _;

use crate::job::ast::{JobFn, Param, Return};
use crate::job::attr::{BackoffAttr, JobAttr};
use crate::job::validate;
use crate::shared::codec;
use crate::shared::ctxt::Errors;
use crate::shared::{attrs_named, enqueue_methods};

/// Expands `#[job(attr)] item`. On mistakes, the errors come with the function as written and
/// a stub of what `#[job]` declares (the payload struct, its `Job` impl, `enqueue`), so that the
/// code using the job does not add errors of its own: one mistake, one error.
pub(crate) fn job(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let options = JobAttr::parse(attr, &mut errors);
    let job = match JobFn::parse(item.clone()) {
        Ok(job) => job,
        Err(error) => {
            errors.push(error);
            return fallback(item, &errors, TokenStream::new());
        }
    };
    validate::job(&options, &job, &mut errors);
    if !errors.any() {
        return expand_job(&options, &job, Mode::Full);
    }
    // A generic function leaves types the stub cannot name, and a method (`self`) is inside an
    // impl, where the stub's items cannot go: the errors alone say it.
    let free = !job
        .params
        .iter()
        .any(|param| matches!(param, Param::Receiver(_)));
    let stub = if job.item.sig.generics.params.is_empty() && free {
        expand_job(&options, &job, Mode::Stub)
    } else {
        TokenStream::new()
    };
    fallback(item, &errors, stub)
}

/// What is emitted when `#[job]` finds mistakes: the item exactly as written, so that the rest
/// of the crate and the IDE still see the function, then `stub` (which carries the function
/// itself when it is given), then one `compile_error!` per mistake. The `allow` keeps "function
/// is never used" out of the way of the real errors.
fn fallback(item: TokenStream, errors: &Errors, stub: TokenStream) -> TokenStream {
    let errors = errors.to_compile_errors();
    if stub.is_empty() {
        quote! {
            #[allow(dead_code)]
            #item
            #errors
        }
    } else {
        quote! {
            #stub
            #errors
        }
    }
}

/// How much `expand_job` emits.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Everything: a valid job.
    Full,
    /// The declarations other code names (payload struct, `Job` impl, `enqueue`, the step
    /// check), with a handler that is never registered or run, and only the fields whose types
    /// are well formed: what stands in for a job with mistakes.
    Stub,
}

fn expand_job(options: &JobAttr, job: &JobFn, mode: Mode) -> TokenStream {
    let stub = mode == Mode::Stub;
    let item = &job.item;
    let fn_name = &item.sig.ident;
    let vis = &item.vis;
    let payload = &job.payload;
    let name = job.name();
    let kind = options
        .kind
        .as_ref()
        .map_or_else(|| name.clone(), |kind| kind.value.clone());
    let cfgs = attrs_named(&item.attrs, "cfg");
    let docs = attrs_named(&item.attrs, "doc");

    let summary = format!(
        " Payload of the [`{fn_name}`] job, kind `{kind}`: build it and call \
         [`enqueue`]({payload}::enqueue), or [`enqueue_tx`]({payload}::enqueue_tx) inside an open \
         transaction."
    );
    let fn_docs = if docs.is_empty() {
        quote!()
    } else {
        quote!(#[doc = ""] #(#docs)*)
    };

    let mut fields = Vec::new();
    let mut bindings = Vec::new();
    let mut state_lets = Vec::new();
    let mut requirements = Vec::new();
    let mut args = Vec::new();
    let mut checks = Vec::new();
    let mut field_names = Vec::new();
    let mut stored = Vec::new();
    let mut step_params = Vec::new();
    for (index, param) in job.params.iter().enumerate() {
        match param {
            Param::Context(_) => args.push(quote!(__runledger_ctx)),
            Param::State(state) => {
                let Some(inner) = &state.inner.as_ref().filter(|_| !stub) else {
                    continue;
                };
                let local = format_ident!("__runledger_state_{index}");
                state_lets.push(quote_spanned! {inner.span()=>
                    let #local = match __runledger_ctx.__state::<#inner>() {
                        ::core::result::Result::Ok(__runledger_state) => __runledger_state,
                        ::core::result::Result::Err(__runledger_error) => {
                            return ::core::result::Result::Err(__runledger_error);
                        }
                    };
                });
                requirements.push(quote_spanned! {inner.span()=>
                    ::runledger::__private::StateRequirement::of::<#inner>()
                });
                args.push(quote!(#local));
            }
            Param::Payload(param) => {
                let Some(ident) = &param.ident else { continue };
                let ty = &param.ty;
                if stub && !is_owned(ty) {
                    continue;
                }
                let local = format_ident!("__runledger_arg_{index}");
                let doc = format!(
                    " The `{}` argument of [`{fn_name}`].",
                    syn::ext::IdentExt::unraw(ident)
                );
                fields.push(quote! {
                    #[doc = #doc]
                    #vis #ident: #ty
                });
                bindings.push(quote!(#ident: #local));
                args.push(quote!(#local));
                checks.push(codec::storable_check(ty));
                let name = syn::ext::IdentExt::unraw(ident).to_string();
                step_params.push(quote!(#ident: #ty));
                stored.push(codec::Field {
                    ident,
                    name: name.clone(),
                    ty,
                });
                field_names.push(name);
            }
            Param::Receiver(_) => {}
        }
    }

    // The output type needs no check of its own: the bounds on `Job::Output` are reported at
    // the type in `type Output = ..`, which carries the user's span.
    let call = quote!(#fn_name(#(#args),*).await);
    let unit: syn::Type = syn::parse_quote!(());
    let (output, call_and_convert) = match &job.ret {
        // An error type that does not convert into `JobError` is reported at that type.
        Return::Result {
            output,
            error: Some(error),
            ..
        } => (
            &**output,
            quote_spanned! {error.span()=>
                ::core::result::Result::map_err(
                    #call,
                    <#error as ::core::convert::Into<::runledger::__private::JobError>>::into,
                )
            },
        ),
        Return::Result {
            ty,
            output,
            error: None,
        } => (
            &**output,
            quote_spanned! {ty.span()=>
                ::core::result::Result::map_err(
                    #call,
                    ::core::convert::Into::<::runledger::__private::JobError>::into,
                )
            },
        ),
        // Rejected by validation: the stub's output is the type written, or `()`.
        Return::Other(ty) => (ty, TokenStream::new()),
        Return::Missing => (&unit, TokenStream::new()),
    };
    let call_and_convert = if stub {
        quote!(::core::unreachable!(
            "a job with compile errors is never run"
        ))
    } else {
        call_and_convert
    };

    let aliases = options
        .aliases
        .iter()
        .flat_map(|aliases| &aliases.value)
        .map(|alias| &alias.value);
    let job_options = if stub {
        quote!(::runledger::__private::JobOptions::new())
    } else {
        job_options(options)
    };
    let unique_key = options.unique.as_ref().filter(|_| !stub).map(|unique| {
        let fields = match &unique.by {
            None => quote!(self),
            Some(by) => {
                // Validation checked that each name is a payload field.
                let by = by.value.iter().filter_map(|ident| {
                    let field = stored.iter().find(|field| field.ident == ident)?;
                    let ty = field.ty;
                    Some(quote!(<::runledger::__private::Serde<#ty>>::ser(&self.#ident)))
                });
                quote!(&(#(#by,)*))
            }
        };
        quote! {
            fn unique_key(&self) -> ::core::option::Option<::std::string::String> {
                use ::runledger::__private::Unimplemented as _;
                ::core::option::Option::Some(::runledger::__private::unique_key(
                    <Self as ::runledger::__private::Job>::KIND,
                    #fields,
                ))
            }
        }
    });
    let cron_args = cron_args(options, payload).filter(|_| !stub);
    let required_state = (!requirements.is_empty()).then(|| {
        quote! {
            fn required_state() -> ::std::vec::Vec<::runledger::__private::StateRequirement> {
                ::std::vec![#(#requirements),*]
            }
        }
    });
    // Errors about the handler's future (not `Send`, ...) point at the function's name.
    let run_output = quote_spanned! {fn_name.span()=>
        impl ::core::future::Future<
            Output = ::core::result::Result<
                <Self as ::runledger::__private::Job>::Output,
                ::runledger::__private::JobError,
            >,
        > + ::core::marker::Send
    };

    let registration = (!stub).then(|| {
        quote! {
            ::runledger::__private::inventory::submit! {
                ::runledger::__private::JobRegistration::of::<#payload>()
            }
        }
    });
    let item_allow = stub.then(|| quote!(#[allow(dead_code)]));
    let serde_impls = codec::serde_impls(payload, &stored, &format!("the payload of job `{kind}`"));
    // What a workflow step's call is checked against: the job's payload parameters, under the
    // function's name and with the user's spans, so that a wrong number or type of arguments
    // is reported against the job's own signature. Never called.
    let step_check = {
        let name = format_ident!("__runledger_step", span = fn_name.span());
        quote! {
            #[doc(hidden)]
            #[allow(clippy::too_many_arguments, unused_variables, dead_code)]
            #vis fn #name(#(#step_params),*) {}
        }
    };
    let enqueue_methods = enqueue_methods(
        vis,
        &quote!(::runledger::__private::Enqueue),
        "Enqueues this job on `client`'s pool; await the returned builder (after any per-call \
         overrides) to insert it.",
        "Enqueues this job inside the caller's open transaction; a rollback leaves nothing behind.",
    );
    // A sensitive job's payload prints as `Name { .. }`: its values stay out of logs.
    let (debug_derive, redacted_debug) = if options.sensitive.is_some() {
        let name = payload.to_string();
        (
            quote!(),
            quote! {
                #(#cfgs)*
                impl ::core::fmt::Debug for #payload {
                    fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                        f.debug_struct(#name).finish_non_exhaustive()
                    }
                }
            },
        )
    } else {
        (quote!(::core::fmt::Debug,), quote!())
    };
    quote! {
        #item_allow
        #item

        #(#cfgs)*
        #[doc = #summary]
        #fn_docs
        #[derive(#debug_derive ::core::clone::Clone)]
        #vis struct #payload {
            #(#fields,)*
        }

        #redacted_debug

        // The payload type under the function's name (types and functions live in different
        // namespaces), so that `#[workflow]` can go from a step's call to its payload.
        #(#cfgs)*
        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #vis type #fn_name = #payload;

        #(#cfgs)*
        const _: () = {
            const _: () = {
                #(#checks)*
            };

            #serde_impls

            impl ::runledger::__private::Job for #payload {
                const KIND: &'static str = #kind;
                const ALIASES: &'static [&'static str] = &[#(#aliases),*];
                const OPTIONS: ::runledger::__private::JobOptions = #job_options;
                type Output = #output;

                fn run(self, __runledger_ctx: &::runledger::__private::JobContext) -> #run_output {
                    let #payload { #(#bindings,)* } = self;
                    async move {
                        #(#state_lets)*
                        #call_and_convert
                    }
                }

                #unique_key
                #cron_args
                #required_state
            }

            impl #payload {
                #[doc(hidden)]
                pub const __RUNLEDGER_FIELDS: &'static [&'static str] = &[#(#field_names),*];

                #step_check

                #enqueue_methods
            }

            #registration
        };
    }
}

/// Whether `ty` can be a field as written: no borrows, no `impl Trait`.
fn is_owned(ty: &syn::Type) -> bool {
    let mut errors = Errors::default();
    crate::shared::check_owned(ty, "", &mut errors);
    !errors.any()
}

/// `JobOptions::new()` followed by one builder call per option given.
fn job_options(options: &JobAttr) -> TokenStream {
    let mut calls = Vec::new();
    if let Some(queue) = &options.queue {
        let queue = &queue.value;
        calls.push(quote!(.queue(#queue)));
    }
    if let Some(priority) = &options.priority {
        let magnitude = Literal::u128_unsuffixed(priority.value.unsigned_abs());
        let sign = (priority.value < 0).then(|| quote!(-));
        calls.push(quote!(.priority(#sign #magnitude)));
    }
    if let Some(max_attempts) = &options.max_attempts {
        let max_attempts = Literal::i128_unsuffixed(max_attempts.value);
        calls.push(quote!(.max_attempts(#max_attempts)));
    }
    if options.sensitive.is_some() {
        calls.push(quote!(.sensitive(true)));
    }
    if options.unique.is_some() {
        calls.push(quote!(.unique(true)));
    }
    if options.durable.is_some() {
        calls.push(quote!(.durable(true)));
    }
    if let Some(version) = &options.version {
        let version = Literal::i128_unsuffixed(version.value);
        calls.push(quote!(.version(#version)));
    }
    if let Some(resumes) = &options.resumes {
        let versions = resumes
            .value
            .iter()
            .map(|v| Literal::i128_unsuffixed(v.value));
        calls.push(quote!(.resumes(&[#(#versions),*])));
    }
    if let Some(timeout) = &options.timeout {
        let timeout = duration(timeout.value);
        calls.push(quote!(.timeout(#timeout)));
    }
    if let Some(backoff_attr) = &options.backoff {
        let backoff = backoff(backoff_attr);
        calls.push(quote!(.backoff(#backoff)));
    }
    if let Some(period) = options
        .unique
        .as_ref()
        .and_then(|unique| unique.period.as_ref())
    {
        let period = duration(period.value);
        calls.push(quote!(.unique_scope(::runledger::__private::UniqueScope::Period(#period))));
    }
    if let Some(cron) = cron_options(options) {
        calls.push(quote!(.cron(#cron)));
    }
    quote!(::runledger::__private::JobOptions::new() #(#calls)*)
}

/// `CronOptions::new(..)` with the declared time zone and missed-slot policy.
fn cron_options(options: &JobAttr) -> Option<TokenStream> {
    let expression = &options.cron.as_ref()?.value;
    let tz = options.tz.as_ref().map(|tz| {
        let tz = &tz.value;
        quote!(.timezone(#tz))
    });
    let missed = options
        .missed
        .as_ref()
        .filter(|missed| missed.value == "run_once")
        .map(|_| quote!(.missed(::runledger::__private::MissedSlots::RunOnce)));
    Some(quote!(::runledger::__private::CronOptions::new(#expression) #tz #missed))
}

/// `Job::cron_args` for a scheduled job: the `cron_args` expression (type errors point at it),
/// or the empty payload.
fn cron_args(options: &JobAttr, payload: &syn::Ident) -> Option<TokenStream> {
    options.cron.as_ref()?;
    let value = match &options.cron_args {
        Some(args) => {
            let expr = &args.value;
            quote_spanned! {args.tokens.span()=>
                {
                    let __runledger_cron_args: #payload = #expr;
                    __runledger_cron_args
                }
            }
        }
        None => quote!(#payload {}),
    };
    Some(quote! {
        fn cron_args() -> ::core::option::Option<Self> {
            ::core::option::Option::Some(#value)
        }
    })
}

fn backoff(backoff: &BackoffAttr) -> TokenStream {
    if let Some(constant) = &backoff.constant {
        let delay = duration(constant.value);
        return quote!(::runledger::__private::Backoff::constant(#delay));
    }
    // The defaults are `Backoff::exponential()`'s; only the options given are set.
    let mut calls = Vec::new();
    if let Some(base) = &backoff.base {
        let base = duration(base.value);
        calls.push(quote!(.base(#base)));
    }
    if let Some(factor) = &backoff.factor {
        let factor = Literal::f64_unsuffixed(factor.value);
        calls.push(quote!(.factor(#factor)));
    }
    if let Some(max) = &backoff.max {
        let max = duration(max.value);
        calls.push(quote!(.max(#max)));
    }
    if let Some(jitter) = &backoff.jitter {
        let jitter = Literal::f64_unsuffixed(jitter.value);
        calls.push(quote!(.jitter(#jitter)));
    }
    quote!(::runledger::__private::Backoff::exponential() #(#calls)*)
}

fn duration(millis: u64) -> TokenStream {
    let millis = Literal::u64_unsuffixed(millis);
    quote!(::core::time::Duration::from_millis(#millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(attr: TokenStream, item: TokenStream) -> String {
        let out = job(attr, item).to_string();
        assert!(!out.contains("compile_error"), "unexpected errors in {out}");
        out
    }

    fn errors(attr: TokenStream, item: TokenStream) -> Vec<String> {
        let mut errors = Errors::default();
        let options = JobAttr::parse(attr, &mut errors);
        match JobFn::parse(item) {
            Ok(job) => validate::job(&options, &job, &mut errors),
            Err(error) => errors.push(error),
        }
        match errors.finish() {
            Ok(()) => panic!("expected errors"),
            Err(error) => error.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    /// `tokens.to_string()` of `quote!` output, for comparisons that ignore spacing.
    fn norm(tokens: TokenStream) -> String {
        tokens.to_string()
    }

    #[test]
    fn expands_a_full_job() {
        let out = expand(
            quote!(
                queue = "payments",
                max_attempts = 5,
                timeout = "30s",
                priority = 10
            ),
            quote! {
                /// Charges the order's card.
                pub async fn charge_card(ctx: &JobContext, order_id: i64, cents: i64)
                    -> Result<Charge, JobError> { todo!() }
            },
        );
        assert!(
            out.starts_with("# [doc = r\" Charges the order's card.\"] pub async fn charge_card"),
            "{out}"
        );
        assert!(out.contains(&norm(quote!(
            pub struct ChargeCard {
                #[doc = " The `order_id` argument of [`charge_card`]."]
                pub order_id: i64,
                #[doc = " The `cents` argument of [`charge_card`]."]
                pub cents: i64,
            }
        ))));
        assert!(out.contains(&norm(quote!(
            const KIND: &'static str = "charge_card";
        ))));
        assert!(out.contains(&norm(quote!(
            const OPTIONS: ::runledger::__private::JobOptions =
                ::runledger::__private::JobOptions::new()
                    .queue("payments")
                    .priority(10)
                    .max_attempts(5)
                    .timeout(::core::time::Duration::from_millis(30000));
        ))));
        assert!(out.contains(&norm(quote!(
            type Output = Charge;
        ))));
        assert!(out.contains(&norm(quote!(
            let ChargeCard { order_id: __runledger_arg_1, cents: __runledger_arg_2, } = self;
        ))));
        assert!(out.contains(&norm(quote!(
            charge_card(__runledger_ctx, __runledger_arg_1, __runledger_arg_2).await
        ))));
        assert!(out.contains(&norm(quote!(
            <JobError as ::core::convert::Into<::runledger::__private::JobError>>::into
        ))));
        assert!(out.contains(&norm(
            quote!(let _ = <i64 as ::runledger::__private::Storable>::to_json;)
        )));
        // The output's bound is checked by `type Output = Charge;` itself.
        assert!(!out.contains(&norm(quote!(<Charge as ::runledger::__private::Storable>))));
        assert!(out.contains(&norm(
            quote!(pub fn enqueue(self, client: &::runledger::__private::Runledger))
        )));
        assert!(out.contains(&norm(quote!(
            ::runledger::__private::JobRegistration::of::<ChargeCard>()
        ))));
        assert!(!out.contains("unique_key"));
        assert!(!out.contains("required_state"));
    }

    #[test]
    fn expands_state_unique_and_backoff() {
        let out = expand(
            quote!(
                kind = "mail.receipt",
                aliases = ["send_receipt"],
                backoff(factor = 3, jitter = 0),
                unique(by = [email], period = "1h"),
                priority = -3,
            ),
            quote! {
                async fn send_receipt(mailer: State<Mailer>, email: String, mut url: String)
                    -> Result<(), JobError> { Ok(()) }
            },
        );
        assert!(out.contains(&norm(quote!(
            struct SendReceipt {
                #[doc = " The `email` argument of [`send_receipt`]."]
                email: String,
                #[doc = " The `url` argument of [`send_receipt`]."]
                url: String,
            }
        ))));
        assert!(out.contains(&norm(quote!(
            const KIND: &'static str = "mail.receipt";
        ))));
        assert!(out.contains(&norm(quote!(
            const ALIASES: &'static [&'static str] = &["send_receipt"];
        ))));
        assert!(out.contains(&norm(quote!(.priority(-3)))));
        assert!(out.contains(&norm(quote!(
            .backoff(::runledger::__private::Backoff::exponential().factor(3.0).jitter(0.0))
            .unique_scope(::runledger::__private::UniqueScope::Period(::core::time::Duration::from_millis(3600000)))
        ))));
        assert!(out.contains(&norm(
            quote!(let __runledger_state_0 = match __runledger_ctx.__state::<Mailer>())
        )));
        assert!(out.contains(&norm(quote!(
            send_receipt(__runledger_state_0, __runledger_arg_1, __runledger_arg_2).await
        ))));
        assert!(
            out.contains(&norm(quote!(::runledger::__private::unique_key(
                <Self as ::runledger::__private::Job>::KIND,
                &(<::runledger::__private::Serde<String>>::ser(&self.email),),
            ))))
        );
        assert!(out.contains(&norm(quote!(::std::vec![
            ::runledger::__private::StateRequirement::of::<Mailer>()
        ]))));
    }

    #[test]
    fn expands_no_payload_plain_unique_and_constant_backoff() {
        let out = expand(
            quote!(unique, backoff(constant = "5s")),
            quote!(
                async fn ping() -> Result<u8> {
                    Ok(1)
                }
            ),
        );
        assert!(out.contains(&norm(quote!(
            struct Ping {}
        ))));
        assert!(out.contains(&norm(quote!(let Ping {} = self;))));
        assert!(out.contains(&norm(quote!(ping().await))));
        assert!(out.contains(&norm(quote!(
            ::core::convert::Into::<::runledger::__private::JobError>::into
        ))));
        assert!(out.contains(&norm(quote!(
            .backoff(::runledger::__private::Backoff::constant(::core::time::Duration::from_millis(5000)))
        ))));
        assert!(!out.contains("unique_scope"));
        assert!(
            out.contains(&norm(quote!(::runledger::__private::unique_key(
                <Self as ::runledger::__private::Job>::KIND,
                self,
            ))))
        );
    }

    #[test]
    fn expands_a_cron_schedule() {
        let out = expand(
            quote!(
                cron = "0 30 1 * * *",
                tz = "Europe/London",
                missed = "run_once"
            ),
            quote!(
                async fn nightly() -> Result<(), JobError> {
                    Ok(())
                }
            ),
        );
        assert!(out.contains(&norm(quote!(
            .cron(::runledger::__private::CronOptions::new("0 30 1 * * *")
                .timezone("Europe/London")
                .missed(::runledger::__private::MissedSlots::RunOnce))
        ))));
        assert!(out.contains(&norm(quote!(
            fn cron_args() -> ::core::option::Option<Self> {
                ::core::option::Option::Some(Nightly {})
            }
        ))));
        let plain = expand(
            quote!(),
            quote!(
                async fn f() -> Result<(), JobError> {
                    Ok(())
                }
            ),
        );
        assert!(!plain.contains("cron"));
    }

    #[test]
    fn copies_cfg_to_the_generated_items() {
        let out = expand(
            quote!(),
            quote!(
                #[cfg(feature = "x")]
                async fn f() -> Result<(), JobError> {
                    Ok(())
                }
            ),
        );
        assert_eq!(out.matches("# [cfg (feature = \"x\")]").count(), 4, "{out}");
    }

    #[test]
    fn reports_attribute_and_signature_errors_together() {
        let errors = errors(
            quote!(timeout = "soon", colour = "red"),
            quote!(
                fn f(x: &str) -> Result<(), JobError> {
                    Ok(())
                }
            ),
        );
        assert_eq!(errors.len(), 4, "{errors:#?}");
        assert!(errors[0].starts_with("invalid duration \"soon\""));
        assert!(errors[1].starts_with("unknown `#[job]` option `colour`"));
        assert!(errors[2].starts_with("a `#[job]` function must be `async`"));
        assert!(errors[3].starts_with("payload parameters must be owned"));
    }

    #[test]
    fn rejects_items_that_are_not_functions() {
        let errors = errors(
            quote!(queue = "a"),
            quote!(
                struct S;
            ),
        );
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("`#[job]` goes on an `async fn`"));
    }

    #[test]
    fn fallback_keeps_the_item() {
        let out = job(
            TokenStream::new(),
            quote!(
                const C: u8 = 1;
            ),
        )
        .to_string();
        assert!(out.contains("const C : u8 = 1 ;"));
        assert!(out.contains("compile_error !"));
        assert!(!out.contains("struct"));
    }

    #[test]
    fn a_job_with_mistakes_still_declares_its_payload_but_never_registers() {
        let out = job(
            quote!(queue = "bad queue"),
            quote!(
                async fn ship(order_id: i64, label: &str) -> Result<Receipt, JobError> {
                    todo!()
                }
            ),
        )
        .to_string();
        assert!(out.contains("compile_error !"));
        assert!(out.contains(&quote!(pub struct Ship).to_string().replace("pub ", "")));
        assert!(out.contains(&quote!(order_id: i64).to_string()));
        // The borrowed field is left out of the stub rather than reported twice.
        assert!(!out.contains(&quote!(label: &str,).to_string()));
        assert!(
            out.contains(
                &quote!(
                    type Output = Receipt;
                )
                .to_string()
            )
        );
        assert!(out.contains("never run"));
        assert!(!out.contains("JobRegistration"));
        assert!(!out.contains("\"bad queue\""));
    }
}
