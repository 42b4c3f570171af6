//! The rules a `#[job]` must follow: one `check_*` function per rule. Every check runs, each
//! mistake is recorded at the token that causes it, and all of them are shown together.

use quote::ToTokens as _;
use syn::visit::Visit as _;
use syn::{FnArg, Pat};

use crate::job::ast::{JobFn, Param, Return};
use crate::job::attr::{self, JobAttr, Spanned};
use crate::shared::ctxt::Errors;
use crate::shared::{check_owned, name_rule, type_string, valid_name};

/// Runs every rule on the options and the function.
pub(crate) fn job(attr: &JobAttr, job: &JobFn, errors: &mut Errors) {
    check_async(job, errors);
    check_not_const(job, errors);
    check_not_unsafe(job, errors);
    check_not_extern(job, errors);
    check_not_generic(job, errors);
    check_not_variadic(job, errors);
    check_no_receiver(job, errors);
    check_no_conditional_params(job, errors);
    check_context(job, errors);
    check_state_arguments(job, errors);
    check_payload_patterns(job, errors);
    check_payload_owned(job, errors);
    check_return_type(job, errors);
    check_payload_name(job, errors);
    check_kind(attr, job, errors);
    check_aliases(attr, job, errors);
    check_queue(attr, errors);
    check_priority(attr, errors);
    check_max_attempts(attr, errors);
    check_timeout(attr, errors);
    check_backoff(attr, errors);
    check_unique_by(attr, job, errors);
    check_unique_period(attr, errors);
    check_cron(attr, errors);
    check_missed(attr, errors);
    check_cron_options_need_cron(attr, errors);
    check_cron_args(attr, job, errors);
    check_durable(attr, job, errors);
}

/// `version` and `resumes` need `durable`; versions are positive `i32`s; a durable handler does
/// not call two journaled calls of one kind by the same literal name without `.key(..)`, nor one
/// inside a loop (each pass would record a call of the same identity).
fn check_durable(attr: &JobAttr, job: &JobFn, errors: &mut Errors) {
    if attr.durable.is_none() {
        for (given, key) in [
            (attr.version.as_ref().map(|v| &v.key), "version"),
            (attr.resumes.as_ref().map(|v| &v.key), "resumes"),
        ] {
            if let Some(given) = given {
                errors.spanned(
                    given,
                    format!(
                        "`{key}` is for durable jobs; add `durable`: `#[job(durable, {key} = ...)]`"
                    ),
                );
            }
        }
        return;
    }
    let version = attr.version.as_ref().map_or(1, |v| v.value);
    for v in attr
        .version
        .iter()
        .chain(attr.resumes.iter().flat_map(|r| r.value.iter()))
    {
        if v.value < 1 || i32::try_from(v.value).is_err() {
            errors.spanned(&v.tokens, format!("a version is from 1 to {}", i32::MAX));
        }
    }
    if let Some(resumes) = &attr.resumes {
        for v in &resumes.value {
            if v.value >= version {
                errors.spanned(
                    &v.tokens,
                    format!(
                        "`resumes` lists earlier versions than this code's (version {version}); the code always resumes its own version"
                    ),
                );
            }
        }
    }
    // Only calls on the handler's context parameter are journaled calls.
    let Some(ctx) = job
        .item
        .sig
        .inputs
        .iter()
        .zip(&job.params)
        .find_map(|(arg, param)| match (arg, param) {
            (FnArg::Typed(typed), Param::Context(_)) => match &*typed.pat {
                Pat::Ident(ident) => Some(ident.ident.to_string()),
                _ => None,
            },
            _ => None,
        })
    else {
        return;
    };
    let mut names = JournaledNames {
        ctx: &ctx,
        repeated: 0,
        keyed: false,
        seen: Vec::new(),
        errors,
    };
    names.visit_block(&job.item.block);
}

/// Journaled calls whose name is a literal: `ctx.step("a")`, `ctx.sleep("a", ..)`,
/// `ctx.sleep_until("a", ..)`, `ctx.spawn("a", ..)`.
const NAMED_CALLS: &[&str] = &["step", "sleep", "sleep_until", "spawn"];

/// Walks a durable handler's body for journaled calls named by a literal without `.key(..)`:
/// the same (kind, name) twice on one path through the code, or one inside a loop or a closure
/// (which may run more than once). The branches of an `if` or a `match` are alternatives: a name
/// may repeat across them.
struct JournaledNames<'a> {
    /// The context parameter's name: only calls on it are journaled.
    ctx: &'a str,
    /// Loops and closures around the current expression.
    repeated: u32,
    /// The current expression is the receiver of a `.key(..)` chain.
    keyed: bool,
    /// (kind, name) of the unkeyed calls seen on the current path.
    seen: Vec<(String, String)>,
    errors: &'a mut Errors,
}

