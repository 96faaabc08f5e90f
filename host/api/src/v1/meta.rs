//! `/api/v1/permissions` (the catalogue) and `/api/v1/exposure` (what is served, how).

use axum::extract::State;
use sigil_core::ErrorCode;
use sigil_core::access::authz::{CATALOGUE, PermissionInfo, perm};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiError, Problem};
use crate::exposure::{ExposureConfig, ExposureError, Resolved, Source};
use crate::extract::{Authorized, Json};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(permissions)).routes(routes!(
        exposure,
        put_exposure,
        reset_exposure
    ))
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
    /// `file` or `api`.
    pub source: Source,
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
    Ok(axum::Json(view(&st)))
}

fn view(st: &AppState) -> ExposureView {
    ExposureView {
        source: st.exposure.source(),
        config: st.exposure.config(),
        endpoints: st.exposure.list(),
    }
}

fn exposure_error(e: ExposureError) -> ApiError {
    match e {
        ExposureError::LockOut(_) => ApiError::new(
            axum::http::StatusCode::CONFLICT,
            ErrorCode::ExposureLockout,
            e.to_string(),
        ),
        other => ApiError::bad_request(ErrorCode::InvalidExposure, other.to_string()),
    }
}

/// Replace the exposure configuration for every node (stored in the database; overrides the
/// file's `[exposure]` section until reset).
#[utoipa::path(put, path = "/api/v1/exposure", tag = "exposure", request_body = ExposureConfig,
    responses((status = 200, body = ExposureView), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn put_exposure(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::ExposureUpdate>,
    Json(cfg): Json<ExposureConfig>,
) -> Result<axum::Json<ExposureView>, ApiError> {
    st.exposure.validate_update(&cfg).map_err(exposure_error)?;
    let value = serde_json::to_value(&cfg)
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidExposure, e.to_string()))?;
    let _sync = st.exposure.sync_guard().await;
    st.settings.put_exposure(&cap, &value).await?;
    let raw = st.settings.exposure_raw().await?;
    st.exposure.sync(raw.as_deref()).map_err(exposure_error)?;
    Ok(axum::Json(view(&st)))
}

/// Drop the API override: the configuration file's `[exposure]` section applies again.
#[utoipa::path(delete, path = "/api/v1/exposure", tag = "exposure",
    responses((status = 200, body = ExposureView), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn reset_exposure(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::ExposureUpdate>,
) -> Result<axum::Json<ExposureView>, ApiError> {
    let _sync = st.exposure.sync_guard().await;
    st.settings.reset_exposure(&cap).await?;
    st.exposure.sync(None).map_err(exposure_error)?;
    Ok(axum::Json(view(&st)))
}
