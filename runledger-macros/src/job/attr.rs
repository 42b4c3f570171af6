//! Parsing of the `#[job(...)]` options into a [`JobAttr`].
//!
//! This stage only reads tokens: each value becomes its Rust type (a string, an integer, a
//! duration in milliseconds, a list of names) and keeps its original tokens for error spans.
//! Whether a value is allowed (a valid queue name, a priority in range, a known payload field)
//! is decided in `validate.rs`. Unknown and repeated options are reported here; parsing goes on
//! after them so that every mistake is shown at once.

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::{Expr, Ident, Lit, Token, UnOp};

use crate::shared::ctxt::Errors;
use crate::shared::list;

/// The options of `#[job(...)]`, in the order the docs list them.
pub(crate) const JOB_OPTIONS: &[&str] = &[
    "kind",
    "aliases",
    "queue",
    "priority",
    "max_attempts",
    "timeout",
    "backoff",
    "unique",
    "cron",
    "tz",
    "missed",
    "cron_args",
    "sensitive",
    "durable",
    "version",
    "resumes",
];

/// The keys of `backoff(...)`.
pub(crate) const BACKOFF_OPTIONS: &[&str] = &["base", "factor", "max", "jitter", "constant"];

/// The keys of `unique(...)`.
pub(crate) const UNIQUE_OPTIONS: &[&str] = &["by", "period"];

/// A value read from the attribute, with the key it was given for and the tokens it came from.
#[derive(Debug, Clone)]
pub(crate) struct Spanned<T> {
    /// The option's key (`queue` in `queue = "payments"`).
    pub(crate) key: Ident,
    /// The parsed value.
    pub(crate) value: T,
    /// The value's tokens as written, for errors spanned over the whole value.
    pub(crate) tokens: TokenStream,
}

/// Every option given to `#[job(...)]`; `None` where the option was left out.
#[derive(Debug, Default)]
pub(crate) struct JobAttr {
    /// `kind = "..."`: the stable name stored with each job.
    pub(crate) kind: Option<Spanned<String>>,
    /// `aliases = ["...", ...]`: former kinds still accepted.
    pub(crate) aliases: Option<Spanned<Vec<Spanned<String>>>>,
    /// `queue = "..."`.
    pub(crate) queue: Option<Spanned<String>>,
    /// `priority = N` (range checked in `validate.rs`).
    pub(crate) priority: Option<Spanned<i128>>,
    /// `max_attempts = N` (range checked in `validate.rs`).
    pub(crate) max_attempts: Option<Spanned<i128>>,
    /// `timeout = "30s"`, in milliseconds.
    pub(crate) timeout: Option<Spanned<u64>>,
    /// `backoff(...)`.
    pub(crate) backoff: Option<BackoffAttr>,
    /// `unique` / `unique(...)`.
    pub(crate) unique: Option<UniqueAttr>,
    /// `cron = "0 */5 * * * *"`: the declared schedule (checked in `validate.rs`).
    pub(crate) cron: Option<Spanned<String>>,
    /// `tz = "Europe/London"`: the schedule's IANA time zone.
    pub(crate) tz: Option<Spanned<String>>,
    /// `missed = "skip"` or `"run_once"`: the missed-slot policy.
    pub(crate) missed: Option<Spanned<String>>,
    /// `cron_args = <expr>`: the payload each slot enqueues.
    pub(crate) cron_args: Option<Spanned<Expr>>,
    /// `sensitive`: payloads and outputs are kept out of `Debug`, logs and error texts.
    pub(crate) sensitive: Option<Spanned<bool>>,
    /// `durable`: the handler's journaled calls are recorded and replayed.
    pub(crate) durable: Option<Spanned<bool>>,
    /// `version = N`: the durable code's version.
    pub(crate) version: Option<Spanned<i128>>,
    /// `resumes = [1, 2]`: earlier versions this code resumes.
    pub(crate) resumes: Option<Spanned<Vec<Spanned<i128>>>>,
}

