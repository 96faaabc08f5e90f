//! `GET /api/v1/audit/stream`: audit events and lifecycle changes (every change is audited, so
//! `device.suspended`, `certificate.revoke`, `request.approve`, … all appear) as Server-Sent
//! Events, filtered by action pattern. Read from the shared audit table, so a stream on any
//! node sees the changes made on every node; `Last-Event-ID` (the sequence number) resumes
//! without a gap.

use sigil_core::ErrorCode;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use sigil_core::access::authz::perm;
use sigil_core::ports::AuditFilter;

use super::audit::AuditEventView;
use crate::AppState;
use crate::error::{ApiError, Problem};
use crate::extract::{Authorized, Query};

/// How often the stream looks for new events.
const POLL: Duration = Duration::from_millis(250);
/// How often an open stream checks that its caller may still read the trail.
const RECHECK: Duration = Duration::from_secs(2);

/// Open streams per caller and in total, and how long one may stay open.
#[derive(Debug)]
pub struct StreamSlots {
    open: std::sync::Mutex<(usize, std::collections::HashMap<String, usize>)>,
    per_caller: usize,
    total: usize,
    max_lifetime: Duration,
}

/// One open stream; its slot is given back when the stream is dropped (the client went away
/// or the stream ended).
#[derive(Debug)]
struct Slot {
    slots: std::sync::Arc<StreamSlots>,
    caller: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.slots.open.lock() {
            open.0 = open.0.saturating_sub(1);
            if let Some(n) = open.1.get_mut(&self.caller) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    open.1.remove(&self.caller);
                }
            }
        }
    }
}

impl StreamSlots {
    /// At most `per_caller` streams per caller and `total` on this node, each open at most
    /// `max_lifetime`.
    pub fn new(per_caller: usize, total: usize, max_lifetime: Duration) -> Self {
        Self { open: Default::default(), per_caller, total, max_lifetime }
    }

    fn take(self: &std::sync::Arc<Self>, caller: &str) -> Result<Slot, ApiError> {
        let full = || {
            ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::TooManyStreams,
                "too many event streams are open; close one or retry later",
            )
        };
        let mut open = self.open.lock().map_err(|_| full())?;
        let mine = open.1.get(caller).copied().unwrap_or(0);
        if open.0 >= self.total || mine >= self.per_caller {
            let mut e = full();
            e.retry_after = Some(5);
            return Err(e);
        }
        open.0 += 1;
        open.1.insert(caller.to_owned(), mine + 1);
        Ok(Slot { slots: self.clone(), caller: caller.to_owned() })
    }
}
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
    Authorized(cap): Authorized<perm::AuditRead>,
    Query(q): Query<StreamQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let parse = |v: &str, what: &str| {
        v.trim().parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            ApiError::bad_request(
                ErrorCode::InvalidQuery,
                format!("{what} must be a sequence number"),
            )
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
        return Err(ApiError::bad_request(ErrorCode::InvalidQuery, "at most 50 types"));
    }
    let filter = AuditFilter { object_type: q.object_type, ..Default::default() };
    let principal = cap.principal().clone();
    let slot = st.streams.take(&principal.id)?;
    let ends = Instant::now() + st.streams.max_lifetime;
    let watch = Watch { principal, _slot: slot, ends, next_check: Instant::now() + RECHECK };
    let state = (st, start, VecDeque::new(), watch);
    let events = futures_util::stream::unfold(
        state,
        move |(st, mut after, mut queue, mut watch)| {
            let (patterns, filter) = (patterns.clone(), filter.clone());
            async move {
                loop {
                    if !watch.still_open(&st).await {
                        return None;
                    }
                    if let Some(ev) = queue.pop_front() {
                        return Some((Ok(ev), (st, after, queue, watch)));
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
        },
    );
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// What keeps a stream open: its lifetime, and a caller that may still read the trail.
struct Watch {
    principal: std::sync::Arc<sigil_core::access::authz::Principal>,
    // Held for the stream's life; dropping it gives the place back.
    _slot: Slot,
    ends: Instant,
    next_check: Instant,
}

impl Watch {
    async fn still_open(&mut self, st: &AppState) -> bool {
        let now = Instant::now();
        if now >= self.ends {
            return false;
        }
        if now < self.next_check {
            return true;
        }
        self.next_check = now + RECHECK;
        match st.api_keys.reauthenticate(&self.principal).await {
            Ok(p) => p.authorize::<perm::AuditRead>().is_ok(),
            Err(e) => {
                tracing::info!(caller = %self.principal.id, error = %e, "audit stream ended: the caller may no longer read");
                false
            }
        }
    }
}
