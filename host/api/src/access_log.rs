//! The access log: one line per request at info, under target `sigil::access` (turn it off with
//! the filter `info,sigil::access=off`). It says who did what and how it went — method, route,
//! path, status, duration, request id, client address (and the proxy it came through),
//! principal, error code — and never a
//! header, a query string or a body, which carry keys, PINs and personal data.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::Method;
use axum::response::Response;

use crate::error::ResponseCode;
use crate::extract::Caller;

/// Longest path logged, in bytes (a path is client input).
const MAX_PATH: usize = 256;

/// One request's line, begun before the request is routed and written when its response is
/// known (the route and the principal are left on the response by the layer on every route,
/// `auth::routed`, which sees the routed request). Part of the outermost layer (`edge` in
/// lib.rs) rather than a layer of its own: each layer costs every request a boxed future and a
/// clone of the service below it.
pub(crate) struct Entry {
    start: Instant,
    method: Method,
    path: String,
    request_id: Option<String>,
    client: Option<IpAddr>,
    via: Option<IpAddr>,
}

impl Entry {
    /// What the line needs from the request, or nothing when the filter turns the access log
    /// off (no copies, no clock: the benchmarks run at `warn`).
    pub(crate) fn begin(req: &Request) -> Option<Self> {
        if !tracing::enabled!(target: "sigil::access", tracing::Level::INFO) {
            return None;
        }
        let mut path = req.uri().path().to_owned();
        if path.len() > MAX_PATH {
            let mut end = MAX_PATH;
            while !path.is_char_boundary(end) {
                end -= 1;
            }
            path.truncate(end);
            path.push('…');
        }
        Some(Self {
            start: Instant::now(),
            method: req.method().clone(),
            path,
            // The id the audit trail records (a client's only when short and plain).
            request_id: crate::auth::request_id(req.headers()),
            client: req.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(a)| a.ip()),
            // The proxy the request came through, when `server.trusted_proxies` named the client.
            via: req.extensions().get::<crate::client_ip::Peer>().map(|p| p.0.ip()),
        })
    }

    /// Writes the line for `res`.
    pub(crate) fn finish(self, res: &Response) {
        let route = res.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
        let caller = res.extensions().get::<Caller>().map(|c| c.0.clone());
        let code = res.extensions().get::<ResponseCode>().map(|c| c.0);
        tracing::info!(
            target: "sigil::access",
            method = %self.method,
            route = route.as_deref().unwrap_or("-"),
            path = %self.path,
            status = res.status().as_u16(),
            ms = format_args!("{:.3}", self.start.elapsed().as_secs_f64() * 1000.0),
            request_id = self.request_id.as_deref().unwrap_or("-"),
            client = %self.client.map_or_else(|| "-".to_owned(), |ip| ip.to_string()),
            via = %self.via.map_or_else(|| "-".to_owned(), |ip| ip.to_string()),
            principal = caller.as_ref().map_or("-", |p| p.id.as_str()),
            api_key_id = %caller.as_ref().and_then(|p| p.api_key_id).map_or_else(|| "-".to_owned(), |id| id.to_string()),
            operator_id = caller.as_ref().and_then(|p| p.operator_id.as_deref()).unwrap_or("-"),
            code = code.unwrap_or("-"),
            "request"
        );
    }
}
