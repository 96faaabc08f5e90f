//! Posts each lifecycle event it is subscribed to (typically `certificate.revoked`) as JSON to the
//! webhook in config `url`; the host lets it reach only the origins in its `allowed_hosts`.

use sigil_plugin_sdk::http::json_request;
use sigil_plugin_sdk::workflow::{Action, Event, Workflow};
use sigil_plugin_sdk::{config, outbound};

struct Notifier;

impl Workflow for Notifier {
    fn on_event(event: Event) -> Result<Vec<Action>, String> {
        let url = config::get("url").ok_or("config `url` is missing")?;
        let body = format!(
            "{{\"event\":\"{}\",\"object_type\":\"{}\",\"object_id\":\"{}\",\"details\":{}}}",
            event.kind, event.object_type, event.object_id, event.json
        );
        let resp = outbound::send(&json_request("POST", &url, body))?;
        if resp.status >= 300 {
            return Err(format!("the webhook answered {}", resp.status));
        }
        Ok(vec![])
    }
}

sigil_plugin_sdk::export_workflow!(Notifier);
