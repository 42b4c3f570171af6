//! Reads a `#[workflow]` function into a static DAG: inputs, steps, edges, bindings and output.
//! Every mistake is recorded in [`Errors`] at the offending token; parsing goes on so that all
//! of them are reported at once.

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser as _;
use syn::spanned::Spanned as _;
use syn::visit::Visit;
use syn::{Expr, FnArg, Ident, ItemFn, LitStr, Member, Pat, Stmt, Type};

use crate::shared::ctxt::Errors;
use crate::shared::list;
use crate::shared::{check_owned, name_rule, valid_name};

/// The options `#[workflow(...)]` accepts.
pub(crate) const WORKFLOW_OPTIONS: &[&str] = &["name"];

/// A parsed workflow.
pub(crate) struct WorkflowDef {
    pub(crate) item: ItemFn,
    /// The stored name (`name = "..."`, default: the function's name).
    pub(crate) name: String,
    /// The input struct's name: the function's name in PascalCase.
    pub(crate) input: Ident,
    pub(crate) inputs: Vec<(Ident, Type)>,
    pub(crate) steps: Vec<StepDef>,
    /// Index of the step whose output is the run's output.
    pub(crate) output: Option<usize>,
}

/// One step.
pub(crate) struct StepDef {
    pub(crate) key: String,
    pub(crate) what: StepWhat,
    /// Steps waited for, deduplicated, in order of first mention.
    pub(crate) deps: Vec<Dep>,
}

pub(crate) enum StepWhat {
    Job {
        /// The job function's path as written; `#[job]` makes the same path name its payload.
        path: syn::Path,
        /// The call expression, for spans.
        call: Span,
        /// The call's parentheses, for spans.
        parens: proc_macro2::extra::DelimSpan,
        args: Vec<Arg>,
    },
    Gate {
        name: String,
    },
}

pub(crate) struct Dep {
    pub(crate) step: usize,
    pub(crate) on_any: bool,
    /// Whether an argument takes this step's output.
    pub(crate) data: bool,
}

pub(crate) enum Arg {
    /// Evaluated at enqueue from the inputs.
    Static(Expr),
    /// Taken from step `step`'s output at `path` when that step completes.
    Edge {
        step: usize,
        /// The step's name as written, carrying its span.
        root: Ident,
        path: Vec<Member>,
        expr: Expr,
    },
}

/// Parses the attribute and the function, recording every mistake.
pub(crate) fn parse(
    attr: TokenStream,
    item: TokenStream,
    errors: &mut Errors,
) -> Option<WorkflowDef> {
    let name_attr = parse_attr(attr, errors);
    let item: ItemFn = match syn::parse2(item) {
        Ok(item) => item,
        Err(error) => {
            errors.push(syn::Error::new(
                error.span(),
                "`#[workflow]` goes on a function whose body declares the steps, such as \
                 `fn fulfil(order_id: u64) { let charge = charge_card(order_id); .. }`",
            ));
            return None;
        }
    };
    check_signature(&item, errors);
    let inputs = inputs(&item, errors);
    let fn_name = syn::ext::IdentExt::unraw(&item.sig.ident).to_string();
    let name = match name_attr {
        Some(name) => {
            if !valid_name(&name.value()) {
                errors.spanned(
                    &name,
                    format!(
                        "invalid workflow name \"{}\": {}",
                        name.value(),
                        name_rule()
                    ),
                );
            }
            name.value()
        }
        None => fn_name.clone(),
    };
    let input = Ident::new(&crate::shared::pascal_case(&fn_name), item.sig.ident.span());
    let mut body = Body {
        inputs: inputs.iter().map(|(i, _)| i.to_string()).collect(),
        steps: Vec::new(),
        names: Vec::new(),
        gates: Vec::new(),
        rejected: false,
        errors,
    };
    let stmts = item.block.stmts.clone();
    let mut output = None;
    let count = stmts.len();
    for (index, stmt) in stmts.iter().enumerate() {
        let is_tail = index + 1 == count;
        output = body.stmt(stmt, is_tail).or(output);
    }
    if body.steps.is_empty() && !body.rejected {
        body.errors.spanned(
            &item.sig.ident,
            "a workflow needs at least one step, such as `let charge = charge_card(order_id);`",
        );
    }
    let steps = body.steps;
    Some(WorkflowDef {
        item,
        name,
        input,
        inputs,
        steps,
        output,
    })
}

