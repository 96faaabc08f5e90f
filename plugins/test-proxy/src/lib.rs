//! `POST|GET /api/v1/ext/<id>/call?method=M&to=<percent-encoded /path?query>` → `M /api/v1<path>`
//! through the `sigil-api` interface, with the request's content type and body; the answer is
//! Sigil's, status and body unchanged. Used by the authorization matrix: whatever the plugin's
//! own grant, a call it makes for a caller reaches no further than that caller could itself.

use sigil_plugin_sdk::api;
use sigil_plugin_sdk::endpoint::Endpoint;
use sigil_plugin_sdk::http::{self, HttpRequest, HttpResponse, response};

struct Proxy;

fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

impl Endpoint for Proxy {
    fn handle(request: HttpRequest) -> HttpResponse {
        let (Some(method), Some(to)) = (
            param(&request.query, "method"),
            param(&request.query, "to").and_then(percent_decode),
        ) else {
            return response(400, "text/plain", b"give method= and to=".to_vec());
        };
        let (path, query) = to.split_once('?').unwrap_or((to.as_str(), ""));
        let call = HttpRequest {
            query: query.to_owned(),
            headers: request
                .headers
                .iter()
                .filter(|kv| kv.key.eq_ignore_ascii_case("content-type"))
                .cloned()
                .collect(),
            body: request.body.clone(),
            ..http::request(method, &format!("/api/v1{path}"))
        };
        match api::call(&call) {
            Ok(r) => {
                let ct = r
                    .headers
                    .iter()
                    .find(|kv| kv.key.eq_ignore_ascii_case("content-type"))
                    .map(|kv| kv.value.clone())
                    .unwrap_or_else(|| "application/octet-stream".into());
                response(r.status, &ct, r.body)
            }
            Err(e) => response(502, "text/plain", e.into_bytes()),
        }
    }
}

sigil_plugin_sdk::export_endpoint!(Proxy);
