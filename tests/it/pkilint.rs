//! Independent linting of what Sigil issues: pkilint (DigiCert's RFC 5280 linter, from PyPI,
//! installed here when missing, version pinned) over every built-in profile with P-256, P-384
//! and RSA-2048 keys, the issuing CA and root certificates and their chain, the CRL and an OCSP
//! response. Any finding of severity ERROR or worse fails the test.

use std::process::Command;
use std::sync::Once;

use sigil_tests::{Options, TestServer, backends, openssl, openssl_csr};

const PKILINT: &str = "pkilint==0.13.3";

fn ensure_pkilint() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let have = Command::new("python3")
            .args(["-c", "import importlib.metadata as m; assert m.version('pkilint') == '0.13.3'"])
            .status()
            .is_ok_and(|s| s.success());
        if !have {
            let st = Command::new("python3")
                .args(["-m", "pip", "install", "-q", PKILINT])
                .status()
                .expect("python3 with pip (the lint test installs pkilint from PyPI)");
            assert!(st.success(), "pip install {PKILINT} failed");
        }
    });
}

/// Runs a pkilint tool (`python3 -m pkilint.bin.<tool>`) with `args`; the findings of severity
/// ERROR or worse, empty when there are none.
fn lint(tool: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .args(["-m", &format!("pkilint.bin.{tool}"), "lint", "-s", "ERROR"])
        .args(args)
        .output()
        .expect("python3");
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // pkilint exits non-zero when it reports findings at or above the threshold.
    if out.status.success() { String::new() } else { format!("{tool} {args:?}:\n{text}") }
}

