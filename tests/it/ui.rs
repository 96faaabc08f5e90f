//! The admin web UI (`/ui/`): sign-in by API key, the session cookie, CSRF and same-origin
//! checks, permission-filtered menus, the UI's own authorization matrix (every page and action
//! is the REST API as the session's key), and the whole UI in a real browser (Debian's
//! Chromium driven by Playwright).

use std::process::Command;
use std::sync::Once;

use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use reqwest::{Client, Method};
use serde_json::{Value, json};
use sigil_tests::{Options, TestServer, backends, client_no_redirect, json, openssl_csr};

/// A browser, as far as the server can tell: a cookie, same-origin form posts, no redirects
/// followed (so each 303 is seen).
struct Browser {
    client: Client,
    base: String,
    cookie: Option<String>,
}

struct Page {
    status: u16,
    location: String,
    headers: HeaderMap,
    body: String,
}

impl Browser {
    fn new(s: &TestServer) -> Self {
        Self {
            client: client_no_redirect(&s.data_dir().join("tls/ca.pem")),
            base: s.url.clone(),
            cookie: None,
        }
    }

    async fn send(&mut self, method: Method, path: &str, form: Option<&[(&str, &str)]>) -> Page {
        let mut r = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("sec-fetch-site", "same-origin");
        if let Some(c) = &self.cookie {
            r = r.header("cookie", c);
        }
        if let Some(f) = form {
            r = r.form(f);
        }
        let res = r.send().await.unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        if let Some(c) = headers.get(SET_COOKIE).and_then(|v| v.to_str().ok()) {
            let pair = c.split(';').next().unwrap().to_owned();
            self.cookie = if pair.ends_with('=') { None } else { Some(pair) };
        }
        let location =
            headers.get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        // minijinja's HTML escaping writes `/` as `&#x2f;` (inside attributes too); the tests
        // read pages as a browser shows them.
        let body = res.text().await.unwrap().replace("&#x2f;", "/");
        Page { status, location, headers, body }
    }

    async fn get(&mut self, path: &str) -> Page {
        self.send(Method::GET, path, None).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        self.send(Method::POST, path, Some(form)).await
    }

    async fn sign_in(&mut self, key: &str) -> Page {
        self.post("/ui/login", &[("api_key", key)]).await
    }

    /// The CSRF token of the session (the sign-out form on every signed-in page carries it,
    /// refusal pages included).
    async fn csrf(&mut self) -> String {
        let p = self.get("/ui/certificates").await;
        csrf_of(&p.body).unwrap_or_else(|| panic!("no CSRF token ({}): {}", p.status, p.body))
    }
}

fn csrf_of(body: &str) -> Option<String> {
    let at = body.find("name=\"csrf\" value=\"")? + 19;
    Some(body[at..].split('"').next()?.to_owned())
}

async fn audit_actions(s: &TestServer, action: &str) -> Vec<Value> {
    let (st, v) =
        json(s.admin(Method::GET, &format!("/api/v1/audit?action={action}")).send().await.unwrap())
            .await;
    assert_eq!(st, 200, "{v}");
    v["items"].as_array().unwrap().clone()
}

