//! Certificates: search with the inventory's filters and cursor pages, a detail page with
//! downloads, and suspend, reactivate and revoke with a reason.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::forms::{Fields, flash, pass_query};
use super::session::urlencode;
use super::{Session, Ui, see_other};

pub(super) fn routes() -> Router<Ui> {
    Router::new()
        .route("/ui/certificates", get(list))
        .route("/ui/certificates/{id}", get(show))
        .route("/ui/certificates/{id}/download", get(download))
        .route("/ui/certificates/{id}/{action}", get(confirm).post(act))
}

const SECTION: &str = "/ui/certificates";

/// The filters of `GET /api/v1/certificates` the search form offers.
const FILTERS: &[&str] =
    &["q", "status", "profile", "ca", "serial", "owner", "expiring_within_days", "sort", "cursor"];

const REVOCATION_REASONS: &[&str] = &[
    "unspecified",
    "keyCompromise",
    "cACompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "privilegeWithdrawn",
];

async fn list(State(ui): State<Ui>, s: Session, RawQuery(raw): RawQuery) -> Response {
    let (query, filters) = pass_query(raw.as_deref(), FILTERS);
    // A bad filter is shown on the form, not as an error page.
    let (items, next, error) =
        match ui.list(&s, SECTION, "/api/v1/certificates", &query, "Certificates").await {
            Ok(l) => l,
            Err(r) => return r,
        };
    // The profile filter's choices, for a key that may read them (asking without the
    // permission would record a refusal the user never made).
    let profiles = if s.principal.permissions.allows("profiles:read") {
        let p = ui.call(&s, Method::GET, "/api/v1/profiles", None).await;
        if p.ok() { p.body["items"].clone() } else { json!([]) }
    } else {
        json!([])
    };
    ui.page(
        Some(&s),
        "certs.html",
        json!({"title": "Certificates", "section": SECTION, "items": items, "filters": filters,
            "error": error, "next_url": next, "profiles": profiles,
            "flash": raw.as_deref().and_then(flash)}),
    )
}

async fn show(
    State(ui): State<Ui>,
    s: Session,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let c = match ui
        .fetch(&s, &format!("/api/v1/certificates/{}", urlencode(&id)), "Certificate")
        .await
    {
        Ok(c) => c,
        Err(r) => return r,
    };
    let trail = if s.principal.permissions.allows("audit:read") {
        let a = ui
            .call(
                &s,
                Method::GET,
                &format!("/api/v1/audit/objects/certificate/{}", urlencode(&id)),
                None,
            )
            .await;
        if a.ok() { a.body["items"].clone() } else { json!([]) }
    } else {
        json!([])
    };
    let title = format!("Certificate {}", c["serial"].as_str().unwrap_or(""));
    ui.page(
        Some(&s),
        "cert.html",
        json!({"title": title, "section": SECTION, "c": c, "trail": trail,
            "flash": raw.as_deref().and_then(flash)}),
    )
}

/// `?format=pem|der|chain`: the REST download, passed through with its type and file name.
async fn download(
    State(ui): State<Ui>,
    s: Session,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let (query, _) = pass_query(raw.as_deref(), &["format"]);
    let a = ui
        .call(
            &s,
            Method::GET,
            &format!("/api/v1/certificates/{}/download?{query}", urlencode(&id)),
            None,
        )
        .await;
    if !a.ok() {
        return ui.refused(&s, "Download", &a);
    }
    let mut res = a.raw.into_response();
    for h in [header::CONTENT_TYPE, header::CONTENT_DISPOSITION] {
        if let Some(v) = a.headers.get(&h) {
            res.headers_mut().insert(h, v.clone());
        }
    }
    if !res.headers().contains_key(header::CONTENT_TYPE) {
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    }
    res
}

/// The actions this page offers: verb, permission, question, button, reasons.
fn action(name: &str) -> Option<(&'static str, &'static str, bool)> {
    Some(match name {
        "suspend" => (
            "Suspend",
            "Put the certificate on hold (certificateHold)? It can be reactivated.",
            false,
        ),
        "reactivate" => {
            ("Reactivate", "Release the hold and make the certificate valid again?", false)
        }
        "revoke" => (
            "Revoke",
            "Revoke the certificate? Relying parties see it revoked through OCSP and the CRL; this cannot be undone.",
            true,
        ),
        _ => return None,
    })
}

async fn confirm(
    State(ui): State<Ui>,
    s: Session,
    Path((id, verb)): Path<(String, String)>,
) -> Response {
    let Some((button, question, danger)) = action(&verb) else {
        return see_other(&format!("{SECTION}/{}", urlencode(&id)));
    };
    let c = match ui
        .fetch(&s, &format!("/api/v1/certificates/{}", urlencode(&id)), "Certificate")
        .await
    {
        Ok(c) => c,
        Err(r) => return r,
    };
    let reasons: &[&str] = if verb == "revoke" { REVOCATION_REASONS } else { &[] };
    ui.page(
        Some(&s),
        "confirm.html",
        json!({"title": format!("{button} certificate {}", c["serial"].as_str().unwrap_or("")),
            "section": SECTION,
            "question": format!("{question} Subject: {}", c["subject"].as_str().unwrap_or("")),
            "action": format!("{SECTION}/{}/{verb}", urlencode(&id)), "button": button,
            "danger": danger, "reasons": reasons, "comment": verb != "revoke",
            "back": format!("{SECTION}/{}", urlencode(&id))}),
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
    if action(&verb).is_none() {
        return see_other(&format!("{SECTION}/{}", urlencode(&id)));
    }
    let mut body = json!({});
    if let Some(r) = f.get("reason") {
        body["reason"] = Value::String(r.to_owned());
    }
    if let Some(c) = f.get("comment") {
        body["comment"] = Value::String(c.to_owned());
    }
    let a = ui
        .call(
            &s,
            Method::POST,
            &format!("/api/v1/certificates/{}/{verb}", urlencode(&id)),
            Some(&body),
        )
        .await;
    if !a.ok() {
        return ui.refused(&s, "Certificate", &a);
    }
    see_other(&format!("{SECTION}/{}?done=saved", urlencode(&id)))
}
