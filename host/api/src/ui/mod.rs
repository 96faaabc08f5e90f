//! The admin web UI at `/ui/` (ARCHITECTURE §9.2): server-rendered pages over the REST API.
//!
//! The UI has no permission model of its own. An operator signs in with an API key; every page
//! and every action is an in-process call of the REST API (`/api/v1/…`, through the same
//! router, exposure rules, handlers and core services) as the session's principal, which is
//! the key re-admitted from the store on each request. What the key may not do, the UI cannot
//! do either, and every change is audited as the key. Menus only show what the key may read.
//!
//! Pages are minijinja templates compiled into the binary; the only scripts are the vendored,
//! pinned htmx file and a few lines of Sigil's own (copy button), both served from
//! `/ui/assets/`. A Content-Security-Policy forbids inline script and anything from elsewhere.
#![allow(
    clippy::result_large_err,
    reason = "a refusal is the rendered page itself (a Response), returned once per request"
)]

mod assets;
mod audit;
mod certs;
mod csc;
mod devices;
mod forms;
mod keys;
mod plugins;
mod requests;
mod session;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use http_body_util::BodyExt;
use serde_json::Value;
use sigil_core::access::authz::{AuthMethod, Principal};
use sigil_core::access::ui_session::SessionPolicy;
use tower::ServiceExt;

use crate::AppState;
use crate::v1::ext::InternalCaller;

pub(crate) use session::Session;

/// The UI's settings (`[ui]`).
#[derive(Debug, Clone, Copy)]
pub struct UiConfig {
    /// Whether `/ui/` is served at all.
    pub enabled: bool,
    /// Session lifetime and idle timeout.
    pub policy: SessionPolicy,
}

impl Default for UiConfig {
    fn default() -> Self {
        Self { enabled: true, policy: SessionPolicy::default() }
    }
}

/// Every route of the UI with its method (besides the `/ui` redirect and the catch-all 404):
/// the UI's authorization matrix (tests/it/ui.rs) tries each; a unit test holds this list to
/// the routers' source.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/ui/"),
    ("GET", "/ui/login"),
    ("POST", "/ui/login"),
    ("POST", "/ui/logout"),
    ("GET", "/ui/assets/{name}"),
    ("GET", "/ui/api-keys"),
    ("POST", "/ui/api-keys"),
    ("GET", "/ui/api-keys/new"),
    ("GET", "/ui/api-keys/{id}/revoke"),
    ("POST", "/ui/api-keys/{id}/revoke"),
    ("GET", "/ui/api-keys/{id}/rotate"),
    ("POST", "/ui/api-keys/{id}/rotate"),
    ("GET", "/ui/csc-providers"),
    ("POST", "/ui/csc-providers"),
    ("GET", "/ui/csc-providers/new"),
    ("GET", "/ui/csc-providers/{id}"),
    ("POST", "/ui/csc-providers/{id}"),
    ("GET", "/ui/csc-providers/{id}/delete"),
    ("GET", "/ui/csc-providers/{id}/logo"),
    ("POST", "/ui/csc-providers/{id}/delete"),
    ("GET", "/ui/certificates"),
    ("GET", "/ui/certificates/{id}"),
    ("GET", "/ui/certificates/{id}/download"),
    ("GET", "/ui/certificates/{id}/{action}"),
    ("POST", "/ui/certificates/{id}/{action}"),
    ("GET", "/ui/devices"),
    ("GET", "/ui/devices/{id}"),
    ("GET", "/ui/devices/{id}/{action}"),
    ("POST", "/ui/devices/{id}/{action}"),
    ("GET", "/ui/requests"),
    ("POST", "/ui/requests/{id}/{decision}"),
    ("GET", "/ui/audit"),
    ("GET", "/ui/audit/objects/{object_type}/{object_id}"),
    ("GET", "/ui/audit/export"),
    ("GET", "/ui/audit/verify"),
    ("GET", "/ui/plugins"),
    ("POST", "/ui/plugins/reload"),
];

/// Largest REST answer a page reads: the list of CSC providers carries every logo (at most 100
/// of 256 KiB each, base64), and a page of 100 certificates with their PEMs fits easily.
const MAX_API_BODY: usize = 48 * 1024 * 1024;

/// Where the session extractor leaves the caller for the access log (which runs outside the
/// router and reads it from the response, as it does for the API).
#[derive(Clone, Default)]
pub(crate) struct CallerSlot(pub Arc<std::sync::OnceLock<Arc<Principal>>>);

/// Puts the route and the session's caller on the response, for the access log.
async fn trace(mut req: Request, next: Next) -> Response {
    let matched = req.extensions().get::<axum::extract::MatchedPath>().cloned();
    let slot = CallerSlot::default();
    req.extensions_mut().insert(slot.clone());
    let mut res = next.run(req).await;
    if let Some(m) = matched {
        res.extensions_mut().insert(m);
    }
    if let Some(p) = slot.0.get() {
        res.extensions_mut().insert(crate::extract::Caller(p.clone()));
    }
    res
}

