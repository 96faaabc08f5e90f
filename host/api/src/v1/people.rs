//! `/api/v1/people` (personal data with extended attributes, within the caller's scope) and
//! `/api/v1/custom-fields` (the definitions attributes are validated against).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use sigil_core::access::authz::perm;
use sigil_core::page::page_size;
use sigil_core::people::PersonFilter;
use sigil_core::people::directory::{FieldInput, PersonInput};
use sigil_core::people::{CustomField, FieldError, FieldType, Person};
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
        .routes(routes!(list_people, create_person))
        .routes(routes!(show_person, update_person))
        .routes(routes!(list_fields))
        .routes(routes!(show_field, put_field, delete_field))
        .routes(routes!(validate_fields))
}

/// A person.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct PersonView {
    /// Id.
    pub id: String,
    /// Registration office.
    pub office_id: String,
    /// Identifier in the source system.
    pub external_id: Option<String>,
    /// Given name.
    pub given_name: String,
    /// Family name.
    pub family_name: String,
    /// E-mail.
    pub email: Option<String>,
    /// Telephone.
    pub phone: Option<String>,
    /// Extended attributes (custom fields).
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

impl From<Person> for PersonView {
    fn from(p: Person) -> Self {
        Self {
            id: p.id.to_string(),
            office_id: p.office_id.to_string(),
            external_id: p.external_id,
            given_name: p.given_name,
            family_name: p.family_name,
            email: p.email,
            phone: p.phone,
            attributes: p.attributes,
            created_at: rfc3339(p.created_at),
            updated_at: rfc3339(p.updated_at),
        }
    }
}

/// A page of people.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct PersonPage {
    /// Oldest first.
    pub items: Vec<PersonView>,
    /// Cursor for the next page.
    pub next_cursor: Option<String>,
}

/// Body of `POST /api/v1/people`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePersonBody {
    /// Registration office (one the caller sees).
    office_id: Uuid,
    /// Identifier in the source system (unique).
    #[serde(default)]
    #[schema(max_length = 128)]
    external_id: Option<String>,
    /// Given name.
    #[schema(min_length = 1, max_length = 200)]
    given_name: String,
    /// Family name.
    #[schema(min_length = 1, max_length = 200)]
    family_name: String,
    /// E-mail.
    #[serde(default)]
    email: Option<String>,
    /// Telephone.
    #[serde(default)]
    #[schema(max_length = 50)]
    phone: Option<String>,
    /// Extended attributes (see `GET /api/v1/custom-fields`).
    #[serde(default)]
    attributes: serde_json::Map<String, serde_json::Value>,
}

