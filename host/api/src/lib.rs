//! Sigil's HTTP surface. This is the only crate that knows HTTP: routers per resource,
//! extractors, the authentication middleware, the error mapping (`ApiError` → problem+json) and
//! the OpenAPI document generated from the handlers.
//!
//! Handlers are thin: extract, obtain the capability through [`extract::Authorized`], call one
//! core service, map the result.
#![deny(missing_docs)]

pub mod access;
pub mod access_log;
pub mod acme;
pub mod auth;
pub mod client_ip;
pub mod csc;
pub mod error;
pub mod exposure;
pub mod extract;
mod health;
pub mod metrics;
mod openapi;
pub mod ui;
pub mod v1;

use sigil_core::ErrorCode;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use sigil_core::access::api_keys::ApiKeyService;
use sigil_core::audit::trail::AuditService;
use sigil_core::ports::Store;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
use crate::exposure::Exposure;
use crate::metrics::Metrics;

/// Shared state of every handler: one pointer, so that the clone axum makes for each request
/// (and each layer) is one reference count instead of one per service (a CPU profile under
/// load showed the clone and drop of the wide struct at about 1%).
#[derive(Clone)]
pub struct AppState(Arc<AppServices>);

impl AppState {
    /// Shares `services` with every handler.
    pub fn new(services: AppServices) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppServices;
    fn deref(&self) -> &AppServices {
        &self.0
    }
}

/// What every handler may use.
pub struct AppServices {
    /// API keys.
    pub api_keys: Arc<ApiKeyService>,
    /// Audit trail.
    pub audit: Arc<AuditService>,
    /// Certificates.
    pub certificates: Arc<sigil_core::certs::certificates::CertificateService>,
    /// Profiles.
    pub profiles: Arc<sigil_core::certs::profiles::ProfileService>,
    /// CA back ends and CRLs.
    pub cas: Arc<sigil_core::certs::cas::CaService>,
    /// The plugin set.
    pub plugins: Arc<dyn sigil_core::ports::PluginControl>,
    /// Endpoint plugins.
    pub endpoints: Arc<dyn sigil_core::ports::Endpoints>,
    /// Roles.
    pub roles: Arc<sigil_core::access::roles::RoleService>,
    /// Operators.
    pub operators: Arc<sigil_core::access::operators::OperatorService>,
    /// Organizations, divisions, offices.
    pub org: Arc<sigil_core::org::organizations::OrgService>,
    /// People and custom fields.
    pub people: Arc<sigil_core::people::directory::PeopleService>,
    /// Devices.
    pub devices: Arc<sigil_core::cards::devices::DeviceService>,
    /// Enrolment requests.
    pub requests: Arc<sigil_core::cards::enrolments::RequestService>,
    /// Self-service.
    pub selfservice: Arc<sigil_core::cards::self_service::SelfService>,
    /// Identity sources.
    pub identity: Arc<sigil_core::people::identity::IdentityService>,
    /// PIN reset.
    pub pins: Arc<sigil_core::cards::pin_reset::PinResetService>,
    /// CSC signers and signing credentials.
    pub signers: Arc<sigil_core::signing::signers::SignerService>,
    /// The CSC protocol.
    pub csc: Arc<sigil_core::signing::csc::CscService>,
    /// CSC provider configurations.
    pub csc_providers: Arc<sigil_core::signing::providers::CscProviderService>,
    /// ACME.
    pub acme: Arc<sigil_core::acme::AcmeService>,
    /// Shared settings (the exposure override).
    pub settings: Arc<sigil_core::settings::SettingsService>,
    /// The store, for readiness checks.
    pub store: Arc<dyn Store>,
    /// Exposure table.
    pub exposure: Arc<Exposure>,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// The OpenAPI document of every route (filtered per request by exposure).
    pub openapi: Arc<utoipa::openapi::OpenApi>,
    /// Open event streams and their bounds.
    pub streams: Arc<v1::stream::StreamSlots>,
    /// The admin web UI's settings.
    pub ui: ui::UiConfig,
}

