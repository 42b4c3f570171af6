//! The typed model of a `#[job]` function: its parameters classified as context, injected
//! state or payload, and its return type split into output and error type.
//!
//! Nothing is rejected here: every shape is kept, with its original tokens, so that
//! `validate.rs` can report each mistake at the token that causes it.

use crate::shared::pascal_case;
use proc_macro2::{Ident, Span, TokenStream};
use syn::ext::IdentExt as _;
use syn::{FnArg, GenericArgument, ItemFn, Pat, PathArguments, ReturnType, Token, Type};

/// A function annotated with `#[job]`.
pub(crate) struct JobFn {
    /// The function exactly as written; it is emitted unchanged.
    pub(crate) item: ItemFn,
    /// The payload struct's name: the function's name in PascalCase, spanned at the name.
    pub(crate) payload: Ident,
    /// The parameters in declaration order.
    pub(crate) params: Vec<Param>,
    /// The return type.
    pub(crate) ret: Return,
}

/// One parameter of a job function, by the role it plays.
pub(crate) enum Param {
    /// `self`, `&self`, ...: not allowed, kept for the error.
    Receiver(syn::Receiver),
    /// `ctx: &JobContext`: the attempt's context, passed by the worker.
    Context(ContextParam),
    /// `mailer: State<Mailer>`: shared state injected by the worker.
    State(StateParam),
    /// Anything else: a field of the payload struct.
    Payload(PayloadParam),
}

/// A parameter whose type names `JobContext`.
pub(crate) struct ContextParam {
    /// The type as written (`&JobContext`, `&runledger::JobContext`, ...).
    pub(crate) ty: Type,
    /// False for `JobContext` taken by value (not allowed).
    pub(crate) by_ref: bool,
    /// `Some` for `&mut JobContext` (not allowed).
    pub(crate) mutability: Option<Token![mut]>,
}

/// A parameter of type `State<T>`.
pub(crate) struct StateParam {
    /// The type as written.
    pub(crate) ty: Type,
    /// `T`; `None` unless there is exactly one type argument and nothing else.
    pub(crate) inner: Option<Type>,
}

/// A parameter that becomes a payload field.
pub(crate) struct PayloadParam {
    /// The pattern as written.
    pub(crate) pat: Pat,
    /// The field name: `Some` only for a plain `name` or `mut name` pattern.
    pub(crate) ident: Option<Ident>,
    /// The field type, as written.
    pub(crate) ty: Type,
}

/// What the function returns.
pub(crate) enum Return {
    /// No `-> ...` at all.
    Missing,
    /// `Result<T, E>` (or an alias `Result<T>` whose error type is implied).
    Result {
        /// The whole return type.
        ty: Box<Type>,
        /// `T`.
        output: Box<Type>,
        /// `E`, when written.
        error: Option<Box<Type>>,
    },
    /// Any other type.
    Other(Type),
}

impl JobFn {
    /// Parses the item `#[job]` is attached to, which must be a function.
    pub(crate) fn parse(item: TokenStream) -> syn::Result<JobFn> {
        match syn::parse2::<ItemFn>(item) {
            Ok(item) => Ok(JobFn::from_syn(item)),
            Err(_) => Err(syn::Error::new(
                Span::call_site(),
                "`#[job]` goes on an `async fn`, such as \
                 `#[job] async fn send_email(to: String) -> Result<(), JobError> { .. }`",
            )),
        }
    }

    /// Builds the model of `item`.
    pub(crate) fn from_syn(item: ItemFn) -> JobFn {
        let params = item.sig.inputs.iter().map(Param::from_syn).collect();
        let ret = Return::from_syn(&item.sig.output);
        let name = item.sig.ident.unraw().to_string();
        let payload = Ident::new(&pascal_case(&name), item.sig.ident.span());
        JobFn {
            item,
            payload,
            params,
            ret,
        }
    }

    /// The function's name without `r#`: the default job kind.
    pub(crate) fn name(&self) -> String {
        self.item.sig.ident.unraw().to_string()
    }

    /// The payload parameters, in order.
    pub(crate) fn payload_params(&self) -> impl Iterator<Item = &PayloadParam> {
        self.params.iter().filter_map(|param| match param {
            Param::Payload(payload) => Some(payload),
            _ => None,
        })
    }

    /// The `State<T>` parameters, in order.
    pub(crate) fn state_params(&self) -> impl Iterator<Item = &StateParam> {
        self.params.iter().filter_map(|param| match param {
            Param::State(state) => Some(state),
            _ => None,
        })
    }
}

impl Param {
    fn from_syn(arg: &FnArg) -> Param {
        let typed = match arg {
            FnArg::Receiver(receiver) => return Param::Receiver(receiver.clone()),
            FnArg::Typed(typed) => typed,
        };
        let ty = (*typed.ty).clone();
        match &ty {
            Type::Reference(reference) if last_segment_is(&reference.elem, "JobContext") => {
                let mutability = reference.mutability;
                return Param::Context(ContextParam {
                    ty,
                    by_ref: true,
                    mutability,
                });
            }
            _ if last_segment_is(&ty, "JobContext") => {
                return Param::Context(ContextParam {
                    ty,
                    by_ref: false,
                    mutability: None,
                });
            }
            _ if last_segment_is(&ty, "State") => {
                let inner = single_type_argument(&ty);
                return Param::State(StateParam { ty, inner });
            }
            _ => {}
        }
        let ident = match &*typed.pat {
            Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => {
                Some(pat.ident.clone())
            }
            _ => None,
        };
        Param::Payload(PayloadParam {
            pat: (*typed.pat).clone(),
            ident,
            ty,
        })
    }
}

