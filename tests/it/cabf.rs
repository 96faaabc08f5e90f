//! The CA/Browser Forum TLS profile (`tls-server-public`) refuses what the Baseline
//! Requirements forbid, before anything is issued; and signing certificates are refused by
//! openssl for TLS.

use reqwest::Method;
use serde_json::{Value, json};
use sigil_tests::{Options, TestServer, backends, json, openssl, openssl_csr};

async fn spec_of(s: &TestServer, name: &str) -> Value {
    json(s.admin(Method::GET, &format!("/api/v1/profiles/{name}")).send().await.unwrap()).await.1
        ["spec"]
        .take()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_tls_profile_refuses_internal_names_a_cn_outside_the_sans_and_holds() {
    for db in backends().await {
        let toml = "[pki]\npublic_url = \"http://pki.sigil-pki.org:8080/\"\n".to_owned();
        let s = TestServer::start_with(&db, Options { toml, ..Default::default() }).await;
        let dir = tempfile::tempdir().unwrap();
        for (i, (subject, sans, code)) in [
            ("/CN=host.local", "DNS:host.local", "san_not_allowed"),
            ("/CN=intranet", "DNS:intranet", "san_not_allowed"),
            ("/CN=www.sigil-pki.org", "DNS:www.sigil-pki.org,IP:10.0.0.1", "san_not_allowed"),
            ("/CN=www.sigil-pki.org", "DNS:www.sigil-pki.org,IP:::1", "san_not_allowed"),
            ("/CN=www.sigil-pki.org", "DNS:a.*.sigil-pki.org", "san_not_allowed"),
            ("/CN=ceo.sigil-pki.org", "DNS:www.sigil-pki.org", "subject_not_allowed"),
            ("/CN=WWW.SIGIL-PKI.ORG", "DNS:www.sigil-pki.org", "subject_not_allowed"),
            ("/CN=server.localdomain", "DNS:server.localdomain", "san_not_allowed"),
            ("/CN=www.sigil-pki.org", "DNS:www.sigil-pki.org,IP:::10.0.0.1", "san_not_allowed"),
            ("/CN=www.sigil-pki.org", "DNS:www.sigil-pki.org,IP:2002:a00:1::1", "san_not_allowed"),
            ("/CN=Ana Alpha", "DNS:www.sigil-pki.org", "subject_not_allowed"),
            ("/OU=Web/CN=www.sigil-pki.org", "DNS:www.sigil-pki.org", "subject_not_allowed"),
            (
                "/CN=www.sigil-pki.org",
                "DNS:www.sigil-pki.org,email:a@sigil-pki.org",
                "san_not_allowed",
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let (csr, _) =
                openssl_csr(dir.path(), &format!("r{i}"), "ec:P-256", subject, Some(sans));
            let (st, b) = s.issue(&csr, "tls-server-public").await;
            assert_eq!((st, b["code"].as_str()), (400, Some(code)), "{subject} {sans}: {b}");
        }
        // Names only (no CN) and a public address pass; no hold, ever.
        let (csr, _) = openssl_csr(
            dir.path(),
            "ok",
            "rsa:2048",
            "/C=DE",
            Some("DNS:www.sigil-pki.org,IP:8.8.8.8"),
        );
        let (st, c) = s.issue(&csr, "tls-server-public").await;
        assert_eq!(st, 201, "{c}");
        let id = c["id"].as_str().unwrap();
        let (st, e) = json(
            s.admin(Method::POST, &format!("/api/v1/certificates/{id}/suspend"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((st, e["code"].as_str()), (409, Some("suspension_not_allowed")), "{e}");
        // Its shape is the Baseline Requirements': no saving it wider.
        let base = spec_of(&s, "tls-server-public").await;
        for (field, value) in [
            ("validity_days", json!(201)),
            ("allow_suspension", json!(true)),
            ("certificate_policies", json!([])),
            ("certificate_policies", json!(["2.23.140.1.2.1", "2.23.140.1.2.2"])),
            ("extended_key_usage", json!(["serverAuth", "clientAuth"])),
            ("key_usage", json!(["digitalSignature", "nonRepudiation"])),
        ] {
            let mut spec = base.clone();
            spec[field] = value.clone();
            let (st, e) = json(
                s.admin(Method::PUT, "/api/v1/profiles/tls-server-public")
                    .json(&spec)
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!((st, e["code"].as_str()), (400, Some("invalid_profile")), "{field}: {e}");
        }
        let refused = |spec: Value, path: &'static str, method: Method| {
            let s = &s;
            async move {
                let (st, e) = json(s.admin(method, path).json(&spec).send().await.unwrap()).await;
                assert_eq!((st, e["code"].as_str()), (400, Some("invalid_profile")), "{spec}: {e}");
            }
        };
        let put = "/api/v1/profiles/tls-server-public";
        let mut spec = base.clone();
        spec["subject"]["allowed_attributes"] = json!(["CN", "O"]);
        refused(spec, put, Method::PUT).await;
        // OV: no OU (Baseline Requirements since 2022).
        let mut spec = base.clone();
        spec["certificate_policies"] = json!(["2.23.140.1.2.2"]);
        spec["subject"]["allowed_attributes"] = json!(["CN", "C", "O", "OU"]);
        refused(spec, put, Method::PUT).await;
        // Once a CA/Browser Forum profile, always one; and nobody else asserts its policies,
        // however spelled, nor through a custom extension.
        let mut spec = base.clone();
        spec["cabf_server_auth"] = json!(false);
        refused(spec, put, Method::PUT).await;
        let mut private = spec_of(&s, "tls-server").await;
        for policies in
            [json!(["2.23.140.1.2.1"]), json!(["2.23.140.1.2.02"]), json!(["1.63.140.1.2.1"])]
        {
            private["certificate_policies"] = policies;
            refused(
                json!({"name": "p", "spec": private.clone()}),
                "/api/v1/profiles",
                Method::POST,
            )
            .await;
        }
        private["certificate_policies"] = json!([]);
        private["custom_extensions"] =
            json!([{"oid": "2.5.29.32", "critical": false, "value": "MAowCAYGZ4EMAQIB"}]);
        refused(json!({"name": "p", "spec": private.clone()}), "/api/v1/profiles", Method::POST)
            .await;
        // A policy of one's own is fine.
        private["custom_extensions"] = json!([]);
        private["certificate_policies"] = json!(["1.3.6.1.4.1.55555.7"]);
        let (st, b) = json(
            s.admin(Method::POST, "/api/v1/profiles")
                .json(&json!({"name": "p", "spec": private}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(st, 201, "{b}");
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn the_public_tls_profile_issues_nothing_without_a_public_publication_url() {
    for toml in [
        "",
        "[pki]\npublic_url = \"http://127.0.0.1:8080\"\n",
        "[pki]\npublic_url = \"http://pki.corp\"\n",
        "[pki]\npublic_url = \"https://pki.sigil-pki.org\"\n",
        "[pki]\npublic_url = \"http://[::10.0.0.1]:8080\"\n",
    ] {
        for db in backends().await {
            let s =
                TestServer::start_with(&db, Options { toml: toml.into(), ..Default::default() })
                    .await;
            let dir = tempfile::tempdir().unwrap();
            let (csr, _) = openssl_csr(
                dir.path(),
                "p",
                "ec:P-256",
                "/CN=www.sigil-pki.org",
                Some("DNS:www.sigil-pki.org"),
            );
            let (st, e) = s.issue(&csr, "tls-server-public").await;
            assert_eq!(
                (st, e["code"].as_str()),
                (409, Some("publication_required")),
                "{toml}: {e}"
            );
            // Nothing issued, nothing recorded.
            let (_, all) =
                json(s.admin(Method::GET, "/api/v1/certificates").send().await.unwrap()).await;
            assert_eq!(all["items"].as_array().unwrap().len(), 0);
            s.stop().await;
            db.cleanup().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_signing_certificate_is_no_tls_certificate_for_openssl() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n).display().to_string();
        let (csr, _) = openssl_csr(dir.path(), "d", "ec:P-256", "/CN=Ana Alpha", None);
        let (st, c) = s.issue(&csr, "document-signing").await;
        assert_eq!(st, 201, "{c}");
        std::fs::write(p("leaf.pem"), c["certificate"].as_str().unwrap()).unwrap();
        std::fs::write(p("issuing.pem"), c["chain"][0].as_str().unwrap()).unwrap();
        std::fs::write(p("root.pem"), c["chain"][1].as_str().unwrap()).unwrap();
        let verify = |purpose: &str| {
            openssl(&[
                "verify",
                "-x509_strict",
                "-purpose",
                purpose,
                "-CAfile",
                &p("root.pem"),
                "-untrusted",
                &p("issuing.pem"),
                &p("leaf.pem"),
            ])
        };
        let (ok, out) = verify("any");
        assert!(ok, "a valid chain: {out}");
        for purpose in ["sslserver", "sslclient", "smimesign"] {
            let (ok, out) = verify(purpose);
            assert!(!ok && out.contains("unsuitable certificate purpose"), "{purpose}: {out}");
        }
        s.stop().await;
        db.cleanup().await;
    }
}