impl JournaledNames<'_> {
    /// The call's kind and literal name, if it is a journaled call on the context.
    fn named_call(&self, call: &syn::ExprMethodCall) -> Option<(String, syn::LitStr)> {
        let method = call.method.to_string();
        if !NAMED_CALLS.contains(&method.as_str()) {
            return None;
        }
        let syn::Expr::Path(receiver) = &*call.receiver else {
            return None;
        };
        if !receiver.path.is_ident(self.ctx) {
            return None;
        }
        let Some(syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(name),
            ..
        })) = call.args.first()
        else {
            return None;
        };
        let kind = if method == "sleep_until" {
            "sleep".to_owned()
        } else {
            method
        };
        Some((kind, name.clone()))
    }

    fn check(&mut self, kind: String, name: &syn::LitStr) {
        if self.repeated > 0 {
            self.errors.spanned(
                name,
                format!(
                    "{kind} `{}` is inside a loop or a closure: every run of it records a call \
                     with the same identity; add `.key(..)` with what tells the runs apart (the \
                     loop variable)",
                    name.value()
                ),
            );
            return;
        }
        let call = (kind, name.value());
        if self.seen.contains(&call) {
            self.errors.spanned(
                name,
                format!(
                    "{} `{}` is called twice in this handler; give each call its own name, or \
                     tell them apart with `.key(..)`",
                    call.0, call.1
                ),
            );
        } else {
            self.seen.push(call);
        }
    }

    /// Visits `node` in a loop or a closure.
    fn in_repeated(&mut self, visit: impl FnOnce(&mut Self)) {
        self.repeated += 1;
        visit(self);
        self.repeated -= 1;
    }

    fn unkeyed(&mut self, visit: impl FnOnce(&mut Self)) {
        let keyed = std::mem::replace(&mut self.keyed, false);
        visit(self);
        self.keyed = keyed;
    }
}

/// Adds the calls of `from` not in `into`.
fn merge(into: &mut Vec<(String, String)>, from: Vec<(String, String)>) {
    for call in from {
        if !into.contains(&call) {
            into.push(call);
        }
    }
}

impl<'ast> syn::visit::Visit<'ast> for JournaledNames<'_> {
    fn visit_expr(&mut self, node: &'ast syn::Expr) {
        match node {
            // A `.key(..)` chain goes on through method calls and parentheses.
            syn::Expr::MethodCall(call) => self.visit_expr_method_call(call),
            syn::Expr::Paren(paren) => self.visit_expr(&paren.expr),
            syn::Expr::Group(group) => self.visit_expr(&group.expr),
            other => self.unkeyed(|this| syn::visit::visit_expr(this, other)),
        }
    }

    fn visit_expr_method_call(&mut self, node: &'ast syn::ExprMethodCall) {
        if let Some((kind, name)) = self.named_call(node) {
            if !self.keyed {
                self.check(kind, &name);
            }
        } else if node.method == "key" {
            let keyed = std::mem::replace(&mut self.keyed, true);
            self.visit_expr(&node.receiver);
            self.keyed = keyed;
        } else {
            self.visit_expr(&node.receiver);
        }
        self.unkeyed(|this| {
            for arg in &node.args {
                this.visit_expr(arg);
            }
        });
    }

    fn visit_expr_for_loop(&mut self, node: &'ast syn::ExprForLoop) {
        self.visit_expr(&node.expr);
        self.in_repeated(|this| this.visit_block(&node.body));
    }

    fn visit_expr_while(&mut self, node: &'ast syn::ExprWhile) {
        self.in_repeated(|this| {
            this.visit_expr(&node.cond);
            this.visit_block(&node.body);
        });
    }

    fn visit_expr_loop(&mut self, node: &'ast syn::ExprLoop) {
        self.in_repeated(|this| this.visit_block(&node.body));
    }

    fn visit_expr_closure(&mut self, node: &'ast syn::ExprClosure) {
        self.in_repeated(|this| this.visit_expr(&node.body));
    }

    /// The branches are alternatives: each starts from the names seen before the `if`;
    /// afterwards a name seen in either counts as seen.
    fn visit_expr_if(&mut self, node: &'ast syn::ExprIf) {
        self.visit_expr(&node.cond);
        let before = self.seen.clone();
        self.visit_block(&node.then_branch);
        let mut after = std::mem::replace(&mut self.seen, before);
        if let Some((_, other)) = &node.else_branch {
            self.visit_expr(other);
        }
        merge(&mut after, std::mem::take(&mut self.seen));
        self.seen = after;
    }

    /// The arms are alternatives, like the branches of an `if`.
    fn visit_expr_match(&mut self, node: &'ast syn::ExprMatch) {
        self.visit_expr(&node.expr);
        let before = self.seen.clone();
        let mut after = before.clone();
        for arm in &node.arms {
            self.seen = before.clone();
            if let Some((_, guard)) = &arm.guard {
                self.visit_expr(guard);
            }
            self.visit_expr(&arm.body);
            merge(&mut after, std::mem::take(&mut self.seen));
        }
        self.seen = after;
    }

    /// Macro arguments that parse as expressions (`tokio::join!(..)`, `vec![..]`) are walked.
    fn visit_macro(&mut self, node: &'ast syn::Macro) {
        use syn::parse::Parser;
        let parser = syn::punctuated::Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated;
        if let Ok(args) = parser.parse2(node.tokens.clone()) {
            for arg in &args {
                self.visit_expr(arg);
            }
        }
    }

    /// Items declared in the body are other functions.
    fn visit_item(&mut self, _node: &'ast syn::Item) {}
}

