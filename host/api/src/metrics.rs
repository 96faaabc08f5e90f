//! Prometheus metrics, in the OpenMetrics text format (`/metrics`):
//! - HTTP: requests by route and status, latency histograms by route;
//! - domain: certificates issued, renewed, revoked, suspended and reactivated, CSC signatures,
//!   logins, CRLs generated, and every audit event by action and outcome — counted from the
//!   audit events of each commit ([`CommitObserver`]), so no service needs a metrics call and
//!   no change goes uncounted;
//! - read at each scrape ([`Scrape`]): the audit chain head, each CRL's thisUpdate, nextUpdate
//!   and age, each root CRL's nextUpdate, the database pools, and each plugin's calls, faults
//!   and call durations (a histogram).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::response::Response;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use sigil_core::audit::AuditAction;
use sigil_core::ports::{
    CommitObserver, CommittedEvent, PLUGIN_CALL_BUCKETS, PluginStatus, PoolStatus,
};

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    action: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
    kind: String,
}

fn latency_histogram() -> Histogram {
    // 250 µs … ~8 s.
    Histogram::new(exponential_buckets(0.00025, 2.0, 16))
}

/// The certificate counters, one per lifecycle action.
#[derive(Debug, Default)]
struct CertCounters {
    issued: Counter,
    renewed: Counter,
    revoked: Counter,
    suspended: Counter,
    reactivated: Counter,
}

/// The metric registry of one server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    audit_events: Family<ActionLabels, Counter>,
    certs: CertCounters,
    signatures: Counter,
    logins: Family<OutcomeLabels, Counter>,
    crls: Family<CaLabels, Counter>,
    scrape: Arc<Mutex<Scrape>>,
    /// The families' handles by borrowed labels (see [`Handles`]).
    handles: Handles,
}

/// Handles of the per-request and per-event metrics (a counter or histogram clone shares the
/// family's value), found by borrowed labels: a family is looked up by an owned label set, which
/// cost each request four string copies and each audit event two. Filled on first sight of a
/// label set; its labels are as bounded as the families' own (routes are the router's templates,
/// methods the standard ones or `other`, actions and outcomes the audit trail's names).
#[derive(Debug, Default)]
struct Handles {
    /// route → [((method, status), (latency, requests))].
    routes: Kept<(&'static str, u16), (Histogram, Counter)>,
    /// action → [(outcome, audit events)].
    actions: Kept<String, Counter>,
}

/// Handles by an outer label (owned, looked up by `&str`) and a short list of inner ones.
type Kept<K, V> = RwLock<HashMap<String, Vec<(K, V)>>>;

/// The handles kept under `outer` and the inner labels `inner` accepts.
fn kept<K, V: Clone>(kept: &Kept<K, V>, outer: &str, inner: impl Fn(&K) -> bool) -> Option<V> {
    let map = kept.read().ok()?;
    map.get(outer)?.iter().find(|(k, _)| inner(k)).map(|(_, v)| v.clone())
}

/// Keeps `v` under `outer` and `k`, unless a handle is kept there already.
fn keep<K: PartialEq, V>(kept: &Kept<K, V>, outer: &str, k: K, v: V) {
    if let Ok(mut map) = kept.write() {
        let list = map.entry(outer.to_owned()).or_default();
        if !list.iter().any(|(have, _)| *have == k) {
            list.push((k, v));
        }
    }
}

/// The method as a label: the standard ones by name, any other as `other` (a client may send
/// any token as a method, and each would be a new label set).
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("sigil");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register("http_requests", "HTTP requests by route and status", requests.clone());
        registry.register_with_unit(
            "http_request_duration",
            "HTTP request latency by route",
            Unit::Seconds,
            latency.clone(),
        );
        let audit_events = Family::<ActionLabels, Counter>::default();
        registry.register(
            "audit_events",
            "Audit events this node committed, by action and outcome",
            audit_events.clone(),
        );
        let certs = CertCounters::default();
        for (name, help, c) in [
            ("certificates_issued", "Certificates issued (renewals included)", &certs.issued),
            ("certificates_renewed", "Certificates renewed", &certs.renewed),
            ("certificates_revoked", "Certificates revoked", &certs.revoked),
            ("certificates_suspended", "Certificates put on hold", &certs.suspended),
            ("certificates_reactivated", "Certificates released from hold", &certs.reactivated),
        ] {
            registry.register(name, help, c.clone());
        }
        let signatures = Counter::default();
        registry.register("csc_sign_hash", "CSC signHash calls that signed", signatures.clone());
        let logins = Family::<OutcomeLabels, Counter>::default();
        registry.register("csc_logins", "CSC signer logins, by outcome", logins.clone());
        let crls = Family::<CaLabels, Counter>::default();
        registry.register("crls_generated", "CRLs signed, by CA", crls.clone());
        let scrape = Arc::new(Mutex::new(Scrape::default()));
        registry.register_collector(Box::new(ScrapeCollector(Arc::clone(&scrape))));
        let handles = Handles::default();
        Self {
            registry,
            requests,
            latency,
            audit_events,
            certs,
            signatures,
            logins,
            crls,
            scrape,
            handles,
        }
    }
}

