//! The attacks of the authorization review (issue 13), each replayed against the real server on
//! both backends and shown to fail: key takeover, escape from scope by minting keys,
//! cross-office revocation through a device, signers out of scope, a plugin as a confused
//! deputy, the audit trail across offices, dual control by one person, a holder lifting an
//! operator's suspension, CSC tokens that outlive a password, and a division granted blind.

use reqwest::Method;
use serde_json::{Value, json};
use sigil_tests::{Options, TestServer, backends, json, openssl_csr};

async fn call(
    s: &TestServer,
    key: &str,
    m: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = s.req(m, path, key);
    if let Some(b) = body {
        r = r.json(&b);
    }
    json(r.send().await.unwrap()).await
}

/// An RFC 3339 instant `hours` from now.
fn in_hours(hours: i64) -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::hours(hours))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

/// Organization Acme with division North (office A) and South (office B, and nothing else).
async fn two_offices(s: &TestServer) -> (String, String, String, String) {
    let org = id(&s.create("/api/v1/organizations", json!({"name": "Acme"})).await);
    let div = |n: &str| json!({"name": n, "organization_id": org});
    let north = id(&s.create("/api/v1/divisions", div("North")).await);
    let south = id(&s.create("/api/v1/divisions", div("South")).await);
    let office = |c: &str, d: &str| json!({"division_id": d, "code": c, "name": c});
    let a = id(&s.create("/api/v1/offices", office("A", &north)).await);
    let b = id(&s.create("/api/v1/offices", office("B", &south)).await);
    (a, b, north, south)
}

async fn person(s: &TestServer, office: &str, name: &str) -> String {
    id(&s
        .create(
            "/api/v1/people",
            json!({"office_id": office, "given_name": name, "family_name": "Test"}),
        )
        .await)
}

async fn admin_key_id(s: &TestServer) -> String {
    let (_, keys) = call(s, &s.admin_key, Method::GET, "/api/v1/api-keys?name=admin", None).await;
    keys["items"].as_array().unwrap().iter().find(|k| k["name"] == "admin").map(id).unwrap()
}

