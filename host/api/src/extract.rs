//! Extractors: strict JSON bodies, query strings, and the authorization step that yields a
//! capability.

use sigil_core::ErrorCode;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use sigil_core::AuthFailure;
use sigil_core::access::authz::{Capability, Permission, Principal};

use crate::error::ApiError;

/// A JSON body that must be `application/json`, fit the body limit, and contain only known
/// fields; errors name the offending field.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json_type = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                let ct = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
                ct == "application/json" || ct.ends_with("+json")
            });
        if !json_type {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                "the body must be application/json",
            ));
        }
        let bytes = body_bytes(req, state).await?;
        // Every request body of this API is a JSON object; serde would also build a struct
        // from an array, which no client means.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidJson,
                "the body must be a JSON object",
            ));
        }
        parse_json(&bytes).map(Json)
    }
}

/// 413 `body_too_large`.
pub(crate) fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::BodyTooLarge,
        "the request body exceeds the size limit",
    )
}

/// The whole body of `req`, under the server's body limit (413 `body_too_large`).
pub(crate) async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::bad_request(ErrorCode::InvalidBody, "the request body could not be read")
        }
    })
}

/// Parses JSON, reporting the path of the field that failed; nothing but whitespace may follow
/// the value. A body that parses is read once, without the path tracking (which cost every
/// request a few allocations); one that does not is read again with it, for the error. Both
/// readings accept exactly the same texts.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    parse_json_plain(bytes).or_else(|_| parse_json_with_path(bytes))
}

/// The value of `bytes`, without the path of a failure.
fn parse_json_plain<T: DeserializeOwned>(bytes: &[u8]) -> serde_json::Result<T> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = T::deserialize(&mut de)?;
    de.end().map(|()| v)
}

/// [`parse_json`] with the failing field's path in the error.
fn parse_json_with_path<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let v = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = inner.to_string();
        let code = if msg.starts_with("unknown field") {
            ErrorCode::UnknownField
        } else {
            ErrorCode::InvalidJson
        };
        let at =
            if path == "." || path.is_empty() { String::new() } else { format!(" at `{path}`") };
        ApiError::bad_request(code, format!("{msg}{at}"))
    })?;
    // "trailing characters at line 1 column N"
    de.end().map_err(|e| ApiError::bad_request(ErrorCode::InvalidJson, e.to_string()))?;
    Ok(v)
}

/// A query string parsed strictly into `T`.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        serde_urlencoded_strict(q).map(Query)
    }
}

fn serde_urlencoded_strict<T: DeserializeOwned>(q: &str) -> Result<T, ApiError> {
    axum::extract::Query::<T>::try_from_uri(&format!("/?{q}").parse().map_err(|_| {
        ApiError::bad_request(ErrorCode::InvalidQuery, "the query string is malformed")
    })?)
    .map(|axum::extract::Query(v)| v)
    .map_err(|e| ApiError::bad_request(ErrorCode::InvalidQuery, e.body_text()))
}

/// The authenticated principal, put into the request by the authentication middleware.
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<Principal>);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| AuthFailure::Missing.into())
    }
}

/// The capability for permission `P`: the handler's proof that the caller may do this.
#[derive(Debug)]
pub struct Authorized<P: Permission>(pub Capability<P>);

impl<S: Send + Sync, P: Permission> FromRequestParts<S> for Authorized<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Caller(p) = Caller::from_request_parts(parts, state).await?;
        Ok(Self(p.authorize::<P>()?))
    }
}

/// An optional JSON body: empty (or only whitespace) means `T::default()`.
pub(crate) fn optional_body<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse_json(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        name: String,
        #[serde(default)]
        inner: Vec<Inner>,
    }

    #[derive(Debug, PartialEq, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        n: u32,
    }

    #[test]
    fn a_body_is_read_alike_with_and_without_the_path_and_its_errors_name_the_path() {
        let cases = [
            r#"{"name": "a"}"#,
            r#"{"name": "a", "inner": [{"n": 1}, {"n": 2}]}"#,
            r#"{"name": "a"}   "#,
            "\n{\"name\": \"a\"}\r\n",
            r#"{"name": "a", "inner": [{"n": 1}, {"n": "two"}]}"#,
            r#"{"name": "a", "inner": [{"n": 1, "m": 2}]}"#,
            r#"{"name": 5}"#,
            r#"{"name": "a", "colour": 1}"#,
            r#"{"name": "#,
            r#"{"name": "a"} trailing"#,
            r#"{"name": "a"}{"name": "b"}"#,
            "",
            "[]",
        ];
        let (mut accepted, mut refused) = (0, 0);
        for body in cases {
            // The reading without the path must take and leave the very bodies the reading with
            // it does (parse_json answers from the first, and errors from the second).
            let plain = parse_json_plain::<Outer>(body.as_bytes());
            let tracked = parse_json_with_path::<Outer>(body.as_bytes());
            match (plain, tracked) {
                (Ok(a), Ok(b)) => {
                    accepted += 1;
                    assert_eq!(a, b, "{body}");
                    assert_eq!(parse_json::<Outer>(body.as_bytes()).unwrap(), a, "{body}");
                }
                (Err(_), Err(b)) => {
                    refused += 1;
                    let a = parse_json::<Outer>(body.as_bytes()).unwrap_err();
                    assert_eq!((a.code, &a.detail), (b.code, &b.detail), "{body}");
                }
                (a, b) => panic!("{body}: {a:?} against {b:?}"),
            }
        }
        assert_eq!((accepted, refused), (4, 9));
        let e = parse_json::<Outer>(br#"{"name": "a", "inner": [{"n": 1}, {"n": "two"}]}"#)
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidJson);
        assert!(e.detail.contains("at `inner[1].n`"), "{}", e.detail);
        let e = parse_json::<Outer>(br#"{"name": "a", "colour": 1}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnknownField);
        assert!(e.detail.contains("colour"), "{}", e.detail);
        // Text after the value is refused, not ignored.
        let e = parse_json::<Outer>(br#"{"name": "a"} trailing"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidJson);
        assert!(e.detail.contains("trailing characters"), "{}", e.detail);
    }
}