/// Body of `PATCH /api/v1/people/{id}`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePersonBody {
    /// Move to this office (both offices in the caller's scope).
    #[serde(default)]
    office_id: Option<Uuid>,
    /// New source-system id (`null` clears).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    external_id: Option<Option<String>>,
    /// New given name.
    #[serde(default)]
    given_name: Option<String>,
    /// New family name.
    #[serde(default)]
    family_name: Option<String>,
    /// New e-mail (`null` clears).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    email: Option<Option<String>>,
    /// New telephone (`null` clears).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    phone: Option<Option<String>>,
    /// Attributes to set; `null` removes one.
    #[serde(default)]
    attributes: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Query of `GET /api/v1/people`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PeopleQuery {
    /// In this office.
    office_id: Option<Uuid>,
    /// Family name contains (case-insensitive).
    q: Option<String>,
    /// Exactly this source-system id.
    external_id: Option<String>,
    /// Exactly this e-mail (case-insensitive).
    email: Option<String>,
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

/// List the people in the caller's scope.
#[utoipa::path(get, path = "/api/v1/people", tag = "people", params(PeopleQuery),
    responses((status = 200, body = PersonPage), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn list_people(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::PeopleRead>,
    Query(q): Query<PeopleQuery>,
) -> Result<axum::Json<PersonPage>, ApiError> {
    let f =
        PersonFilter { office_id: q.office_id, q: q.q, external_id: q.external_id, email: q.email };
    let p = st
        .people
        .list(&cap, f, PageRequest { after: q.cursor, limit: page_size(q.limit)? })
        .await?;
    Ok(axum::Json(PersonPage {
        items: p.items.into_iter().map(Into::into).collect(),
        next_cursor: p.next_cursor,
    }))
}

/// Register a person, with extended attributes validated against the custom fields.
#[utoipa::path(post, path = "/api/v1/people", tag = "people", request_body = CreatePersonBody,
    responses((status = 201, body = PersonView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn create_person(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::PeopleWrite>,
    Json(b): Json<CreatePersonBody>,
) -> Result<impl IntoResponse, ApiError> {
    let input = PersonInput {
        office_id: Some(b.office_id),
        external_id: Some(b.external_id),
        given_name: Some(b.given_name),
        family_name: Some(b.family_name),
        email: Some(b.email),
        phone: Some(b.phone),
        attributes: Some(b.attributes),
    };
    let p = st.people.create(&cap, input).await?;
    Ok((StatusCode::CREATED, axum::Json(PersonView::from(p))))
}

/// A person's personal data and extended attributes.
#[utoipa::path(get, path = "/api/v1/people/{id}", tag = "people", params(("id" = String, Path)),
    responses((status = 200, body = PersonView), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn show_person(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::PeopleRead>,
    Path(i): Path<String>,
) -> Result<axum::Json<PersonView>, ApiError> {
    Ok(axum::Json(st.people.get(&cap, id(&i)?).await?.into()))
}

/// Update or extend a person's data and attributes.
#[utoipa::path(patch, path = "/api/v1/people/{id}", tag = "people", params(("id" = String, Path)),
    request_body = UpdatePersonBody,
    responses((status = 200, body = PersonView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn update_person(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::PeopleWrite>,
    Path(i): Path<String>,
    Json(b): Json<UpdatePersonBody>,
) -> Result<axum::Json<PersonView>, ApiError> {
    let input = PersonInput {
        office_id: b.office_id,
        external_id: b.external_id,
        given_name: b.given_name,
        family_name: b.family_name,
        email: b.email,
        phone: b.phone,
        attributes: b.attributes,
    };
    Ok(axum::Json(st.people.update(&cap, id(&i)?, input).await?.into()))
}

/// A custom field definition.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct FieldView {
    /// Attribute key.
    pub name: String,
    /// Label.
    pub label: String,
    /// Description.
    pub description: String,
    /// Type.
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// Every person must have it.
    pub required: bool,
    /// Regular expression the whole value must match.
    pub pattern: Option<String>,
    /// Allowed values.
    pub allowed_values: Vec<String>,
    /// Shortest value.
    pub min_length: Option<u32>,
    /// Longest value.
    pub max_length: Option<u32>,
    /// Last change.
    pub updated_at: String,
}

impl From<CustomField> for FieldView {
    fn from(f: CustomField) -> Self {
        Self {
            name: f.name,
            label: f.label,
            description: f.description,
            field_type: f.field_type,
            required: f.required,
            pattern: f.pattern,
            allowed_values: f.allowed_values,
            min_length: f.min_length,
            max_length: f.max_length,
            updated_at: rfc3339(f.updated_at),
        }
    }
}

/// Body of `PUT /api/v1/custom-fields/{name}`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutFieldBody {
    /// Label (default: the name).
    #[serde(default)]
    #[schema(max_length = 200)]
    label: Option<String>,
    /// Description.
    #[serde(default)]
    #[schema(max_length = 2000)]
    description: Option<String>,
    /// Type.
    #[serde(rename = "type")]
    field_type: FieldType,
    /// Every person must have it.
    #[serde(default)]
    required: bool,
    /// Regular expression the whole value must match (string fields).
    #[serde(default)]
    #[schema(max_length = 1000)]
    pattern: Option<String>,
    /// Allowed values.
    #[serde(default)]
    allowed_values: Vec<String>,
    /// Shortest value (string fields).
    #[serde(default)]
    min_length: Option<u32>,
    /// Longest value (string fields).
    #[serde(default)]
    #[schema(maximum = 4096)]
    max_length: Option<u32>,
}

/// Body of `POST /api/v1/custom-fields/validate`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateBody {
    /// The attributes to check, as a person would hold them.
    attributes: serde_json::Map<String, serde_json::Value>,
}

/// What validation found.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ValidationView {
    /// No errors.
    pub valid: bool,
    /// Every problem, by field.
    pub errors: Vec<FieldError>,
}

/// List the custom field definitions.
#[utoipa::path(get, path = "/api/v1/custom-fields", tag = "people",
    responses((status = 200, body = Vec<FieldView>), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn list_fields(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::PeopleRead>,
) -> Result<axum::Json<Vec<FieldView>>, ApiError> {
    Ok(axum::Json(st.people.fields(&cap).await?.into_iter().map(Into::into).collect()))
}

/// Show a custom field definition.
#[utoipa::path(get, path = "/api/v1/custom-fields/{name}", tag = "people", params(("name" = String, Path)),
    responses((status = 200, body = FieldView), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn show_field(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::PeopleRead>,
    Path(name): Path<String>,
) -> Result<axum::Json<FieldView>, ApiError> {
    Ok(axum::Json(st.people.field(&cap, &name).await?.into()))
}

/// Define or change a custom field (201 when new, 200 when changed or unchanged).
#[utoipa::path(put, path = "/api/v1/custom-fields/{name}", tag = "people", params(("name" = String, Path)),
    request_body = PutFieldBody,
    responses((status = 200, body = FieldView), (status = 201, body = FieldView), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn put_field(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::CustomFieldsWrite>,
    Path(name): Path<String>,
    Json(b): Json<PutFieldBody>,
) -> Result<impl IntoResponse, ApiError> {
    let input = FieldInput {
        label: b.label,
        description: b.description,
        field_type: b.field_type,
        required: b.required,
        pattern: b.pattern,
        allowed_values: b.allowed_values,
        min_length: b.min_length,
        max_length: b.max_length,
    };
    let (f, created) = st.people.put_field(&cap, &name, input).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, axum::Json(FieldView::from(f))))
}

/// Delete a custom field definition.
#[utoipa::path(delete, path = "/api/v1/custom-fields/{name}", tag = "people", params(("name" = String, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn delete_field(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::CustomFieldsWrite>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    st.people.delete_field(&cap, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Validate attributes against the custom fields (and `custom-field` validator plugins)
/// without storing anything.
#[utoipa::path(post, path = "/api/v1/custom-fields/validate", tag = "people", request_body = ValidateBody,
    responses((status = 200, body = ValidationView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn validate_fields(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::PeopleRead>,
    Json(b): Json<ValidateBody>,
) -> Result<axum::Json<ValidationView>, ApiError> {
    let errors = st.people.validate(&cap, &b.attributes).await?;
    Ok(axum::Json(ValidationView { valid: errors.is_empty(), errors }))
}
