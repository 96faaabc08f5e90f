//! API Keys: the list, the Generate Key form of seed 002, the secret shown once, revoke and
//! rotate with confirmation.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};
use sigil_core::access::authz::CATALOGUE;

use super::forms::{Fields, flash, is_field_problem, next_url, pass_query, place_error};
use super::session::urlencode;
use super::{Session, Ui, see_other};

pub(super) fn routes() -> Router<Ui> {
    Router::new()
        .route("/ui/api-keys", get(list).post(create))
        .route("/ui/api-keys/new", get(new))
        .route("/ui/api-keys/{id}/revoke", get(confirm_revoke).post(revoke))
        .route("/ui/api-keys/{id}/rotate", get(confirm_rotate).post(rotate))
}

const SECTION: &str = "/ui/api-keys";

/// How long a rotated key's old secret keeps working: the choices the rotate page offers.
const GRACE: &[(&str, &str)] = &[
    ("0", "No grace: the old secret stops now"),
    ("3600", "1 hour"),
    ("86400", "24 hours"),
    ("604800", "7 days"),
];

async fn list(State(ui): State<Ui>, s: Session, RawQuery(raw): RawQuery) -> Response {
    let (query, filters) = pass_query(raw.as_deref(), &["status", "name", "cursor"]);
    let a = ui.call(&s, Method::GET, &format!("/api/v1/api-keys?{query}"), None).await;
    if !a.ok() {
        return ui.refused(&s, "API Keys", &a);
    }
    let flash = raw.as_deref().and_then(flash);
    ui.page(
        Some(&s),
        "keys.html",
        json!({"title": "API Keys", "section": SECTION, "keys": a.body["items"],
            "filters": filters, "next_url": next_url(SECTION, &query, &a.body), "flash": flash}),
    )
}

/// The permissions the form offers: the ones this key holds (a key cannot grant more).
fn grantable(s: &Session) -> Vec<Value> {
    CATALOGUE
        .iter()
        .filter(|p| s.principal.permissions.allows(p.name))
        .map(|p| json!({"name": p.name, "description": p.description}))
        .collect()
}

fn form_page(ui: &Ui, s: &Session, values: Value, errors: Value) -> Response {
    ui.render(
        Some(s),
        "key_form.html",
        json!({"title": "Generate Key", "section": SECTION, "permissions": grantable(s),
            "values": values, "errors": errors}),
        // A form shown again with its errors is a page like any other (a 4xx here would
        // only make the browser log an error).
        StatusCode::OK,
    )
}

async fn new(State(ui): State<Ui>, s: Session) -> Response {
    if let Err(r) = super::require(&ui, &s, "api_keys:create") {
        return r;
    }
    form_page(&ui, &s, json!({"expires": "30d", "rate_per": "minute"}), json!({}))
}

/// Where the REST API's refusals of a new key belong on the form.
const KEY_FIELDS: &[(&str, &str)] = &[
    ("invalid_name", "name"),
    ("name_taken", "name"),
    ("invalid_description", "description"),
    ("invalid_expiry", "expires"),
    ("expiry_beyond_creator", "expires"),
    ("invalid_permission", "permissions"),
    ("unknown_permission", "permissions"),
    ("permission_escalation", "permissions"),
    ("authority_exceeded", "permissions"),
    ("invalid_rate_limit", "rate_requests"),
    ("invalid_ip_whitelist", "ip_whitelist"),
    // JSON paths of the body the form becomes (shown under the rate fields).
    ("-", "rate_limit"),
];

