//! Checks on names and settings that users pass in, shared by the client and the worker.

use crate::error::Error;

/// Longest kind or queue name accepted.
pub(crate) const MAX_NAME_LEN: usize = 128;

/// A kind or queue name: 1 to 128 characters from `A-Z a-z 0-9 _ . : -`.
pub(crate) fn name(what: &str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::InvalidInput(format!("the {what} name is empty")));
    }
    if value.len() > MAX_NAME_LEN {
        return Err(Error::InvalidInput(format!(
            "the {what} name `{}...` is {} bytes long; the limit is {MAX_NAME_LEN}",
            &value[..value.char_indices().nth(32).map_or(value.len(), |(i, _)| i)],
            value.len()
        )));
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')))
    {
        return Err(Error::InvalidInput(format!(
            "the {what} name `{value}` contains {bad:?}; use only letters, digits, `_`, `.`, `:` and `-`"
        )));
    }
    Ok(())
}

/// Longest error message stored for one attempt; longer ones are cut (at a character boundary)
/// and say how much was cut.
pub(crate) const MAX_ERROR_BYTES: usize = 16 * 1024;

/// Longest delay accepted for `run_in`, a retry or a snooze: 100 years. PostgreSQL's intervals
/// and timestamps overflow far beyond it, and no job waits that long on purpose.
pub(crate) const MAX_DELAY: std::time::Duration =
    std::time::Duration::from_secs(100 * 365 * 24 * 60 * 60 + 25 * 24 * 60 * 60);

/// Whether `json` (serialized JSON text) holds the escape `\u0000`, which PostgreSQL's `jsonb`
/// refuses ("unsupported Unicode escape sequence"). A backslash that is itself escaped (`\\u0000`,
/// the six characters of a literal `\u0000` in a string) does not count.
pub(crate) fn json_has_nul(json: &str) -> bool {
    let bytes = json.as_bytes();
    let mut from = 0;
    while let Some(pos) = json[from..].find("\\u0000") {
        let at = from + pos;
        // The escape starts a real `\u0000` when an even number of backslashes precede it.
        let preceding = bytes[..at]
            .iter()
            .rev()
            .take_while(|&&b| b == b'\\')
            .count();
        if preceding % 2 == 0 {
            return true;
        }
        from = at + 1;
    }
    false
}

/// A JSON document to store in a `jsonb` column: refused when it holds a NUL character.
pub(crate) fn json_value(what: &str, json: &str) -> Result<(), Error> {
    if json_has_nul(json) {
        return Err(Error::InvalidInput(format!(
            "{what} contains a NUL character (`\\u0000`), which PostgreSQL cannot store; remove \
             it, or carry binary data encoded (base64, hex)"
        )));
    }
    Ok(())
}

/// A text value to store in a `text` column (a key, a name): refused when it holds a NUL
/// character, which PostgreSQL cannot store in text.
pub(crate) fn text(what: &str, value: &str) -> Result<(), Error> {
    if value.contains('\0') {
        return Err(Error::InvalidInput(format!(
            "{what} contains a NUL character (`\\0`), which PostgreSQL cannot store in text; \
             remove it"
        )));
    }
    Ok(())
}

/// An error message made storable: NUL characters are written as the two characters `\0`, and
/// a message longer than [`MAX_ERROR_BYTES`] is cut, saying how many bytes were cut. Nothing
/// else changes, so a message without NUL that fits is stored as it is.
pub(crate) fn error_message(message: String) -> String {
    let mut message = if message.contains('\0') {
        message.replace('\0', "\\0")
    } else {
        message
    };
    if message.len() > MAX_ERROR_BYTES {
        let keep = (0..=MAX_ERROR_BYTES - 64)
            .rev()
            .find(|&i| message.is_char_boundary(i))
            .unwrap_or(0);
        let cut = message.len() - keep;
        message.truncate(keep);
        message.push_str(&format!("... ({cut} more bytes cut)"));
    }
    message
}

/// The earliest and latest due times accepted for `run_at`: years 1 to 9999.
fn run_at_range() -> (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) {
    use chrono::TimeZone;
    (
        chrono::Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap(),
        chrono::Utc
            .with_ymd_and_hms(9999, 12, 31, 23, 59, 59)
            .unwrap(),
    )
}

/// A due time for a `kind` job: within years 1 to 9999 (a time in the past means "now").
pub(crate) fn run_at(
    kind: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<chrono::DateTime<chrono::Utc>, Error> {
    let (first, last) = run_at_range();
    if at < first || at > last {
        return Err(Error::InvalidInput(format!(
            "`run_at({at})` of a `{kind}` job is outside the years 1 to 9999 that are accepted; \
             a time in the past runs the job now"
        )));
    }
    Ok(at)
}

/// A delay for a `kind` job: at most [`MAX_DELAY`].
pub(crate) fn run_in(kind: &str, delay: std::time::Duration) -> Result<std::time::Duration, Error> {
    if delay > MAX_DELAY {
        return Err(Error::InvalidInput(format!(
            "`run_in({delay:?})` of a `{kind}` job is over the longest delay accepted (100 \
             years); use `run_at` with a date instead"
        )));
    }
    Ok(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(name("queue", "default").is_ok());
        assert!(name("queue", "orders.v2:eu-west_1").is_ok());
        assert!(name("queue", "").is_err());
        assert!(name("queue", "a b").is_err());
        assert!(name("queue", "x'; DROP TABLE runledger.jobs; --").is_err());
        assert!(name("kind", &"k".repeat(129)).is_err());
        let msg = name("queue", "é").unwrap_err().to_string();
        assert!(msg.contains("use only letters"), "{msg}");
    }

    #[test]
    fn nul_in_json_is_found_only_where_jsonb_would_refuse_it() {
        let json = |v: serde_json::Value| v.to_string();
        assert!(json_has_nul(&json(serde_json::json!("a\0b"))));
        assert!(json_has_nul(&json(serde_json::json!({"k": ["x", "\0"]}))));
        assert!(json_has_nul(&json(serde_json::json!({"a\0": 1}))));
        // A literal backslash followed by `u0000` is six ordinary characters.
        assert!(!json_has_nul(&json(serde_json::json!("\\u0000"))));
        assert!(json_has_nul(&json(serde_json::json!("\\\0"))));
        assert!(!json_has_nul(&json(serde_json::json!({"a": "b", "n": 0}))));
        assert!(json_value("payload", "\"ok\"").is_ok());
        let msg = json_value("the payload of kind `k`", &json(serde_json::json!("\0")))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("payload of kind `k` contains a NUL"), "{msg}");
    }

    #[test]
    fn error_messages_are_made_storable() {
        assert_eq!(error_message("plain".into()), "plain");
        assert_eq!(error_message("a\0b".into()), "a\\0b");
        let long = "é".repeat(MAX_ERROR_BYTES);
        let cut = error_message(long.clone());
        assert!(cut.len() <= MAX_ERROR_BYTES, "{}", cut.len());
        assert!(
            cut.ends_with("more bytes cut)"),
            "{}",
            &cut[cut.len() - 40..]
        );
        assert!(long.starts_with(cut.split("...").next().unwrap()));
        assert!(text("the unique key", "a\0").is_err());
        assert!(text("the unique key", "a").is_ok());
    }
}
