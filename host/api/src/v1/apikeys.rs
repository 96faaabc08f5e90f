//! `/api/v1/api-keys`: create, list, show, update, revoke, rotate.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use sigil_core::access::api_key::{ApiKey, KeyStatus, RateLimit};
use sigil_core::access::api_keys::{CreateApiKey, IssuedApiKey, UpdateApiKey};
use sigil_core::access::authz::perm;
use sigil_core::page::page_size;
use sigil_core::ports::{ApiKeyFilter, Clock, PageRequest, SystemClock};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{double_option, rfc3339};
use crate::AppState;
use crate::error::{ApiError, Problem};
use crate::extract::{Authorized, Json, Query};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, revoke))
        .routes(routes!(rotate))
}

fn default_expires() -> String {
    "never".into()
}

/// Body of `POST /api/v1/api-keys`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    /// Unique name.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\s\x00-\x1f\x7f](?:[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f])?$"
    )]
    name: String,
    /// What the key is for.
    #[serde(default)]
    description: String,
    /// `30d`, `60d`, `never` (default) or a future RFC 3339 date-time.
    #[serde(default = "default_expires")]
    #[schema(
        pattern = r"^(30d|60d|never|2[0-9]{3}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9](\.[0-9]+)?(Z|[+-][0-2][0-9]:[0-5][0-9]))$"
    )]
    expires: String,
    /// Permissions (`resource:action`, `resource:*`, `*`); see `GET /api/v1/permissions`.
    #[schema(min_items = 1, value_type = Vec<super::PermissionName>)]
    permissions: Vec<String>,
    /// Optional rate limit.
    #[serde(default)]
    rate_limit: Option<RateLimit>,
    /// Allowed client addresses and CIDR ranges (empty: any).
    #[serde(default)]
    ip_whitelist: Vec<String>,
    /// SHA-256 fingerprint of a client certificate that authenticates as this key (mTLS).
    #[serde(default)]
    client_cert_sha256: Option<String>,
    /// Operator the key acts for; the key then never exceeds the operator's roles and stops
    /// working when the operator is disabled.
    #[serde(default)]
    operator_id: Option<Uuid>,
    /// Token holder (a person) the key acts for: it then reaches that person's devices through
    /// the self-service endpoints (`/api/v1/self`, permission `self_service:use`) and nothing
    /// of anyone else's.
    #[serde(default)]
    holder_id: Option<Uuid>,
}

/// Body of `PATCH /api/v1/api-keys/{id}`; absent fields are unchanged, `null` clears.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    expires: Option<String>,
    #[serde(default)]
    permissions: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<RateLimit>)]
    rate_limit: Option<Option<RateLimit>>,
    #[serde(default)]
    ip_whitelist: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    client_cert_sha256: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<uuid::Uuid>)]
    operator_id: Option<Option<Uuid>>,
}

/// Body of `POST /api/v1/api-keys/{id}/rotate`.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    /// How long the old secret keeps working (0 to 604800 seconds; default 0).
    #[serde(default)]
    grace_period_seconds: Option<i64>,
}

/// An API key as shown by the API (never its secret or hash).
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ApiKeyView {
    /// Identifier.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Public prefix of the current secret (helps identify which secret a client holds).
    pub prefix: String,
    /// Permissions.
    pub permissions: Vec<String>,
    /// `active`, `expired` or `revoked`.
    pub status: KeyStatus,
    /// Expiry, RFC 3339, or null for never.
    pub expires_at: Option<String>,
    /// Rate limit.
    pub rate_limit: Option<RateLimit>,
    /// Allowed client addresses.
    pub ip_whitelist: Vec<String>,
    /// Bound operator.
    pub operator_id: Option<String>,
    /// Bound token holder.
    pub holder_id: Option<String>,
    /// The key that minted this one (its lineage; absent when an operator, the command line or
    /// the server created it).
    pub parent_id: Option<String>,
    /// Bound client certificate fingerprint.
    pub client_cert_sha256: Option<String>,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
    /// Creator (audit actor id).
    pub created_by: String,
    /// Revocation time.
    pub revoked_at: Option<String>,
    /// Revocation reason.
    pub revocation_reason: Option<String>,
    /// Last rotation.
    pub rotated_at: Option<String>,
    /// End of the rotation grace period of the previous secret.
    pub previous_secret_valid_until: Option<String>,
    /// Last accepted use (recorded at most once a minute per node).
    pub last_used_at: Option<String>,
}

