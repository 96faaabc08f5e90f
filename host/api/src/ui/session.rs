//! Sign-in, sign-out and the session of every UI request.
//!
//! The cookie is `__Host-sigil_session` (Secure, HttpOnly, SameSite=Strict, Path=/): no other
//! site's request carries it and no script reads it. Every state-changing form carries the
//! session's CSRF token, and every POST must come from this origin (`Origin` and
//! `Sec-Fetch-Site`, where the browser sends them), which also covers the sign-in form, before
//! any session exists (login CSRF).

use std::sync::Arc;

use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sigil_core::access::authz::Principal;
use sigil_core::access::ui_session::{UiSession, csrf_matches};
use sigil_core::{AuthFailure, CoreError};
use zeroize::Zeroizing;

use super::{Context, Ui, see_other, ui_context};
use crate::error::ApiError;

/// The session cookie's name (the `__Host-` prefix makes the browser insist on Secure, Path=/
/// and no Domain).
pub(crate) const COOKIE: &str = "__Host-sigil_session";

/// A signed-in request: the stored session and the caller it acts as now.
pub(crate) struct Session {
    pub principal: Arc<Principal>,
    pub session: UiSession,
    token: Zeroizing<String>,
}

/// A menu entry: label, page, and the permission and REST endpoint it needs.
const MENU: &[(&str, &str, &str, &str)] = &[
    ("Certificates", "/ui/certificates", "certificates:read", "/api/v1/certificates"),
    ("Devices", "/ui/devices", "devices:read", "/api/v1/devices"),
    ("Enrolment requests", "/ui/requests", "requests:read", "/api/v1/requests"),
    ("API Keys", "/ui/api-keys", "api_keys:read", "/api/v1/api-keys"),
    ("CSC Configuration", "/ui/csc-providers", "csc_providers:read", "/api/v1/csc-providers"),
    ("Audit", "/ui/audit", "audit:read", "/api/v1/audit"),
    ("Plugins", "/ui/plugins", "plugins:read", "/api/v1/plugins"),
];

/// The permissions templates ask about to show an action's button.
const ACTIONS: &[&str] = &[
    "api_keys:create",
    "api_keys:revoke",
    "api_keys:rotate",
    "csc_providers:write",
    "certificate:suspend",
    "certificate:reactivate",
    "certificate:revoke",
    "device:activate",
    "device:suspend",
    "device:reactivate",
    "device:revoke",
    "requests:approve",
    "audit:export",
    "audit:verify",
    "plugins:reload",
];

impl Session {
    /// The page frame: who is signed in, the menu it may use, the actions it may take.
    pub(crate) fn frame(&self, app: &crate::AppState) -> Value {
        let p = &self.principal;
        let menu: Vec<Value> = MENU
            .iter()
            .filter(|(_, _, perm, endpoint)| {
                p.permissions.allows(perm) && app.exposure.enabled(&Method::GET, endpoint)
            })
            .map(|(label, href, _, _)| json!({"label": label, "href": href}))
            .collect();
        let can: serde_json::Map<String, Value> = ACTIONS
            .iter()
            .map(|a| ((*a).to_owned(), Value::Bool(p.permissions.allows(a))))
            .collect();
        json!({"name": p.name, "id": p.id, "menu": menu, "can": can})
    }

    /// The first page this caller may open (`/ui/` itself when there is none).
    fn home(&self, app: &crate::AppState) -> String {
        let f = self.frame(app);
        f["menu"][0]["href"].as_str().unwrap_or("/ui/").to_owned()
    }

    /// Refuses a form whose CSRF token is not this session's.
    pub(crate) fn check_csrf(&self, presented: Option<&str>) -> Result<(), ApiError> {
        match presented {
            Some(t) if csrf_matches(&self.session, t) => Ok(()),
            _ => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                sigil_core::ErrorCode::Forbidden,
                "the form's CSRF token is missing or is not this session's; reload the page",
            )),
        }
    }
}

fn cookie(h: &HeaderMap) -> Option<Zeroizing<String>> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| Zeroizing::new(v.to_owned()))
}

/// Whether a POST came from this origin: a browser sends `Sec-Fetch-Site` and `Origin` with
/// forms; a cross-site one is refused even if it carried a cookie. `authority` is the request's
/// (`Host` on HTTP/1.1, `:authority` on HTTP/2).
pub(crate) fn same_origin(h: &HeaderMap, authority: Option<&str>) -> bool {
    let site = h.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    let site_ok = site.is_none_or(|v| v == "same-origin" || v == "none");
    let host = h.get(header::HOST).and_then(|v| v.to_str().ok()).or(authority);
    let origin_ok = match (h.get(header::ORIGIN).and_then(|v| v.to_str().ok()), host) {
        (None, _) => true,
        // Under `Referrer-Policy: no-referrer` Chromium sends `Origin: null` with its own
        // forms; then only the browser's `Sec-Fetch-Site: same-origin` vouches for it.
        (Some("null"), _) => site == Some("same-origin"),
        (Some(o), Some(host)) => o == format!("https://{host}") || o == format!("http://{host}"),
        (Some(_), None) => false,
    };
    site_ok && origin_ok
}

/// Where a signed-out request is sent: the sign-in page, which brings it back after.
fn to_login(parts: &Parts, reason: Option<&str>) -> Response {
    let mut q = Vec::new();
    if parts.method == Method::GET {
        let next = parts.uri.path_and_query().map_or("/ui/", |p| p.as_str());
        q.push(format!("next={}", urlencode(next)));
    }
    if let Some(r) = reason {
        q.push(format!("reason={r}"));
    }
    let to =
        if q.is_empty() { "/ui/login".to_owned() } else { format!("/ui/login?{}", q.join("&")) };
    see_other(&to)
}

