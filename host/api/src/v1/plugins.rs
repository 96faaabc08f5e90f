//! `/api/v1/plugins`: the loaded plugin set and reload.

use axum::extract::State;
use sigil_core::access::authz::perm;
use sigil_core::ports::PluginStatus;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiError, Problem};
use crate::extract::Authorized;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(reload))
}

/// The loaded plugins: id, kind, digest, generation, status, last error, call and fault counts.
#[utoipa::path(get, path = "/api/v1/plugins", tag = "plugins",
    responses((status = 200, body = Vec<PluginStatus>)), security(("bearer" = []), ("api_key" = [])))]
async fn list(
    State(st): State<AppState>,
    Authorized(_cap): Authorized<perm::PluginsRead>,
) -> axum::Json<Vec<PluginStatus>> {
    axum::Json(st.plugins.status())
}

/// Re-read the configuration and plugin files; what loads and passes its canary call is swapped
/// in, what fails leaves the previous version serving and shows its error.
#[utoipa::path(post, path = "/api/v1/plugins/reload", tag = "plugins",
    responses((status = 200, body = Vec<PluginStatus>), (status = 400, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn reload(
    State(st): State<AppState>,
    Authorized(_cap): Authorized<perm::PluginsReload>,
) -> Result<axum::Json<Vec<PluginStatus>>, ApiError> {
    Ok(axum::Json(st.plugins.reload().await?))
}
