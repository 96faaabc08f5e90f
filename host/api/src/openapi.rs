//! The last pass over the OpenAPI document, so that it passes a validator and reads well in
//! generated clients: unique operation ids (`<tag>_<handler>`), a summary and a description on
//! every operation, a description on every response, every tag declared, the mutual-TLS scheme,
//! and examples on the main request bodies (the fixed shapes of ARCHITECTURE §5a). Which
//! credentials an operation takes is set when the document is served, from its exposure rule
//! ([`set_security`]).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use utoipa::openapi::security::{SecurityRequirement, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{OpenApi, RefOr};

/// Tags the handlers use that the document's header does not describe.
const MORE_TAGS: &[(&str, &str)] = &[
    (
        "acme",
        "ACME (RFC 8555) per ACME-enabled profile, and its administration (binding keys, accounts)",
    ),
    ("devices", "Devices and tokens: lifecycle, history, production metadata"),
    ("organizations", "Organizations, divisions and registration offices"),
    ("people", "Personal data, extended attributes and custom fields"),
    ("reports", "Inventory reports"),
    ("requests", "Enrolment requests: create, enrich, approve, reject"),
    ("self-service", "Self-service for a token holder: PIN reset, renewal, suspension"),
];

/// A response's description when its handler gave none.
fn default_description(status: &str) -> &'static str {
    match status {
        "200" => "Success",
        "201" => "Created",
        "202" => "Accepted",
        "204" => "Done; no content",
        "301" | "302" | "303" | "307" | "308" => "Redirect",
        "304" => "Not modified",
        "400" => "Invalid parameter, body or cursor",
        "401" => "Missing, unknown, expired or revoked credential",
        "403" => "Permission denied or address not allowed",
        "404" => "Not found, or not exposed",
        "405" => "Method not allowed",
        "409" => "Conflicts with the object's current state",
        "410" => "Gone",
        "412" => "Precondition failed",
        "413" => "Body larger than server.body_limit_bytes",
        "415" => "Unsupported media type",
        "422" => "Refused by a validation rule",
        "429" => "Rate limit exceeded; see Retry-After",
        "500" => "Internal error; nothing was changed",
        "502" => "A CA back end or plugin failed",
        "503" => "Unavailable or timed out; nothing was changed",
        _ => "See the problem detail",
    }
}

/// Examples of the main request bodies, by (method, path).
fn examples() -> BTreeMap<(&'static str, &'static str), serde_json::Value> {
    BTreeMap::from([
        (
            ("POST", "/api/v1/api-keys"),
            json!({
            "name": "hr-sync", "description": "Nightly HR import",
            "expires": "30d", "permissions": ["certificates:read", "certificate:revoke"],
            "rate_limit": {"requests": 100, "per": "minute"},
            "ip_whitelist": ["127.0.0.1", "10.0.0.0/8"]}),
        ),
        (
            ("POST", "/api/v1/certificates"),
            json!({
            "csr": "-----BEGIN CERTIFICATE REQUEST-----\nMIIB…\n-----END CERTIFICATE REQUEST-----\n",
            "profile": "tls-client"}),
        ),
        (("POST", "/api/v1/certificates/{id}/revoke"), json!({"reason": "keyCompromise"})),
        (("POST", "/api/v1/certificates/{id}/suspend"), json!({"reason": "certificateHold"})),
        (
            ("POST", "/api/v1/signers"),
            json!({"username": "alice", "password": "correct horse battery staple"}),
        ),
        (
            ("POST", "/api/v1/signing-credentials"),
            json!({
            "signer": "alice", "key_algorithm": "p256", "pin": "123456", "scal": 1, "multisign": 10}),
        ),
    ])
}

fn snake(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
        .collect()
}

/// Sets what `op` takes as credentials from its exposure rule's `auth`: an API key (bearer or
/// `X-API-Key`), a client certificate bound to one, either, or nothing new (operations whose
/// document names no API key, such as CSC's own, keep theirs).
pub fn set_security(op: &mut utoipa::openapi::path::Operation, auth: crate::exposure::AuthMode) {
    use crate::exposure::AuthMode;
    let Some(sec) = op.security.as_mut() else { return };
    let takes_key =
        serde_json::to_value(&*sec).map(|v| v.to_string().contains("\"api_key\"")).unwrap_or(false);
    if !takes_key {
        return;
    }
    let req = |name: &str| SecurityRequirement::new(name, Vec::<String>::new());
    *sec = match auth {
        AuthMode::ApiKey => vec![req("bearer"), req("api_key")],
        AuthMode::Mtls => vec![req("mtls")],
        AuthMode::Either => vec![req("bearer"), req("api_key"), req("mtls")],
        AuthMode::None => Vec::new(),
    };
}

