//! The certificate lifecycle over HTTP, checked with the openssl CLI: issuance from CSRs made by
//! openssl, profile enforcement, suspension visible in the CRL as certificateHold, reactivation,
//! revocation, renewal, search, metadata, batch and downloads.

use reqwest::Method;
use serde_json::{Value, json};
use sigil_tests::{TestServer, backends, json, openssl, openssl_csr};

/// Writes the certificate, the chain and (optionally) the current CRL, and runs openssl verify.
async fn verify(
    s: &TestServer,
    dir: &std::path::Path,
    cert: &Value,
    with_crl: bool,
) -> (bool, String) {
    let leaf = dir.join("leaf.pem");
    std::fs::write(&leaf, cert["certificate"].as_str().unwrap()).unwrap();
    let chain: String =
        cert["chain"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    let chain_path = dir.join("chain.pem");
    std::fs::write(&chain_path, chain).unwrap();
    let mut args = vec!["verify".to_owned(), "-CAfile".into(), chain_path.display().to_string()];
    if with_crl {
        let crl = s.client.get(format!("{}/crl/builtin.crl", s.url)).send().await.unwrap();
        assert_eq!(crl.status(), 200);
        assert_eq!(crl.headers()["content-type"], "application/pkix-crl");
        let der = crl.bytes().await.unwrap();
        let crl_der = dir.join("crl.der");
        std::fs::write(&crl_der, &der).unwrap();
        let crl_pem = dir.join("crl.pem");
        let (ok, out) = openssl(&[
            "crl",
            "-inform",
            "DER",
            "-in",
            crl_der.to_str().unwrap(),
            "-out",
            crl_pem.to_str().unwrap(),
            "-CAfile",
            chain_path.to_str().unwrap(),
        ]);
        assert!(ok, "the CRL verifies: {out}");
        args.extend(["-crl_check".into(), "-CRLfile".into(), crl_pem.display().to_string()]);
    }
    args.push(leaf.display().to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    openssl(&args)
}

#[tokio::test]
async fn issued_certificates_verify_and_follow_their_profile() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let dir = tempfile::tempdir().unwrap();
        for (name, key) in [("ec256", "ec:P-256"), ("ec384", "ec:P-384"), ("rsa", "rsa:2048")] {
            let (csr, _) = openssl_csr(
                dir.path(),
                name,
                key,
                &format!("/CN={name}/O=Example"),
                Some("DNS:a.example,IP:10.0.0.1"),
            );
            let (st, cert) = s.issue(&csr, "tls-client").await;
            assert_eq!(st, 201, "{cert}");
            assert_eq!(cert["status"], "active");
            assert!(cert["serial"].as_str().unwrap().len() >= 32, "16+ random bytes");
            let (ok, out) = verify(&s, dir.path(), &cert, true).await;
            assert!(ok, "{name}: {out}");
            let (_, text) = openssl(&[
                "x509",
                "-in",
                dir.path().join("leaf.pem").to_str().unwrap(),
                "-noout",
                "-text",
            ]);
            assert!(
                text.contains("TLS Web Client Authentication")
                    && text.contains(&format!("CN = {name}")),
                "{text}"
            );
        }
        // A server certificate needs a DNS SAN.
        let (csr, _) =
            openssl_csr(dir.path(), "srv", "ec:P-256", "/CN=srv", Some("DNS:www.example.org"));
        let (st, cert) = s.issue(&csr, "tls-server").await;
        assert_eq!(st, 201, "{cert}");
        let (_, text) = openssl(&[
            "x509",
            "-in",
            &{
                std::fs::write(dir.path().join("srv.pem"), cert["certificate"].as_str().unwrap())
                    .unwrap();
                dir.path().join("srv.pem").display().to_string()
            },
            "-noout",
            "-ext",
            "extendedKeyUsage,subjectAltName",
        ]);
        assert!(
            text.contains("TLS Web Server Authentication") && text.contains("DNS:www.example.org"),
            "{text}"
        );
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn bad_requests_are_refused_without_a_write() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let dir = tempfile::tempdir().unwrap();
        let (good, _) = openssl_csr(dir.path(), "g", "ec:P-256", "/CN=g", None);
        let (nodns, _) = openssl_csr(dir.path(), "n", "ec:P-256", "/CN=n", None);
        let (weak, _) = openssl_csr(dir.path(), "w", "rsa:1024", "/CN=w", None);
        let (nocn, _) = openssl_csr(dir.path(), "x", "ec:P-256", "/O=NoCN", None);
        // Tamper with the signed content: the signature no longer verifies.
        let der_path = dir.path().join("t.der");
        let (ok, _) = openssl(&[
            "req",
            "-in",
            dir.path().join("g.csr").to_str().unwrap(),
            "-outform",
            "DER",
            "-out",
            der_path.to_str().unwrap(),
        ]);
        assert!(ok);
        let mut der = std::fs::read(&der_path).unwrap();
        let i = der.windows(1).rposition(|w| w == b"g").unwrap();
        der[i] = b'h';
        let tampered = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der);
        for (csr, profile, code) in [
            ("not a csr".to_owned(), "tls-client", "invalid_csr"),
            (
                "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----"
                    .to_owned(),
                "tls-client",
                "invalid_csr",
            ),
            (tampered, "tls-client", "csr_signature_invalid"),
            (nodns, "tls-server", "san_not_allowed"),
            (weak, "tls-client", "key_not_allowed"),
            (nocn, "tls-client", "subject_not_allowed"),
            (good, "no-such-profile", "unknown_profile"),
        ] {
            let (st, b) = s.issue(&csr, profile).await;
            assert_eq!((st, b["code"].as_str()), (400, Some(code)), "{b}");
        }
        let (_, list) =
            json(s.admin(Method::GET, "/api/v1/certificates").send().await.unwrap()).await;
        assert!(list["items"].as_array().unwrap().is_empty(), "nothing was written: {list}");
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn suspension_shows_as_certificate_hold_until_reactivated_and_revocation_is_final() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let dir = tempfile::tempdir().unwrap();
        let (csr, _) = openssl_csr(dir.path(), "c", "ec:P-256", "/CN=holder", None);
        let (_, cert) = s.issue(&csr, "tls-client").await;
        let id = cert["id"].as_str().unwrap();
        let act = |a: &str, body: Value| {
            s.admin(Method::POST, &format!("/api/v1/certificates/{id}/{a}")).json(&body).send()
        };

        let (st, c) = json(act("suspend", json!({})).await.unwrap()).await;
        assert_eq!(
            (st, c["status"].as_str(), c["revocation_reason"].as_str()),
            (200, Some("suspended"), Some("certificateHold"))
        );
        let (ok, out) = verify(&s, dir.path(), &cert, true).await;
        assert!(!ok && out.contains("certificate revoked"), "{out}");
        let (_, text) = openssl(&[
            "crl",
            "-in",
            dir.path().join("crl.pem").to_str().unwrap(),
            "-noout",
            "-text",
        ]);
        assert!(
            text.contains("Certificate Hold")
                && text
                    .to_lowercase()
                    .contains(&cert["serial"].as_str().unwrap()[..8].to_lowercase()),
            "{text}"
        );
        // Suspending again is a harmless retry.
        assert_eq!(act("suspend", json!({})).await.unwrap().status(), 200);

        let (st, c) = json(act("reactivate", json!({})).await.unwrap()).await;
        assert_eq!((st, c["status"].as_str()), (200, Some("active")));
        let (ok, out) = verify(&s, dir.path(), &cert, true).await;
        assert!(ok, "good again after reactivation: {out}");

        let (st, c) = json(act("revoke", json!({"reason": "keyCompromise"})).await.unwrap()).await;
        assert_eq!(
            (st, c["status"].as_str(), c["revocation_reason"].as_str()),
            (200, Some("revoked"), Some("keyCompromise"))
        );
        let (ok, out) = verify(&s, dir.path(), &cert, true).await;
        assert!(!ok && out.contains("certificate revoked"), "{out}");
        let (st, b) = json(act("reactivate", json!({})).await.unwrap()).await;
        assert_eq!((st, b["code"].as_str()), (409, Some("invalid_transition")));
        let (st, b) = json(act("suspend", json!({})).await.unwrap()).await;
        assert_eq!((st, b["code"].as_str()), (409, Some("invalid_transition")));
        let (st, b) =
            json(act("revoke", json!({"reason": "certificateHold"})).await.unwrap()).await;
        assert_eq!((st, b["code"].as_str()), (400, Some("invalid_reason")));
        let (st, b) = json(act("revoke", json!({"reason": "because"})).await.unwrap()).await;
        assert_eq!((st, b["code"].as_str()), (400, Some("invalid_reason")));
        // Every step is on the object's trail.
        let actions = s.trail_actions("certificate", id).await;
        assert_eq!(
            actions,
            [
                "certificate.issue",
                "certificate.suspend",
                "certificate.reactivate",
                "certificate.revoke"
            ]
        );
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn renewal_respects_the_window_and_keeps_or_replaces_the_key() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let dir = tempfile::tempdir().unwrap();
        let (csr, _) = openssl_csr(dir.path(), "r", "ec:P-256", "/CN=renewer", None);
        let (_, cert) = s.issue(&csr, "tls-client").await;
        let id = cert["id"].as_str().unwrap();
        let (st, b) = json(
            s.admin(Method::POST, &format!("/api/v1/certificates/{id}/renew"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((st, b["code"].as_str()), (409, Some("outside_renewal_window")));
        // A profile whose window spans the whole validity allows renewal at once.
        let mut spec: Value =
            json(s.admin(Method::GET, "/api/v1/profiles/tls-client").send().await.unwrap()).await.1;
        spec = spec["spec"].take();
        spec["renewal_window_days"] = json!(365);
        let (st, p) = json(
            s.admin(Method::PUT, "/api/v1/profiles/tls-client").json(&spec).send().await.unwrap(),
        )
        .await;
        assert_eq!(st, 200, "{p}");
        let (st, same) = json(
            s.admin(Method::POST, &format!("/api/v1/certificates/{id}/renew"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(st, 201, "{same}");
        assert_eq!(same["renewed_from"], id);
        assert_ne!(same["serial"], cert["serial"]);
        let pubkey = |pem: &str, name: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, pem).unwrap();
            openssl(&["x509", "-in", p.to_str().unwrap(), "-noout", "-pubkey"]).1
        };
        assert_eq!(
            pubkey(cert["certificate"].as_str().unwrap(), "a.pem"),
            pubkey(same["certificate"].as_str().unwrap(), "b.pem")
        );
        // Renewed once: the renewal is what is renewed next.
        let (st, again) = json(
            s.admin(Method::POST, &format!("/api/v1/certificates/{id}/renew"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((st, again["code"].as_str()), (409, Some("already_renewed")), "{again}");
        let next = same["id"].as_str().unwrap();
        let (csr2, _) = openssl_csr(dir.path(), "r2", "ec:P-384", "/CN=renewer", None);
        let (st, fresh) = json(
            s.admin(Method::POST, &format!("/api/v1/certificates/{next}/renew"))
                .json(&json!({"csr": csr2}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((st, fresh["key_type"].as_str()), (201, Some("p384")), "{fresh}");
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn the_inventory_filters_sorts_pages_and_keeps_metadata() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let dir = tempfile::tempdir().unwrap();
        let mut ids = vec![];
        for i in 0..4 {
            let (csr, _) = openssl_csr(
                dir.path(),
                &format!("i{i}"),
                "ec:P-256",
                &format!("/CN=host{i}"),
                Some(&format!("DNS:host{i}.corp.example")),
            );
            let (st, c) = s.issue(&csr, if i % 2 == 0 { "tls-server" } else { "tls-client" }).await;
            assert_eq!(st, 201, "{c}");
            ids.push(c["id"].as_str().unwrap().to_owned());
        }
        let get = |q: &str| s.admin(Method::GET, &format!("/api/v1/certificates?{q}")).send();
        let (_, p) = json(get("profile=tls-server").await.unwrap()).await;
        assert_eq!(p["items"].as_array().unwrap().len(), 2);
        let (_, p) = json(get("q=HOST3.corp").await.unwrap()).await;
        assert_eq!(p["items"][0]["id"], ids[3]);
        let (_, p) = json(get("expiring_within_days=366").await.unwrap()).await;
        assert_eq!(
            p["items"].as_array().unwrap().len(),
            2,
            "tls-client certificates expire within a year"
        );
        let (_, p) = json(get("sort=-issued_at&limit=3").await.unwrap()).await;
        assert_eq!(p["items"][0]["id"], ids[3]);
        let c = p["next_cursor"].as_str().unwrap();
        let (_, p2) =
            json(get(&format!("sort=-issued_at&limit=3&cursor={c}")).await.unwrap()).await;
        assert_eq!(p2["items"][0]["id"], ids[0]);
        let serial = json(
            s.admin(Method::GET, &format!("/api/v1/certificates/{}", ids[1])).send().await.unwrap(),
        )
        .await
        .1["serial"]
            .clone();
        let (_, p) = json(
            get(&format!("serial={}", serial.as_str().unwrap().to_uppercase())).await.unwrap(),
        )
        .await;
        assert_eq!(p["items"][0]["id"], ids[1]);
        // A serial with other filters: the one certificate when they hold, nothing when not.
        let serial = serial.as_str().unwrap();
        for (query, found) in [
            (format!("serial={serial}&status=active"), true),
            (format!("serial={serial}&status=revoked"), false),
            (format!("serial={serial}&status=active&profile=tls-client&sort=-issued_at"), true),
            (format!("serial={serial}&profile=tls-server"), false),
            (format!("serial={serial}&status=active&issued_from=2999-01-01T00:00:00Z"), false),
        ] {
            let (st, p) = json(get(&query).await.unwrap()).await;
            assert_eq!(st, 200, "{query}: {p}");
            let items = p["items"].as_array().unwrap();
            if found {
                assert_eq!(items.len(), 1, "{query}: {p}");
                assert_eq!(items[0]["id"], ids[1], "{query}");
            } else {
                assert!(items.is_empty(), "{query}: {p}");
            }
        }
        // Metadata: merge patch, searchable owner.
        let r = s
            .admin(Method::PATCH, &format!("/api/v1/certificates/{}", ids[2]))
            .json(&json!({"metadata": {"owner": "alice", "cost_center": "42"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let r = s
            .admin(Method::PATCH, &format!("/api/v1/certificates/{}", ids[2]))
            .json(&json!({"metadata": {"cost_center": null}}))
            .send()
            .await
            .unwrap();
        assert_eq!(json(r).await.1["metadata"], json!({"owner": "alice"}));
        let (_, p) = json(get("owner=alice").await.unwrap()).await;
        assert_eq!(p["items"].as_array().unwrap().len(), 1);
        let (st, b) = json(get("status=bogus").await.unwrap()).await;
        assert_eq!((st, b["code"].as_str()), (400, Some("invalid_filter")));
        // Downloads.
        let dl = |f: &str| {
            s.admin(Method::GET, &format!("/api/v1/certificates/{}/download?format={f}", ids[0]))
                .send()
        };
        let der = dl("der").await.unwrap().bytes().await.unwrap();
        assert_eq!(der[0], 0x30);
        let chain = dl("chain").await.unwrap().text().await.unwrap();
        assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 3);
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_batch_reports_each_item() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let dir = tempfile::tempdir().unwrap();
        let (a, _) = openssl_csr(dir.path(), "a", "ec:P-256", "/CN=a", None);
        let (b, _) = openssl_csr(dir.path(), "b", "ec:P-256", "/CN=b", None);
        let body = json!({"requests": [
            {"csr": a, "profile": "tls-client"},
            {"csr": "garbage", "profile": "tls-client"},
            {"csr": b, "profile": "tls-client", "metadata": {"owner": "bob"}},
        ]});
        let (st, r) = json(
            s.admin(Method::POST, "/api/v1/certificates/batch").json(&body).send().await.unwrap(),
        )
        .await;
        assert_eq!(st, 200, "{r}");
        assert_eq!((r["issued"].as_u64(), r["failed"].as_u64()), (Some(2), Some(1)));
        assert_eq!(r["results"][1]["error"]["code"], "invalid_csr");
        assert_eq!(r["results"][2]["certificate"]["metadata"]["owner"], "bob");
        let (st, _) = json(
            s.admin(Method::POST, "/api/v1/certificates/batch")
                .json(&json!({"requests": []}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(st, 400);
        let (st, backends) =
            json(s.admin(Method::GET, "/api/v1/ca-backends").send().await.unwrap()).await;
        assert_eq!(st, 200);
        assert_eq!(backends[0]["id"], "builtin");
        assert_eq!(backends[0]["crl_url"], "/crl/builtin.crl");
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn profiles_are_created_validated_and_enforced() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let (_, list) = json(s.admin(Method::GET, "/api/v1/profiles").send().await.unwrap()).await;
        let names: Vec<_> =
            list.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["document-signing", "tls-client", "tls-server", "tls-server-public"]);
        let spec = json!({
            "description": "corp web", "key_types": ["p256"], "validity_days": 90,
            "key_usage": ["digitalSignature"], "extended_key_usage": ["serverAuth", "1.3.6.1.4.1.99999.1"],
            "san": {"dns": "required", "dns_pattern": "[a-z0-9-]+\\.corp\\.example"},
            "custom_extensions": [{"oid": "1.3.6.1.4.1.99999.2", "critical": false, "value": "DAVoZWxsbw=="}],
            "renewal_window_days": 10, "allow_suspension": false
        });
        let (st, p) = json(
            s.admin(Method::POST, "/api/v1/profiles")
                .json(&json!({"name": "corp-web", "spec": spec}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(st, 201, "{p}");
        let (st, b) = json(
            s.admin(Method::POST, "/api/v1/profiles")
                .json(&json!({"name": "bad", "spec": {"key_types": [], "validity_days": 90}}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((st, b["code"].as_str()), (400, Some("invalid_profile")));
        let (st, b) = json(
            s.admin(Method::POST, "/api/v1/profiles")
                .json(
                    &json!({"name": "other-ca", "spec": {"key_types": ["p256"], "ca": "nowhere"}}),
                )
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((st, b["code"].as_str()), (400, Some("unknown_ca")));
        let dir = tempfile::tempdir().unwrap();
        let (ok_csr, _) =
            openssl_csr(dir.path(), "ok", "ec:P-256", "/CN=web", Some("DNS:web1.corp.example"));
        let (bad_name, _) =
            openssl_csr(dir.path(), "bn", "ec:P-256", "/CN=web", Some("DNS:web1.evil.example"));
        let (bad_key, _) =
            openssl_csr(dir.path(), "bk", "ec:P-384", "/CN=web", Some("DNS:web2.corp.example"));
        let (st, cert) = s.issue(&ok_csr, "corp-web").await;
        assert_eq!(st, 201, "{cert}");
        let p = dir.path().join("c.pem");
        std::fs::write(&p, cert["certificate"].as_str().unwrap()).unwrap();
        let (_, text) = openssl(&["x509", "-in", p.to_str().unwrap(), "-noout", "-text"]);
        assert!(
            text.contains("1.3.6.1.4.1.99999.2") && text.contains("1.3.6.1.4.1.99999.1"),
            "{text}"
        );
        assert_eq!(s.issue(&bad_name, "corp-web").await.1["code"], "san_not_allowed");
        assert_eq!(s.issue(&bad_key, "corp-web").await.1["code"], "key_not_allowed");
        // The profile forbids suspension.
        let id = cert["id"].as_str().unwrap();
        let (st, b) = json(
            s.admin(Method::POST, &format!("/api/v1/certificates/{id}/suspend"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((st, b["code"].as_str()), (409, Some("suspension_not_allowed")));
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn ocsp_answers_good_revoked_with_hold_and_unknown() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let dir = tempfile::tempdir().unwrap();
        let (csr, _) = openssl_csr(dir.path(), "o", "ec:P-256", "/CN=ocsp-me", None);
        let (_, cert) = s.issue(&csr, "tls-client").await;
        let id = cert["id"].as_str().unwrap().to_owned();
        let p = |n: &str| dir.path().join(n).display().to_string();
        std::fs::write(p("leaf.pem"), cert["certificate"].as_str().unwrap()).unwrap();
        std::fs::write(p("issuing.pem"), cert["chain"][0].as_str().unwrap()).unwrap();
        let chain: String =
            cert["chain"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
        std::fs::write(p("chain.pem"), chain).unwrap();
        // Asks with openssl, sends over HTTPS (POST or GET), and has openssl check the answer.
        let ask = |extra: Vec<String>, get: bool| {
            let s = &s;
            let p = &p;
            async move {
                let mut args = vec!["ocsp".to_owned(), "-issuer".into(), p("issuing.pem")];
                args.extend(extra);
                args.extend(["-reqout".into(), p("req.der")]);
                let a: Vec<&str> = args.iter().map(String::as_str).collect();
                let (ok, out) = openssl(&a);
                assert!(ok, "{out}");
                let req = std::fs::read(p("req.der")).unwrap();
                let r = if get {
                    let b64 =
                        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &req);
                    let enc: String = b64
                        .chars()
                        .map(|c| match c {
                            '/' => "%2F".into(),
                            '+' => "%2B".into(),
                            '=' => "%3D".into(),
                            c => c.to_string(),
                        })
                        .collect();
                    s.client.get(format!("{}/ocsp/{enc}", s.url)).send().await.unwrap()
                } else {
                    s.client
                        .post(format!("{}/ocsp", s.url))
                        .header("content-type", "application/ocsp-request")
                        .body(req)
                        .send()
                        .await
                        .unwrap()
                };
                assert_eq!(r.status(), 200);
                assert_eq!(r.headers()["content-type"], "application/ocsp-response");
                std::fs::write(p("resp.der"), r.bytes().await.unwrap()).unwrap();
                let mut args = vec![
                    "ocsp".to_owned(),
                    "-respin".into(),
                    p("resp.der"),
                    "-issuer".into(),
                    p("issuing.pem"),
                    "-CAfile".into(),
                    p("chain.pem"),
                    "-resp_text".into(),
                ];
                args.extend(["-reqin".into(), p("req.der")]);
                let a: Vec<&str> = args.iter().map(String::as_str).collect();
                openssl(&a)
            }
        };
        let by_cert = || vec!["-cert".to_owned(), p("leaf.pem")];
        let (ok, out) = ask(by_cert(), false).await;
        assert!(ok && out.contains("Response verify OK") && out.contains(": good"), "{out}");
        let (ok, out) = ask(by_cert(), true).await;
        assert!(ok && out.contains(": good"), "GET form: {out}");
        s.admin(Method::POST, &format!("/api/v1/certificates/{id}/suspend")).send().await.unwrap();
        let (_, out) = ask(by_cert(), false).await;
        assert!(out.contains(": revoked") && out.contains("certificateHold"), "{out}");
        s.admin(Method::POST, &format!("/api/v1/certificates/{id}/reactivate"))
            .send()
            .await
            .unwrap();
        let (_, out) = ask(by_cert(), false).await;
        assert!(out.contains(": good"), "{out}");
        s.admin(Method::POST, &format!("/api/v1/certificates/{id}/revoke"))
            .json(&json!({"reason": "keyCompromise"}))
            .send()
            .await
            .unwrap();
        let (_, out) = ask(by_cert(), false).await;
        assert!(out.contains(": revoked") && out.contains("keyCompromise"), "{out}");
        let (_, out) = ask(vec!["-serial".into(), "0x123456789".into()], false).await;
        assert!(out.contains(": unknown"), "{out}");
        // Garbage is answered with malformedRequest, not an HTTP error.
        let r = s.client.post(format!("{}/ocsp", s.url)).body("garbage").send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(&r.bytes().await.unwrap()[..], &[0x30, 0x03, 0x0a, 0x01, 0x01]);
        // An anonymous request asks about at most 16 certificates; more is malformedRequest.
        for (n, malformed) in [(16, false), (17, true)] {
            let mut args = vec!["ocsp".to_owned(), "-issuer".into(), p("issuing.pem")];
            for i in 0..n {
                args.extend(["-serial".to_owned(), format!("0x{:x}", 0x1000 + i)]);
            }
            args.extend(["-no_nonce".to_owned(), "-reqout".into(), p("many.der")]);
            let (ok, out) = openssl(&args.iter().map(String::as_str).collect::<Vec<_>>());
            assert!(ok, "{out}");
            let r = s
                .client
                .post(format!("{}/ocsp", s.url))
                .header("content-type", "application/ocsp-request")
                .body(std::fs::read(p("many.der")).unwrap())
                .send()
                .await
                .unwrap();
            let body = r.bytes().await.unwrap();
            assert_eq!(body[..] == [0x30, 0x03, 0x0a, 0x01, 0x01], malformed, "{n} CertIDs");
        }
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn certificate_details_are_parsed_for_people() {
    let db = sigil_tests::TestDb::sqlite();
    let s = TestServer::start(&db).await;
    let dir = tempfile::tempdir().unwrap();
    let (csr, _) =
        openssl_csr(dir.path(), "d", "rsa:2048", "/CN=detail/O=Example", Some("DNS:d.example"));
    let (_, cert) = s.issue(&csr, "tls-server").await;
    let (st, full) = json(
        s.admin(Method::GET, &format!("/api/v1/certificates/{}", cert["id"].as_str().unwrap()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200);
    let d = &full["details"];
    assert_eq!(d["version"], 3);
    assert_eq!(d["public_key_bits"], 2048);
    assert_eq!(d["key_usage"], json!(["digitalSignature", "keyEncipherment"]));
    assert_eq!(d["extended_key_usage"], json!(["serverAuth"]));
    assert_eq!(d["is_ca"], false);
    assert!(d["issuer"].as_str().unwrap().contains("Sigil Issuing CA"));
    assert!(d["authority_key_id"].is_string() && d["subject_key_id"].is_string());
    s.stop().await;
}

#[tokio::test]
async fn a_repeated_ocsp_request_reuses_its_signed_answer_until_the_status_changes() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let dir = tempfile::tempdir().unwrap();
        let (csr, _) = openssl_csr(dir.path(), "o", "ec:P-256", "/CN=ocsp-cached", None);
        let (_, cert) = s.issue(&csr, "tls-client").await;
        let id = cert["id"].as_str().unwrap().to_owned();
        let p = |n: &str| dir.path().join(n).display().to_string();
        std::fs::write(p("leaf.pem"), cert["certificate"].as_str().unwrap()).unwrap();
        std::fs::write(p("issuing.pem"), cert["chain"][0].as_str().unwrap()).unwrap();
        // Without a nonce (RFC 5019), as most relying parties ask.
        let (ok, out) = openssl(&[
            "ocsp",
            "-issuer",
            &p("issuing.pem"),
            "-cert",
            &p("leaf.pem"),
            "-no_nonce",
            "-reqout",
            &p("req.der"),
        ]);
        assert!(ok, "{out}");
        let req = std::fs::read(p("req.der")).unwrap();
        let ask = || async {
            let r = s
                .client
                .post(format!("{}/ocsp", s.url))
                .header("content-type", "application/ocsp-request")
                .body(req.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap().to_vec()
        };
        // ECDSA signatures are randomised: equal bytes mean one signature served twice.
        let first = ask().await;
        assert_eq!(ask().await, first);
        // Any request about this certificate, nonce or not, gets the answer kept for it
        // (RFC 5019): one signature per certificate and status, not per request.
        for nonce in ["-nonce", "-nonce"] {
            let (ok, out) = openssl(&[
                "ocsp",
                "-issuer",
                &p("issuing.pem"),
                "-cert",
                &p("leaf.pem"),
                nonce,
                "-reqout",
                &p("nonce.der"),
            ]);
            assert!(ok, "{out}");
            let r = s
                .client
                .post(format!("{}/ocsp", s.url))
                .header("content-type", "application/ocsp-request")
                .body(std::fs::read(p("nonce.der")).unwrap())
                .send()
                .await
                .unwrap();
            assert_eq!(r.bytes().await.unwrap().to_vec(), first, "one answer per certificate");
        }
        s.admin(Method::POST, &format!("/api/v1/certificates/{id}/suspend")).send().await.unwrap();
        let after = ask().await;
        assert_ne!(after, first, "a status change is answered at once");
        std::fs::write(p("resp.der"), &after).unwrap();
        let (_, out) = openssl(&["ocsp", "-respin", &p("resp.der"), "-resp_text", "-noverify"]);
        assert!(out.contains("Cert Status: revoked"), "{out}");
        s.stop().await;
        db.cleanup().await;
    }
}