impl ApiKeyView {
    fn from_key(k: ApiKey) -> Self {
        let now = SystemClock.now();
        Self {
            id: k.id.to_string(),
            status: k.status(now),
            name: k.name,
            description: k.description,
            prefix: k.prefix,
            permissions: k.permissions.to_vec(),
            expires_at: k.expires_at.map(rfc3339),
            rate_limit: k.rate_limit,
            ip_whitelist: k.ip_whitelist.iter().map(ToString::to_string).collect(),
            operator_id: k.operator_id,
            holder_id: k.holder_id.map(|h| h.to_string()),
            parent_id: k.parent_id.map(|h| h.to_string()),
            client_cert_sha256: k.client_cert_sha256,
            created_at: rfc3339(k.created_at),
            updated_at: rfc3339(k.updated_at),
            created_by: k.created_by,
            revoked_at: k.revoked_at.map(rfc3339),
            revocation_reason: k.revocation_reason,
            rotated_at: k.rotated_at.map(rfc3339),
            previous_secret_valid_until: k.previous_expires_at.filter(|t| *t > now).map(rfc3339),
            last_used_at: k.last_used_at.map(rfc3339),
        }
    }
}

/// A key with its secret: returned once, by create and rotate.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct IssuedKeyView {
    /// The secret. It is not stored and cannot be shown again.
    pub key: String,
    /// The key.
    #[serde(flatten)]
    pub api_key: ApiKeyView,
}

impl From<IssuedApiKey> for IssuedKeyView {
    fn from(i: IssuedApiKey) -> Self {
        Self { key: i.secret.value.clone(), api_key: ApiKeyView::from_key(i.key) }
    }
}

/// A page of keys.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ApiKeyPage {
    /// Keys, oldest first.
    pub items: Vec<ApiKeyView>,
    /// Cursor for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// Query of `GET /api/v1/api-keys`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `active`, `expired` or `revoked`.
    #[param(value_type = Option<KeyStatus>)]
    status: Option<String>,
    /// Name contains (case-insensitive).
    name: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// Cursor from the previous page.
    #[param(value_type = Option<uuid::Uuid>)]
    cursor: Option<String>,
}

/// Query of `DELETE /api/v1/api-keys/{id}`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RevokeQuery {
    /// Why the key is revoked (recorded in the audit trail).
    reason: Option<String>,
    /// Also revoke every key this key minted, and the keys those minted (default false).
    cascade: Option<bool>,
}

fn key_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::not_found())
}

