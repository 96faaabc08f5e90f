//! Approves enrolment requests from the offices listed (comma-separated ids) in config
//! `offices`, on `request.created`. The host carries the approval out as this plugin, with the
//! permissions its configuration grants (`requests:approve`); requests from other offices are
//! left for people to approve.

use sigil_plugin_sdk::config;
use sigil_plugin_sdk::workflow::{Action, Event, Workflow};

struct AutoApprover;

impl Workflow for AutoApprover {
    fn on_event(event: Event) -> Result<Vec<Action>, String> {
        if event.kind != "request.created" {
            return Ok(vec![]);
        }
        let details: serde_json::Value =
            serde_json::from_str(&event.json).map_err(|e| format!("event details: {e}"))?;
        let office = details["office_id"].as_str().unwrap_or_default();
        let offices = config::get("offices").unwrap_or_default();
        if !offices.split(',').map(str::trim).any(|o| !o.is_empty() && o == office) {
            return Ok(vec![]);
        }
        let body = serde_json::json!({"reason": format!("auto-approved for office {office}")});
        Ok(vec![Action::call(
            "POST",
            format!("/api/v1/requests/{}/approve", event.object_id),
            Some(body.to_string()),
        )])
    }
}

sigil_plugin_sdk::export_workflow!(AutoApprover);
