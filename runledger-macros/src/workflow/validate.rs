//! The rules a `#[workflow]` must follow, and the resolution of its steps into a DAG.
//!
//! Every mistake is recorded in [`Errors`] at the offending token, and resolution goes on past
//! it, so that all mistakes are reported at once and the steps that are right are still
//! resolved (the expansion keeps them, so that one mistake gives one error). A step can only
//! name steps declared above it, so cycles cannot be written.

use syn::spanned::Spanned as _;
use syn::visit::Visit;
use syn::{Expr, ExprMethodCall, Ident, Member};

use super::ast::{
    Binding, GateDecl, Input, JobCall, Statement, StepExpr, StepForm, WorkflowFn, ungroup,
};
use super::attr::WorkflowAttr;
use super::dag::{Arg, Dep, StepDef, StepWhat, WorkflowDef};
use crate::shared::ctxt::{Errors, closest, did_you_mean};
use crate::shared::{check_owned, name_rule, valid_name};

/// Checks every rule and resolves the steps; what is wrong is reported and left out.
pub(crate) fn workflow(
    attr: &WorkflowAttr,
    workflow: &WorkflowFn,
    errors: &mut Errors,
) -> WorkflowDef {
    check_signature(workflow, errors);
    check_inputs(workflow, errors);
    let name = name(attr, workflow, errors);
    let inputs: Vec<(Ident, syn::Type)> = workflow
        .fields()
        .map(|(ident, ty)| (ident.clone(), ty.clone()))
        .collect();
    let mut body = Body {
        inputs: inputs.iter().map(|(i, _)| i.to_string()).collect(),
        steps: Vec::new(),
        names: Vec::new(),
        gates: Vec::new(),
        rejected: false,
        errors,
    };
    let mut output = None;
    for stmt in &workflow.stmts {
        output = body.statement(stmt).or(output);
    }
    if body.steps.is_empty() && !body.rejected {
        body.errors.spanned(
            &workflow.item.sig.ident,
            "a workflow needs at least one step, such as `let charge = charge_card(order_id);`",
        );
    }
    WorkflowDef {
        item: workflow.item.clone(),
        name,
        input: workflow.input.clone(),
        inputs,
        steps: body.steps,
        output,
    }
}

/// The stored name: `name = ".."` when valid, the function's name otherwise.
fn name(attr: &WorkflowAttr, workflow: &WorkflowFn, errors: &mut Errors) -> String {
    let Some(name) = &attr.name else {
        return workflow.fn_name.clone();
    };
    if !valid_name(&name.value()) {
        errors.spanned(
            name,
            format!(
                "invalid workflow name \"{}\": {}",
                name.value(),
                name_rule()
            ),
        );
    }
    name.value()
}

fn check_signature(workflow: &WorkflowFn, errors: &mut Errors) {
    let sig = &workflow.item.sig;
    if let Some(asyncness) = &sig.asyncness {
        errors.spanned(
            asyncness,
            "a workflow function is a declaration of steps, not code that runs: remove `async`",
        );
    }
    if let Some(c) = &sig.constness {
        errors.spanned(c, "a workflow function cannot be `const`");
    }
    if let Some(u) = &sig.unsafety {
        errors.spanned(u, "a workflow function cannot be `unsafe`");
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.spanned(
            &sig.generics,
            "a workflow function cannot be generic: its inputs are stored as JSON and its shape \
             must be one fixed DAG; use concrete types",
        );
    }
    if let syn::ReturnType::Type(arrow, ty) = &sig.output {
        errors.push(syn::Error::new(
            arrow.span().join(ty.span()).unwrap_or_else(|| ty.span()),
            "remove the return type: a workflow's output is the output of the step named by the \
             body's tail expression",
        ));
    }
}