/// Create an API key. The secret is in the response and nowhere else. Authorization:
/// `api_keys:create`; the new key must lie within the caller's authority (permissions it holds,
/// an operator and holder inside its scope; a caller bound to an operator mints keys bound to
/// that operator by default) and expire no later than the key that creates it, which is
/// recorded as its `parent_id`.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "api-keys", request_body = CreateBody,
    responses((status = 201, body = IssuedKeyView), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 429, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn create(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::ApiKeysCreate>,
    Json(b): Json<CreateBody>,
) -> Result<impl IntoResponse, ApiError> {
    let req = CreateApiKey {
        name: b.name,
        description: b.description,
        expires: b.expires,
        permissions: b.permissions,
        rate_limit: b.rate_limit,
        ip_whitelist: b.ip_whitelist,
        client_cert_sha256: b.client_cert_sha256,
        operator_id: b.operator_id,
        holder_id: b.holder_id,
    };
    let issued = st.api_keys.create(&cap, req).await?;
    Ok((StatusCode::CREATED, axum::Json(IssuedKeyView::from(issued))))
}

/// List API keys, oldest first, with filters and cursor pagination. A caller with a restricted
/// scope sees only keys whose scope lies within its own.
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "api-keys", params(ListQuery),
    responses((status = 200, body = ApiKeyPage), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 429, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn list(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::ApiKeysRead>,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<ApiKeyPage>, ApiError> {
    let filter = ApiKeyFilter {
        status: q.status.as_deref().map(KeyStatus::parse).transpose()?,
        name_contains: q.name,
        ..Default::default()
    };
    let page = PageRequest { after: q.cursor, limit: page_size(q.limit)? };
    let p = st.api_keys.list(&cap, filter, page).await?;
    Ok(axum::Json(ApiKeyPage {
        items: p.items.into_iter().map(ApiKeyView::from_key).collect(),
        next_cursor: p.next_cursor,
    }))
}

/// Show one API key.
#[utoipa::path(get, path = "/api/v1/api-keys/{id}", tag = "api-keys",
    params(("id" = String, Path, description = "API key id")),
    responses((status = 200, body = ApiKeyView), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn show(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::ApiKeysRead>,
    Path(id): Path<String>,
) -> Result<axum::Json<ApiKeyView>, ApiError> {
    Ok(axum::Json(ApiKeyView::from_key(st.api_keys.get(&cap, key_id(&id)?).await?)))
}

/// Change an API key's settings. Authorization: `api_keys:update`; the key, before and after
/// the change, must lie within the caller's authority (403 `authority_exceeded`).
#[utoipa::path(patch, path = "/api/v1/api-keys/{id}", tag = "api-keys", request_body = UpdateBody,
    params(("id" = String, Path, description = "API key id")),
    responses((status = 200, body = ApiKeyView), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn update(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::ApiKeysUpdate>,
    Path(id): Path<String>,
    Json(b): Json<UpdateBody>,
) -> Result<axum::Json<ApiKeyView>, ApiError> {
    let patch = UpdateApiKey {
        name: b.name,
        description: b.description,
        expires: b.expires,
        permissions: b.permissions,
        rate_limit: b.rate_limit,
        ip_whitelist: b.ip_whitelist,
        client_cert_sha256: b.client_cert_sha256,
        operator_id: b.operator_id,
    };
    Ok(axum::Json(ApiKeyView::from_key(st.api_keys.update(&cap, key_id(&id)?, patch).await?)))
}

/// Revoke an API key (takes effect at once; repeating it is harmless). Authorization:
/// `api_keys:revoke`, and the key must lie within the caller's authority (its effective
/// permissions and scope no wider than the caller's; 404 outside the caller's scope, 403
/// `authority_exceeded` otherwise). `cascade=true` also revokes the keys it minted.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "api-keys", params(("id" = String, Path, description = "API key id"), RevokeQuery),
    responses((status = 200, body = ApiKeyView), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn revoke(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::ApiKeysRevoke>,
    Path(id): Path<String>,
    Query(q): Query<RevokeQuery>,
) -> Result<axum::Json<ApiKeyView>, ApiError> {
    let cascade = q.cascade.unwrap_or(false);
    Ok(axum::Json(ApiKeyView::from_key(
        st.api_keys.revoke(&cap, key_id(&id)?, q.reason, cascade).await?,
    )))
}

/// Replace an API key's secret, optionally keeping the old one valid for a grace period.
/// Authorization: `api_keys:rotate`, and the key must lie within the caller's authority (403
/// `authority_exceeded` otherwise).
#[utoipa::path(post, path = "/api/v1/api-keys/{id}/rotate", tag = "api-keys", request_body = RotateBody,
    params(("id" = String, Path, description = "API key id")),
    responses((status = 200, body = IssuedKeyView), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn rotate(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::ApiKeysRotate>,
    Path(id): Path<String>,
    Json(b): Json<RotateBody>,
) -> Result<axum::Json<IssuedKeyView>, ApiError> {
    let issued = st.api_keys.rotate(&cap, key_id(&id)?, b.grace_period_seconds).await?;
    Ok(axum::Json(IssuedKeyView::from(issued)))
}
