//! ACME (RFC 8555) over HTTPS: one server per ACME-enabled profile at
//! `/acme/{profile}/directory`. Requests are JWS-signed (the account key is the credential);
//! every answer carries a fresh `Replay-Nonce` and a `Link` to the directory; errors are problem
//! documents with `urn:ietf:params:acme:error:*` types (a layer rewrites the shared
//! middleware's refusals on these paths).
//!
//! The exposure table still decides whether an endpoint is served, from where, and how fast.

mod handlers;
mod views;

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sigil_core::access::authz::RequestContext;
use sigil_core::acme::model::AcmeProblem;
use sigil_core::acme::{AcmeError, Urls};
use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

/// The content type of ACME requests (RFC 8555 §6.2).
const JOSE: &str = "application/jose+json";

/// The prefix of ACME error types.
const ERROR_NS: &str = "urn:ietf:params:acme:error:";

/// An ACME problem document (RFC 8555 §6.7, RFC 7807), `application/problem+json`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AcmeProblemBody {
    /// `urn:ietf:params:acme:error:<type>`, for example `badNonce`, `rejectedIdentifier`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What went wrong.
    pub detail: String,
    /// The HTTP status.
    pub status: u16,
    /// The identifier concerned, when one is.
    #[schema(value_type = Option<Object>)]
    pub identifier: Option<serde_json::Value>,
    /// One problem per identifier, for errors about several.
    #[schema(value_type = Option<Vec<Object>>)]
    pub subproblems: Option<Vec<serde_json::Value>>,
}

/// The ACME routes.
pub fn router() -> OpenApiRouter<AppState> {
    handlers::router()
}

/// Where a request came from and which URL it reached.
pub struct Ctx {
    /// `https://host[:port]` as the client addressed it.
    base: String,
    /// The full URL of this request (what its JWS must name).
    url: String,
    context: RequestContext,
    jose: bool,
}

impl Ctx {
    fn urls(&self, profile: &str) -> Urls {
        Urls::new(&self.base, profile)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = AcmeReply;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| parts.uri.authority().map(|a| a.as_str()))
            .unwrap_or_default()
            .to_owned();
        let plain_host = !host.is_empty()
            && host.len() <= 255
            && host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
        if !plain_host {
            return Err(AcmeReply::problem(AcmeError::malformed("the Host header is malformed")));
        }
        let base = format!("https://{host}");
        let url = format!("{base}{}", parts.uri.path());
        let context = crate::auth::request_context(parts);
        let jose =
            parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(
                |v| v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case(JOSE)),
            );
        Ok(Self { base, url, context, jose })
    }
}

/// An ACME answer under construction: a response plus the directory link and nonce every
/// answer carries.
pub struct AcmeReply {
    response: Response,
}

impl AcmeReply {
    /// A problem document for `e`.
    pub fn problem(e: AcmeError) -> Self {
        let (status, p) = match e {
            AcmeError::Problem(status, p) => (status, p),
            AcmeError::Core(e) => {
                let kind = sigil_core::acme::error::core_kind(&e);
                let status = match &e {
                    sigil_core::CoreError::RateLimited { .. } => 429,
                    sigil_core::CoreError::Busy { .. } => 503,
                    sigil_core::CoreError::Invalid { .. }
                    | sigil_core::CoreError::Conflict { .. } => 400,
                    sigil_core::CoreError::NotFound { .. } => 404,
                    sigil_core::CoreError::Unauthenticated(_)
                    | sigil_core::CoreError::Forbidden { .. } => 403,
                    _ => 500,
                };
                let detail = match &e {
                    sigil_core::CoreError::Invalid { detail, .. }
                    | sigil_core::CoreError::Conflict { detail, .. }
                    | sigil_core::CoreError::Forbidden { detail, .. } => detail.clone(),
                    other => {
                        tracing::error!(error = %other, "ACME request failed");
                        "internal error; nothing was changed".into()
                    }
                };
                (status, AcmeProblem::new(kind, detail))
            }
        };
        Self {
            response: problem_response(
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                &p,
            ),
        }
    }

    /// A JSON answer.
    pub fn json(status: StatusCode, v: serde_json::Value) -> Self {
        Self { response: (status, axum::Json(v)).into_response() }
    }

    /// Any response.
    pub fn raw(response: Response) -> Self {
        Self { response }
    }

    /// Adds a `Location`.
    pub fn location(mut self, url: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(url) {
            self.response.headers_mut().insert(header::LOCATION, v);
        }
        self
    }

    /// Adds a `Link` with relation `rel`.
    pub fn link(mut self, url: &str, rel: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(&format!("<{url}>;rel=\"{rel}\"")) {
            self.response.headers_mut().append(header::LINK, v);
        }
        self
    }

    /// Adds `Retry-After` (seconds).
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        self
    }

    /// The finished answer: a fresh nonce, the directory link, no caching.
    async fn finish(self, st: &AppState, urls: Option<&Urls>) -> Response {
        let mut r = self;
        if let Some(u) = urls {
            r = r.link(&u.directory(), "index");
        }
        let mut res = r.response;
        match st.acme.new_nonce().await {
            Ok(n) => {
                if let Ok(v) = HeaderValue::from_str(&n) {
                    res.headers_mut().insert("replay-nonce", v);
                }
            }
            Err(e) => tracing::error!(error = %e, "ACME: no nonce for an answer"),
        }
        res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
    }
}

impl IntoResponse for AcmeReply {
    fn into_response(self) -> Response {
        self.response
    }
}

fn problem_response(status: StatusCode, p: &AcmeProblem) -> Response {
    let mut body = serde_json::to_value(p).unwrap_or_default();
    body["type"] = serde_json::json!(format!("{ERROR_NS}{}", p.kind));
    body["status"] = serde_json::json!(status.as_u16());
    if let Some(subs) = body.get_mut("subproblems").and_then(|s| s.as_array_mut()) {
        for (s, p) in subs.iter_mut().zip(&p.subproblems) {
            s["type"] = serde_json::json!(format!("{ERROR_NS}{}", p.kind));
        }
    }
    let mut res = (status, axum::Json(body)).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    res
}

/// Rewrites the shared middleware's problem documents (exposure, throttling, body limits,
/// timeouts, unknown paths) on `/acme/` paths into ACME problems, keeping status and
/// `Retry-After`.
pub async fn errors(req: Request, next: Next) -> Response {
    let keep = [
        header::RETRY_AFTER,
        header::ALLOW,
        header::LINK,
        header::CACHE_CONTROL,
        header::HeaderName::from_static("replay-nonce"),
    ];
    let p = match crate::error::shared_problem(req, next, "/acme/", &keep).await {
        Ok(p) => p,
        Err(res) => return res,
    };
    if p.body.get("type").and_then(|t| t.as_str()).is_some_and(|t| t.starts_with(ERROR_NS)) {
        let mut out = (p.status, axum::Json(p.body.clone())).into_response();
        out.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        return p.restore(out);
    }
    let kind = match p.status {
        StatusCode::TOO_MANY_REQUESTS => "rateLimited",
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => "unauthorized",
        s if s.is_server_error() => "serverInternal",
        _ => "malformed",
    };
    let out = problem_response(p.status, &AcmeProblem::new(kind, p.detail()));
    p.restore(out)
}
