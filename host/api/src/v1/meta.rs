//! `/api/v1/permissions` (the catalogue) and `/api/v1/exposure` (what is served, how).

use axum::extract::State;
use sigil_core::authz::{CATALOGUE, PermissionInfo, perm};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiError, Problem};
use crate::exposure::{ExposureConfig, Resolved};
use crate::extract::Authorized;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(permissions))
        .routes(routes!(exposure))
}

/// The permission catalogue.
#[utoipa::path(get, path = "/api/v1/permissions", tag = "permissions",
    responses((status = 200, body = Vec<PermissionInfo>), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn permissions(
    Authorized(_cap): Authorized<perm::RolesRead>,
) -> axum::Json<&'static [PermissionInfo]> {
    axum::Json(CATALOGUE)
}

/// The exposure configuration and what it resolves to for every endpoint.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ExposureView {
    /// The configuration in force.
    pub config: ExposureConfig,
    /// Every endpoint with its effective rule.
    pub endpoints: Vec<Resolved>,
}

/// Show the exposure configuration.
#[utoipa::path(get, path = "/api/v1/exposure", tag = "exposure",
    responses((status = 200, body = ExposureView), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn exposure(
    State(st): State<AppState>,
    Authorized(_cap): Authorized<perm::ExposureRead>,
) -> Result<axum::Json<ExposureView>, ApiError> {
    Ok(axum::Json(ExposureView {
        config: st.exposure.config(),
        endpoints: st.exposure.list(),
    }))
}
