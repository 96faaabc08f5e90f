//! The JSON objects of RFC 8555 §7.1 as clients see them: URLs filled in from the request's
//! base, times in RFC 3339, problems with their full error type.

use serde_json::{Value, json};
use sigil_core::acme::Urls;
use sigil_core::acme::model::{
    AcmeAccount, AcmeAuthz, AcmeOrder, AcmeProblem, Challenge, OrderStatus,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn at(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// A problem inside an order or challenge.
pub fn problem(p: &AcmeProblem) -> Value {
    let mut v = serde_json::to_value(p).unwrap_or_default();
    v["type"] = json!(format!("{}{}", super::ERROR_NS, p.kind));
    if let Some(subs) = v.get_mut("subproblems").and_then(|s| s.as_array_mut()) {
        for (s, p) in subs.iter_mut().zip(&p.subproblems) {
            s["type"] = json!(format!("{}{}", super::ERROR_NS, p.kind));
        }
    }
    v
}

/// An account object.
pub fn account(a: &AcmeAccount, urls: &Urls) -> Value {
    json!({
        "status": a.status.as_str(),
        "contact": a.contact,
        "termsOfServiceAgreed": a.terms_agreed,
        "orders": urls.orders(a.id),
    })
}

/// An order object.
pub fn order(o: &AcmeOrder, urls: &Urls) -> Value {
    let mut v = json!({
        "status": o.status.as_str(),
        "expires": at(o.expires),
        "identifiers": o.identifiers,
        "authorizations": o.authorizations.iter().map(|a| urls.authz(*a)).collect::<Vec<_>>(),
        "finalize": urls.finalize(o.id),
    });
    if o.status == OrderStatus::Valid
        && let Some(c) = o.certificate_id
    {
        v["certificate"] = json!(urls.certificate(c));
    }
    if let Some(e) = &o.error {
        v["error"] = problem(e);
    }
    if let Some(r) = &o.replaces {
        v["replaces"] = json!(r);
    }
    v
}

/// A challenge object.
pub fn challenge(c: &Challenge, authz: uuid::Uuid, urls: &Urls) -> Value {
    let mut v = json!({
        "type": c.kind.as_str(),
        "url": urls.challenge(authz, c.kind),
        "status": c.status,
        "token": c.token,
    });
    if let Some(t) = c.validated {
        v["validated"] = json!(at(t));
    }
    if let Some(e) = &c.error {
        v["error"] = problem(e);
    }
    v
}

/// An authorization object.
pub fn authz(a: &AcmeAuthz, urls: &Urls) -> Value {
    let mut v = json!({
        "identifier": a.identifier,
        "status": a.status.as_str(),
        "expires": at(a.expires),
        "challenges": a.challenges.iter().map(|c| challenge(c, a.id, urls)).collect::<Vec<_>>(),
    });
    if a.wildcard {
        v["wildcard"] = json!(true);
    }
    v
}
