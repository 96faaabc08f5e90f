//! `/api/v1/csc-providers`: CSC provider configurations, what `/csc/v1|v2/info` says about the
//! service (name, region, logo, language, authentication types, description).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use sigil_core::access::authz::perm;
use sigil_core::signing::credential::{CscAuthType, CscProvider};
use sigil_core::signing::providers::ProviderInput;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::rfc3339;
use crate::AppState;
use crate::error::{ApiError, Problem};
use crate::extract::{Authorized, Json};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_providers, create_provider)).routes(routes!(
        show_provider,
        update_provider,
        delete_provider
    ))
}

/// A CSC provider configuration.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ProviderView {
    /// Id.
    pub id: String,
    /// Name (CSC `name`).
    pub name: String,
    /// ISO 3166-1 alpha-2 region (CSC `region`).
    pub region: String,
    /// Logo: an http(s) URL, or an uploaded PNG/JPEG as a `data:` URI (CSC `logo`).
    pub logo: String,
    /// RFC 5646 language (CSC `lang`).
    pub language: String,
    /// Authentication types (CSC `authType`): `basic`, `TLS`, `external`.
    #[schema(value_type = Vec<String>)]
    pub auth_types: Vec<CscAuthType>,
    /// Description (CSC `description`).
    pub description: String,
    /// Whether `info` answers from this one.
    pub default: bool,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

impl From<CscProvider> for ProviderView {
    fn from(p: CscProvider) -> Self {
        Self {
            id: p.id.to_string(),
            name: p.name,
            region: p.region,
            logo: p.logo,
            language: p.language,
            auth_types: p.auth_types,
            description: p.description,
            default: p.default,
            created_at: rfc3339(p.created_at),
            updated_at: rfc3339(p.updated_at),
        }
    }
}

/// Every provider (at most 100).
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ProviderList {
    /// Oldest first.
    pub items: Vec<ProviderView>,
}

/// Body of `POST /api/v1/csc-providers` (and, with every field optional, of `PATCH`).
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderBody {
    /// Name, 1 to 255 characters (unique).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255)]
    name: Option<String>,
    /// ISO 3166-1 alpha-2 region, for example `SI`.
    #[serde(default)]
    #[schema(pattern = "^[A-Z]{2}$")]
    region: Option<String>,
    /// An http(s) URL, or an uploaded image: `data:image/png;base64,…` or
    /// `data:image/jpeg;base64,…` (at most 256 KiB).
    #[serde(default)]
    logo: Option<String>,
    /// RFC 5646 language tag (default `en`).
    #[serde(default)]
    language: Option<String>,
    /// Authentication types offered (default `["basic"]`).
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    auth_types: Option<Vec<CscAuthType>>,
    /// Description, at most 255 characters.
    #[serde(default)]
    #[schema(max_length = 255)]
    description: Option<String>,
    /// Make it the one `info` answers from (the others stop being the default).
    #[serde(default)]
    default: Option<bool>,
}

impl From<ProviderBody> for ProviderInput {
    fn from(b: ProviderBody) -> Self {
        Self {
            name: b.name,
            region: b.region,
            logo: b.logo,
            language: b.language,
            auth_types: b.auth_types,
            description: b.description,
            default: b.default,
        }
    }
}

fn id(s: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(s).map_err(|_| ApiError::not_found())
}

/// List CSC provider configurations.
#[utoipa::path(get, path = "/api/v1/csc-providers", tag = "csc-providers",
    responses((status = 200, body = ProviderList), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn list_providers(
    State(st): State<AppState>,
    Authorized(_cap): Authorized<perm::CscProvidersRead>,
) -> Result<axum::Json<ProviderList>, ApiError> {
    let items = st.csc_providers.list().await?.into_iter().map(Into::into).collect();
    Ok(axum::Json(ProviderList { items }))
}

/// Create a CSC provider configuration.
#[utoipa::path(post, path = "/api/v1/csc-providers", tag = "csc-providers", request_body = ProviderBody,
    responses((status = 201, body = ProviderView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn create_provider(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::CscProvidersWrite>,
    Json(b): Json<ProviderBody>,
) -> Result<impl IntoResponse, ApiError> {
    let p = st.csc_providers.create(&cap, b.into()).await?;
    Ok((StatusCode::CREATED, axum::Json(ProviderView::from(p))))
}

/// One CSC provider configuration.
#[utoipa::path(get, path = "/api/v1/csc-providers/{id}", tag = "csc-providers", params(("id" = String, Path)),
    responses((status = 200, body = ProviderView), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn show_provider(
    State(st): State<AppState>,
    Authorized(_cap): Authorized<perm::CscProvidersRead>,
    Path(i): Path<String>,
) -> Result<axum::Json<ProviderView>, ApiError> {
    Ok(axum::Json(st.csc_providers.get(id(&i)?).await?.into()))
}

/// Change a CSC provider configuration; absent fields stay.
#[utoipa::path(patch, path = "/api/v1/csc-providers/{id}", tag = "csc-providers", params(("id" = String, Path)),
    request_body = ProviderBody,
    responses((status = 200, body = ProviderView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn update_provider(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::CscProvidersWrite>,
    Path(i): Path<String>,
    Json(b): Json<ProviderBody>,
) -> Result<axum::Json<ProviderView>, ApiError> {
    Ok(axum::Json(st.csc_providers.update(&cap, id(&i)?, b.into()).await?.into()))
}

/// Delete a CSC provider configuration.
#[utoipa::path(delete, path = "/api/v1/csc-providers/{id}", tag = "csc-providers", params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn delete_provider(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::CscProvidersWrite>,
    Path(i): Path<String>,
) -> Result<StatusCode, ApiError> {
    st.csc_providers.delete(&cap, id(&i)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
