//! `/api/v1/roles` and `/api/v1/operators`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use sigil_core::ErrorCode;
use sigil_core::access::authz::perm;
use sigil_core::access::operator::{Operator, Role};
use sigil_core::access::operator_import::{ImportMode, ImportReport, ParsedRow, parse_csv};
use sigil_core::access::operators::{CreateOperator, UpdateOperator};
use sigil_core::access::roles::RoleInput;
use sigil_core::page::page_size;
use sigil_core::ports::{OperatorFilter, PageRequest};
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
        .routes(routes!(list_roles, create_role))
        .routes(routes!(show_role, put_role, delete_role))
        .routes(routes!(list_operators, create_operator))
        .routes(routes!(show_operator, update_operator))
        .routes(routes!(enable_operator))
        .routes(routes!(disable_operator))
        .routes(routes!(operator_scope))
        .routes(routes!(import_operators))
}

/// A role.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RoleView {
    /// Unique name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Granted permissions.
    pub permissions: Vec<String>,
    /// Roles that may not be held together with this one.
    pub excludes: Vec<String>,
    /// Shipped with Sigil (read-only).
    pub built_in: bool,
    /// Last change.
    pub updated_at: String,
}

impl From<Role> for RoleView {
    fn from(r: Role) -> Self {
        Self {
            name: r.name,
            description: r.description,
            permissions: r.permissions.to_vec(),
            excludes: r.excludes,
            built_in: r.built_in,
            updated_at: rfc3339(r.updated_at),
        }
    }
}

/// Body of `POST /api/v1/roles`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRoleBody {
    /// Unique name (lowercase letters, digits, `-`, `_`).
    #[schema(pattern = "^[a-z0-9_-]{1,64}$")]
    name: String,
    /// Description.
    #[serde(default)]
    description: String,
    /// Permission patterns.
    #[schema(value_type = Vec<super::PermissionName>)]
    permissions: Vec<String>,
    /// Roles that may not be held together with this one (separation of duties).
    #[serde(default)]
    excludes: Vec<String>,
}

/// Body of `PUT /api/v1/roles/{name}`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutRoleBody {
    /// Description.
    #[serde(default)]
    description: String,
    /// Permission patterns.
    #[schema(value_type = Vec<super::PermissionName>)]
    permissions: Vec<String>,
    /// Roles that may not be held together with this one (separation of duties).
    #[serde(default)]
    excludes: Vec<String>,
}

