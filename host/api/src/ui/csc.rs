//! CSC Configuration: the providers `/csc/*/info` answers from (seed 002): list, create, edit,
//! delete; logo upload (PNG or JPEG, checked by content, at most 256 KiB) with a preview.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::get;
use base64::Engine;
use serde_json::{Value, json};

use super::forms::{Fields, MAX_UPLOAD, flash, is_field_problem, place_error};
use super::session::urlencode;
use super::{Session, Ui, see_other};

pub(super) fn routes() -> Router<Ui> {
    Router::new()
        .route("/ui/csc-providers", get(list).post(create))
        .route("/ui/csc-providers/new", get(new))
        .route("/ui/csc-providers/{id}", get(edit).post(update))
        .route("/ui/csc-providers/{id}/delete", get(confirm_delete).post(delete))
        .route("/ui/csc-providers/{id}/logo", get(logo))
}

const SECTION: &str = "/ui/csc-providers";

const AUTH_TYPES: &[(&str, &str)] = &[
    ("basic", "Basic (username and password at auth/login)"),
    ("TLS", "TLS client certificate"),
    ("external", "External (a gateway authenticates)"),
];

const FIELDS: &[(&str, &str)] = &[
    ("invalid_name", "name"),
    ("name_taken", "name"),
    ("invalid_region", "region"),
    ("invalid_logo", "logo"),
    ("invalid_language", "language"),
    ("invalid_auth_types", "auth_types"),
    ("invalid_description", "description"),
    ("-", "default"),
];

async fn list(State(ui): State<Ui>, s: Session, RawQuery(raw): RawQuery) -> Response {
    let a = ui.call(&s, Method::GET, "/api/v1/csc-providers", None).await;
    if !a.ok() {
        return ui.refused(&s, "CSC Configuration", &a);
    }
    ui.page(
        Some(&s),
        "csc.html",
        json!({"title": "CSC Configuration", "section": SECTION, "providers": a.body["items"],
            "flash": raw.as_deref().and_then(flash)}),
    )
}

fn form_page(ui: &Ui, s: &Session, id: Option<&str>, values: Value, errors: Value) -> Response {
    let title = if id.is_some() { "Edit CSC provider" } else { "New CSC provider" };
    ui.render(
        Some(s),
        "csc_form.html",
        json!({"title": title, "section": SECTION, "id": id, "values": values,
            "errors": errors, "auth_types": AUTH_TYPES}),
        // A form shown again with its errors is a page like any other (a 4xx here would
        // only make the browser log an error).
        StatusCode::OK,
    )
}

async fn new(State(ui): State<Ui>, s: Session) -> Response {
    if let Err(r) = super::require(&ui, &s, "csc_providers:write") {
        return r;
    }
    form_page(&ui, &s, None, json!({"language": "en", "auth_types": ["basic"]}), json!({}))
}

/// The uploaded logo as the `data:` URI the REST API takes, checked by its first bytes (a
/// file's name and declared type are the client's say).
fn logo_of(f: &Fields) -> Result<Option<String>, String> {
    let Some((_, ctype, bytes)) = &f.file else { return Ok(None) };
    if ctype == "too-large" {
        return Err(format!("The logo must be at most {} KiB.", MAX_UPLOAD / 1024));
    }
    let mime = if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        "image/jpeg"
    } else {
        return Err("The logo must be a PNG or JPEG image.".into());
    };
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    Ok(Some(format!("data:{mime};base64,{b64}")))
}

/// The REST body of the form: every field (an edit sends them all); the logo only when a file
/// was chosen or removal was asked for.
fn body_of(f: &Fields) -> Result<Value, Value> {
    let mut body = json!({
        "name": f.get("name").unwrap_or(""),
        "region": f.get("region").unwrap_or("").to_ascii_uppercase(),
        "language": f.get("language").unwrap_or("en"),
        "auth_types": f.all("auth_types"),
        "description": f.get("description").unwrap_or(""),
        "default": f.get("default").is_some(),
    });
    match logo_of(f) {
        Ok(Some(uri)) => body["logo"] = Value::String(uri),
        Ok(None) if f.get("remove_logo").is_some() => body["logo"] = Value::String(String::new()),
        Ok(None) => {}
        Err(e) => return Err(json!({"logo": e})),
    }
    Ok(body)
}

fn echo(f: &Fields) -> Value {
    let mut v = f.echo();
    v["auth_types"] = json!(f.all("auth_types"));
    v["default"] = json!(f.get("default").is_some());
    v
}

async fn create(State(ui): State<Ui>, s: Session, f: Fields) -> Response {
    if let Err(r) =
        f.check_csrf(&ui, &s).and_then(|()| super::require(&ui, &s, "csc_providers:write"))
    {
        return r;
    }
    let body = match body_of(&f) {
        Ok(b) => b,
        Err(e) => return form_page(&ui, &s, None, echo(&f), e),
    };
    let a = ui.call(&s, Method::POST, "/api/v1/csc-providers", Some(&body)).await;
    if !a.ok() {
        if !is_field_problem(&a, FIELDS) {
            return ui.refused(&s, "CSC provider", &a);
        }
        return form_page(&ui, &s, None, echo(&f), place_error(&a, FIELDS));
    }
    see_other("/ui/csc-providers?done=saved")
}