/// The REST body of the Generate Key form, or the field errors that stop it being sent.
fn body_of(f: &Fields) -> Result<Value, Value> {
    let mut errors = serde_json::Map::new();
    let expires = match f.get("expires").unwrap_or("never") {
        "custom" => match f.get("expires_custom") {
            Some(d) if d.len() == 10 => format!("{d}T00:00:00Z"),
            _ => {
                errors.insert("expires".into(), "Choose the expiry date.".into());
                String::new()
            }
        },
        v @ ("30d" | "60d" | "never") => v.to_owned(),
        _ => {
            errors.insert("expires".into(), "Choose 30 Days, 60 Days, Never or Custom.".into());
            String::new()
        }
    };
    let per = f.get("rate_per").unwrap_or("minute");
    if !matches!(per, "minute" | "hour" | "day") {
        errors.insert("rate_per".into(), "Choose Minutes, Hours or Days.".into());
    }
    let rate_limit = match f.get("rate_requests") {
        None => Value::Null,
        Some(n) => match n.parse::<u32>() {
            Ok(n) => json!({"requests": n, "per": per}),
            Err(_) => {
                errors.insert("rate_requests".into(), "Enter a whole number of requests.".into());
                Value::Null
            }
        },
    };
    let permissions = f.all("permissions");
    if permissions.is_empty() {
        errors.insert("permissions".into(), "Choose at least one permission.".into());
    }
    if !errors.is_empty() {
        return Err(Value::Object(errors));
    }
    let whitelist: Vec<String> = f
        .get("ip_whitelist")
        .unwrap_or("")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let mut body = json!({
        "name": f.get("name").unwrap_or(""),
        "description": f.get("description").unwrap_or(""),
        "expires": expires,
        "permissions": permissions,
        "ip_whitelist": whitelist,
    });
    if !rate_limit.is_null() {
        body["rate_limit"] = rate_limit;
    }
    Ok(body)
}

/// The form again, with what was entered (checked permissions included).
fn echo(f: &Fields) -> Value {
    let mut v = f.echo();
    v["permissions"] = json!(f.all("permissions"));
    v
}

async fn create(State(ui): State<Ui>, s: Session, f: Fields) -> Response {
    if let Err(r) = f.check_csrf(&ui, &s).and_then(|()| super::require(&ui, &s, "api_keys:create"))
    {
        return r;
    }
    let body = match body_of(&f) {
        Ok(b) => b,
        Err(errors) => return form_page(&ui, &s, echo(&f), errors),
    };
    let a = ui.call(&s, Method::POST, "/api/v1/api-keys", Some(&body)).await;
    if !a.ok() {
        if !is_field_problem(&a, KEY_FIELDS) {
            return ui.refused(&s, "Generate Key", &a);
        }
        return form_page(&ui, &s, echo(&f), place_error(&a, KEY_FIELDS));
    }
    secret_page(&ui, &s, &a.body, "Key generated", StatusCode::CREATED)
}

/// The secret, shown once (this answer is not cached and the secret is in no URL).
fn secret_page(ui: &Ui, s: &Session, issued: &Value, title: &str, status: StatusCode) -> Response {
    ui.render(
        Some(s),
        "key_secret.html",
        json!({"title": title, "section": SECTION, "secret": issued["key"],
            "key": issued}),
        status,
    )
}

async fn confirm_revoke(State(ui): State<Ui>, s: Session, Path(id): Path<String>) -> Response {
    let key = match ui.fetch(&s, &format!("/api/v1/api-keys/{}", urlencode(&id)), "API key").await {
        Ok(k) => k,
        Err(r) => return r,
    };
    ui.page(
        Some(&s),
        "confirm.html",
        json!({"title": "Revoke API key", "section": SECTION,
            "question": format!("Revoke the key \u{201c}{}\u{201d}? Every client using it is refused from then on; this cannot be undone.", key["name"].as_str().unwrap_or("")),
            "action": format!("/ui/api-keys/{}/revoke", urlencode(&id)), "button": "Revoke",
            "danger": true, "free_reason": true, "back": SECTION}),
    )
}