#[tokio::test]
async fn a_key_cannot_rotate_update_revoke_or_rebind_a_key_with_more_authority() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let admin = admin_key_id(&s).await;
        let officer =
            s.create_key(json!({"name": "security-officer", "permissions": ["api_keys:*"]})).await;
        let ok = officer["key"].as_str().unwrap();
        let fp = "ab".repeat(32);
        for (m, path, body) in [
            (
                Method::POST,
                format!("/api/v1/api-keys/{admin}/rotate"),
                Some(json!({"grace_period_seconds": 3600})),
            ),
            (
                Method::PATCH,
                format!("/api/v1/api-keys/{admin}"),
                Some(json!({"client_cert_sha256": fp})),
            ),
            (
                Method::PATCH,
                format!("/api/v1/api-keys/{admin}"),
                Some(json!({"ip_whitelist": ["10.9.9.9"]})),
            ),
            (Method::DELETE, format!("/api/v1/api-keys/{admin}"), None),
        ] {
            let (st, b) = call(&s, ok, m.clone(), &path, body).await;
            assert_eq!(
                (st, b["code"].as_str()),
                (403, Some("authority_exceeded")),
                "{m} {path}: {b}"
            );
        }
        // The administrator key is untouched and still works.
        let (st, k) =
            call(&s, &s.admin_key, Method::GET, &format!("/api/v1/api-keys/{admin}"), None).await;
        assert_eq!(st, 200);
        assert!(k["client_cert_sha256"].is_null() && k["ip_whitelist"] == json!([]), "{k}");
        // Within its authority it works: it rotates itself.
        let (st, b) = call(
            &s,
            ok,
            Method::POST,
            &format!("/api/v1/api-keys/{}/rotate", id(&officer)),
            Some(json!({})),
        )
        .await;
        assert_eq!(st, 200, "{b}");

        // The same rule for operators: a manager of operators cannot rebind or disable one
        // who holds more than it does, but can change one who holds less.
        s.create("/api/v1/roles", json!({"name": "officer", "permissions": ["*"]})).await;
        s.create("/api/v1/roles", json!({"name": "opmgr", "permissions": ["operators:*"]})).await;
        s.create("/api/v1/roles", json!({"name": "viewer", "permissions": ["operators:read"]}))
            .await;
        let boss = id(&s
            .create("/api/v1/operators", json!({"username": "boss", "roles": ["officer"]}))
            .await);
        let clerk = id(&s
            .create("/api/v1/operators", json!({"username": "clerk", "roles": ["viewer"]}))
            .await);
        let (_, mk) = s.operator_key("mgr", &["opmgr"], json!({}), &["operators:*"]).await;
        let (st, b) = call(
            &s,
            &mk,
            Method::PATCH,
            &format!("/api/v1/operators/{boss}"),
            Some(json!({"client_cert_sha256": fp})),
        )
        .await;
        assert_eq!((st, b["code"].as_str()), (403, Some("authority_exceeded")), "{b}");
        let (st, b) =
            call(&s, &mk, Method::POST, &format!("/api/v1/operators/{boss}/disable"), None).await;
        assert_eq!((st, b["code"].as_str()), (403, Some("authority_exceeded")), "{b}");
        let (st, b) = call(
            &s,
            &mk,
            Method::PATCH,
            &format!("/api/v1/operators/{clerk}"),
            Some(json!({"client_cert_sha256": fp})),
        )
        .await;
        assert_eq!(st, 200, "{b}");
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_scoped_key_mints_only_keys_within_its_scope_and_lifetime() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let (a, b, _, _) = two_offices(&s).await;
        let (pa, pb) = (person(&s, &a, "Ana").await, person(&s, &b, "Bor").await);
        let perms = ["api_keys:*", "people:read", "self_service:use"];
        s.create("/api/v1/roles", json!({"name": "keymgr", "permissions": perms})).await;
        let op_a = id(&s
            .create(
                "/api/v1/operators",
                json!({"username": "op-a", "roles": ["keymgr"], "offices": [a]}),
            )
            .await);
        let op_b = id(&s
            .create(
                "/api/v1/operators",
                json!({"username": "op-b", "roles": ["keymgr"], "offices": [b]}),
            )
            .await);
        let ka = s
            .create_key(
                json!({"name": "ka", "permissions": perms, "operator_id": op_a, "expires": "30d"}),
            )
            .await;
        let key_a = ka["key"].as_str().unwrap();
        let kb =
            s.create_key(json!({"name": "kb", "permissions": perms, "operator_id": op_b})).await;

        // A key it mints without naming an operator is bound to its own operator.
        let (st, m) = call(
            &s,
            key_a,
            Method::POST,
            "/api/v1/api-keys",
            Some(json!({"name": "m1", "permissions": ["people:read"], "expires": in_hours(48)})),
        )
        .await;
        assert_eq!(st, 201, "{m}");
        assert_eq!(m["operator_id"], json!(op_a));
        assert_eq!(m["parent_id"], ka["id"]);
        let mk = m["key"].as_str().unwrap();
        assert_eq!(call(&s, mk, Method::GET, &format!("/api/v1/people/{pa}"), None).await.0, 200);
        assert_eq!(call(&s, mk, Method::GET, &format!("/api/v1/people/{pb}"), None).await.0, 404);

        // Never beyond its own expiry.
        for expires in ["never", "60d"] {
            let (st, e) = call(&s, key_a, Method::POST, "/api/v1/api-keys", Some(json!({"name": format!("long-{expires}"), "permissions": ["people:read"], "expires": expires}))).await;
            assert_eq!((st, e["code"].as_str()), (400, Some("expiry_beyond_creator")), "{e}");
        }
        // Never for another office's operator or person (the same answer as a missing one).
        let (st, e) = call(&s, key_a, Method::POST, "/api/v1/api-keys", Some(json!({"name": "x", "permissions": ["people:read"], "expires": in_hours(24), "operator_id": op_b}))).await;
        assert_eq!((st, e["code"].as_str()), (400, Some("unknown_operator")), "{e}");
        let (st, e) = call(&s, key_a, Method::POST, "/api/v1/api-keys", Some(json!({"name": "h", "permissions": ["self_service:use"], "expires": in_hours(24), "holder_id": pb}))).await;
        assert_eq!((st, e["code"].as_str()), (400, Some("unknown_person")), "{e}");
        // A holder's key carries self-service only.
        let (st, e) = call(&s, key_a, Method::POST, "/api/v1/api-keys", Some(json!({"name": "h", "permissions": ["people:read"], "expires": in_hours(24), "holder_id": pa}))).await;
        assert_eq!((st, e["code"].as_str()), (400, Some("invalid_permission")), "{e}");
        let (st, e) = call(&s, key_a, Method::POST, "/api/v1/api-keys", Some(json!({"name": "h", "permissions": ["self_service:use"], "expires": in_hours(24), "holder_id": pa}))).await;
        assert_eq!(st, 201, "{e}");
        // Unbinding a key it minted would widen it to every office.
        let (st, e) = call(
            &s,
            key_a,
            Method::PATCH,
            &format!("/api/v1/api-keys/{}", id(&m)),
            Some(json!({"operator_id": null})),
        )
        .await;
        assert_eq!((st, e["code"].as_str()), (403, Some("authority_exceeded")), "{e}");

        // It lists only the keys within its scope; the others do not exist for it.
        let (_, list) = call(&s, key_a, Method::GET, "/api/v1/api-keys", None).await;
        let names: Vec<&str> =
            list["items"].as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap()).collect();
        assert!(
            names.contains(&"m1") && names.contains(&"ka") && names.contains(&"h"),
            "{names:?}"
        );
        assert!(!names.contains(&"admin") && !names.contains(&"kb"), "{names:?}");
        assert_eq!(
            call(&s, key_a, Method::GET, &format!("/api/v1/api-keys/{}", id(&kb)), None).await.0,
            404
        );

        // Revoking a key with cascade revokes what it minted, and theirs.
        let (st, m2) = call(
            &s,
            mk,
            Method::POST,
            "/api/v1/api-keys",
            Some(json!({"name": "m2", "permissions": ["people:read"], "expires": in_hours(24)})),
        )
        .await;
        assert_eq!(st, 403, "m1 holds no api_keys permission: {m2}");
        let (_, m2) = call(&s, key_a, Method::POST, "/api/v1/api-keys", Some(json!({"name": "m2", "permissions": ["api_keys:create", "people:read"], "expires": in_hours(24)}))).await;
        let (st, m3) = call(
            &s,
            m2["key"].as_str().unwrap(),
            Method::POST,
            "/api/v1/api-keys",
            Some(json!({"name": "m3", "permissions": ["people:read"], "expires": in_hours(23)})),
        )
        .await;
        assert_eq!(st, 201, "{m3}");
        let (st, _) = call(
            &s,
            &s.admin_key,
            Method::DELETE,
            &format!("/api/v1/api-keys/{}?cascade=true", ka["id"].as_str().unwrap()),
            None,
        )
        .await;
        assert_eq!(st, 200);
        for k in [key_a, mk, m2["key"].as_str().unwrap(), m3["key"].as_str().unwrap()] {
            assert_eq!(
                call(&s, k, Method::GET, &format!("/api/v1/people/{pa}"), None).await.0,
                401
            );
        }
        // Without cascade, the keys it minted stay (the administrator decides).
        let (_, kb2) = call(
            &s,
            kb["key"].as_str().unwrap(),
            Method::POST,
            "/api/v1/api-keys",
            Some(json!({"name": "kb2", "permissions": ["people:read"]})),
        )
        .await;
        call(&s, &s.admin_key, Method::DELETE, &format!("/api/v1/api-keys/{}", id(&kb)), None)
            .await;
        assert_eq!(
            call(
                &s,
                kb2["key"].as_str().unwrap(),
                Method::GET,
                &format!("/api/v1/people/{pb}"),
                None
            )
            .await
            .0,
            200
        );
        s.stop().await;
        db.cleanup().await;
    }
}