fn check_async(job: &JobFn, errors: &mut Errors) {
    let sig = &job.item.sig;
    if sig.asyncness.is_none() {
        errors.spanned(
            sig.fn_token,
            format!(
                "a `#[job]` function must be `async`: write `async fn {}(...)`",
                sig.ident
            ),
        );
    }
}

fn check_not_const(job: &JobFn, errors: &mut Errors) {
    if let Some(token) = &job.item.sig.constness {
        errors.spanned(token, "a `#[job]` function cannot be `const`");
    }
}

fn check_not_unsafe(job: &JobFn, errors: &mut Errors) {
    if let Some(token) = &job.item.sig.unsafety {
        errors.spanned(
            token,
            "a `#[job]` function cannot be `unsafe`: the worker calls it from safe code",
        );
    }
}

fn check_not_extern(job: &JobFn, errors: &mut Errors) {
    if let Some(abi) = &job.item.sig.abi {
        errors.spanned(abi, "a `#[job]` function cannot be `extern`");
    }
}

fn check_not_generic(job: &JobFn, errors: &mut Errors) {
    let generics = &job.item.sig.generics;
    if !generics.params.is_empty() {
        errors.spanned(
            generics,
            "a `#[job]` function cannot be generic: its payload struct and job kind must be \
             concrete; use concrete types, or one job per type",
        );
    }
    if let Some(where_clause) = &generics.where_clause {
        errors.spanned(
            where_clause,
            "a `#[job]` function cannot have a `where` clause",
        );
    }
}

fn check_not_variadic(job: &JobFn, errors: &mut Errors) {
    if let Some(variadic) = &job.item.sig.variadic {
        errors.spanned(variadic, "a `#[job]` function cannot be variadic");
    }
}

fn check_no_receiver(job: &JobFn, errors: &mut Errors) {
    for param in &job.params {
        if let Param::Receiver(receiver) = param {
            errors.spanned(
                receiver,
                "a `#[job]` must be a free function, not a method: it cannot take `self`",
            );
        }
    }
}

fn check_no_conditional_params(job: &JobFn, errors: &mut Errors) {
    for arg in &job.item.sig.inputs {
        let attrs = match arg {
            FnArg::Receiver(receiver) => &receiver.attrs,
            FnArg::Typed(typed) => &typed.attrs,
        };
        for attr in attrs {
            if attr.path().is_ident("cfg") || attr.path().is_ident("cfg_attr") {
                errors.spanned(
                    attr,
                    "conditional parameters are not supported in a `#[job]` function: the \
                     payload struct has a fixed set of fields",
                );
            }
        }
    }
}

fn check_context(job: &JobFn, errors: &mut Errors) {
    let mut seen = false;
    for param in &job.params {
        let Param::Context(context) = param else {
            continue;
        };
        if !context.by_ref {
            errors.spanned(
                &context.ty,
                "take the context by reference: `ctx: &JobContext`",
            );
        } else if let Some(token) = &context.mutability {
            errors.spanned(
                token,
                "the context is shared with the worker: take `&JobContext`, not `&mut JobContext`",
            );
        }
        if seen {
            errors.spanned(
                &context.ty,
                "a `#[job]` function takes at most one `&JobContext` parameter",
            );
        }
        seen = true;
    }
}

fn check_state_arguments(job: &JobFn, errors: &mut Errors) {
    for state in job.state_params() {
        if state.inner.is_none() {
            errors.spanned(
                &state.ty,
                "`State` takes exactly one type argument, the type of the injected value: \
                 `State<Mailer>`",
            );
        }
    }
}

fn check_payload_patterns(job: &JobFn, errors: &mut Errors) {
    for param in job.payload_params() {
        if param.ident.is_none() {
            errors.spanned(
                &param.pat,
                "payload parameters must be plain names, such as `order_id: i64`: each one \
                 becomes a field of the payload struct; destructure it inside the function",
            );
        }
    }
}

fn check_payload_owned(job: &JobFn, errors: &mut Errors) {
    for param in job.payload_params() {
        check_owned(&param.ty, "payload parameters", errors);
    }
}