// openssl (a blocking child process) talks to the in-process server: a second worker serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_built_in_profile_crl_and_ocsp_response_passes_pkilint() {
    ensure_pkilint();
    for db in backends().await {
        let port = sigil_tests::free_port();
        let base = format!("http://127.0.0.1:{port}");
        let toml = format!("[pki]\npublic_url = \"{base}\"\nhttp_listen = \"127.0.0.1:{port}\"\n");
        let s = TestServer::start_with(&db, Options { toml, ..Default::default() }).await;
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n).display().to_string();
        let mut findings = Vec::new();
        let mut last = None;
        for profile in ["tls-client", "tls-server", "document-signing"] {
            for key in ["ec:P-256", "ec:P-384", "rsa:2048"] {
                let name = format!("{profile}-{}", key.replace(':', "-"));
                let sans = (profile == "tls-server").then_some("DNS:www.example.org");
                let (csr, _) = openssl_csr(dir.path(), &name, key, "/CN=Ana Alpha", sans);
                let (st, cert) = s.issue(&csr, profile).await;
                assert_eq!(st, 201, "{name}: {cert}");
                std::fs::write(p(&format!("{name}.pem")), cert["certificate"].as_str().unwrap())
                    .unwrap();
                findings.push(lint("lint_pkix_cert", &[&p(&format!("{name}.pem"))]));
                last = Some(cert);
            }
        }
        let cert = last.unwrap();
        let chain: Vec<&str> =
            cert["chain"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
        std::fs::write(p("issuing.pem"), chain[0]).unwrap();
        std::fs::write(p("root.pem"), chain.last().unwrap()).unwrap();
        findings.push(lint("lint_pkix_cert", &[&p("issuing.pem")]));
        findings.push(lint("lint_pkix_cert", &[&p("root.pem")]));
        findings
            .push(lint("lint_pkix_signer_signee_cert_chain", &[&p("root.pem"), &p("issuing.pem")]));
        findings.push(lint(
            "lint_pkix_signer_signee_cert_chain",
            &[&p("issuing.pem"), &p("tls-server-ec-P-256.pem")],
        ));
        // The CRL, with an entry.
        let id = cert["id"].as_str().unwrap();
        let r = s
            .admin(reqwest::Method::POST, &format!("/api/v1/certificates/{id}/revoke"))
            .json(&serde_json::json!({"reason": "keyCompromise"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let plain = reqwest::Client::new();
        let crl = plain.get(format!("{base}/crl/builtin.crl")).send().await.unwrap();
        std::fs::write(p("crl.der"), crl.bytes().await.unwrap()).unwrap();
        findings.push(lint("lint_crl", &["-t", "CRL", "-p", "PKIX", &p("crl.der")]));
        // The root's CRL (signed on first start), an ARL: it lists CA certificates.
        let arl = plain.get(format!("{base}/crl/builtin-root.crl")).send().await.unwrap();
        assert_eq!(arl.status(), 200);
        std::fs::write(p("root-crl.der"), arl.bytes().await.unwrap()).unwrap();
        findings.push(lint("lint_crl", &["-t", "ARL", "-p", "PKIX", &p("root-crl.der")]));
        // An OCSP response, as a client gets it.
        let leaf = p("document-signing-rsa-2048.pem");
        let (ok, out) = openssl(&[
            "ocsp",
            "-issuer",
            &p("issuing.pem"),
            "-cert",
            &leaf,
            "-url",
            &format!("{base}/ocsp"),
            "-respout",
            &p("ocsp.der"),
            "-noverify",
        ]);
        assert!(ok, "{out}");
        findings.push(lint("lint_ocsp_response", &[&p("ocsp.der")]));
        let findings: Vec<String> = findings.into_iter().filter(|f| !f.is_empty()).collect();
        assert!(findings.is_empty(), "pkilint findings:\n{}", findings.join("\n"));
        s.stop().await;
        db.cleanup().await;
    }
}

// The CA/Browser Forum profile points to a public host (nothing is fetched from it here): its
// certificates pass pkilint's CA/Browser Forum linter for domain-validated subscriber
// certificates, and verify for TLS servers under openssl's strict checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ca_browser_forum_profile_passes_the_baseline_requirements_linter() {
    ensure_pkilint();
    for db in backends().await {
        let toml = "[pki]\npublic_url = \"http://pki.sigil-pki.org\"\n".to_owned();
        let s = TestServer::start_with(&db, Options { toml, ..Default::default() }).await;
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n).display().to_string();
        let mut findings = Vec::new();
        for key in ["ec:P-256", "ec:P-384", "rsa:2048"] {
            let name = key.replace(':', "-");
            let sans = "DNS:www.sigil-pki.org,DNS:*.sigil-pki.org";
            let (csr, _) = openssl_csr(dir.path(), &name, key, "/CN=www.sigil-pki.org", Some(sans));
            let (st, cert) = s.issue(&csr, "tls-server-public").await;
            assert_eq!(st, 201, "{name}: {cert}");
            let file = p(&format!("{name}.pem"));
            std::fs::write(&file, cert["certificate"].as_str().unwrap()).unwrap();
            // (It runs the RFC 5280 checks too, but for those the Forum's rules supersede,
            // such as the syntax of wildcard names.)
            findings
                .push(lint("lint_cabf_serverauth_cert", &["-t", "DV-FINAL-CERTIFICATE", &file]));
            let chain: Vec<&str> =
                cert["chain"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
            std::fs::write(p("issuing.pem"), chain[0]).unwrap();
            std::fs::write(p("root.pem"), chain[chain.len() - 1]).unwrap();
            let (ok, out) = openssl(&[
                "verify",
                "-x509_strict",
                "-purpose",
                "sslserver",
                "-CAfile",
                &p("root.pem"),
                "-untrusted",
                &p("issuing.pem"),
                &file,
            ]);
            assert!(ok, "{name}: {out}");
            let (_, text) = openssl(&["x509", "-in", &file, "-noout", "-text"]);
            assert!(text.contains("Policy: 2.23.140.1.2.1"), "{text}");
            assert!(text.contains("OCSP - URI:http://pki.sigil-pki.org/ocsp"), "{text}");
        }
        let findings: Vec<String> = findings.into_iter().filter(|f| !f.is_empty()).collect();
        assert!(findings.is_empty(), "pkilint findings:\n{}", findings.join("\n"));
        s.stop().await;
        db.cleanup().await;
    }
}