/// Unknown pages under `/ui`: a page (the API's 404 is problem+json), with the menu when the
/// request has a session.
async fn not_found(State(ui): State<Ui>, req: Request) -> Response {
    let (mut parts, _) = req.into_parts();
    let session =
        <Session as axum::extract::FromRequestParts<Ui>>::from_request_parts(&mut parts, &ui)
            .await
            .ok();
    ui.render(
        session.as_ref(),
        "error.html",
        serde_json::json!({"title": "Not found", "status": 404, "code": "not_found",
            "detail": "There is no such page."}),
        StatusCode::NOT_FOUND,
    )
}

/// What the UI's handlers share.
#[derive(Clone)]
pub(crate) struct Ui {
    app: AppState,
    /// The REST API (routes, guard and limits; no UI), called in-process.
    api: Router,
    templates: Arc<minijinja::Environment<'static>>,
    config: UiConfig,
}

/// A REST answer: its status and JSON body (`Null` when it had none or was not JSON).
#[derive(Debug)]
pub(crate) struct ApiAnswer {
    pub status: StatusCode,
    pub body: Value,
    pub headers: axum::http::HeaderMap,
    pub raw: axum::body::Bytes,
}

impl ApiAnswer {
    /// A refusal made by the UI itself, shown like the API's.
    pub fn refusal(status: u16, code: &str, detail: &str) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            body: serde_json::json!({"code": code, "detail": detail}),
            headers: Default::default(),
            raw: Default::default(),
        }
    }

    /// Whether the call succeeded.
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The problem's `detail` (or a generic sentence).
    pub fn detail(&self) -> String {
        self.body
            .get("detail")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("the server answered {}", self.status))
    }

    /// The problem's `code`.
    pub fn code(&self) -> &str {
        self.body.get("code").and_then(Value::as_str).unwrap_or("")
    }
}

impl Ui {
    /// Calls the REST API in-process as `session`'s principal.
    pub(crate) async fn call(
        &self,
        session: &Session,
        method: Method,
        uri: &str,
        body: Option<&Value>,
    ) -> ApiAnswer {
        self.call_as(&session.principal, method, uri, body).await
    }

    async fn call_as(
        &self,
        principal: &Arc<Principal>,
        method: Method,
        uri: &str,
        body: Option<&Value>,
    ) -> ApiAnswer {
        let failed = |detail: &str| ApiAnswer {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            body: serde_json::json!({"detail": detail, "code": "internal"}),
            headers: Default::default(),
            raw: Default::default(),
        };
        let mut builder = axum::http::Request::builder().method(method).uri(uri);
        let payload = match body {
            Some(v) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let Ok(mut req) = builder.body(payload) else {
            return failed("the page built a malformed request");
        };
        req.extensions_mut().insert(InternalCaller(principal.clone()));
        let Ok(res) = self.api.clone().oneshot(req).await;
        let status = res.status();
        let headers = res.headers().clone();
        match http_body_util::Limited::new(res.into_body(), MAX_API_BODY).collect().await {
            Ok(b) => {
                let raw = b.to_bytes();
                let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
                ApiAnswer { status, body, headers, raw }
            }
            Err(_) => failed("the answer was too large to show"),
        }
    }

    /// The object at REST `path`, or the page refusing it (titled `title`).
    pub(crate) async fn fetch(
        &self,
        session: &Session,
        path: &str,
        title: &str,
    ) -> Result<Value, Response> {
        let a = self.call(session, Method::GET, path, None).await;
        if a.ok() { Ok(a.body) } else { Err(self.refused(session, title, &a)) }
    }

    /// A list page's REST answer at `api?limit=50&query`: its items, the link to the next page
    /// (`base` with the same filters), and a refused filter (400) to show on the page; any other
    /// refusal is a page of its own.
    pub(crate) async fn list(
        &self,
        session: &Session,
        base: &str,
        api: &str,
        query: &str,
        title: &str,
    ) -> Result<(Value, Option<String>, Option<String>), Response> {
        let a = self.call(session, Method::GET, &format!("{api}?limit=50&{query}"), None).await;
        if a.ok() {
            Ok((a.body["items"].clone(), forms::next_url(base, query, &a.body), None))
        } else if a.status == StatusCode::BAD_REQUEST {
            Ok((serde_json::json!([]), None, Some(a.detail())))
        } else {
            Err(self.refused(session, title, &a))
        }
    }

    /// Renders template `name` with `ctx` and the session's frame (menu, CSRF token).
    pub(crate) fn page(&self, session: Option<&Session>, name: &str, ctx: Value) -> Response {
        self.render(session, name, ctx, StatusCode::OK)
    }

    pub(crate) fn render(
        &self,
        session: Option<&Session>,
        name: &str,
        mut ctx: Value,
        status: StatusCode,
    ) -> Response {
        if let (Some(s), Some(obj)) = (session, ctx.as_object_mut()) {
            obj.insert("me".into(), s.frame(&self.app));
            obj.insert("csrf".into(), Value::String(s.session.csrf_token.clone()));
        }
        let out =
            self.templates.get_template(name).and_then(|t| t.render(minijinja::value::Serde(&ctx)));
        match out {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!(template = name, error = %e, "rendering a UI page failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered")
                    .into_response()
            }
        }
    }