/// Applies the pass to `doc`.
pub fn finish(doc: &mut OpenApi) {
    let c = doc.components.get_or_insert_with(Default::default);
    c.add_security_scheme(
        "mtls",
        SecurityScheme::MutualTls {
            description: Some(
                "A client certificate bound to an API key (its SHA-256 fingerprint), where the \
                 endpoint's exposure rule allows `mtls` or `either`"
                    .into(),
            ),
            deprecated: None,
            extensions: None,
        },
    );
    let tags = doc.tags.get_or_insert_with(Vec::new);
    for (name, description) in MORE_TAGS {
        if !tags.iter().any(|t| t.name == *name) {
            tags.push(TagBuilder::new().name(*name).description(Some(*description)).build());
        }
    }
    let examples = examples();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, op) in crate::operations_mut(item) {
            let Some(op) = op else { continue };
            let method = method.as_str();
            let tag = op.tags.as_ref().and_then(|t| t.first()).cloned().unwrap_or_default();
            let handler = op.operation_id.clone().unwrap_or_else(|| snake(path));
            let mut id = if tag.is_empty() || handler.starts_with(&snake(&tag)) {
                handler.clone()
            } else {
                format!("{}_{handler}", snake(&tag))
            };
            if seen.contains(&id) {
                id = format!("{id}_{}", method.to_ascii_lowercase());
            }
            let mut n = 2;
            while seen.contains(&id) {
                id = format!("{id}_{n}");
                n += 1;
            }
            seen.insert(id.clone());
            op.operation_id = Some(id);
            let summary = op
                .summary
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| format!("{method} {path}"));
            op.summary = Some(summary.clone());
            if op.description.as_deref().is_none_or(str::is_empty) {
                op.description = Some(summary);
            }
            for (status, resp) in op.responses.responses.iter_mut() {
                if let RefOr::T(r) = resp
                    && r.description.is_empty()
                {
                    r.description = default_description(status).to_owned();
                }
            }
            if let Some(example) = examples.get(&(method, path.as_str()))
                && let Some(RefOr::T(body)) = op.request_body.as_mut()
                && let Some(RefOr::T(content)) = body.content.get_mut("application/json")
            {
                content.example = Some(example.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> OpenApi {
        crate::routes().1
    }

    #[test]
    fn every_operation_has_a_unique_id_a_summary_and_a_description() {
        let doc = doc();
        let mut ids = BTreeSet::new();
        let mut count = 0;
        for (path, item) in &doc.paths.paths {
            for op in
                [&item.get, &item.post, &item.put, &item.patch, &item.delete].into_iter().flatten()
            {
                count += 1;
                let id = op.operation_id.clone().unwrap();
                assert!(ids.insert(id.clone()), "{path}: operationId {id} is used twice");
                assert!(op.summary.as_deref().is_some_and(|s| !s.is_empty()), "{path}: no summary");
                assert!(
                    op.description.as_deref().is_some_and(|s| !s.is_empty()),
                    "{path}: no description"
                );
                for (status, r) in &op.responses.responses {
                    if let RefOr::T(r) = r {
                        assert!(!r.description.is_empty(), "{path} {status}: no description");
                    }
                }
            }
        }
        assert!(count > 100, "{count} operations");
    }

    #[test]
    fn every_tag_an_operation_uses_is_declared() {
        let doc = doc();
        let declared: BTreeSet<String> =
            doc.tags.iter().flatten().map(|t| t.name.clone()).collect();
        for (path, item) in &doc.paths.paths {
            for op in
                [&item.get, &item.post, &item.put, &item.patch, &item.delete].into_iter().flatten()
            {
                for t in op.tags.iter().flatten() {
                    assert!(declared.contains(t), "{path}: tag {t} is not declared");
                }
            }
        }
    }

    #[test]
    fn the_main_request_bodies_carry_examples_and_the_mtls_scheme_is_declared() {
        let doc = serde_json::to_value(doc()).unwrap();
        let body =
            &doc["paths"]["/api/v1/api-keys"]["post"]["requestBody"]["content"]["application/json"];
        assert_eq!(body["example"]["expires"], "30d", "{body}");
        let issue = &doc["paths"]["/api/v1/certificates"]["post"];
        assert_eq!(
            issue["requestBody"]["content"]["application/json"]["example"]["profile"],
            "tls-client"
        );
        assert_eq!(doc["components"]["securitySchemes"]["mtls"]["type"], "mutualTLS");
    }

    #[test]
    fn an_operation_takes_the_credentials_its_exposure_rule_names() {
        use crate::exposure::AuthMode;
        let doc = doc();
        let issue = |auth: AuthMode| {
            let mut op = doc.paths.paths["/api/v1/certificates"].post.clone().unwrap();
            set_security(&mut op, auth);
            serde_json::to_string(&op.security).unwrap()
        };
        assert!(!issue(AuthMode::ApiKey).contains("mtls"), "{}", issue(AuthMode::ApiKey));
        assert!(issue(AuthMode::ApiKey).contains("api_key"));
        let mtls = issue(AuthMode::Mtls);
        assert!(mtls.contains("mtls") && !mtls.contains("api_key"), "{mtls}");
        let either = issue(AuthMode::Either);
        assert!(either.contains("mtls") && either.contains("bearer"), "{either}");
        // CSC's own bearer tokens are not API keys: their operations keep what they declare.
        let mut sign = doc.paths.paths["/csc/v2/signatures/signHash"].post.clone().unwrap();
        let before = serde_json::to_string(&sign.security).unwrap();
        set_security(&mut sign, AuthMode::None);
        assert_eq!(serde_json::to_string(&sign.security).unwrap(), before);
    }
}
