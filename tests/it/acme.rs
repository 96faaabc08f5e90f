//! ACME (RFC 8555, ARCHITECTURE §9.5) with real clients: `instant-acme` (the Rust client) for
//! whole issuances, and a small hand-made JWS client for the protocol's edge cases (nonces,
//! URLs, accounts, refused identifiers). Challenges are answered by servers of the test on
//! 127.0.0.1, which `allow_private_targets = true` lets the validator reach (the default
//! refuses them; a test below holds that).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus,
    RetryPolicy, RevocationReason, RevocationRequest,
};
use reqwest::Method;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use rustls_pki_types::CertificateDer;
use serde_json::{Value, json};
use sigil_tests::{Options, TestServer, backends, free_port, json as read_json, openssl};

/// Tokens → key authorizations served over http-01 by [`http01_responder`].
type Answers = Arc<Mutex<HashMap<String, String>>>;

/// An http-01 responder on 127.0.0.1:`port` (stops with the test's runtime).
async fn http01_responder(port: u16) -> Answers {
    let answers: Answers = Arc::default();
    let a = answers.clone();
    let app = axum::Router::new().route(
        "/.well-known/acme-challenge/{token}",
        axum::routing::get(move |axum::extract::Path(token): axum::extract::Path<String>| {
            let a = a.clone();
            async move {
                match a.lock().unwrap().get(&token) {
                    Some(v) => (axum::http::StatusCode::OK, v.clone()),
                    None => (axum::http::StatusCode::NOT_FOUND, String::new()),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    answers
}

/// `[acme]` on, validating on `http01_port`, private targets allowed (the responders are local).
fn acme_on(http01_port: u16) -> Options {
    Options {
        toml: format!(
            "[acme]\nenabled = true\nhttp01_port = {http01_port}\nallow_private_targets = true\n"
        ),
        ..Default::default()
    }
}

/// A new instant-acme account under `profile`'s directory on `s`.
async fn new_account(s: &TestServer, profile: &str, contact: &[&str]) -> Account {
    let (account, _) = Account::builder_with_root(s.data_dir().join("tls/ca.pem"))
        .unwrap()
        .create(
            &NewAccount { contact, terms_of_service_agreed: true, only_return_existing: false },
            directory(s, profile),
            None,
        )
        .await
        .unwrap();
    account
}

/// An order of `account` for `localhost`, each authorization pending and its http-01
/// challenge answered through `answers` and set ready.
async fn ready_order_for_localhost(account: &Account, answers: &Answers) -> instant_acme::Order {
    let ids = [Identifier::Dns("localhost".into())];
    let mut order = account.new_order(&NewOrder::new(&ids)).await.unwrap();
    let mut authzs = order.authorizations();
    while let Some(a) = authzs.next().await {
        let mut a = a.unwrap();
        assert_eq!(a.status, AuthorizationStatus::Pending);
        let mut ch = a.challenge(ChallengeType::Http01).unwrap();
        answers
            .lock()
            .unwrap()
            .insert(ch.token.clone(), ch.key_authorization().as_str().to_owned());
        ch.set_ready().await.unwrap();
    }
    order
}

fn directory(s: &TestServer, profile: &str) -> String {
    format!("{}/acme/{profile}/directory", s.url)
}

/// The chain in `pem` (leaf first) verifies with openssl up to its last certificate; returns
/// the leaf's text.
pub(crate) fn verifies(pem: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let certs: Vec<String> = pem
        .split_inclusive("-----END CERTIFICATE-----\n")
        .filter(|c| c.contains("BEGIN CERTIFICATE"))
        .map(str::to_owned)
        .collect();
    assert!(certs.len() >= 3, "leaf, issuing CA and root: {pem}");
    let p = |n: &str| dir.path().join(n).display().to_string();
    std::fs::write(p("leaf.pem"), &certs[0]).unwrap();
    std::fs::write(p("issuing.pem"), certs[1..certs.len() - 1].concat()).unwrap();
    std::fs::write(p("root.pem"), certs.last().unwrap()).unwrap();
    let (ok, out) = openssl(&[
        "verify",
        "-CAfile",
        &p("root.pem"),
        "-untrusted",
        &p("issuing.pem"),
        &p("leaf.pem"),
    ]);
    assert!(ok && out.contains("OK"), "{out}");
    let (_, text) = openssl(&["x509", "-in", &p("leaf.pem"), "-noout", "-text"]);
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acme_client_gets_a_certificate_over_http_01_and_it_is_an_ordinary_sigil_certificate() {
    for db in backends().await {
        let port = free_port();
        let answers = http01_responder(port).await;
        let s = TestServer::start_with(&db, acme_on(port)).await;
        let account = new_account(&s, "tls-server", &["mailto:ops@example.org"]).await;
        let mut order = ready_order_for_localhost(&account, &answers).await;
        let status = order.poll_ready(&RetryPolicy::default()).await.unwrap();
        assert_eq!(status, OrderStatus::Ready, "{}", db.backend);
        let _key = order.finalize().await.unwrap();
        let chain = order.poll_certificate(&RetryPolicy::default()).await.unwrap();
        let text = verifies(&chain);
        assert!(text.contains("DNS:localhost"), "{text}");
        assert!(text.contains("TLS Web Server Authentication"), "{text}");

        // In the inventory like any certificate, with the ACME account recorded.
        let list: Value = s
            .admin(Method::GET, "/api/v1/certificates?profile=tls-server")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = list["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{list}");
        let cert = &items[0];
        let account_id = cert["metadata"]["acme_account"].as_str().unwrap().to_owned();
        assert!(cert["metadata"]["acme_order"].is_string(), "{cert}");
        assert!(s.ocsp_text(cert).await.contains("Cert Status: good"));
        // Every change is in the audit trail, as the account.
        let trail = s.trail("acme_account", &account_id).await;
        assert!(trail.to_string().contains("acme_account.create"), "{trail}");
        let order_id = cert["metadata"]["acme_order"].as_str().unwrap();
        let actions = s.trail_actions("acme_order", order_id).await;
        assert!(actions.contains(&"acme_order.create".to_owned()), "{actions:?}");
        assert!(actions.contains(&"acme_order.finalize".to_owned()), "{actions:?}");

        // ARI (RFC 9773): the renewal window lies within the certificate's life.
        let leaf_der = pem_der(&chain);
        let ari = renewal_info(&s, &leaf_der).await;
        assert_eq!(ari.0, 200, "{}", ari.1);
        let (start, end) = (
            ari.1["suggestedWindow"]["start"].as_str().unwrap().to_owned(),
            ari.1["suggestedWindow"]["end"].as_str().unwrap().to_owned(),
        );
        assert!(cert["not_before"].as_str().unwrap() < start.as_str(), "{}", ari.1);
        assert!(start < end && end.as_str() < cert["not_after"].as_str().unwrap(), "{}", ari.1);

        // Another account may not revoke it; the account that ordered it may, and OCSP says so.
        let mut stranger = RawClient::new(&s, "tls-server").await;
        stranger.register().await;
        let a = stranger
            .post(
                &stranger.url("revokeCert"),
                Some(&json!({"certificate": URL_SAFE_NO_PAD.encode(&leaf_der)})),
            )
            .await;
        assert_eq!((a.status, error_type(&a)), (403, "urn:ietf:params:acme:error:unauthorized"));
        account
            .revoke(&RevocationRequest {
                certificate: &CertificateDer::from(leaf_der.clone()),
                reason: Some(RevocationReason::Superseded),
            })
            .await
            .unwrap();
        assert!(s.ocsp_text(cert).await.contains("Cert Status: revoked"));
        let again = account
            .revoke(&RevocationRequest {
                certificate: &CertificateDer::from(leaf_der),
                reason: None,
            })
            .await
            .unwrap_err();
        assert!(again.to_string().contains("alreadyRevoked"), "{again}");
        let actions = s.trail_actions("certificate", cert["id"].as_str().unwrap()).await;
        assert!(actions.contains(&"certificate.revoke".to_owned()), "{actions:?}");
        // Revoked: the window is in the past (renew now).
        let ari = renewal_info(&s, &pem_der(&chain)).await;
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        assert!(ari.1["suggestedWindow"]["end"].as_str().unwrap() < now.as_str(), "{}", ari.1);
        s.stop().await;
        db.cleanup().await;
    }
}

/// GET renewalInfo (RFC 9773) of certificate `der`: status and body; checks Retry-After.
async fn renewal_info(s: &TestServer, der: &[u8]) -> (u16, Value) {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, c) = X509Certificate::from_der(der).unwrap();
    let aki = c
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
        .unwrap();
    let id = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(aki),
        URL_SAFE_NO_PAD.encode(c.tbs_certificate.raw_serial())
    );
    let url = format!("{}/acme/tls-server/renewal-info/{id}", s.url);
    let r = s.client.get(&url).send().await.unwrap();
    let status = r.status().as_u16();
    if status == 200 {
        assert!(r.headers().contains_key("retry-after"));
    }
    // Another key identifier names no certificate here.
    let other =
        format!("{}/acme/tls-server/renewal-info/AAAA.{}", s.url, id.split('.').nth(1).unwrap());
    assert_eq!(s.client.get(other).send().await.unwrap().status(), 404);
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The first certificate of a PEM chain, DER.
fn pem_der(chain: &str) -> Vec<u8> {
    let b64: String = chain
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD.decode(b64).unwrap()
}

/// A hand-made ACME client: one ES256 key, its JWK, and signed POSTs.
pub(crate) struct RawClient {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    http: reqwest::Client,
    dir: Value,
    pub(crate) kid: Option<String>,
}

/// An answer: status, headers, body.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl RawClient {
    pub(crate) async fn new(s: &TestServer, profile: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        Self::with_key(s, profile, pkcs8.as_ref()).await
    }

    /// A client signing with the P-256 key `pkcs8`.
    async fn with_key(s: &TestServer, profile: &str, pkcs8: &[u8]) -> Self {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng).unwrap();
        let dir = s.client.get(directory(s, profile)).send().await.unwrap().json().await.unwrap();
        Self { key, rng, http: s.client.clone(), dir, kid: None }
    }

    fn jwk(&self) -> Value {
        let pt = self.key.public_key().as_ref();
        json!({"kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode(&pt[1..33]),
               "y": URL_SAFE_NO_PAD.encode(&pt[33..])})
    }

    /// The RFC 7638 thumbprint of the key.
    fn thumbprint(&self) -> String {
        use sha2::Digest as _;
        let j = self.jwk();
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":{},"y":{}}}"#, j["x"], j["y"]);
        URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(canonical.as_bytes()))
    }

    fn url(&self, name: &str) -> String {
        self.dir[name].as_str().unwrap().to_owned()
    }

    async fn nonce(&self) -> String {
        let r = self.http.head(self.url("newNonce")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.headers()["replay-nonce"].to_str().unwrap().to_owned()
    }

    /// The JWS body of `payload` (None: POST-as-GET) for `url` with `nonce`.
    fn sign(&self, url: &str, nonce: &str, payload: Option<&Value>) -> Value {
        let mut protected = json!({"alg": "ES256", "nonce": nonce, "url": url});
        match &self.kid {
            Some(k) => protected["kid"] = json!(k),
            None => protected["jwk"] = self.jwk(),
        }
        let p = URL_SAFE_NO_PAD.encode(protected.to_string());
        let body = payload.map(|v| URL_SAFE_NO_PAD.encode(v.to_string())).unwrap_or_default();
        let sig = self.key.sign(&self.rng, format!("{p}.{body}").as_bytes()).unwrap();
        json!({"protected": p, "payload": body, "signature": URL_SAFE_NO_PAD.encode(sig.as_ref())})
    }

    async fn send(&self, url: &str, jws: &Value) -> Answer {
        let r = self
            .http
            .post(url)
            .header("content-type", "application/jose+json")
            .body(jws.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.json().await.unwrap_or(Value::Null);
        Answer { status, headers, body }
    }

    async fn post(&self, url: &str, payload: Option<&Value>) -> Answer {
        let n = self.nonce().await;
        self.send(url, &self.sign(url, &n, payload)).await
    }

    /// The JWS body of `payload` for `url` with `nonce` (for other modules' tests).
    pub(crate) fn signed(&self, url: &str, nonce: &str, payload: Option<&Value>) -> Value {
        self.sign(url, nonce, payload)
    }

    /// Sends `jws` to `url`: status and body.
    pub(crate) async fn send_raw(&self, url: &str, jws: &Value) -> (u16, Value) {
        let a = self.send(url, jws).await;
        (a.status, a.body)
    }

    pub(crate) async fn register(&mut self) -> String {
        let a =
            self.post(&self.url("newAccount"), Some(&json!({"termsOfServiceAgreed": true}))).await;
        assert_eq!(a.status, 201, "{}", a.body);
        let kid = a.headers["location"].to_str().unwrap().to_owned();
        self.kid = Some(kid.clone());
        kid
    }
}

fn error_type(a: &Answer) -> &str {
    a.body["type"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn replayed_or_unknown_nonces_wrong_urls_and_other_accounts_objects_are_refused() {
    for db in backends().await {
        let s = TestServer::start_with(&db, acme_on(free_port())).await;
        let mut c = RawClient::new(&s, "tls-server").await;
        // newNonce: HEAD 200 and GET 204, each with a nonce, not cached.
        let r = c.http.get(c.url("newNonce")).send().await.unwrap();
        assert_eq!(r.status(), 204);
        assert!(r.headers().contains_key("replay-nonce"));
        assert_eq!(r.headers()["cache-control"], "no-store");
        c.register().await;

        // A nonce this server never issued: badNonce, with a fresh nonce to retry with.
        let url = c.url("newOrder");
        let order = json!({"identifiers": [{"type": "dns", "value": "localhost"}]});
        let a = c.send(&url, &c.sign(&url, "bm90LWEtbm9uY2U", Some(&order))).await;
        assert_eq!((a.status, error_type(&a)), (400, "urn:ietf:params:acme:error:badNonce"));
        assert!(a.headers.contains_key("replay-nonce"));
        // A replayed request (same nonce twice): the second is badNonce.
        let n = c.nonce().await;
        let jws = c.sign(&url, &n, Some(&order));
        let first = c.send(&url, &jws).await;
        assert_eq!(first.status, 201, "{}", first.body);
        let again = c.send(&url, &jws).await;
        assert_eq!(error_type(&again), "urn:ietf:params:acme:error:badNonce");
        // Signed for another URL than the one it is sent to: unauthorized.
        let n = c.nonce().await;
        let a = c.send(&url, &c.sign(&c.url("newAccount"), &n, Some(&order))).await;
        assert_eq!((a.status, error_type(&a)), (403, "urn:ietf:params:acme:error:unauthorized"));
        // Not jose+json: 415.
        let r = c.http.post(&url).json(&jws).send().await.unwrap();
        assert_eq!(r.status(), 415);
        // A tampered signature: malformed, nothing done.
        let n = c.nonce().await;
        let mut bad = c.sign(&url, &n, Some(&order));
        bad["payload"] =
            json!(URL_SAFE_NO_PAD.encode(
                json!({"identifiers": [{"type": "dns", "value": "other.test"}]}).to_string()
            ));
        let a = c.send(&url, &bad).await;
        assert_eq!((a.status, error_type(&a)), (400, "urn:ietf:params:acme:error:malformed"));

        // Another account cannot read this account's order, nor post as an unknown account.
        let order_url = first.headers["location"].to_str().unwrap().to_owned();
        let mut other = RawClient::new(&s, "tls-server").await;
        other.register().await;
        let a = other.post(&order_url, None).await;
        assert_eq!(a.status, 404, "{}", a.body);
        // Nor its authorization (read or deactivate), its challenge, its finalize, its
        // account or its account's order list: the owner rule on every object URL.
        let authz_url = first.body["authorizations"][0].as_str().unwrap().to_owned();
        let a = other.post(&authz_url, None).await;
        assert_eq!(a.status, 404, "{}", a.body);
        let a = other.post(&authz_url, Some(&json!({"status": "deactivated"}))).await;
        assert_eq!(a.status, 404, "{}", a.body);
        let authz = c.post(&authz_url, None).await;
        let ch_url = authz.body["challenges"][0]["url"].as_str().unwrap().to_owned();
        let a = other.post(&ch_url, Some(&json!({}))).await;
        assert_eq!(a.status, 404, "{}", a.body);
        let a =
            other.post(first.body["finalize"].as_str().unwrap(), Some(&json!({"csr": "AA"}))).await;
        assert_eq!(a.status, 404, "{}", a.body);
        let kid = c.kid.clone().unwrap();
        let a = other.post(&kid, Some(&json!({"status": "deactivated"}))).await;
        assert_eq!((a.status, error_type(&a)), (403, "urn:ietf:params:acme:error:unauthorized"));
        let a = other.post(&format!("{kid}/orders"), None).await;
        assert_eq!((a.status, error_type(&a)), (403, "urn:ietf:params:acme:error:unauthorized"));
        // The owner's authorization is still pending, its account still valid.
        assert_eq!(c.post(&authz_url, None).await.body["status"], "pending");
        let mut ghost = RawClient::new(&s, "tls-server").await;
        ghost.kid = Some(format!("{}/acme/tls-server/account/{}", s.url, uuid::Uuid::now_v7()));
        let a = ghost.post(&order_url, None).await;
        assert_eq!(error_type(&a), "urn:ietf:params:acme:error:accountDoesNotExist");
        // The owner reads it, pending, with Retry-After.
        let a = c.post(&order_url, None).await;
        assert_eq!((a.status, a.body["status"].as_str()), (200, Some("pending")), "{}", a.body);
        assert!(a.headers.contains_key("retry-after"));
        // Finalizing a pending order: orderNotReady.
        let a = c.post(a.body["finalize"].as_str().unwrap(), Some(&json!({"csr": "AA"}))).await;
        assert_eq!((a.status, error_type(&a)), (403, "urn:ietf:params:acme:error:orderNotReady"));
        // The holder deactivates its account; the key then signs nothing, and a new account
        // with that key is refused too.
        let kid = c.kid.clone().unwrap();
        let a = c.post(&kid, Some(&json!({"status": "deactivated"}))).await;
        assert_eq!((a.status, a.body["status"].as_str()), (200, Some("deactivated")), "{}", a.body);
        let a = c.post(&c.url("newOrder"), Some(&order)).await;
        assert_eq!((a.status, error_type(&a)), (403, "urn:ietf:params:acme:error:unauthorized"));
        c.kid = None;
        let a = c.post(&c.url("newAccount"), Some(&json!({"termsOfServiceAgreed": true}))).await;
        assert_eq!(error_type(&a), "urn:ietf:params:acme:error:unauthorized", "{}", a.body);
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn an_order_for_a_name_the_profile_forbids_is_rejected_with_the_profiles_reason() {
    let db = backends().await.remove(0);
    let s = TestServer::start_with(&db, acme_on(free_port())).await;
    let spec = json!({"key_types": ["p256", "rsa-2048"], "validity_days": 90,
        "key_usage": ["digitalSignature"], "extended_key_usage": ["serverAuth"],
        "san": {"dns": "required", "dns_pattern": "[a-z0-9-]+\\.corp\\.example"}, "acme": true});
    let (st, p) = read_json(
        s.admin(Method::POST, "/api/v1/profiles")
            .json(&json!({"name": "corp-web", "spec": spec}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 201, "{p}");
    let mut c = RawClient::new(&s, "corp-web").await;
    c.register().await;
    let a = c
        .post(
            &c.url("newOrder"),
            Some(&json!({"identifiers": [
                {"type": "dns", "value": "www.corp.example"},
                {"type": "dns", "value": "evil.example"}]})),
        )
        .await;
    assert_eq!((a.status, error_type(&a)), (400, "urn:ietf:params:acme:error:rejectedIdentifier"));
    let subs = a.body["subproblems"].as_array().unwrap();
    assert_eq!(subs.len(), 1, "{}", a.body);
    assert_eq!(subs[0]["identifier"]["value"], "evil.example");
    assert!(subs[0]["detail"].as_str().unwrap().contains("does not match the profile's pattern"));
    // An identifier type ACME knows but Sigil does not take.
    let a = c
        .post(
            &c.url("newOrder"),
            Some(&json!({"identifiers": [{"type": "email", "value": "a@b.c"}]})),
        )
        .await;
    assert_eq!(error_type(&a), "urn:ietf:params:acme:error:unsupportedIdentifier");
    // A profile that is not served over ACME, and ACME itself off: 404.
    let r = s.client.get(directory(&s, "tls-client")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    s.stop().await;
    let s = TestServer::start(&db).await;
    let r = s.client.get(directory(&s, "tls-server")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/problem+json"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_validation_never_connects_to_loopback_or_private_addresses() {
    let db = backends().await.remove(0);
    let port = free_port();
    let answers = http01_responder(port).await;
    // Private targets not allowed (the default): the responder on 127.0.0.1 is never asked.
    let opts = Options {
        toml: format!("[acme]\nenabled = true\nhttp01_port = {port}\n"),
        ..Default::default()
    };
    let s = TestServer::start_with(&db, opts).await;
    let mut c = RawClient::new(&s, "tls-server").await;
    c.register().await;
    let o = c
        .post(
            &c.url("newOrder"),
            Some(&json!({"identifiers": [{"type": "dns", "value": "localhost"}]})),
        )
        .await;
    assert_eq!(o.status, 201, "{}", o.body);
    let authz = c.post(o.body["authorizations"][0].as_str().unwrap(), None).await;
    let ch = authz.body["challenges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "http-01")
        .unwrap()
        .clone();
    answers.lock().unwrap().insert(ch["token"].as_str().unwrap().to_owned(), "x".into());
    let a = c.post(ch["url"].as_str().unwrap(), Some(&json!({}))).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let mut last = Value::Null;
    for _ in 0..50 {
        last = c.post(ch["url"].as_str().unwrap(), None).await.body;
        if last["status"] == "invalid" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(last["status"], "invalid", "{last}");
    assert!(last["error"]["detail"].as_str().unwrap().contains("not a public address"), "{last}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whoever_holds_the_certificates_key_may_revoke_it_without_an_account() {
    let db = backends().await.remove(0);
    let port = free_port();
    let answers = http01_responder(port).await;
    let s = TestServer::start_with(&db, acme_on(port)).await;
    let account = new_account(&s, "tls-server", &[]).await;
    let mut order = ready_order_for_localhost(&account, &answers).await;
    order.poll_ready(&RetryPolicy::default()).await.unwrap();
    let key_pem = order.finalize().await.unwrap();
    let chain = order.poll_certificate(&RetryPolicy::default()).await.unwrap();
    let leaf = pem_der(&chain);
    let pkcs8 = base64::engine::general_purpose::STANDARD
        .decode(key_pem.lines().filter(|l| !l.starts_with("-----")).collect::<String>())
        .unwrap();
    // Signed with another key (jwk, no account): refused.
    let c = RawClient::new(&s, "tls-server").await;
    let body = json!({"certificate": URL_SAFE_NO_PAD.encode(&leaf), "reason": 1});
    let a = c.post(&c.url("revokeCert"), Some(&body)).await;
    assert_eq!((a.status, error_type(&a)), (403, "urn:ietf:params:acme:error:unauthorized"));
    // A reason a subscriber may not give.
    let holder = RawClient::with_key(&s, "tls-server", &pkcs8).await;
    let a = holder
        .post(
            &holder.url("revokeCert"),
            Some(&json!({"certificate": URL_SAFE_NO_PAD.encode(&leaf), "reason": 6})),
        )
        .await;
    assert_eq!(error_type(&a), "urn:ietf:params:acme:error:badRevocationReason");
    // Signed with the certificate's own key: revoked (keyCompromise), in OCSP and the CRL.
    let a = holder.post(&holder.url("revokeCert"), Some(&body)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let list: Value = s
        .admin(Method::GET, "/api/v1/certificates?profile=tls-server")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cert = &list["items"][0];
    assert_eq!(cert["status"], "revoked", "{cert}");
    assert_eq!(cert["revocation_reason"], "keyCompromise", "{cert}");
    let ocsp = s.ocsp_text(cert).await;
    assert!(ocsp.contains("Cert Status: revoked") && ocsp.contains("keyCompromise"), "{ocsp}");
    s.stop().await;
}

#[tokio::test]
async fn with_binding_required_only_a_fresh_unrevoked_key_opens_an_account_and_admins_can_end_it() {
    use instant_acme::ExternalAccountKey;
    for db in backends().await {
        let opts = Options {
            toml: "[acme]\nenabled = true\neab_required = true\n".into(),
            ..Default::default()
        };
        let s = TestServer::start_with(&db, opts).await;
        let ca = s.data_dir().join("tls/ca.pem");
        let create = |eab: Option<ExternalAccountKey>| {
            let (ca, dir) = (ca.clone(), directory(&s, "tls-server"));
            async move {
                let new = NewAccount {
                    contact: &[],
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                };
                Account::builder_with_root(&ca)
                    .unwrap()
                    .create(&new, dir, eab.as_ref())
                    .await
                    .map(|(a, _)| a)
            }
        };
        fn refused(r: Result<Account, instant_acme::Error>) -> String {
            match r {
                Ok(_) => panic!("an account was created"),
                Err(e) => e.to_string(),
            }
        }
        // The directory says so, and an account without a binding is refused.
        let dir: Value =
            s.client.get(directory(&s, "tls-server")).send().await.unwrap().json().await.unwrap();
        assert_eq!(dir["meta"]["externalAccountRequired"], true);
        let e = refused(create(None).await);
        assert!(e.contains("externalAccountRequired"), "{e}");

        // An administrator makes a key; its HMAC key is shown once.
        let made = s.create("/api/v1/acme/eab-keys", json!({"name": "web team"})).await;
        let (kid, hmac) = (made["id"].as_str().unwrap(), made["hmac_key"].as_str().unwrap());
        let listed: Value = s
            .admin(Method::GET, "/api/v1/acme/eab-keys")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(!listed.to_string().contains(hmac), "the HMAC key is never listed: {listed}");
        let key =
            || ExternalAccountKey::new(kid.to_owned(), &URL_SAFE_NO_PAD.decode(hmac).unwrap());
        // A wrong HMAC key is refused.
        let wrong = ExternalAccountKey::new(kid.to_owned(), b"not the key at all, 32 bytes....");
        let e = refused(create(Some(wrong)).await);
        assert!(e.contains("unauthorized"), "{e}");
        let Ok(account) = create(Some(key())).await else { panic!("the binding key is refused") };
        // The key is spent: a second account cannot use it.
        let e = refused(create(Some(key())).await);
        assert!(e.contains("unauthorized"), "{e}");
        let id = account.id().rsplit('/').next().unwrap().to_owned();
        let shown: Value = s
            .admin(Method::GET, &format!("/api/v1/acme/accounts/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(shown["eab_key_id"], kid, "{shown}");
        let listed: Value = s
            .admin(Method::GET, "/api/v1/acme/eab-keys")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(listed["items"][0]["account_id"], id.as_str(), "{listed}");
        // A revoked key opens nothing.
        let other = s.create("/api/v1/acme/eab-keys", json!({"name": "revoked"})).await;
        let r = s
            .admin(
                Method::DELETE,
                &format!("/api/v1/acme/eab-keys/{}", other["id"].as_str().unwrap()),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let revoked = ExternalAccountKey::new(
            other["id"].as_str().unwrap().to_owned(),
            &URL_SAFE_NO_PAD.decode(other["hmac_key"].as_str().unwrap()).unwrap(),
        );
        assert!(refused(create(Some(revoked)).await).contains("unauthorized"));

        // An administrator deactivates the account: its key signs nothing more.
        let r = s
            .admin(Method::POST, &format!("/api/v1/acme/accounts/{id}/deactivate"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let ids = [Identifier::Dns("localhost".into())];
        let e = match account.new_order(&NewOrder::new(&ids)).await {
            Ok(_) => panic!("a deactivated account ordered"),
            Err(e) => e.to_string(),
        };
        assert!(e.contains("unauthorized"), "{e}");
        let listed: Value = s
            .admin(Method::GET, "/api/v1/acme/accounts?status=deactivated")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
        let actions = s.trail_actions("acme_account", &id).await;
        assert!(actions.contains(&"acme_account.deactivate".to_owned()), "{actions:?}");
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_key_change_moves_the_account_to_the_new_key_and_is_audited() {
    let db = backends().await.remove(0);
    let s = TestServer::start_with(&db, acme_on(free_port())).await;
    let mut account = new_account(&s, "tls-server", &[]).await;
    let before = account.id().to_owned();
    let old = s
        .admin(Method::GET, "/api/v1/acme/accounts")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["items"][0]["thumbprint"]
        .clone();
    let _credentials = account.update_key().await.unwrap();
    assert_eq!(account.id(), before);
    let listed: Value =
        s.admin(Method::GET, "/api/v1/acme/accounts").send().await.unwrap().json().await.unwrap();
    assert_ne!(listed["items"][0]["thumbprint"], old, "{listed}");
    // The new key orders; the account's audit trail records the change.
    let ids = [Identifier::Dns("localhost".into())];
    account.new_order(&NewOrder::new(&ids)).await.unwrap();
    let id = before.rsplit('/').next().unwrap();
    let actions = s.trail_actions("acme_account", id).await;
    assert!(actions.contains(&"acme_account.key_change".to_owned()), "{actions:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ip_address_is_proven_over_http_01_and_certified_without_a_common_name() {
    // RFC 8738: an `ip` identifier, validated at the address itself.
    let db = backends().await.remove(0);
    let port = free_port();
    let answers = http01_responder(port).await;
    let s = TestServer::start_with(&db, acme_on(port)).await;
    let spec = json!({"key_types": ["p256", "rsa-2048"], "validity_days": 30,
        "key_usage": ["digitalSignature"], "extended_key_usage": ["serverAuth"],
        "subject": {"common_name": "forbidden"},
        "san": {"dns": "optional", "ip": "optional", "email": "forbidden", "uri": "forbidden"},
        "acme": true});
    let (st, p) = read_json(
        s.admin(Method::POST, "/api/v1/profiles")
            .json(&json!({"name": "acme-ip", "spec": spec}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 201, "{p}");
    let account = new_account(&s, "acme-ip", &[]).await;
    let ids = [Identifier::Ip("127.0.0.1".parse().unwrap())];
    let mut order = account.new_order(&NewOrder::new(&ids)).await.unwrap();
    let mut authzs = order.authorizations();
    while let Some(a) = authzs.next().await {
        let mut a = a.unwrap();
        // No dns-01 for an address.
        assert!(a.challenges.iter().all(|c| c.r#type != ChallengeType::Dns01));
        let mut ch = a.challenge(ChallengeType::Http01).unwrap();
        answers
            .lock()
            .unwrap()
            .insert(ch.token.clone(), ch.key_authorization().as_str().to_owned());
        ch.set_ready().await.unwrap();
    }
    assert_eq!(order.poll_ready(&RetryPolicy::default()).await.unwrap(), OrderStatus::Ready);
    order.finalize().await.unwrap();
    let chain = order.poll_certificate(&RetryPolicy::default()).await.unwrap();
    let text = verifies(&chain);
    assert!(text.contains("IP Address:127.0.0.1"), "{text}");
    let subject = text.lines().find(|l| l.trim_start().starts_with("Subject:")).unwrap();
    assert!(!subject.contains("CN"), "no common name for an address-only order: {text}");
    s.stop().await;
}

/// A ready order of `c` for `localhost` (http-01 answered through `answers`): its URL and body.
async fn ready_order(c: &RawClient, answers: &Answers) -> (String, Value) {
    let o = c
        .post(
            &c.url("newOrder"),
            Some(&json!({"identifiers": [{"type": "dns", "value": "localhost"}]})),
        )
        .await;
    assert_eq!(o.status, 201, "{}", o.body);
    let order_url = o.headers["location"].to_str().unwrap().to_owned();
    let authz_url = o.body["authorizations"][0].as_str().unwrap().to_owned();
    let authz = c.post(&authz_url, None).await;
    let ch = authz.body["challenges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "http-01")
        .unwrap()
        .clone();
    let token = ch["token"].as_str().unwrap();
    answers.lock().unwrap().insert(token.to_owned(), format!("{token}.{}", c.thumbprint()));
    assert_eq!(c.post(ch["url"].as_str().unwrap(), Some(&json!({}))).await.status, 200);
    for _ in 0..100 {
        let o = c.post(&order_url, None).await;
        if o.body["status"] == "ready" {
            return (order_url, o.body);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the order never became ready");
}

/// A CSR (DER) for `names` with a fresh P-256 key.
fn csr(names: &[&str]) -> Vec<u8> {
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .unwrap();
    // rcgen's default subject names a CN; an ACME CSR names the order's identifiers only.
    params.distinguished_name = rcgen::DistinguishedName::new();
    let key = rcgen::KeyPair::generate().unwrap();
    params.serialize_request(&key).unwrap().der().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_finalizes_of_one_order_issue_one_certificate_and_odd_csrs_are_refused() {
    // Found by the attack review: two finalizes racing each issued a certificate.
    let db = backends().await.remove(0);
    let port = free_port();
    let answers = http01_responder(port).await;
    let s = TestServer::start_with(&db, acme_on(port)).await;
    let mut c = RawClient::new(&s, "tls-server").await;
    c.register().await;
    let (order_url, order) = ready_order(&c, &answers).await;
    let finalize = order["finalize"].as_str().unwrap().to_owned();
    // A name with a trailing dot is not the order's name: refused, the order stays ready.
    let a = c
        .post(&finalize, Some(&json!({"csr": URL_SAFE_NO_PAD.encode(csr(&["localhost."]))})))
        .await;
    assert_eq!(error_type(&a), "urn:ietf:params:acme:error:badCSR", "{}", a.body);
    assert!(a.body["detail"].as_str().unwrap().contains("exactly the order's"), "{}", a.body);
    assert_eq!(c.post(&order_url, None).await.body["status"], "ready");
    // Eight finalizes at once: exactly one certificate.
    let mut jobs = Vec::new();
    for _ in 0..8 {
        let n = c.nonce().await;
        let jws = c.sign(
            &finalize,
            &n,
            Some(&json!({"csr": URL_SAFE_NO_PAD.encode(csr(&["localhost"]))})),
        );
        let (http, url) = (c.http.clone(), finalize.clone());
        jobs.push(tokio::spawn(async move {
            http.post(url)
                .header("content-type", "application/jose+json")
                .body(jws.to_string())
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut ok = 0;
    for j in jobs {
        if j.await.unwrap() == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 1, "one finalize wins");
    let list: Value = s
        .admin(Method::GET, "/api/v1/certificates?profile=tls-server")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    s.stop().await;
}

#[tokio::test]
async fn outsiders_learn_nothing_and_leave_nothing_behind_and_odd_requests_are_refused() {
    let db = backends().await.remove(0);
    // ACME off: no nonce is minted for anyone.
    let s = TestServer::start(&db).await;
    let r = s.client.head(format!("{}/acme/tls-server/new-nonce", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(!r.headers().contains_key("replay-nonce"));
    s.stop().await;
    let s = TestServer::start_with(&db, acme_on(free_port())).await;
    // An unknown profile and one not served over ACME answer alike, with no nonce.
    let mut seen = Vec::new();
    for p in ["no-such-profile", "tls-client", "NoT A NaMe"] {
        let r = s.client.get(directory(&s, &p.replace(' ', "%20"))).send().await.unwrap();
        assert!(!r.headers().contains_key("replay-nonce"), "{p}");
        seen.push((r.status().as_u16(), r.text().await.unwrap()));
    }
    assert!(seen.iter().all(|x| *x == seen[0]) && seen[0].0 == 404, "{seen:?}");
    let mut c = RawClient::new(&s, "tls-server").await;
    // crit and b64 extensions are refused, not ignored.
    let n = c.nonce().await;
    let url = c.url("newAccount");
    let protected = URL_SAFE_NO_PAD.encode(
        json!({"alg": "ES256", "nonce": n, "url": url, "jwk": c.jwk(), "crit": ["b64"], "b64": false})
            .to_string(),
    );
    let payload = URL_SAFE_NO_PAD.encode("{}");
    let sig = c.key.sign(&c.rng, format!("{protected}.{payload}").as_bytes()).unwrap();
    let jws = json!({"protected": protected, "payload": payload,
        "signature": URL_SAFE_NO_PAD.encode(sig.as_ref())});
    assert_eq!(error_type(&c.send(&url, &jws).await), "urn:ietf:params:acme:error:malformed");
    // A JWK carrying a private member: only its public members are stored.
    let mut jwk = c.jwk();
    jwk["d"] = json!("c2VjcmV0LXByaXZhdGUtdmFsdWU");
    jwk["padding"] = json!("x".repeat(1000));
    let n = c.nonce().await;
    let protected = URL_SAFE_NO_PAD
        .encode(json!({"alg": "ES256", "nonce": n, "url": url, "jwk": jwk}).to_string());
    let payload = URL_SAFE_NO_PAD.encode(json!({"termsOfServiceAgreed": true}).to_string());
    let sig = c.key.sign(&c.rng, format!("{protected}.{payload}").as_bytes()).unwrap();
    let jws = json!({"protected": protected, "payload": payload,
        "signature": URL_SAFE_NO_PAD.encode(sig.as_ref())});
    let a = c.send(&url, &jws).await;
    assert_eq!(a.status, 201, "{}", a.body);
    c.kid = Some(a.headers["location"].to_str().unwrap().to_owned());
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&s.db_url).await.unwrap();
    let body: String =
        sqlx::query_scalar("SELECT body FROM acme_accounts").fetch_one(&pool).await.unwrap();
    pool.close().await;
    assert!(!body.contains("c2VjcmV0") && !body.contains("padding"), "{body}");
    // An order tls-server could never issue (no DNS name): refused up front.
    let a = c
        .post(
            &c.url("newOrder"),
            Some(&json!({"identifiers": [{"type": "ip", "value": "127.0.0.1"}]})),
        )
        .await;
    assert_eq!(error_type(&a), "urn:ietf:params:acme:error:rejectedIdentifier", "{}", a.body);
    // replaces must be an RFC 9773 certificate id.
    let a = c
        .post(
            &c.url("newOrder"),
            Some(&json!({"identifiers": [{"type": "dns", "value": "localhost"}],
                "replaces": "x".repeat(5000)})),
        )
        .await;
    assert_eq!(error_type(&a), "urn:ietf:params:acme:error:malformed", "{}", a.body);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csr_for_the_account_key_itself_is_refused() {
    let db = backends().await.remove(0);
    let port = free_port();
    let answers = http01_responder(port).await;
    let s = TestServer::start_with(&db, acme_on(port)).await;
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let mut c = RawClient::with_key(&s, "tls-server", pkcs8.as_ref()).await;
    c.register().await;
    let (_, order) = ready_order(&c, &answers).await;
    let key = rcgen::KeyPair::try_from(pkcs8.as_ref()).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    let der = params.serialize_request(&key).unwrap().der().to_vec();
    let a = c
        .post(
            order["finalize"].as_str().unwrap(),
            Some(&json!({"csr": URL_SAFE_NO_PAD.encode(der)})),
        )
        .await;
    assert_eq!(error_type(&a), "urn:ietf:params:acme:error:badCSR", "{}", a.body);
    assert!(a.body["detail"].as_str().unwrap().contains("account's key"), "{}", a.body);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_plugin_refusing_the_certificate_refuses_the_acme_order_too() {
    // ACME issues through the ordinary path: the customer's naming rules (a validator plugin)
    // apply to ACME certificates like to any other.
    let db = backends().await.remove(0);
    let port = free_port();
    let answers = http01_responder(port).await;
    let mut opts = acme_on(port);
    opts.toml.push_str(&format!(
        "[plugins.load.naming]\nfile = \"{}/naming_validator.wasm\"\ngrants = [\"log\", \"config\"]\n\
         hooks = [\"certificate-issuance\"]\n[plugins.load.naming.config]\n\
         cn_suffix = \".corp.example\"\n",
        env!("SIGIL_TEST_PLUGINS")
    ));
    let s = TestServer::start_with(&db, opts).await;
    let account = new_account(&s, "tls-server", &[]).await;
    let mut order = ready_order_for_localhost(&account, &answers).await;
    assert_eq!(order.poll_ready(&RetryPolicy::default()).await.unwrap(), OrderStatus::Ready);
    let e = match order.finalize().await {
        Ok(_) => panic!("the validator plugin was not asked"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("rejectedIdentifier") && e.contains("must end with .corp.example"), "{e}");
    let state = order.refresh().await.unwrap();
    assert_eq!(state.status, OrderStatus::Invalid);
    let list: Value =
        s.admin(Method::GET, "/api/v1/certificates").send().await.unwrap().json().await.unwrap();
    assert!(!list.to_string().contains("localhost"), "nothing issued: {list}");
    s.stop().await;
}
