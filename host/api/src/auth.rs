//! The authentication step in front of every routed request: the exposure rule decides whether
//! the endpoint is served, from where, and with which credential; the credential is then checked
//! and the caller is attached to the request for the [`crate::extract::Authorized`] extractor.

use sigil_core::ErrorCode;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use sigil_core::access::authz::{AuthMethod, Principal, RequestContext};
use sigil_core::{AuthFailure, CoreError};

use crate::AppState;
use crate::error::{ApiError, ResponseCode};
use crate::exposure::AuthMode;
use crate::extract::Caller;

/// A verified client certificate, put into the request by the TLS layer when there is one.
#[derive(Debug, Clone)]
pub struct ClientCertificate {
    /// Hex SHA-256 of the certificate DER.
    pub sha256: String,
    /// Subject DN as text.
    pub subject: String,
}

fn presented_key(h: &HeaderMap) -> Option<String> {
    let bearer = h
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(|s| s.trim().to_owned());
    bearer.or_else(|| h.get("x-api-key").and_then(|v| v.to_str().ok()).map(|s| s.trim().to_owned()))
}

/// A request's context before anyone is authenticated: its id and the client's address. The
/// protocols that authenticate in their own handlers (ACME, CSC, the UI) start from it.
pub(crate) fn request_context(parts: &axum::http::request::Parts) -> RequestContext {
    RequestContext {
        request_id: request_id(&parts.headers),
        client_ip: parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(a)| a.ip()),
        authenticated_by: None,
    }
}

/// The request id to record: a client's `x-request-id` only when it is short and plain (1 to 64
/// letters, digits, `.`, `_`, `-`), so that nobody can put control characters, formulas or
/// megabytes into the audit trail through it; anything else is replaced by a fresh id.
pub fn request_id(h: &HeaderMap) -> Option<String> {
    let v = h.get("x-request-id")?;
    let plain = (1..=64).contains(&v.len())
        && v.as_bytes()
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    Some(match v.to_str() {
        Ok(v) if plain => v.to_owned(),
        _ => uuid::Uuid::now_v7().to_string(),
    })
}

/// The layer on every route, in one (each layer costs every request a boxed future and a clone
/// of the service below it): the exposure rule and the credential ([`guard`]), timed and counted
/// for the metrics, the route and the caller left on the response for the access log.
pub async fn routed(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let timer = crate::metrics::Timer::begin(&req);
    let res = guard(&st, req, next).await;
    timer.finish(&st.metrics, res)
}

/// [`routed`] on the plain-HTTP publication listener: only endpoints that need no credential
/// are served there (a key or a client certificate would travel in clear text, or could not be
/// presented at all); an endpoint configured to need one is 404 on this listener and keeps
/// being served over HTTPS.
pub async fn routed_plain(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let timer = crate::metrics::Timer::begin(&req);
    let path = matched(&req);
    let res = match st.exposure.resolve(req.method(), &path) {
        Some(rule) if rule.auth == AuthMode::None => guard(&st, req, next).await,
        _ => ApiError::not_found().into_response(),
    };
    timer.finish(&st.metrics, res)
}

/// The exposure rule and the credential, then the route; an authenticated caller is left on
/// the response, and its refusals are audited.
async fn guard(st: &AppState, mut req: Request, next: Next) -> Response {
    match check(st, &mut req).await {
        Ok(None) => next.run(req).await,
        Ok(Some(principal)) => {
            let method = req.method().clone();
            let route = req.extensions().get::<MatchedPath>().cloned();
            let mut res = next.run(req).await;
            // For the access log, outside the router.
            res.extensions_mut().insert(Caller(principal.clone()));
            // Refusals of authenticated callers are security events: record them.
            if res.status() == StatusCode::FORBIDDEN {
                let endpoint =
                    format!("{method} {}", route.as_ref().map_or("", MatchedPath::as_str));
                let code = res
                    .extensions()
                    .get::<ResponseCode>()
                    .map_or(ErrorCode::Forbidden.as_str(), |c| c.0);
                if let Err(e) = st.audit.record_denied(&principal, &endpoint, code).await {
                    tracing::warn!(error = %e, "recording a denied request failed");
                }
            }
            res
        }
        Err(e) => e.into_response(),
    }
}

fn matched(req: &Request) -> String {
    req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_default()
}