async fn key(s: &TestServer, name: &str, permissions: &[&str]) -> (String, String) {
    let k = s.create_key(json!({"name": name, "permissions": permissions})).await;
    (k["id"].as_str().unwrap().to_owned(), k["key"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn signing_in_sets_a_strict_host_only_session_cookie_and_is_audited_as_the_key() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let mut b = Browser::new(&s);
        let p = b.get("/ui/api-keys").await;
        assert_eq!((p.status, p.location.as_str()), (303, "/ui/login?next=%2Fui%2Fapi-keys"));
        let p = b.get("/ui/login?next=%2Fui%2Fapi-keys").await;
        assert!(p.body.contains("<label for=\"api_key\">API Key</label>"), "{}", p.body);
        assert!(p.body.contains(">Sign in</button>"));
        let p = b.sign_in(&s.admin_key).await;
        assert_eq!((p.status, p.location.as_str()), (303, "/ui/certificates"));
        let set = p.headers.get(SET_COOKIE).unwrap().to_str().unwrap().to_owned();
        for part in ["__Host-sigil_session=", "Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
            assert!(set.contains(part), "{set}");
        }
        assert!(!set.contains("Domain"), "{set}");
        // The cookie is a random token, not the key.
        assert!(!set.contains(&s.admin_key));
        let p = b.get("/ui/api-keys").await;
        assert_eq!(p.status, 200);
        assert!(p.body.contains("Signed in as <strong>admin</strong>"));
        let events = audit_actions(&s, "ui_session.sign_in").await;
        assert_eq!(events.len(), 1);
        let admin_id = events[0]["actor"]["id"].as_str().unwrap();
        assert_eq!(events[0]["api_key_id"].as_str(), Some(admin_id));
        assert_eq!(events[0]["client_ip"].as_str(), Some("127.0.0.1"));
        // `next` only ever leads inside the UI.
        let mut c = Browser::new(&s);
        let p =
            c.post("/ui/login", &[("api_key", &s.admin_key), ("next", "//evil.example/")]).await;
        assert_eq!(p.location, "/ui/certificates");
        s.stop().await;
    }
}

#[tokio::test]
async fn a_wrong_revoked_or_disallowed_key_does_not_sign_in() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let mut b = Browser::new(&s);
        // Refusals are shown on the sign-in page itself (200, so the browser logs no error).
        let p = b.sign_in("sgk_000000000000_notarealkeynotarealkeynotarealkeynotarealkey").await;
        assert_eq!(p.status, 200);
        assert!(p.body.contains("This API key was not accepted"), "{}", p.body);
        assert!(p.headers.get(SET_COOKIE).is_none());
        let (id, secret) = key(&s, "gone", &["certificates:read"]).await;
        let r = s.admin(Method::DELETE, &format!("/api/v1/api-keys/{id}")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let p = b.sign_in(&secret).await;
        assert!(p.body.contains("api_key-error") && p.headers.get(SET_COOKIE).is_none());
        // The key's IP whitelist holds for its sessions too.
        let k = s
            .create_key(json!({"name": "far", "permissions": ["certificates:read"],
                "ip_whitelist": ["10.0.0.0/8"]}))
            .await;
        let p = b.sign_in(k["key"].as_str().unwrap()).await;
        assert_eq!(p.status, 200);
        assert!(p.body.contains("not allowed for this API key"), "{}", p.body);
        assert!(b.cookie.is_none());
        assert!(audit_actions(&s, "ui_session.sign_in").await.is_empty());
        s.stop().await;
    }
}

/// The Generate Key form for a key named `csrf-victim`.
fn key_form(csrf: &str) -> [(&'static str, &str); 4] {
    [("csrf", csrf), ("name", "csrf-victim"), ("expires", "30d"), ("permissions", "audit:read")]
}

#[tokio::test]
async fn forms_without_this_sessions_csrf_token_or_from_another_site_change_nothing() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let mut b = Browser::new(&s);
        b.sign_in(&s.admin_key).await;
        let token = b.csrf().await;
        let mut other = Browser::new(&s);
        other.sign_in(&s.admin_key).await;
        let foreign = other.csrf().await;
        assert_ne!(token, foreign);
        for csrf in ["", "forged", foreign.as_str()] {
            let p = b.post("/ui/api-keys", &key_form(csrf)).await;
            assert_eq!(p.status, 403, "{csrf}: {}", p.body);
            assert!(p.body.contains("CSRF token"), "{}", p.body);
        }
        // A form posted from another site is refused before anything reads it, cookie or not.
        for (h, v) in [("origin", "https://evil.example"), ("sec-fetch-site", "cross-site")] {
            let r = b
                .client
                .post(format!("{}/ui/api-keys", s.url))
                .header("cookie", b.cookie.clone().unwrap())
                .header(h, v)
                .form(&key_form(&token))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 403, "{h}: {v}");
            let r = b
                .client
                .post(format!("{}/ui/login", s.url))
                .header(h, v)
                .form(&[("api_key", s.admin_key.as_str())])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 403, "login with {h}: {v}");
        }
        let (_, keys) =
            json(s.admin(Method::GET, "/api/v1/api-keys?name=csrf-victim").send().await.unwrap())
                .await;
        assert_eq!(keys["items"].as_array().unwrap().len(), 0);
        // The same form with the session's own token works.
        let p = b.post("/ui/api-keys", &key_form(&token)).await;
        assert_eq!(p.status, 201, "{}", p.body);
        assert!(p.body.contains("sgk_"));
        assert_eq!(p.headers.get("cache-control").unwrap(), "no-store");
        s.stop().await;
    }
}

