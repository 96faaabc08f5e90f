//! Posts each lifecycle event it is subscribed to (typically `certificate.revoked`) as JSON to the
//! webhook in config `url`; the host lets it reach only the origins in its `allowed_hosts`.

wit_bindgen::generate!({ world: "workflow", path: "../../wit" });

use sigil::plugin::types::{HttpRequest, Kv};
use sigil::plugin::{config, outbound_http};

struct Notifier;

impl Guest for Notifier {
    fn on_event(event: Event) -> Result<Vec<Action>, String> {
        let url = config::get("url").ok_or("config `url` is missing")?;
        let body = format!(
            "{{\"event\":\"{}\",\"object_type\":\"{}\",\"object_id\":\"{}\",\"details\":{}}}",
            event.kind, event.object_type, event.object_id, event.json
        );
        let resp = outbound_http::send(&HttpRequest {
            method: "POST".into(),
            path: url,
            query: String::new(),
            headers: vec![Kv { key: "content-type".into(), value: "application/json".into() }],
            body: body.into_bytes(),
        })?;
        if resp.status >= 300 {
            return Err(format!("the webhook answered {}", resp.status));
        }
        Ok(vec![])
    }
}

export!(Notifier);
