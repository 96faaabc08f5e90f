//! The `outbound-http` host interface: HTTP(S) requests to the origins in the plugin's
//! allowlist, nothing else. HTTPS uses the ring provider and trusts only the CAs in the
//! plugin's `ca_file` (none by default), so a plugin reaches exactly the services the operator
//! vouched for rather than anything with a public certificate.

use std::time::Duration;

use crate::bindings::validator::sigil::plugin::types::{HttpRequest, HttpResponse, Kv};

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
    /// `roots_pem` holds the trusted CA certificates (PEM, possibly empty).
    pub(crate) fn new(
        allowed: &[String],
        roots_pem: &[u8],
        timeout: Duration,
    ) -> Result<Self, String> {
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        if !roots_pem.is_empty() {
            for cert in rustls_pki_types::CertificateDer::pem_slice_iter(roots_pem) {
                let cert = cert.map_err(|e| format!("not a PEM certificate bundle: {e}"))?;
                roots.add(cert).map_err(|e| format!("unusable CA certificate: {e}"))?;
            }
            if roots.is_empty() {
                return Err("no certificate in the file".into());
            }
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self { client, allowed: allowed.iter().filter_map(|a| origin(a)).collect() })
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
        let mut resp = req.send().await.map_err(|e| format!("request failed: {}", chain(&e)))?;
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

/// An error with its causes, so a plugin author sees why (`invalid peer certificate:
/// UnknownIssuer`) and not only that a request failed.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}