#[tokio::test]
async fn revoking_the_key_or_signing_out_ends_the_session_at_once() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let (id, secret) = key(&s, "desk", &["certificates:read"]).await;
        let mut b = Browser::new(&s);
        assert_eq!(b.sign_in(&secret).await.status, 303);
        assert_eq!(b.get("/ui/certificates").await.status, 200);
        let r = s.admin(Method::DELETE, &format!("/api/v1/api-keys/{id}")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let p = b.get("/ui/certificates").await;
        assert_eq!(p.status, 303);
        assert!(p.location.contains("reason=revoked"), "{}", p.location);

        let mut b = Browser::new(&s);
        b.sign_in(&s.admin_key).await;
        let cookie = b.cookie.clone().unwrap();
        let token = b.csrf().await;
        let p = b.post("/ui/logout", &[("csrf", &token)]).await;
        assert_eq!((p.status, p.location.as_str()), (303, "/ui/login?reason=signed_out"));
        assert!(b.cookie.is_none(), "the cookie is cleared");
        // The old cookie opens nothing any more, on this node or any other.
        b.cookie = Some(cookie);
        let p = b.get("/ui/api-keys").await;
        assert_eq!(
            (p.status, p.location.as_str()),
            (303, "/ui/login?next=%2Fui%2Fapi-keys&reason=ended")
        );
        assert_eq!(audit_actions(&s, "ui_session.sign_out").await.len(), 1);

        // A rotation answers a leak: sessions signed in with the key end, even with a grace
        // period for its REST clients.
        let (id, secret) = key(&s, "leaked", &["certificates:read"]).await;
        let mut thief = Browser::new(&s);
        thief.sign_in(&secret).await;
        assert_eq!(thief.get("/ui/certificates").await.status, 200);
        let r = s
            .admin(Method::POST, &format!("/api/v1/api-keys/{id}/rotate"))
            .json(&json!({"grace_period_seconds": 3600}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let p = thief.get("/ui/certificates").await;
        assert_eq!(p.status, 303, "the session of the old secret ended");
        assert!(p.location.contains("reason=ended"), "{}", p.location);

        // Disabling an operator ends the sessions of its keys; enabling it does not revive them.
        let [a]: [String; 1] = s.offices(&["A"]).await.try_into().unwrap();
        let (op, secret) = s
            .operator_key("desk", &["service-desk"], json!({"offices": [a]}), &["devices:read"])
            .await;
        let mut desk = Browser::new(&s);
        desk.sign_in(&secret).await;
        assert_eq!(desk.get("/ui/devices").await.status, 200);
        for (verb, want) in [("disable", "reason=disabled"), ("enable", "reason=ended")] {
            let r = s
                .admin(Method::POST, &format!("/api/v1/operators/{op}/{verb}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{verb}");
            let p = desk.get("/ui/devices").await;
            assert_eq!(p.status, 303, "after {verb}");
            assert!(p.location.contains(want) || verb == "disable", "{verb}: {}", p.location);
        }
        s.stop().await;
    }
}

#[tokio::test]
async fn menus_show_only_what_the_key_may_read_and_actions_are_the_keys_own() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let (_, secret) = key(&s, "reader", &["certificates:read", "audit:verify"]).await;
        let mut b = Browser::new(&s);
        b.sign_in(&secret).await;
        let p = b.get("/ui/certificates").await;
        assert_eq!(p.status, 200);
        assert!(p.body.contains("href=\"/ui/certificates\""), "{}", p.body);
        for hidden in
            ["/ui/api-keys", "/ui/csc-providers", "/ui/devices", "/ui/audit\"", "/ui/plugins"]
        {
            assert!(!p.body.contains(&format!("href=\"{hidden}")), "{hidden} shown");
        }
        // Pages behind the menu refuse as the REST API refuses the key.
        let p = b.get("/ui/api-keys").await;
        assert_eq!(p.status, 403);
        assert!(p.body.contains("permission_denied"), "{}", p.body);
        let token = b.csrf().await;
        let p = b
            .post(
                "/ui/api-keys",
                &[
                    ("csrf", &token),
                    ("name", "x"),
                    ("expires", "never"),
                    ("permissions", "certificates:read"),
                ],
            )
            .await;
        assert_eq!(p.status, 403, "{}", p.body);
        // The Generate Key form offers only what the key holds.
        let (_, maker) =
            key(&s, "maker", &["api_keys:create", "api_keys:read", "audit:read"]).await;
        let mut m = Browser::new(&s);
        m.sign_in(&maker).await;
        let p = m.get("/ui/api-keys/new").await;
        assert!(p.body.contains("value=\"audit:read\""));
        assert!(!p.body.contains("value=\"certificate:revoke\""));
        // A forged form asking for more is refused by the same rule as the REST API.
        let token = m.csrf().await;
        let p = m
            .post(
                "/ui/api-keys",
                &[
                    ("csrf", &token),
                    ("name", "bigger"),
                    ("expires", "never"),
                    ("permissions", "certificate:revoke"),
                ],
            )
            .await;
        assert_eq!(p.status, 200);
        assert!(p.body.contains("id=\"permissions-error\""), "{}", p.body);
        let (_, keys) =
            json(s.admin(Method::GET, "/api/v1/api-keys?name=bigger").send().await.unwrap()).await;
        assert!(keys["items"].as_array().unwrap().is_empty());
        let p = m
            .post(
                "/ui/api-keys",
                &[
                    ("csrf", &token),
                    ("name", "smaller"),
                    ("expires", "never"),
                    ("permissions", "audit:read"),
                ],
            )
            .await;
        assert_eq!(p.status, 201, "{}", p.body);
        // The new key was made by the session's key, and the audit trail says so.
        let (_, made) =
            json(s.admin(Method::GET, "/api/v1/api-keys?name=smaller").send().await.unwrap()).await;
        let (_, maker_row) =
            json(s.admin(Method::GET, "/api/v1/api-keys?name=maker").send().await.unwrap()).await;
        let maker_id = maker_row["items"][0]["id"].as_str().unwrap();
        assert_eq!(made["items"][0]["parent_id"].as_str(), Some(maker_id));
        let created = audit_actions(&s, "api_key.create").await;
        let last = created.last().unwrap();
        assert_eq!(last["object_id"], made["items"][0]["id"]);
        assert_eq!(last["actor"]["id"].as_str(), Some(maker_id));
        s.stop().await;
    }
}