/// List roles.
#[utoipa::path(get, path = "/api/v1/roles", tag = "roles",
    responses((status = 200, body = Vec<RoleView>), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn list_roles(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::RolesRead>,
) -> Result<axum::Json<Vec<RoleView>>, ApiError> {
    Ok(axum::Json(st.roles.list(&cap).await?.into_iter().map(Into::into).collect()))
}

/// Create a role.
#[utoipa::path(post, path = "/api/v1/roles", tag = "roles", request_body = CreateRoleBody,
    responses((status = 201, body = RoleView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn create_role(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::RolesWrite>,
    Json(b): Json<CreateRoleBody>,
) -> Result<impl IntoResponse, ApiError> {
    let input =
        RoleInput { description: b.description, permissions: b.permissions, excludes: b.excludes };
    let role = st.roles.create(&cap, &b.name, input).await?;
    Ok((StatusCode::CREATED, axum::Json(RoleView::from(role))))
}

/// Show a role.
#[utoipa::path(get, path = "/api/v1/roles/{name}", tag = "roles", params(("name" = String, Path)),
    responses((status = 200, body = RoleView), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn show_role(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::RolesRead>,
    Path(name): Path<String>,
) -> Result<axum::Json<RoleView>, ApiError> {
    Ok(axum::Json(st.roles.get(&cap, &name).await?.into()))
}

/// Replace a role's description and permissions (built-in roles are read-only).
#[utoipa::path(put, path = "/api/v1/roles/{name}", tag = "roles", params(("name" = String, Path)),
    request_body = PutRoleBody,
    responses((status = 200, body = RoleView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn put_role(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::RolesWrite>,
    Path(name): Path<String>,
    Json(b): Json<PutRoleBody>,
) -> Result<axum::Json<RoleView>, ApiError> {
    let input =
        RoleInput { description: b.description, permissions: b.permissions, excludes: b.excludes };
    Ok(axum::Json(st.roles.update(&cap, &name, input).await?.into()))
}

/// Delete a role no operator holds.
#[utoipa::path(delete, path = "/api/v1/roles/{name}", tag = "roles", params(("name" = String, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn delete_role(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::RolesWrite>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    st.roles.delete(&cap, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An operator.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct OperatorView {
    /// Identifier.
    pub id: String,
    /// Login name.
    pub username: String,
    /// Display name.
    pub display_name: String,
    /// E-mail.
    pub email: Option<String>,
    /// Role names.
    pub roles: Vec<String>,
    /// `active` or `disabled`.
    pub status: String,
    /// Bound client certificate fingerprint.
    pub client_cert_sha256: Option<String>,
    /// Sees every office; otherwise only `divisions` and `offices`.
    pub unrestricted: bool,
    /// Divisions whose offices the operator sees.
    pub divisions: Vec<String>,
    /// Offices the operator sees.
    pub offices: Vec<String>,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

impl From<Operator> for OperatorView {
    fn from(o: Operator) -> Self {
        Self {
            id: o.id.to_string(),
            username: o.username,
            display_name: o.display_name,
            email: o.email,
            roles: o.roles,
            status: if o.enabled { "active" } else { "disabled" }.into(),
            client_cert_sha256: o.client_cert_sha256,
            unrestricted: o.unrestricted,
            divisions: o.divisions.iter().map(Uuid::to_string).collect(),
            offices: o.offices.iter().map(Uuid::to_string).collect(),
            created_at: rfc3339(o.created_at),
            updated_at: rfc3339(o.updated_at),
        }
    }
}

/// A page of operators.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct OperatorPage {
    /// Operators, oldest first.
    pub items: Vec<OperatorView>,
    /// Cursor for the next page.
    pub next_cursor: Option<String>,
}

/// Body of `POST /api/v1/operators`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOperatorBody {
    /// Unique login name.
    #[schema(pattern = "^[A-Za-z0-9._@-]{1,128}$")]
    username: String,
    /// Display name (default: the username).
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\s\x00-\x1f\x7f](?:[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f])?$"
    )]
    display_name: Option<String>,
    /// E-mail.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(\\.[A-Za-z0-9-]{1,63})+$")]
    email: Option<String>,
    /// Role names (see `GET /api/v1/roles`).
    #[serde(default)]
    roles: Vec<String>,
    /// Client certificate SHA-256 fingerprint that authenticates as this operator.
    #[serde(default)]
    client_cert_sha256: Option<String>,
    /// Sees every office (default: true when neither `divisions` nor `offices` is given).
    #[serde(default)]
    unrestricted: Option<bool>,
    /// Division ids: the operator sees every office in them.
    #[serde(default)]
    divisions: Vec<Uuid>,
    /// Office ids the operator sees.
    #[serde(default)]
    offices: Vec<Uuid>,
}

/// Body of `PATCH /api/v1/operators/{id}`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOperatorBody {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    email: Option<Option<String>>,
    #[serde(default)]
    roles: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    client_cert_sha256: Option<Option<String>>,
    /// Sees every office.
    #[serde(default)]
    unrestricted: Option<bool>,
    /// Replaces the divisions.
    #[serde(default)]
    divisions: Option<Vec<Uuid>>,
    /// Replaces the offices.
    #[serde(default)]
    offices: Option<Vec<Uuid>>,
}

/// Query of `GET /api/v1/operators`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct OperatorQuery {
    /// `active` or `disabled`.
    #[param(pattern = "^(active|disabled)$")]
    status: Option<String>,
    /// Holding this role.
    role: Option<String>,
    /// Username or display name contains (case-insensitive).
    name: Option<String>,
    /// Page size, 1 to 500.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// Cursor.
    #[param(value_type = Option<uuid::Uuid>)]
    cursor: Option<String>,
}