impl Metrics {
    /// Records one finished request.
    pub fn observe(&self, method: &Method, route: &str, status: u16, seconds: f64) {
        let method = method_label(method);
        let key = (method, status);
        let (latency, requests) = match kept(&self.handles.routes, route, |k| *k == key) {
            Some(h) => h,
            None => {
                // First sight of these labels: the families make (or find) the metrics.
                let labels = RequestLabels { method: method.into(), route: route.into(), status };
                let requests = self.requests.get_or_create(&labels).clone();
                let latency = self
                    .latency
                    .get_or_create(&RouteLabels { method: method.into(), route: route.into() })
                    .clone();
                keep(&self.handles.routes, route, key, (latency.clone(), requests.clone()));
                (latency, requests)
            }
        };
        requests.inc();
        latency.observe(seconds);
    }

    /// The audit event counter of (`action`, `outcome`), kept on first sight.
    fn action_counter(&self, action: &str, outcome: &str) -> Counter {
        if let Some(c) = kept(&self.handles.actions, action, |o| o == outcome) {
            return c;
        }
        let labels = ActionLabels { action: action.to_owned(), outcome: outcome.to_owned() };
        let c = self.audit_events.get_or_create(&labels).clone();
        keep(&self.handles.actions, action, outcome.to_owned(), c.clone());
        c
    }