/// What every listener enforces: body and time limits, and whose `X-Forwarded-For` it believes.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest accepted request body.
    pub body_bytes: usize,
    /// Longest a request may take.
    pub request_timeout: Duration,
    /// Reverse proxies (`server.trusted_proxies`) whose `X-Forwarded-For` names the client;
    /// empty: the TCP peer is the client.
    pub trusted_proxies: Arc<[ipnet::IpNet]>,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Sigil", description = "Credential lifecycle platform: certificates, tokens, remote signing."),
    modifiers(&SecurityAddon),
    components(schemas(csc::CscErrorBody, acme::AcmeProblemBody)),
    tags(
        (name = "api-keys", description = "API keys: scopes, expiry, rate limits, IP whitelists, rotation"),
        (name = "audit", description = "The signed, hash-chained audit trail"),
        (name = "exposure", description = "Which endpoints are served and how they authenticate"),
        (name = "permissions", description = "The permission catalogue"),
        (name = "roles", description = "Roles: named groups of permissions"),
        (name = "certificates", description = "Certificate lifecycle: issue, search, suspend, reactivate, revoke, renew"),
        (name = "profiles", description = "Certificate profiles (templates)"),
        (name = "ca-backends", description = "CA back ends"),
        (name = "revocation", description = "CRLs and OCSP"),
        (name = "plugins", description = "WebAssembly plugins: loaded set and reload"),
        (name = "operators", description = "Operators: people who act through Sigil, with roles"),
        (name = "signers", description = "CSC signers and their signing credentials"),
        (name = "csc-providers", description = "CSC provider configurations (what /csc/*/info says)"),
        (name = "csc", description = "Cloud Signature Consortium API v1.0.4 (/csc/v1) and v2 (/csc/v2); errors are CSC's {error, error_description}"),
        (name = "health", description = "Liveness, readiness"),
        (name = "metrics", description = "Prometheus metrics"),
    )
)]
struct ApiDoc;

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        c.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
        c.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// Every operation can be throttled (429) by its exposure rule or its key; the operations that
/// need a credential can also answer 401 and 403. Documented here once instead of per handler.
struct CommonResponses;

