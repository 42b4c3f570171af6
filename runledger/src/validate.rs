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
}
