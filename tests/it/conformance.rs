//! Issuance that strict relying parties accept: key usage fitting the key type, the exact
//! validity the profile says, one value per subject attribute, subject e-mail under the e-mail
//! rules, no profile extension the CA sets itself, signing certificates marked for signing, and
//! OCSP answers with a nextUpdate and reasons as the CRL gives them.

use reqwest::Method;
use serde_json::{Value, json};
use sigil_tests::{TestServer, backends, json, openssl, openssl_csr};

/// `openssl x509 -noout -text` of `pem`, and whether `openssl verify -x509_strict -purpose P`
/// accepts it against its chain.
fn inspect(dir: &std::path::Path, cert: &Value, purpose: &str) -> (String, bool, String) {
    let p = |n: &str| dir.join(n).display().to_string();
    std::fs::write(p("leaf.pem"), cert["certificate"].as_str().unwrap()).unwrap();
    let chain: Vec<&str> =
        cert["chain"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    std::fs::write(p("issuing.pem"), chain[0]).unwrap();
    std::fs::write(p("root.pem"), chain.last().unwrap()).unwrap();
    let (ok, text) = openssl(&["x509", "-in", &p("leaf.pem"), "-noout", "-text"]);
    assert!(ok, "{text}");
    let (ok, out) = openssl(&[
        "verify",
        "-x509_strict",
        "-purpose",
        purpose,
        "-CAfile",
        &p("root.pem"),
        "-untrusted",
        &p("issuing.pem"),
        &p("leaf.pem"),
    ]);
    (text, ok, out)
}

/// The text after `heading` in openssl's output, to the end of that line's block.
fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    text.split_once(heading).map(|(_, rest)| rest.lines().nth(1).unwrap_or("").trim()).unwrap_or("")
}

