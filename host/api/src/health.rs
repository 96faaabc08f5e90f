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

/// The OpenMetrics content type, which is what the body is (Prometheus negotiates it).
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Metrics in the OpenMetrics text format: HTTP requests and latency, certificate lifecycle,
/// CSC signatures and logins, CRLs, audit events, the audit chain head, CRL ages, database pools
/// and plugins (see `sigil_api::metrics`).
#[utoipa::path(get, path = "/metrics", tag = "metrics", operation_id = "metrics",
    summary = "Prometheus metrics",
    responses((status = 200, description = "The metrics", content_type = "application/openmetrics-text")))]
async fn metrics(State(st): State<AppState>) -> impl IntoResponse {
    // Read at each scrape: a root CRL published on another node shows here too.
    let root_crls = match st.cas.root_crl_deadlines().await {
        Ok(deadlines) => {
            deadlines.into_iter().map(|(ca, next)| (ca, next.unix_timestamp())).collect()
        }
        Err(e) => {
            tracing::warn!(error = %e, "reading root CRL deadlines for metrics failed");
            Vec::new()
        }
    };
    let audit_head = match st.store.audit_head().await {
        Ok(h) => Some(h.seq),
        Err(e) => {
            tracing::warn!(error = %e, "reading the audit head for metrics failed");
            None
        }
    };
    let crls = st.cas.crl_times().await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "reading CRL times for metrics failed");
        Vec::new()
    });
    st.metrics.set_scrape(crate::metrics::Scrape {
        audit_head,
        crls,
        root_crls,
        pools: st.store.pool_status(),
        plugins: st.plugins.status(),
        now: time::OffsetDateTime::now_utc().unix_timestamp(),
    });
    ([(header::CONTENT_TYPE, OPENMETRICS)], st.metrics.render())
}
