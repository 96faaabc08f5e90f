//! The authorization matrix: every route of the router, tried by every kind of caller on
//! objects of office A and office B, on both backends.
//!
//! Callers: the unrestricted administrator; an operator scoped to office A and one scoped to
//! office B (each with every permission, so only scope decides); a token holder's key (a
//! person of office A); a key minted by operator A's key; and an endpoint plugin granted every
//! permission, called by operator A's key (`test-proxy`, which forwards to any route). The
//! table below states the rule of each route; a route of the router without a row, or a row
//! for a route that no longer exists, fails the test. Besides the expected status, no answer
//! to an office-A caller may contain the id of any office-B object (and the reverse), and no
//! answer may be a server error.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value, json};
use sigil_tests::{Options, TestServer, backends, json, openssl_csr};

/// Who may do what on a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// An object that belongs to an office: each operator reaches its own office's only (404
    /// for the other's); the administrator reaches both; a token holder's key reaches none.
    Scoped(Target),
    /// A collection or a shared object any permission holder may use (lists are filtered by
    /// scope, which the foreign-id check proves); a token holder's key may not.
    Open(Target),
    /// Shared configuration or the audit trail: only a caller who sees every office.
    Unrestricted(Target),
    /// Self-service on an object: the token holder reaches its own (404 for another's); nobody
    /// else is a token holder (403).
    SelfScoped(Target),
    /// Self-service with no object: the token holder only.
    SelfOnly,
    /// Every caller (the plugin entry point; what a plugin then does is the `Plugin` column).
    Any,
    /// Not an API-key route: public (health, CRL, OCSP, metrics) or CSC's own authentication
    /// (tests/it/csc.rs and csc_login.rs cover those).
    Public,
}

/// What fills a route's `{id}` (or `{name}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    None,
    ApiKey,
    Cert,
    Device,
    Person,
    Request,
    Signer,
    Credential,
    Operator,
    Office,
    Division,
    Organization,
    Provider,
    Field,
    Profile,
    Role,
    EabKey,
    AcmeAccount,
}

use Rule::*;
use Target as T;

