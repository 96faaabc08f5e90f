//! `GET /api/v1/audit/stream`: audit events and lifecycle changes (every change is audited, so
//! `device.suspended`, `certificate.revoke`, `request.approve`, … all appear) as Server-Sent
//! Events, filtered by action pattern. Read from the shared audit table, so a stream on any
//! node sees the changes made on every node; `Last-Event-ID` (the sequence number) resumes
//! without a gap.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use sigil_core::authz::perm;
use sigil_core::ports::AuditFilter;

use super::audit::AuditEventView;
use crate::AppState;
use crate::error::{ApiError, Problem};
use crate::extract::{Authorized, Query};

/// How often the stream looks for new events.
const POLL: Duration = Duration::from_millis(250);
/// Events read per look.
const BATCH: u32 = 200;

/// Query of the stream.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// Comma-separated actions; a trailing `*` matches a prefix (`device.*,certificate.revoke`).
    /// Default: everything.
    types: Option<String>,
    /// Only events about this object type (`device`, `certificate`, `request`, …).
    object_type: Option<String>,
    /// Start after this sequence number (default: now, or the `Last-Event-ID` header).
    #[param(value_type = Option<u64>)]
    after: Option<String>,
}

/// Routes of this module.
pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::new().routes(utoipa_axum::routes!(stream))
}

fn matches(patterns: &[String], action: &str) -> bool {
    patterns.is_empty()
        || patterns.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => action.starts_with(prefix),
            None => action == p,
        })
}

/// Live audit events and lifecycle changes as Server-Sent Events (`event:` the action, `id:`
/// the sequence number, `data:` the event as `GET /api/v1/audit` shows it).
#[utoipa::path(get, path = "/api/v1/audit/stream", tag = "audit", params(StreamQuery),
    responses((status = 200, content_type = "text/event-stream", description = "A stream of events"),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn stream(
    State(st): State<AppState>,
    Authorized(_cap): Authorized<perm::AuditRead>,
    Query(q): Query<StreamQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let parse = |v: &str, what: &str| {
        v.trim().parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            ApiError::bad_request("invalid_query", format!("{what} must be a sequence number"))
        })
    };
    let resume = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let start = match (q.after.as_deref(), resume) {
        (Some(a), _) => parse(a, "after")?,
        (None, Some(r)) => parse(r, "Last-Event-ID")?,
        (None, None) => st.store.audit_head().await.map_err(sigil_core::CoreError::from)?.seq,
    };
    let patterns: Vec<String> = q
        .types
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    if patterns.len() > 50 {
        return Err(ApiError::bad_request("invalid_query", "at most 50 types"));
    }
    let filter = AuditFilter { object_type: q.object_type, ..Default::default() };
    let state = (st, start, VecDeque::new());
    let events = futures_util::stream::unfold(state, move |(st, mut after, mut queue)| {
        let (patterns, filter) = (patterns.clone(), filter.clone());
        async move {
            loop {
                if let Some(ev) = queue.pop_front() {
                    return Some((Ok(ev), (st, after, queue)));
                }
                let f = AuditFilter { after_seq: Some(after), ..filter.clone() };
                match st.store.audit_events(&f, BATCH).await {
                    Ok(rows) if !rows.is_empty() => {
                        for e in rows {
                            after = e.seq;
                            if !matches(&patterns, &e.action) {
                                continue;
                            }
                            let id = e.seq.to_string();
                            let action = e.action.clone();
                            let data = serde_json::to_string(&AuditEventView::from(e))
                                .unwrap_or_else(|_| "{}".into());
                            queue.push_back(Event::default().id(id).event(action).data(data));
                        }
                    }
                    Ok(_) => tokio::time::sleep(POLL).await,
                    Err(e) => {
                        tracing::warn!(error = %e, "audit stream: reading events failed; retrying");
                        tokio::time::sleep(POLL * 4).await;
                    }
                }
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
