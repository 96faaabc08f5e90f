//! `/api/v1/requests`: enrolment requests — create, list with filters, details, enrich
//! metadata, approve, reject, cancel.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use sigil_core::access::authz::perm;
use sigil_core::cards::enrolment::RequestFilter;
use sigil_core::cards::enrolment::{
    Approval, CertificateItem, DeviceItem, EnrolmentRequest, RequestResult, RequestStatus,
};
use sigil_core::cards::enrolments::NewRequest;
use sigil_core::page::page_size;
use sigil_core::ports::PageRequest;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{parse_time, rfc3339};
use crate::AppState;
use crate::error::{ApiError, Problem};
use crate::extract::{Authorized, Json, Query, optional_body};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_requests, create_request))
        .routes(routes!(show_request, update_request))
        .routes(routes!(approve))
        .routes(routes!(reject))
        .routes(routes!(cancel))
}

/// An enrolment request.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RequestView {
    /// Id.
    pub id: String,
    /// Office (the person's).
    pub office_id: String,
    /// For whom.
    pub person_id: String,
    /// State.
    pub status: RequestStatus,
    /// Certificates asked for.
    pub certificates: Vec<CertificateItem>,
    /// Device asked for.
    pub device: Option<DeviceItem>,
    /// Who asked.
    pub requested_by: String,
    /// Approvals needed.
    pub approvals_required: u8,
    /// Whether the requester may approve.
    pub requester_may_approve: bool,
    /// Approvals so far.
    pub approvals: Vec<Approval>,
    /// Rejection or cancellation.
    pub decision: Option<Approval>,
    /// What was issued.
    pub result: RequestResult,
    /// Free-form attributes.
    pub metadata: serde_json::Value,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

impl From<EnrolmentRequest> for RequestView {
    fn from(r: EnrolmentRequest) -> Self {
        Self {
            id: r.id.to_string(),
            office_id: r.office_id.to_string(),
            person_id: r.person_id.to_string(),
            status: r.status,
            certificates: r.certificates,
            device: r.device,
            requested_by: r.requested_by,
            approvals_required: r.approvals_required,
            requester_may_approve: r.requester_may_approve,
            approvals: r.approvals,
            decision: r.decision,
            result: r.result,
            metadata: r.metadata,
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
        }
    }
}

/// A page of requests.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RequestPage {
    /// Oldest first.
    pub items: Vec<RequestView>,
    /// Cursor for the next page.
    pub next_cursor: Option<String>,
}

/// Body of `POST /api/v1/requests`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    /// For whom (a person the caller sees).
    person_id: Uuid,
    /// Certificates: a profile and a PKCS#10 request (PEM) each, at most 10.
    #[serde(default)]
    certificates: Vec<CertificateItem>,
    /// A device to register for the person (its certificates are linked to it).
    #[serde(default)]
    device: Option<DeviceItem>,
    /// Free-form attributes.
    #[serde(default)]
    metadata: Option<serde_json::Value>,
}

/// Body of `PATCH /api/v1/requests/{id}`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    /// Merge patch (RFC 7386) into the metadata.
    metadata: serde_json::Value,
}

/// Body of approve, reject and cancel (optional).
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// Comment (approve) or reason (reject, cancel).
    #[serde(default)]
    #[schema(max_length = 1000)]
    reason: Option<String>,
}

/// Query of `GET /api/v1/requests`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RequestQuery {
    /// In this state.
    #[param(value_type = Option<RequestStatus>)]
    status: Option<String>,
    /// Of this office.
    office_id: Option<Uuid>,
    /// Asked by this operator (or key) id.
    operator: Option<String>,
    /// Whose first certificate uses this profile.
    profile: Option<String>,
    /// For this person.
    person_id: Option<Uuid>,
    /// Created at or after (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    created_from: Option<String>,
    /// Created before (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    created_until: Option<String>,
    /// Page size, 1 to 500.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// Cursor.
    #[param(value_type = Option<uuid::Uuid>)]
    cursor: Option<String>,
}

fn id(s: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(s).map_err(|_| ApiError::not_found())
}

fn micros(field: &str, s: Option<&str>) -> Result<Option<i64>, ApiError> {
    s.map(|v| parse_time(field, v).map(sigil_core::audit::unix_micros)).transpose()
}