fn operator_id(s: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(s).map_err(|_| ApiError::not_found())
}

/// List operators.
#[utoipa::path(get, path = "/api/v1/operators", tag = "operators", params(OperatorQuery),
    responses((status = 200, body = OperatorPage), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn list_operators(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::OperatorsRead>,
    Query(q): Query<OperatorQuery>,
) -> Result<axum::Json<OperatorPage>, ApiError> {
    let enabled = match q.status.as_deref() {
        None => None,
        Some("active") => Some(true),
        Some("disabled") => Some(false),
        Some(other) => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidFilter,
                format!("status must be active or disabled, got `{other}`"),
            ));
        }
    };
    let filter = OperatorFilter { enabled, role: q.role, name_contains: q.name };
    let p = st
        .operators
        .list(&cap, filter, PageRequest { after: q.cursor, limit: page_size(q.limit)? })
        .await?;
    Ok(axum::Json(OperatorPage {
        items: p.items.into_iter().map(Into::into).collect(),
        next_cursor: p.next_cursor,
    }))
}

/// Create an operator.
#[utoipa::path(post, path = "/api/v1/operators", tag = "operators", request_body = CreateOperatorBody,
    responses((status = 201, body = OperatorView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn create_operator(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::OperatorsCreate>,
    Json(b): Json<CreateOperatorBody>,
) -> Result<impl IntoResponse, ApiError> {
    let req = CreateOperator::from(b);
    Ok((StatusCode::CREATED, axum::Json(OperatorView::from(st.operators.create(&cap, req).await?))))
}

/// Show an operator.
#[utoipa::path(get, path = "/api/v1/operators/{id}", tag = "operators", params(("id" = String, Path)),
    responses((status = 200, body = OperatorView), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn show_operator(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::OperatorsRead>,
    Path(id): Path<String>,
) -> Result<axum::Json<OperatorView>, ApiError> {
    Ok(axum::Json(st.operators.get(&cap, operator_id(&id)?).await?.into()))
}

/// Change an operator's details, roles or client certificate.
#[utoipa::path(patch, path = "/api/v1/operators/{id}", tag = "operators", params(("id" = String, Path)),
    request_body = UpdateOperatorBody,
    responses((status = 200, body = OperatorView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn update_operator(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::OperatorsUpdate>,
    Path(id): Path<String>,
    Json(b): Json<UpdateOperatorBody>,
) -> Result<axum::Json<OperatorView>, ApiError> {
    let patch = UpdateOperator {
        display_name: b.display_name,
        email: b.email,
        roles: b.roles,
        client_cert_sha256: b.client_cert_sha256,
        unrestricted: b.unrestricted,
        divisions: b.divisions,
        offices: b.offices,
    };
    Ok(axum::Json(st.operators.update(&cap, operator_id(&id)?, patch).await?.into()))
}

/// Enable an operator.
#[utoipa::path(post, path = "/api/v1/operators/{id}/enable", tag = "operators", params(("id" = String, Path)),
    responses((status = 200, body = OperatorView), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn enable_operator(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::OperatorsDisable>,
    Path(id): Path<String>,
) -> Result<axum::Json<OperatorView>, ApiError> {
    Ok(axum::Json(st.operators.set_enabled(&cap, operator_id(&id)?, true).await?.into()))
}

/// Disable an operator: its API keys and client certificate stop working at once.
#[utoipa::path(post, path = "/api/v1/operators/{id}/disable", tag = "operators", params(("id" = String, Path)),
    responses((status = 200, body = OperatorView), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn disable_operator(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::OperatorsDisable>,
    Path(id): Path<String>,
) -> Result<axum::Json<OperatorView>, ApiError> {
    Ok(axum::Json(st.operators.set_enabled(&cap, operator_id(&id)?, false).await?.into()))
}

/// An operator's visibility scope.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ScopeView {
    /// The operator.
    pub operator_id: String,
    /// Sees every office (then `divisions` and `offices` are empty).
    pub unrestricted: bool,
    /// Assigned divisions.
    pub divisions: Vec<super::org::DivisionView>,
    /// Every office the operator sees: assigned ones and those of its divisions.
    pub offices: Vec<super::org::OfficeView>,
}

/// The divisions and offices an operator sees.
#[utoipa::path(get, path = "/api/v1/operators/{id}/scope", tag = "operators", params(("id" = String, Path)),
    responses((status = 200, body = ScopeView), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn operator_scope(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::OperatorsRead>,
    Path(id): Path<String>,
) -> Result<axum::Json<ScopeView>, ApiError> {
    let (op, divisions, offices) = st.operators.scope(&cap, operator_id(&id)?).await?;
    Ok(axum::Json(ScopeView {
        operator_id: op.id.to_string(),
        unrestricted: op.unrestricted,
        divisions: divisions.into_iter().map(Into::into).collect(),
        offices: offices.into_iter().map(Into::into).collect(),
    }))
}

/// Query of `POST /api/v1/operators/import`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// `all_or_nothing` (default): every row valid or nothing is written; `best_effort`: each
    /// valid row is created.
    #[param(value_type = Option<ImportMode>)]
    mode: Option<String>,
}

impl From<CreateOperatorBody> for CreateOperator {
    fn from(b: CreateOperatorBody) -> Self {
        CreateOperator {
            username: b.username,
            display_name: b.display_name,
            email: b.email,
            roles: b.roles,
            client_cert_sha256: b.client_cert_sha256,
            unrestricted: b.unrestricted,
            divisions: b.divisions,
            offices: b.offices,
        }
    }
}

/// JSON rows: an array of operator objects (as `POST /api/v1/operators` takes), each read on
/// its own so that one bad row is reported rather than refusing the whole body.
fn json_rows(body: &[u8]) -> Result<Vec<ParsedRow>, ApiError> {
    let rows: Vec<serde_json::Value> = crate::extract::parse_json(body)?;
    Ok(rows
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let username = v["username"].as_str().unwrap_or_default().to_owned();
            let parsed = serde_json::from_value::<CreateOperatorBody>(v)
                .map(Into::into)
                .map_err(|e| sigil_core::CoreError::invalid(ErrorCode::InvalidRow, e.to_string()));
            (i + 1, username, parsed)
        })
        .collect())
}

/// Import operators in bulk from JSON (an array of operator objects) or CSV (`text/csv`, a
/// header row with `username`, `display_name`, `email`, `roles`, `divisions`, `offices`,
/// `unrestricted`, `client_cert_sha256`; lists separated by `;`). Each row is validated like a
/// single create and reported; see `committed` for whether anything was written.
#[utoipa::path(post, path = "/api/v1/operators/import", tag = "operators", params(ImportQuery),
    request_body(content = Vec<CreateOperatorBody>, description = "JSON array, or text/csv"),
    responses((status = 200, body = ImportReport), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 415, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn import_operators(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::OperatorsCreate>,
    Query(q): Query<ImportQuery>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<axum::Json<ImportReport>, ApiError> {
    let mode = match q.mode.as_deref() {
        None | Some("all_or_nothing") => ImportMode::AllOrNothing,
        Some("best_effort") => ImportMode::BestEffort,
        Some(other) => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidQuery,
                format!("mode must be all_or_nothing or best_effort, got `{other}`"),
            ));
        }
    };
    let ctype = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let rows = if ctype.starts_with("text/csv") {
        let text = std::str::from_utf8(&body)
            .map_err(|_| ApiError::bad_request(ErrorCode::InvalidCsv, "the CSV is not UTF-8"))?;
        parse_csv(text)?
    } else if ctype.starts_with("application/json") {
        json_rows(&body)?
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "send application/json or text/csv",
        ));
    };
    Ok(axum::Json(st.operators.import(&cap, rows, mode).await?))
}