#[tokio::test]
async fn a_session_sees_only_its_operators_offices() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let [a, b]: [String; 2] = s.offices(&["A", "B"]).await.try_into().unwrap();
        let mine = s
            .create(
                "/api/v1/devices",
                json!({"kind": "smart_card", "serial": "SC-A", "office_id": a}),
            )
            .await;
        let theirs = s
            .create(
                "/api/v1/devices",
                json!({"kind": "smart_card", "serial": "SC-B", "office_id": b}),
            )
            .await;
        let (_, secret) = s
            .operator_key(
                "desk-a",
                &["service-desk"],
                json!({"offices": [a]}),
                &["devices:read", "device:suspend"],
            )
            .await;
        let mut br = Browser::new(&s);
        br.sign_in(&secret).await;
        let p = br.get("/ui/devices").await;
        assert_eq!(p.status, 200);
        assert!(p.body.contains("SC-A") && !p.body.contains("SC-B"), "{}", p.body);
        let p = br.get(&format!("/ui/devices/{}", theirs["id"].as_str().unwrap())).await;
        assert_eq!(p.status, 404);
        assert!(!p.body.contains("SC-B"));
        // An action on the other office's device is refused and changes nothing.
        let token = br.csrf().await;
        let p = br
            .post(
                &format!("/ui/devices/{}/suspend", theirs["id"].as_str().unwrap()),
                &[("csrf", &token)],
            )
            .await;
        assert_eq!(p.status, 404);
        let p = br.get(&format!("/ui/devices/{}", mine["id"].as_str().unwrap())).await;
        assert_eq!(p.status, 200);
        s.stop().await;
    }
}

#[tokio::test]
async fn every_ui_answer_carries_a_strict_content_security_policy() {
    let db = backends().await.remove(0);
    let s = TestServer::start(&db).await;
    let mut b = Browser::new(&s);
    for path in ["/ui/login", "/ui/assets/sigil.css", "/ui/no-such-page", "/ui/certificates"] {
        let p = b.get(path).await;
        let csp = p.headers.get("content-security-policy").unwrap().to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(p.headers.get("x-frame-options").unwrap(), "DENY", "{path}");
        assert_eq!(p.headers.get("referrer-policy").unwrap(), "no-referrer", "{path}");
    }
    // No page carries inline script or style.
    b.sign_in(&s.admin_key).await;
    for path in [
        "/ui/login",
        "/ui/certificates",
        "/ui/api-keys",
        "/ui/api-keys/new",
        "/ui/csc-providers/new",
        "/ui/audit",
    ] {
        let body = b.get(path).await.body;
        for inline in ["<script>", "style=\"", " onclick=", "<style"] {
            assert!(!body.contains(inline), "{path} has {inline}");
        }
    }
    let p = b.get("/ui/no-such-page").await;
    assert_eq!(p.status, 404);
    assert!(p.body.contains("There is no such page."));
    s.stop().await;
}

#[tokio::test]
async fn the_ui_can_be_switched_off() {
    let db = backends().await.remove(0);
    let s = TestServer::start_with(
        &db,
        Options { toml: "[ui]\nenabled = false\n".into(), ..Default::default() },
    )
    .await;
    let mut b = Browser::new(&s);
    assert_eq!(b.get("/ui/login").await.status, 404);
    assert_eq!(b.sign_in(&s.admin_key).await.status, 404);
    s.stop().await;
}

