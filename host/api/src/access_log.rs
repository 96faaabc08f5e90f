//! The access log: one line per request at info, under target `sigil::access` (turn it off with
//! the filter `info,sigil::access=off`). It says who did what and how it went — method, route,
//! path, status, duration, request id, client address (and the proxy it came through),
//! principal, error code — and never a
//! header, a query string or a body, which carry keys, PINs and personal data.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

use crate::error::ResponseCode;
use crate::extract::Caller;

/// Longest path logged, in bytes (a path is client input).
const MAX_PATH: usize = 256;

/// The middleware; the route and the principal are left on the response by the inner layers
/// (`metrics::track` and `auth::guard`), which see the routed request.
pub async fn log(req: Request, next: Next) -> Response {
    // Turned off by the filter: no copies, no clock (the benchmarks run at `warn`).
    if !tracing::enabled!(target: "sigil::access", tracing::Level::INFO) {
        return next.run(req).await;
    }
    let start = Instant::now();
    let method = req.method().clone();
    let mut path = req.uri().path().to_owned();
    if path.len() > MAX_PATH {
        let mut end = MAX_PATH;
        while !path.is_char_boundary(end) {
            end -= 1;
        }
        path.truncate(end);
        path.push('…');
    }
    // The id the audit trail records (a client's only when short and plain).
    let request_id = crate::auth::request_id(req.headers());
    let client = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(a)| a.ip());
    // The proxy the request came through, when `server.trusted_proxies` named the client.
    let via = req.extensions().get::<crate::client_ip::Peer>().map(|p| p.0.ip());
    let res = next.run(req).await;
    let route = res.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let caller = res.extensions().get::<Caller>().map(|c| c.0.clone());
    let code = res.extensions().get::<ResponseCode>().map(|c| c.0);
    tracing::info!(
        target: "sigil::access",
        method = %method,
        route = route.as_deref().unwrap_or("-"),
        path = %path,
        status = res.status().as_u16(),
        ms = format_args!("{:.3}", start.elapsed().as_secs_f64() * 1000.0),
        request_id = request_id.as_deref().unwrap_or("-"),
        client = %client.map_or_else(|| "-".to_owned(), |ip| ip.to_string()),
        via = %via.map_or_else(|| "-".to_owned(), |ip| ip.to_string()),
        principal = caller.as_ref().map_or("-", |p| p.id.as_str()),
        api_key_id = %caller.as_ref().and_then(|p| p.api_key_id).map_or_else(|| "-".to_owned(), |id| id.to_string()),
        operator_id = caller.as_ref().and_then(|p| p.operator_id.as_deref()).unwrap_or("-"),
        code = code.unwrap_or("-"),
        "request"
    );
    res
}
