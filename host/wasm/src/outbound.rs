//! The `outbound-http` host interface: HTTP(S) requests to the origins in the plugin's
//! allowlist, nothing else. HTTPS uses the ring provider with the web PKI roots the operator
//! configures (none by default, so only plain HTTP origins and explicitly trusted CAs work).

use std::time::Duration;

use crate::bindings::validator::sigil::plugin::types::{HttpRequest, HttpResponse, Kv};
use crate::host::State;

/// Largest response body handed to a plugin.
const MAX_BODY: usize = 1 << 20;

/// An allowlisted HTTP client for one plugin.
#[derive(Debug, Clone)]
pub(crate) struct Outbound {
    client: reqwest::Client,
    allowed: Vec<String>,
}

/// `scheme://host:port` of a URL, with the scheme's default port made explicit.
pub(crate) fn origin(url: &str) -> Option<String> {
    let u = reqwest::Url::parse(url).ok()?;
    let host = u.host_str()?;
    let port = u.port_or_known_default()?;
    Some(format!("{}://{}:{}", u.scheme(), host.to_ascii_lowercase(), port))
}

impl Outbound {
    pub(crate) fn new(allowed: &[String], timeout: Duration) -> Option<Self> {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .ok()?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .build()
            .ok()?;
        Some(Self { client, allowed: allowed.iter().filter_map(|a| origin(a)).collect() })
    }

    pub(crate) async fn send(&self, r: HttpRequest) -> Result<HttpResponse, String> {
        let Some(o) = origin(&r.path) else {
            return Err(format!("`{}` is not an absolute http(s) URL", r.path));
        };
        if !self.allowed.contains(&o) {
            return Err(format!("{o} is not in this plugin's allowed_hosts"));
        }
        let method = reqwest::Method::from_bytes(r.method.as_bytes())
            .map_err(|_| format!("bad method {}", r.method))?;
        let mut url = r.path.clone();
        if !r.query.is_empty() {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(&r.query);
        }
        let mut req = self.client.request(method, url).body(r.body);
        for kv in r.headers {
            req = req.header(kv.key, kv.value);
        }
        let mut resp = req.send().await.map_err(|e| format!("request failed: {e}"))?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .filter_map(|(k, v)| {
                v.to_str().ok().map(|v| Kv { key: k.to_string(), value: v.to_owned() })
            })
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) =
            resp.chunk().await.map_err(|e| format!("reading the response: {e}"))?
        {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(format!("the response is larger than {MAX_BODY} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpResponse { status, headers, body })
    }
}

impl crate::bindings::workflow::sigil::plugin::outbound_http::Host for State {
    async fn send(&mut self, request: HttpRequest) -> Result<HttpResponse, String> {
        match self.outbound.clone() {
            Some(o) => o.send(request).await,
            None => Err("outbound-http is not available to this plugin".into()),
        }
    }
}
