//! On `certificate.revoked` (and `certificate.suspended`), asks Sigil to record in the
//! certificate's metadata that `notify` (config, default `security-team`) must be told, and why.
//! The host carries the action out under the plugin's permissions (`certificates:update`) and
//! audits it as the plugin.

use sigil_plugin_sdk::config;
use sigil_plugin_sdk::workflow::{Action, Event, Workflow};

struct Tagger;

fn reason(json: &str) -> &str {
    // The event JSON carries `"reason":"keyCompromise"` (or null); a tiny scan is enough here.
    json.split("\"reason\":\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("unspecified")
}

impl Workflow for Tagger {
    fn on_event(event: Event) -> Result<Vec<Action>, String> {
        if event.object_type != "certificate" {
            return Ok(vec![]);
        }
        let notify: String = config::get_or("notify", "security-team".to_owned());
        let body = format!(
            "{{\"metadata\":{{\"notify\":\"{notify}\",\"notify_reason\":\"{}: {}\"}}}}",
            event.kind,
            reason(&event.json)
        );
        Ok(vec![Action::call(
            "PATCH",
            format!("/api/v1/certificates/{}", event.object_id),
            Some(body),
        )])
    }
}

sigil_plugin_sdk::export_workflow!(Tagger);
