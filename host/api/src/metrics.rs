//! Prometheus metrics: requests by route and status, and latency histograms by route.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CaLabels {
    ca: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

fn latency_histogram() -> Histogram {
    // 250 µs … ~8 s.
    Histogram::new(exponential_buckets(0.00025, 2.0, 16))
}

/// The metric registry of one server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    root_crl_next_update: Family<CaLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("sigil");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register("http_requests", "HTTP requests by route and status", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        let root_crl_next_update = Family::<CaLabels, Gauge>::default();
        registry.register(
            "root_crl_next_update_seconds",
            "When each published root CRL runs out (Unix time): sign the next one before",
            root_crl_next_update.clone(),
        );
        Self { registry, requests, latency, root_crl_next_update }
    }
}

impl Metrics {
    /// Records one finished request.
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels { method: method.into(), route: route.into(), status })
            .inc();
        self.latency
            .get_or_create(&RouteLabels { method: method.into(), route: route.into() })
            .observe(seconds);
    }

    /// Sets when CA `ca`'s root CRL runs out.
    pub fn set_root_crl_next_update(&self, ca: &str, unix_seconds: i64) {
        self.root_crl_next_update.get_or_create(&CaLabels { ca: ca.into() }).set(unix_seconds);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Middleware that records every routed request.
pub async fn track(State(m): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let res = next.run(req).await;
    m.observe(&method, &route, res.status().as_u16(), start.elapsed().as_secs_f64());
    res.into_response()
}
