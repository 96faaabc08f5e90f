//! `/api/v1/audit`: query, per-object trail, signed export, verification.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sigil_core::ErrorCode;
use sigil_core::access::authz::perm;
use sigil_core::audit::export::ExportFormat;
use sigil_core::audit::{AuditEvent, VerifyReport, unix_micros};
use sigil_core::page::page_size;
use sigil_core::ports::AuditFilter;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{parse_time, rfc3339};
use crate::AppState;
use crate::error::{ApiError, Problem};
use crate::extract::{Authorized, Query};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(query))
        .routes(routes!(trail))
        .routes(routes!(export))
        .routes(routes!(verify))
}

/// Who acted.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ActorView {
    /// `api_key`, `operator`, `cli`, `system`, `plugin`, `signer`.
    pub kind: String,
    /// Actor id.
    pub id: String,
    /// Display name.
    pub name: String,
}

/// An audit event.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AuditEventView {
    /// Position in the chain.
    pub seq: i64,
    /// Event id.
    pub id: String,
    /// Time, RFC 3339.
    pub occurred_at: String,
    /// Actor.
    pub actor: ActorView,
    /// API key used.
    pub api_key_id: Option<String>,
    /// Operator acted for.
    pub operator_id: Option<String>,
    /// Action, for example `api_key.create`.
    #[schema(value_type = AuditActionName)]
    pub action: String,
    /// Object type.
    pub object_type: String,
    /// Object id.
    pub object_id: String,
    /// `success` or `failure`.
    pub outcome: String,
    /// Request id.
    pub request_id: Option<String>,
    /// Client address.
    pub client_ip: Option<String>,
    /// Details (secrets removed).
    pub details: serde_json::Value,
    /// Previous event's hash.
    pub prev_hash: String,
    /// This event's hash.
    pub hash: String,
}

impl From<AuditEvent> for AuditEventView {
    fn from(e: AuditEvent) -> Self {
        Self {
            seq: e.seq,
            id: e.id.to_string(),
            occurred_at: rfc3339(e.occurred_at()),
            details: serde_json::from_str(&e.details)
                .unwrap_or(serde_json::Value::String(e.details)),
            actor: ActorView { kind: e.actor_kind, id: e.actor_id, name: e.actor_name },
            api_key_id: e.api_key_id,
            operator_id: e.operator_id,
            action: e.action,
            object_type: e.object_type,
            object_id: e.object_id,
            outcome: e.outcome,
            request_id: e.request_id,
            client_ip: e.client_ip,
            prev_hash: e.prev_hash,
            hash: e.hash,
        }
    }
}

/// A page of events.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// Events, oldest first.
    pub items: Vec<AuditEventView>,
    /// Cursor for the next page.
    pub next_cursor: Option<String>,
}

/// Declares a query struct with the audit filters plus `$extra` fields.
macro_rules! audit_query {
    ($(#[$doc:meta])* $name:ident { $($extra:tt)* }) => {
        $(#[$doc])*
        #[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// Actor id (API key id, operator id, `cli`, `system`).
            actor: Option<String>,
            /// Object type, for example `api_key`.
            object_type: Option<String>,
            /// Object id.
            object_id: Option<String>,
            /// Action; a trailing `*` matches a prefix (`api_key.*`).
            action: Option<String>,
            /// `success` or `failure`.
            #[param(pattern = "^(success|failure)$")]
            outcome: Option<String>,
            /// From (inclusive), RFC 3339.
            #[param(value_type = Option<String>, format = DateTime)]
            from: Option<String>,
            /// Until (exclusive), RFC 3339.
            #[param(value_type = Option<String>, format = DateTime)]
            until: Option<String>,
            /// Continue after this sequence number (from `next_cursor`).
            #[param(value_type = Option<u64>)]
            cursor: Option<String>,
            $($extra)*
        }

        impl $name {
            fn filter(&self) -> Result<AuditFilter, ApiError> {
                let time = |name: &str, v: &Option<String>| {
                    v.as_deref().map(|s| parse_time(name, s).map(unix_micros)).transpose()
                };
                if let Some(o) = self.outcome.as_deref().filter(|o| !matches!(*o, "success" | "failure")) {
                    return Err(ApiError::bad_request(
                        ErrorCode::InvalidQuery,
                        format!("outcome must be success or failure, got `{o}`"),
                    ));
                }
                Ok(AuditFilter {
                    actor_id: self.actor.clone(),
                    object_type: self.object_type.clone(),
                    object_id: self.object_id.clone(),
                    action: self.action.clone(),
                    outcome: self.outcome.clone(),
                    from_us: time("from", &self.from)?,
                    until_us: time("until", &self.until)?,
                    after_seq: None,
                })
            }
        }
    };
}

audit_query! {
    /// Query of `GET /api/v1/audit`.
    AuditQuery {
        /// Page size, 1 to 500 (default 50).
        #[param(minimum = 1, maximum = 500)]
        limit: Option<u32>,
    }
}

audit_query! {
    /// Query of `GET /api/v1/audit/export`.
    ExportQuery {
        /// Most events in the file, 1 to 100000 (default 100000).
        #[param(minimum = 1, maximum = 100000)]
        limit: Option<u32>,
        /// `csv`, `json` (default) or `xml`.
        #[param(pattern = "^(csv|json|xml)$")]
        format: Option<String>,
    }
}

/// Query audit events with filters and cursor pagination.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn query(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::AuditRead>,
    Query(q): Query<AuditQuery>,
) -> Result<axum::Json<AuditPage>, ApiError> {
    let p = st.audit.query(&cap, q.filter()?, q.cursor.as_deref(), page_size(q.limit)?).await?;
    Ok(axum::Json(AuditPage {
        items: p.items.into_iter().map(Into::into).collect(),
        next_cursor: p.next_cursor,
    }))
}