fn check_inputs(workflow: &WorkflowFn, errors: &mut Errors) {
    for input in &workflow.inputs {
        match input {
            Input::Field(_, ty) => check_owned(ty, "workflow inputs", errors),
            Input::Receiver(receiver) => errors.spanned(
                receiver,
                "a workflow function takes no `self`: its parameters are the workflow's inputs",
            ),
            Input::Pattern(pat) => errors.spanned(
                pat,
                "a workflow input must be a plain name, such as `order_id: u64`: it becomes a \
                 field of the input struct",
            ),
        }
    }
}

/// The steps resolved so far, and the names they can be waited for by.
struct Body<'e> {
    inputs: Vec<String>,
    steps: Vec<StepDef>,
    /// Step names, by index.
    names: Vec<String>,
    gates: Vec<String>,
    /// Whether a statement was rejected (then "no steps" is not worth saying too).
    rejected: bool,
    errors: &'e mut Errors,
}

impl Body<'_> {
    /// Resolves one statement; returns the index of the step it names when it is the tail.
    fn statement(&mut self, stmt: &Statement) -> Option<usize> {
        match stmt {
            Statement::NoValue(local) => {
                self.errors.spanned(
                    local,
                    "a step needs a value: `let name = some_job(args);` or \
                     `let name = external!(\"gate\");`",
                );
                None
            }
            Statement::Macro(mac) => {
                self.errors.spanned(
                    mac,
                    "name each gate: `let approval = external!(\"approval\");`; other macros are \
                     not allowed in a workflow body",
                );
                None
            }
            Statement::Item(item) => {
                self.errors.spanned(
                    item,
                    "items are not allowed in a workflow body: declare them outside the function",
                );
                None
            }
            Statement::Step {
                binding,
                step,
                tail,
            } => {
                if let Some(diverge) = step.diverge {
                    self.errors.push(syn::Error::new(
                        diverge,
                        "`let .. else` is not allowed in a workflow body",
                    ));
                }
                let ident = match binding {
                    Binding::Named(ident) => Some(ident.clone()),
                    Binding::Unnamed => None,
                    Binding::Typed(ty) => {
                        self.errors.spanned(
                            ty,
                            "a step name takes no type: the step's output type is its job's \
                             output type",
                        );
                        return None;
                    }
                    Binding::Pattern(pat) => {
                        self.rejected = true;
                        self.errors.spanned(
                            pat,
                            "a step is named by a plain identifier, such as `let charge = ..`",
                        );
                        return None;
                    }
                };
                let index = match &step.form {
                    StepForm::Other(expr) if *tail && step.modifiers.is_empty() => {
                        return self.tail(expr);
                    }
                    _ => self.step(ident, step),
                };
                index.filter(|_| *tail)
            }
        }
    }

    /// A tail expression that declares no step: the name of the step whose output is the
    /// workflow's, or `()`.
    fn tail(&mut self, expr: &Expr) -> Option<usize> {
        if let Expr::Path(path) = expr
            && let Some(ident) = path.path.get_ident()
        {
            if let Some(index) = self.lookup(ident) {
                return Some(index);
            }
            if self.inputs.iter().any(|i| ident == i) {
                self.errors.spanned(
                    ident,
                    format!(
                        "`{ident}` is a workflow input; the tail expression names the step whose \
                         output is the workflow's output"
                    ),
                );
                return None;
            }
        }
        match expr {
            Expr::Field(_) => self.errors.spanned(
                expr,
                "the workflow's output is a whole step's output: name the step here, or add a \
                 job that picks the field",
            ),
            Expr::Tuple(tuple) if tuple.elems.is_empty() => {}
            other => self.unsupported(other),
        }
        None
    }

    /// A step declared by `step`, named `ident` (or after its job when unnamed).
    fn step(&mut self, ident: Option<Ident>, step: &StepExpr) -> Option<usize> {
        let (what, deps) = match &step.form {
            StepForm::Job(call) => {
                let what = self.job_step(call)?;
                let deps = self.waits(&what, &step.modifiers);
                (what, deps)
            }
            StepForm::Gate(gate) => (
                self.gate_step(gate, ident.as_ref(), &step.modifiers)?,
                Vec::new(),
            ),
            StepForm::Other(expr) => {
                self.unsupported(expr);
                return None;
            }
        };
        let key_ident = match (&ident, &what) {
            (Some(ident), _) => ident.clone(),
            (None, StepWhat::Job { path, .. }) => path.segments.last()?.ident.clone(),
            (None, StepWhat::Gate { .. }) => return None,
        };
        let key = syn::ext::IdentExt::unraw(&key_ident).to_string();
        if self.names.contains(&key) {
            self.errors.spanned(
                &key_ident,
                if ident.is_some() {
                    format!("a step named `{key}` is declared above; give each step its own name")
                } else {
                    format!(
                        "a step named `{key}` is declared above; name this one: \
                         `let other_name = {key}(..);`"
                    )
                },
            );
            return None;
        }
        if self.inputs.contains(&key) {
            self.errors.spanned(
                &key_ident,
                format!("step `{key}` has the name of a workflow input; rename the step"),
            );
            self.rejected = true;
            return None;
        }
        self.names.push(key.clone());
        self.steps.push(StepDef { key, what, deps });
        Some(self.steps.len() - 1)
    }

    /// `charge_card(order_id, charge.id)`: the job's path and its arguments.
    fn job_step(&mut self, call: &JobCall) -> Option<StepWhat> {
        let Expr::Path(func) = ungroup(&call.func) else {
            self.errors.spanned(
                &call.func,
                "a step calls a `#[job]` function by name, such as `charge_card(order_id)`",
            );
            return None;
        };
        if func.qself.is_some() || func.path.segments.iter().any(|s| !s.arguments.is_none()) {
            self.errors.spanned(
                func,
                "a step calls a `#[job]` function by its plain path, without generic arguments",
            );
            return None;
        }
        let args = call.args.iter().map(|arg| self.arg(arg)).collect();
        Some(StepWhat::Job {
            path: func.path.clone(),
            call: call.span,
            parens: call.parens,
            args,
        })
    }

    /// `external!("approval")`: a gate, which must be named and waits for nothing.
    fn gate_step(
        &mut self,
        gate: &GateDecl,
        ident: Option<&Ident>,
        modifiers: &[ExprMethodCall],
    ) -> Option<StepWhat> {
        let name = match &gate.name {
            Some(lit) => {
                if !valid_name(&lit.value()) {
                    self.errors.spanned(
                        lit,
                        format!("invalid gate name \"{}\": {}", lit.value(), name_rule()),
                    );
                } else if self.gates.contains(&lit.value()) {
                    self.errors.spanned(
                        lit,
                        format!(
                            "a gate named \"{}\" is declared above; give each gate its own name",
                            lit.value()
                        ),
                    );
                }
                lit.value()
            }
            None => {
                self.errors.spanned(
                    &gate.mac,
                    "`external!` takes the gate's name as a string literal, such as \
                     `external!(\"approval\")`",
                );
                // Carry on under the step's name, so that the steps waiting for the gate do
                // not report it as unknown too.
                ident.map(ToString::to_string).unwrap_or_default()
            }
        };
        if let Some(first) = modifiers.first() {
            self.errors.spanned(
                &first.method,
                "a gate waits for nothing: it is completed from outside. Put `.after(gate)` on \
                 the steps that follow it",
            );
        }
        if ident.is_none() {
            self.errors.spanned(
                &gate.mac,
                "name the gate, so that steps can wait for it: \
                 `let approval = external!(\"approval\");`",
            );
            return None;
        }
        self.gates.push(name.clone());
        Some(StepWhat::Gate { name })
    }

    /// What a job step waits for: the steps its arguments read, then `.after` / `.after_any`.
    fn waits(&mut self, what: &StepWhat, modifiers: &[ExprMethodCall]) -> Vec<Dep> {
        let mut deps: Vec<Dep> = Vec::new();
        if let StepWhat::Job { args, .. } = what {
            for arg in args {
                if let Arg::Edge { step, .. } = arg
                    && !deps.iter().any(|d| d.step == *step)
                {
                    deps.push(Dep {
                        step: *step,
                        on_any: false,
                        data: true,
                    });
                }
            }
        }
        for call in modifiers {
            let on_any = match call.method.to_string().as_str() {
                "after" => false,
                "after_any" => true,
                method => {
                    self.errors.spanned(
                        &call.method,
                        format!(
                            "unknown step modifier `.{method}`{}; expected `.after(step)` or \
                             `.after_any(step)`",
                            closest(method, ["after", "after_any"])
                                .map(|c| format!(" (did you mean `.{c}`?)"))
                                .unwrap_or_default()
                        ),
                    );
                    continue;
                }
            };
            if call.args.is_empty() {
                self.errors.spanned(
                    call,
                    format!("`.{}` takes the names of earlier steps", call.method),
                );
            }
            for arg in &call.args {
                self.dependency(arg, on_any, &mut deps, &call.method);
            }
        }
        deps
    }

    fn dependency(&mut self, arg: &Expr, on_any: bool, deps: &mut Vec<Dep>, method: &Ident) {
        let ident = match ungroup(arg) {
            Expr::Path(path) => path.path.get_ident(),
            _ => None,
        };
        let Some(ident) = ident else {
            self.errors.spanned(
                arg,
                format!(
                    "`.{method}` takes the name of an earlier step, such as `.{method}(charge)`"
                ),
            );
            return;
        };
        let Some(step) = self.lookup(ident) else {
            let message = if self.inputs.iter().any(|i| ident == i) {
                format!(
                    "`{ident}` is a workflow input, not a step; `.{method}` takes the name of an \
                     earlier step"
                )
            } else {
                format!(
                    "`{ident}` is not a step declared before this one; `.{method}` takes the name \
                     of an earlier step (a step can only wait for steps above it, so cycles \
                     cannot be written){}",
                    did_you_mean(&ident.to_string(), self.names.iter().map(String::as_str))
                )
            };
            self.errors.spanned(ident, message);
            return;
        };
        match deps.iter_mut().find(|d| d.step == step) {
            Some(existing) if on_any && existing.data => self.errors.spanned(
                ident,
                format!(
                    "this step takes an argument from `{ident}`, so it needs `{ident}` to succeed; \
                     remove `.after_any({ident})` or the argument"
                ),
            ),
            Some(existing) if on_any != existing.on_any => self.errors.spanned(
                ident,
                format!(
                    "this step waits for `{ident}` with both `.after` and `.after_any`; keep \
                     `.after({ident})` to run only if `{ident}` succeeds, or `.after_any({ident})` \
                     to run however it ends"
                ),
            ),
            Some(_) => {}
            None => deps.push(Dep {
                step,
                on_any,
                data: false,
            }),
        }
    }

    /// One argument of a job step: a data edge, or an expression over the inputs.
    fn arg(&mut self, expr: &Expr) -> Arg {
        if let Some((root, path)) = field_path(expr)
            && let Some(step) = self.lookup(&root)
        {
            if let StepWhat::Gate { .. } = self.steps[step].what {
                self.errors.spanned(
                    expr,
                    format!(
                        "`{root}` is a gate; it carries no value. Wait for it with `.after({root})`"
                    ),
                );
                return Arg::Rejected;
            }
            return Arg::Edge {
                step,
                root,
                path,
                expr: expr.clone(),
            };
        }
        let mut rejected = false;
        let mut finder = StepMentions {
            names: &self.names,
            found: Vec::new(),
        };
        finder.visit_expr(expr);
        if !finder.found.is_empty() {
            rejected = true;
        }
        for ident in finder.found {
            self.errors.spanned(
                &ident,
                format!(
                    "the output of step `{ident}` exists only once the step has run, so it cannot \
                     be used inside an expression; pass `{ident}` or a field such as \
                     `{ident}.field` as a whole argument, and compute inside the job"
                ),
            );
        }
        if rejected {
            Arg::Rejected
        } else {
            Arg::Static(expr.clone())
        }
    }

    fn lookup(&self, ident: &Ident) -> Option<usize> {
        let name = syn::ext::IdentExt::unraw(ident).to_string();
        self.names.iter().position(|n| *n == name)
    }

    /// An expression that is no step form.
    fn unsupported(&mut self, expr: &Expr) {
        self.rejected = true;
        let control = match expr {
            Expr::If(e) => Some((e.if_token.span, "if")),
            Expr::Match(e) => Some((e.match_token.span, "match")),
            Expr::ForLoop(e) => Some((e.for_token.span, "for")),
            Expr::While(e) => Some((e.while_token.span, "while")),
            Expr::Loop(e) => Some((e.loop_token.span, "loop")),
            _ => None,
        };
        if let Some((span, keyword)) = control {
            self.errors.push(syn::Error::new(
                span,
                format!(
                    "`{keyword}` is not allowed in a workflow body: a workflow is one static DAG, \
                     checked when it compiles. Decide inside a job, or declare one workflow per \
                     shape"
                ),
            ));
        } else {
            self.errors.spanned(
                expr,
                "expected a step: a call of a `#[job]` function such as `charge_card(order_id)`, \
                 or `external!(\"gate\")`, optionally followed by `.after(step)` / \
                 `.after_any(step)`",
            );
        }
    }
}

