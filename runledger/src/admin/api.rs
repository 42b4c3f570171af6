//! The operators' API itself ([`Admin`]), its scope, and pages of lists.

use crate::client::runledger::Runledger;

/// What replaces the arguments and output of a sensitive job.
pub const REDACTED: &str = "<redacted>";

/// The most jobs one bulk action touches.
pub const MAX_BULK: usize = 10_000;

/// The part of the data an [`Admin`] sees and acts on. Today every scope sees everything; the
/// type is here so that callers pass a scope from the start and keep working when scopes narrow
/// (per tenant).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scope {
    /// Everything in the database.
    #[default]
    All,
}

/// Where a page of a list starts, and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// The id after which (in newest-first order) the page starts: the `next` of the previous
    /// page, or `None` for the first page.
    pub after: Option<i64>,
    /// The most items on the page (1 to 500).
    pub limit: u32,
}

impl PageRequest {
    /// The first page, of at most `limit` items.
    pub fn first(limit: u32) -> Self {
        PageRequest { after: None, limit }
    }

    /// The page after the item with id `after`.
    pub fn after(after: i64, limit: u32) -> Self {
        PageRequest {
            after: Some(after),
            limit,
        }
    }

    pub(super) fn limit(self) -> i64 {
        i64::from(self.limit.clamp(1, 500))
    }
}

/// One page of a list, newest first.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Where the next page starts ([`PageRequest::after`]), or `None` on the last page. A page
    /// can be short, or empty, and still have a next one (see [`Admin::jobs`]).
    pub next: Option<i64>,
}

impl<T> Page<T> {
    pub(super) fn of(items: Vec<T>, limit: i64, id: impl Fn(&T) -> i64) -> Self {
        let next = if items.len() as i64 >= limit {
            items.last().map(&id)
        } else {
            None
        };
        Page { items, next }
    }
}

/// The operators' API over one database; see the [module](super) docs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Admin {
    pub(super) client: Runledger,
    scope: Scope,
}

impl Runledger {
    /// The operators' API over this client's database, seeing [`Scope::All`].
    pub fn admin(&self) -> Admin {
        Admin {
            client: self.clone(),
            scope: Scope::All,
        }
    }
}

impl Admin {
    /// The same API, limited to `scope`.
    pub fn scoped(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// The scope this API sees.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The client underneath.
    pub fn client(&self) -> &Runledger {
        &self.client
    }

    pub(super) fn pool(&self) -> &sqlx::PgPool {
        self.client.pool()
    }
}