/// Query of the per-object trail.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TrailQuery {
    /// Page size, 1 to 500.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// Cursor (a sequence number).
    #[param(value_type = Option<u64>)]
    cursor: Option<String>,
}

/// The audit trail of one object.
#[utoipa::path(get, path = "/api/v1/audit/objects/{object_type}/{object_id}", tag = "audit",
    params(("object_type" = String, Path), ("object_id" = String, Path), TrailQuery),
    responses((status = 200, body = AuditPage), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn trail(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::AuditRead>,
    Path((object_type, object_id)): Path<(String, String)>,
    Query(q): Query<TrailQuery>,
) -> Result<axum::Json<AuditPage>, ApiError> {
    let f = AuditFilter {
        object_type: Some(object_type),
        object_id: Some(object_id),
        ..Default::default()
    };
    let p = st.audit.query(&cap, f, q.cursor.as_deref(), page_size(q.limit)?).await?;
    Ok(axum::Json(AuditPage {
        items: p.items.into_iter().map(Into::into).collect(),
        next_cursor: p.next_cursor,
    }))
}

/// Export events as CSV, JSON or XML. The detached signature (JSON, base64) is in the
/// `Sigil-Signature` header; `sigil audit verify --file F --signature S` checks both.
#[utoipa::path(get, path = "/api/v1/audit/export", tag = "audit", params(ExportQuery),
    responses((status = 200, description = "The export file; signature in the Sigil-Signature header"),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn export(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::AuditExport>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let format = ExportFormat::parse(q.format.as_deref().unwrap_or("json"))?;
    let mut filter = q.filter()?;
    if let Some(c) = &q.cursor {
        filter.after_seq =
            Some(c.parse().map_err(|_| {
                ApiError::bad_request(ErrorCode::InvalidCursor, "cursor is not valid")
            })?);
    }
    let ex = st.audit.export(&cap, filter, format, q.limit).await?;
    let sig = serde_json::to_vec(&ex.signature).unwrap_or_default();
    let sig = base64::engine::general_purpose::STANDARD.encode(sig);
    let ext = match format {
        ExportFormat::Csv => "csv",
        ExportFormat::Json => "json",
        ExportFormat::Xml => "xml",
    };
    let mut res = ex.body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ex.content_type));
    if let Ok(v) = HeaderValue::from_str(&sig) {
        h.insert("sigil-signature", v);
    }
    if let Ok(v) = HeaderValue::from_str(&ex.count.to_string()) {
        h.insert("sigil-event-count", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"sigil-audit.{ext}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

/// Verify the whole chain and every signed checkpoint; reports the first broken link.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit",
    responses((status = 200, body = VerifyReport), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn verify(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::AuditVerify>,
) -> Result<axum::Json<VerifyReport>, ApiError> {
    Ok(axum::Json(st.audit.verify(&cap).await?))
}
/// An audit action, documented with the catalogue (`sigil_core::audit::actions`).
pub(crate) struct AuditActionName;

impl utoipa::PartialSchema for AuditActionName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let all: String = sigil_core::audit::AuditAction::ALL
            .iter()
            .map(|a| format!("\n- `{a}`: {}", a.meaning()))
            .collect();
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(format!(
                "What the event records (a summary of repeated refusals appends `.repeated`):{all}"
            )))
            .into()
    }
}

impl utoipa::ToSchema for AuditActionName {}