/// The UI's authorization matrix: every route of `sigil_api::ui::ROUTES` (which a unit test
/// holds to the router's source) without a session, and with the session of a key that may do
/// nothing.
#[tokio::test]
async fn every_ui_route_needs_a_session_and_acts_only_with_the_sessions_authority() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let tmp = tempfile::tempdir().unwrap();
        let (csr, _) = openssl_csr(tmp.path(), "m", "ec:P-256", "/CN=matrix.example", None);
        let (st, cert) = s.issue(&csr, "tls-client").await;
        assert_eq!(st, 201, "{cert}");
        let [a]: [String; 1] = s.offices(&["A"]).await.try_into().unwrap();
        let dev = s
            .create(
                "/api/v1/devices",
                json!({"kind": "smart_card", "serial": "SC-M", "office_id": a}),
            )
            .await;
        let provider =
            s.create("/api/v1/csc-providers", json!({"name": "P", "region": "SI"})).await;
        let (key_id, _) = key(&s, "victim", &["audit:read"]).await;
        let fill = |p: &str| {
            p.replace(
                "{id}",
                match p {
                    _ if p.starts_with("/ui/api-keys") => &key_id,
                    _ if p.starts_with("/ui/csc-providers") => provider["id"].as_str().unwrap(),
                    _ if p.starts_with("/ui/certificates") => cert["id"].as_str().unwrap(),
                    _ if p.starts_with("/ui/devices") => dev["id"].as_str().unwrap(),
                    _ => "00000000-0000-0000-0000-000000000000",
                },
            )
            .replace("{action}", if p.starts_with("/ui/devices") { "activate" } else { "revoke" })
            .replace("{decision}", "approve")
            .replace("{object_type}", "certificate")
            .replace("{object_id}", cert["id"].as_str().unwrap())
            .replace("{name}", "sigil.css")
        };
        // The holder of a session with no permission at all (beyond being a key).
        let (_, nothing) = key(&s, "nothing", &["self_service:use"]).await;
        let mut signed = Browser::new(&s);
        assert_eq!(signed.sign_in(&nothing).await.status, 303);
        let token = signed.csrf().await;
        let mut anon = Browser::new(&s);
        for (method, template) in sigil_api::ui::ROUTES {
            let path = fill(template);
            let public = matches!(*template, "/ui/login" | "/ui/assets/{name}");
            let m = Method::from_bytes(method.as_bytes()).unwrap();
            let p = anon
                .send(m.clone(), &path, (m == Method::POST).then_some(&[("csrf", "x")][..]))
                .await;
            if public {
                assert!(p.status < 500, "{method} {path}: {}", p.status);
            } else {
                assert_eq!(p.status, 303, "{method} {path} without a session");
                assert!(p.location.starts_with("/ui/login"), "{method} {path}: {}", p.location);
            }
            if public || *template == "/ui/" || *template == "/ui/logout" {
                continue;
            }
            let form = [("csrf", token.as_str()), ("reason", "matrix")];
            let p = signed.send(m.clone(), &path, (m == Method::POST).then_some(&form[..])).await;
            assert!(
                p.status == 403 || p.status == 404,
                "{method} {path} with a session of a key without permissions: {} {}",
                p.status,
                &p.body[..300.min(p.body.len())]
            );
        }
        // Nothing changed.
        let (_, c) = json(
            s.admin(Method::GET, &format!("/api/v1/certificates/{}", cert["id"].as_str().unwrap()))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(c["status"], "active");
        let (_, k) =
            json(s.admin(Method::GET, &format!("/api/v1/api-keys/{key_id}")).send().await.unwrap())
                .await;
        assert_eq!(k["status"], "active");
        let (_, d) = json(
            s.admin(Method::GET, &format!("/api/v1/devices/{}", dev["id"].as_str().unwrap()))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(d["status"], "registered");
        let (st, _) = json(
            s.admin(
                Method::GET,
                &format!("/api/v1/csc-providers/{}", provider["id"].as_str().unwrap()),
            )
            .send()
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(st, 200);
        s.stop().await;
    }
}

fn ensure_browser() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if !std::path::Path::new("/usr/bin/chromium").exists() {
            let install = || {
                Command::new("apt-get")
                    .args(["install", "-y", "-q", "chromium"])
                    .env("DEBIAN_FRONTEND", "noninteractive")
                    .status()
                    .is_ok_and(|s| s.success())
            };
            if !install() {
                let _ = Command::new("apt-get").args(["update", "-q"]).status();
                assert!(
                    install(),
                    "apt-get install chromium failed (the UI test needs Debian's Chromium)"
                );
            }
        }
        let have = Command::new("python3")
            .args([
                "-c",
                "import importlib.metadata as m; assert m.version('playwright') == '1.65.2'",
            ])
            .status()
            .is_ok_and(|s| s.success());
        if !have {
            // Only the Python package: its own browser download (`playwright install`) is never
            // run; the test drives Debian's Chromium.
            let st = Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    "--break-system-packages",
                    "playwright==1.65.2",
                ])
                .status()
                .expect("python3 with pip (the UI test installs playwright from PyPI)");
            assert!(st.success(), "pip install playwright failed");
        }
    });
}