/// List requests in the caller's scope, filtered by status, dates, operator, office, profile.
#[utoipa::path(get, path = "/api/v1/requests", tag = "requests", params(RequestQuery),
    responses((status = 200, body = RequestPage), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn list_requests(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::RequestsRead>,
    Query(q): Query<RequestQuery>,
) -> Result<axum::Json<RequestPage>, ApiError> {
    let f = RequestFilter {
        status: q.status.as_deref().map(RequestStatus::parse).transpose()?,
        office_id: q.office_id,
        requested_by: q.operator,
        profile: q.profile,
        person_id: q.person_id,
        from_us: micros("created_from", q.created_from.as_deref())?,
        until_us: micros("created_until", q.created_until.as_deref())?,
    };
    let p = st
        .requests
        .list(&cap, f, PageRequest { after: q.cursor, limit: page_size(q.limit)? })
        .await?;
    Ok(axum::Json(RequestPage {
        items: p.items.into_iter().map(Into::into).collect(),
        next_cursor: p.next_cursor,
    }))
}

/// Create an enrolment request (pending until approved).
#[utoipa::path(post, path = "/api/v1/requests", tag = "requests", request_body = CreateBody,
    responses((status = 201, body = RequestView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn create_request(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::RequestsWrite>,
    Json(b): Json<CreateBody>,
) -> Result<impl IntoResponse, ApiError> {
    let n = NewRequest {
        person_id: b.person_id,
        certificates: b.certificates,
        device: b.device,
        metadata: b.metadata,
    };
    Ok((StatusCode::CREATED, axum::Json(RequestView::from(st.requests.create(&cap, n).await?))))
}

/// A request's full details.
#[utoipa::path(get, path = "/api/v1/requests/{id}", tag = "requests", params(("id" = String, Path)),
    responses((status = 200, body = RequestView), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn show_request(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::RequestsRead>,
    Path(i): Path<String>,
) -> Result<axum::Json<RequestView>, ApiError> {
    Ok(axum::Json(st.requests.get(&cap, id(&i)?).await?.into()))
}

/// Update or enrich a request's metadata.
#[utoipa::path(patch, path = "/api/v1/requests/{id}", tag = "requests", params(("id" = String, Path)),
    request_body = UpdateBody,
    responses((status = 200, body = RequestView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn update_request(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::RequestsWrite>,
    Path(i): Path<String>,
    Json(b): Json<UpdateBody>,
) -> Result<axum::Json<RequestView>, ApiError> {
    Ok(axum::Json(st.requests.update_metadata(&cap, id(&i)?, b.metadata).await?.into()))
}

fn reason(body: &[u8]) -> Result<Option<String>, ApiError> {
    let b: DecisionBody = optional_body(body)?;
    Ok(b.reason)
}

/// Approve a request; the approval that completes the quorum issues what it asks for.
#[utoipa::path(post, path = "/api/v1/requests/{id}/approve", tag = "requests", params(("id" = String, Path)),
    request_body(content = Option<DecisionBody>),
    responses((status = 200, body = RequestView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn approve(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::RequestsApprove>,
    Path(i): Path<String>,
    body: axum::body::Bytes,
) -> Result<axum::Json<RequestView>, ApiError> {
    Ok(axum::Json(st.requests.approve(&cap, id(&i)?, reason(&body)?).await?.into()))
}

/// Reject a pending request, with a reason.
#[utoipa::path(post, path = "/api/v1/requests/{id}/reject", tag = "requests", params(("id" = String, Path)),
    request_body(content = Option<DecisionBody>),
    responses((status = 200, body = RequestView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn reject(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::RequestsApprove>,
    Path(i): Path<String>,
    body: axum::body::Bytes,
) -> Result<axum::Json<RequestView>, ApiError> {
    Ok(axum::Json(st.requests.reject(&cap, id(&i)?, reason(&body)?).await?.into()))
}

/// Cancel a pending request, with a reason.
#[utoipa::path(post, path = "/api/v1/requests/{id}/cancel", tag = "requests", params(("id" = String, Path)),
    request_body(content = Option<DecisionBody>),
    responses((status = 200, body = RequestView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn cancel(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::RequestsWrite>,
    Path(i): Path<String>,
    body: axum::body::Bytes,
) -> Result<axum::Json<RequestView>, ApiError> {
    Ok(axum::Json(st.requests.cancel(&cap, id(&i)?, reason(&body)?).await?.into()))
}
