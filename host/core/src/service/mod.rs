//! Use cases. Each service takes the capability its operation needs, checks the domain rules,
//! and writes the change together with its audit events in one transaction.

pub mod apikeys;
pub mod audit;
pub mod cas;
pub mod certificates;
pub mod devices;
pub mod operator_import;
pub mod operators;
pub mod org;
pub mod people;
pub mod profiles;
pub mod requests;
pub mod roles;
pub mod settings;

/// Default page size of list operations.
pub const DEFAULT_PAGE: u32 = 50;
/// Largest page a caller may ask for.
pub const MAX_PAGE: u32 = 500;

/// One page of a list.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Clamps a requested page size to `1..=MAX_PAGE`, rejecting 0 and larger values clearly.
pub fn page_size(limit: Option<u32>) -> crate::Result<u32> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(crate::CoreError::invalid(
            "invalid_limit",
            format!("limit must be between 1 and {MAX_PAGE}, got {n}"),
        )),
    }
}

/// Splits `limit + 1` fetched rows into a page and the cursor of its last item.
pub(crate) fn paginate<T>(mut rows: Vec<T>, limit: u32, cursor: impl Fn(&T) -> String) -> Page<T> {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = if more { rows.last().map(cursor) } else { None };
    Page { items: rows, next_cursor }
}
