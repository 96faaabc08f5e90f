//! `/api/v1/self`: what a token holder does for themselves through a key bound to them.

use axum::extract::{Path, State};
use sigil_core::access::authz::perm;
use sigil_core::cards::device::DeviceStatus;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use sigil_core::cards::enrolment::CertificateItem;

use super::certificates::{CertificateView, RenewBody};
use super::devices::{DeviceView, TransitionBody};
use super::pin_reset::{ResetBody, ResetView, no_store};
use super::requests::RequestView;
use crate::AppState;
use crate::error::{ApiError, Problem};
use crate::extract::{Authorized, optional_body};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(my_devices))
        .routes(routes!(suspend))
        .routes(routes!(reactivate))
        .routes(routes!(report_lost))
        .routes(routes!(report_damaged))
        .routes(routes!(renew_certificate))
        .routes(routes!(request_virtual_token))
        .routes(routes!(reset_pin))
}

/// Reset my blocked PIN: the response to my card's challenge, or its unlock code.
#[utoipa::path(post, path = "/api/v1/self/devices/{id}/pin-reset", tag = "self-service",
    params(("id" = String, Path)), request_body(content = Option<ResetBody>),
    responses((status = 200, body = ResetView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn reset_pin(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::SelfService>,
    Path(i): Path<String>,
    body: axum::body::Bytes,
) -> Result<axum::response::Response, ApiError> {
    let b: ResetBody = optional_body(&body)?;
    let id = Uuid::parse_str(&i).map_err(|_| ApiError::not_found())?;
    Ok(no_store(ResetView::from(st.selfservice.reset_pin(&cap, id, b.challenge).await?)))
}

/// Body of `POST /api/v1/self/virtual-tokens`.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VirtualTokenBody {
    /// A certificate for the token: profile and PKCS#10 request (PEM).
    #[serde(default)]
    certificate: Option<CertificateItem>,
}

/// Renew one of my certificates (with a new CSR, or the same key).
#[utoipa::path(post, path = "/api/v1/self/certificates/{id}/renew", tag = "self-service",
    params(("id" = String, Path)), request_body(content = Option<RenewBody>),
    responses((status = 201, body = CertificateView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn renew_certificate(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::SelfService>,
    Path(i): Path<String>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let b: RenewBody = optional_body(&body)?;
    let id = Uuid::parse_str(&i).map_err(|_| ApiError::not_found())?;
    let c = st.selfservice.renew(&cap, id, b.csr.map(String::into_bytes)).await?;
    CertificateView::new(&st, c).created()
}

/// Ask for a virtual token: an enrolment request for me (pending approval).
#[utoipa::path(post, path = "/api/v1/self/virtual-tokens", tag = "self-service",
    request_body(content = Option<VirtualTokenBody>),
    responses((status = 201, body = RequestView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn request_virtual_token(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::SelfService>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let b: VirtualTokenBody = optional_body(&body)?;
    let r = st.selfservice.request_virtual_token(&cap, b.certificate).await?;
    Ok((StatusCode::CREATED, axum::Json(RequestView::from(r))))
}

/// The holder's own devices.
#[utoipa::path(get, path = "/api/v1/self/devices", tag = "self-service",
    responses((status = 200, body = Vec<DeviceView>), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn my_devices(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::SelfService>,
) -> Result<axum::Json<Vec<DeviceView>>, ApiError> {
    Ok(axum::Json(st.selfservice.devices(&cap).await?.into_iter().map(Into::into).collect()))
}

macro_rules! step {
    ($name:ident, $path:literal, $to:expr, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(post, path = $path, tag = "self-service", params(("id" = String, Path)),
            request_body(content = Option<TransitionBody>),
            responses((status = 200, body = DeviceView), (status = 400, body = Problem), (status = 401, body = Problem),
                (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
            security(("bearer" = []), ("api_key" = [])))]
        async fn $name(
            State(st): State<AppState>,
            Authorized(cap): Authorized<perm::SelfService>,
            Path(i): Path<String>,
            body: axum::body::Bytes,
        ) -> Result<axum::Json<DeviceView>, ApiError> {
            let b: TransitionBody = optional_body(&body)?;
            let id = Uuid::parse_str(&i).map_err(|_| ApiError::not_found())?;
            Ok(axum::Json(st.selfservice.transition(&cap, id, $to, b.reason).await?.into()))
        }
    };
}

step!(
    suspend,
    "/api/v1/self/devices/{id}/suspend",
    DeviceStatus::Suspended,
    "Suspend one of my devices for a while (its certificates go on hold)."
);
step!(
    reactivate,
    "/api/v1/self/devices/{id}/reactivate",
    DeviceStatus::Active,
    "Lift my own temporary suspension (the holds it placed are released)."
);
step!(
    report_lost,
    "/api/v1/self/devices/{id}/lost",
    DeviceStatus::Lost,
    "Report one of my devices lost (its certificates go on hold)."
);
step!(
    report_damaged,
    "/api/v1/self/devices/{id}/damaged",
    DeviceStatus::Damaged,
    "Report one of my devices damaged (its certificates are revoked)."
);
