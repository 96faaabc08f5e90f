//! Audit: the trail with its filters, one object's trail, export (CSV, XML, JSON, signed) and
//! verification with the result shown.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::forms::{next_url, pass_query};
use super::session::urlencode;
use super::{Session, Ui};

pub(super) fn routes() -> Router<Ui> {
    Router::new()
        .route("/ui/audit", get(list))
        .route("/ui/audit/objects/{object_type}/{object_id}", get(trail))
        .route("/ui/audit/export", get(export))
        .route("/ui/audit/verify", get(verify))
}

const SECTION: &str = "/ui/audit";

const FILTERS: &[&str] =
    &["actor", "object_type", "object_id", "action", "outcome", "from", "until", "cursor"];

/// Each event with the link to its object's trail, encoded here (an object id may hold `/`).
fn with_trails(items: &serde_json::Value) -> serde_json::Value {
    let mut items = items.clone();
    if let Some(list) = items.as_array_mut() {
        for e in list {
            let link = format!(
                "{SECTION}/objects/{}/{}",
                urlencode(e["object_type"].as_str().unwrap_or("")),
                urlencode(e["object_id"].as_str().unwrap_or(""))
            );
            e["trail"] = serde_json::Value::String(link);
        }
    }
    items
}

async fn list(State(ui): State<Ui>, s: Session, RawQuery(raw): RawQuery) -> Response {
    let (query, filters) = pass_query(raw.as_deref(), FILTERS);
    let (items, next, error) = match ui.list(&s, SECTION, "/api/v1/audit", &query, "Audit").await {
        Ok((items, next, error)) => (with_trails(&items), next, error),
        Err(r) => return r,
    };
    let export_query: String =
        query.split('&').filter(|p| !p.starts_with("cursor=")).collect::<Vec<_>>().join("&");
    ui.page(
        Some(&s),
        "audit.html",
        json!({"title": "Audit", "section": SECTION, "items": items, "filters": filters,
            "error": error, "next_url": next, "export_query": export_query, "object": null}),
    )
}

async fn trail(
    State(ui): State<Ui>,
    s: Session,
    Path((object_type, object_id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let (query, _) = pass_query(raw.as_deref(), &["cursor"]);
    let base =
        format!("/api/v1/audit/objects/{}/{}", urlencode(&object_type), urlencode(&object_id));
    let a = ui.call(&s, Method::GET, &format!("{base}?limit=50&{query}"), None).await;
    if !a.ok() {
        return ui.refused(&s, "Audit trail", &a);
    }
    let here = format!("{SECTION}/objects/{}/{}", urlencode(&object_type), urlencode(&object_id));
    ui.page(
        Some(&s),
        "audit.html",
        json!({"title": format!("Trail of {object_type} {object_id}"), "section": SECTION,
            "items": with_trails(&a.body["items"]), "filters": {}, "error": null,
            "next_url": next_url(&here, &query, &a.body), "export_query": "",
            "object": {"type": object_type, "id": object_id}}),
    )
}

/// The signed export, passed through with its headers (type, file name, signature).
async fn export(State(ui): State<Ui>, s: Session, RawQuery(raw): RawQuery) -> Response {
    let mut allowed = FILTERS.to_vec();
    allowed.retain(|f| *f != "cursor");
    allowed.push("format");
    let (query, _) = pass_query(raw.as_deref(), &allowed);
    let a = ui.call(&s, Method::GET, &format!("/api/v1/audit/export?{query}"), None).await;
    if !a.ok() {
        return ui.refused(&s, "Audit export", &a);
    }
    let mut res = a.raw.into_response();
    for (name, value) in &a.headers {
        let n = name.as_str();
        if name == header::CONTENT_TYPE
            || name == header::CONTENT_DISPOSITION
            || n.starts_with("sigil-")
        {
            res.headers_mut().insert(name.clone(), value.clone());
        }
    }
    res
}

async fn verify(State(ui): State<Ui>, s: Session) -> Response {
    let a = ui.call(&s, Method::GET, "/api/v1/audit/verify", None).await;
    if !a.ok() {
        return ui.refused(&s, "Verify the audit trail", &a);
    }
    ui.page(
        Some(&s),
        "audit_verify.html",
        json!({"title": "Audit verification", "section": SECTION, "report": a.body}),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn trail_links_encode_object_ids_with_slashes_and_spaces() {
        let items =
            serde_json::json!([{"object_type": "endpoint", "object_id": "GET /api/v1/profiles"}]);
        let out = super::with_trails(&items);
        assert_eq!(out[0]["trail"], "/ui/audit/objects/endpoint/GET%20%2Fapi%2Fv1%2Fprofiles");
    }
}