impl Return {
    fn from_syn(output: &ReturnType) -> Return {
        let ty = match output {
            ReturnType::Default => return Return::Missing,
            ReturnType::Type(_, ty) => &**ty,
        };
        if last_segment_is(ty, "Result") {
            let mut args = type_arguments(ty).into_iter();
            if let Some(output) = args.next() {
                return Return::Result {
                    ty: Box::new(ty.clone()),
                    output: Box::new(output),
                    error: args.next().map(Box::new),
                };
            }
        }
        Return::Other(ty.clone())
    }
}

/// True for a (possibly qualified) path type whose last segment is `name`.
fn last_segment_is(ty: &Type, name: &str) -> bool {
    match ty {
        Type::Path(path) if path.qself.is_none() => path
            .path
            .segments
            .last()
            .is_some_and(|segment| segment.ident == name),
        Type::Paren(paren) => last_segment_is(&paren.elem, name),
        Type::Group(group) => last_segment_is(&group.elem, name),
        _ => false,
    }
}

/// The type arguments of a path type's last segment (`<A, B>` gives `[A, B]`).
fn type_arguments(ty: &Type) -> Vec<Type> {
    let segment = match ty {
        Type::Path(path) => path.path.segments.last(),
        Type::Paren(paren) => return type_arguments(&paren.elem),
        Type::Group(group) => return type_arguments(&group.elem),
        _ => None,
    };
    match segment.map(|segment| &segment.arguments) {
        Some(PathArguments::AngleBracketed(args)) => args
            .args
            .iter()
            .filter_map(|arg| match arg {
                GenericArgument::Type(ty) => Some(ty.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// `T` when the last segment's generic arguments are exactly `<T>`.
fn single_type_argument(ty: &Type) -> Option<Type> {
    let segment = match ty {
        Type::Path(path) => path.path.segments.last()?,
        Type::Paren(paren) => return single_type_argument(&paren.elem),
        Type::Group(group) => return single_type_argument(&group.elem),
        _ => return None,
    };
    match &segment.arguments {
        PathArguments::AngleBracketed(args) if args.args.len() == 1 => match &args.args[0] {
            GenericArgument::Type(inner) => Some(inner.clone()),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use syn::parse_quote;

    use super::*;

    fn tokens(t: &impl quote::ToTokens) -> String {
        t.to_token_stream().to_string()
    }

    #[test]
    fn classifies_parameters() {
        let job = JobFn::from_syn(parse_quote! {
            async fn charge_card(
                ctx: &JobContext,
                mailer: State<Mailer>,
                mut order_id: i64,
                db: runledger::State<Db>,
                (a, b): (i32, i32),
                email: String,
            ) -> Result<Charge, JobError> {}
        });
        assert_eq!(job.payload.to_string(), "ChargeCard");
        assert_eq!(job.name(), "charge_card");
        let kinds: Vec<&str> = job
            .params
            .iter()
            .map(|param| match param {
                Param::Receiver(_) => "receiver",
                Param::Context(_) => "context",
                Param::State(_) => "state",
                Param::Payload(_) => "payload",
            })
            .collect();
        assert_eq!(
            kinds,
            ["context", "state", "payload", "state", "payload", "payload"]
        );
        let states: Vec<_> = job
            .state_params()
            .map(|state| tokens(state.inner.as_ref().unwrap()))
            .collect();
        assert_eq!(states, ["Mailer", "Db"]);
        let payload: Vec<_> = job
            .payload_params()
            .map(|p| (p.ident.as_ref().map(ToString::to_string), tokens(&p.ty)))
            .collect();
        assert_eq!(
            payload,
            [
                (Some("order_id".into()), "i64".into()),
                (None, "(i32 , i32)".into()),
                (Some("email".into()), "String".into()),
            ]
        );
        match &job.ret {
            Return::Result { output, error, .. } => {
                assert_eq!(tokens(output), "Charge");
                assert_eq!(tokens(error.as_ref().unwrap()), "JobError");
            }
            _ => panic!("expected a Result return"),
        }
    }

    #[test]
    fn odd_contexts_and_states_are_kept_for_validation() {
        let job = JobFn::from_syn(parse_quote! {
            async fn f(self, a: &mut runledger::JobContext, b: JobContext, c: State, d: State<A, B>) {}
        });
        assert!(matches!(job.params[0], Param::Receiver(_)));
        assert!(matches!(&job.params[1], Param::Context(c) if c.by_ref && c.mutability.is_some()));
        assert!(matches!(&job.params[2], Param::Context(c) if !c.by_ref));
        assert!(matches!(&job.params[3], Param::State(s) if s.inner.is_none()));
        assert!(matches!(&job.params[4], Param::State(s) if s.inner.is_none()));
        assert!(matches!(job.ret, Return::Missing));
    }

    #[test]
    fn return_types() {
        let ret = |item: ItemFn| JobFn::from_syn(item).ret;
        assert!(matches!(
            ret(parse_quote!(
                async fn f() -> std::result::Result<(), E> {}
            )),
            Return::Result { error: Some(_), .. }
        ));
        assert!(matches!(
            ret(parse_quote!(
                async fn f() -> Result<u8> {}
            )),
            Return::Result { error: None, .. }
        ));
        assert!(matches!(
            ret(parse_quote!(
                async fn f() -> Result {}
            )),
            Return::Other(_)
        ));
        assert!(matches!(
            ret(parse_quote!(
                async fn f() -> u8 {}
            )),
            Return::Other(_)
        ));
    }

    #[test]
    fn raw_names() {
        let job = JobFn::from_syn(parse_quote!(
            async fn r#type() {}
        ));
        assert_eq!(job.name(), "type");
        assert_eq!(job.payload.to_string(), "Type");
    }
}