    /// An error page for a refused or failed REST call (its status, code and detail).
    pub(crate) fn refused(&self, session: &Session, title: &str, answer: &ApiAnswer) -> Response {
        let status = if answer.status.is_client_error() || answer.status.is_server_error() {
            answer.status
        } else {
            StatusCode::BAD_GATEWAY
        };
        self.render(
            Some(session),
            "error.html",
            serde_json::json!({
                "title": title,
                "status": answer.status.as_u16(),
                "code": answer.code(),
                "detail": answer.detail(),
            }),
            status,
        )
    }
}

/// A page that only makes sense with `permission` (a form whose submission needs it) is
/// refused up front as the REST API would refuse its submission; the API still decides.
pub(crate) fn require(ui: &Ui, s: &Session, permission: &str) -> Result<(), Response> {
    if s.principal.permissions.allows(permission) {
        return Ok(());
    }
    Err(ui.render(
        Some(s),
        "error.html",
        serde_json::json!({"title": "Refused", "status": 403, "code": "permission_denied",
            "detail": format!("this API key lacks the permission `{permission}`")}),
        StatusCode::FORBIDDEN,
    ))
}

/// Where a POST goes after it is done (303 See Other, so a reload does not repeat it).
pub(crate) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// Security headers of every UI answer.
async fn headers(req: Request, next: Next) -> Response {
    let asset = req.uri().path().starts_with("/ui/assets/");
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if asset { "public, max-age=3600" } else { "no-store" }),
    );
    res
}

/// The UI router, or one that answers 404 everywhere under `/ui` when it is disabled.
pub(crate) fn router(
    app: AppState,
    api: Router,
    config: UiConfig,
    limits: &crate::Limits,
) -> Router {
    if !config.enabled {
        return Router::new();
    }
    let ui = Ui { app, api, templates: Arc::new(assets::templates()), config };
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(session::home))
        .route("/ui/login", get(session::login_form).post(session::login))
        .route("/ui/logout", axum::routing::post(session::logout))
        .route("/ui/assets/{name}", get(assets::serve))
        .merge(keys::routes())
        .merge(csc::routes())
        .merge(certs::routes())
        .merge(devices::routes())
        .merge(requests::routes())
        .merge(audit::routes())
        .merge(plugins::routes())
        .route("/ui/{*rest}", axum::routing::any(not_found))
        .route_layer(middleware::from_fn(trace))
        // Limits inside the security headers, so that a refusal carries them too.
        .layer(axum::extract::DefaultBodyLimit::max(limits.body_bytes))
        .layer(middleware::from_fn_with_state(crate::bounds_layer_state(limits), crate::bounds))
        .layer(middleware::from_fn_with_state(ui.clone(), origin_guard))
        .layer(middleware::from_fn(headers))
        .with_state(ui)
}

/// The request context of a UI request: its id, the client's address, and API-key
/// authentication (the UI signs in with API keys only).
pub(crate) fn ui_context(
    parts: &axum::http::request::Parts,
) -> sigil_core::access::authz::RequestContext {
    sigil_core::access::authz::RequestContext {
        authenticated_by: Some(AuthMethod::ApiKey),
        ..crate::auth::request_context(parts)
    }
}

/// The request context, as an extractor.
pub(crate) struct Context(pub sigil_core::access::authz::RequestContext);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Context {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(ui_context(parts)))
    }
}

/// Every request that can change something must come from this origin.
async fn origin_guard(State(ui): State<Ui>, req: Request, next: Next) -> Response {
    if req.method() != Method::GET
        && req.method() != Method::HEAD
        && !session::same_origin(req.headers(), req.uri().authority().map(|a| a.as_str()))
    {
        return ui.render(
            None,
            "error.html",
            serde_json::json!({"title": "Refused", "status": 403, "code": "forbidden",
                "detail": "This form was sent from another site."}),
            StatusCode::FORBIDDEN,
        );
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::ROUTES;

    /// The routes the UI's source files declare, as (method, path).
    fn routed() -> std::collections::BTreeSet<(String, String)> {
        let sources = [
            include_str!("mod.rs"),
            include_str!("keys.rs"),
            include_str!("csc.rs"),
            include_str!("certs.rs"),
            include_str!("devices.rs"),
            include_str!("requests.rs"),
            include_str!("audit.rs"),
            include_str!("plugins.rs"),
        ];
        let mut out = std::collections::BTreeSet::new();
        for src in sources {
            for chunk in src.split(".route(\"").skip(1) {
                let (path, rest) = chunk.split_once('"').unwrap();
                let call = rest.split(")\n").next().unwrap();
                if path == "/ui" || path == "/ui/{*rest}" {
                    continue;
                }
                for (needle, method) in [("get(", "GET"), ("post(", "POST")] {
                    if call.contains(needle) {
                        out.insert((method.to_owned(), path.to_owned()));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn the_route_list_of_the_authorization_matrix_is_the_routers() {
        let listed: std::collections::BTreeSet<(String, String)> =
            ROUTES.iter().map(|(m, p)| ((*m).to_owned(), (*p).to_owned())).collect();
        assert_eq!(listed, routed());
    }
}
