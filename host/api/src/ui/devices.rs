//! Devices: list with filters, a detail page with its history, and the lifecycle actions its
//! state allows (the REST answer's `allowed_transitions`).

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::Method;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use super::forms::{Fields, flash, pass_query};
use super::session::urlencode;
use super::{Session, Ui, see_other};

pub(super) fn routes() -> Router<Ui> {
    Router::new()
        .route("/ui/devices", get(list))
        .route("/ui/devices/{id}", get(show))
        .route("/ui/devices/{id}/{action}", get(confirm).post(act))
}

const SECTION: &str = "/ui/devices";

/// Lifecycle actions: REST verb, the state it leads to, the permission, the button.
const ACTIONS: &[(&str, &str, &str, &str)] = &[
    ("activate", "active", "device:activate", "Activate"),
    ("reactivate", "active", "device:reactivate", "Reactivate"),
    ("suspend", "suspended", "device:suspend", "Suspend"),
    ("lost", "lost", "device:suspend", "Report lost"),
    ("damaged", "damaged", "device:revoke", "Report damaged"),
    ("revoke", "revoked", "device:revoke", "Revoke"),
    ("expire", "expired", "device:revoke", "Expire"),
    ("terminate", "terminated", "device:revoke", "Terminate"),
];

/// The actions a device in `status` offers this caller.
fn offered(s: &Session, device: &Value) -> Vec<Value> {
    let status = device["status"].as_str().unwrap_or("");
    let allowed: Vec<&str> = device["allowed_transitions"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    ACTIONS
        .iter()
        .filter(|(verb, to, perm, _)| {
            allowed.contains(to)
                && s.principal.permissions.allows(perm)
                // Active is reached by activation from registered, by reactivation otherwise.
                && match *verb {
                    "activate" => status == "registered",
                    "reactivate" => status != "registered",
                    _ => true,
                }
        })
        .map(|(verb, _, _, label)| json!({"verb": verb, "label": label}))
        .collect()
}

async fn list(State(ui): State<Ui>, s: Session, RawQuery(raw): RawQuery) -> Response {
    let (query, filters) =
        pass_query(raw.as_deref(), &["status", "kind", "serial", "batch", "cursor"]);
    let (items, next, error) =
        match ui.list(&s, SECTION, "/api/v1/devices", &query, "Devices").await {
            Ok(l) => l,
            Err(r) => return r,
        };
    ui.page(
        Some(&s),
        "devices.html",
        json!({"title": "Devices", "section": SECTION, "items": items, "filters": filters,
            "error": error, "next_url": next}),
    )
}

async fn show(
    State(ui): State<Ui>,
    s: Session,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let d = match ui.fetch(&s, &format!("/api/v1/devices/{}", urlencode(&id)), "Device").await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let h = ui
        .call(
            &s,
            Method::GET,
            &format!("/api/v1/devices/{}/history?limit=100", urlencode(&id)),
            None,
        )
        .await;
    let history = if h.ok() { h.body["items"].clone() } else { json!([]) };
    ui.page(
        Some(&s),
        "device.html",
        json!({"title": format!("Device {}", d["serial"].as_str().unwrap_or("")),
            "section": SECTION, "d": d, "history": history, "actions": offered(&s, &d),
            "flash": raw.as_deref().and_then(flash)}),
    )
}

async fn confirm(
    State(ui): State<Ui>,
    s: Session,
    Path((id, verb)): Path<(String, String)>,
) -> Response {
    let Some((_, _, _, label)) = ACTIONS.iter().find(|(v, ..)| *v == verb) else {
        return see_other(&format!("{SECTION}/{}", urlencode(&id)));
    };
    let d = match ui.fetch(&s, &format!("/api/v1/devices/{}", urlencode(&id)), "Device").await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let serial = d["serial"].as_str().unwrap_or("");
    ui.page(
        Some(&s),
        "confirm.html",
        json!({"title": format!("{label}: device {serial}"), "section": SECTION,
            "question": format!("{label} the device {serial}? Its certificates follow (a suspension puts them on hold, a revocation revokes them)."),
            "action": format!("{SECTION}/{}/{verb}", urlencode(&id)), "button": label,
            "danger": matches!(verb.as_str(), "revoke" | "terminate" | "damaged" | "expire"),
            "free_reason": true, "back": format!("{SECTION}/{}", urlencode(&id))}),
    )
}

async fn act(
    State(ui): State<Ui>,
    s: Session,
    Path((id, verb)): Path<(String, String)>,
    f: Fields,
) -> Response {
    if let Err(r) = f.check_csrf(&ui, &s) {
        return r;
    }
    if !ACTIONS.iter().any(|(v, ..)| *v == verb) {
        return see_other(&format!("{SECTION}/{}", urlencode(&id)));
    }
    let mut body = json!({});
    if let Some(r) = f.get("reason") {
        body["reason"] = Value::String(r.to_owned());
    }
    let a = ui
        .call(&s, Method::POST, &format!("/api/v1/devices/{}/{verb}", urlencode(&id)), Some(&body))
        .await;
    if !a.ok() {
        return ui.refused(&s, "Device", &a);
    }
    see_other(&format!("{SECTION}/{}?done=saved", urlencode(&id)))
}