/// `backoff(base = "1s", factor = 2.0, max = "1h", jitter = 0.25)` or `backoff(constant = "5s")`.
#[derive(Debug, Clone)]
pub(crate) struct BackoffAttr {
    /// The `backoff` key itself.
    pub(crate) key: Ident,
    /// `base = "1s"`, in milliseconds.
    pub(crate) base: Option<Spanned<u64>>,
    /// `factor = 2.0`.
    pub(crate) factor: Option<Spanned<f64>>,
    /// `max = "1h"`, in milliseconds.
    pub(crate) max: Option<Spanned<u64>>,
    /// `jitter = 0.25`.
    pub(crate) jitter: Option<Spanned<f64>>,
    /// `constant = "5s"`, in milliseconds.
    pub(crate) constant: Option<Spanned<u64>>,
    /// An unknown key was given (and reported): the rest of the checks stay quiet.
    pub(crate) rejected: bool,
}

/// `unique`, `unique(by = [a, b])`, `unique(period = "1h")` or both keys.
#[derive(Debug, Clone)]
pub(crate) struct UniqueAttr {
    /// `by = [a, b]`: the payload fields the key is made of; `None` means the whole payload.
    pub(crate) by: Option<Spanned<Vec<Ident>>>,
    /// `period = "1h"`, in milliseconds; `None` means while a job with the key is active.
    pub(crate) period: Option<Spanned<u64>>,
}

impl JobAttr {
    /// Parses the tokens inside `#[job(...)]`, recording every mistake in `errors`.
    pub(crate) fn parse(tokens: TokenStream, errors: &mut Errors) -> JobAttr {
        let mut attr = JobAttr::default();
        let parser = syn::meta::parser(|meta| attr.parse_option(&meta, errors));
        if let Err(error) = parser.parse2(tokens) {
            errors.push(error);
        }
        attr
    }

