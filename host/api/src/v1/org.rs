//! `/api/v1/organizations`, `/api/v1/divisions` and `/api/v1/offices`: the organization
//! structure, seen through the caller's scope.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use sigil_core::ErrorCode;
use sigil_core::access::authz::perm;
use sigil_core::org::OrgFilter;
use sigil_core::org::organizations::OrgInput;
use sigil_core::org::{Division, Office, Organization};
use sigil_core::page::{Page, page_size};
use sigil_core::ports::PageRequest;
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
        .routes(routes!(list_organizations, create_organization))
        .routes(routes!(show_organization, update_organization))
        .routes(routes!(list_divisions, create_division))
        .routes(routes!(show_division, update_division))
        .routes(routes!(list_offices, create_office))
        .routes(routes!(show_office, update_office))
}

/// An organization.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct OrganizationView {
    /// Id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Free-form attributes.
    pub metadata: serde_json::Value,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

impl From<Organization> for OrganizationView {
    fn from(o: Organization) -> Self {
        Self {
            id: o.id.to_string(),
            name: o.name,
            description: o.description,
            metadata: o.metadata,
            created_at: rfc3339(o.created_at),
            updated_at: rfc3339(o.updated_at),
        }
    }
}

/// A division.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct DivisionView {
    /// Id.
    pub id: String,
    /// Its organization.
    pub organization_id: String,
    /// Name, unique in the organization.
    pub name: String,
    /// Description.
    pub description: String,
    /// Free-form attributes.
    pub metadata: serde_json::Value,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

impl From<Division> for DivisionView {
    fn from(d: Division) -> Self {
        Self {
            id: d.id.to_string(),
            organization_id: d.organization_id.to_string(),
            name: d.name,
            description: d.description,
            metadata: d.metadata,
            created_at: rfc3339(d.created_at),
            updated_at: rfc3339(d.updated_at),
        }
    }
}

/// A registration office.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct OfficeView {
    /// Id.
    pub id: String,
    /// Its organization.
    pub organization_id: String,
    /// Its division.
    pub division_id: String,
    /// Unique code.
    pub code: String,
    /// Name.
    pub name: String,
    /// Postal address.
    pub address: Option<String>,
    /// Contact e-mail.
    pub email: Option<String>,
    /// Contact telephone.
    pub phone: Option<String>,
    /// Office-level metadata.
    pub metadata: serde_json::Value,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

impl From<Office> for OfficeView {
    fn from(o: Office) -> Self {
        Self {
            id: o.id.to_string(),
            organization_id: o.organization_id.to_string(),
            division_id: o.division_id.to_string(),
            code: o.code,
            name: o.name,
            address: o.address,
            email: o.email,
            phone: o.phone,
            metadata: o.metadata,
            created_at: rfc3339(o.created_at),
            updated_at: rfc3339(o.updated_at),
        }
    }
}

/// A page of organizations.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct OrganizationPage {
    /// Oldest first.
    pub items: Vec<OrganizationView>,
    /// Cursor for the next page.
    pub next_cursor: Option<String>,
}

/// A page of divisions.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct DivisionPage {
    /// Oldest first.
    pub items: Vec<DivisionView>,
    /// Cursor for the next page.
    pub next_cursor: Option<String>,
}

/// A page of offices.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct OfficePage {
    /// Oldest first.
    pub items: Vec<OfficeView>,
    /// Cursor for the next page.
    pub next_cursor: Option<String>,
}

fn page<T, V: From<T>>(p: Page<T>) -> (Vec<V>, Option<String>) {
    (p.items.into_iter().map(Into::into).collect(), p.next_cursor)
}

/// Body of `POST /api/v1/organizations` and `POST /api/v1/divisions`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrgBody {
    /// Name (1 to 200 characters).
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    /// Description.
    #[serde(default)]
    #[schema(max_length = 2000)]
    description: Option<String>,
    /// Free-form attributes (a JSON object, at most 16 KiB).
    #[serde(default)]
    metadata: Option<serde_json::Value>,
    /// The parent organization (divisions only).
    #[serde(default)]
    organization_id: Option<Uuid>,
}

/// Body of `PATCH` on an organization or division.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrgBody {
    /// New name.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200)]
    name: Option<String>,
    /// New description.
    #[serde(default)]
    #[schema(max_length = 2000)]
    description: Option<String>,
    /// Merge patch (RFC 7386) into the metadata: `null` removes a member.
    #[serde(default)]
    metadata: Option<serde_json::Value>,
}