#[tokio::test]
async fn key_usage_fits_the_key_type_and_a_certificate_lives_exactly_its_validity() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let dir = tempfile::tempdir().unwrap();
        for (key, usage) in [
            ("ec:P-256", "Digital Signature"),
            ("ec:P-384", "Digital Signature"),
            ("rsa:2048", "Digital Signature, Key Encipherment"),
        ] {
            let (csr, _) =
                openssl_csr(dir.path(), "k", key, "/CN=www", Some("DNS:www.example.org"));
            let (st, c) = s.issue(&csr, "tls-server").await;
            assert_eq!(st, 201, "{c}");
            let (text, ok, out) = inspect(dir.path(), &c, "sslserver");
            assert!(ok, "{key}: {out}");
            assert_eq!(section(&text, "X509v3 Key Usage: critical"), usage, "{key}: {text}");
            // notAfter - notBefore + 1 s (both ends included) is exactly 397 days.
            let nb = time::OffsetDateTime::parse(
                c["not_before"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap();
            let na = time::OffsetDateTime::parse(
                c["not_after"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap();
            assert_eq!(na - nb + time::Duration::seconds(1), time::Duration::days(397), "{c}");
        }
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_subject_with_a_repeated_attribute_a_multi_valued_rdn_or_an_unruled_email_is_refused() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let dir = tempfile::tempdir().unwrap();
        // Two CNs: the first passes a pattern, the last is what a relying party may show.
        let mut spec =
            json(s.admin(Method::GET, "/api/v1/profiles/tls-client").send().await.unwrap()).await.1
                ["spec"]
                .take();
        spec["subject"]["common_name_pattern"] = json!("Ana Alpha");
        spec["san"]["email_pattern"] = json!(".*@corp\\.example");
        let r = s
            .admin(Method::POST, "/api/v1/profiles")
            .json(&json!({"name": "staff", "spec": spec}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let refused = |subject: &str| {
            let (csr, _) = openssl_csr(dir.path(), "s", "ec:P-256", subject, None);
            let s = &s;
            async move { s.issue(&csr, "staff").await }
        };
        for subject in [
            "/CN=Ana Alpha/CN=Chief Executive",
            "/CN=Ana Alpha/emailAddress=ceo@elsewhere.example",
            "/CN=Ana Alpha/emailAddress=not-an-address",
        ] {
            let (st, b) = refused(subject).await;
            assert_eq!(
                (st, b["code"].as_str()),
                (400, Some("subject_not_allowed")),
                "{subject}: {b}"
            );
        }
        let (st, b) = refused("/CN=Ana Alpha/emailAddress=ana@corp.example").await;
        assert_eq!(st, 201, "{b}");
        // tls-server forbids e-mail names, in the subject too.
        let (csr, _) = openssl_csr(
            dir.path(),
            "w",
            "ec:P-256",
            "/CN=w/emailAddress=a@b.example",
            Some("DNS:w.example"),
        );
        let (st, b) = s.issue(&csr, "tls-server").await;
        assert_eq!((st, b["code"].as_str()), (400, Some("subject_not_allowed")), "{b}");
        // A multi-valued RDN (CN and O in one RDN).
        let key = dir.path().join("m.key").display().to_string();
        let out_csr = dir.path().join("m.csr").display().to_string();
        let (ok, out) = openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-subj",
            "/CN=Ana Alpha+O=Corp",
            "-multivalue-rdn",
            "-out",
            &out_csr,
        ]);
        assert!(ok, "{out}");
        let (st, b) = s.issue(&std::fs::read_to_string(&out_csr).unwrap(), "staff").await;
        assert_eq!((st, b["code"].as_str()), (400, Some("subject_not_allowed")), "{b}");
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_profile_may_not_supply_an_extension_the_ca_sets() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let mut spec =
            json(s.admin(Method::GET, "/api/v1/profiles/tls-client").send().await.unwrap()).await.1
                ["spec"]
                .take();
        // basicConstraints CA:TRUE (30 03 01 01 ff), keyUsage, AIA, SAN: all the CA's own.
        for oid in ["2.5.29.19", "2.5.29.15", "1.3.6.1.5.5.7.1.1", "2.5.29.17"] {
            spec["custom_extensions"] =
                json!([{"oid": oid, "critical": true, "value": "MAMBAf8="}]);
            let (st, b) = json(
                s.admin(Method::POST, "/api/v1/profiles")
                    .json(&json!({"name": "x", "spec": spec}))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!((st, b["code"].as_str()), (400, Some("invalid_profile")), "{oid}: {b}");
        }
        // An extension of its own is fine, once.
        let own = json!({"oid": "1.3.6.1.4.1.55555.1", "critical": false, "value": "BQA="});
        spec["custom_extensions"] = json!([own, own]);
        let (st, b) = json(
            s.admin(Method::POST, "/api/v1/profiles")
                .json(&json!({"name": "x", "spec": spec}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((st, b["code"].as_str()), (400, Some("invalid_profile")), "{b}");
        spec["custom_extensions"] = json!([own]);
        let (st, b) = json(
            s.admin(Method::POST, "/api/v1/profiles")
                .json(&json!({"name": "x", "spec": spec}))
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
async fn signing_certificates_say_document_signing_and_credentials_use_signing_profiles_only() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        s.signer("ana", "ana's password").await;
        let c = s.credential("ana", "p256", "2468", 1, 1).await;
        let cert = c["certificate"]["certificate"]
            .as_str()
            .or(c["certificate"].as_str())
            .map(str::to_owned);
        let id =
            c["certificate_id"].as_str().or(c["certificate"]["id"].as_str()).map(str::to_owned);
        let pem = match (cert, id) {
            (Some(pem), _) if pem.contains("BEGIN CERTIFICATE") => pem,
            (_, Some(id)) => json(
                s.admin(Method::GET, &format!("/api/v1/certificates/{id}")).send().await.unwrap(),
            )
            .await
            .1["certificate"]
                .as_str()
                .unwrap()
                .to_owned(),
            _ => panic!("no certificate in {c}"),
        };
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.pem");
        std::fs::write(&f, &pem).unwrap();
        let (ok, text) =
            openssl(&["x509", "-in", f.to_str().unwrap(), "-noout", "-ext", "extendedKeyUsage"]);
        assert!(
            ok && (text.contains("1.3.6.1.5.5.7.3.36") || text.contains("Document Signing")),
            "{text}"
        );
        assert!(!text.contains("TLS Web"), "{text}");
        // A TLS profile is not a signing profile.
        let r = s
            .admin(Method::POST, "/api/v1/signing-credentials")
            .json(&json!({"signer": "ana", "key_algorithm": "p256", "pin": "2468", "scal": 1, "multisign": 1, "profile": "tls-client"}))
            .send()
            .await
            .unwrap();
        let (st, b) = json(r).await;
        assert_eq!((st, b["code"].as_str()), (400, Some("profile_not_for_signing")), "{b}");
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn ocsp_answers_carry_a_next_update_and_reasons_as_the_crl_gives_them() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let dir = tempfile::tempdir().unwrap();
        let (csr, _) = openssl_csr(dir.path(), "o", "ec:P-256", "/CN=o", None);
        let (_, cert) = s.issue(&csr, "tls-client").await;
        let text = s.ocsp_text(&cert).await;
        assert!(text.contains("Next Update:"), "{text}");
        let id = cert["id"].as_str().unwrap();
        let r = s
            .admin(Method::POST, &format!("/api/v1/certificates/{id}/revoke"))
            .json(&json!({"reason": "unspecified"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let text = s.ocsp_text(&cert).await;
        assert!(text.contains("revoked") && !text.contains("Reason"), "{text}");
        let crl = s.crl_text("builtin").await;
        let serial = cert["serial"].as_str().unwrap().to_ascii_uppercase();
        assert!(crl.contains(&serial) && !crl.contains("CRL Reason Code"), "{crl}");
        s.stop().await;
        db.cleanup().await;
    }
}

// openssl (a blocking child process) talks to the in-process server: a second worker serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crls_ocsp_and_ca_certificates_are_published_over_plain_http_where_certificates_point() {
    for db in backends().await {
        let port = sigil_tests::free_port();
        let base = format!("http://127.0.0.1:{port}");
        let toml = format!("[pki]\npublic_url = \"{base}\"\nhttp_listen = \"127.0.0.1:{port}\"\n");
        let s =
            TestServer::start_with(&db, sigil_tests::Options { toml, ..Default::default() }).await;
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n).display().to_string();
        let (csr, _) = openssl_csr(dir.path(), "h", "ec:P-256", "/CN=h", None);
        let (st, cert) = s.issue(&csr, "tls-client").await;
        assert_eq!(st, 201, "{cert}");
        let (text, ok, out) = inspect(dir.path(), &cert, "sslclient");
        assert!(ok, "{out}");
        assert!(text.contains(&format!("OCSP - URI:{base}/ocsp")), "{text}");
        assert!(text.contains(&format!("CA Issuers - URI:{base}/ca/builtin.crt")), "{text}");
        assert!(text.contains(&format!("URI:{base}/crl/builtin.crl")), "{text}");
        // openssl follows the certificate: the responder named in it, over HTTP.
        let (ok, out) = openssl(&[
            "ocsp",
            "-issuer",
            &p("issuing.pem"),
            "-cert",
            &p("leaf.pem"),
            "-url",
            &format!("{base}/ocsp"),
            "-CAfile",
            &p("root.pem"),
            "-verify_other",
            &p("issuing.pem"),
        ]);
        assert!(ok && out.contains(": good") && out.contains("Response verify OK"), "{out}");
        // The CRL from its distribution point, downloaded by openssl itself.
        let chain = format!(
            "{}{}",
            std::fs::read_to_string(p("issuing.pem")).unwrap(),
            std::fs::read_to_string(p("root.pem")).unwrap()
        );
        std::fs::write(p("chain.pem"), chain).unwrap();
        let (ok, out) = openssl(&[
            "verify",
            "-crl_check",
            "-crl_download",
            "-CAfile",
            &p("chain.pem"),
            &p("leaf.pem"),
        ]);
        assert!(ok, "{out}");
        // The issuing CA points to the root's CRL and certificate; openssl checks both CRLs,
        // fetching each from its distribution point.
        let (_, ca_text) = openssl(&["x509", "-in", &p("issuing.pem"), "-noout", "-text"]);
        assert!(ca_text.contains(&format!("URI:{base}/crl/builtin-root.crl")), "{ca_text}");
        assert!(
            ca_text.contains(&format!("CA Issuers - URI:{base}/ca/builtin-root.crt")),
            "{ca_text}"
        );
        // The issuing CA, checked against the root's CRL that openssl downloads (a self-signed
        // root has no CRL of its own, so -crl_check_all over the whole chain cannot pass).
        let (ok, out) = openssl(&[
            "verify",
            "-crl_check",
            "-crl_download",
            "-CAfile",
            &p("root.pem"),
            &p("issuing.pem"),
        ]);
        assert!(ok, "{out}");
        let r =
            reqwest::Client::new().get(format!("{base}/ca/builtin-root.crt")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        std::fs::write(p("root.der"), r.bytes().await.unwrap()).unwrap();
        let (_, a) =
            openssl(&["x509", "-inform", "DER", "-in", &p("root.der"), "-noout", "-fingerprint"]);
        let (_, b) = openssl(&["x509", "-in", &p("root.pem"), "-noout", "-fingerprint"]);
        assert_eq!(a, b);
        // caIssuers: the issuing CA's certificate, DER.
        let plain = reqwest::Client::new();
        let r = plain.get(format!("{base}/ca/builtin.crt")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        std::fs::write(p("ca.der"), r.bytes().await.unwrap()).unwrap();
        let (ok, out) =
            openssl(&["x509", "-inform", "DER", "-in", &p("ca.der"), "-noout", "-subject"]);
        assert!(ok && out.contains("Sigil Issuing CA"), "{out}");
        // Nothing else is served over plain HTTP.
        for path in ["/api/v1/certificates", "/health/live", "/openapi.json", "/ca/nope.crt"] {
            let r = plain.get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(r.status(), 404, "{path}");
        }
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn the_cas_made_on_first_start_carry_the_configured_names() {
    for db in backends().await {
        let toml = "[pki.ca_subject]\norganization = \"Example Corp\"\ncountry = \"DE\"\n\
                    issuing_common_name = \"Example Issuing CA\"\n"
            .to_owned();
        let s =
            TestServer::start_with(&db, sigil_tests::Options { toml, ..Default::default() }).await;
        let dir = tempfile::tempdir().unwrap();
        let (csr, _) = openssl_csr(dir.path(), "n", "ec:P-256", "/CN=n", None);
        let (_, cert) = s.issue(&csr, "tls-client").await;
        let (text, ok, out) = inspect(dir.path(), &cert, "sslclient");
        assert!(ok, "{out}");
        assert!(
            text.contains("Issuer: C = DE, O = Example Corp, CN = Example Issuing CA"),
            "{text}"
        );
        let root = dir.path().join("root.pem").display().to_string();
        let (_, subject) = openssl(&["x509", "-in", &root, "-noout", "-subject"]);
        assert!(
            subject.contains("C = DE, O = Example Corp, CN = Sigil Root CA (builtin)"),
            "{subject}"
        );
        s.stop().await;
        db.cleanup().await;
    }
    let bad = tempfile::tempdir().unwrap();
    let f = bad.path().join("c.toml");
    std::fs::write(&f, "[pki.ca_subject]\ncountry = \"Germany\"\n").unwrap();
    let e = sigil_server::config::Config::load_from(Some(&f), std::iter::empty()).unwrap_err();
    assert!(e.to_string().contains("two capital letters"), "{e}");
    // One name for root and issuing CA would make the issuing CA look self-issued.
    std::fs::write(
        &f,
        "[pki.ca_subject]\nroot_common_name = \"Acme CA\"\nissuing_common_name = \"Acme CA\"\n",
    )
    .unwrap();
    let e = sigil_server::config::Config::load_from(Some(&f), std::iter::empty()).unwrap_err();
    assert!(e.to_string().contains("must differ"), "{e}");
    std::fs::write(&f, format!("[pki.ca_subject]\norganization = \"{}\"\n", "O".repeat(65)))
        .unwrap();
    let e = sigil_server::config::Config::load_from(Some(&f), std::iter::empty()).unwrap_err();
    assert!(e.to_string().contains("at most 64"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_renewals_of_one_certificate_record_only_one() {
    for db in backends().await {
        let s = std::sync::Arc::new(TestServer::start(&db).await);
        let dir = tempfile::tempdir().unwrap();
        let mut spec =
            json(s.admin(Method::GET, "/api/v1/profiles/tls-client").send().await.unwrap()).await.1
                ["spec"]
                .take();
        spec["renewal_window_days"] = json!(365);
        let r =
            s.admin(Method::PUT, "/api/v1/profiles/tls-client").json(&spec).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let (csr, _) = openssl_csr(dir.path(), "c", "ec:P-256", "/CN=c", None);
        let (_, cert) = s.issue(&csr, "tls-client").await;
        let id = cert["id"].as_str().unwrap().to_owned();
        let calls: Vec<_> = (0..8)
            .map(|_| {
                let (s, id) = (s.clone(), id.clone());
                tokio::spawn(async move {
                    let path = format!("/api/v1/certificates/{id}/renew");
                    json(s.admin(Method::POST, &path).send().await.unwrap()).await
                })
            })
            .collect();
        let mut ok = 0;
        for c in calls {
            let (st, b) = c.await.unwrap();
            match st {
                201 => ok += 1,
                409 => assert_eq!(b["code"], "already_renewed", "{b}"),
                other => panic!("{other}: {b}"),
            }
        }
        assert_eq!(ok, 1, "one renewal recorded");
        let (_, list) =
            json(s.admin(Method::GET, "/api/v1/certificates?limit=50").send().await.unwrap()).await;
        let renewals = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["renewed_from"] == id.as_str())
            .count();
        assert_eq!(renewals, 1);
        std::sync::Arc::into_inner(s).unwrap().stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn an_endpoint_that_needs_a_credential_is_not_served_over_plain_http() {
    for db in backends().await {
        let port = sigil_tests::free_port();
        let base = format!("http://127.0.0.1:{port}");
        let toml = format!(
            "[pki]\nhttp_listen = \"127.0.0.1:{port}\"\n[exposure.modules.crl]\nauth = \"api_key\"\n"
        );
        let s =
            TestServer::start_with(&db, sigil_tests::Options { toml, ..Default::default() }).await;
        let plain = reqwest::Client::new();
        // A key would travel in clear text: the CRL is not served here at all, key or not.
        let r = plain
            .get(format!("{base}/crl/builtin.crl"))
            .bearer_auth(&s.admin_key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        let r = plain.get(format!("{base}/ca/builtin.crt")).send().await.unwrap();
        assert_eq!(r.status(), 200, "what needs no credential still is");
        // Over HTTPS, with its key, as configured.
        let r = s.admin(Method::GET, "/crl/builtin.crl").send().await.unwrap();
        assert_eq!(r.status(), 200);
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_publication_listener_that_cannot_bind_stops_the_server_it_was_starting_with() {
    let db = sigil_tests::TestDb::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let main_port = sigil_tests::free_port();
    let cfg_file = dir.path().join("c.toml");
    std::fs::write(
        &cfg_file,
        format!(
            "[server]\nlisten = \"127.0.0.1:{main_port}\"\ndata_dir = \"{}\"\n\
             [database]\nurl = \"{}\"\n[pki]\nmaster_key_file = \"{}\"\nhttp_listen = \"{}\"\n",
            dir.path().display(),
            db.url,
            dir.path().join("master.key").display(),
            taken.local_addr().unwrap()
        ),
    )
    .unwrap();
    let cfg = sigil_server::config::Config::load_from(Some(&cfg_file), std::iter::empty()).unwrap();
    let e = sigil_server::startup::start(&cfg).await.err().expect("the start fails");
    assert!(
        format!("{e:#}").contains("cannot listen on") && e.to_string().contains("pki.http_listen"),
        "{e:#}"
    );
    // The HTTPS listener it had started is gone: its port is free again.
    let again = std::net::TcpListener::bind(("127.0.0.1", main_port));
    assert!(again.is_ok(), "the main listener was left running: {again:?}");
}