fn check_return_type(job: &JobFn, errors: &mut Errors) {
    const MESSAGE: &str = "a `#[job]` function must return `Result<T, JobError>`";
    let sig = &job.item.sig;
    match &job.ret {
        Return::Missing => {
            // Span the name and the parameter list: there is no return type to point at.
            let mut tokens = sig.ident.to_token_stream();
            sig.paren_token
                .surround(&mut tokens, |tokens| sig.inputs.to_tokens(tokens));
            errors.spanned(
                tokens,
                format!("{MESSAGE}: add `-> Result<(), JobError>` (`T` is the job's output)"),
            );
        }
        Return::Other(ty) => errors.spanned(
            ty,
            format!(
                "{MESSAGE}, where `T` is the job's output; found `{}`",
                type_string(ty)
            ),
        ),
        Return::Result { output, .. } => check_owned(output, "the output of a job", errors),
    }
}

fn check_payload_name(job: &JobFn, errors: &mut Errors) {
    if job.payload == "Self" {
        errors.spanned(
            &job.item.sig.ident,
            "the payload struct would be named `Self`, which is a keyword; rename the function",
        );
    }
}

fn check_kind(attr: &JobAttr, job: &JobFn, errors: &mut Errors) {
    match &attr.kind {
        Some(kind) => check_name("job kind", kind, errors),
        None => {
            let name = job.name();
            if !valid_name(&name) {
                errors.spanned(
                    &job.item.sig.ident,
                    format!(
                        "the job kind defaults to the function name, and `{name}` is not a valid \
                         kind ({}); set one with `#[job(kind = \"...\")]`",
                        name_rule()
                    ),
                );
            }
        }
    }
}

fn check_aliases(attr: &JobAttr, job: &JobFn, errors: &mut Errors) {
    let Some(aliases) = &attr.aliases else {
        return;
    };
    let kind = attr
        .kind
        .as_ref()
        .map_or_else(|| job.name(), |kind| kind.value.clone());
    for (i, alias) in aliases.value.iter().enumerate() {
        check_name("alias", alias, errors);
        if alias.value == kind {
            errors.spanned(
                &alias.tokens,
                format!("`{kind}` is the job's own kind; aliases list its former names"),
            );
        } else if aliases.value[..i].iter().any(|a| a.value == alias.value) {
            errors.spanned(
                &alias.tokens,
                format!("alias `{}` is listed twice", alias.value),
            );
        }
    }
}

fn check_queue(attr: &JobAttr, errors: &mut Errors) {
    if let Some(queue) = &attr.queue {
        check_name("queue name", queue, errors);
    }
}

fn check_priority(attr: &JobAttr, errors: &mut Errors) {
    if let Some(priority) = &attr.priority
        && i16::try_from(priority.value).is_err()
    {
        errors.spanned(
            &priority.tokens,
            format!(
                "`priority` must be between {} and {} (larger runs first); got {}",
                i16::MIN,
                i16::MAX,
                priority.value
            ),
        );
    }
}

fn check_max_attempts(attr: &JobAttr, errors: &mut Errors) {
    if let Some(max_attempts) = &attr.max_attempts {
        if max_attempts.value < 1 {
            errors.spanned(
                &max_attempts.tokens,
                "`max_attempts` must be at least 1 (the first attempt counts)",
            );
        } else if i32::try_from(max_attempts.value).is_err() {
            errors.spanned(
                &max_attempts.tokens,
                format!("`max_attempts` must be at most {}", i32::MAX),
            );
        }
    }
}

fn check_timeout(attr: &JobAttr, errors: &mut Errors) {
    if let Some(timeout) = &attr.timeout
        && timeout.value == 0
    {
        errors.spanned(
            &timeout.tokens,
            "`timeout` must be longer than zero; leave it out for no timeout",
        );
    }
}

fn check_backoff(attr: &JobAttr, errors: &mut Errors) {
    let Some(backoff) = &attr.backoff else {
        return;
    };
    let exponential_keys = [
        backoff.base.as_ref().map(|b| &b.key),
        backoff.factor.as_ref().map(|f| &f.key),
        backoff.max.as_ref().map(|m| &m.key),
        backoff.jitter.as_ref().map(|j| &j.key),
    ];
    if backoff.constant.is_some() {
        for key in exponential_keys.into_iter().flatten() {
            errors.spanned(
                key,
                format!(
                    "`backoff(constant = ...)` waits the same delay every time and cannot be \
                     combined with `{key}`; remove one of them"
                ),
            );
        }
        return;
    }
    if exponential_keys.iter().all(Option::is_none) && !backoff.rejected {
        errors.spanned(
            &backoff.key,
            format!(
                "`backoff(...)` needs at least one of: {}; leave it out for the default \
                 (base 1s, factor 2.0, max 1h, jitter 0.25)",
                crate::shared::list(attr::BACKOFF_OPTIONS)
            ),
        );
        return;
    }
    if let Some(factor) = &backoff.factor
        && !(factor.value.is_finite() && factor.value >= 1.0)
    {
        errors.spanned(
            &factor.tokens,
            "`factor` must be at least 1.0 (1.0 keeps the delay constant)",
        );
    }
    if let Some(jitter) = &backoff.jitter
        && !(0.0..=1.0).contains(&jitter.value)
    {
        errors.spanned(
            &jitter.tokens,
            "`jitter` must be between 0.0 and 1.0: the fraction of each delay that may be \
                 randomly taken off",
        );
    }
    let base = backoff.base.as_ref().map_or(1_000, |base| base.value);
    let max = backoff.max.as_ref().map_or(3_600_000, |max| max.value);
    if max < base {
        let (tokens, message) = match (&backoff.max, &backoff.base) {
            (Some(max), _) => (
                &max.tokens,
                format!(
                    "`max` must not be shorter than `base` ({})",
                    format_millis(base)
                ),
            ),
            (None, Some(base)) => (
                &base.tokens,
                format!(
                    "`base` must not be longer than `max` ({}); raise `max` too",
                    format_millis(max)
                ),
            ),
            (None, None) => unreachable!("the defaults have base <= max"),
        };
        errors.spanned(tokens, message);
    }
}

