//! Form handling: fields (repeated names allowed), the CSRF check, uploads, and placing the
//! server's problem next to the field it is about.

use axum::extract::{FromRequest, Multipart, Request};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::session::urlencode;
use super::{ApiAnswer, Session, Ui};

/// The fields of a submitted form, in order; a name may repeat (checkboxes).
#[derive(Debug, Default)]
pub(crate) struct Fields {
    pairs: Vec<(String, String)>,
    /// An uploaded file: field name, content type, bytes.
    pub file: Option<(String, String, Vec<u8>)>,
}

impl Fields {
    /// The first value of `name`, trimmed; `None` when absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim()).filter(|v| !v.is_empty())
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }

    /// Adds a field (tests build forms with it).
    #[cfg(test)]
    pub fn push(&mut self, name: &str, value: &str) {
        self.pairs.push((name.to_owned(), value.to_owned()));
    }

    /// The submitted values as a JSON object, to fill the form again after a refusal.
    pub fn echo(&self) -> Value {
        let mut m = Map::new();
        for (k, v) in &self.pairs {
            if k != "csrf" {
                m.entry(k.clone()).or_insert_with(|| Value::String(v.clone()));
            }
        }
        Value::Object(m)
    }

    /// Checks the session's CSRF token; the refusal is a page.
    pub fn check_csrf(&self, ui: &Ui, s: &Session) -> Result<(), Response> {
        s.check_csrf(self.get("csrf")).map_err(|e| {
            ui.render(
                Some(s),
                "error.html",
                json!({"title": "Refused", "status": 403, "code": e.code.as_str(),
                    "detail": e.detail}),
                StatusCode::FORBIDDEN,
            )
        })
    }
}

/// Largest uploaded file (a logo); the REST API refuses more than 256 KiB decoded.
pub(crate) const MAX_UPLOAD: usize = 256 * 1024;

impl<S: Send + Sync> FromRequest<S> for Fields {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        let multipart = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("multipart/form-data"));
        let bad = |d: &str| {
            axum::response::IntoResponse::into_response((StatusCode::BAD_REQUEST, d.to_owned()))
        };
        if !multipart {
            let axum::Form(pairs) = axum::Form::<Vec<(String, String)>>::from_request(req, state)
                .await
                .map_err(|_| bad("the form could not be read"))?;
            return Ok(Self { pairs, file: None });
        }
        let mut mp = Multipart::from_request(req, state)
            .await
            .map_err(|_| bad("the form could not be read"))?;
        let mut out = Fields::default();
        while let Some(field) =
            mp.next_field().await.map_err(|_| bad("the form could not be read"))?
        {
            let name = field.name().unwrap_or_default().to_owned();
            // Only the form's one file field, `logo`, is read; any other file is skipped.
            if field.file_name().is_some() && name != "logo" {
                continue;
            }
            if field.file_name().is_some() {
                let ctype = field.content_type().unwrap_or_default().to_owned();
                let mut bytes = Vec::new();
                let mut field = field;
                while let Some(chunk) =
                    field.chunk().await.map_err(|_| bad("the upload could not be read"))?
                {
                    if bytes.len() + chunk.len() > MAX_UPLOAD {
                        // Kept as a marker: the handler says which field was too large.
                        bytes.clear();
                        out.file = Some((name.clone(), "too-large".into(), Vec::new()));
                        break;
                    }
                    bytes.extend_from_slice(&chunk);
                }
                if !bytes.is_empty() && out.file.is_none() {
                    out.file = Some((name, ctype, bytes));
                }
            } else {
                let v = field.text().await.map_err(|_| bad("the form could not be read"))?;
                out.pairs.push((name, v));
            }
        }
        Ok(out)
    }
}

/// Whether a refusal is about what the form said (shown on the form) rather than about who
/// sent it or the server (shown as a refusal page): a 400, 409 or 422, or a code the form
/// places on a field (a key asking for more than its creator holds is 403, and fixable).
pub(crate) fn is_field_problem(answer: &ApiAnswer, by_code: &[(&str, &str)]) -> bool {
    matches!(answer.status.as_u16(), 400 | 409 | 422)
        || by_code.iter().any(|(code, _)| *code == answer.code())
}

/// Where a refusal goes on a form: the field its code (or the JSON path in its detail) is
/// about, else the form as a whole (key `_form`).
pub(crate) fn place_error(answer: &ApiAnswer, by_code: &[(&str, &str)]) -> Value {
    let detail = answer.detail();
    let field = by_code
        .iter()
        .find(|(code, _)| *code == answer.code())
        .map(|(_, f)| (*f).to_owned())
        .or_else(|| {
            // serde's "… at `field`" (see extract::parse_json).
            let start = detail.rfind(" at `")? + 5;
            let rest = &detail[start..];
            let end = rest.find('`')?;
            let path = &rest[..end];
            let first = path.split(['.', '[']).next().unwrap_or(path);
            by_code.iter().find(|(_, f)| *f == first).map(|(_, f)| (*f).to_owned())
        })
        .unwrap_or_else(|| "_form".to_owned());
    let mut m = Map::new();
    m.insert(field, Value::String(detail));
    Value::Object(m)
}