    fn parse_option(&mut self, meta: &ParseNestedMeta<'_>, errors: &mut Errors) -> syn::Result<()> {
        let name = path_name(&meta.path);
        let Some(key) = meta
            .path
            .get_ident()
            .filter(|_| JOB_OPTIONS.contains(&name.as_str()))
        else {
            errors.spanned(
                &meta.path,
                format!(
                    "unknown `#[job]` option `{name}`{}; expected one of: {}",
                    crate::shared::ctxt::closest(&name, JOB_OPTIONS.iter().copied())
                        .map(|c| format!(" (did you mean `{c}`?)"))
                        .unwrap_or_default(),
                    list(JOB_OPTIONS)
                ),
            );
            return skip_value(meta);
        };
        let key = key.clone();
        match name.as_str() {
            "kind" => {
                let value = value_of(meta, &key, "kind = \"orders.charge\"", errors, string)?;
                store(&mut self.kind, value, &key, "#[job]", errors);
            }
            "aliases" => {
                let value = value_of(meta, &key, "aliases = [\"old_name\"]", errors, strings)?;
                store(&mut self.aliases, value, &key, "#[job]", errors);
            }
            "queue" => {
                let value = value_of(meta, &key, "queue = \"payments\"", errors, string)?;
                store(&mut self.queue, value, &key, "#[job]", errors);
            }
            "priority" => {
                let value = value_of(meta, &key, "priority = 10", errors, integer)?;
                store(&mut self.priority, value, &key, "#[job]", errors);
            }
            "max_attempts" => {
                let value = value_of(meta, &key, "max_attempts = 5", errors, integer)?;
                store(&mut self.max_attempts, value, &key, "#[job]", errors);
            }
            "timeout" => {
                let value = value_of(meta, &key, "timeout = \"30s\"", errors, duration)?;
                store(&mut self.timeout, value, &key, "#[job]", errors);
            }
            "backoff" => {
                let value = parse_backoff(meta, &key, errors)?;
                store(&mut self.backoff, value, &key, "#[job]", errors);
            }
            "unique" => {
                let value = parse_unique(meta, &key, errors)?;
                store(&mut self.unique, value, &key, "#[job]", errors);
            }
            "cron" => {
                let value = value_of(meta, &key, "cron = \"0 */5 * * * *\"", errors, string)?;
                store(&mut self.cron, value, &key, "#[job]", errors);
            }
            "tz" => {
                let value = value_of(meta, &key, "tz = \"Europe/London\"", errors, string)?;
                store(&mut self.tz, value, &key, "#[job]", errors);
            }
            "missed" => {
                let value = value_of(meta, &key, "missed = \"run_once\"", errors, string)?;
                store(&mut self.missed, value, &key, "#[job]", errors);
            }
            "cron_args" => {
                let example = "cron_args = Report { region: \"eu\".into() }";
                let value = value_of(meta, &key, example, errors, expr)?;
                store(&mut self.cron_args, value, &key, "#[job]", errors);
            }
            "sensitive" | "durable" => {
                if meta.input.peek(Token![=]) || meta.input.peek(syn::token::Paren) {
                    errors.spanned(
                        &key,
                        format!("`{name}` takes no value; write `#[job({name})]`"),
                    );
                    return skip_value(meta);
                }
                let value = Spanned {
                    key: key.clone(),
                    value: true,
                    tokens: quote::quote!(#key),
                };
                let slot = if name == "durable" {
                    &mut self.durable
                } else {
                    &mut self.sensitive
                };
                store(slot, Some(value), &key, "#[job]", errors);
            }
            "version" => {
                let value = value_of(meta, &key, "version = 2", errors, integer)?;
                store(&mut self.version, value, &key, "#[job]", errors);
            }
            "resumes" => {
                let value = value_of(meta, &key, "resumes = [1, 2]", errors, integers)?;
                store(&mut self.resumes, value, &key, "#[job]", errors);
            }
            _ => unreachable!("every name in JOB_OPTIONS has an arm"),
        }
        Ok(())
    }
}

fn parse_backoff(
    meta: &ParseNestedMeta<'_>,
    key: &Ident,
    errors: &mut Errors,
) -> syn::Result<Option<BackoffAttr>> {
    if !meta.input.peek(syn::token::Paren) {
        errors.spanned(
            key,
            "write `backoff(base = \"1s\", factor = 2.0, max = \"1h\", jitter = 0.25)` (any of \
             the keys) or `backoff(constant = \"5s\")`",
        );
        skip_value(meta)?;
        return Ok(None);
    }
    let mut backoff = BackoffAttr {
        key: key.clone(),
        base: None,
        factor: None,
        max: None,
        jitter: None,
        constant: None,
        rejected: false,
    };
    parse_nested(meta, |inner| {
        let name = path_name(&inner.path);
        let Some(sub) = inner
            .path
            .get_ident()
            .filter(|_| BACKOFF_OPTIONS.contains(&name.as_str()))
        else {
            errors.spanned(
                &inner.path,
                format!(
                    "unknown `backoff` option `{name}`{}; expected one of: {}",
                    crate::shared::ctxt::closest(&name, BACKOFF_OPTIONS.iter().copied())
                        .map(|c| format!(" (did you mean `{c}`?)"))
                        .unwrap_or_default(),
                    list(BACKOFF_OPTIONS)
                ),
            );
            backoff.rejected = true;
            return skip_value(&inner);
        };
        let sub = sub.clone();
        match name.as_str() {
            "base" => {
                let value = value_of(&inner, &sub, "base = \"1s\"", errors, duration)?;
                store(&mut backoff.base, value, &sub, "backoff", errors);
            }
            "factor" => {
                let value = value_of(&inner, &sub, "factor = 2.0", errors, float)?;
                store(&mut backoff.factor, value, &sub, "backoff", errors);
            }
            "max" => {
                let value = value_of(&inner, &sub, "max = \"1h\"", errors, duration)?;
                store(&mut backoff.max, value, &sub, "backoff", errors);
            }
            "jitter" => {
                let value = value_of(&inner, &sub, "jitter = 0.25", errors, float)?;
                store(&mut backoff.jitter, value, &sub, "backoff", errors);
            }
            "constant" => {
                let value = value_of(&inner, &sub, "constant = \"5s\"", errors, duration)?;
                store(&mut backoff.constant, value, &sub, "backoff", errors);
            }
            _ => unreachable!("every name in BACKOFF_OPTIONS has an arm"),
        }
        Ok(())
    })?;
    Ok(Some(backoff))
}

fn parse_unique(
    meta: &ParseNestedMeta<'_>,
    key: &Ident,
    errors: &mut Errors,
) -> syn::Result<Option<UniqueAttr>> {
    let mut unique = UniqueAttr {
        by: None,
        period: None,
    };
    if meta.input.is_empty() || meta.input.peek(Token![,]) {
        return Ok(Some(unique));
    }
    if !meta.input.peek(syn::token::Paren) {
        errors.spanned(
            key,
            "write `unique` (the whole payload is the key), `unique(by = [field, ...])` and/or \
             `unique(period = \"1h\")`",
        );
        skip_value(meta)?;
        return Ok(None);
    }
    parse_nested(meta, |inner| {
        let name = path_name(&inner.path);
        let Some(sub) = inner
            .path
            .get_ident()
            .filter(|_| UNIQUE_OPTIONS.contains(&name.as_str()))
        else {
            errors.spanned(
                &inner.path,
                format!(
                    "unknown `unique` option `{name}`{}; expected one of: {}",
                    crate::shared::ctxt::closest(&name, UNIQUE_OPTIONS.iter().copied())
                        .map(|c| format!(" (did you mean `{c}`?)"))
                        .unwrap_or_default(),
                    list(UNIQUE_OPTIONS)
                ),
            );
            return skip_value(&inner);
        };
        let sub = sub.clone();
        match name.as_str() {
            "by" => {
                let value = value_of(&inner, &sub, "by = [order_id, email]", errors, idents)?;
                store(&mut unique.by, value, &sub, "unique", errors);
            }
            "period" => {
                let value = value_of(&inner, &sub, "period = \"1h\"", errors, duration)?;
                store(&mut unique.period, value, &sub, "unique", errors);
            }
            _ => unreachable!("every name in UNIQUE_OPTIONS has an arm"),
        }
        Ok(())
    })?;
    Ok(Some(unique))
}

/// Like [`ParseNestedMeta::parse_nested_meta`], but empty parentheses are accepted (and
/// parse nothing) instead of being a syntax error.
fn parse_nested(
    meta: &ParseNestedMeta<'_>,
    logic: impl FnMut(ParseNestedMeta<'_>) -> syn::Result<()>,
) -> syn::Result<()> {
    let content;
    syn::parenthesized!(content in meta.input);
    let tokens: TokenStream = content.parse()?;
    if tokens.is_empty() {
        return Ok(());
    }
    syn::meta::parser(logic).parse2(tokens)
}

/// Reads `= <expr>` after `key` and converts it with `convert`. A missing `=` or a value of the
/// wrong shape is recorded and yields `Ok(None)`; only broken syntax aborts the parse.
fn value_of<T>(
    meta: &ParseNestedMeta<'_>,
    key: &Ident,
    example: &str,
    errors: &mut Errors,
    convert: fn(&Ident, &Expr) -> syn::Result<T>,
) -> syn::Result<Option<Spanned<T>>> {
    if !meta.input.peek(Token![=]) {
        errors.spanned(key, format!("`{key}` needs a value, such as `{example}`"));
        skip_value(meta)?;
        return Ok(None);
    }
    let expr: Expr = meta.value()?.parse()?;
    match convert(key, &expr) {
        Ok(value) => Ok(Some(Spanned {
            key: key.clone(),
            value,
            tokens: expr.to_token_stream(),
        })),
        Err(error) => {
            errors.push(error);
            Ok(None)
        }
    }
}

/// Keeps the first value of an option; a second one is an error at its key.
fn store<T>(slot: &mut Option<T>, value: Option<T>, key: &Ident, scope: &str, errors: &mut Errors) {
    if slot.is_some() {
        errors.spanned(
            key,
            format!("duplicate `{scope}` option `{key}`: give each option at most once"),
        );
    } else if value.is_some() {
        *slot = value;
    }
}

/// Consumes whatever follows an option that is being rejected (`= expr` or `(...)`).
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        meta.value()?.parse::<Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        meta.input.parse::<TokenTree>()?;
    }
    Ok(())
}

