//! Pages of lists, metadata documents, and the record helpers the use cases share. Each use case
//! (in its area) takes the capability its operation needs, checks the domain rules, and writes
//! the change together with its audit events in one transaction.

use crate::ErrorCode;

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

/// A request for one page of a list.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    /// Opaque position after which to continue (from the previous page's `next_cursor`).
    pub after: Option<String>,
    /// Page size (already clamped by the service).
    pub limit: u32,
}

/// Clamps a requested page size to `1..=MAX_PAGE`, rejecting 0 and larger values clearly.
pub fn page_size(limit: Option<u32>) -> crate::Result<u32> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(crate::CoreError::invalid(
            ErrorCode::InvalidLimit,
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

/// Largest metadata document of any object, bytes of JSON.
pub const MAX_METADATA: usize = 16 * 1024;

/// Checks a metadata document: a JSON object of at most [`MAX_METADATA`] bytes.
pub(crate) fn check_metadata(m: &serde_json::Value) -> crate::Result<()> {
    if !m.is_object() {
        return Err(crate::CoreError::invalid(
            ErrorCode::InvalidMetadata,
            "metadata must be a JSON object",
        ));
    }
    if m.to_string().len() > MAX_METADATA {
        return Err(crate::CoreError::invalid(
            ErrorCode::InvalidMetadata,
            format!("metadata is larger than {MAX_METADATA} bytes"),
        ));
    }
    Ok(())
}

/// A page of the records `filter` selects, after the page's cursor (a record id).
pub(crate) async fn record_page<R: crate::records::Record, S>(
    store: &S,
    filter: crate::records::Filter,
    page: PageRequest,
) -> crate::Result<Page<R>>
where
    S: crate::records::RecordStore + Sync + ?Sized,
{
    if let Some(a) = &page.after {
        uuid::Uuid::parse_str(a).map_err(|_| {
            crate::CoreError::invalid(ErrorCode::InvalidCursor, "cursor is not valid")
        })?;
    }
    crate::records::same_collection::<R>(&filter)?;
    let q = crate::records::RecordQuery { filter, after: page.after, limit: page.limit + 1 };
    let rows: Vec<R> = crate::records::decode_all(store.records(&q).await?)?;
    Ok(paginate(rows, page.limit, |r| r.key()))
}

/// Locks record `before` in `tx` and checks nobody changed it since it was read: a concurrent
/// change is a conflict for the caller to retry, never a lost update.
pub(crate) async fn lock_unchanged<R, T>(
    tx: &mut T,
    before: &R,
    object: &'static str,
) -> crate::Result<()>
where
    R: crate::records::Record + PartialEq,
    T: crate::records::RecordTx + Send + ?Sized,
{
    let id = before.key();
    let current = tx
        .record_for_update(R::COLLECTION, &id)
        .await?
        .ok_or_else(|| crate::CoreError::not_found(object, id))?;
    if R::from_body(&current)? != *before {
        return Err(crate::CoreError::conflict(
            ErrorCode::ConcurrentUpdate,
            "changed meanwhile; read it again and retry",
        ));
    }
    Ok(())
}