fn parse_attr(attr: TokenStream, errors: &mut Errors) -> Option<LitStr> {
    let mut name = None;
    let parser = syn::meta::parser(|meta| {
        let key = meta.path.get_ident().cloned();
        match key {
            Some(key) if key == "name" => {
                let value: LitStr = match meta.value().and_then(|v| v.parse()) {
                    Ok(value) => value,
                    Err(_) => {
                        errors.spanned(
                            &key,
                            "`name` takes a string literal, such as `name = \"orders.fulfil\"`",
                        );
                        return Ok(());
                    }
                };
                if name.is_some() {
                    errors.spanned(&key, "duplicate `#[workflow]` option `name`: give it once");
                } else {
                    name = Some(value);
                }
                Ok(())
            }
            _ => {
                let given = quote::ToTokens::to_token_stream(&meta.path)
                    .to_string()
                    .replace(' ', "");
                let hint = crate::shared::ctxt::closest(&given, WORKFLOW_OPTIONS.iter().copied())
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
    if let Err(error) = parser.parse2(attr) {
        errors.push(error);
    }
    name
}

fn check_signature(item: &ItemFn, errors: &mut Errors) {
    let sig = &item.sig;
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

fn inputs(item: &ItemFn, errors: &mut Errors) -> Vec<(Ident, Type)> {
    let mut inputs = Vec::new();
    for arg in &item.sig.inputs {
        match arg {
            FnArg::Receiver(receiver) => errors.spanned(
                receiver,
                "a workflow function takes no `self`: its parameters are the workflow's inputs",
            ),
            FnArg::Typed(typed) => match &*typed.pat {
                Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => {
                    check_owned(&typed.ty, "workflow inputs", errors);
                    inputs.push((pat.ident.clone(), (*typed.ty).clone()));
                }
                pat => errors.spanned(
                    pat,
                    "a workflow input must be a plain name, such as `order_id: u64`: it becomes \
                     a field of the input struct",
                ),
            },
        }
    }
    inputs
}

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
    /// Reads one statement; returns the index of the step it names when it is the tail.
    fn stmt(&mut self, stmt: &Stmt, is_tail: bool) -> Option<usize> {
        match stmt {
            Stmt::Local(local) => {
                let Some(init) = &local.init else {
                    self.errors.spanned(
                        local,
                        "a step needs a value: `let name = some_job(args);` or \
                         `let name = external!(\"gate\");`",
                    );
                    return None;
                };
                if let Some((_, diverge)) = &init.diverge {
                    self.errors
                        .spanned(diverge, "`let .. else` is not allowed in a workflow body");
                }
                let ident = match &local.pat {
                    Pat::Ident(pat)
                        if pat.by_ref.is_none()
                            && pat.mutability.is_none()
                            && pat.subpat.is_none() =>
                    {
                        pat.ident.clone()
                    }
                    Pat::Type(typed) => {
                        self.errors.spanned(
                            &typed.ty,
                            "a step name takes no type: the step's output type is its job's \
                             output type",
                        );
                        return None;
                    }
                    pat => {
                        self.rejected = true;
                        self.errors.spanned(
                            pat,
                            "a step is named by a plain identifier, such as `let charge = ..`",
                        );
                        return None;
                    }
                };
                self.step(Some(ident), &init.expr);
                None
            }
            Stmt::Expr(expr, semi) => {
                let index = if semi.is_none() && is_tail {
                    self.tail(expr)
                } else {
                    self.step(None, expr)
                };
                index.filter(|_| is_tail && semi.is_none())
            }
            Stmt::Macro(mac) => {
                self.errors.spanned(
                    mac,
                    "name each gate: `let approval = external!(\"approval\");`; other macros are \
                     not allowed in a workflow body",
                );
                None
            }
            Stmt::Item(item) => {
                self.errors.spanned(
                    item,
                    "items are not allowed in a workflow body: declare them outside the function",
                );
                None
            }
        }
    }

    /// The tail expression: a step name, or a step declared in place.
    fn tail(&mut self, expr: &Expr) -> Option<usize> {
        let expr = ungroup(expr);
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
        if let Expr::Field(_) = expr {
            self.errors.spanned(
                expr,
                "the workflow's output is a whole step's output: name the step here, or add a \
                 job that picks the field",
            );
            return None;
        }
        if let Expr::Tuple(tuple) = expr
            && tuple.elems.is_empty()
        {
            return None;
        }
        self.step(None, expr)
    }

    /// A step declared by `expr`, named `ident` (or after its job when unnamed).
    fn step(&mut self, ident: Option<Ident>, expr: &Expr) -> Option<usize> {
        let mut modifiers = Vec::new();
        let mut core = ungroup(expr);
        while let Expr::MethodCall(call) = core {
            modifiers.push(call);
            core = ungroup(&call.receiver);
        }
        modifiers.reverse();
        let what = match core {
            Expr::Call(call) => {
                let Expr::Path(func) = &*call.func else {
                    self.errors.spanned(
                        &call.func,
                        "a step calls a `#[job]` function by name, such as `charge_card(order_id)`",
                    );
                    return None;
                };
                if func.qself.is_some() || func.path.segments.iter().any(|s| !s.arguments.is_none())
                {
                    self.errors.spanned(
                        func,
                        "a step calls a `#[job]` function by its plain path, without generic \
                         arguments",
                    );
                    return None;
                }
                let args = call.args.iter().map(|arg| self.arg(arg)).collect();
                StepWhat::Job {
                    path: func.path.clone(),
                    call: call.span(),
                    parens: call.paren_token.span,
                    args,
                }
            }
            Expr::Macro(mac) if mac.mac.path.is_ident("external") => {
                let name = match mac.mac.parse_body::<LitStr>() {
                    Ok(lit) => {
                        if !valid_name(&lit.value()) {
                            self.errors.spanned(
                                &lit,
                                format!("invalid gate name \"{}\": {}", lit.value(), name_rule()),
                            );
                        } else if self.gates.contains(&lit.value()) {
                            self.errors.spanned(
                                &lit,
                                format!(
                                    "a gate named \"{}\" is declared above; give each gate its \
                                     own name",
                                    lit.value()
                                ),
                            );
                        }
                        lit.value()
                    }
                    Err(_) => {
                        self.errors.spanned(
                            &mac.mac,
                            "`external!` takes the gate's name as a string literal, such as \
                             `external!(\"approval\")`",
                        );
                        // Carry on under the step's name, so that the steps waiting for the
                        // gate do not report it as unknown too.
                        ident.as_ref().map(ToString::to_string).unwrap_or_default()
                    }
                };
                if let Some(first) = modifiers.first() {
                    self.errors.spanned(
                        &first.method,
                        "a gate waits for nothing: it is completed from outside. Put \
                         `.after(gate)` on the steps that follow it",
                    );
                }
                if ident.is_none() {
                    self.errors.spanned(
                        mac,
                        "name the gate, so that steps can wait for it: \
                         `let approval = external!(\"approval\");`",
                    );
                    return None;
                }
                self.gates.push(name.clone());
                StepWhat::Gate { name }
            }
            other => {
                self.report_unsupported(other);
                return None;
            }
        };

        let mut deps: Vec<Dep> = Vec::new();
        if let StepWhat::Job { args, .. } = &what {
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
        if matches!(what, StepWhat::Job { .. }) {
            for call in &modifiers {
                let on_any = match call.method.to_string().as_str() {
                    "after" => false,
                    "after_any" => true,
                    _ => {
                        self.errors.spanned(
                            &call.method,
                            format!(
                                "unknown step modifier `.{}`{}; expected `.after(step)` or \
                                 `.after_any(step)`",
                                call.method,
                                crate::shared::ctxt::closest(
                                    &call.method.to_string(),
                                    ["after", "after_any"]
                                )
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
        }

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
                    "`{ident}` is a workflow input, not a step; `.{method}` takes the name of an earlier step"
                )
            } else {
                format!(
                    "`{ident}` is not a step declared before this one; `.{method}` takes the name \
                     of an earlier step (a step can only wait for steps above it, so cycles \
                     cannot be written){}",
                    crate::shared::ctxt::did_you_mean(
                        &ident.to_string(),
                        self.names.iter().map(String::as_str)
                    )
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
            }
            return Arg::Edge {
                step,
                root,
                path,
                expr: expr.clone(),
            };
        }
        let mut finder = StepMentions {
            names: &self.names,
            found: Vec::new(),
        };
        finder.visit_expr(expr);
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
        Arg::Static(expr.clone())
    }

    fn lookup(&self, ident: &Ident) -> Option<usize> {
        let name = syn::ext::IdentExt::unraw(ident).to_string();
        self.names.iter().position(|n| *n == name)
    }

    fn report_unsupported(&mut self, expr: &Expr) {
        self.rejected = true;
        let control = match expr {
            Expr::If(e) => Some(e.if_token.span),
            Expr::Match(e) => Some(e.match_token.span),
            Expr::ForLoop(e) => Some(e.for_token.span),
            Expr::While(e) => Some(e.while_token.span),
            Expr::Loop(e) => Some(e.loop_token.span),
            _ => None,
        };
        if let Some(span) = control {
            let keyword = match expr {
                Expr::If(_) => "if",
                Expr::Match(_) => "match",
                Expr::ForLoop(_) => "for",
                Expr::While(_) => "while",
                _ => "loop",
            };
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

/// `expr` without the invisible groups that `macro_rules!` wraps `$e:expr` fragments in.
fn ungroup(expr: &Expr) -> &Expr {
    match expr {
        Expr::Group(group) => ungroup(&group.expr),
        _ => expr,
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
        fn scan(tokens: TokenStream, names: &[String], found: &mut Vec<Ident>) {
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

    use super::*;

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
