//! A workflow that triggers itself: on `device.active` it asks Sigil to suspend the device, on
//! `device.suspended` to reactivate it. Without a bound on workflow-triggered events this
//! would run forever; the host stops the chain at its depth limit.

use sigil_plugin_sdk::workflow::{Action, Event, Workflow};

struct PingPong;

impl Workflow for PingPong {
    fn on_event(event: Event) -> Result<Vec<Action>, String> {
        let verb = match event.kind.as_str() {
            "device.active" => "suspend",
            "device.suspended" => "reactivate",
            _ => return Ok(vec![]),
        };
        let body = if verb == "suspend" { Some("{\"reason\":\"ping\"}".to_owned()) } else { None };
        Ok(vec![Action::call("POST", format!("/api/v1/devices/{}/{verb}", event.object_id), body)])
    }
}

sigil_plugin_sdk::export_workflow!(PingPong);
