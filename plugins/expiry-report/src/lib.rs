//! `GET /api/v1/ext/<id>/expiring?days=N`: the active certificates that expire within N days
//! (default: config `default_days`, else 30), grouped by profile. It reads them through the
//! `sigil-api` interface, as itself (configure `permissions = ["certificates:read"]`).

use sigil_plugin_sdk::endpoint::Endpoint;
use sigil_plugin_sdk::http::{self, HttpRequest, HttpResponse, response};
use sigil_plugin_sdk::{api, config};

struct Report;

fn json(status: u16, v: serde_json::Value) -> HttpResponse {
    response(status, "application/json", v.to_string().into_bytes())
}

impl Endpoint for Report {
    fn handle(request: HttpRequest) -> HttpResponse {
        if request.method != "GET" || request.path != "/expiring" {
            return json(404, serde_json::json!({"error": "try GET /expiring?days=N"}));
        }
        let days: u32 = request
            .query
            .split('&')
            .find_map(|kv| kv.strip_prefix("days="))
            .and_then(|d| d.parse().ok())
            .unwrap_or_else(|| config::get_or("default_days", 30));
        let call = HttpRequest {
            query: format!("expiring_within_days={days}&sort=not_after&limit=500"),
            ..http::request("GET", "/api/v1/certificates")
        };
        let resp = match api::call(&call) {
            Ok(r) => r,
            Err(e) => return json(502, serde_json::json!({"error": e})),
        };
        if resp.status != 200 {
            return json(
                502,
                serde_json::json!({"error": "Sigil refused", "status": resp.status,
                "detail": String::from_utf8_lossy(&resp.body)}),
            );
        }
        let page: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_default();
        let items = page["items"].as_array().cloned().unwrap_or_default();
        let mut by_profile = serde_json::Map::new();
        for c in &items {
            let p = c["profile"].as_str().unwrap_or("?").to_owned();
            let n = by_profile.get(&p).and_then(|v| v.as_u64()).unwrap_or(0);
            by_profile.insert(p, (n + 1).into());
        }
        let list: Vec<_> = items
            .iter()
            .map(|c| serde_json::json!({"serial": c["serial"], "subject": c["subject"], "not_after": c["not_after"]}))
            .collect();
        json(
            200,
            serde_json::json!({"days": days, "count": list.len(), "by_profile": by_profile, "certificates": list}),
        )
    }
}

sigil_plugin_sdk::export_endpoint!(Report);
