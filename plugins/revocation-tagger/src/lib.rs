//! On `certificate.revoked` (and `certificate.suspended`), asks Sigil to record in the
//! certificate's metadata that `notify` (config, default `security-team`) must be told, and why.
//! The host carries the action out under the plugin's permissions (`certificates:update`) and
//! audits it as the plugin.

wit_bindgen::generate!({ world: "workflow", path: "../../wit" });

use sigil::plugin::config;

struct Tagger;

fn reason(json: &str) -> &str {
    // The event JSON carries `"reason":"keyCompromise"` (or null); a tiny scan is enough here.
    json.split("\"reason\":\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("unspecified")
}

impl Guest for Tagger {
    fn on_event(event: Event) -> Result<Vec<Action>, String> {
        if event.object_type != "certificate" {
            return Ok(vec![]);
        }
        let notify = config::get("notify").unwrap_or_else(|| "security-team".into());
        let body = format!(
            "{{\"metadata\":{{\"notify\":\"{notify}\",\"notify_reason\":\"{}: {}\"}}}}",
            event.kind,
            reason(&event.json)
        );
        Ok(vec![Action {
            method: "PATCH".into(),
            path: format!("/api/v1/certificates/{}", event.object_id),
            body: Some(body),
        }])
    }
}

export!(Tagger);
