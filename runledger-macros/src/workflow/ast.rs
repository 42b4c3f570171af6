//! The syntactic model of a `#[workflow]` function: its inputs, and its body's statements
//! classified by the step form they declare.
//!
//! Nothing is rejected here: every shape is kept, with its original tokens, so that
//! `validate.rs` can report each mistake at the token that causes it and resolve the steps into
//! a DAG.

use proc_macro2::{Span, TokenStream};
use syn::spanned::Spanned as _;
use syn::{Expr, ExprMethodCall, FnArg, Ident, ItemFn, LitStr, Pat, Stmt, Type};

use crate::shared::pascal_case;

/// A function annotated with `#[workflow]`.
pub(crate) struct WorkflowFn {
    /// The function as written.
    pub(crate) item: ItemFn,
    /// The function's name without `r#`.
    pub(crate) fn_name: String,
    /// The input struct's name: the function's name in PascalCase, spanned at the name.
    pub(crate) input: Ident,
    /// The parameters, in order.
    pub(crate) inputs: Vec<Input>,
    /// The body's statements, in order.
    pub(crate) stmts: Vec<Statement>,
}

/// One parameter of the function.
pub(crate) enum Input {
    /// `name: Type`: a field of the input struct.
    Field(Ident, Type),
    /// Any other pattern (kept for the error).
    Pattern(Pat),
    /// `self` (kept for the error).
    Receiver(syn::Receiver),
}

/// One statement of the body.
pub(crate) enum Statement {
    /// `let name = step;`, `step;` or a tail `step`.
    Step {
        /// How the step is named.
        binding: Binding,
        step: StepExpr,
        /// The body's last statement without a semicolon.
        tail: bool,
    },
    /// `let name;` (kept for the error).
    NoValue(syn::Local),
    /// A macro in statement position (kept for the error).
    Macro(syn::StmtMacro),
    /// An item (kept for the error).
    Item(syn::Item),
}

/// The left-hand side of a step's `let`.
pub(crate) enum Binding {
    /// `let name = ..`.
    Named(Ident),
    /// No `let`.
    Unnamed,
    /// `let name: Type = ..` (kept for the error).
    Typed(Box<Type>),
    /// Any other pattern (kept for the error).
    Pattern(Pat),
}

/// A step's expression: its form and the modifiers after it.
pub(crate) struct StepExpr {
    pub(crate) form: StepForm,
    /// `.after(..)`, `.after_any(..)` or any other method call, in written order.
    pub(crate) modifiers: Vec<ExprMethodCall>,
    /// `let .. else`'s `else` (kept for the error).
    pub(crate) diverge: Option<Span>,
}

/// What a step expression declares.
pub(crate) enum StepForm {
    /// `charge_card(order_id, 100)`: a call of a `#[job]` function.
    Job(JobCall),
    /// `external!("approval")`: a gate.
    Gate(GateDecl),
    /// Anything else: a step name in tail position, `()`, or a mistake.
    Other(Expr),
}

/// A call of a `#[job]` function.
pub(crate) struct JobCall {
    /// The callee as written.
    pub(crate) func: Expr,
    /// The call expression, for spans.
    pub(crate) span: Span,
    /// The call's parentheses, for spans.
    pub(crate) parens: proc_macro2::extra::DelimSpan,
    pub(crate) args: Vec<Expr>,
}

/// `external!(..)`.
pub(crate) struct GateDecl {
    pub(crate) mac: syn::Macro,
    /// The name, when the macro's body is one string literal.
    pub(crate) name: Option<LitStr>,
}

impl WorkflowFn {
    /// Parses the item; an item that is not a function is the only error here.
    pub(crate) fn parse(item: TokenStream) -> syn::Result<WorkflowFn> {
        let item: ItemFn = syn::parse2(item).map_err(|error| {
            syn::Error::new(
                error.span(),
                "`#[workflow]` goes on a function whose body declares the steps, such as \
                 `fn fulfil(order_id: u64) { let charge = charge_card(order_id); .. }`",
            )
        })?;
        Ok(WorkflowFn::from_syn(item))
    }

    /// Classifies a parsed function.
    pub(crate) fn from_syn(item: ItemFn) -> WorkflowFn {
        let fn_name = syn::ext::IdentExt::unraw(&item.sig.ident).to_string();
        let input = Ident::new(&pascal_case(&fn_name), item.sig.ident.span());
        let inputs = item.sig.inputs.iter().map(Input::from_syn).collect();
        let count = item.block.stmts.len();
        let stmts = item
            .block
            .stmts
            .iter()
            .enumerate()
            .map(|(index, stmt)| Statement::from_syn(stmt, index + 1 == count))
            .collect();
        WorkflowFn {
            item,
            fn_name,
            input,
            inputs,
            stmts,
        }
    }

    /// The inputs that become fields.
    pub(crate) fn fields(&self) -> impl Iterator<Item = (&Ident, &Type)> {
        self.inputs.iter().filter_map(|input| match input {
            Input::Field(ident, ty) => Some((ident, ty)),
            _ => None,
        })
    }
}

