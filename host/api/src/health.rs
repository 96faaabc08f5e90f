//! `/health/live`, `/health/ready` and `/metrics`.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(live)).routes(routes!(ready)).routes(routes!(metrics))
}

/// Health status.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: &'static str,
    /// What failed, when something did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The process is up.
#[utoipa::path(get, path = "/health/live", tag = "health", responses((status = 200, body = Health)))]
async fn live() -> axum::Json<Health> {
    axum::Json(Health { status: "ok", detail: None })
}

/// The server can serve: the database answers and the audit key signs (without either, no
/// change could be recorded).
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
async fn ready(State(st): State<AppState>) -> impl IntoResponse {
    let problem = if st.store.ping().await.is_err() {
        Some("database unreachable")
    } else if !st.audit.key_usable() {
        Some("audit key unusable")
    } else {
        None
    };
    match problem {
        None => (StatusCode::OK, axum::Json(Health { status: "ok", detail: None })),
        Some(p) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(Health { status: "unavailable", detail: Some(p.into()) }),
        ),
    }
}

/// Prometheus text exposition: requests by route and status, latency histograms, and when
/// each root CRL runs out (`sigil_root_crl_next_update_seconds{ca}`).
#[utoipa::path(get, path = "/metrics", tag = "metrics", responses((status = 200, content_type = "text/plain")))]
async fn metrics(State(st): State<AppState>) -> impl IntoResponse {
    // Read at each scrape: a root CRL published on another node shows here too.
    match st.cas.root_crl_deadlines().await {
        Ok(deadlines) => {
            for (ca, next) in deadlines {
                st.metrics.set_root_crl_next_update(&ca, next.unix_timestamp());
            }
        }
        Err(e) => tracing::warn!(error = %e, "reading root CRL deadlines for metrics failed"),
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], st.metrics.render())
}