fn string(key: &Ident, expr: &Expr) -> syn::Result<String> {
    match expr {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(lit), ..
        }) => Ok(lit.value()),
        _ => Err(syn::Error::new_spanned(
            expr,
            format!("`{key}` takes a string literal, such as `{key} = \"payments\"`"),
        )),
    }
}

fn expr(_key: &Ident, expr: &Expr) -> syn::Result<Expr> {
    Ok(expr.clone())
}

fn strings(key: &Ident, expr: &Expr) -> syn::Result<Vec<Spanned<String>>> {
    list_of(key, expr, "string literals", "[\"old_name\"]", string)
}

fn integers(key: &Ident, expr: &Expr) -> syn::Result<Vec<Spanned<i128>>> {
    list_of(key, expr, "integers", "[1, 2]", integer)
}

/// `[a, b, ..]`, each element read by `item` and kept with its tokens; `what` and `example`
/// make the error when `expr` is not a list.
fn list_of<T>(
    key: &Ident,
    expr: &Expr,
    what: &str,
    example: &str,
    item: fn(&Ident, &Expr) -> syn::Result<T>,
) -> syn::Result<Vec<Spanned<T>>> {
    let Expr::Array(array) = expr else {
        return Err(syn::Error::new_spanned(
            expr,
            format!("`{key}` takes a list of {what}, such as `{key} = {example}`"),
        ));
    };
    array
        .elems
        .iter()
        .map(|elem| {
            Ok(Spanned {
                key: key.clone(),
                value: item(key, elem)?,
                tokens: elem.to_token_stream(),
            })
        })
        .collect()
}