#[tokio::test]
async fn the_admin_ui_works_end_to_end_in_chromium() {
    ensure_browser();
    // One backend: the browser exercises pages, and every page is the REST API, whose storage
    // behaviour the other tests prove on both databases.
    let db = backends().await.remove(0);
    let s = TestServer::start(&db).await;
    let tmp = tempfile::tempdir().unwrap();
    let (csr, _) = openssl_csr(tmp.path(), "alice", "ec:P-256", "/CN=alice.example", None);
    let (st, cert) = s.issue(&csr, "tls-client").await;
    assert_eq!(st, 201, "{cert}");
    let [a]: [String; 1] = s.offices(&["A"]).await.try_into().unwrap();
    let dev = s
        .create(
            "/api/v1/devices",
            json!({"kind": "smart_card", "serial": "SC-UI-1", "office_id": a}),
        )
        .await;
    // Screenshots go to SIGIL_SCREENSHOTS (docs/screenshots/ is refreshed that way), else away.
    let shots = std::env::var("SIGIL_SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| tmp.path().join("shots"));
    std::fs::create_dir_all(&shots).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/ui/e2e.py");
    let o = tokio::process::Command::new("python3")
        .args([
            script,
            &s.url,
            s.data_dir().join("tls/ca.pem").to_str().unwrap(),
            &s.admin_key,
            cert["id"].as_str().unwrap(),
            cert["serial"].as_str().unwrap(),
            dev["id"].as_str().unwrap(),
            shots.to_str().unwrap(),
        ])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "the browser run failed:\n{stderr}");
    let out: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(out["console_errors"], json!([]), "console errors in the browser");
    assert_eq!(
        out["steps"],
        json!([
            "signed in",
            "certificate revoked",
            "api key generated and revoked",
            "csc provider created",
            "device activated",
            "audit verified",
            "signed out"
        ])
    );
    // The form's key works on the REST API with exactly what the form chose, until revoked.
    assert!(out["secret"].as_str().unwrap().starts_with("sgk_"));
    assert_eq!(out["secret_can_read_certificates"], 200);
    assert_eq!(out["secret_can_list_keys"], 403);
    assert_eq!(out["secret_after_revoke"], 401);
    let made = &out["made_key"];
    assert_eq!(made["permissions"], json!(["certificates:read"]));
    assert_eq!(made["rate_limit"], json!({"requests": 1000, "per": "hour"}));
    assert_eq!(made["ip_whitelist"], json!(["127.0.0.1/32", "::1/128"]));
    assert!(made["expires_at"].as_str().unwrap().ends_with("T00:00:00Z"));
    assert!(made["last_used_at"].is_string(), "its use was recorded");
    assert!(!out["name_error"].as_str().unwrap().is_empty());
    // The provider made in the form is what the CSC API tells clients, logo included.
    let info = &out["csc_info"];
    assert_eq!(info["name"], "Sigil Test Signing");
    assert_eq!(info["region"], "SI");
    assert_eq!(info["lang"], "sl");
    assert_eq!(info["authType"], json!(["basic", "TLS"]));
    assert!(info["logo"].as_str().unwrap().starts_with("data:image/png;base64,iVBOR"));
    // The certificate revoked in the browser is revoked for relying parties.
    let ocsp = s.ocsp_text(&cert).await;
    assert!(
        ocsp.contains("Cert Status: revoked") && ocsp.contains("Revocation Reason: keyCompromise"),
        "{ocsp}"
    );
    // ... and audited as the session's key.
    let revoked = audit_actions(&s, "certificate.revoke").await;
    let admin = audit_actions(&s, "ui_session.sign_in").await[0]["actor"]["id"].clone();
    assert_eq!(revoked[0]["actor"]["id"], admin);
    assert!(out["audit_csv_head"].as_str().unwrap().starts_with("seq,id,occurred_at"));
    for (path, width) in out["phone_widths"].as_object().unwrap() {
        assert!(width.as_u64().unwrap() <= 390, "{path} scrolls sideways at 390 px: {width}");
    }
    s.stop().await;
}