    /// Replaces what is read at each scrape.
    pub fn set_scrape(&self, s: Scrape) {
        if let Ok(mut current) = self.scrape.lock() {
            *current = s;
        }
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl CommitObserver for Metrics {
    fn committed(&self, ev: CommittedEvent<'_>) {
        self.action_counter(ev.action, ev.outcome).inc();
        let a = ev.action;
        // One `csc.login` event per login, its outcome saying how it went.
        if AuditAction::CscLogin == a {
            self.logins.get_or_create(&OutcomeLabels { outcome: ev.outcome.to_owned() }).inc();
            return;
        }
        if ev.outcome != "success" {
            return;
        }
        if AuditAction::CrlPublish == a || AuditAction::CaRootCrlPublish == a {
            self.crls.get_or_create(&CaLabels { ca: ev.object_id.to_owned() }).inc();
            return;
        }
        let counted = [
            (AuditAction::CertificateIssue, &self.certs.issued),
            (AuditAction::CertificateRenew, &self.certs.renewed),
            (AuditAction::CertificateRevoke, &self.certs.revoked),
            (AuditAction::CertificateSuspend, &self.certs.suspended),
            (AuditAction::CertificateReactivate, &self.certs.reactivated),
            (AuditAction::CscSignHash, &self.signatures),
        ];
        if let Some((_, c)) = counted.iter().find(|(action, _)| *action == a) {
            c.inc();
        }
        // A renewal issues a certificate too.
        if AuditAction::CertificateRenew == a {
            self.certs.issued.inc();
        }
    }
}

/// What `/metrics` reads from the database and the plugin host at each scrape.
#[derive(Debug, Default, Clone)]
pub struct Scrape {
    /// The audit chain's last sequence number.
    pub audit_head: Option<i64>,
    /// Each publishing CA's current CRL: (CA, thisUpdate, nextUpdate), Unix seconds.
    pub crls: Vec<(String, i64, i64)>,
    /// When each published root CRL runs out: (CA, Unix seconds).
    pub root_crls: Vec<(String, i64)>,
    /// Database pools.
    pub pools: Vec<PoolStatus>,
    /// Plugins.
    pub plugins: Vec<PluginStatus>,
    /// Now, Unix seconds (for the CRL age).
    pub now: i64,
}

#[derive(Debug)]
struct ScrapeCollector(Arc<Mutex<Scrape>>);

fn family<'a, L: EncodeLabelSet, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder<'a>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    metric_type: MetricType,
    rows: impl IntoIterator<Item = (L, M)>,
) -> Result<(), std::fmt::Error> {
    let mut e = encoder.encode_descriptor(name, help, unit, metric_type)?;
    for (labels, m) in rows {
        m.encode(e.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for ScrapeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Ok(s) = self.0.lock().map(|s| s.clone()) else { return Ok(()) };
        if let Some(head) = s.audit_head {
            let e = encoder.encode_descriptor(
                "audit_chain_head",
                "Sequence number of the audit chain's last event",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(head).encode(e)?;
        }
        let ca = |c: &String| CaLabels { ca: c.clone() };
        family(
            &mut encoder,
            "root_crl_next_update_seconds",
            "When each published root CRL runs out (Unix time): sign the next one before",
            None,
            MetricType::Gauge,
            s.root_crls.iter().map(|(c, next)| (ca(c), ConstGauge::new(*next))),
        )?;
        family(
            &mut encoder,
            "crl_this_update_seconds",
            "thisUpdate of each CA's current CRL (Unix time)",
            None,
            MetricType::Gauge,
            s.crls.iter().map(|(c, this, _)| (ca(c), ConstGauge::new(*this))),
        )?;
        family(
            &mut encoder,
            "crl_next_update_seconds",
            "nextUpdate of each CA's current CRL (Unix time)",
            None,
            MetricType::Gauge,
            s.crls.iter().map(|(c, _, next)| (ca(c), ConstGauge::new(*next))),
        )?;
        family(
            &mut encoder,
            "crl_age",
            "How long ago each CA's current CRL was signed",
            Some(&Unit::Seconds),
            MetricType::Gauge,
            s.crls.iter().map(|(c, this, _)| (ca(c), ConstGauge::new(s.now - this))),
        )?;
        let pool = |p: &PoolStatus, state: &str| PoolLabels {
            pool: p.pool.to_owned(),
            state: state.to_owned(),
        };
        family(
            &mut encoder,
            "db_pool_connections",
            "Database connections by pool and state (idle, in_use, max)",
            None,
            MetricType::Gauge,
            s.pools.iter().flat_map(|p| {
                [
                    (pool(p, "idle"), ConstGauge::new(i64::from(p.idle))),
                    (pool(p, "in_use"), ConstGauge::new(i64::from(p.open.saturating_sub(p.idle)))),
                    (pool(p, "max"), ConstGauge::new(i64::from(p.max))),
                ]
            }),
        )?;
        let plugin = |p: &PluginStatus| PluginLabels { plugin: p.id.clone(), kind: p.kind.clone() };
        family(
            &mut encoder,
            "plugin_calls",
            "Calls into each plugin since its version was loaded",
            None,
            MetricType::Counter,
            s.plugins.iter().map(|p| (plugin(p), ConstCounter::new(p.calls))),
        )?;
        family(
            &mut encoder,
            "plugin_faults",
            "Plugin calls that failed (timeout, memory limit, trap, rejected)",
            None,
            MetricType::Counter,
            s.plugins.iter().map(|p| (plugin(p), ConstCounter::new(p.faults))),
        )?;
        let mut e = encoder.encode_descriptor(
            "plugin_call_duration_seconds",
            "Duration of calls into each plugin",
            None,
            MetricType::Histogram,
        )?;
        for p in s.plugins.iter().filter(|p| !p.call_buckets.is_empty()) {
            let bounds = PLUGIN_CALL_BUCKETS.iter().copied().chain([f64::INFINITY]);
            let buckets: Vec<(f64, u64)> = bounds.zip(p.call_buckets.iter().copied()).collect();
            let count = p.call_buckets.iter().sum();
            e.encode_family(&plugin(p))?.encode_histogram::<NoLabelSet>(
                p.call_seconds,
                count,
                &buckets,
                None,
            )?;
        }
        Ok(())
    }
}

/// One routed request being timed for [`Metrics::observe`]; part of the layer on every route
/// (`auth::routed`).
pub(crate) struct Timer {
    start: Instant,
    method: Method,
    matched: Option<MatchedPath>,
}

impl Timer {
    pub(crate) fn begin(req: &Request) -> Self {
        Self {
            start: Instant::now(),
            method: req.method().clone(),
            matched: req.extensions().get::<MatchedPath>().cloned(),
        }
    }

    /// Records `res` and leaves the route on it for the access log, which runs outside the
    /// router and never sees the routed request.
    pub(crate) fn finish(self, m: &Metrics, mut res: Response) -> Response {
        let route = self.matched.as_ref().map_or("unmatched", MatchedPath::as_str);
        m.observe(&self.method, route, res.status().as_u16(), self.start.elapsed().as_secs_f64());
        if let Some(p) = self.matched {
            res.extensions_mut().insert(p);
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, prefix: &str) -> Option<f64> {
        text.lines().find_map(|l| l.strip_prefix(prefix)?.trim().parse().ok())
    }

    #[test]
    fn requests_are_counted_by_method_route_and_status_through_the_kept_handles() {
        let m = Metrics::default();
        for status in [200, 200, 404] {
            m.observe(&Method::POST, "/api/v1/certificates", status, 0.001);
        }
        m.observe(&Method::GET, "/api/v1/certificates", 200, 0.001);
        let text = m.render();
        let count = |method: &str, status: u16| {
            sample(
                &text,
                &format!(
                    "sigil_http_requests_total{{method=\"{method}\",route=\"/api/v1/certificates\",status=\"{status}\"}}"
                ),
            )
        };
        assert_eq!(count("POST", 200), Some(2.0));
        assert_eq!(count("POST", 404), Some(1.0));
        assert_eq!(count("GET", 200), Some(1.0));
        assert_eq!(
            sample(
                &text,
                "sigil_http_request_duration_seconds_count{method=\"POST\",route=\"/api/v1/certificates\"}"
            ),
            Some(3.0)
        );
    }

    #[test]
    fn a_method_outside_the_standard_ones_is_counted_as_other() {
        let m = Metrics::default();
        for token in ["FOO", "BAR"] {
            let method = Method::from_bytes(token.as_bytes()).unwrap();
            m.observe(&method, "unmatched", 405, 0.001);
        }
        let text = m.render();
        assert!(!text.contains("FOO") && !text.contains("BAR"), "{text}");
        assert_eq!(
            sample(
                &text,
                "sigil_http_requests_total{method=\"other\",route=\"unmatched\",status=\"405\"}"
            ),
            Some(2.0)
        );
    }

    #[test]
    fn committed_events_are_counted_by_action_and_outcome() {
        let m = Metrics::default();
        let ev = |action, outcome| CommittedEvent { action, outcome, object_id: "x" };
        m.committed(ev("csc.sign_hash", "success"));
        m.committed(ev("csc.sign_hash", "success"));
        m.committed(ev("csc.sign_hash", "failure"));
        let text = m.render();
        let count = |outcome: &str| {
            sample(
                &text,
                &format!(
                    "sigil_audit_events_total{{action=\"csc.sign_hash\",outcome=\"{outcome}\"}}"
                ),
            )
        };
        assert_eq!(count("success"), Some(2.0));
        assert_eq!(count("failure"), Some(1.0));
        assert_eq!(sample(&text, "sigil_csc_sign_hash_total"), Some(2.0));
    }
}