impl utoipa::Modify for CommonResponses {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let problem = |d: &str| {
            ResponseBuilder::new()
                .description(d)
                .content(
                    "application/problem+json",
                    ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build(),
                )
                .build()
        };
        let csc_error = |d: &str| {
            ResponseBuilder::new()
                .description(d)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("CscErrorBody")))
                        .build(),
                )
                .build()
        };
        let acme_problem = |d: &str| {
            ResponseBuilder::new()
                .description(d)
                .content(
                    "application/problem+json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("AcmeProblemBody")))
                        .build(),
                )
                .build()
        };
        for (path, item) in doc.paths.paths.iter_mut() {
            if path.starts_with("/acme/") {
                // ACME answers its own problem documents (urn:ietf:params:acme:error:*).
                for op in [&mut item.get, &mut item.post].into_iter().flatten() {
                    let r = &mut op.responses.responses;
                    let mut set = |code: &str, d: &str| {
                        r.insert(code.into(), acme_problem(d).into());
                    };
                    set(
                        "400",
                        "malformed, badNonce, badCSR, rejectedIdentifier, … (the type says)",
                    );
                    set("403", "unauthorized, orderNotReady");
                    set("404", "ACME off, the profile not served over ACME, or no such object");
                    set("405", "Method not allowed");
                    set("409", "conflict: the new key of a key change is another account's");
                    set("413", "Body larger than server.body_limit_bytes");
                    set("415", "malformed: not application/jose+json");
                    set("429", "rateLimited; see Retry-After");
                    set("500", "serverInternal");
                    set("503", "serverInternal: database unavailable or timeout");
                }
                continue;
            }
            if path.starts_with("/csc/") {
                // CSC answers its own error body, as application/json.
                for op in [&mut item.get, &mut item.post].into_iter().flatten() {
                    let r = &mut op.responses.responses;
                    let mut add = |code: &str, d: &str| {
                        r.entry(code.into()).or_insert_with(|| csc_error(d).into());
                    };
                    add(
                        "400",
                        "invalid_request (bad or missing parameter), invalid_pin (v1), invalid_authentication_data (v2), authentication_error",
                    );
                    // Only the service `info` is unauthenticated (credentials/info is not).
                    if !(path.ends_with("/v1/info") || path.ends_with("/v2/info")) {
                        add("401", "invalid_token or expired_token");
                    }
                    add("403", "access_denied: the address may not call this endpoint");
                    add("404", "Not exposed");
                    add("405", "Method not allowed");
                    add("413", "Body larger than server.body_limit_bytes");
                    add("429", "temporarily_unavailable: rate limit exceeded; see Retry-After");
                    add("500", "server_error");
                    add("503", "temporarily_unavailable: database unavailable or timeout");
                }
                continue;
            }
            let secured = path.starts_with("/api/");
            for (method, op) in operations_mut(item) {
                let Some(op) = op else { continue };
                if secured {
                    let rule = access::access(&method, path).describe(&method, path);
                    op.description = Some(match op.description.take() {
                        Some(d) if !d.is_empty() => format!("{d}\n\n{rule}"),
                        _ => rule,
                    });
                }
                let has_body = op.request_body.is_some();
                let r = &mut op.responses.responses;
                // Every error is problem+json, whatever the handler annotation said.
                for (code, resp) in r.iter_mut() {
                    if code.as_str() >= "400"
                        && let utoipa::openapi::RefOr::T(resp) = resp
                        && let Some(c) = resp.content.shift_remove("application/json")
                    {
                        resp.content.insert("application/problem+json".into(), c);
                    }
                }
                if secured {
                    r.entry("400".into())
                        .or_insert_with(|| problem("Invalid parameter, body or cursor").into());
                }
                if has_body {
                    r.entry("413".into()).or_insert_with(|| {
                        problem("Body larger than server.body_limit_bytes").into()
                    });
                    r.entry("415".into())
                        .or_insert_with(|| problem("Body is not application/json").into());
                }
                r.entry("429".into())
                    .or_insert_with(|| problem("Rate limit exceeded; see Retry-After").into());
                r.entry("404".into())
                    .or_insert_with(|| problem("Not found, or not exposed").into());
                if secured {
                    r.entry("401".into()).or_insert_with(|| {
                        problem("Missing, unknown, expired or revoked credential").into()
                    });
                    r.entry("403".into()).or_insert_with(|| {
                        problem("Permission denied or address not allowed").into()
                    });
                    r.entry("503".into()).or_insert_with(|| {
                        problem("Database unavailable or request timeout; nothing was changed")
                            .into()
                    });
                }
            }
        }
    }
}

/// Every route with its OpenAPI description, before state is attached.
pub fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(v1::apikeys::router())
        .merge(v1::acme::router())
        .merge(v1::audit::router())
        .merge(v1::meta::router())
        .merge(v1::operators::router())
        .merge(v1::org::router())
        .merge(v1::people::router())
        .merge(v1::devices::router())
        .merge(v1::requests::router())
        .merge(v1::stream::router())
        .merge(v1::reports::router())
        .merge(v1::selfservice::router())
        .merge(v1::pin_reset::router())
        .merge(v1::identity::router())
        .merge(v1::certificates::router())
        .merge(v1::profiles::router())
        .merge(v1::plugins::router())
        .merge(v1::ext::router())
        .merge(v1::signers::router())
        .merge(v1::csc_providers::router())
        .merge(csc::router())
        .merge(acme::router())
        .merge(health::router())
        .split_for_parts();
    // Modifiers declared on ApiDoc run before the routes' paths are merged in, so this one is
    // applied to the finished document.
    utoipa::Modify::modify(&CommonResponses, &mut doc);
    openapi::finish(&mut doc);
    (router, doc)
}

