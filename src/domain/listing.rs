//! Listings: one page and the cursor of the next, the largest page, and which audit entries to
//! list. Shared by the store (which reads them), the service and the edges.

/// The largest page a listing returns.
pub const MAX_PAGE: usize = 500;

/// One page of a listing, and where the next (older) page starts if there may be one.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T, C> {
    pub items: Vec<T>,
    /// Pass back as `before` for the next page; `None` when nothing older is left.
    pub next_before: Option<C>,
}

impl<T, C> Page<T, C> {
    /// The same page with each item converted (the cursor stays).
    pub fn map<U>(self, mut f: impl FnMut(T) -> U) -> Page<U, C> {
        match self.try_map(|t| Ok::<_, std::convert::Infallible>(f(t))) {
            Ok(page) => page,
            Err(never) => match never {},
        }
    }

    /// The same page with each item converted, or the first error.
    pub fn try_map<U, E>(self, f: impl FnMut(T) -> Result<U, E>) -> Result<Page<U, C>, E> {
        Ok(Page {
            items: self.items.into_iter().map(f).collect::<Result<_, _>>()?,
            next_before: self.next_before,
        })
    }
}

/// Which audit entries to list: newest first from `before` (exclusive) down to `after_seq`
/// (exclusive), returned oldest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub kind: Option<String>,
    pub wallet_id: Option<String>,
    pub after_seq: Option<u64>,
    /// Only entries before this sequence number: the cursor of the next (older) page.
    pub before: Option<u64>,
    /// Default 50, at most 500.
    pub limit: Option<usize>,
}

impl AuditFilter {
    pub const DEFAULT_LIMIT: usize = 50;
    pub const MAX_LIMIT: usize = MAX_PAGE;

    pub fn limit(&self) -> usize {
        self.limit.unwrap_or(Self::DEFAULT_LIMIT).clamp(1, Self::MAX_LIMIT)
    }

    /// Whether an entry of `kind` about `wallet_id` is listed.
    pub fn matches(&self, kind: &str, wallet_id: Option<&str>) -> bool {
        self.kind.as_ref().is_none_or(|k| k == kind)
            && self.wallet_id.as_ref().is_none_or(|w| wallet_id == Some(w.as_str()))
    }

    /// Whether it selects by kind or wallet (so a page may need to read further).
    pub fn is_filtered(&self) -> bool {
        self.kind.is_some() || self.wallet_id.is_some()
    }
}
