//! The UI's templates and static files, compiled into the binary.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Every template, by name.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../ui/templates/base.html")),
    ("macros.html", include_str!("../../ui/templates/macros.html")),
    ("login.html", include_str!("../../ui/templates/login.html")),
    ("error.html", include_str!("../../ui/templates/error.html")),
    ("confirm.html", include_str!("../../ui/templates/confirm.html")),
    ("keys.html", include_str!("../../ui/templates/keys.html")),
    ("key_form.html", include_str!("../../ui/templates/key_form.html")),
    ("key_secret.html", include_str!("../../ui/templates/key_secret.html")),
    ("csc.html", include_str!("../../ui/templates/csc.html")),
    ("csc_form.html", include_str!("../../ui/templates/csc_form.html")),
    ("certs.html", include_str!("../../ui/templates/certs.html")),
    ("cert.html", include_str!("../../ui/templates/cert.html")),
    ("devices.html", include_str!("../../ui/templates/devices.html")),
    ("device.html", include_str!("../../ui/templates/device.html")),
    ("requests.html", include_str!("../../ui/templates/requests.html")),
    ("audit.html", include_str!("../../ui/templates/audit.html")),
    ("audit_verify.html", include_str!("../../ui/templates/audit_verify.html")),
    ("plugins.html", include_str!("../../ui/templates/plugins.html")),
];

/// Static files: name, content type, bytes.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "htmx.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/assets/htmx.min.js"),
    ),
    ("sigil.js", "text/javascript; charset=utf-8", include_bytes!("../../ui/assets/sigil.js")),
    ("sigil.css", "text/css; charset=utf-8", include_bytes!("../../ui/assets/sigil.css")),
    ("favicon.svg", "image/svg+xml", include_bytes!("../../ui/assets/favicon.svg")),
];

/// The template environment: HTML autoescaping of everything (REST answers carry names and
/// subjects that callers chose), chainable undefined values (optional fields of REST answers
/// may be absent), a time filter.
pub(super) fn templates() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    env.add_filter("when", when);
    for (name, src) in TEMPLATES {
        if let Err(e) = env.add_template(name, src) {
            // Checked by a unit test; a broken template must not take the server down.
            tracing::error!(template = name, error = %e, "a UI template does not compile");
        }
    }
    env
}

/// An RFC 3339 time shown as `YYYY-MM-DD HH:MM` (UTC); anything else unchanged.
fn when(v: Option<String>) -> String {
    let Some(v) = v else { return "—".to_owned() };
    match time::OffsetDateTime::parse(&v, &time::format_description::well_known::Rfc3339) {
        Ok(t) => {
            let t = t.to_offset(time::UtcOffset::UTC);
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02} UTC",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute()
            )
        }
        Err(_) => v,
    }
}

/// `GET /ui/assets/{name}`.
pub(super) async fn serve(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, ctype, body)) => {
            let mut res = (*body).into_response();
            res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
            res
        }
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles() {
        let mut env = minijinja::Environment::new();
        for (name, src) in TEMPLATES {
            env.add_template(name, src).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        }
    }

    #[test]
    fn the_vendored_htmx_is_the_recorded_file() {
        use sha2::Digest;
        let record = include_str!("../../ui/assets/VENDORED.md");
        let (_, _, body) = FILES.iter().find(|(n, _, _)| *n == "htmx.min.js").unwrap();
        let digest = hex::encode(sha2::Sha256::digest(body));
        assert!(record.contains(&digest), "htmx.min.js does not match VENDORED.md");
    }

    #[test]
    fn times_are_shown_in_utc_minutes() {
        assert_eq!(when(Some("2027-01-31T10:20:30+01:00".into())), "2027-01-31 09:20 UTC");
        assert_eq!(when(None), "—");
        assert_eq!(when(Some("soon".into())), "soon");
    }
}
