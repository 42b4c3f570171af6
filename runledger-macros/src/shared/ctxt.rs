//! [`Errors`]: the collector every stage reports into, so that all mistakes are shown at once.

use std::fmt::Display;

use quote::ToTokens;

/// Every error found so far, combined into one [`syn::Error`] (one `compile_error!` each).
#[derive(Default)]
pub(crate) struct Errors {
    combined: Option<syn::Error>,
}

impl Errors {
    /// Records an error.
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.combined {
            Some(combined) => combined.combine(error),
            None => self.combined = Some(error),
        }
    }

    /// Records an error spanned over all of `tokens` (first to last token).
    pub(crate) fn spanned(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Whether an error was recorded.
    pub(crate) fn any(&self) -> bool {
        self.combined.is_some()
    }

    /// One `compile_error!` per recorded error (nothing when there were none).
    pub(crate) fn to_compile_errors(&self) -> proc_macro2::TokenStream {
        self.combined
            .as_ref()
            .map(syn::Error::to_compile_error)
            .unwrap_or_default()
    }

    /// `Err` with every recorded error, or `Ok` when there were none.
    #[cfg(test)]
    pub(crate) fn finish(self) -> syn::Result<()> {
        match self.combined {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

/// The candidate closest to `name` if it is close enough to be a slip of the keyboard (an edit
/// distance of at most a third of the name's length, and at least 1): for "did you mean".
pub(crate) fn closest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `"; did you mean `x`?"` when a candidate is close to `name`, else nothing.
pub(crate) fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> String {
    closest(name, candidates)
        .map(|c| format!("; did you mean `{c}`?"))
        .unwrap_or_default()
}

/// The edit distance between two strings, by characters, with a swap of two neighbours
/// counting as one edit (`nmae` is one edit from `name`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_only_close_names() {
        assert_eq!(closest("chrage", ["charge", "stock"]), Some("charge"));
        assert_eq!(closest("queu", ["queue", "kind"]), Some("queue"));
        assert_eq!(closest("colour", ["queue", "kind", "cron"]), None);
        assert_eq!(did_you_mean("x", ["y"]), "; did you mean `y`?");
        assert_eq!(did_you_mean("abc", ["xyz"]), "");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("nmae", "name"), 1);
        assert_eq!(closest("nmae", ["name"]), Some("name"));
    }
}