/// Body of `POST /api/v1/offices`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOfficeBody {
    /// The division it belongs to.
    division_id: Uuid,
    /// Unique code: 1 to 32 letters, digits, `-`, `_`, `.`.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,32}$")]
    code: String,
    /// Name.
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    /// Postal address.
    #[serde(default)]
    #[schema(max_length = 500)]
    address: Option<String>,
    /// Contact e-mail.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(\\.[A-Za-z0-9-]{1,63})+$")]
    email: Option<String>,
    /// Contact telephone.
    #[serde(default)]
    #[schema(max_length = 50)]
    phone: Option<String>,
    /// Office-level metadata (a JSON object, at most 16 KiB).
    #[serde(default)]
    metadata: Option<serde_json::Value>,
}

/// Body of `PATCH /api/v1/offices/{id}`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOfficeBody {
    /// New name.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200)]
    name: Option<String>,
    /// New address (`null` clears).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 500)]
    address: Option<Option<String>>,
    /// New e-mail (`null` clears).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    email: Option<Option<String>>,
    /// New telephone (`null` clears).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 50)]
    phone: Option<Option<String>>,
    /// Merge patch (RFC 7386) into the office metadata.
    #[serde(default)]
    metadata: Option<serde_json::Value>,
}

/// Query of the organization lists.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct OrgQuery {
    /// Of this organization (divisions, offices).
    organization_id: Option<Uuid>,
    /// Of this division (offices).
    division_id: Option<Uuid>,
    /// Name contains (case-insensitive).
    q: Option<String>,
    /// Page size, 1 to 500.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// Cursor.
    #[param(value_type = Option<uuid::Uuid>)]
    cursor: Option<String>,
}

impl OrgQuery {
    fn split(self) -> Result<(OrgFilter, PageRequest), ApiError> {
        Ok((
            OrgFilter {
                organization_id: self.organization_id,
                division_id: self.division_id,
                q: self.q,
            },
            PageRequest { after: self.cursor, limit: page_size(self.limit)? },
        ))
    }
}

fn id(s: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(s).map_err(|_| ApiError::not_found())
}