#[tokio::test]
async fn operators_approve_and_reject_requests_and_act_on_certificates_from_the_ui() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let tmp = tempfile::tempdir().unwrap();
        let [a]: [String; 1] = s.offices(&["A"]).await.try_into().unwrap();
        let person = s
            .create(
                "/api/v1/people",
                json!({"office_id": a, "given_name": "Ana", "family_name": "Novak"}),
            )
            .await;
        let mut ids = Vec::new();
        for cn in ["ana-1", "ana-2"] {
            let (csr, _) = openssl_csr(tmp.path(), cn, "ec:P-256", &format!("/CN={cn}"), None);
            let r = s
                .create(
                    "/api/v1/requests",
                    json!({"person_id": person["id"],
                    "certificates": [{"profile": "tls-client", "csr": csr}]}),
                )
                .await;
            ids.push(r["id"].as_str().unwrap().to_owned());
        }
        // The requester is the administrator; another key decides (separation of duties).
        let (_, boss) = s
            .operator_key(
                "boss",
                &["request-approver"],
                json!({"offices": [a]}),
                &["requests:*", "certificates:read"],
            )
            .await;
        let mut b = Browser::new(&s);
        b.sign_in(&boss).await;
        let p = b.get("/ui/requests").await;
        assert_eq!(p.status, 200);
        assert_eq!(p.body.matches(">Approve</button>").count(), 2, "{}", p.body);
        let token = b.csrf().await;
        let p = b.post(&format!("/ui/requests/{}/approve", ids[0]), &[("csrf", &token)]).await;
        assert_eq!((p.status, p.location.as_str()), (303, "/ui/requests?done=saved"), "{}", p.body);
        let p = b
            .post(
                &format!("/ui/requests/{}/reject", ids[1]),
                &[("csrf", &token), ("reason", "wrong CN")],
            )
            .await;
        assert_eq!(p.status, 303, "{}", p.body);
        let get = |id: String| {
            let s = &s;
            async move {
                json(s.admin(Method::GET, &format!("/api/v1/requests/{id}")).send().await.unwrap())
                    .await
                    .1
            }
        };
        let approved = get(ids[0].clone()).await;
        assert_eq!(approved["status"], "completed", "{approved}");
        let rejected = get(ids[1].clone()).await;
        assert_eq!(rejected["status"], "rejected");
        assert_eq!(rejected["decision"]["comment"], "wrong CN", "{rejected}");
        let p = b.get("/ui/requests").await;
        assert!(!p.body.contains(">Approve</button>"), "the queue is empty");

        // Suspend and reactivate the issued certificate with the administrator's session.
        let (_, list) =
            json(s.admin(Method::GET, "/api/v1/certificates?q=ana-1").send().await.unwrap()).await;
        let cert = list["items"][0]["id"].as_str().unwrap().to_owned();
        let mut admin = Browser::new(&s);
        admin.sign_in(&s.admin_key).await;
        let token = admin.csrf().await;
        let p = admin.get(&format!("/ui/certificates/{cert}")).await;
        assert!(p.body.contains(">Suspend</a>") && !p.body.contains(">Reactivate</a>"));
        let p = admin
            .post(
                &format!("/ui/certificates/{cert}/suspend"),
                &[("csrf", &token), ("comment", "lost badge")],
            )
            .await;
        assert_eq!(p.status, 303, "{}", p.body);
        let p = admin.get(&format!("/ui/certificates/{cert}?done=saved")).await;
        assert!(
            p.body.contains("badge suspended") && p.body.contains(">Reactivate</a>"),
            "{}",
            p.body
        );
        let p = admin
            .post(&format!("/ui/certificates/{cert}/reactivate"), &[("csc", "x"), ("csrf", &token)])
            .await;
        assert_eq!(p.status, 303, "{}", p.body);
        let (_, c) = json(
            s.admin(Method::GET, &format!("/api/v1/certificates/{cert}")).send().await.unwrap(),
        )
        .await;
        assert_eq!(c["status"], "active");
        // The certificate's own trail, in order, each change by the session's key.
        let p = admin.get(&format!("/ui/audit/objects/certificate/{cert}")).await;
        assert_eq!(p.status, 200);
        let at = |a: &str| {
            p.body.find(&format!("<td>{a}</td>")).unwrap_or_else(|| panic!("{a}: {}", p.body))
        };
        assert!(at("certificate.issue") < at("certificate.suspend"));
        assert!(at("certificate.suspend") < at("certificate.reactivate"));
        // An action that is not one is not sent anywhere.
        let p = admin.post(&format!("/ui/certificates/{cert}/delete"), &[("csrf", &token)]).await;
        assert_eq!((p.status, p.location), (303, format!("/ui/certificates/{cert}")));
        s.stop().await;
    }
}