impl Input {
    fn from_syn(arg: &FnArg) -> Input {
        match arg {
            FnArg::Receiver(receiver) => Input::Receiver(receiver.clone()),
            FnArg::Typed(typed) => match &*typed.pat {
                Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => {
                    Input::Field(pat.ident.clone(), (*typed.ty).clone())
                }
                pat => Input::Pattern(pat.clone()),
            },
        }
    }
}

impl Statement {
    fn from_syn(stmt: &Stmt, last: bool) -> Statement {
        match stmt {
            Stmt::Local(local) => {
                let Some(init) = &local.init else {
                    return Statement::NoValue(local.clone());
                };
                let binding = match &local.pat {
                    Pat::Ident(pat)
                        if pat.by_ref.is_none()
                            && pat.mutability.is_none()
                            && pat.subpat.is_none() =>
                    {
                        Binding::Named(pat.ident.clone())
                    }
                    Pat::Type(typed) => Binding::Typed(typed.ty.clone()),
                    pat => Binding::Pattern(pat.clone()),
                };
                let mut step = StepExpr::from_syn(&init.expr);
                step.diverge = init.diverge.as_ref().map(|(_, expr)| expr.span());
                Statement::Step {
                    binding,
                    step,
                    tail: false,
                }
            }
            Stmt::Expr(expr, semi) => Statement::Step {
                binding: Binding::Unnamed,
                step: StepExpr::from_syn(expr),
                tail: last && semi.is_none(),
            },
            Stmt::Macro(mac) => Statement::Macro(mac.clone()),
            Stmt::Item(item) => Statement::Item(item.clone()),
        }
    }
}

impl StepExpr {
    fn from_syn(expr: &Expr) -> StepExpr {
        let mut modifiers = Vec::new();
        let mut core = ungroup(expr);
        while let Expr::MethodCall(call) = core {
            modifiers.push(call.clone());
            core = ungroup(&call.receiver);
        }
        modifiers.reverse();
        let form = match core {
            Expr::Call(call) => StepForm::Job(JobCall {
                func: (*call.func).clone(),
                span: call.span(),
                parens: call.paren_token.span,
                args: call.args.iter().cloned().collect(),
            }),
            Expr::Macro(mac) if mac.mac.path.is_ident("external") => StepForm::Gate(GateDecl {
                name: mac.mac.parse_body::<LitStr>().ok(),
                mac: mac.mac.clone(),
            }),
            // A tail step name is a path; without modifiers the whole expression is kept, so
            // that the tail keeps its original form.
            other => StepForm::Other(other.clone()),
        };
        StepExpr {
            form,
            modifiers,
            diverge: None,
        }
    }
}

/// `expr` without the invisible groups that `macro_rules!` wraps `$e:expr` fragments in.
pub(crate) fn ungroup(expr: &Expr) -> &Expr {
    match expr {
        Expr::Group(group) => ungroup(&group.expr),
        _ => expr,
    }
}

#[cfg(test)]
mod tests {
    use syn::parse_quote;

    use super::*;

    #[test]
    fn classifies_inputs_statements_and_step_forms() {
        let workflow = WorkflowFn::from_syn(parse_quote! {
            fn fulfil_order(order_id: u64, (a, b): (u8, u8)) {
                let charge = charge_card(order_id).after(x);
                let ok = external!("approval");
                let n: u8 = job_n();
                notify(order_id);
                println!("hi");
                charge
            }
        });
        assert_eq!(workflow.input, "FulfilOrder");
        assert!(matches!(&workflow.inputs[0], Input::Field(ident, _) if ident == "order_id"));
        assert!(matches!(workflow.inputs[1], Input::Pattern(_)));
        assert_eq!(workflow.fields().count(), 1);
        let forms: Vec<&str> = workflow
            .stmts
            .iter()
            .map(|stmt| match stmt {
                Statement::Step {
                    binding,
                    step,
                    tail,
                } => match (binding, &step.form, tail) {
                    (Binding::Named(_), StepForm::Job(_), false) => "named job",
                    (Binding::Named(_), StepForm::Gate(gate), _) if gate.name.is_some() => "gate",
                    (Binding::Typed(_), _, _) => "typed",
                    (Binding::Unnamed, StepForm::Job(_), false) => "unnamed job",
                    (Binding::Unnamed, StepForm::Other(_), true) => "tail name",
                    _ => "other",
                },
                Statement::Macro(_) => "macro",
                _ => "other",
            })
            .collect();
        assert_eq!(
            forms,
            [
                "named job",
                "gate",
                "typed",
                "unnamed job",
                "macro",
                "tail name"
            ]
        );
        let Statement::Step { step, .. } = &workflow.stmts[0] else {
            panic!("a step")
        };
        assert_eq!(step.modifiers.len(), 1);
    }
}
