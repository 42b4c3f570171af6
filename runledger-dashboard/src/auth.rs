//! Who may do what ([`Access`], [`Authorizer`]) and the CSRF token of write forms.

use axum::http::HeaderMap;
use axum::http::request::Parts;

/// What a request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Nothing: every page answers 403.
    None,
    /// See every page; no actions.
    Read,
    /// See every page and act: retry, cancel, delete, complete gates, emit events, drive
    /// schedules.
    Write,
}

/// Grants each request its [`Access`], from what the host knows of it (its headers, cookies,
/// or extensions a login middleware of the host put in the request).
///
/// A closure `Fn(&Parts) -> Access` is an authorizer; so is an [`Access`] value, which grants
/// itself to every request (`Access::Read` for a read-only dashboard on a trusted network).
pub trait Authorizer: Send + Sync + 'static {
    /// The access `request` has.
    fn authorize(&self, request: &Parts) -> Access;
}

impl<F> Authorizer for F
where
    F: Fn(&Parts) -> Access + Send + Sync + 'static,
{
    fn authorize(&self, request: &Parts) -> Access {
        self(request)
    }
}

impl Authorizer for Access {
    fn authorize(&self, _request: &Parts) -> Access {
        *self
    }
}

/// The cookie holding a browser's CSRF token.
pub(crate) const CSRF_COOKIE: &str = "runledger_csrf";

/// The CSRF token the request's cookie carries, if any.
pub(crate) fn csrf_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == CSRF_COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A new random token: 128 bits from the operating system, in hex.
pub(crate) fn new_token() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    let filled = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_ok();
    if !filled {
        // No /dev/urandom: the standard library's per-process random hash keys.
        use std::hash::{BuildHasher, Hasher};
        for chunk in bytes.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or_default(),
            );
            chunk.copy_from_slice(&h.finish().to_le_bytes()[..chunk.len()]);
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a write was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The browser says the request comes from a page of another site.
    OtherOrigin,
    /// No token, or not the browser's.
    Token,
}

impl Refusal {
    pub(crate) fn message(self) -> &'static str {
        match self {
            Refusal::OtherOrigin => {
                "this write comes from a page of another site (its Origin is not this \
                 dashboard's host)"
            }
            Refusal::Token => {
                "the form's token does not match this browser's (reload the page and try again)"
            }
        }
    }
}

/// Whether a write request comes from this dashboard's own pages: its `Origin` (when the
/// browser sends one) names the host it was sent to (the `Host` header, or the request's
/// authority over HTTP/2), and its form token equals its cookie.
pub(crate) fn check_write(
    headers: &HeaderMap,
    authority: Option<&str>,
    form_token: Option<&str>,
) -> Result<(), Refusal> {
    if let Some(origin) = headers.get(axum::http::header::ORIGIN) {
        let host = headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or(authority);
        let origin_host = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, rest)| rest.trim_end_matches('/'));
        if origin_host.is_none() || origin_host != host {
            return Err(Refusal::OtherOrigin);
        }
    }
    match (csrf_cookie(headers), form_token) {
        (Some(cookie), Some(token)) if constant_time_eq(cookie.as_bytes(), token.as_bytes()) => {
            Ok(())
        }
        _ => Err(Refusal::Token),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn a_write_needs_the_cookie_token_and_a_matching_origin() {
        let token = new_token();
        assert_eq!(token.len(), 32);
        let cookie = format!("a=b; {CSRF_COOKIE}={token}");
        let ok = headers(&[("cookie", &cookie), ("host", "127.0.0.1:7890")]);
        assert_eq!(check_write(&ok, None, Some(&token)), Ok(()));
        assert_eq!(
            check_write(&ok, None, Some(&new_token())),
            Err(Refusal::Token)
        );
        assert_eq!(check_write(&ok, None, None), Err(Refusal::Token));
        let no_cookie = headers(&[("host", "127.0.0.1:7890")]);
        assert_eq!(
            check_write(&no_cookie, None, Some(&token)),
            Err(Refusal::Token)
        );
        let same = headers(&[
            ("cookie", &cookie),
            ("host", "127.0.0.1:7890"),
            ("origin", "http://127.0.0.1:7890"),
        ]);
        assert_eq!(check_write(&same, None, Some(&token)), Ok(()));
        let other = headers(&[
            ("cookie", &cookie),
            ("host", "127.0.0.1:7890"),
            ("origin", "https://evil.example"),
        ]);
        assert_eq!(
            check_write(&other, None, Some(&token)),
            Err(Refusal::OtherOrigin)
        );
        // HTTP/2 has no Host header: the request's authority stands for it.
        let h2 = headers(&[("cookie", &cookie), ("origin", "https://ops.example")]);
        assert_eq!(check_write(&h2, Some("ops.example"), Some(&token)), Ok(()));
        assert_eq!(
            check_write(&h2, None, Some(&token)),
            Err(Refusal::OtherOrigin)
        );
    }
}