/// The rule of every route: (method, path template, rule, body).
const MATRIX: &[(&str, &str, Rule, &str)] = &[
    ("GET", "/openapi.json", Public, ""),
    ("GET", "/api/v1/api-keys", Open(T::None), ""),
    ("POST", "/api/v1/api-keys", Open(T::None), "{}"),
    ("DELETE", "/api/v1/api-keys/{id}", Scoped(T::ApiKey), ""),
    ("GET", "/api/v1/api-keys/{id}", Scoped(T::ApiKey), ""),
    ("PATCH", "/api/v1/api-keys/{id}", Scoped(T::ApiKey), r#"{"description":"x"}"#),
    ("POST", "/api/v1/api-keys/{id}/rotate", Scoped(T::ApiKey), "{}"),
    ("GET", "/api/v1/audit", Unrestricted(T::None), ""),
    ("GET", "/api/v1/audit/export", Unrestricted(T::None), ""),
    ("GET", "/api/v1/audit/objects/{object_type}/{object_id}", Unrestricted(T::Cert), ""),
    ("GET", "/api/v1/audit/stream", Unrestricted(T::None), ""),
    ("GET", "/api/v1/audit/verify", Open(T::None), ""),
    ("GET", "/api/v1/ca-backends", Open(T::None), ""),
    ("GET", "/api/v1/certificates", Open(T::None), ""),
    ("POST", "/api/v1/certificates", Open(T::None), "{}"),
    ("POST", "/api/v1/certificates/batch", Open(T::None), "{}"),
    ("GET", "/api/v1/certificates/{id}", Scoped(T::Cert), ""),
    ("PATCH", "/api/v1/certificates/{id}", Scoped(T::Cert), r#"{"metadata":{"k":"v"}}"#),
    ("GET", "/api/v1/certificates/{id}/download", Scoped(T::Cert), ""),
    ("POST", "/api/v1/certificates/{id}/reactivate", Scoped(T::Cert), "{}"),
    ("POST", "/api/v1/certificates/{id}/renew", Scoped(T::Cert), "{}"),
    ("POST", "/api/v1/certificates/{id}/revoke", Scoped(T::Cert), r#"{"reason":"superseded"}"#),
    ("POST", "/api/v1/certificates/{id}/suspend", Scoped(T::Cert), "{}"),
    ("GET", "/api/v1/acme/eab-keys", Unrestricted(T::None), ""),
    ("POST", "/api/v1/acme/eab-keys", Unrestricted(T::None), r#"{"name":"matrix"}"#),
    ("DELETE", "/api/v1/acme/eab-keys/{id}", Unrestricted(T::EabKey), ""),
    ("GET", "/api/v1/acme/accounts", Unrestricted(T::None), ""),
    ("GET", "/api/v1/acme/accounts/{id}", Unrestricted(T::AcmeAccount), ""),
    ("POST", "/api/v1/acme/accounts/{id}/deactivate", Unrestricted(T::AcmeAccount), ""),
    ("GET", "/api/v1/csc-providers", Open(T::None), ""),
    ("POST", "/api/v1/csc-providers", Unrestricted(T::None), "{}"),
    ("DELETE", "/api/v1/csc-providers/{id}", Unrestricted(T::Provider), ""),
    ("GET", "/api/v1/csc-providers/{id}", Open(T::Provider), ""),
    ("PATCH", "/api/v1/csc-providers/{id}", Unrestricted(T::Provider), r#"{"description":"x"}"#),
    ("GET", "/api/v1/custom-fields", Open(T::None), ""),
    ("POST", "/api/v1/custom-fields/validate", Open(T::None), r#"{"attributes":{}}"#),
    ("DELETE", "/api/v1/custom-fields/{name}", Unrestricted(T::Field), ""),
    ("GET", "/api/v1/custom-fields/{name}", Open(T::Field), ""),
    ("PUT", "/api/v1/custom-fields/{name}", Unrestricted(T::Field), r#"{"type":"string"}"#),
    ("GET", "/api/v1/devices", Open(T::None), ""),
    ("POST", "/api/v1/devices", Open(T::None), "{}"),
    ("GET", "/api/v1/devices/{id}", Scoped(T::Device), ""),
    ("PATCH", "/api/v1/devices/{id}", Scoped(T::Device), r#"{"metadata":{"k":"v"}}"#),
    ("POST", "/api/v1/devices/{id}/activate", Scoped(T::Device), "{}"),
    (
        "POST",
        "/api/v1/devices/{id}/certificates",
        Scoped(T::Device),
        r#"{"certificate_id":"{cert2}"}"#,
    ),
    ("POST", "/api/v1/devices/{id}/damaged", Scoped(T::Device), r#"{"reason":"x"}"#),
    ("POST", "/api/v1/devices/{id}/expire", Scoped(T::Device), r#"{"reason":"x"}"#),
    ("GET", "/api/v1/devices/{id}/history", Scoped(T::Device), ""),
    ("POST", "/api/v1/devices/{id}/lost", Scoped(T::Device), r#"{"reason":"x"}"#),
    ("POST", "/api/v1/devices/{id}/pin-reset", Scoped(T::Device), "{}"),
    (
        "PATCH",
        "/api/v1/devices/{id}/pin-reset-setup",
        Scoped(T::Device),
        r#"{"unlock_code":"12345678"}"#,
    ),
    ("POST", "/api/v1/devices/{id}/reactivate", Scoped(T::Device), r#"{"reason":"x"}"#),
    ("POST", "/api/v1/devices/{id}/revoke", Scoped(T::Device), r#"{"reason":"x"}"#),
    ("GET", "/api/v1/devices/{id}/state", Scoped(T::Device), ""),
    ("POST", "/api/v1/devices/{id}/suspend", Scoped(T::Device), r#"{"reason":"x"}"#),
    ("POST", "/api/v1/devices/{id}/terminate", Scoped(T::Device), r#"{"reason":"x"}"#),
    ("GET", "/api/v1/divisions", Open(T::None), ""),
    (
        "POST",
        "/api/v1/divisions",
        Unrestricted(T::None),
        r#"{"name":"New","organization_id":"{org}"}"#,
    ),
    ("GET", "/api/v1/divisions/{id}", Scoped(T::Division), ""),
    ("PATCH", "/api/v1/divisions/{id}", Unrestricted(T::Division), r#"{"description":"x"}"#),
    ("DELETE", "/api/v1/exposure", Unrestricted(T::None), ""),
    ("GET", "/api/v1/exposure", Open(T::None), ""),
    ("PUT", "/api/v1/exposure", Unrestricted(T::None), "{}"),
    ("GET", "/api/v1/ext/{plugin}/{path}", Any, ""),
    ("POST", "/api/v1/ext/{plugin}/{path}", Any, "{}"),
    ("GET", "/api/v1/identity-sources", Open(T::None), ""),
    ("POST", "/api/v1/identity-sources/lookup", Open(T::None), "{}"),
    ("GET", "/api/v1/offices", Open(T::None), ""),
    (
        "POST",
        "/api/v1/offices",
        Unrestricted(T::None),
        r#"{"division_id":"{division}","code":"NEW","name":"New"}"#,
    ),
    ("GET", "/api/v1/offices/{id}", Scoped(T::Office), ""),
    ("PATCH", "/api/v1/offices/{id}", Scoped(T::Office), r#"{"metadata":{"k":"v"}}"#),
    ("GET", "/api/v1/operators", Open(T::None), ""),
    ("POST", "/api/v1/operators", Open(T::None), "{}"),
    ("POST", "/api/v1/operators/import", Open(T::None), "{}"),
    ("GET", "/api/v1/operators/{id}", Scoped(T::Operator), ""),
    ("PATCH", "/api/v1/operators/{id}", Scoped(T::Operator), r#"{"display_name":"x"}"#),
    ("POST", "/api/v1/operators/{id}/disable", Scoped(T::Operator), "{}"),
    ("POST", "/api/v1/operators/{id}/enable", Scoped(T::Operator), "{}"),
    ("GET", "/api/v1/operators/{id}/scope", Scoped(T::Operator), ""),
    ("GET", "/api/v1/organizations", Open(T::None), ""),
    ("POST", "/api/v1/organizations", Unrestricted(T::None), r#"{"name":"Other"}"#),
    ("GET", "/api/v1/organizations/{id}", Open(T::Organization), ""),
    (
        "PATCH",
        "/api/v1/organizations/{id}",
        Unrestricted(T::Organization),
        r#"{"description":"x"}"#,
    ),
    ("GET", "/api/v1/people", Open(T::None), ""),
    ("POST", "/api/v1/people", Open(T::None), "{}"),
    ("GET", "/api/v1/people/{id}", Scoped(T::Person), ""),
    ("PATCH", "/api/v1/people/{id}", Scoped(T::Person), r#"{"given_name":"Ana"}"#),
    ("POST", "/api/v1/people/{id}/complete", Scoped(T::Person), "{}"),
    ("GET", "/api/v1/permissions", Open(T::None), ""),
    ("GET", "/api/v1/plugins", Open(T::None), ""),
    ("POST", "/api/v1/plugins/reload", Unrestricted(T::None), "{}"),
    ("GET", "/api/v1/profiles", Open(T::None), ""),
    ("POST", "/api/v1/profiles", Unrestricted(T::None), "{}"),
    ("GET", "/api/v1/profiles/{name}", Open(T::Profile), ""),
    ("PUT", "/api/v1/profiles/{name}", Unrestricted(T::Profile), "{}"),
    ("GET", "/api/v1/reports/expiring", Open(T::None), ""),
    ("GET", "/api/v1/requests", Open(T::None), ""),
    ("POST", "/api/v1/requests", Open(T::None), "{}"),
    ("GET", "/api/v1/requests/{id}", Scoped(T::Request), ""),
    ("PATCH", "/api/v1/requests/{id}", Scoped(T::Request), r#"{"metadata":{"k":"v"}}"#),
    ("POST", "/api/v1/requests/{id}/approve", Scoped(T::Request), "{}"),
    ("POST", "/api/v1/requests/{id}/cancel", Scoped(T::Request), "{}"),
    ("POST", "/api/v1/requests/{id}/reject", Scoped(T::Request), "{}"),
    ("GET", "/api/v1/roles", Open(T::None), ""),
    ("POST", "/api/v1/roles", Unrestricted(T::None), "{}"),
    ("DELETE", "/api/v1/roles/{name}", Unrestricted(T::Role), ""),
    ("GET", "/api/v1/roles/{name}", Open(T::Role), ""),
    ("PUT", "/api/v1/roles/{name}", Unrestricted(T::Role), "{}"),
    ("POST", "/api/v1/self/certificates/{id}/renew", SelfScoped(T::Cert), "{}"),
    ("GET", "/api/v1/self/devices", SelfOnly, ""),
    ("POST", "/api/v1/self/devices/{id}/damaged", SelfScoped(T::Device), "{}"),
    ("POST", "/api/v1/self/devices/{id}/lost", SelfScoped(T::Device), "{}"),
    ("POST", "/api/v1/self/devices/{id}/pin-reset", SelfScoped(T::Device), "{}"),
    ("POST", "/api/v1/self/devices/{id}/reactivate", SelfScoped(T::Device), "{}"),
    ("POST", "/api/v1/self/devices/{id}/suspend", SelfScoped(T::Device), "{}"),
    ("POST", "/api/v1/self/virtual-tokens", SelfOnly, "{}"),
    ("GET", "/api/v1/signers", Open(T::None), ""),
    ("POST", "/api/v1/signers", Open(T::None), "{}"),
    ("GET", "/api/v1/signers/{id}", Scoped(T::Signer), ""),
    ("PATCH", "/api/v1/signers/{id}", Scoped(T::Signer), r#"{"description":"x"}"#),
    ("GET", "/api/v1/signing-credentials", Open(T::None), ""),
    ("POST", "/api/v1/signing-credentials", Open(T::None), "{}"),
    ("GET", "/api/v1/signing-credentials/{id}", Scoped(T::Credential), ""),
    ("PATCH", "/api/v1/signing-credentials/{id}", Scoped(T::Credential), r#"{"description":"x"}"#),
    ("GET", "/crl/{file}", Public, ""),
    ("GET", "/ca/{file}", Public, ""),
    // ACME authenticates its own way: every POST is a JWS signed by the account's key (or the
    // new key, for newAccount); tests/it/acme.rs attacks those checks.
    ("GET", "/acme/{profile}/directory", Public, ""),
    ("GET", "/acme/{profile}/new-nonce", Public, ""),
    ("POST", "/acme/{profile}/new-account", Public, ""),
    ("POST", "/acme/{profile}/account/{id}", Public, ""),
    ("POST", "/acme/{profile}/account/{id}/orders", Public, ""),
    ("POST", "/acme/{profile}/key-change", Public, ""),
    ("POST", "/acme/{profile}/new-order", Public, ""),
    ("POST", "/acme/{profile}/order/{id}", Public, ""),
    ("POST", "/acme/{profile}/order/{id}/finalize", Public, ""),
    ("POST", "/acme/{profile}/authz/{id}", Public, ""),
    ("POST", "/acme/{profile}/chall/{authz}/{type}", Public, ""),
    ("POST", "/acme/{profile}/cert/{id}", Public, ""),
    ("POST", "/acme/{profile}/revoke-cert", Public, ""),
    ("GET", "/acme/{profile}/renewal-info/{id}", Public, ""),
    ("POST", "/csc/v1/auth/login", Public, ""),
    ("POST", "/csc/v1/auth/revoke", Public, ""),
    ("POST", "/csc/v1/credentials/authorize", Public, ""),
    ("POST", "/csc/v1/credentials/info", Public, ""),
    ("POST", "/csc/v1/credentials/list", Public, ""),
    ("GET", "/csc/v1/info", Public, ""),
    ("POST", "/csc/v1/info", Public, ""),
    ("POST", "/csc/v1/signatures/signHash", Public, ""),
    ("POST", "/csc/v2/auth/login", Public, ""),
    ("POST", "/csc/v2/auth/revoke", Public, ""),
    ("POST", "/csc/v2/credentials/authorize", Public, ""),
    ("POST", "/csc/v2/credentials/info", Public, ""),
    ("POST", "/csc/v2/credentials/list", Public, ""),
    ("GET", "/csc/v2/info", Public, ""),
    ("POST", "/csc/v2/info", Public, ""),
    ("POST", "/csc/v2/signatures/signHash", Public, ""),
    ("GET", "/health/live", Public, ""),
    ("GET", "/health/ready", Public, ""),
    ("GET", "/metrics", Public, ""),
    ("POST", "/ocsp", Public, ""),
    ("GET", "/ocsp/{request}", Public, ""),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Actor {
    Admin,
    OpA,
    OpB,
    Holder,
    Minted,
    Plugin,
}

const ACTORS: [Actor; 6] =
    [Actor::Admin, Actor::OpA, Actor::OpB, Actor::Holder, Actor::Minted, Actor::Plugin];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    A,
    B,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Allowed,
    NotFound,
    Forbidden,
}

impl Actor {
    /// The office an operator-side actor sees (None: every office, or none).
    fn side(self) -> Option<Side> {
        match self {
            Actor::OpA | Actor::Minted | Actor::Plugin => Some(Side::A),
            Actor::OpB => Some(Side::B),
            Actor::Admin | Actor::Holder => None,
        }
    }
}

fn expect(rule: Rule, actor: Actor, side: Option<Side>) -> Expect {
    use Expect::*;
    match rule {
        Scoped(_) => match (actor, actor.side()) {
            (Actor::Admin, _) => Allowed,
            (Actor::Holder, _) => Forbidden,
            (_, mine) if mine == side => Allowed,
            _ => NotFound,
        },
        Open(_) => {
            if actor == Actor::Holder {
                Forbidden
            } else {
                Allowed
            }
        }
        Unrestricted(_) => {
            if actor == Actor::Admin {
                Allowed
            } else {
                Forbidden
            }
        }
        SelfScoped(_) => match (actor, side) {
            (Actor::Holder, Some(Side::A)) => Allowed,
            (Actor::Holder, _) => NotFound,
            _ => Forbidden,
        },
        SelfOnly => {
            if actor == Actor::Holder {
                Allowed
            } else {
                Forbidden
            }
        }
        Any => Allowed,
        Public => Allowed,
    }
}

/// The objects of one office.
#[derive(Debug, Default, Clone)]
struct Objects {
    office: String,
    division: String,
    person: String,
    cert: String,
    cert2: String,
    device: String,
    request: String,
    signer: String,
    credential: String,
    operator: String,
    api_key: String,
}

impl Objects {
    fn ids(&self) -> Vec<String> {
        vec![
            self.office.clone(),
            self.division.clone(),
            self.person.clone(),
            self.cert.clone(),
            self.cert2.clone(),
            self.device.clone(),
            self.request.clone(),
            self.signer.clone(),
            self.credential.clone(),
            self.operator.clone(),
            self.api_key.clone(),
        ]
    }

    fn target(&self, t: Target) -> Option<&str> {
        Some(match t {
            T::ApiKey => &self.api_key,
            T::Cert => &self.cert,
            T::Device => &self.device,
            T::Person => &self.person,
            T::Request => &self.request,
            T::Signer => &self.signer,
            T::Credential => &self.credential,
            T::Operator => &self.operator,
            T::Office => &self.office,
            T::Division => &self.division,
            _ => return None,
        })
    }
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().or(v["credential_id"].as_str()).unwrap().to_owned()
}

/// Office `code` in division `division`, with a person, two certificates, a device holding the
/// first (held by the person), a pending request, a signer with a credential, and a clerk
/// operator with a key.
async fn office(s: &TestServer, org: &str, code: &str, tmp: &std::path::Path) -> Objects {
    let mut o = Objects::default();
    o.division = id_of(
        &s.create(
            "/api/v1/divisions",
            json!({"name": format!("Div {code}"), "organization_id": org}),
        )
        .await,
    );
    o.office = id_of(
        &s.create(
            "/api/v1/offices",
            json!({"division_id": o.division, "code": code, "name": code}),
        )
        .await,
    );
    o.person = id_of(
        &s.create(
            "/api/v1/people",
            json!({"office_id": o.office, "given_name": "Ana", "family_name": code}),
        )
        .await,
    );
    let cert = |n: &str| {
        let (csr, _) =
            openssl_csr(tmp, &format!("{code}{n}"), "ec:P-256", &format!("/CN={code}{n}"), None);
        json!({"csr": csr, "profile": "tls-client", "office_id": o.office})
    };
    o.cert = id_of(&s.create("/api/v1/certificates", cert("1")).await);
    o.cert2 = id_of(&s.create("/api/v1/certificates", cert("2")).await);
    o.device = id_of(
        &s.create(
            "/api/v1/devices",
            json!({"kind": "smart_card", "serial": format!("SC-{code}"), "office_id": o.office,
                   "holder_id": o.person}),
        )
        .await,
    );
    let (st, b) = json(
        s.admin(Method::POST, &format!("/api/v1/devices/{}/certificates", o.device))
            .json(&json!({"certificate_id": o.cert}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let (st, b) = json(
        s.admin(Method::POST, &format!("/api/v1/devices/{}/activate", o.device))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let (csr, _) = openssl_csr(tmp, &format!("{code}r"), "ec:P-256", &format!("/CN={code}r"), None);
    o.request = id_of(
        &s.create(
            "/api/v1/requests",
            json!({"person_id": o.person, "certificates": [{"profile": "open", "csr": csr}]}),
        )
        .await,
    );
    let lower = code.to_lowercase();
    o.signer = id_of(
        &s.create(
            "/api/v1/signers",
            json!({"username": format!("signer-{lower}"), "password": "correct horse", "person_id": o.person}),
        )
        .await,
    );
    o.credential = id_of(
        &s.create(
            "/api/v1/signing-credentials",
            json!({"signer": format!("signer-{lower}"), "key_algorithm": "p256", "pin": "123456"}),
        )
        .await,
    );
    o.operator = id_of(
        &s.create(
            "/api/v1/operators",
            json!({"username": format!("clerk-{lower}"), "roles": ["clerk"], "offices": [o.office]}),
        )
        .await,
    );
    o.api_key = id_of(
        &s.create_key(
            json!({"name": format!("clerk-{lower}-key"), "permissions": ["certificates:read"],
            "operator_id": o.operator}),
        )
        .await,
    );
    o
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct World {
    s: TestServer,
    keys: BTreeMap<Actor, String>,
    a: Objects,
    b: Objects,
    shared: BTreeMap<&'static str, String>,
}

impl World {
    fn objects(&self, side: Side) -> &Objects {
        match side {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }

    /// The path with its placeholders filled for an object of `side`.
    fn path(&self, template: &str, rule: Rule, side: Option<Side>) -> String {
        let target = match rule {
            Scoped(t) | Open(t) | Unrestricted(t) | SelfScoped(t) => t,
            _ => T::None,
        };
        let id = match (target, side) {
            (T::Provider, _) => self.shared["provider"].clone(),
            (T::EabKey, _) => self.shared["eab_key"].clone(),
            (T::AcmeAccount, _) => self.shared["acme_account"].clone(),
            (T::Field, _) => "employee_no".into(),
            (T::Profile, _) => "tls-client".into(),
            (T::Role, _) => "clerk".into(),
            (T::Organization, _) => self.shared["org"].clone(),
            (t, side) => match self.objects(side.unwrap_or(Side::A)).target(t) {
                Some(id) => id.to_owned(),
                None => String::new(),
            },
        };
        template
            .replace("{id}", &id)
            .replace("{name}", &id)
            .replace("{object_type}/{object_id}", &format!("certificate/{id}"))
            // The entry point alone: the plugin answers 400 to a call naming no route.
            .replace("{plugin}/{path}", "test-proxy/call")
    }

    /// Sends one request as `actor`: directly, or through the proxy plugin for `Plugin`.
    async fn send(&self, actor: Actor, method: &str, path: &str, body: &str) -> (u16, Value) {
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let (m, path) = if actor == Actor::Plugin {
            let inner = path.strip_prefix("/api/v1").unwrap();
            (
                Method::POST,
                format!("/api/v1/ext/test-proxy/call?method={method}&to={}", percent(inner)),
            )
        } else {
            (m, path.to_owned())
        };
        let mut r = self.s.req(m, &path, &self.keys[&actor]);
        if !body.is_empty() {
            r = r.header("content-type", "application/json").body(body.to_owned());
        }
        let resp = r.send().await.unwrap();
        if path.ends_with("/audit/stream") {
            // A stream never ends: the status line is the answer.
            return (resp.status().as_u16(), Value::Null);
        }
        json(resp).await
    }
}

async fn world(db: &sigil_tests::TestDb) -> World {
    let toml = format!("{}\n[acme]\nenabled = true\n", sigil_tests::proxy_plugin_toml());
    let s = TestServer::start_with(db, Options { toml, ..Default::default() }).await;
    let tmp = tempfile::tempdir().unwrap();
    s.create("/api/v1/roles", json!({"name": "officer", "permissions": ["*"]})).await;
    s.create("/api/v1/roles", json!({"name": "clerk", "permissions": ["certificates:read"]})).await;
    // Requests under a profile any approver may approve (the built-in ones forbid the
    // requester, and then only operators count: tests/it/authz_attacks.rs).
    let (_, p) =
        json(s.admin(Method::GET, "/api/v1/profiles/tls-client").send().await.unwrap()).await;
    let mut spec = p["spec"].clone();
    spec["requester_may_approve"] = json!(true);
    s.create("/api/v1/profiles", json!({"name": "open", "spec": spec})).await;
    let org = id_of(&s.create("/api/v1/organizations", json!({"name": "Acme"})).await);
    let a = office(&s, &org, "A", tmp.path()).await;
    let b = office(&s, &org, "B", tmp.path()).await;
    let (_, key_a) =
        s.operator_key("op-a", &["officer"], json!({"offices": [a.office]}), &["*"]).await;
    let (_, key_b) =
        s.operator_key("op-b", &["officer"], json!({"offices": [b.office]}), &["*"]).await;
    let holder = s
        .create_key(json!({"name": "holder", "permissions": ["self_service:use", "plugins:invoke"],
            "holder_id": a.person}))
        .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    // Operator A's key mints a key of its own: bound to operator A, within its authority.
    let (st, minted) = json(
        s.req(Method::POST, "/api/v1/api-keys", &key_a)
            .json(&json!({"name": "minted", "permissions": ["*"], "expires": "30d"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 201, "{minted}");
    assert!(minted["operator_id"].is_string(), "a key minted by a bound key is bound: {minted}");
    assert!(minted["parent_id"].is_string(), "its lineage is recorded: {minted}");
    let provider = id_of(
        &s.create(
            "/api/v1/csc-providers",
            json!({"name": "Sigil", "region": "SI", "language": "en", "auth_types": ["basic"]}),
        )
        .await,
    );
    let (st, b_) = json(
        s.admin(Method::PUT, "/api/v1/custom-fields/employee_no")
            .json(&json!({"type": "string"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(st == 200 || st == 201, "{b_}");
    let admin = s.admin_key.clone();
    let keys = BTreeMap::from([
        (Actor::Admin, admin),
        (Actor::OpA, key_a.clone()),
        (Actor::OpB, key_b.clone()),
        (Actor::Holder, holder),
        (Actor::Minted, minted["key"].as_str().unwrap().to_owned()),
        (Actor::Plugin, key_a),
    ]);
    let eab_key = id_of(&s.create("/api/v1/acme/eab-keys", json!({"name": "matrix"})).await);
    let mut acme = crate::acme::RawClient::new(&s, "tls-server").await;
    let kid = acme.register().await;
    let acme_account = kid.rsplit('/').next().unwrap().to_owned();
    let shared = BTreeMap::from([
        ("provider", provider),
        ("org", org),
        ("eab_key", eab_key),
        ("acme_account", acme_account),
    ]);
    World { s, keys, a, b, shared }
}

fn routes() -> Vec<(String, String)> {
    let (_, doc) = sigil_api::routes();
    let mut v: Vec<(String, String)> =
        sigil_api::endpoints(&doc).into_iter().map(|(m, p)| (m.to_string(), p)).collect();
    v.sort();
    v
}

#[test]
fn every_route_of_the_router_has_a_row_in_the_authorization_matrix() {
    let table: Vec<(String, String)> =
        MATRIX.iter().map(|(m, p, _, _)| ((*m).to_owned(), (*p).to_owned())).collect();
    let missing: Vec<_> = routes().into_iter().filter(|r| !table.contains(r)).collect();
    assert!(missing.is_empty(), "routes without a row in the authorization matrix: {missing:?}");
    let router = routes();
    let stale: Vec<_> = table.iter().filter(|r| !router.contains(r)).collect();
    assert!(stale.is_empty(), "matrix rows for routes that do not exist: {stale:?}");
}

/// The rule the OpenAPI document states for a route must be the one the matrix proves.
#[test]
fn the_openapi_document_states_each_routes_rule_as_the_matrix_proves_it() {
    use sigil_api::access::{Access, access};
    for (m, p, rule, _) in MATRIX {
        let stated = access(&Method::from_bytes(m.as_bytes()).unwrap(), p);
        let want = match rule {
            Scoped(_) => Access::Scoped,
            Open(_) => Access::Shared,
            Unrestricted(_) => Access::Unrestricted,
            SelfScoped(_) | SelfOnly => Access::SelfService,
            Any => Access::Invoke,
            Public => Access::Public,
        };
        assert_eq!(stated, want, "{m} {p}");
    }
    let (_, doc) = sigil_api::routes();
    let text = serde_json::to_string(&doc).unwrap();
    assert!(text.contains("**Authorization:** only a caller who sees every office"), "{text:.200}");
}

#[tokio::test]
async fn every_route_answers_each_caller_as_the_matrix_states() {
    for db in backends().await {
        let w = world(&db).await;
        let (ids_a, ids_b) = (w.a.ids(), w.b.ids());
        let mut failures = Vec::new();
        // Deleting routes last, so that what they remove is not missed by the others.
        let mut rows: Vec<_> = MATRIX.iter().filter(|r| r.2 != Public).collect();
        rows.sort_by_key(|r| r.0 == "DELETE");
        for (method, template, rule, body) in rows {
            let sides: Vec<Option<Side>> = match rule {
                Scoped(_) | SelfScoped(_) => vec![Some(Side::A), Some(Side::B)],
                _ => vec![None],
            };
            let mut cells = Vec::new();
            for side in &sides {
                for actor in ACTORS {
                    // The proxy cannot call the plugin entry point itself.
                    if actor == Actor::Plugin && template.starts_with("/api/v1/ext/") {
                        continue;
                    }
                    // A stream never ends, and the plugin reads whole answers.
                    if actor == Actor::Plugin && template.ends_with("/stream") {
                        continue;
                    }
                    cells.push((expect(*rule, actor, *side), actor, *side));
                }
            }
            // Refusals first: they must change nothing, and what the allowed calls change
            // must not decide them.
            cells.sort_by_key(|c| c.0 == Expect::Allowed);
            for (want, actor, side) in cells {
                let path = w.path(template, *rule, side);
                let filled = body
                    .replace("{cert2}", &w.objects(side.unwrap_or(Side::A)).cert2)
                    .replace("{division}", &w.a.division)
                    .replace("{org}", &w.shared["org"]);
                let (st, answer) = w.send(actor, method, &path, &filled).await;
                let code = answer["code"].as_str().unwrap_or("");
                let got = match st {
                    401 | 403 => Expect::Forbidden,
                    404 if code == "not_found" => Expect::NotFound,
                    _ => Expect::Allowed,
                };
                if st >= 500 || got != want {
                    failures.push(format!(
                        "{actor:?} {method} {path} ({side:?}): want {want:?}, got {st} {answer}"
                    ));
                    continue;
                }
                // No answer leaks the other office's objects (ids the caller sent aside).
                let foreign = match actor.side() {
                    Some(Side::A) => &ids_b,
                    Some(Side::B) => &ids_a,
                    None => continue,
                };
                let text = answer.to_string();
                for id in foreign {
                    if text.contains(id.as_str())
                        && !path.contains(id.as_str())
                        && !filled.contains(id.as_str())
                    {
                        failures.push(format!(
                            "{actor:?} {method} {path}: the answer names {id} of the other office: {text}"
                        ));
                    }
                }
            }
        }
        assert!(failures.is_empty(), "{} cells differ:\n{}", failures.len(), failures.join("\n"));
        w.s.stop().await;
        db.cleanup().await;
    }
}