fn check_unique_by(attr: &JobAttr, job: &JobFn, errors: &mut Errors) {
    let Some(by) = attr.unique.as_ref().and_then(|unique| unique.by.as_ref()) else {
        return;
    };
    if by.value.is_empty() {
        errors.spanned(
            &by.tokens,
            "`by` needs at least one payload parameter; write plain `unique` to make the whole \
             payload the key",
        );
        return;
    }
    let payload: Vec<String> = job
        .payload_params()
        .filter_map(|param| param.ident.as_ref().map(ToString::to_string))
        .collect();
    let fn_name = &job.item.sig.ident;
    for (i, field) in by.value.iter().enumerate() {
        if by.value[..i].contains(field) {
            errors.spanned(field, format!("`{field}` is listed twice"));
        } else if payload.iter().any(|name| field == name) {
            continue;
        } else if let Some(role) = non_payload_role(job, field) {
            errors.spanned(
                field,
                format!(
                    "`{field}` is {role}, not part of the payload; `unique(by = [...])` names \
                     payload parameters"
                ),
            );
        } else if payload.is_empty() {
            errors.spanned(
                field,
                format!(
                    "`{field}` is not a payload parameter: `{fn_name}` has none; write plain \
                     `unique` to allow one job of this kind at a time"
                ),
            );
        } else {
            errors.spanned(
                field,
                format!(
                    "`{field}` is not a payload parameter of `{fn_name}`; expected one of: {}",
                    crate::shared::list(&payload)
                ),
            );
        }
    }
}

fn check_unique_period(attr: &JobAttr, errors: &mut Errors) {
    if let Some(period) = attr
        .unique
        .as_ref()
        .and_then(|unique| unique.period.as_ref())
        && period.value == 0
    {
        errors.spanned(
            &period.tokens,
            "`period` must be longer than zero; leave it out to keep the key while a job \
                 with it is active",
        );
    }
}

/// The cron expression parses with the settings the runtime uses (5 or 6 fields, seconds
/// first, no year). Time zones are checked when the worker is built.
fn check_cron(attr: &JobAttr, errors: &mut Errors) {
    let Some(cron) = &attr.cron else { return };
    let parsed = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .year(croner::parser::Year::Disallowed)
        .build()
        .parse(&cron.value);
    if let Err(error) = parsed {
        if let Some(field) = cron_field_out_of_range(&cron.value) {
            errors.spanned(
                &cron.tokens,
                format!("invalid cron expression \"{}\": {field}", cron.value),
            );
            return;
        }
        let error = error.to_string();
        let error = error.trim_end_matches('.');
        errors.spanned(
            &cron.tokens,
            format!(
                "invalid cron expression \"{}\": {error}; write 5 fields \
                 (`min hour day month weekday`) or 6 with seconds first, such as \
                 \"0 */5 * * * *\"",
                cron.value
            ),
        );
    }
}

/// For an expression of 5 or 6 fields, the first number outside its field's range, said with
/// the field's name and range ("the minute field has 61; minutes run from 0 to 59").
fn cron_field_out_of_range(expression: &str) -> Option<String> {
    const FIELDS: [(&str, &str, u32, u32); 6] = [
        ("second", "seconds run", 0, 59),
        ("minute", "minutes run", 0, 59),
        ("hour", "hours run", 0, 23),
        ("day-of-month", "days of the month run", 1, 31),
        ("month", "months run", 1, 12),
        ("day-of-week", "days of the week run", 0, 7),
    ];
    let parts: Vec<&str> = expression.split_whitespace().collect();
    let fields = match parts.len() {
        5 => &FIELDS[1..],
        6 => &FIELDS[..],
        _ => return None,
    };
    for (part, (name, plural, low, high)) in parts.iter().zip(fields) {
        for item in part.split(',') {
            let (range, step) = item.split_once('/').unwrap_or((item, ""));
            if !step.is_empty() && step.parse::<u32>().is_ok_and(|s| s == 0) {
                return Some(format!(
                    "the {name} field has the step 0; a step is at least 1"
                ));
            }
            for bound in range.split('-') {
                if let Ok(n) = bound.parse::<u32>()
                    && (n < *low || n > *high)
                {
                    return Some(format!(
                        "the {name} field has {n}; {plural} from {low} to {high}"
                    ));
                }
            }
        }
    }
    None
}