async fn check(st: &AppState, req: &mut Request) -> Result<Option<Arc<Principal>>, ApiError> {
    let Some(path) = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()) else {
        return Err(ApiError::not_found());
    };
    // HEAD is GET without a body (axum answers it with the GET route): the GET rule applies.
    let method = if req.method() == Method::HEAD { Method::GET } else { req.method().clone() };
    let Some(rule) = st.exposure.resolve(&method, &path) else {
        return Err(ApiError::not_found());
    };
    if !rule.enabled {
        return Err(ApiError::not_found());
    }
    // A plugin's in-process call for a caller: the principal is the plugin narrowed to the
    // caller's authority, and the endpoint's exposure rules apply to the outer request's
    // address and credential, as if the caller had called it directly.
    if let Some(crate::v1::ext::InternalCaller(p)) =
        req.extensions().get::<crate::v1::ext::InternalCaller>().cloned()
    {
        if let Some(ip) = p.context.client_ip
            && !st.exposure.ip_allowed(&rule, ip)
        {
            return Err(CoreError::Forbidden {
                code: ErrorCode::IpNotAllowed,
                detail: format!("{ip} may not call this endpoint"),
            }
            .into());
        }
        // No outer request at all (a workflow's action, carried out by the host on the
        // plugin's grant): nothing to hold it to.
        let admitted = match (rule.auth, p.context.authenticated_by) {
            (_, None) => p.context.client_ip.is_none(),
            (AuthMode::None | AuthMode::Either, _) => true,
            (AuthMode::ApiKey, by) => by == Some(AuthMethod::ApiKey),
            (AuthMode::Mtls, by) => by == Some(AuthMethod::ClientCertificate),
        };
        if !admitted {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::ClientCertificateRequired,
                "this endpoint requires a client certificate",
            ));
        }
        if let Some(limit) = rule.rate_limit {
            // The caller's own bucket: calls through a plugin count against the caller.
            let who = match (&p.api_key_id, &p.operator_id) {
                (Some(k), _) => format!("api_key:{k}"),
                (None, Some(o)) => format!("operator:{o}"),
                (None, None) => format!("{}:{}", p.kind.as_str(), p.id),
            };
            st.api_keys.throttle(&format!("endpoint:{}:{who}", rule.endpoint), limit).await?;
        }
        req.extensions_mut().insert(Caller(p.clone()));
        return Ok(Some(p));
    }
    let ip: Option<IpAddr> =
        req.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(a)| a.ip());
    if let Some(ip) = ip
        && !st.exposure.ip_allowed(&rule, ip)
    {
        return Err(CoreError::Forbidden {
            code: ErrorCode::IpNotAllowed,
            detail: format!("{ip} may not call this endpoint"),
        }
        .into());
    }
    let mut context = RequestContext {
        request_id: request_id(req.headers()),
        client_ip: ip,
        authenticated_by: None,
    };
    let throttle = |who: String| {
        let rule = &rule;
        async move {
            if let Some(limit) = rule.rate_limit {
                st.api_keys.throttle(&format!("endpoint:{}:{who}", rule.endpoint), limit).await?;
            }
            Ok::<(), ApiError>(())
        }
    };
    let key = presented_key(req.headers());
    let cert = req.extensions().get::<Arc<ClientCertificate>>().cloned().or_else(|| {
        // rustls has already verified the chain against the client CA and its CRL.
        let tls = req.extensions().get::<Arc<axum_server::tls::TlsInfo>>()?;
        let der = tls.peer_certificates.first()?;
        let subject = x509_parser::parse_x509_certificate(der)
            .map(|(_, c)| c.subject().to_string())
            .unwrap_or_default();
        Some(Arc::new(ClientCertificate { sha256: hex::encode(Sha256::digest(der)), subject }))
    });
    let principal = match rule.auth {
        AuthMode::None => {
            throttle(ip.map(|i| i.to_string()).unwrap_or_default()).await?;
            return Ok(None);
        }
        AuthMode::ApiKey => {
            let key = key.ok_or(AuthFailure::Missing)?;
            context.authenticated_by = Some(AuthMethod::ApiKey);
            st.api_keys.authenticate(&key, context).await?
        }
        AuthMode::Mtls | AuthMode::Either => match (cert, key, rule.auth) {
            (Some(cert), _, _) => {
                context.authenticated_by = Some(AuthMethod::ClientCertificate);
                st.api_keys.authenticate_certificate(&cert.sha256, context).await?
            }
            (None, Some(key), AuthMode::Either) => {
                context.authenticated_by = Some(AuthMethod::ApiKey);
                st.api_keys.authenticate(&key, context).await?
            }
            _ => {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    ErrorCode::ClientCertificateRequired,
                    "this endpoint requires a client certificate",
                ));
            }
        },
    };
    throttle(format!("{}:{}", principal.kind.as_str(), principal.id)).await?;
    req.extensions_mut().insert(Caller(principal.clone()));
    Ok(Some(principal))
}