/// `step` or `step.a.b` (named or tuple fields): the root and the path.
fn field_path(expr: &Expr) -> Option<(Ident, Vec<Member>)> {
    match ungroup(expr) {
        Expr::Path(path) if path.qself.is_none() => {
            Some((path.path.get_ident()?.clone(), Vec::new()))
        }
        Expr::Field(field) => {
            let (root, mut path) = field_path(&field.base)?;
            path.push(field.member.clone());
            Some((root, path))
        }
        Expr::Paren(paren) => field_path(&paren.expr),
        _ => None,
    }
}

/// Finds single-identifier paths that name a step.
struct StepMentions<'n> {
    names: &'n [String],
    found: Vec<Ident>,
}

impl<'ast> Visit<'ast> for StepMentions<'_> {
    fn visit_expr_path(&mut self, path: &'ast syn::ExprPath) {
        if let Some(ident) = path.path.get_ident()
            && self.names.iter().any(|n| ident == n)
        {
            self.found.push(ident.clone());
        }
    }
    fn visit_expr_closure(&mut self, _: &'ast syn::ExprClosure) {
        // A closure's parameters may shadow step names; its body is checked by rustc.
    }
    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        // Macro arguments are tokens, not expressions: look for the step names among them.
        fn scan(tokens: proc_macro2::TokenStream, names: &[String], found: &mut Vec<Ident>) {
            for token in tokens {
                match token {
                    proc_macro2::TokenTree::Ident(ident) if names.iter().any(|n| ident == n) => {
                        found.push(ident)
                    }
                    proc_macro2::TokenTree::Group(group) => scan(group.stream(), names, found),
                    _ => {}
                }
            }
        }
        scan(mac.tokens.clone(), self.names, &mut self.found);
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use proc_macro2::TokenStream;

    use super::*;
    use crate::workflow::dag::{Arg, StepWhat};

    fn parse(attr: TokenStream, item: TokenStream, errors: &mut Errors) -> Option<WorkflowDef> {
        let attr = WorkflowAttr::parse(attr, errors);
        let ast = WorkflowFn::parse(item).ok()?;
        Some(workflow(&attr, &ast, errors))
    }

    fn parse_ok(attr: TokenStream, item: TokenStream) -> WorkflowDef {
        let mut errors = Errors::default();
        let def = parse(attr, item, &mut errors);
        if let Err(e) = errors.finish() {
            panic!("unexpected errors: {e}");
        }
        def.expect("parsed")
    }

    fn parse_err(item: TokenStream) -> Vec<String> {
        let mut errors = Errors::default();
        let _ = parse(TokenStream::new(), item, &mut errors);
        match errors.finish() {
            Ok(()) => panic!("expected errors"),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn reads_the_design_example() {
        let def = parse_ok(
            quote!(name = "orders.fulfil"),
            quote! {
                fn fulfil_order(order_id: Uuid, email: String, cents: i64) {
                    let charge = charge_card(order_id, cents);
                    let stock = reserve_stock(order_id);
                    let ok = external!("approval");
                    let label = print_label(order_id, stock.warehouse).after(ok);
                    send_receipt(email, charge.receipt_url).after(label)
                }
            },
        );
        assert_eq!(def.name, "orders.fulfil");
        assert_eq!(def.input, "FulfilOrder");
        let keys: Vec<_> = def.steps.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(keys, ["charge", "stock", "ok", "label", "send_receipt"]);
        assert_eq!(def.output, Some(4));
        let label = &def.steps[3];
        let deps: Vec<_> = label.deps.iter().map(|d| (d.step, d.on_any)).collect();
        assert_eq!(deps, [(1, false), (2, false)]);
        let receipt = &def.steps[4];
        let deps: Vec<_> = receipt.deps.iter().map(|d| d.step).collect();
        assert_eq!(deps, [0, 3]);
        let StepWhat::Job { args, .. } = &receipt.what else {
            panic!("a job step")
        };
        assert!(matches!(args[0], Arg::Static(_)));
        assert!(matches!(&args[1], Arg::Edge { step: 0, path, .. } if path.len() == 1));
    }

    #[test]
    fn reports_each_mistake_at_its_token() {
        let errors = parse_err(quote! {
            async fn w(x: u64) {
                let a = job_a(x);
                let a = job_b(x);
                let c = job_c(a.n * 2);
                let d = job_d(x).after(nope).after_any(x);
                if x > 1 { job_e(x); }
                let g = external!("g").after(a);
                let h = job_h(g);
                let i = job_i(a).after_any(a);
            }
        });
        let expected = [
            "remove `async`",
            "a step named `a` is declared above",
            "the output of step `a` exists only once the step has run",
            "`nope` is not a step declared before this one",
            "`x` is a workflow input, not a step",
            "`if` is not allowed in a workflow body",
            "a gate waits for nothing",
            "`g` is a gate; it carries no value",
            "this step takes an argument from `a`",
        ];
        assert_eq!(errors.len(), expected.len(), "{errors:#?}");
        for (error, expected) in errors.iter().zip(expected) {
            assert!(
                error.contains(expected),
                "{error:?} should contain {expected:?}"
            );
        }
    }

    #[test]
    fn after_any_and_tail_forms() {
        let def = parse_ok(
            quote!(),
            quote! {
                fn w(x: u64) {
                    let a = job_a(x);
                    let b = job_b(x).after(a);
                    let cleanup = job_c().after_any(a).after_any(b);
                    b
                }
            },
        );
        assert_eq!(def.output, Some(1));
        let deps: Vec<_> = def.steps[2]
            .deps
            .iter()
            .map(|d| (d.step, d.on_any))
            .collect();
        assert_eq!(deps, [(0, true), (1, true)]);

        let def = parse_ok(
            quote!(),
            quote!(
                fn w() {
                    job_a();
                }
            ),
        );
        assert_eq!(def.output, None);
        assert_eq!(def.steps[0].key, "job_a");
    }

    #[test]
    fn finds_step_outputs_inside_macros_and_words_mixed_waits() {
        let errors = parse_err(quote! {
            fn w(x: u64) {
                let a = job_a(x);
                let b = job_b(format!("{}", a.id));
                let c = job_c(x).after(a).after_any(a);
            }
        });
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert!(errors[0].contains("the output of step `a` exists only once"));
        assert!(errors[1].contains("with both `.after` and `.after_any`"));
    }

    #[test]
    fn rejects_unknown_options() {
        let mut errors = Errors::default();
        let _ = parse(
            quote!(queue = "x"),
            quote!(
                fn w() {
                    a();
                }
            ),
            &mut errors,
        );
        let message = errors.finish().unwrap_err().to_string();
        assert!(message.contains("unknown `#[workflow]` option `queue`; expected one of: `name`"));
    }
}