/// The (method, path template) of every operation in `doc`, plus the documentation routes.
pub fn endpoints(doc: &utoipa::openapi::OpenApi) -> Vec<(Method, String)> {
    let mut v = vec![(Method::GET, "/openapi.json".to_owned())];
    for (path, item) in &doc.paths.paths {
        for (m, op) in operations(item) {
            if op {
                v.push((m, path.clone()));
            }
        }
    }
    v
}

/// The operations of a path, each with its method, to change in place.
pub(crate) fn operations_mut(
    item: &mut utoipa::openapi::PathItem,
) -> [(Method, &mut Option<utoipa::openapi::path::Operation>); 5] {
    [
        (Method::GET, &mut item.get),
        (Method::POST, &mut item.post),
        (Method::PUT, &mut item.put),
        (Method::PATCH, &mut item.patch),
        (Method::DELETE, &mut item.delete),
    ]
}

fn operations(item: &utoipa::openapi::PathItem) -> [(Method, bool); 5] {
    [
        (Method::GET, item.get.is_some()),
        (Method::POST, item.post.is_some()),
        (Method::PUT, item.put.is_some()),
        (Method::PATCH, item.patch.is_some()),
        (Method::DELETE, item.delete.is_some()),
    ]
}

/// The OpenAPI document without disabled endpoints.
async fn openapi_json(State(st): State<AppState>) -> Response {
    let mut doc = (*st.openapi).clone();
    doc.paths.paths.retain(|path, item| {
        for (method, op) in operations_mut(item) {
            match st.exposure.resolve(&method, path) {
                // The credentials each operation takes are what its exposure rule says now.
                Some(rule) if rule.enabled => {
                    if let Some(op) = op.as_mut() {
                        openapi::set_security(op, rule.auth);
                    }
                }
                _ => *op = None,
            }
        }
        operations(item).iter().any(|(_, on)| *on)
    });
    axum::Json(doc).into_response()
}

async fn docs_gate(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if st.exposure.enabled(&Method::GET, "/openapi.json") {
        next.run(req).await
    } else {
        ApiError::not_found().into_response()
    }
}

/// Bounds a request's whole life (body upload included); answers problem+json when exceeded.
/// A body declared (`Content-Length`) larger than the limit is refused at once, before anything
/// reads it: a client need not send it, and the server does not wait for it (HTTP/1.1 and
/// HTTP/2 alike; a body without a declared length is cut at the limit as it is read). One layer
/// for both bounds: each `from_fn` layer costs every request a boxed future and a clone of the
/// service below it.
async fn bounds(
    State((body_bytes, time)): State<(usize, Duration)>,
    req: Request,
    next: Next,
) -> Response {
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > body_bytes as u64) {
        return extract::too_large().into_response();
    }
    match tokio::time::timeout(time, next.run(req)).await {
        Ok(res) => res,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::RequestTimeout,
            format!("the request took longer than {} s", time.as_secs_f64()),
        )
        .into_response(),
    }
}

/// The body limit and the request timeout of `limits`, as [`bounds`] takes them.
pub(crate) fn bounds_layer_state(limits: &Limits) -> (usize, Duration) {
    (limits.body_bytes, limits.request_timeout)
}

/// What the outermost layer does for every request on a listener.
#[derive(Clone)]
struct Edge {
    /// `server.trusted_proxies`.
    trusted: Arc<[ipnet::IpNet]>,
    /// Whether `/csc/` and `/acme/` paths answer in their protocol's error format (the main
    /// listener; the publication listener serves neither).
    protocol_errors: bool,
}