fn check_missed(attr: &JobAttr, errors: &mut Errors) {
    if let Some(missed) = &attr.missed
        && !["skip", "run_once"].contains(&missed.value.as_str())
    {
        errors.spanned(
            &missed.tokens,
            format!(
                "unknown missed-slot policy \"{}\"; expected \"skip\" (the default: slots \
                 missed while no worker ran are dropped) or \"run_once\" (one job for them)",
                missed.value
            ),
        );
    }
}

fn check_cron_options_need_cron(attr: &JobAttr, errors: &mut Errors) {
    if attr.cron.is_some() {
        return;
    }
    let keys = [
        attr.tz.as_ref().map(|s| &s.key),
        attr.missed.as_ref().map(|s| &s.key),
        attr.cron_args.as_ref().map(|s| &s.key),
    ];
    for key in keys.into_iter().flatten() {
        errors.spanned(
            key,
            format!("`{key}` belongs to a cron schedule; add `cron = \"...\"` or remove it"),
        );
    }
}

fn check_cron_args(attr: &JobAttr, job: &JobFn, errors: &mut Errors) {
    if let Some(cron) = &attr.cron
        && attr.cron_args.is_none()
        && job.payload_params().next().is_some()
    {
        errors.spanned(
            &cron.tokens,
            format!(
                "a scheduled job with payload parameters needs the payload each slot enqueues: \
                 add `cron_args = {} {{ .. }}` (any expression of that type)",
                job.payload
            ),
        );
    }
}

/// `"the injected state"` or `"the job context"` when `name` is a non-payload parameter.
fn non_payload_role(job: &JobFn, name: &syn::Ident) -> Option<&'static str> {
    job.item
        .sig
        .inputs
        .iter()
        .zip(&job.params)
        .find_map(|(arg, param)| {
            let FnArg::Typed(typed) = arg else {
                return None;
            };
            let Pat::Ident(pat) = &*typed.pat else {
                return None;
            };
            if pat.ident != *name {
                return None;
            }
            match param {
                Param::Context(_) => Some("the job context"),
                Param::State(_) => Some("injected state"),
                _ => None,
            }
        })
}

fn check_name(what: &str, name: &Spanned<String>, errors: &mut Errors) {
    if !valid_name(&name.value) {
        errors.spanned(
            &name.tokens,
            format!("invalid {what} \"{}\": {}", name.value, name_rule()),
        );
    }
}

/// `90000` → `"90s"`: the largest unit that divides the value exactly.
fn format_millis(millis: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
    ];
    UNITS
        .iter()
        .find(|(size, _)| millis != 0 && millis.is_multiple_of(*size))
        .map_or_else(
            || format!("{millis}ms"),
            |(size, unit)| format!("{}{unit}", millis / size),
        )
}

#[cfg(test)]
mod tests {
    use proc_macro2::TokenStream;
    use quote::quote;
    use syn::parse_quote;

    use super::*;

    fn payload_names(job: &JobFn) -> Vec<String> {
        job.payload_params()
            .filter_map(|p| p.ident.as_ref().map(ToString::to_string))
            .collect()
    }

