//! The one mapping from errors to HTTP: `application/problem+json` with a stable `code`.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sigil_core::{AuthFailure, CoreError, ErrorCode};

/// Stable `type` URI prefix of our problems.
const TYPE_BASE: &str = "https://sigil.invalid/problems/";

/// An error answered as problem+json.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// Human-readable detail (never secrets, never internals on 5xx).
    pub detail: String,
    /// Seconds to wait, for 429.
    pub retry_after: Option<u64>,
}

/// The stable code of an error response, left in the response's extensions for middleware.
#[derive(Debug, Clone, Copy)]
pub struct ResponseCode(pub &'static str);

/// The JSON body, also used as the OpenAPI schema of every error response.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// URI naming the problem type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary (the HTTP reason phrase).
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// Explanation.
    pub detail: String,
    /// Stable code to branch on.
    #[schema(value_type = ErrorCodeName)]
    pub code: String,
}

/// An error code, documented with the catalogue (`sigil_core::codes`) as its enumeration.
pub(crate) struct ErrorCodeName;

impl utoipa::PartialSchema for ErrorCodeName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let names: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        let meanings: String =
            ErrorCode::ALL.iter().map(|c| format!("\n- `{c}`: {}", c.meaning())).collect();
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(names))
            .description(Some(format!("A stable error code:{meanings}")))
            .into()
    }
}

impl utoipa::ToSchema for ErrorCodeName {}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: ErrorCode, detail: impl Into<String>) -> Self {
        Self { status, code, detail: detail.into(), retry_after: None }
    }

    /// 400 with a code.
    pub fn bad_request(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// 404 for anything unknown or hidden.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such resource")
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        let code = e.code();
        let status = match &e {
            CoreError::Invalid { .. } => StatusCode::BAD_REQUEST,
            CoreError::NotFound { .. } => StatusCode::NOT_FOUND,
            CoreError::Conflict { .. } => StatusCode::CONFLICT,
            CoreError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            CoreError::Forbidden { .. } => StatusCode::FORBIDDEN,
            CoreError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            CoreError::Storage(_) | CoreError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            CoreError::Dependency { .. } => StatusCode::BAD_GATEWAY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let retry_after = match &e {
            CoreError::RateLimited { retry_after_secs, .. }
            | CoreError::Busy { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        };
        let busy = matches!(e, CoreError::Busy { .. });
        let detail = if status.is_server_error() && status != StatusCode::BAD_GATEWAY && !busy {
            // Internals go to the log, not to the client.
            tracing::error!(error = %e, "request failed");
            match status {
                StatusCode::SERVICE_UNAVAILABLE => {
                    "the database is unavailable; nothing was changed".to_owned()
                }
                _ => "internal error; nothing was changed".to_owned(),
            }
        } else if let CoreError::Dependency { code: ErrorCode::CaResultMismatch, detail } = &e {
            // Sigil's own comparison of what was issued with what the profile decided: it
            // names the differing content, which is the caller's own request.
            detail.clone()
        } else if let CoreError::Dependency { code, detail } = &e {
            // A plugin's or CA connector's own words can carry internal URLs and addresses:
            // they go to the log, the client gets the code.
            tracing::warn!(code = code.as_str(), error = %detail, "a plugin or CA back end failed");
            dependency_detail(code.as_str())
        } else {
            e.to_string()
        };
        Self { status, code, detail, retry_after }
    }
}

/// What a client is told when a plugin or CA back end failed: the stable code, never the
/// component's own message.
pub(crate) fn dependency_detail(code: &str) -> String {
    format!(
        "a key store, plugin or CA back end this operation depends on failed ({code}); nothing \
         was changed"
    )
}

impl From<AuthFailure> for ApiError {
    fn from(f: AuthFailure) -> Self {
        CoreError::Unauthenticated(f).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Problem {
            kind: format!("{TYPE_BASE}{}", self.code),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail,
            code: self.code.as_str().to_owned(),
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut res = (self.status, bytes).into_response();
        res.extensions_mut().insert(ResponseCode(self.code.as_str()));
        let h = res.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            h.insert(header::RETRY_AFTER, v);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"sigil\""));
        }
        res
    }
}

/// A problem+json answer of the shared middleware (exposure, throttling, body limits, timeouts,
/// unknown paths), taken apart for a protocol that answers errors its own way (ACME, CSC).
pub(crate) struct SharedProblem {
    /// Its status.
    pub(crate) status: StatusCode,
    /// The headers the protocol keeps, as they were.
    pub(crate) keep: Vec<(HeaderName, HeaderValue)>,
    /// Its body (null when it does not parse).
    pub(crate) body: serde_json::Value,
}

impl SharedProblem {
    /// The body's `detail`, or nothing.
    pub(crate) fn detail(&self) -> String {
        self.body.get("detail").and_then(|d| d.as_str()).unwrap_or_default().to_owned()
    }

    /// Puts the kept headers on `out`.
    pub(crate) fn restore(self, mut out: Response) -> Response {
        for (h, v) in self.keep {
            out.headers_mut().insert(h, v);
        }
        out
    }
}

/// Runs `req`. A problem+json answer on a path under `prefix` comes back as a
/// [`SharedProblem`] keeping the headers named in `keep`; any other answer comes back as it is.
pub(crate) async fn shared_problem(
    req: axum::extract::Request,
    next: axum::middleware::Next,
    prefix: &str,
    keep: &[HeaderName],
) -> Result<SharedProblem, Response> {
    if !req.uri().path().starts_with(prefix) {
        return Err(next.run(req).await);
    }
    let res = next.run(req).await;
    let problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if !problem {
        return Err(res);
    }
    let status = res.status();
    let keep =
        keep.iter().filter_map(|h| res.headers().get(h).cloned().map(|v| (h.clone(), v))).collect();
    let bytes = axum::body::to_bytes(res.into_body(), 64 * 1024).await.unwrap_or_default();
    let body = serde_json::from_slice(&bytes).unwrap_or_default();
    Ok(SharedProblem { status, keep, body })
}
