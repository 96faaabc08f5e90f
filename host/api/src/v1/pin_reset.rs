//! PIN reset of devices: personalization of the unblock secrets (administration key for
//! challenge-response, unlock code) and the reset itself, for operators. The holder's own
//! reset is `/api/v1/self/devices/{id}/pin-reset`.
//!
//! Responses that carry a secret (generated key or code, challenge response, unlock code) are
//! `Cache-Control: no-store`.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use sigil_core::access::authz::perm;
use sigil_core::cards::pin_reset::{PinReset, PinResetChange, SecretInput};
use sigil_core::cards::unlock::UnlockAlgorithm;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::devices::DeviceView;
use super::double_option;
use crate::AppState;
use crate::error::{ApiError, Problem};
use crate::extract::{Authorized, Json, optional_body};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(configure)).routes(routes!(reset))
}

/// Body of `PATCH /api/v1/devices/{id}/pin-reset-setup`; absent fields stay as they are.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetupBody {
    /// Cipher of the administration key: `3des`, `aes128`, `aes192`, `aes256`.
    #[serde(default)]
    algorithm: Option<UnlockAlgorithm>,
    /// The administration key, hex; `"generate"` to have Sigil make one (returned once);
    /// `null` removes challenge-response.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    admin_key: Option<Option<String>>,
    /// The unlock code (PUK, 4 to 16 printable characters); `"generate"` for 8 random digits
    /// (returned once); `null` removes it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    unlock_code: Option<Option<String>>,
}

impl std::fmt::Debug for SetupBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetupBody").field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

fn secret(v: Option<Option<String>>) -> Option<SecretInput> {
    v.map(|v| match v {
        None => SecretInput::Remove,
        Some(s) if s == "generate" => SecretInput::Generate,
        Some(s) => SecretInput::Given(Zeroizing::new(s)),
    })
}

/// Secrets Sigil generated, shown only in this response.
#[derive(Debug, Default, serde::Serialize, utoipa::ToSchema)]
pub struct GeneratedView {
    /// Administration key, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    admin_key: Option<String>,
    /// Unlock code.
    #[serde(skip_serializing_if = "Option::is_none")]
    unlock_code: Option<String>,
}

/// A device after a change of its PIN reset setup.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SetupView {
    /// The device (its `pin_reset` says what is set up).
    device: DeviceView,
    /// What Sigil generated (write it to the card; it is not shown again).
    generated: GeneratedView,
}

/// Body of a PIN reset (optional).
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetBody {
    /// The card's challenge, hex (8 bytes for 3DES, 16 for AES): asks for challenge-response.
    /// Without it, the device's unlock code is handed out.
    #[serde(default)]
    pub(crate) challenge: Option<String>,
}

/// The outcome of a PIN reset.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ResetView {
    /// `challenge-response` or `unlock-code`.
    method: String,
    /// The response to give the card, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<String>,
    /// The unlock code to enter.
    #[serde(skip_serializing_if = "Option::is_none")]
    unlock_code: Option<String>,
    /// The device, its PIN retries restored.
    device: DeviceView,
}

/// A response that must not be cached: it carries a secret.
pub(crate) fn no_store(body: impl serde::Serialize) -> Response {
    let mut res = axum::Json(body).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

impl From<PinReset> for ResetView {
    fn from(r: PinReset) -> Self {
        Self {
            method: r.method.to_owned(),
            response: r.response,
            unlock_code: r.unlock_code.map(|c| c.to_string()),
            device: r.device.into(),
        }
    }
}

/// Set up, replace or remove a device's PIN reset secrets (at personalization).
#[utoipa::path(patch, path = "/api/v1/devices/{id}/pin-reset-setup", tag = "devices",
    params(("id" = String, Path)), request_body = SetupBody,
    responses((status = 200, body = SetupView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn configure(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::DevicePersonalize>,
    Path(i): Path<String>,
    Json(b): Json<SetupBody>,
) -> Result<Response, ApiError> {
    let id = Uuid::parse_str(&i).map_err(|_| ApiError::not_found())?;
    let change = PinResetChange {
        algorithm: b.algorithm,
        admin_key: secret(b.admin_key),
        unlock_code: secret(b.unlock_code),
    };
    let (d, g) = st.pins.configure(&cap, id, change).await?;
    Ok(no_store(SetupView {
        device: d.into(),
        generated: GeneratedView {
            admin_key: g.admin_key.map(|k| k.to_string()),
            unlock_code: g.unlock_code.map(|c| c.to_string()),
        },
    }))
}

/// Reset a device's blocked PIN: the response to the card's challenge, or its unlock code.
#[utoipa::path(post, path = "/api/v1/devices/{id}/pin-reset", tag = "devices",
    params(("id" = String, Path)), request_body(content = Option<ResetBody>),
    responses((status = 200, body = ResetView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn reset(
    State(st): State<AppState>,
    Authorized(cap): Authorized<perm::DevicePinReset>,
    Path(i): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let b: ResetBody = optional_body(&body)?;
    let id = Uuid::parse_str(&i).map_err(|_| ApiError::not_found())?;
    Ok(no_store(ResetView::from(st.pins.reset(&cap, id, b.challenge).await?)))
}