async fn revoke(State(ui): State<Ui>, s: Session, Path(id): Path<String>, f: Fields) -> Response {
    if let Err(r) = f.check_csrf(&ui, &s) {
        return r;
    }
    let reason = f.get("reason").map(|r| format!("?reason={}", urlencode(r))).unwrap_or_default();
    let a = ui
        .call(&s, Method::DELETE, &format!("/api/v1/api-keys/{}{reason}", urlencode(&id)), None)
        .await;
    if !a.ok() {
        return ui.refused(&s, "Revoke API key", &a);
    }
    see_other("/ui/api-keys?done=revoked")
}

async fn confirm_rotate(State(ui): State<Ui>, s: Session, Path(id): Path<String>) -> Response {
    let key = match ui.fetch(&s, &format!("/api/v1/api-keys/{}", urlencode(&id)), "API key").await {
        Ok(k) => k,
        Err(r) => return r,
    };
    ui.page(
        Some(&s),
        "confirm.html",
        json!({"title": "Rotate API key", "section": SECTION,
            "question": format!("Rotate the key \u{201c}{}\u{201d}? A new secret is shown once. The old one stops when the grace period you choose ends, and every UI session signed in with this key ends now.", key["name"].as_str().unwrap_or("")),
            "action": format!("/ui/api-keys/{}/rotate", urlencode(&id)), "button": "Rotate",
            "danger": false, "grace": GRACE, "back": SECTION}),
    )
}

async fn rotate(State(ui): State<Ui>, s: Session, Path(id): Path<String>, f: Fields) -> Response {
    if let Err(r) = f.check_csrf(&ui, &s) {
        return r;
    }
    let grace = f.get("grace_period_seconds").unwrap_or("0");
    let Some((secs, _)) = GRACE.iter().find(|(v, _)| *v == grace) else {
        let refusal = super::ApiAnswer::refusal(
            400,
            "invalid_grace_period",
            "choose one of the offered grace periods",
        );
        return ui.refused(&s, "Rotate API key", &refusal);
    };
    let body = json!({"grace_period_seconds": secs.parse::<i64>().unwrap_or(0)});
    let a = ui
        .call(&s, Method::POST, &format!("/api/v1/api-keys/{}/rotate", urlencode(&id)), Some(&body))
        .await;
    if !a.ok() {
        return ui.refused(&s, "Rotate API key", &a);
    }
    secret_page(&ui, &s, &a.body, "Key rotated", StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Fields {
        let mut f = Fields::default();
        for (k, v) in pairs {
            f.push(k, v);
        }
        f
    }

    #[test]
    fn the_generate_key_form_becomes_the_rest_body_of_the_contract() {
        let f = form(&[
            ("name", "hr-sync"),
            ("description", "HR"),
            ("expires", "custom"),
            ("expires_custom", "2027-01-31"),
            ("permissions", "certificates:read"),
            ("permissions", "certificate:revoke"),
            ("rate_requests", "100"),
            ("rate_per", "hour"),
            ("ip_whitelist", "127.0.0.1\r\n\r\n 10.0.0.0/8 \n"),
        ]);
        assert_eq!(
            body_of(&f).unwrap(),
            json!({"name": "hr-sync", "description": "HR", "expires": "2027-01-31T00:00:00Z",
                "permissions": ["certificates:read", "certificate:revoke"],
                "rate_limit": {"requests": 100, "per": "hour"},
                "ip_whitelist": ["127.0.0.1", "10.0.0.0/8"]})
        );
        let plain = form(&[("name", "n"), ("expires", "60d"), ("permissions", "audit:read")]);
        assert_eq!(body_of(&plain).unwrap()["expires"], "60d");
        assert!(body_of(&plain).unwrap().get("rate_limit").is_none());
    }

    #[test]
    fn what_the_form_cannot_send_is_said_next_to_its_field() {
        let e = body_of(&form(&[("expires", "custom"), ("rate_requests", "many")])).unwrap_err();
        assert!(e["expires"].is_string() && e["rate_requests"].is_string());
        assert!(e["permissions"].is_string());
        let e = body_of(&form(&[("expires", "1y"), ("permissions", "x")])).unwrap_err();
        assert!(e["expires"].is_string());
    }
}
