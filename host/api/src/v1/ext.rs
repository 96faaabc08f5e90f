//! `/api/v1/ext/{plugin}/{path}`: endpoint plugins, after Sigil has authenticated and authorized
//! the caller; and the dispatcher that lets plugins call Sigil's own API as themselves.

use sigil_core::ErrorCode;
use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use sigil_core::access::authz::Principal;
use sigil_core::ports::{ApiDispatcher, PluginHttp, PluginHttpResponse};
use tower::ServiceExt;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiError, Problem};
use crate::extract::Caller;

/// Largest response a plugin's call into the API may read.
const MAX_INTERNAL_BODY: usize = 4 << 20;

/// A request made in-process on a plugin's behalf; the authentication step takes this principal
/// instead of credentials (only in-process code can put it there).
#[derive(Debug, Clone)]
pub struct InternalCaller(pub Arc<Principal>);

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(ext_get, ext_post))
}

async fn serve(
    st: AppState,
    caller: Arc<Principal>,
    plugin: String,
    path: String,
    req: Request,
) -> Result<Response, ApiError> {
    if !caller.may_invoke(&plugin) {
        return Err(sigil_core::CoreError::Forbidden {
            code: ErrorCode::PermissionDenied,
            detail: format!("missing permission `plugins:invoke:{plugin}` (or `plugins:invoke`)"),
        }
        .into());
    }
    let method = req.method().to_string();
    let query = req.uri().query().unwrap_or("").to_owned();
    let headers = req
        .headers()
        .iter()
        // Credentials stay with Sigil.
        .filter(|(k, _)| !matches!(k.as_str(), "authorization" | "x-api-key" | "cookie"))
        .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.to_string(), v.to_owned())))
        .collect();
    // Under the server's body limit, as on every other route.
    let body = crate::extract::body_bytes(req, &st).await?;
    let request =
        PluginHttp { method, path: format!("/{path}"), query, headers, body: body.to_vec() };
    let resp =
        st.endpoints.handle(&plugin, &caller, request).await.ok_or_else(ApiError::not_found)??;
    let mut out = resp.body.into_response();
    *out.status_mut() = StatusCode::from_u16(resp.status).unwrap_or(StatusCode::BAD_GATEWAY);
    for (k, v) in resp.headers {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k.as_str()), HeaderValue::from_str(&v))
            && !matches!(k.as_str(), "content-length" | "transfer-encoding" | "connection")
        {
            out.headers_mut().insert(k, v);
        }
    }
    Ok(out)
}

/// Calls endpoint plugin `plugin` (GET). Authorization: `plugins:invoke:<plugin>` (or
/// `plugins:invoke` for every plugin); the plugin's own calls into the API act with the
/// intersection of its grant and the caller's authority and scope, under the caller's exposure
/// rules.
#[utoipa::path(get, path = "/api/v1/ext/{plugin}/{path}", tag = "plugins",
    params(("plugin" = String, Path), ("path" = String, Path)),
    responses((status = 200, description = "What the plugin answers"), (status = 404, body = Problem),
        (status = 502, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn ext_get(
    State(st): State<AppState>,
    Caller(caller): Caller,
    Path((plugin, path)): Path<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    serve(st, caller, plugin, path, req).await
}

/// Calls endpoint plugin `plugin` (POST). Authorization as for GET.
#[utoipa::path(post, path = "/api/v1/ext/{plugin}/{path}", tag = "plugins",
    params(("plugin" = String, Path), ("path" = String, Path)),
    responses((status = 200, description = "What the plugin answers"), (status = 404, body = Problem),
        (status = 502, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
async fn ext_post(
    State(st): State<AppState>,
    Caller(caller): Caller,
    Path((plugin, path)): Path<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    serve(st, caller, plugin, path, req).await
}

/// Serves plugins' `sigil-api` calls through the full router, as the plugin.
pub struct RouterDispatcher {
    router: Router,
}

impl RouterDispatcher {
    /// Wraps the application router.
    pub fn new(router: Router) -> Self {
        Self { router }
    }
}

fn answer(status: u16, body: &str) -> PluginHttpResponse {
    PluginHttpResponse {
        status,
        headers: vec![("content-type".into(), "text/plain".into())],
        body: body.as_bytes().to_vec(),
    }
}

#[async_trait]
impl ApiDispatcher for RouterDispatcher {
    async fn call(&self, principal: Arc<Principal>, r: PluginHttp) -> PluginHttpResponse {
        if !r.path.starts_with("/api/v1/") || r.path.starts_with("/api/v1/ext/") {
            return answer(400, "plugins may call /api/v1/ paths other than /api/v1/ext/");
        }
        let uri =
            if r.query.is_empty() { r.path.clone() } else { format!("{}?{}", r.path, r.query) };
        let mut builder = axum::http::Request::builder().method(r.method.as_str()).uri(uri);
        for (k, v) in &r.headers {
            if k.eq_ignore_ascii_case("content-type") {
                builder = builder.header(k.as_str(), v.as_str());
            }
        }
        let Ok(mut req) = builder.body(axum::body::Body::from(r.body)) else {
            return answer(400, "malformed request");
        };
        req.extensions_mut().insert(InternalCaller(principal));
        let Ok(res) = self.router.clone().oneshot(req).await;
        let status = res.status().as_u16();
        let headers = res
            .headers()
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.to_string(), v.to_owned())))
            .collect();
        match http_body_util::Limited::new(res.into_body(), MAX_INTERNAL_BODY).collect().await {
            Ok(b) => PluginHttpResponse { status, headers, body: b.to_bytes().to_vec() },
            Err(_) => answer(502, "the response was too large"),
        }
    }
}
