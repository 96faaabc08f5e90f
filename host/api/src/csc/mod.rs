//! The Cloud Signature Consortium API: `/csc/v1/*` (v1.0.4 field names, what pyHanko and
//! Laverca send) and `/csc/v2/*` (v2 names), both accepting either spelling where clients mix
//! them. Every answer is `application/json`; errors are CSC's own `{error, error_description}`,
//! never problem+json (a layer rewrites the shared middleware's refusals on these paths).
//!
//! Authentication is CSC's: HTTP Basic at `auth/login`, then the bearer access token it hands
//! out. The exposure table still decides whether an endpoint is served, from where, and how
//! fast (429 with `Retry-After`).

mod handlers;
mod model;

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use serde::de::DeserializeOwned;
use sigil_core::ErrorCode;
use sigil_core::{AuthFailure, CoreError};
use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

pub use model::CscErrorBody;

/// API version of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `/csc/v1`: CSC 1.0.4.
    V1,
    /// `/csc/v2`: CSC 2.0.
    V2,
}

/// Routes of both versions.
pub fn router() -> OpenApiRouter<AppState> {
    handlers::router()
}

/// A CSC error answer.
#[derive(Debug)]
pub struct CscError {
    status: StatusCode,
    error: &'static str,
    description: String,
    retry_after: Option<u64>,
}

impl CscError {
    /// A new error.
    pub fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self { status, error, description: description.into(), retry_after: None }
    }

    /// 400 `invalid_request`.
    pub fn invalid(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// The CSC answer to a core error, in version `v`'s vocabulary.
    pub fn from_core(e: CoreError, v: Version) -> Self {
        match e {
            CoreError::Invalid { code: ErrorCode::InvalidPin, detail } => {
                let code =
                    if v == Version::V1 { "invalid_pin" } else { "invalid_authentication_data" };
                Self::new(StatusCode::BAD_REQUEST, code, detail)
            }
            CoreError::Invalid { code: ErrorCode::AuthenticationError, detail } => {
                Self::new(StatusCode::BAD_REQUEST, "authentication_error", detail)
            }
            CoreError::Invalid { detail, .. } | CoreError::Conflict { detail, .. } => {
                Self::invalid(detail)
            }
            CoreError::NotFound { .. } => Self::invalid("Invalid parameter"),
            CoreError::Unauthenticated(AuthFailure::Expired) => {
                Self::new(StatusCode::UNAUTHORIZED, "expired_token", "The access token has expired")
            }
            CoreError::Unauthenticated(_) => Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "The access token is not valid",
            ),
            CoreError::Forbidden { detail, .. } => {
                Self::new(StatusCode::FORBIDDEN, "access_denied", detail)
            }
            e @ CoreError::RateLimited { .. } => {
                let retry = match &e {
                    CoreError::RateLimited { retry_after_secs, .. } => Some(*retry_after_secs),
                    _ => None,
                };
                let mut r = Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "temporarily_unavailable",
                    e.to_string(),
                );
                r.retry_after = retry;
                r
            }
            e @ CoreError::Busy { .. } => {
                let retry = match &e {
                    CoreError::Busy { retry_after_secs } => Some(*retry_after_secs),
                    _ => None,
                };
                let mut r = Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    e.to_string(),
                );
                r.retry_after = retry;
                r
            }
            CoreError::Storage(m) => {
                tracing::error!(error = %m, "CSC request failed on storage");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "the database is unavailable; nothing was changed",
                )
            }
            CoreError::Dependency { code, detail } => {
                tracing::warn!(code = code.as_str(), error = %detail, "a plugin or CA back end failed");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    crate::error::dependency_detail(code.as_str()),
                )
            }
            other => {
                tracing::error!(error = %other, "CSC request failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "internal error; nothing was changed",
                )
            }
        }
    }
}

impl IntoResponse for CscError {
    fn into_response(self) -> Response {
        let body =
            CscErrorBody { error: self.error.to_owned(), error_description: self.description };
        let mut res = (self.status, axum::Json(body)).into_response();
        let h = res.headers_mut();
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            h.insert(header::RETRY_AFTER, v);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"csc\""));
        }
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
    }
}

/// Parses a CSC request body: empty means `{}`, unknown members are ignored (clients send
/// extras such as Laverca's `remeberMe`), a wrong type names the parameter.
pub(crate) fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, CscError> {
    let b: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { bytes };
    if b.iter().find(|c| !c.is_ascii_whitespace()) != Some(&b'{') {
        return Err(CscError::invalid("The request body must be a JSON object"));
    }
    let de = &mut serde_json::Deserializer::from_slice(b);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.into_inner().to_string();
        if path.is_empty() || path == "." {
            CscError::invalid(format!("Invalid request: {msg}"))
        } else {
            CscError::invalid(format!("Invalid parameter {path}: {msg}"))
        }
    })
}

/// Decodes a base64 digest (standard alphabet; URL-safe accepted too, as OAuth2 carries them).
pub(crate) fn digest(s: &str) -> Result<Vec<u8>, CscError> {
    STANDARD
        .decode(s)
        .or_else(|_| URL_SAFE.decode(s))
        .or_else(|_| URL_SAFE_NO_PAD.decode(s))
        .map_err(|_| CscError::invalid("Invalid base64 hash value"))
}

/// The bearer token of an authenticated CSC call.
pub(crate) fn bearer(h: &HeaderMap) -> Result<&str, CscError> {
    let Some(v) = h.get(header::AUTHORIZATION) else {
        return Err(CscError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "Missing bearer access token",
        ));
    };
    let v = v.to_str().map_err(|_| CscError::invalid("Malformed authorization header"))?;
    let (scheme, token) = v.split_once(' ').unwrap_or((v, ""));
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(CscError::invalid("Malformed authorization header: expected Bearer"));
    }
    Ok(token)
}

/// Rewrites problem+json answers of the shared middleware (exposure, throttling, body limits,
/// timeouts, unknown paths) into CSC errors on `/csc/` paths, keeping status and `Retry-After`.
pub async fn errors(req: Request, next: Next) -> Response {
    // A 405 names the methods the path takes (RFC 9110 §15.5.6), whatever body it carries.
    let keep = [header::RETRY_AFTER, header::ALLOW];
    let p = match crate::error::shared_problem(req, next, "/csc/", &keep).await {
        Ok(p) => p,
        Err(res) => return res,
    };
    let error = match p.status {
        StatusCode::UNAUTHORIZED => "invalid_token",
        StatusCode::FORBIDDEN => "access_denied",
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
            "temporarily_unavailable"
        }
        s if s.is_server_error() => "server_error",
        _ => "invalid_request",
    };
    let out = CscError::new(p.status, error, p.detail()).into_response();
    p.restore(out)
}