fn idents(key: &Ident, expr: &Expr) -> syn::Result<Vec<Ident>> {
    let message = format!(
        "`{key}` takes a list of payload parameter names, such as `{key} = [order_id, email]`"
    );
    let Expr::Array(array) = expr else {
        return Err(syn::Error::new_spanned(expr, message));
    };
    array
        .elems
        .iter()
        .map(|elem| match elem {
            Expr::Path(path) if path.qself.is_none() => path
                .path
                .get_ident()
                .cloned()
                .ok_or_else(|| syn::Error::new_spanned(elem, &message)),
            _ => Err(syn::Error::new_spanned(elem, &message)),
        })
        .collect()
}

/// An integer literal, possibly negated.
fn integer(key: &Ident, expr: &Expr) -> syn::Result<i128> {
    let (negative, inner) = strip_minus(expr);
    match inner {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Int(lit), ..
        }) => {
            let value = lit.base10_parse::<i128>().map_err(|_| {
                syn::Error::new_spanned(expr, format!("`{key}` is far out of range"))
            })?;
            Ok(if negative { -value } else { value })
        }
        _ => Err(syn::Error::new_spanned(
            expr,
            format!("`{key}` takes an integer literal, such as `{key} = 10`"),
        )),
    }
}

/// A float or integer literal, possibly negated.
fn float(key: &Ident, expr: &Expr) -> syn::Result<f64> {
    let (negative, inner) = strip_minus(expr);
    let value = match inner {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Float(lit),
            ..
        }) => lit.base10_parse::<f64>(),
        Expr::Lit(syn::ExprLit {
            lit: Lit::Int(lit), ..
        }) => lit.base10_parse::<f64>(),
        _ => {
            return Err(syn::Error::new_spanned(
                expr,
                format!("`{key}` takes a number, such as `{key} = 2.0`"),
            ));
        }
    }?;
    Ok(if negative { -value } else { value })
}

fn strip_minus(expr: &Expr) -> (bool, &Expr) {
    match expr {
        Expr::Unary(unary) if matches!(unary.op, UnOp::Neg(_)) => (true, &unary.expr),
        _ => (false, expr),
    }
}

/// A duration string literal, in milliseconds.
fn duration(key: &Ident, expr: &Expr) -> syn::Result<u64> {
    match expr {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(lit), ..
        }) => parse_duration(&lit.value()).map_err(|message| syn::Error::new(lit.span(), message)),
        _ => Err(syn::Error::new_spanned(
            expr,
            format!("`{key}` takes a duration string, such as `{key} = \"30s\"`"),
        )),
    }
}

/// What a duration literal looks like, for error messages.
pub(crate) const DURATION_FORMAT: &str = "expected an integer followed by `ms`, `s`, `m`, `h` or \
     `d`, such as \"500ms\", \"30s\", \"5m\", \"2h\" or \"1d\"";