/// The query string a list page passes on to the REST API: only the filters it knows.
pub(crate) fn pass_query(raw: Option<&str>, allowed: &[&str]) -> (String, Value) {
    let pairs: Vec<(String, String)> = raw.and_then(serde_urlencoded_pairs).unwrap_or_default();
    let mut kept = Vec::new();
    let mut echo = Map::new();
    for (k, v) in pairs {
        if allowed.contains(&k.as_str()) && !v.trim().is_empty() {
            kept.push(format!("{}={}", k, urlencode(v.trim())));
            echo.insert(k, Value::String(v.trim().to_owned()));
        }
    }
    (kept.join("&"), Value::Object(echo))
}

fn serde_urlencoded_pairs(q: &str) -> Option<Vec<(String, String)>> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&format!("/?{q}").parse().ok()?)
        .ok()
        .map(|axum::extract::Query(v)| v)
}

/// The link to the next page: this page's filters and the answer's cursor.
pub(crate) fn next_url(base: &str, query: &str, answer: &Value) -> Option<String> {
    let cursor = answer.get("next_cursor").and_then(Value::as_str)?;
    let q: Vec<&str> =
        query.split('&').filter(|p| !p.is_empty() && !p.starts_with("cursor=")).collect();
    let mut q = q.join("&");
    if !q.is_empty() {
        q.push('&');
    }
    Some(format!("{base}?{q}cursor={}", urlencode(cursor)))
}

/// Fixed messages after a change (the query names one; nothing of it is echoed).
pub(crate) fn flash(q: &str) -> Option<&'static str> {
    let done = q.split('&').find_map(|p| p.strip_prefix("done="))?;
    Some(match done {
        "revoked" => "The key was revoked.",
        "deleted" => "The provider was deleted.",
        "saved" => "Saved.",
        "reloaded" => "The plugins were reloaded.",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, code: &str, detail: &str) -> ApiAnswer {
        ApiAnswer {
            status: StatusCode::from_u16(status).unwrap(),
            body: json!({"code": code, "detail": detail}),
            headers: Default::default(),
            raw: Default::default(),
        }
    }

    #[test]
    fn list_pages_pass_on_only_their_filters_encoded() {
        let (q, echo) = pass_query(
            Some("status=active&limit=100000&q=a%26b%3Dc&cursor=xyz&evil=1&profile="),
            &["status", "q", "cursor", "profile"],
        );
        // `limit` and unknown names never reach the API; values cannot add parameters.
        assert_eq!(q, "status=active&q=a%26b%3Dc&cursor=xyz");
        assert_eq!(echo, json!({"status": "active", "q": "a&b=c", "cursor": "xyz"}));
        assert_eq!(pass_query(None, &["q"]).0, "");
    }

    #[test]
    fn the_next_page_link_keeps_the_filters_and_takes_the_new_cursor() {
        let next = next_url("/ui/x", "status=active&cursor=old", &json!({"next_cursor": "n/1+"}));
        assert_eq!(next.as_deref(), Some("/ui/x?status=active&cursor=n%2F1%2B"));
        assert_eq!(
            next_url("/ui/x", "", &json!({"next_cursor": "c"})).as_deref(),
            Some("/ui/x?cursor=c")
        );
        assert_eq!(next_url("/ui/x", "q=a", &json!({"next_cursor": null})), None);
    }

    #[test]
    fn a_refusal_lands_on_its_field_or_on_the_form() {
        let fields = &[("invalid_name", "name"), ("-", "rate_limit")];
        assert_eq!(
            place_error(&answer(400, "invalid_name", "bad name"), fields),
            json!({"name": "bad name"})
        );
        let serde = answer(
            400,
            "invalid_json",
            "invalid type: string, expected u32 at `rate_limit.requests`",
        );
        assert_eq!(
            place_error(&serde, fields)["rate_limit"].as_str(),
            Some(serde.detail().as_str())
        );
        assert_eq!(place_error(&answer(409, "conflict", "x"), fields), json!({"_form": "x"}));
        assert!(is_field_problem(&answer(409, "conflict", "x"), fields));
        assert!(is_field_problem(&answer(403, "invalid_name", "x"), fields));
        assert!(!is_field_problem(&answer(403, "permission_denied", "x"), fields));
    }

    #[test]
    fn flash_messages_come_from_a_fixed_list() {
        assert_eq!(flash("done=revoked"), Some("The key was revoked."));
        assert_eq!(flash("done=%3Cscript%3E"), None);
        assert_eq!(flash("x=1"), None);
    }
}