#[tokio::test]
async fn keys_are_rotated_and_providers_edited_and_deleted_from_the_ui() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let (id, old) = key(&s, "rotating", &["certificates:read"]).await;
        let mut b = Browser::new(&s);
        b.sign_in(&s.admin_key).await;
        let token = b.csrf().await;
        let p = b.get(&format!("/ui/api-keys/{id}/rotate")).await;
        assert!(p.body.contains("Rotate the key “rotating”?"), "{}", p.body);
        let p = b.post(&format!("/ui/api-keys/{id}/rotate"), &[("csrf", &token)]).await;
        assert_eq!(p.status, 200, "{}", p.body);
        let at = p.body.find("sgk_").unwrap();
        let new = p.body[at..].split('<').next().unwrap().to_owned();
        assert_ne!(new, old);
        let r = s.req(Method::GET, "/api/v1/certificates", &new).send().await.unwrap();
        assert_eq!(r.status(), 200);

        // A provider with a logo, edited without a new file: the logo stays.
        let png = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGNgYGAAAAAEAAH2FzhVAAAAAElFTkSuQmCC";
        let p = s
            .create(
                "/api/v1/csc-providers",
                json!({"name": "Old name", "region": "SI", "logo": png}),
            )
            .await;
        let pid = p["id"].as_str().unwrap();
        let page = b.get(&format!("/ui/csc-providers/{pid}")).await;
        assert!(page.body.contains("value=\"Old name\""), "{}", page.body);
        // The page links the logo rather than inlining it; the link gives the image.
        assert!(
            page.body.contains(&format!("src=\"/ui/csc-providers/{pid}/logo\"")),
            "{}",
            page.body
        );
        let r = b
            .client
            .get(format!("{}/ui/csc-providers/{pid}/logo", s.url))
            .header("cookie", b.cookie.clone().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["content-type"], "image/png");
        assert!(r.bytes().await.unwrap().starts_with(b"\x89PNG"));
        let r = b
            .post(
                &format!("/ui/csc-providers/{pid}"),
                &[
                    ("csrf", &token),
                    ("name", "New name"),
                    ("region", "at"),
                    ("language", "de"),
                    ("auth_types", "basic"),
                    ("auth_types", "TLS"),
                    ("description", "d"),
                ],
            )
            .await;
        assert_eq!(
            (r.status, r.location.as_str()),
            (303, "/ui/csc-providers?done=saved"),
            "{}",
            r.body
        );
        let (_, v) = json(
            s.admin(Method::GET, &format!("/api/v1/csc-providers/{pid}")).send().await.unwrap(),
        )
        .await;
        assert_eq!(
            (v["name"].as_str(), v["region"].as_str(), v["logo"].as_str()),
            (Some("New name"), Some("AT"), Some(png))
        );
        assert_eq!(v["auth_types"], json!(["basic", "TLS"]));
        // A bad field comes back on the form, next to it.
        let r = b
            .post(
                &format!("/ui/csc-providers/{pid}"),
                &[
                    ("csrf", &token),
                    ("name", "New name"),
                    ("region", "Slovenia"),
                    ("language", "de"),
                    ("auth_types", "basic"),
                ],
            )
            .await;
        assert_eq!(r.status, 200);
        assert!(r.body.contains("id=\"region-error\""), "{}", r.body);
        let r = b.post(&format!("/ui/csc-providers/{pid}/delete"), &[("csrf", &token)]).await;
        assert_eq!((r.status, r.location.as_str()), (303, "/ui/csc-providers?done=deleted"));
        let (st, _) = json(
            s.admin(Method::GET, &format!("/api/v1/csc-providers/{pid}")).send().await.unwrap(),
        )
        .await;
        assert_eq!(st, 404);
        assert_eq!(audit_actions(&s, "csc_provider.delete").await.len(), 1);
        s.stop().await;
    }
}

#[tokio::test]
async fn pages_hold_up_to_odd_input_and_keys_that_may_read_nothing() {
    let db = backends().await.remove(0);
    let s = TestServer::start(&db).await;
    let mut b = Browser::new(&s);
    // A `next` with a control character is not followed (it would not fit a Location header).
    let p = b.post("/ui/login", &[("api_key", &s.admin_key), ("next", "/ui/certificates\n")]).await;
    assert_eq!((p.status, p.location.as_str()), (303, "/ui/certificates"));
    // An unknown rate unit is said next to its field.
    let token = b.csrf().await;
    let p = b
        .post(
            "/ui/api-keys",
            &[
                ("csrf", &token),
                ("name", "weekly"),
                ("expires", "never"),
                ("permissions", "audit:read"),
                ("rate_requests", "5"),
                ("rate_per", "week"),
            ],
        )
        .await;
    assert_eq!(p.status, 200);
    assert!(p.body.contains("id=\"rate_per-error\""), "{}", p.body);
    let (_, reader) = key(&s, "no-profiles", &["certificates:read"]).await;
    let mut r = Browser::new(&s);
    r.sign_in(&reader).await;
    // ... and a page never asks the API for what the key may not read.
    assert_eq!(r.get("/ui/certificates").await.status, 200);
    let denied = audit_actions(&s, "access.denied").await;
    assert!(denied.is_empty(), "the UI caused refusals: {denied:?}");
    // A key that may read no section gets a page with its sign-out, not a dead end.
    let (_, nothing) = key(&s, "profiles-only", &["profiles:read"]).await;
    let mut n = Browser::new(&s);
    let p = n.sign_in(&nothing).await;
    assert_eq!(p.location, "/ui/");
    let p = n.get("/ui/").await;
    assert_eq!(p.status, 200);
    assert!(p.body.contains("Nothing to show") && p.body.contains("Sign out"), "{}", p.body);
    let p = n.get("/ui/no-such-page").await;
    assert_eq!(p.status, 404);
    assert!(p.body.contains("Sign out"), "a signed-in 404 keeps the menu");
    // A bad CSRF token on sign-out is a page, and the session stays.
    let p = n.post("/ui/logout", &[("csrf", "forged")]).await;
    assert_eq!(p.status, 403);
    assert!(p.body.contains("<!doctype html>"));
    assert_eq!(n.get("/ui/").await.status, 200);
    s.stop().await;
}