/// List organizations (those holding an office the caller sees).
#[utoipa::path(get, path = "/api/v1/organizations", tag = "organizations", params(OrgQuery),
    responses((status = 200, body = OrganizationPage), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn list_organizations(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::OrganizationsRead>,
    Query(q): Query<OrgQuery>,
) -> Result<axum::Json<OrganizationPage>, ApiError> {
    let text = q.q.clone();
    let (_, req) = q.split()?;
    let (items, next_cursor) = page(st.org.organizations(&cap, text, req).await?);
    Ok(axum::Json(OrganizationPage { items, next_cursor }))
}

/// Create an organization.
#[utoipa::path(post, path = "/api/v1/organizations", tag = "organizations", request_body = CreateOrgBody,
    responses((status = 201, body = OrganizationView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn create_organization(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::OrganizationsWrite>,
    Json(b): Json<CreateOrgBody>,
) -> Result<impl IntoResponse, ApiError> {
    if b.organization_id.is_some() {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidField,
            "an organization has no `organization_id`",
        ));
    }
    let input = OrgInput {
        name: Some(b.name),
        description: b.description,
        metadata: b.metadata,
        ..Default::default()
    };
    let o = st.org.create_organization(&cap, input).await?;
    Ok((StatusCode::CREATED, axum::Json(OrganizationView::from(o))))
}

/// Show an organization.
#[utoipa::path(get, path = "/api/v1/organizations/{id}", tag = "organizations", params(("id" = String, Path)),
    responses((status = 200, body = OrganizationView), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn show_organization(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::OrganizationsRead>,
    Path(i): Path<String>,
) -> Result<axum::Json<OrganizationView>, ApiError> {
    Ok(axum::Json(st.org.organization(&cap, id(&i)?).await?.into()))
}

/// Change an organization.
#[utoipa::path(patch, path = "/api/v1/organizations/{id}", tag = "organizations", params(("id" = String, Path)),
    request_body = UpdateOrgBody,
    responses((status = 200, body = OrganizationView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn update_organization(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::OrganizationsWrite>,
    Path(i): Path<String>,
    Json(b): Json<UpdateOrgBody>,
) -> Result<axum::Json<OrganizationView>, ApiError> {
    let input = OrgInput {
        name: b.name,
        description: b.description,
        metadata: b.metadata,
        ..Default::default()
    };
    Ok(axum::Json(st.org.update_organization(&cap, id(&i)?, input).await?.into()))
}

/// List divisions.
#[utoipa::path(get, path = "/api/v1/divisions", tag = "organizations", params(OrgQuery),
    responses((status = 200, body = DivisionPage), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn list_divisions(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::OrganizationsRead>,
    Query(q): Query<OrgQuery>,
) -> Result<axum::Json<DivisionPage>, ApiError> {
    let (f, req) = q.split()?;
    let (items, next_cursor) = page(st.org.divisions(&cap, f, req).await?);
    Ok(axum::Json(DivisionPage { items, next_cursor }))
}

/// Create a division in an organization.
#[utoipa::path(post, path = "/api/v1/divisions", tag = "organizations", request_body = CreateOrgBody,
    responses((status = 201, body = DivisionView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn create_division(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::OrganizationsWrite>,
    Json(b): Json<CreateOrgBody>,
) -> Result<impl IntoResponse, ApiError> {
    let input = OrgInput {
        name: Some(b.name),
        description: b.description,
        metadata: b.metadata,
        parent: b.organization_id,
        ..Default::default()
    };
    let d = st.org.create_division(&cap, input).await?;
    Ok((StatusCode::CREATED, axum::Json(DivisionView::from(d))))
}

/// Show a division.
#[utoipa::path(get, path = "/api/v1/divisions/{id}", tag = "organizations", params(("id" = String, Path)),
    responses((status = 200, body = DivisionView), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn show_division(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::OrganizationsRead>,
    Path(i): Path<String>,
) -> Result<axum::Json<DivisionView>, ApiError> {
    Ok(axum::Json(st.org.division(&cap, id(&i)?).await?.into()))
}

/// Change a division.
#[utoipa::path(patch, path = "/api/v1/divisions/{id}", tag = "organizations", params(("id" = String, Path)),
    request_body = UpdateOrgBody,
    responses((status = 200, body = DivisionView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn update_division(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::OrganizationsWrite>,
    Path(i): Path<String>,
    Json(b): Json<UpdateOrgBody>,
) -> Result<axum::Json<DivisionView>, ApiError> {
    let input = OrgInput {
        name: b.name,
        description: b.description,
        metadata: b.metadata,
        ..Default::default()
    };
    Ok(axum::Json(st.org.update_division(&cap, id(&i)?, input).await?.into()))
}

/// List registration offices (those in the caller's scope).
#[utoipa::path(get, path = "/api/v1/offices", tag = "organizations", params(OrgQuery),
    responses((status = 200, body = OfficePage), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn list_offices(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::OrganizationsRead>,
    Query(q): Query<OrgQuery>,
) -> Result<axum::Json<OfficePage>, ApiError> {
    let (f, req) = q.split()?;
    let (items, next_cursor) = page(st.org.offices(&cap, f, req).await?);
    Ok(axum::Json(OfficePage { items, next_cursor }))
}

/// Create a registration office in a division.
#[utoipa::path(post, path = "/api/v1/offices", tag = "organizations", request_body = CreateOfficeBody,
    responses((status = 201, body = OfficeView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn create_office(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::OrganizationsWrite>,
    Json(b): Json<CreateOfficeBody>,
) -> Result<impl IntoResponse, ApiError> {
    let input = OrgInput {
        name: Some(b.name),
        metadata: b.metadata,
        parent: Some(b.division_id),
        code: Some(b.code),
        address: Some(b.address),
        email: Some(b.email),
        phone: Some(b.phone),
        ..Default::default()
    };
    let o = st.org.create_office(&cap, input).await?;
    Ok((StatusCode::CREATED, axum::Json(OfficeView::from(o))))
}

/// Show a registration office with its office-level metadata.
#[utoipa::path(get, path = "/api/v1/offices/{id}", tag = "organizations", params(("id" = String, Path)),
    responses((status = 200, body = OfficeView), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn show_office(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::OrganizationsRead>,
    Path(i): Path<String>,
) -> Result<axum::Json<OfficeView>, ApiError> {
    Ok(axum::Json(st.org.office(&cap, id(&i)?).await?.into()))
}

/// Change an office's name, contact details or metadata.
#[utoipa::path(patch, path = "/api/v1/offices/{id}", tag = "organizations", params(("id" = String, Path)),
    request_body = UpdateOfficeBody,
    responses((status = 200, body = OfficeView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn update_office(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::OrganizationsWrite>,
    Path(i): Path<String>,
    Json(b): Json<UpdateOfficeBody>,
) -> Result<axum::Json<OfficeView>, ApiError> {
    let input = OrgInput {
        name: b.name,
        metadata: b.metadata,
        address: b.address,
        email: b.email,
        phone: b.phone,
        ..Default::default()
    };
    Ok(axum::Json(st.org.update_office(&cap, id(&i)?, input).await?.into()))
}