/// An issuance request for a fresh P-256 key named `n` (its CSR made in `dir`), in `office`
/// or in none.
fn cert_body(dir: &std::path::Path, n: &str, office: Option<&str>) -> Value {
    let (csr, _) = openssl_csr(dir, n, "ec:P-256", &format!("/CN={n}"), None);
    let mut body = json!({"csr": csr, "profile": "tls-client"});
    if let Some(o) = office {
        body["office_id"] = json!(o);
    }
    body
}

#[tokio::test]
async fn a_device_officer_cannot_link_or_revoke_another_offices_certificate() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let (a, b, _, _) = two_offices(&s).await;
        let tmp = tempfile::tempdir().unwrap();
        let cert = |n: &str, office: Option<&str>| cert_body(tmp.path(), n, office);
        let cert_b = id(&s.create("/api/v1/certificates", cert("b", Some(&b))).await);
        let cert_none = id(&s.create("/api/v1/certificates", cert("none", None)).await);
        let dev = id(&s
            .create(
                "/api/v1/devices",
                json!({"kind": "smart_card", "serial": "SC-1", "office_id": a}),
            )
            .await);
        let perms = ["devices:*", "device:*"];
        s.create("/api/v1/roles", json!({"name": "devofficer", "permissions": perms})).await;
        let (_, k) =
            s.operator_key("dev-a", &["devofficer"], json!({"offices": [a]}), &perms).await;
        let link = |c: String| json!({"certificate_id": c});
        let path = format!("/api/v1/devices/{dev}/certificates");
        let (_, missing) =
            call(&s, &k, Method::POST, &path, Some(link(uuid::Uuid::now_v7().to_string()))).await;
        for c in [&cert_b, &cert_none] {
            let (st, e) = call(&s, &k, Method::POST, &path, Some(link(c.clone()))).await;
            assert_eq!(st, 400, "{e}");
            assert_eq!(e["code"], missing["code"], "no oracle: the same answer as a missing one");
            assert_eq!(e["code"], "unknown_certificate");
        }
        // Even if an administrator linked them, the officer's cascade does not reach them.
        for c in [&cert_b, &cert_none] {
            let (st, _) = call(&s, &s.admin_key, Method::POST, &path, Some(link(c.clone()))).await;
            assert_eq!(st, 200);
        }
        call(&s, &s.admin_key, Method::POST, &format!("/api/v1/devices/{dev}/activate"), None)
            .await;
        let (st, d) = call(
            &s,
            &k,
            Method::POST,
            &format!("/api/v1/devices/{dev}/damaged"),
            Some(json!({"reason": "dropped"})),
        )
        .await;
        assert_eq!((st, d["status"].as_str()), (200, Some("damaged")), "{d}");
        for c in [&cert_b, &cert_none] {
            let (_, v) =
                call(&s, &s.admin_key, Method::GET, &format!("/api/v1/certificates/{c}"), None)
                    .await;
            assert_eq!(v["status"], "active", "{v}");
        }
        // Neither the device nor its history names them to the officer.
        for path in [format!("/api/v1/devices/{dev}"), format!("/api/v1/devices/{dev}/history")] {
            let (st, v) = call(&s, &k, Method::GET, &path, None).await;
            assert_eq!(st, 200);
            let text = v.to_string();
            assert!(!text.contains(&cert_b) && !text.contains(&cert_none), "{path}: {text}");
        }
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_serial_lookup_finds_no_certificate_outside_the_callers_offices() {
    // The list by serial takes its own query shape on SQLite (the serial's index drives it):
    // the caller's office scope must still hold there, alone and beside other filters.
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let (a, b, _, _) = two_offices(&s).await;
        let tmp = tempfile::tempdir().unwrap();
        let cert = |n: &str, office: Option<&str>| cert_body(tmp.path(), n, office);
        let serial = |v: &Value| v["serial"].as_str().unwrap().to_owned();
        let in_a = serial(&s.create("/api/v1/certificates", cert("in-a", Some(&a))).await);
        let in_b = serial(&s.create("/api/v1/certificates", cert("in-b", Some(&b))).await);
        let none = serial(&s.create("/api/v1/certificates", cert("none", None)).await);
        s.create("/api/v1/roles", json!({"name": "clerk-a", "permissions": ["certificates:read"]}))
            .await;
        let (_, k) = s
            .operator_key("clerk-a", &["clerk-a"], json!({"offices": [a]}), &["certificates:read"])
            .await;
        for (sn, visible) in [(&in_a, true), (&in_b, false), (&none, false)] {
            for extra in ["", "&status=active", "&profile=tls-client&sort=-issued_at"] {
                let path = format!("/api/v1/certificates?serial={sn}{extra}");
                let (st, v) = call(&s, &k, Method::GET, &path, None).await;
                assert_eq!(st, 200, "{path}: {v}");
                let n = v["items"].as_array().unwrap().len();
                assert_eq!(n, usize::from(visible), "{path}: {v}");
                // The administrator sees each of them.
                let (_, all) = call(&s, &s.admin_key, Method::GET, &path, None).await;
                assert_eq!(all["items"].as_array().unwrap().len(), 1, "{path}: {all}");
            }
        }
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn signers_outside_the_callers_scope_do_not_exist_for_it() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let (a, b, _, _) = two_offices(&s).await;
        let (pa, pb) = (person(&s, &a, "Ana").await, person(&s, &b, "Bor").await);
        let sa = id(&s
            .create(
                "/api/v1/signers",
                json!({"username": "ana", "password": "password-a", "person_id": pa}),
            )
            .await);
        let sb = id(&s
            .create(
                "/api/v1/signers",
                json!({"username": "bor", "password": "password-b", "person_id": pb}),
            )
            .await);
        let none = id(&s
            .create("/api/v1/signers", json!({"username": "robot", "password": "password-r"}))
            .await);
        let cb = s.credential("bor", "p256", "123456", 1, 1).await["credential_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let perms = ["signers:*", "people:read"];
        s.create("/api/v1/roles", json!({"name": "ra", "permissions": perms})).await;
        let (_, k) = s.operator_key("ra-a", &["ra"], json!({"offices": [a]}), &perms).await;
        let (_, list) = call(&s, &k, Method::GET, "/api/v1/signers", None).await;
        let ids: Vec<String> = list["items"].as_array().unwrap().iter().map(id).collect();
        assert_eq!(ids, vec![sa.clone()]);
        for path in [
            format!("/api/v1/signers/{sb}"),
            format!("/api/v1/signers/{none}"),
            format!("/api/v1/signing-credentials/{cb}"),
        ] {
            assert_eq!(call(&s, &k, Method::GET, &path, None).await.0, 404, "{path}");
        }
        let (st, _) = call(
            &s,
            &k,
            Method::PATCH,
            &format!("/api/v1/signers/{sb}"),
            Some(json!({"password": "taken-over"})),
        )
        .await;
        assert_eq!(st, 404);
        let (st, _) = call(
            &s,
            &k,
            Method::PATCH,
            &format!("/api/v1/signing-credentials/{cb}"),
            Some(json!({"pin": "000000"})),
        )
        .await;
        assert_eq!(st, 404);
        let (st, e) = call(
            &s,
            &k,
            Method::POST,
            "/api/v1/signing-credentials",
            Some(json!({"signer": "bor", "key_algorithm": "p256", "pin": "123456"})),
        )
        .await;
        assert_eq!((st, e["code"].as_str()), (400, Some("unknown_signer")), "{e}");
        let (_, creds) = call(&s, &k, Method::GET, "/api/v1/signing-credentials", None).await;
        assert_eq!(creds["items"], json!([]));
        // Bor's password is still his own.
        s.csc_login("v1", "bor", "password-b").await;

        // `signers:write` issues document-signing certificates only.
        let w = s.create_key(json!({"name": "w", "permissions": ["signers:write"]})).await;
        let wk = w["key"].as_str().unwrap();
        let (st, e) = call(&s, wk, Method::POST, "/api/v1/signing-credentials", Some(json!({"signer": "ana", "key_algorithm": "p256", "pin": "123456", "profile": "tls-client"}))).await;
        assert_eq!((st, e["code"].as_str()), (403, Some("permission_denied")), "{e}");
        let (st, e) = call(
            &s,
            wk,
            Method::POST,
            "/api/v1/signing-credentials",
            Some(json!({"signer": "ana", "key_algorithm": "p256", "pin": "123456"})),
        )
        .await;
        assert_eq!(st, 201, "{e}");
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn an_endpoint_plugin_acts_with_no_more_than_its_callers_authority_and_exposure() {
    for db in backends().await {
        let toml = sigil_tests::proxy_plugin_toml();
        let s = TestServer::start_with(&db, Options { toml, ..Default::default() }).await;
        let (a, b, _, _) = two_offices(&s).await;
        let tmp = tempfile::tempdir().unwrap();
        let mut certs = Vec::new();
        for (n, o) in [("a", &a), ("b", &b)] {
            let (csr, _) = openssl_csr(tmp.path(), n, "ec:P-256", &format!("/CN={n}"), None);
            certs.push(id(&s
                .create(
                    "/api/v1/certificates",
                    json!({"csr": csr, "profile": "tls-client", "office_id": o}),
                )
                .await));
        }
        let perms = ["certificates:read", "plugins:invoke:test-proxy"];
        s.create("/api/v1/roles", json!({"name": "reader", "permissions": perms})).await;
        let (_, k) = s.operator_key("reader-a", &["reader"], json!({"offices": [a]}), &perms).await;
        let via = |to: &str| {
            format!(
                "/api/v1/ext/test-proxy/call?method=GET&to={}",
                to.replace('/', "%2F").replace('?', "%3F").replace('=', "%3D")
            )
        };
        assert_eq!(
            call(&s, &k, Method::GET, &via(&format!("/certificates/{}", certs[0])), None).await.0,
            200
        );
        let (st, e) =
            call(&s, &k, Method::GET, &via(&format!("/certificates/{}", certs[1])), None).await;
        assert_eq!((st, e["code"].as_str()), (404, Some("not_found")), "{e}");
        let (st, list) = call(&s, &k, Method::GET, &via("/certificates"), None).await;
        assert_eq!(st, 200, "{list}");
        let ids: Vec<String> = list["items"].as_array().unwrap().iter().map(id).collect();
        assert_eq!(ids, vec![certs[0].clone()], "the plugin lists only what the caller sees");
        // The plugin's own grant (every permission) does not lend the caller any.
        let (st, _) = call(&s, &k, Method::GET, &via("/people"), None).await;
        assert_eq!(st, 403);
        // A key for another plugin cannot call this one.
        let other =
            s.create_key(json!({"name": "other", "permissions": ["plugins:invoke:expiry"]})).await;
        assert_eq!(
            call(&s, other["key"].as_str().unwrap(), Method::GET, &via("/certificates"), None)
                .await
                .0,
            403
        );
        // The caller's exposure rules apply to the plugin's calls: an endpoint for client
        // certificates only, or for other addresses, is refused to it as to the caller.
        let rule = |r: Value| json!({"endpoints": {"GET /api/v1/certificates/{id}": r}});
        for (r, want) in
            [(json!({"auth": "mtls"}), 401), (json!({"allowed_ips": ["10.0.0.0/8"]}), 403)]
        {
            let (st, e) =
                call(&s, &s.admin_key, Method::PUT, "/api/v1/exposure", Some(rule(r))).await;
            assert_eq!(st, 200, "{e}");
            let direct = call(
                &s,
                &s.admin_key,
                Method::GET,
                &format!("/api/v1/certificates/{}", certs[0]),
                None,
            )
            .await
            .0;
            assert_eq!(direct, want);
            let (st, e) =
                call(&s, &k, Method::GET, &via(&format!("/certificates/{}", certs[0])), None).await;
            assert_eq!(st, want, "{e}");
        }
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_restricted_operator_cannot_read_export_or_stream_the_audit_trail() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let (a, _, _, _) = two_offices(&s).await;
        s.create("/api/v1/roles", json!({"name": "auditor-a", "permissions": ["audit:*"]})).await;
        let (_, k) =
            s.operator_key("aud-a", &["auditor-a"], json!({"offices": [a]}), &["audit:*"]).await;
        for path in [
            "/api/v1/audit",
            "/api/v1/audit/export?format=csv",
            "/api/v1/audit/stream",
            &format!("/api/v1/audit/objects/office/{a}"),
        ] {
            let r = s.req(Method::GET, path, &k).send().await.unwrap();
            assert_eq!(r.status(), 403, "{path}");
            let (_, e) = json(r).await;
            assert_eq!(e["code"], "scope_restricted", "{path}: {e}");
        }
        // Verification names no subject: it stays available.
        assert_eq!(call(&s, &k, Method::GET, "/api/v1/audit/verify", None).await.0, 200);
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn dual_control_counts_operators_not_keys_or_plugins() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let (a, _, _, _) = two_offices(&s).await;
        let ana = person(&s, &a, "Ana").await;
        let (_, p) =
            json(s.admin(Method::GET, "/api/v1/profiles/tls-client").send().await.unwrap()).await;
        let mut spec = p["spec"].clone();
        spec["approvals_required"] = json!(2);
        s.create("/api/v1/profiles", json!({"name": "dual", "spec": spec})).await;
        let tmp = tempfile::tempdir().unwrap();
        let request = |n: &str| {
            let (csr, _) = openssl_csr(tmp.path(), n, "ec:P-256", &format!("/CN={n}"), None);
            json!({"person_id": ana, "certificates": [{"profile": "dual", "csr": csr}]})
        };
        // Two keys of the administrator (bound to nobody) are not two people.
        let k1 = s.create_key(json!({"name": "adm1", "permissions": ["requests:*"]})).await;
        let k2 = s.create_key(json!({"name": "adm2", "permissions": ["requests:*"]})).await;
        let r = id(&s.create("/api/v1/requests", request("r1")).await);
        for k in [&k1, &k2] {
            let (st, e) = call(
                &s,
                k["key"].as_str().unwrap(),
                Method::POST,
                &format!("/api/v1/requests/{r}/approve"),
                Some(json!({})),
            )
            .await;
            assert_eq!((st, e["code"].as_str()), (403, Some("approver_not_an_operator")), "{e}");
        }
        // Two keys of one operator are one approver.
        s.create("/api/v1/roles", json!({"name": "approver", "permissions": ["requests:*"]})).await;
        let (op, k3) = s.operator_key("appr", &["approver"], json!({}), &["requests:*"]).await;
        let k4 = s
            .create_key(json!({"name": "appr-2", "permissions": ["requests:*"], "operator_id": op}))
            .await;
        let (st, e) =
            call(&s, &k3, Method::POST, &format!("/api/v1/requests/{r}/approve"), Some(json!({})))
                .await;
        assert_eq!(st, 200, "{e}");
        let (st, e) = call(
            &s,
            k4["key"].as_str().unwrap(),
            Method::POST,
            &format!("/api/v1/requests/{r}/approve"),
            Some(json!({})),
        )
        .await;
        assert_eq!((st, e["code"].as_str()), (403, Some("separation_of_duties")), "{e}");
        // A second operator completes it.
        let (_, k5) = s.operator_key("appr2", &["approver"], json!({}), &["requests:*"]).await;
        let (st, e) =
            call(&s, &k5, Method::POST, &format!("/api/v1/requests/{r}/approve"), Some(json!({})))
                .await;
        assert_eq!((st, e["status"].as_str()), (200, Some("completed")), "{e}");
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_holder_lifts_only_a_suspension_the_holder_placed() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let (a, _, _, _) = two_offices(&s).await;
        let ana = person(&s, &a, "Ana").await;
        let mut devs = Vec::new();
        for serial in ["SC-1", "SC-2"] {
            let d = id(&s.create("/api/v1/devices", json!({"kind": "smart_card", "serial": serial, "office_id": a, "holder_id": ana})).await);
            call(&s, &s.admin_key, Method::POST, &format!("/api/v1/devices/{d}/activate"), None)
                .await;
            devs.push(d);
        }
        let hk = s
            .create_key(
                json!({"name": "ana", "permissions": ["self_service:use"], "holder_id": ana}),
            )
            .await;
        let hk = hk["key"].as_str().unwrap();
        // The operator suspends the first: the holder cannot lift it.
        let (st, d) = call(
            &s,
            &s.admin_key,
            Method::POST,
            &format!("/api/v1/devices/{}/suspend", devs[0]),
            Some(json!({"reason": "investigation"})),
        )
        .await;
        assert_eq!(st, 200);
        assert!(d["suspended_by"].as_str().unwrap().starts_with("api_key:"), "{d}");
        let (st, e) = call(
            &s,
            hk,
            Method::POST,
            &format!("/api/v1/self/devices/{}/reactivate", devs[0]),
            Some(json!({})),
        )
        .await;
        assert_eq!((st, e["code"].as_str()), (403, Some("suspended_by_operator")), "{e}");
        let (_, d) =
            call(&s, &s.admin_key, Method::GET, &format!("/api/v1/devices/{}", devs[0]), None)
                .await;
        assert_eq!(d["status"], "suspended");
        // The holder suspends the second and lifts that.
        let (st, d) = call(
            &s,
            hk,
            Method::POST,
            &format!("/api/v1/self/devices/{}/suspend", devs[1]),
            Some(json!({})),
        )
        .await;
        assert_eq!(st, 200, "{d}");
        assert_eq!(d["suspended_by"], json!(format!("holder:{ana}")));
        let (st, d) = call(
            &s,
            hk,
            Method::POST,
            &format!("/api/v1/self/devices/{}/reactivate", devs[1]),
            Some(json!({})),
        )
        .await;
        assert_eq!((st, d["status"].as_str()), (200, Some("active")), "{d}");
        // The history says who placed each.
        let (_, h) = call(
            &s,
            &s.admin_key,
            Method::GET,
            &format!("/api/v1/devices/{}/history", devs[1]),
            None,
        )
        .await;
        assert!(
            h["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["to"] == "suspended" && e["actor"] == json!(format!("holder:{ana}"))),
            "{h}"
        );
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_password_change_or_a_disable_ends_the_signers_csc_tokens_and_sads() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let signer = s.signer("ana", "password-1").await;
        let cred = s.credential("ana", "p256", "123456", 1, 5).await["credential_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let token = s.csc_login("v1", "ana", "password-1").await;
        let sad = s.csc_authorize(&token, &cred, "123456", &[]).await;
        // A new password: the token and the SAD die with it.
        let (st, _) = call(
            &s,
            &s.admin_key,
            Method::PATCH,
            &format!("/api/v1/signers/{signer}"),
            Some(json!({"password": "password-2"})),
        )
        .await;
        assert_eq!(st, 200);
        let a = s.csc("v1", "credentials/list", &token, json!({})).await;
        assert_eq!(a.status, 401, "{:?}", a.body);
        let t2 = s.csc_login("v1", "ana", "password-2").await;
        let hash = base64_of(&[7u8; 32]);
        let a = s.csc("v1", "signatures/signHash", &t2, json!({"credentialID": cred, "SAD": sad, "hash": [hash], "signAlgo": "1.2.840.10045.4.3.2"})).await;
        assert_eq!(a.status, 400, "the SAD of the old password is gone: {:?}", a.body);
        // Disabling and enabling again does not bring a token back.
        for enabled in [false, true] {
            let (st, _) = call(
                &s,
                &s.admin_key,
                Method::PATCH,
                &format!("/api/v1/signers/{signer}"),
                Some(json!({"enabled": enabled})),
            )
            .await;
            assert_eq!(st, 200);
        }
        let a = s.csc("v1", "credentials/list", &t2, json!({})).await;
        assert_eq!(a.status, 401, "{:?}", a.body);
        s.stop().await;
        db.cleanup().await;
    }
}

fn base64_of(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[tokio::test]
async fn a_restricted_operator_grants_only_divisions_it_holds() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let (a, _, north, south) = two_offices(&s).await;
        // An empty division: seeing all of its (zero) offices is not holding it.
        let org = id(&s.create("/api/v1/organizations", json!({"name": "Other"})).await);
        let empty = id(&s
            .create("/api/v1/divisions", json!({"name": "Empty", "organization_id": org}))
            .await);
        s.create("/api/v1/roles", json!({"name": "opmgr", "permissions": ["operators:*"]})).await;
        let (_, k) =
            s.operator_key("mgr-a", &["opmgr"], json!({"offices": [a]}), &["operators:*"]).await;
        for d in [&empty, &north, &south] {
            let (st, e) = call(
                &s,
                &k,
                Method::POST,
                "/api/v1/operators",
                Some(json!({"username": "x", "roles": [], "divisions": [d]})),
            )
            .await;
            assert_eq!((st, e["code"].as_str()), (400, Some("unknown_division")), "{e}");
        }
        // An operator holding North may grant North.
        let (_, k2) = s
            .operator_key("mgr-n", &["opmgr"], json!({"divisions": [north]}), &["operators:*"])
            .await;
        let (st, e) = call(
            &s,
            &k2,
            Method::POST,
            "/api/v1/operators",
            Some(json!({"username": "y", "roles": [], "divisions": [north]})),
        )
        .await;
        assert_eq!(st, 201, "{e}");
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_key_cannot_extend_its_own_life_nor_a_holders_key_gain_an_operator() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let k = s
            .create_key(
                json!({"name": "k", "permissions": ["api_keys:update"], "expires": in_hours(24)}),
            )
            .await;
        let (kid, kk) = (id(&k), k["key"].as_str().unwrap().to_owned());
        for expires in [json!("never"), json!(in_hours(48))] {
            let (st, e) = call(
                &s,
                &kk,
                Method::PATCH,
                &format!("/api/v1/api-keys/{kid}"),
                Some(json!({"expires": expires})),
            )
            .await;
            assert_eq!((st, e["code"].as_str()), (400, Some("expiry_beyond_creator")), "{e}");
        }
        let (st, e) = call(
            &s,
            &kk,
            Method::PATCH,
            &format!("/api/v1/api-keys/{kid}"),
            Some(json!({"expires": in_hours(12)})),
        )
        .await;
        assert_eq!(st, 200, "shortening is fine: {e}");

        let (a, _, _, _) = two_offices(&s).await;
        let ana = person(&s, &a, "Ana").await;
        let h = s
            .create_key(json!({"name": "h", "permissions": ["self_service:use"], "holder_id": ana}))
            .await;
        s.create("/api/v1/roles", json!({"name": "everything", "permissions": ["*"]})).await;
        let op = id(&s
            .create("/api/v1/operators", json!({"username": "root", "roles": ["everything"]}))
            .await);
        let (st, e) = call(
            &s,
            &s.admin_key,
            Method::PATCH,
            &format!("/api/v1/api-keys/{}", id(&h)),
            Some(json!({"operator_id": op})),
        )
        .await;
        assert_eq!((st, e["code"].as_str()), (400, Some("invalid_binding")), "{e}");
        let (st, e) = call(
            &s,
            &s.admin_key,
            Method::PATCH,
            &format!("/api/v1/api-keys/{}", id(&h)),
            Some(json!({"permissions": ["*"]})),
        )
        .await;
        assert_eq!((st, e["code"].as_str()), (400, Some("invalid_permission")), "{e}");
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_cascading_revocation_stops_at_a_key_beyond_the_callers_authority() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let officer = s.create_key(json!({"name": "officer", "permissions": ["api_keys:*"]})).await;
        let ok = officer["key"].as_str().unwrap();
        let parent = s.create_key(json!({"name": "parent", "permissions": ["api_keys:*"]})).await;
        let (st, child) = call(
            &s,
            parent["key"].as_str().unwrap(),
            Method::POST,
            "/api/v1/api-keys",
            Some(json!({"name": "child", "permissions": ["api_keys:read"]})),
        )
        .await;
        assert_eq!(st, 201, "{child}");
        // The administrator widens the child beyond what the officer holds.
        let (st, _) = call(
            &s,
            &s.admin_key,
            Method::PATCH,
            &format!("/api/v1/api-keys/{}", id(&child)),
            Some(json!({"permissions": ["*"]})),
        )
        .await;
        assert_eq!(st, 200);
        let (st, e) = call(
            &s,
            ok,
            Method::DELETE,
            &format!("/api/v1/api-keys/{}?cascade=true", id(&parent)),
            None,
        )
        .await;
        assert_eq!((st, e["code"].as_str()), (403, Some("authority_exceeded")), "{e}");
        // All or nothing: the parent still works.
        let (st, _) =
            call(&s, parent["key"].as_str().unwrap(), Method::GET, "/api/v1/api-keys", None).await;
        assert_eq!(st, 200);
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_plugin_files_requests_and_mints_keys_for_its_caller_not_for_itself() {
    for db in backends().await {
        let toml = sigil_tests::proxy_plugin_toml();
        let s = TestServer::start_with(&db, Options { toml, ..Default::default() }).await;
        let (a, _, _, _) = two_offices(&s).await;
        let ana = person(&s, &a, "Ana").await;
        let perms = ["requests:*", "people:read", "api_keys:create", "plugins:invoke:test-proxy"];
        s.create("/api/v1/roles", json!({"name": "ra", "permissions": perms})).await;
        let (op, k) = s.operator_key("ra", &["ra"], json!({}), &perms).await;
        let via = |method: &str, to: &str| {
            format!("/api/v1/ext/test-proxy/call?method={method}&to={}", to.replace('/', "%2F"))
        };
        let tmp = tempfile::tempdir().unwrap();
        let (csr, _) = openssl_csr(tmp.path(), "p", "ec:P-256", "/CN=p", None);
        // tls-client forbids the requester to approve: filing through the plugin is still filing.
        let (st, r) = call(
            &s,
            &k,
            Method::POST,
            &via("POST", "/requests"),
            Some(
                json!({"person_id": ana, "certificates": [{"profile": "tls-client", "csr": csr}]}),
            ),
        )
        .await;
        assert_eq!(st, 201, "{r}");
        assert_eq!(r["requested_by"], json!(op), "{r}");
        let (st, e) = call(
            &s,
            &k,
            Method::POST,
            &format!("/api/v1/requests/{}/approve", id(&r)),
            Some(json!({})),
        )
        .await;
        assert_eq!((st, e["code"].as_str()), (403, Some("separation_of_duties")), "{e}");
        // A key minted through the plugin descends from the caller's key, bound to its operator.
        let (st, m) = call(
            &s,
            &k,
            Method::POST,
            &via("POST", "/api-keys"),
            Some(json!({"name": "via-plugin", "permissions": ["people:read"]})),
        )
        .await;
        assert_eq!(st, 201, "{m}");
        assert_eq!(m["operator_id"], json!(op));
        let (_, mine) =
            call(&s, &s.admin_key, Method::GET, "/api/v1/api-keys?name=ra-key", None).await;
        assert_eq!(m["parent_id"], mine["items"][0]["id"], "{m}");
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn renewing_into_another_subject_needs_certificate_issue() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let (_, p) =
            json(s.admin(Method::GET, "/api/v1/profiles/tls-client").send().await.unwrap()).await;
        let mut spec = p["spec"].clone();
        spec["renewal_window_days"] = spec["validity_days"].clone();
        s.create("/api/v1/profiles", json!({"name": "renewable", "spec": spec})).await;
        let tmp = tempfile::tempdir().unwrap();
        let csr = |n: &str, cn: &str| {
            openssl_csr(tmp.path(), n, "ec:P-256", &format!("/CN={cn}"), None).0
        };
        let c = s
            .create(
                "/api/v1/certificates",
                json!({"csr": csr("a", "alice"), "profile": "renewable"}),
            )
            .await;
        let k =
            s.create_key(json!({"name": "renewer", "permissions": ["certificate:renew"]})).await;
        let k = k["key"].as_str().unwrap();
        let path = format!("/api/v1/certificates/{}/renew", id(&c));
        let (st, e) =
            call(&s, k, Method::POST, &path, Some(json!({"csr": csr("m", "Chief Executive")})))
                .await;
        assert_eq!((st, e["code"].as_str()), (403, Some("renewal_changes_identity")), "{e}");
        let (st, e) =
            call(&s, k, Method::POST, &path, Some(json!({"csr": csr("b", "alice")}))).await;
        assert_eq!(
            (st, e["subject"].as_str()),
            (201, Some("CN=alice")),
            "a new key, the same identity: {e}"
        );
        let renewed = id(&e);
        // The administrator cannot change the identity in a renewal either: that is a new
        // enrolment, with its approvals.
        let path2 = format!("/api/v1/certificates/{renewed}/renew");
        let admin = s.admin_key.clone();
        let (st, e) = call(
            &s,
            &admin,
            Method::POST,
            &path2,
            Some(json!({"csr": csr("x", "Chief Executive")})),
        )
        .await;
        assert_eq!((st, e["code"].as_str()), (403, Some("renewal_changes_identity")), "{e}");
        // Renewed once: the old certificate is not renewed again, the new one is.
        let (st, e) = call(&s, k, Method::POST, &path, Some(json!({}))).await;
        assert_eq!((st, e["code"].as_str()), (409, Some("already_renewed")), "{e}");
        let (st, e) = call(&s, k, Method::POST, &path2, Some(json!({}))).await;
        assert_eq!(st, 201, "{e}");
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_holders_key_reaches_only_devices_of_its_holders_office() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let (a, b, _, _) = two_offices(&s).await;
        let p = person(&s, &b, "Pia").await;
        let d = id(&s
            .create(
                "/api/v1/devices",
                json!({"kind": "smart_card", "serial": "SC-B", "office_id": b, "holder_id": p}),
            )
            .await);
        call(&s, &s.admin_key, Method::POST, &format!("/api/v1/devices/{d}/activate"), None).await;
        // Pia moves to office A; whoever sees A now manages her key, and sees nothing of B.
        let (st, e) = call(
            &s,
            &s.admin_key,
            Method::PATCH,
            &format!("/api/v1/people/{p}"),
            Some(json!({"office_id": a})),
        )
        .await;
        assert_eq!(st, 200, "{e}");
        let hk = s
            .create_key(json!({"name": "pia", "permissions": ["self_service:use"], "holder_id": p}))
            .await;
        let hk = hk["key"].as_str().unwrap();
        let (st, list) = call(&s, hk, Method::GET, "/api/v1/self/devices", None).await;
        assert_eq!(
            (st, list.as_array().map(Vec::len).or(list["items"].as_array().map(Vec::len))),
            (200, Some(0)),
            "{list}"
        );
        let (st, _) = call(
            &s,
            hk,
            Method::POST,
            &format!("/api/v1/self/devices/{d}/damaged"),
            Some(json!({})),
        )
        .await;
        assert_eq!(st, 404);
        let (_, dev) =
            call(&s, &s.admin_key, Method::GET, &format!("/api/v1/devices/{d}"), None).await;
        assert_eq!(dev["status"], "active");
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_serial_or_source_id_used_in_another_office_tells_nothing() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let (a, b, _, _) = two_offices(&s).await;
        s.create(
            "/api/v1/devices",
            json!({"kind": "smart_card", "serial": "SC-7", "office_id": b}),
        )
        .await;
        s.create(
            "/api/v1/people",
            json!({"office_id": b, "given_name": "Bor", "family_name": "B", "external_id": "E-7"}),
        )
        .await;
        let perms = ["devices:*", "people:*"];
        s.create("/api/v1/roles", json!({"name": "clerk", "permissions": perms})).await;
        let (_, k) = s.operator_key("clerk-a", &["clerk"], json!({"offices": [a]}), &perms).await;
        // Office A's clerk registers the same values as if office B did not exist...
        let (st, e) = call(
            &s,
            &k,
            Method::POST,
            "/api/v1/devices",
            Some(json!({"kind": "smart_card", "serial": "SC-7", "office_id": a})),
        )
        .await;
        assert_eq!(st, 201, "{e}");
        let person =
            json!({"office_id": a, "given_name": "Ana", "family_name": "A", "external_id": "E-7"});
        let (st, e) = call(&s, &k, Method::POST, "/api/v1/people", Some(person.clone())).await;
        assert_eq!(st, 201, "{e}");
        // ...and a clash within its own office is still a clash.
        let (st, e) = call(
            &s,
            &k,
            Method::POST,
            "/api/v1/devices",
            Some(json!({"kind": "smart_card", "serial": "SC-7", "office_id": a})),
        )
        .await;
        assert_eq!((st, e["code"].as_str()), (409, Some("serial_taken")), "{e}");
        let (st, e) = call(&s, &k, Method::POST, "/api/v1/people", Some(person)).await;
        assert_eq!((st, e["code"].as_str()), (409, Some("external_id_taken")), "{e}");
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_plugin_endpoint_keeps_the_servers_body_limit() {
    let db = sigil_tests::TestDb::sqlite();
    let toml = format!("[server]\nbody_limit_bytes = 65536\n{}", sigil_tests::proxy_plugin_toml());
    let s = TestServer::start_with(&db, Options { toml, ..Default::default() }).await;
    let path = "/api/v1/ext/test-proxy/call?method=POST&to=%2Fpeople";
    // The target ignores bodies: only the entry point's own limit can refuse this one.
    let r = s
        .admin(Method::POST, "/api/v1/ext/test-proxy/call?method=GET&to=%2Fpermissions")
        .header("content-type", "application/json")
        .body(vec![b' '; 200 * 1024])
        .send()
        .await
        .unwrap();
    let (st, e) = json(r).await;
    assert_eq!((st, e["code"].as_str()), (413, Some("body_too_large")), "{e}");
    // Within the limit the call goes through to the plugin (and on to Sigil, which refuses the
    // empty person).
    let (st, _) = call(&s, &s.admin_key, Method::POST, path, Some(json!({}))).await;
    assert_eq!(st, 400);
    s.stop().await;
}