/// The outermost of Sigil's layers, in one (each layer costs every request a boxed future and a
/// clone of the service below it): the client's address behind trusted proxies, the access log
/// line (of every request, one refused there for an unreadable `X-Forwarded-For` too, logged
/// with the proxy as its client), and on the main listener the CSC and ACME error formats.
/// Outside every layer that can refuse a request, so CSC paths answer CSC errors.
async fn edge(State(edge): State<Edge>, mut req: Request, next: Next) -> Response {
    let refused = client_ip::resolve(&edge.trusted, &mut req).err();
    let line = access_log::Entry::begin(&req);
    let res = match refused {
        Some(refused) => refused.into_response(),
        None if edge.protocol_errors => protocol_errors(req, next).await,
        None => next.run(req).await,
    };
    if let Some(line) = line {
        line.finish(&res);
    }
    res
}

/// Answers on `/csc/` and `/acme/` paths in their protocol's error format ([`csc::errors`],
/// [`acme::errors`]); reads the path once for both.
async fn protocol_errors(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path.starts_with("/csc/") {
        csc::errors(req, next).await
    } else if path.starts_with("/acme/") {
        acme::errors(req, next).await
    } else {
        next.run(req).await
    }
}

/// 404 and 405 as problems, the body limit (also for a declared Content-Length) and the request
/// timeout: what every listener's routes get.
fn bounded(routes: Router<AppState>, limits: Limits) -> Router<AppState> {
    routes
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::MethodNotAllowed,
                "this method is not allowed here",
            )
        })
        .layer(DefaultBodyLimit::max(limits.body_bytes))
        .layer(middleware::from_fn_with_state(bounds_layer_state(&limits), bounds))
}

/// The plain-HTTP publication application (`pki.http_listen`): CRLs, OCSP and CA certificates
/// only, under the same exposure rules, limits and logging as on HTTPS; anything else is 404.
pub fn publication_app(state: AppState, limits: Limits) -> Router {
    let routes = v1::profiles::publication()
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::routed_plain));
    let edge_state = Edge { trusted: limits.trusted_proxies.clone(), protocol_errors: false };
    bounded(routes, limits)
        .layer(middleware::from_fn_with_state(edge_state, edge))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(PropagateRequestIdLayer::new(HeaderName::from_static("x-request-id")))
        .layer(SetRequestIdLayer::new(HeaderName::from_static("x-request-id"), MakeRequestUuid))
        .with_state(state)
}

/// The debug span of a request: method and path, never the query string (search texts can be
/// personal data) or a header.
fn request_span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    tracing::debug_span!("request", method = %req.method(), path = %req.uri().path())
}

/// The complete application: the REST and CSC API, the documentation, and the admin web UI
/// (which calls the API in-process).
pub fn app(state: AppState, routes: Router<AppState>, limits: Limits) -> Router {
    let x_request_id = HeaderName::from_static("x-request-id");
    let swagger: Router<AppState> = Router::from(
        utoipa_swagger_ui::SwaggerUi::new("/docs")
            .config(utoipa_swagger_ui::Config::from("/openapi.json")),
    )
    .layer(middleware::from_fn_with_state(state.clone(), docs_gate));
    let routes = routes
        .route("/openapi.json", axum::routing::get(openapi_json))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::routed))
        .merge(swagger);
    let edge_state = Edge { trusted: limits.trusted_proxies.clone(), protocol_errors: true };
    let api = bounded(routes, limits.clone()).with_state(state.clone());
    let ui = ui::router(state.clone(), api.clone(), state.ui, &limits);
    Router::new()
        .merge(ui)
        .fallback_service(api)
        .layer(middleware::from_fn_with_state(edge_state, edge))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(SetSensitiveRequestHeadersLayer::new([
            axum::http::header::AUTHORIZATION,
            axum::http::header::COOKIE,
            HeaderName::from_static("x-api-key"),
        ]))
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid))
}