pub(crate) fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl FromRequestParts<Ui> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, ui: &Ui) -> Result<Self, Response> {
        let Some(token) = cookie(&parts.headers) else {
            return Err(to_login(parts, None));
        };
        match ui.app.api_keys.resume_session(&token, ui_context(parts), ui.config.policy).await {
            Ok((session, principal)) => {
                // For the access log, which runs outside the router.
                if let Some(slot) = parts.extensions.get::<super::CallerSlot>() {
                    let _ = slot.0.set(principal.clone());
                }
                Ok(Session { principal, session, token })
            }
            Err(CoreError::Unauthenticated(f)) => {
                let reason = match f {
                    AuthFailure::Revoked => "revoked",
                    AuthFailure::Expired => "key_expired",
                    AuthFailure::Disabled => "disabled",
                    _ => "ended",
                };
                Err(to_login(parts, Some(reason)))
            }
            Err(e) => {
                let e = ApiError::from(e);
                let mut page = ui.render(
                    None,
                    "error.html",
                    json!({"title": "Refused", "status": e.status.as_u16(),
                        "code": e.code.as_str(), "detail": e.detail}),
                    e.status,
                );
                if let Some(secs) = e.retry_after
                    && let Ok(v) = HeaderValue::from_str(&secs.to_string())
                {
                    page.headers_mut().insert(header::RETRY_AFTER, v);
                }
                Err(page)
            }
        }
    }
}

/// `GET /ui/`: the first page the caller may use.
pub(crate) async fn home(State(ui): State<Ui>, s: Session) -> Response {
    match s.home(&ui.app) {
        to if to != "/ui/" => see_other(&to),
        // A key that may read no section still gets a page, with its name and sign-out.
        _ => ui.page(
            Some(&s),
            "error.html",
            json!({"title": "Nothing to show", "status": 200, "code": "",
                "detail": "This API key may read none of the sections of the admin UI \
                    (certificates, devices, enrolment requests, API keys, CSC configuration, \
                    audit, plugins)."}),
        ),
    }
}

#[derive(serde::Deserialize, Default)]
pub(crate) struct LoginQuery {
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// A `next` that stays inside the UI (no open redirect: not `//host`, not another scheme).
fn safe_next(next: Option<&str>) -> Option<String> {
    let n = next?;
    // Printable ASCII only: it goes into a Location header.
    (n.starts_with("/ui/")
        && !n.starts_with("/ui//")
        && !n.contains('\\')
        && !n.contains("/..")
        && n.len() <= 2048
        && n.bytes().all(|b| (0x21..=0x7e).contains(&b)))
    .then(|| n.to_owned())
}

fn reason_text(r: Option<&str>) -> Option<&'static str> {
    Some(match r? {
        "ended" => "Your session has ended. Sign in again.",
        "revoked" => "The API key of your session was revoked.",
        "key_expired" => "The API key of your session has expired.",
        "disabled" => "The operator of your API key is disabled.",
        "signed_out" => "You have signed out.",
        _ => return None,
    })
}

/// `GET /ui/login`.
pub(crate) async fn login_form(State(ui): State<Ui>, Query(q): Query<LoginQuery>) -> Response {
    ui.page(
        None,
        "login.html",
        json!({"next": safe_next(q.next.as_deref()), "notice": reason_text(q.reason.as_deref())}),
    )
}

#[derive(serde::Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    api_key: String,
    #[serde(default)]
    next: Option<String>,
}

impl Drop for LoginForm {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.api_key);
    }
}

/// `POST /ui/login`: authenticates the key exactly as the REST API does, then sets the cookie.
pub(crate) async fn login(
    State(ui): State<Ui>,
    Context(context): Context,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    // The sign-in page again, with what went wrong: 200, the page itself is fine (a 4xx would
    // only make the browser log an error); the refusal's status is in the access log's code.
    let again = |detail: &str| {
        ui.render(None, "login.html", json!({"next": next, "error": detail}), StatusCode::OK)
    };
    let key = form.api_key.trim();
    if key.is_empty() {
        return again("Paste an API key.");
    }
    match ui.app.api_keys.sign_in(key, context, ui.config.policy).await {
        Ok((new, principal)) => {
            let s = Session {
                principal,
                session: new.session.clone(),
                token: Zeroizing::new(new.token.clone()),
            };
            let to = next.unwrap_or_else(|| s.home(&ui.app));
            let mut res = see_other(&to);
            let max_age = ui.config.policy.lifetime.whole_seconds();
            let c = format!(
                "{COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={max_age}",
                new.token
            );
            if let Ok(v) = HeaderValue::from_str(&c) {
                res.headers_mut().insert(header::SET_COOKIE, v);
            }
            res
        }
        Err(e) => {
            let e = ApiError::from(e);
            let detail = match e.status {
                StatusCode::UNAUTHORIZED => format!("This API key was not accepted: {}.", e.detail),
                _ => e.detail.clone(),
            };
            let mut page = again(&detail);
            page.extensions_mut().insert(crate::error::ResponseCode(e.code.as_str()));
            page
        }
    }
}

/// `POST /ui/logout`: ends the session (audited) and clears the cookie.
pub(crate) async fn logout(State(ui): State<Ui>, s: Session, f: super::forms::Fields) -> Response {
    if let Err(r) = f.check_csrf(&ui, &s) {
        return r;
    }
    if let Err(e) = ui.app.api_keys.sign_out(&s.token, &s.principal).await {
        return ApiError::from(e).into_response();
    }
    let mut res = see_other("/ui/login?reason=signed_out");
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "__Host-sigil_session=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    res
}