async fn edit(State(ui): State<Ui>, s: Session, Path(id): Path<String>) -> Response {
    match ui.fetch(&s, &format!("/api/v1/csc-providers/{}", urlencode(&id)), "CSC provider").await {
        Ok(p) => form_page(&ui, &s, Some(&id), p, json!({})),
        Err(r) => r,
    }
}

async fn update(State(ui): State<Ui>, s: Session, Path(id): Path<String>, f: Fields) -> Response {
    if let Err(r) =
        f.check_csrf(&ui, &s).and_then(|()| super::require(&ui, &s, "csc_providers:write"))
    {
        return r;
    }
    // The current logo, to show again if the form comes back.
    let mut values = echo(&f);
    if let Ok(p) =
        ui.fetch(&s, &format!("/api/v1/csc-providers/{}", urlencode(&id)), "CSC provider").await
    {
        values["logo"] = p["logo"].clone();
    }
    let body = match body_of(&f) {
        Ok(b) => b,
        Err(e) => return form_page(&ui, &s, Some(&id), values, e),
    };
    let a = ui
        .call(&s, Method::PATCH, &format!("/api/v1/csc-providers/{}", urlencode(&id)), Some(&body))
        .await;
    if !a.ok() {
        if !is_field_problem(&a, FIELDS) {
            return ui.refused(&s, "CSC provider", &a);
        }
        return form_page(&ui, &s, Some(&id), values, place_error(&a, FIELDS));
    }
    see_other("/ui/csc-providers?done=saved")
}

/// A provider's uploaded logo as an image, so that pages link to it instead of inlining every
/// logo (a URL logo is not fetched: the page shows the URL).
async fn logo(State(ui): State<Ui>, s: Session, Path(id): Path<String>) -> Response {
    use axum::response::IntoResponse;
    let p = match ui
        .fetch(&s, &format!("/api/v1/csc-providers/{}", urlencode(&id)), "CSC provider")
        .await
    {
        Ok(p) => p,
        Err(r) => return r,
    };
    let uri = p["logo"].as_str().unwrap_or("");
    let image = ["image/png", "image/jpeg"].into_iter().find_map(|mime| {
        let b64 = uri.strip_prefix(&format!("data:{mime};base64,"))?;
        base64::engine::general_purpose::STANDARD.decode(b64).ok().map(|b| (mime, b))
    });
    match image {
        Some((mime, bytes)) => ([(axum::http::header::CONTENT_TYPE, mime)], bytes).into_response(),
        None => (StatusCode::NOT_FOUND, "no uploaded logo").into_response(),
    }
}

async fn confirm_delete(State(ui): State<Ui>, s: Session, Path(id): Path<String>) -> Response {
    let p = match ui
        .fetch(&s, &format!("/api/v1/csc-providers/{}", urlencode(&id)), "CSC provider")
        .await
    {
        Ok(p) => p,
        Err(r) => return r,
    };
    ui.page(
        Some(&s),
        "confirm.html",
        json!({"title": "Delete CSC provider", "section": SECTION,
            "question": format!("Delete the provider \u{201c}{}\u{201d}?", p["name"].as_str().unwrap_or("")),
            "action": format!("/ui/csc-providers/{}/delete", urlencode(&id)), "button": "Delete",
            "danger": true, "back": SECTION}),
    )
}

async fn delete(State(ui): State<Ui>, s: Session, Path(id): Path<String>, f: Fields) -> Response {
    if let Err(r) = f.check_csrf(&ui, &s) {
        return r;
    }
    let a = ui
        .call(&s, Method::DELETE, &format!("/api/v1/csc-providers/{}", urlencode(&id)), None)
        .await;
    if !a.ok() {
        return ui.refused(&s, "Delete CSC provider", &a);
    }
    see_other("/ui/csc-providers?done=deleted")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_file(ctype: &str, bytes: &[u8]) -> Fields {
        let mut f = Fields::default();
        f.file = Some(("logo".into(), ctype.into(), bytes.to_vec()));
        f
    }

    #[test]
    fn a_logo_is_taken_by_its_content_not_its_declared_type() {
        let png = b"\x89PNG\r\n\x1a\nrest";
        let uri = logo_of(&with_file("text/html", png)).unwrap().unwrap();
        assert!(uri.starts_with("data:image/png;base64,"));
        let jpeg = logo_of(&with_file("image/png", &[0xFF, 0xD8, 0xFF, 0xE0])).unwrap().unwrap();
        assert!(jpeg.starts_with("data:image/jpeg;base64,"));
        for bad in [&b"<svg xmlns='http://www.w3.org/2000/svg'/>"[..], b"GIF89a", b"<html>"] {
            assert!(logo_of(&with_file("image/png", bad)).is_err());
        }
        assert!(logo_of(&with_file("too-large", b"")).unwrap_err().contains("256 KiB"));
        assert_eq!(logo_of(&Fields::default()), Ok(None));
    }
}