    fn check(attr: TokenStream, item: syn::ItemFn) -> Vec<String> {
        let mut errors = Errors::default();
        let attr = JobAttr::parse(attr, &mut errors);
        job(&attr, &JobFn::from_syn(item), &mut errors);
        match errors.finish() {
            Ok(()) => Vec::new(),
            Err(error) => error.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn a_good_job_passes() {
        let errors = check(
            quote!(
                queue = "payments",
                priority = -5,
                max_attempts = 5,
                timeout = "30s",
                backoff(base = "2s", max = "2s"),
                unique(by = [order_id], period = "1h")
            ),
            parse_quote! {
                /// Docs.
                pub async fn charge_card(ctx: &JobContext, db: State<Db>, mut order_id: i64, cents: i64)
                    -> Result<Charge, JobError> { todo!() }
            },
        );
        assert!(errors.is_empty(), "{errors:#?}");
    }

    #[test]
    fn signature_mistakes_are_all_reported() {
        let errors = check(
            quote!(),
            parse_quote! {
                const unsafe extern "C" fn bad<T>(self, a: &JobContext, b: &mut JobContext,
                    c: State, (x, y): (i32, i32), s: &str, v: &'a [u8], i: impl Display) -> u8
                where T: Copy { 0 }
            },
        );
        let expected = [
            "a `#[job]` function must be `async`: write `async fn bad(...)`",
            "a `#[job]` function cannot be `const`",
            "a `#[job]` function cannot be `unsafe`: the worker calls it from safe code",
            "a `#[job]` function cannot be `extern`",
            "a `#[job]` function cannot be generic: its payload struct and job kind must be \
             concrete; use concrete types, or one job per type",
            "a `#[job]` function cannot have a `where` clause",
            "a `#[job]` must be a free function, not a method: it cannot take `self`",
            "the context is shared with the worker: take `&JobContext`, not `&mut JobContext`",
            "a `#[job]` function takes at most one `&JobContext` parameter",
            "`State` takes exactly one type argument, the type of the injected value: \
             `State<Mailer>`",
            "payload parameters must be plain names, such as `order_id: i64`: each one becomes \
             a field of the payload struct; destructure it inside the function",
            "payload parameters must be owned: use `String` instead of `&str`",
            "payload parameters must be owned: use `Vec<u8>` instead of `&'a [u8]`",
            "payload parameters must be concrete types, not `impl Trait`: they are stored as \
             JSON and read back into that type",
            "a `#[job]` function must return `Result<T, JobError>`, where `T` is the job's \
             output; found `u8`",
        ];
        assert_eq!(errors, expected);
    }

    #[test]
    fn missing_return_type_and_borrowed_output() {
        assert_eq!(
            check(
                quote!(),
                parse_quote!(
                    async fn f() {}
                )
            ),
            [
                "a `#[job]` function must return `Result<T, JobError>`: add `-> Result<(), \
              JobError>` (`T` is the job's output)"
            ]
        );
        assert_eq!(
            check(
                quote!(),
                parse_quote!(
                    async fn f() -> Result<&'static str, JobError> {}
                )
            ),
            ["the output of a job must be owned: use `String` instead of `&'static str`"]
        );
        assert_eq!(
            check(
                quote!(),
                parse_quote!(
                    async fn f(x: Cow<'a, str>) -> Result<(), E> {}
                )
            ),
            [
                "payload parameters must be owned: they are stored as JSON and read back, so they \
              cannot borrow `'a`"
            ]
        );
        assert!(
            check(
                quote!(),
                parse_quote!(
                    async fn f(x: Cow<'static, str>) -> Result<()> {}
                )
            )
            .is_empty()
        );
    }

    #[test]
    fn option_values_are_checked() {
        let errors = check(
            quote!(
                kind = "a b",
                aliases = ["f", "x", "x", ""],
                queue = "",
                priority = 40000,
                max_attempts = 0,
                timeout = "0s",
                unique(period = "0s")
            ),
            parse_quote!(
                async fn f() -> Result<(), JobError> {}
            ),
        );
        assert_eq!(errors.len(), 8, "{errors:#?}");
        assert!(errors[0].starts_with("invalid job kind \"a b\": use 1 to 128 characters"));
        assert!(errors[1].starts_with("alias `x` is listed twice"));
        assert!(errors[2].starts_with("invalid alias \"\""));
        assert!(errors[3].starts_with("invalid queue name \"\""));
        assert!(errors[4].starts_with("`priority` must be between -32768 and 32767"));
        assert!(errors[5].starts_with("`max_attempts` must be at least 1"));
        assert!(errors[6].starts_with("`timeout` must be longer than zero"));
        // "f" is a valid alias because the kind was renamed to "a b".
        assert!(errors[7].starts_with("`period` must be longer than zero"));
    }

    #[test]
    fn cron_options_are_checked() {
        let item: syn::ItemFn = parse_quote! {
            async fn digest(team: String) -> Result<(), JobError> { Ok(()) }
        };
        let good = check(
            quote!(
                cron = "0 30 1 * * *",
                tz = "Europe/London",
                missed = "run_once",
                cron_args = Digest { team: "ops".into() }
            ),
            item.clone(),
        );
        assert!(good.is_empty(), "{good:#?}");
        let errors = check(quote!(cron = "0 61 * * *", missed = "later"), item.clone());
        assert_eq!(errors.len(), 3, "{errors:#?}");
        assert!(errors[0].starts_with("invalid cron expression \"0 61 * * *\""));
        assert!(errors[1].starts_with("unknown missed-slot policy \"later\""));
        assert!(errors[2].starts_with("a scheduled job with payload parameters needs"));
        let errors = check(
            quote!(tz = "UTC", cron_args = Digest { team: "x".into() }),
            item,
        );
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert!(errors[0].starts_with("`tz` belongs to a cron schedule"));
        assert!(errors[1].starts_with("`cron_args` belongs to a cron schedule"));
    }

    #[test]
    fn alias_equal_to_kind() {
        let errors = check(
            quote!(aliases = ["f"]),
            parse_quote!(
                async fn f() -> Result<(), JobError> {}
            ),
        );
        assert_eq!(
            errors,
            ["`f` is the job's own kind; aliases list its former names"]
        );
    }

    #[test]
    fn backoff_rules() {
        let item: syn::ItemFn = parse_quote!(
            async fn f() -> Result<(), JobError> {}
        );
        let errors = check(quote!(backoff(constant = "5s", factor = 2.0)), item.clone());
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(errors[0].contains("cannot be combined with `factor`"));
        let errors = check(quote!(backoff(factor = 0.5, jitter = 1.5)), item.clone());
        assert_eq!(errors.len(), 2, "{errors:#?}");
        let errors = check(quote!(backoff(max = "10ms")), item.clone());
        assert_eq!(errors, ["`max` must not be shorter than `base` (1s)"]);
        let errors = check(quote!(backoff(base = "2h")), item.clone());
        assert_eq!(
            errors,
            ["`base` must not be longer than `max` (1h); raise `max` too"]
        );
        let errors = check(quote!(backoff()), item);
        assert!(
            errors[0].starts_with("`backoff(...)` needs at least one of"),
            "{errors:#?}"
        );
    }

    #[test]
    fn unique_by_names_payload_parameters() {
        let item: syn::ItemFn = parse_quote! {
            async fn send(ctx: &JobContext, mailer: State<Mailer>, email: String, id: i64)
                -> Result<(), JobError> {}
        };
        assert_eq!(
            payload_names(&JobFn::from_syn(item.clone())),
            ["email", "id"]
        );
        let errors = check(quote!(unique(by = [emial, mailer, ctx, id, id])), item);
        assert_eq!(
            errors,
            [
                "`emial` is not a payload parameter of `send`; expected one of: `email`, `id`",
                "`mailer` is injected state, not part of the payload; `unique(by = [...])` names \
                 payload parameters",
                "`ctx` is the job context, not part of the payload; `unique(by = [...])` names \
                 payload parameters",
                "`id` is listed twice",
            ]
        );
        let errors = check(
            quote!(unique(by = [x])),
            parse_quote!(
                async fn ping() -> Result<(), JobError> {}
            ),
        );
        assert!(errors[0].starts_with("`x` is not a payload parameter: `ping` has none"));
        let errors = check(
            quote!(unique(by = [])),
            parse_quote!(
                async fn ping() -> Result<(), JobError> {}
            ),
        );
        assert!(errors[0].starts_with("`by` needs at least one payload parameter"));
    }

    #[test]
    fn default_kind_must_be_valid() {
        let errors = check(
            quote!(),
            parse_quote!(
                async fn café() -> Result<(), JobError> {}
            ),
        );
        assert!(errors[0].starts_with("the job kind defaults to the function name"));
        assert!(
            check(
                quote!(kind = "cafe"),
                parse_quote!(
                    async fn café() -> Result<(), JobError> {}
                )
            )
            .is_empty()
        );
    }

    #[test]
    fn names() {
        assert!(valid_name("orders.charge:v2-beta_1"));
        assert!(valid_name(&"a".repeat(128)));
        assert!(!valid_name(&"a".repeat(129)));
        assert!(!valid_name(""));
        assert!(!valid_name("a b"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name("é"));
    }

    #[test]
    fn helpers() {
        assert_eq!(format_millis(90_000), "90s");
        assert_eq!(format_millis(3_600_000), "1h");
        assert_eq!(format_millis(1_500), "1500ms");
        assert_eq!(format_millis(0), "0ms");
        assert_eq!(type_string(&parse_quote!(&'a [Vec<u8>])), "&'a [Vec<u8>]");
        assert_eq!(
            type_string(&parse_quote!(std::collections::HashMap<String, i64>)),
            "std::collections::HashMap<String, i64>"
        );
    }

    #[test]
    fn cron_numbers_out_of_range_name_their_field() {
        assert_eq!(
            cron_field_out_of_range("0 61 * * *").as_deref(),
            Some("the hour field has 61; hours run from 0 to 23")
        );
        assert_eq!(
            cron_field_out_of_range("61 * * * *").as_deref(),
            Some("the minute field has 61; minutes run from 0 to 59")
        );
        assert_eq!(
            cron_field_out_of_range("0 0 25 * * *").as_deref(),
            Some("the hour field has 25; hours run from 0 to 23")
        );
        assert_eq!(
            cron_field_out_of_range("0 0 0 1-32 * *").as_deref(),
            Some("the day-of-month field has 32; days of the month run from 1 to 31")
        );
        assert_eq!(
            cron_field_out_of_range("*/0 * * * *").as_deref(),
            Some("the minute field has the step 0; a step is at least 1")
        );
        assert_eq!(cron_field_out_of_range("0 */5 * * MON-FRI"), None);
        assert_eq!(cron_field_out_of_range("0 0 13 * *"), None);
    }
}