/// Parses `"500ms"`, `"30s"`, `"5m"`, `"2h"` or `"1d"` into milliseconds.
pub(crate) fn parse_duration(text: &str) -> Result<u64, String> {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    let millis_per_unit: u64 = match unit {
        _ if digits.is_empty() => 0,
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => 0,
    };
    if millis_per_unit == 0 {
        return Err(format!("invalid duration \"{text}\": {DURATION_FORMAT}"));
    }
    digits
        .parse::<u64>()
        .ok()
        .and_then(|count| count.checked_mul(millis_per_unit))
        .ok_or_else(|| {
            format!("duration \"{text}\" is too long to fit in a `Duration` of milliseconds")
        })
}

/// `a::b` for a path, for messages.
fn path_name(path: &syn::Path) -> String {
    path.segments
        .iter()
        .map(|segment| segment.ident.to_string())
        .collect::<Vec<_>>()
        .join("::")
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    fn parse(tokens: TokenStream) -> (JobAttr, Vec<String>) {
        let mut errors = Errors::default();
        let attr = JobAttr::parse(tokens, &mut errors);
        let messages = match errors.finish() {
            Ok(()) => Vec::new(),
            Err(error) => error.into_iter().map(|e| e.to_string()).collect(),
        };
        (attr, messages)
    }

    #[test]
    fn empty_attribute_is_all_defaults() {
        let (attr, errors) = parse(quote!());
        assert!(errors.is_empty(), "{errors:?}");
        assert!(attr.kind.is_none() && attr.queue.is_none() && attr.unique.is_none());
    }

    #[test]
    fn parses_every_option() {
        let (attr, errors) = parse(quote!(
            kind = "orders.charge",
            aliases = ["charge", "old.charge"],
            queue = "payments",
            priority = -10,
            max_attempts = 5,
            timeout = "30s",
            backoff(base = "500ms", factor = 3, max = "2h", jitter = 0.5),
            unique(by = [order_id, email], period = "1d"),
        ));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(attr.kind.unwrap().value, "orders.charge");
        let aliases: Vec<_> = attr
            .aliases
            .unwrap()
            .value
            .into_iter()
            .map(|a| a.value)
            .collect();
        assert_eq!(aliases, ["charge", "old.charge"]);
        assert_eq!(attr.queue.unwrap().value, "payments");
        assert_eq!(attr.priority.unwrap().value, -10);
        assert_eq!(attr.max_attempts.unwrap().value, 5);
        assert_eq!(attr.timeout.unwrap().value, 30_000);
        let backoff = attr.backoff.unwrap();
        assert_eq!(backoff.base.unwrap().value, 500);
        assert_eq!(backoff.factor.unwrap().value, 3.0);
        assert_eq!(backoff.max.unwrap().value, 7_200_000);
        assert_eq!(backoff.jitter.unwrap().value, 0.5);
        assert!(backoff.constant.is_none());
        let unique = attr.unique.unwrap();
        let by: Vec<_> = unique
            .by
            .unwrap()
            .value
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(by, ["order_id", "email"]);
        assert_eq!(unique.period.unwrap().value, 86_400_000);
    }

    #[test]
    fn parses_cron_options() {
        let (attr, errors) = parse(quote!(
            cron = "0 30 1 * * *",
            tz = "Europe/London",
            missed = "run_once",
            cron_args = Report { days: 7 },
        ));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(attr.cron.unwrap().value, "0 30 1 * * *");
        assert_eq!(attr.tz.unwrap().value, "Europe/London");
        assert_eq!(attr.missed.unwrap().value, "run_once");
        assert_eq!(
            attr.cron_args.unwrap().tokens.to_string(),
            quote!(Report { days: 7 }).to_string()
        );
    }

    #[test]
    fn plain_unique_and_constant_backoff() {
        let (attr, errors) = parse(quote!(unique, backoff(constant = "5s")));
        assert!(errors.is_empty(), "{errors:?}");
        let unique = attr.unique.unwrap();
        assert!(unique.by.is_none() && unique.period.is_none());
        assert_eq!(attr.backoff.unwrap().constant.unwrap().value, 5_000);
        let (attr, errors) = parse(quote!(unique()));
        assert!(errors.is_empty(), "{errors:?}");
        assert!(attr.unique.unwrap().by.is_none());
    }

    #[test]
    fn sensitive_is_a_bare_flag() {
        let (attr, errors) = parse(quote!(sensitive, queue = "a"));
        assert!(errors.is_empty(), "{errors:?}");
        assert!(attr.sensitive.unwrap().value);
        let (_, errors) = parse(quote!(sensitive = true));
        assert_eq!(
            errors,
            ["`sensitive` takes no value; write `#[job(sensitive)]`"]
        );
    }

    #[test]
    fn durable_is_a_bare_flag_with_a_version_and_earlier_versions() {
        let (attr, errors) = parse(quote!(durable, version = 3, resumes = [1, 2]));
        assert!(errors.is_empty(), "{errors:?}");
        assert!(attr.durable.unwrap().value);
        assert_eq!(attr.version.unwrap().value, 3);
        let resumes: Vec<i128> = attr
            .resumes
            .unwrap()
            .value
            .iter()
            .map(|v| v.value)
            .collect();
        assert_eq!(resumes, [1, 2]);
        let (_, errors) = parse(quote!(durable = true, resumes = 2));
        assert_eq!(
            errors,
            [
                "`durable` takes no value; write `#[job(durable)]`",
                "`resumes` takes a list of integers, such as `resumes = [1, 2]`"
            ]
        );
    }

    #[test]
    fn unknown_option_lists_the_valid_ones() {
        let (_, errors) = parse(quote!(colour = "red", queue = "a"));
        assert_eq!(
            errors,
            [
                "unknown `#[job]` option `colour`; expected one of: `kind`, `aliases`, `queue`, \
              `priority`, `max_attempts`, `timeout`, `backoff`, `unique`, `cron`, `tz`, \
              `missed`, `cron_args`, `sensitive`, `durable`, `version`, `resumes`"
            ]
        );
    }

    #[test]
    fn every_mistake_is_reported() {
        let (attr, errors) = parse(quote!(
            queue = "a",
            queue = "b",
            timeout = "30x",
            priority = "high",
            foo,
            backoff(speed = 2),
            unique(by = order_id),
            max_attempts,
        ));
        assert_eq!(attr.queue.unwrap().value, "a");
        assert_eq!(errors.len(), 7, "{errors:#?}");
        assert!(errors[0].starts_with("duplicate `#[job]` option `queue`"));
        assert!(errors[1].starts_with("invalid duration \"30x\""));
        assert!(errors[2].starts_with("`priority` takes an integer literal"));
        assert!(errors[3].starts_with("unknown `#[job]` option `foo`"));
        assert!(errors[4].starts_with("unknown `backoff` option `speed`"));
        assert!(errors[5].starts_with("`by` takes a list of payload parameter names"));
        assert!(errors[6].starts_with("`max_attempts` needs a value"));
    }

    #[test]
    fn backoff_and_unique_need_their_nested_form() {
        let (_, errors) = parse(quote!(backoff = "constant(5s)", unique = true));
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert!(errors[0].starts_with("write `backoff("));
        assert!(errors[1].starts_with("write `unique`"));
    }

    #[test]
    fn broken_syntax_is_an_error() {
        let (_, errors) = parse(quote!(queue = "a" priority = 1));
        assert_eq!(errors.len(), 1, "{errors:#?}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(500));
        assert_eq!(parse_duration("30s"), Ok(30_000));
        assert_eq!(parse_duration("5m"), Ok(300_000));
        assert_eq!(parse_duration("2h"), Ok(7_200_000));
        assert_eq!(parse_duration("1d"), Ok(86_400_000));
        assert_eq!(parse_duration("0s"), Ok(0));
        for bad in [
            "30x", "", "-1s", "s", "30", "1.5s", "1 s", " 1s", "1S", "1sec", "1ms2",
        ] {
            let error = parse_duration(bad).unwrap_err();
            assert!(error.contains(DURATION_FORMAT), "{bad:?}: {error}");
        }
        assert!(
            parse_duration("18446744073709551615s")
                .unwrap_err()
                .contains("too long")
        );
        assert!(
            parse_duration("99999999999999999999ms")
                .unwrap_err()
                .contains("too long")
        );
        assert_eq!(parse_duration("18446744073709551615ms"), Ok(u64::MAX));
    }
}
