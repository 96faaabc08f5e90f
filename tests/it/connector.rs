//! The cfssl CA connector plugin against a real `cfssl serve` (Debian's golang-cfssl): a profile
//! routed to it issues certificates that chain to cfssl's CA and sit in Sigil's inventory;
//! revocation reaches cfssl's certdb; an unreachable CA changes nothing; and the back end of a
//! profile swaps between the built-in CA and cfssl under concurrent issuance without one failed
//! request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sigil_tests::cfssl::Cfssl;
use sigil_tests::{Options, TestServer, json as body, openssl, openssl_csr};
use sigil_wasm::serial_decimal as decimal;

fn connector_wasm() -> std::path::PathBuf {
    std::path::Path::new(env!("SIGIL_TEST_PLUGINS")).join("cfssl_connector.wasm")
}

/// Creates profile `name`: tls-client's rules, issued by back end `ca` (`None`: tls-client's
/// own, the built-in CA). Returns the built-in CA's id.
async fn profile_on(s: &TestServer, name: &str, ca: Option<&str>) -> String {
    let (_, p) =
        body(s.admin(Method::GET, "/api/v1/profiles/tls-client").send().await.unwrap()).await;
    let mut spec = p["spec"].clone();
    let builtin = spec["ca"].as_str().unwrap().to_owned();
    if let Some(ca) = ca {
        spec["ca"] = json!(ca);
    }
    let (st, p) = body(
        s.admin(Method::POST, "/api/v1/profiles")
            .json(&json!({"name": name, "spec": spec}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 201, "{p}");
    builtin
}

/// Points profile `name` at back end `ca`.
async fn switch(s: &TestServer, name: &str, ca: &str) {
    let (_, p) =
        body(s.admin(Method::GET, &format!("/api/v1/profiles/{name}")).send().await.unwrap()).await;
    let mut spec = p["spec"].clone();
    spec["ca"] = json!(ca);
    let (st, p) = body(
        s.admin(Method::PUT, &format!("/api/v1/profiles/{name}")).json(&spec).send().await.unwrap(),
    )
    .await;
    assert_eq!(st, 200, "{p}");
}

#[tokio::test]
async fn a_profile_routed_to_cfssl_issues_there_and_revocation_reaches_cfssls_certdb() {
    let mut ca = Cfssl::start().await;
    for db in sigil_tests::backends().await {
        let s = TestServer::start_with(
            &db,
            Options { toml: ca.plugin_toml("cfssl", &connector_wasm()), ..Default::default() },
        )
        .await;
        let (_, plugins) =
            body(s.admin(Method::GET, "/api/v1/plugins").send().await.unwrap()).await;
        let p = plugins.as_array().unwrap().iter().find(|p| p["id"] == "cfssl").unwrap().clone();
        assert_eq!(
            (p["kind"].as_str(), p["status"].as_str()),
            (Some("ca-connector"), Some("active")),
            "{p}"
        );
        let (_, backends) =
            body(s.admin(Method::GET, "/api/v1/ca-backends").send().await.unwrap()).await;
        let b = backends.as_array().unwrap().iter().find(|b| b["id"] == "cfssl").unwrap().clone();
        assert_eq!(b["kind"], "plugin");
        assert_eq!(b["crl_url"], Value::Null, "an external CA publishes its own status");
        assert_eq!(b["supports_suspension"], false);
        assert_eq!(b["chain"].as_array().unwrap().len(), 2, "cfssl's issuing CA and the root");
        profile_on(&s, "cfssl-client", Some("cfssl")).await;

        let tmp = tempfile::tempdir().unwrap();
        let (csr, _) = openssl_csr(tmp.path(), "alice", "ec:P-256", "/CN=alice", None);
        let (st, cert) = s.issue(&csr, "cfssl-client").await;
        assert_eq!(st, 201, "{cert}");
        assert_eq!(cert["ca"], "cfssl");
        let leaf = tmp.path().join("leaf.pem");
        std::fs::write(&leaf, cert["certificate"].as_str().unwrap()).unwrap();
        let chain = tmp.path().join("chain.pem");
        std::fs::write(&chain, cert["chain"].as_array().unwrap()[0].as_str().unwrap()).unwrap();
        let (ok, out) = openssl(&[
            "verify",
            "-purpose",
            "sslclient",
            "-CAfile",
            &ca.path("root.pem"),
            "-untrusted",
            chain.to_str().unwrap(),
            leaf.to_str().unwrap(),
        ]);
        assert!(ok && out.contains("OK"), "the certificate chains to cfssl's CA: {out}");
        let (_, text) =
            openssl(&["x509", "-in", leaf.to_str().unwrap(), "-noout", "-serial", "-issuer"]);
        assert!(text.contains("Sigil Bench Issuing CA 1"), "{text}");
        let serial = cert["serial"].as_str().unwrap().to_owned();
        assert!(
            text.to_lowercase().contains(&format!("serial={serial}")),
            "Sigil records cfssl's serial: {text} vs {serial}"
        );
        assert_eq!(ca.row(&decimal(&serial)).await, Some(("good".to_owned(), 0)));
        // In the inventory, filtered by back end.
        let (_, list) =
            body(s.admin(Method::GET, "/api/v1/certificates?ca=cfssl").send().await.unwrap()).await;
        assert!(
            list["items"].as_array().unwrap().iter().any(|c| c["serial"] == serial.as_str()),
            "{list}"
        );
        let id = cert["id"].as_str().unwrap().to_owned();

        // cfssl cannot lift a hold, so Sigil does not promise one.
        let (st, b) = body(
            s.admin(Method::POST, &format!("/api/v1/certificates/{id}/suspend"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((st, b["code"].as_str()), (409, Some("suspension_not_supported")), "{b}");
        // Revocation reaches cfssl's certdb (reason keyCompromise = 1); a retry is harmless.
        for _ in 0..2 {
            let (st, b) = body(
                s.admin(Method::POST, &format!("/api/v1/certificates/{id}/revoke"))
                    .json(&json!({"reason": "keyCompromise"}))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!((st, b["status"].as_str()), (200, Some("revoked")), "{b}");
        }
        assert_eq!(ca.row(&decimal(&serial)).await, Some(("revoked".to_owned(), 1)));
        let actions = s.trail_actions("certificate", &id).await;
        assert_eq!(actions, ["certificate.issue", "certificate.revoke"]);

        // With cfssl down nothing is issued or revoked, and nothing is recorded.
        let (csr2, _) = openssl_csr(tmp.path(), "bob", "ec:P-256", "/CN=bob", None);
        let (st, other) = s.issue(&csr2, "cfssl-client").await;
        assert_eq!(st, 201, "{other}");
        let other_id = other["id"].as_str().unwrap().to_owned();
        ca.stop();
        let count = |l: &Value| l["items"].as_array().unwrap().len();
        let before = count(
            &body(s.admin(Method::GET, "/api/v1/certificates?ca=cfssl").send().await.unwrap())
                .await
                .1,
        );
        let (csr3, _) = openssl_csr(tmp.path(), "carol", "ec:P-256", "/CN=carol", None);
        let (st, b) = s.issue(&csr3, "cfssl-client").await;
        assert_eq!(st, 502, "{b}");
        // The client gets a code; the connector's message (with cfssl's address) goes to the log.
        let detail = b["detail"].as_str().unwrap();
        assert!(detail.contains(b["code"].as_str().unwrap()), "{b}");
        assert!(!detail.contains("127.0.0.1") && !detail.contains("http"), "{b}");
        let after = count(
            &body(s.admin(Method::GET, "/api/v1/certificates?ca=cfssl").send().await.unwrap())
                .await
                .1,
        );
        assert_eq!(before, after);
        let (st, _) = body(
            s.admin(Method::POST, &format!("/api/v1/certificates/{other_id}/revoke"))
                .json(&json!({"reason": "superseded"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(st, 502);
        let (_, still) = body(
            s.admin(Method::GET, &format!("/api/v1/certificates/{other_id}")).send().await.unwrap(),
        )
        .await;
        assert_eq!(still["status"], "active", "a revocation cfssl did not take is not recorded");
        ca.restart().await;
        let (st, b) = body(
            s.admin(Method::POST, &format!("/api/v1/certificates/{other_id}/revoke"))
                .json(&json!({"reason": "superseded"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(st, 200, "{b}");
        assert_eq!(
            ca.row(&decimal(other["serial"].as_str().unwrap())).await,
            Some(("revoked".to_owned(), 4))
        );
        s.stop().await;
        db.cleanup().await;
    }
}

/// Distinct P-256 CSRs, made up front so the load is only issuance.
fn csrs(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut p = rcgen::CertificateParams::new(vec![]).unwrap();
            p.distinguished_name.push(rcgen::DnType::CommonName, format!("swap-{i}"));
            p.serialize_request(&key).unwrap().pem().unwrap()
        })
        .collect()
}

#[tokio::test]
async fn the_ca_back_end_swaps_between_built_in_and_cfssl_under_load_without_a_failed_request() {
    let ca = Cfssl::start().await;
    for db in sigil_tests::backends().await {
        let s = Arc::new(
            TestServer::start_with(
                &db,
                Options { toml: ca.plugin_toml("cfssl", &connector_wasm()), ..Default::default() },
            )
            .await,
        );
        let builtin = profile_on(&s, "swap", None).await;
        let stop = Arc::new(AtomicBool::new(false));
        let pool = Arc::new(csrs(3000));
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let workers: Vec<_> = (0..8)
            .map(|_| {
                let (s, stop, pool, next) = (s.clone(), stop.clone(), pool.clone(), next.clone());
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(csr) = pool.get(i) else { break };
                        let (st, c) = s.issue(csr, "swap").await;
                        seen.push((st, c["ca"].as_str().unwrap_or_default().to_owned(), c));
                    }
                    seen
                })
            })
            .collect();
        let pause = || tokio::time::sleep(Duration::from_millis(400));
        pause().await;
        switch(&s, "swap", "cfssl").await;
        pause().await;
        // A new generation of the connector (a changed configuration) swaps in under load too.
        let cfg = s.data_dir().join("test.toml");
        let text = std::fs::read_to_string(&cfg).unwrap();
        std::fs::write(
            &cfg,
            text.replace(
                "[plugins.load.cfssl.config]\n",
                "[plugins.load.cfssl.config]\nnote = \"v2\"\n",
            ),
        )
        .unwrap();
        let (st, status) =
            body(s.admin(Method::POST, "/api/v1/plugins/reload").send().await.unwrap()).await;
        assert_eq!(st, 200, "{status}");
        let gen_of = |v: &Value| {
            v.as_array().unwrap().iter().find(|p| p["id"] == "cfssl").unwrap()["generation"]
                .as_u64()
                .unwrap()
        };
        assert!(gen_of(&status) > 1, "the connector was reloaded: {status}");
        pause().await;
        switch(&s, "swap", &builtin).await;
        pause().await;
        stop.store(true, Ordering::Relaxed);
        let mut results = Vec::new();
        for w in workers {
            results.extend(w.await.unwrap());
        }
        let failed: Vec<_> = results.iter().filter(|(st, _, _)| *st != 201).collect();
        assert!(
            failed.is_empty(),
            "{} of {} failed: {:?}",
            failed.len(),
            results.len(),
            failed.first()
        );
        let by = |ca: &str| results.iter().filter(|(_, c, _)| c == ca).count();
        assert!(
            by(&builtin) > 0 && by("cfssl") > 0,
            "default {} cfssl {}",
            by(&builtin),
            by("cfssl")
        );
        // Each back end's certificates chain to its own CA.
        let tmp = tempfile::tempdir().unwrap();
        for (_, which, c) in results
            .iter()
            .filter(|(_, c, _)| c == "cfssl")
            .take(3)
            .chain(results.iter().filter(|(_, c, _)| *c == builtin).take(3))
        {
            let leaf = tmp.path().join("leaf.pem");
            let chain = tmp.path().join("chain.pem");
            std::fs::write(&leaf, c["certificate"].as_str().unwrap()).unwrap();
            let pems: Vec<&str> =
                c["chain"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
            std::fs::write(&chain, pems.concat()).unwrap();
            let root = if which == "cfssl" {
                ca.path("root.pem")
            } else {
                chain.to_str().unwrap().to_owned()
            };
            let (ok, out) = openssl(&[
                "verify",
                "-CAfile",
                &root,
                "-untrusted",
                chain.to_str().unwrap(),
                leaf.to_str().unwrap(),
            ]);
            assert!(ok, "{which}: {out}");
        }
        eprintln!(
            "swap under load: {} requests, {} built-in, {} cfssl, none failed",
            results.len(),
            by(&builtin),
            by("cfssl")
        );
        Arc::into_inner(s).unwrap().stop().await;
        db.cleanup().await;
    }
}

/// A CA (certificate PEM and issuer) made with rcgen.
pub(crate) fn rcgen_ca(cn: &str) -> (String, rcgen::Issuer<'static, rcgen::KeyPair>) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let pem = p.self_signed(&key).unwrap().pem();
    (pem, rcgen::Issuer::new(p, key))
}

/// What tls-client decides for a request with CN `cn`, narrowed as an external CA may (a
/// shorter life, the same usage): the key, the leaf's parameters (with an authority key
/// identifier, for signing it as the test double's answer) and the request's PEM.
fn client_leaf(cn: &str) -> (rcgen::KeyPair, rcgen::CertificateParams, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut leaf = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.distinguished_name.push(rcgen::DnType::CommonName, cn);
    leaf.not_before = time::OffsetDateTime::now_utc() - time::Duration::minutes(1);
    leaf.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(30);
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let csr = leaf.serialize_request(&key).unwrap().pem().unwrap();
    leaf.use_authority_key_identifier_extension = true;
    (key, leaf, csr)
}

/// The configuration of test-double connector `id` that claims CA `ca` and answers every
/// request with `leaf_pem` (`extra`: more lines of its config).
fn double_toml(id: &str, ca: &str, leaf_pem: &str, extra: &str) -> String {
    let dir = env!("SIGIL_TEST_PLUGINS");
    format!(
        "[plugins.load.{id}]\nfile = \"{dir}/test_connector.wasm\"\ngrants = [\"config\"]\n\
         [plugins.load.{id}.config]\nca_pem = \"\"\"\n{ca}\"\"\"\nleaf_pem = \"\"\"\n{leaf_pem}\"\"\"\n{extra}"
    )
}

#[tokio::test]
async fn a_certificate_from_a_connector_for_another_key_or_from_another_ca_is_refused() {
    use rcgen::{CertificateParams, DnType, KeyPair};
    let dir = env!("SIGIL_TEST_PLUGINS");
    let (ca1, issuer1) = rcgen_ca("Double CA 1");
    let (ca2, _) = rcgen_ca("Double CA 2");
    let (key, leaf, csr) = client_leaf("double");
    let leaf_pem = leaf.signed_by(&key, &issuer1).unwrap().pem();
    // Wider than the decision: another subject, server authentication, a longer life.
    let wider_pem = {
        let mut p = leaf.clone();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, "Chief Executive");
        p.signed_by(&key, &issuer1).unwrap().pem()
    };
    let server_auth_pem = {
        let mut p = leaf.clone();
        p.extended_key_usages.push(rcgen::ExtendedKeyUsagePurpose::ServerAuth);
        p.signed_by(&key, &issuer1).unwrap().pem()
    };
    let longer_pem = {
        let mut p = leaf.clone();
        p.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(3650);
        p.signed_by(&key, &issuer1).unwrap().pem()
    };
    // An extension the profile does not set (here one no relying party knows), and no
    // authority key identifier (RFC 5280 §4.2.1.1: path building needs it).
    let extra_pem = {
        let mut p = leaf.clone();
        p.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 55555, 9],
            vec![5, 0],
        )];
        p.signed_by(&key, &issuer1).unwrap().pem()
    };
    let more_names_pem = {
        let mut p = leaf.clone();
        p.subject_alt_names = vec![rcgen::SanType::DnsName("evil.example".try_into().unwrap())];
        p.signed_by(&key, &issuer1).unwrap().pem()
    };
    let no_aki_pem = {
        let mut p = leaf.clone();
        p.use_authority_key_identifier_extension = false;
        p.signed_by(&key, &issuer1).unwrap().pem()
    };
    let other_csr = {
        let k = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, "double");
        p.serialize_request(&k).unwrap().pem().unwrap()
    };
    let double = |id: &str, ca: &str, extra: &str| double_toml(id, ca, &leaf_pem, extra);
    let toml = [
        double("honest", &ca1, "suspension = \"yes\"\n"),
        double("wrongca", &ca2, ""),
        double("refusing", &ca1, "refuse = \"yes\"\n"),
        double_toml("wider", &ca1, &wider_pem, ""),
        double_toml("serverauth", &ca1, &server_auth_pem, ""),
        double_toml("longer", &ca1, &longer_pem, ""),
        double_toml("extra", &ca1, &extra_pem, ""),
        double_toml("noaki", &ca1, &no_aki_pem, ""),
        double_toml("names", &ca1, &more_names_pem, ""),
        "[plugins.load.broken]\nfile = \"".to_owned()
            + dir
            + "/test_connector.wasm\"\ngrants = [\"config\"]\n",
    ]
    .concat();
    for db in sigil_tests::backends().await {
        let s =
            TestServer::start_with(&db, Options { toml: toml.clone(), ..Default::default() }).await;
        for id in [
            "honest",
            "wrongca",
            "refusing",
            "wider",
            "serverauth",
            "longer",
            "extra",
            "noaki",
            "names",
        ] {
            profile_on(&s, id, Some(id)).await;
        }
        // A connector whose canary (`info`) fails is not loaded, and says why.
        let (_, plugins) =
            body(s.admin(Method::GET, "/api/v1/plugins").send().await.unwrap()).await;
        let broken =
            plugins.as_array().unwrap().iter().find(|p| p["id"] == "broken").unwrap().clone();
        assert_eq!(broken["status"], "failed");
        assert!(broken["last_error"].as_str().unwrap().contains("ca_pem"), "{broken}");

        // The wrong key: the request was for another key than the one certified.
        let (st, b) = s.issue(&other_csr, "honest").await;
        assert_eq!((st, b["code"].as_str()), (502, Some("ca_bad_certificate")), "{b}");
        // The wrong CA: certified by a CA other than the one the connector claims.
        let (st, b) = s.issue(&csr, "wrongca").await;
        assert_eq!((st, b["code"].as_str()), (502, Some("ca_bad_certificate")), "{b}");
        // Wider than the profile decided (another subject, another usage, a longer life): the
        // certificate is refused before it is recorded, taken back at the CA, and audited.
        for (id, why) in [
            ("wider", "subject CN=Chief Executive"),
            ("serverauth", "extended key usage"),
            ("longer", "validity"),
            ("extra", "extension 1.3.6.1.4.1.55555.9"),
            ("noaki", "authority key identifier"),
            ("names", "dns:evil.example"),
        ] {
            let (st, b) = s.issue(&csr, id).await;
            assert_eq!((st, b["code"].as_str()), (502, Some("ca_result_mismatch")), "{id}: {b}");
            assert!(b["detail"].as_str().unwrap().contains(why), "{id}: {b}");
        }
        let (_, refused) = body(
            s.admin(Method::GET, "/api/v1/audit?action=certificate.issue&outcome=failure")
                .send()
                .await
                .unwrap(),
        )
        .await;
        let refused = refused["items"].as_array().unwrap();
        assert!(
            refused.iter().any(|e| e["details"]["refused"] == "ca_result_mismatch"
                && e["details"]["revoked_at_ca"] == true),
            "{refused:?}"
        );
        let (_, all) =
            body(s.admin(Method::GET, "/api/v1/certificates").send().await.unwrap()).await;
        assert_eq!(all["items"].as_array().unwrap().len(), 0, "nothing was recorded: {all}");

        // An honest answer is recorded with the CA's serial and validity.
        let (st, c) = s.issue(&csr, "honest").await;
        assert_eq!(st, 201, "{c}");
        assert_eq!(c["ca"], "honest");
        let id = c["id"].as_str().unwrap().to_owned();
        // This back end supports holds: suspend and reactivate go through it.
        for (action, status) in [("suspend", "suspended"), ("reactivate", "active")] {
            let (st, b) = body(
                s.admin(Method::POST, &format!("/api/v1/certificates/{id}/{action}"))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!((st, b["status"].as_str()), (200, Some(status)), "{b}");
        }
        // A back end that refuses a revocation leaves the certificate as it was.
        let (st, c2) = s.issue(&csr, "refusing").await;
        assert_eq!(st, 201, "{c2}");
        let id2 = c2["id"].as_str().unwrap();
        let (st, b) = body(
            s.admin(Method::POST, &format!("/api/v1/certificates/{id2}/revoke"))
                .json(&json!({"reason": "keyCompromise"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((st, b["code"].as_str()), (502, Some("plugin_rejected")), "{b}");
        let (_, still) = body(
            s.admin(Method::GET, &format!("/api/v1/certificates/{id2}")).send().await.unwrap(),
        )
        .await;
        assert_eq!(still["status"], "active");
        // No CRL for an external CA: it publishes its own.
        let r = s.client.get(format!("{}/crl/honest.crl", s.url)).send().await.unwrap();
        assert_eq!(r.status(), 404);
        s.stop().await;
        db.cleanup().await;
    }
}

/// The CA certificate an issued certificate is checked against (its name and key identifier) is
/// read once per CA and kept; a CA that changes under the same id (a connector reconfigured
/// with a new CA) is read afresh, so its first certificate is accepted and nothing is checked
/// against the old CA.
#[tokio::test]
async fn a_connector_whose_ca_changes_under_the_same_id_is_checked_against_its_new_ca() {
    let (key, mut leaf, csr) = client_leaf("rekeyed");
    let conf = |ca: &str, leaf_pem: &str| double_toml("rekeyed", ca, leaf_pem, "");
    let (old_ca, old_issuer) = rcgen_ca("Rekeyed CA, first");
    let (new_ca, new_issuer) = rcgen_ca("Rekeyed CA, second");
    // Serials of their own (rcgen would derive both from the one key).
    leaf.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x51, 1]));
    let old_leaf = leaf.signed_by(&key, &old_issuer).unwrap().pem();
    leaf.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x51, 2]));
    let new_leaf = leaf.signed_by(&key, &new_issuer).unwrap().pem();
    for db in sigil_tests::backends().await {
        let s = TestServer::start_with(
            &db,
            Options { toml: conf(&old_ca, &old_leaf), ..Default::default() },
        )
        .await;
        profile_on(&s, "rekeyed", Some("rekeyed")).await;
        let (st, c) = s.issue(&csr, "rekeyed").await;
        assert_eq!(st, 201, "{c}");
        // The same connector id, now with the second CA and a certificate of it.
        let cfg = s.data_dir().join("test.toml");
        let text = std::fs::read_to_string(&cfg).unwrap();
        let changed = text.replace(&conf(&old_ca, &old_leaf), &conf(&new_ca, &new_leaf));
        assert_ne!(changed, text, "the test's configuration holds the connector");
        std::fs::write(&cfg, changed).unwrap();
        let (st, status) =
            body(s.admin(Method::POST, "/api/v1/plugins/reload").send().await.unwrap()).await;
        assert_eq!(st, 200, "{status}");
        let (st, c) = s.issue(&csr, "rekeyed").await;
        assert_eq!(st, 201, "checked against the second CA, not the first: {c}");
        let chain = c["chain"].as_array().unwrap();
        let first = chain.first().and_then(Value::as_str).unwrap_or_default();
        assert_eq!(first.trim(), new_ca.trim(), "the chain is the second CA's: {c}");
        s.stop().await;
        db.cleanup().await;
    }
}
