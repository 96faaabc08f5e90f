//! Enrolment requests: the queue, filtered by status, with approve and reject for operators.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::Method;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::forms::{Fields, flash, pass_query};
use super::session::urlencode;
use super::{Session, Ui, see_other};

pub(super) fn routes() -> Router<Ui> {
    Router::new()
        .route("/ui/requests", get(list))
        .route("/ui/requests/{id}/{decision}", post(decide))
}

const SECTION: &str = "/ui/requests";

async fn list(State(ui): State<Ui>, s: Session, RawQuery(raw): RawQuery) -> Response {
    let mut q = raw.clone().unwrap_or_default();
    // The queue: pending requests unless another status is asked for.
    if !q.split('&').any(|p| p.starts_with("status=")) {
        q = if q.is_empty() { "status=pending".into() } else { format!("{q}&status=pending") };
    }
    let (query, filters) = pass_query(Some(&q), &["status", "profile", "operator", "cursor"]);
    let (items, next, error) =
        match ui.list(&s, SECTION, "/api/v1/requests", &query, "Enrolment requests").await {
            Ok(l) => l,
            Err(r) => return r,
        };
    ui.page(
        Some(&s),
        "requests.html",
        json!({"title": "Enrolment requests", "section": SECTION, "items": items,
            "filters": filters, "error": error, "next_url": next,
            "flash": raw.as_deref().and_then(flash)}),
    )
}

async fn decide(
    State(ui): State<Ui>,
    s: Session,
    Path((id, decision)): Path<(String, String)>,
    f: Fields,
) -> Response {
    if let Err(r) = f.check_csrf(&ui, &s) {
        return r;
    }
    if decision != "approve" && decision != "reject" {
        return see_other(SECTION);
    }
    let mut body = json!({});
    if let Some(c) = f.get("reason") {
        body["reason"] = Value::String(c.to_owned());
    }
    let a = ui
        .call(
            &s,
            Method::POST,
            &format!("/api/v1/requests/{}/{decision}", urlencode(&id)),
            Some(&body),
        )
        .await;
    if !a.ok() {
        return ui.refused(&s, "Enrolment request", &a);
    }
    see_other("/ui/requests?done=saved")
}
