//! Keys on a PKCS#11 token (ARCHITECTURE §9.4), on SoftHSM2 from Debian (installed here when
//! missing): signing credentials made on the token as sensitive, non-extractable keys, signHash
//! for ECDSA, RSA PKCS#1 v1.5 and RSA-PSS verified with openssl, pyHanko signing a PDF with a
//! token credential, CAs of every key type on the token, a restart, recovery of a token that
//! lost its login, and the database holding a reference only.
//!
//! A PKCS#11 module is initialised once per process, and SoftHSM reads its configuration then.
//! The tests whose server runs in this process share SoftHSM's default configuration (its token
//! directory `/var/lib/softhsm/tokens`), and each initialises a token of its own, with a unique
//! label, through the module (C_InitToken), and deletes it at the end. The README walk-through
//! runs `sigil serve` as a child process with a SOFTHSM2_CONF and token directory of its own.

use std::path::Path;
use std::process::Command;
use std::sync::Once;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256, Sha384};
use sigil_tests::{Options, TestServer, backends, json, openssl, openssl_csr};

use crate::csc::{b64, openssl_verifies, public_key};

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

fn ensure_softhsm() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let have = Path::new(MODULE).exists()
            && Command::new("pkcs11-tool").arg("--version").output().is_ok();
        if have {
            return;
        }
        sigil_tests::apt_install(&["softhsm2", "opensc"]);
    });
}

/// A token of this test's own, logged in with PIN 1234; deleted when dropped.
struct SoftToken {
    label: String,
    dir: tempfile::TempDir,
}

impl SoftToken {
    fn new() -> Self {
        ensure_softhsm();
        let label = format!("sigil-{}", &uuid::Uuid::new_v4().simple().to_string()[..20]);
        sigil_pki::pkcs11::init_token(Path::new(MODULE), &label, "0000", "1234").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pin"), "1234\n").unwrap();
        Self { label, dir }
    }

    /// The configuration that keeps new keys on this token.
    fn toml(&self) -> String {
        format!(
            "[pki]\nkey_store = \"pkcs11\"\n[pki.pkcs11]\nmodule = \"{MODULE}\"\n\
             token_label = \"{}\"\npin_file = \"{}\"\n",
            self.label,
            self.dir.path().join("pin").display()
        )
    }

    /// `pkcs11-tool --list-objects` of the token, logged in.
    fn objects(&self) -> String {
        let o = Command::new("pkcs11-tool")
            .args(["--module", MODULE, "--token-label", &self.label, "--login", "--pin", "1234"])
            .arg("--list-objects")
            .output()
            .unwrap();
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
    }
}

impl Drop for SoftToken {
    fn drop(&mut self) {
        let _ =
            Command::new("softhsm2-util").args(["--delete-token", "--token", &self.label]).output();
    }
}

async fn credential(s: &TestServer, alg: &str, store: Option<&str>) -> (u16, Value) {
    let mut body = json!({"signer": "hana", "key_algorithm": alg, "pin": "2468", "scal": 1,
        "multisign": 3});
    if let Some(k) = store {
        body["key_store"] = json!(k);
    }
    json(s.admin(Method::POST, "/api/v1/signing-credentials").json(&body).send().await.unwrap())
        .await
}

/// signHash of `digest` with credential `c`, verified with openssl against its certificate.
async fn signs(s: &TestServer, c: &Value, case: (&str, &str, Vec<u8>, Option<&str>, Vec<&str>)) {
    let (sign_algo, md, digest, params, opts) = case;
    let token = s.csc_login("v1", "hana", "hana's password").await;
    let id = c["credential_id"].as_str().unwrap();
    let sad = s.csc_authorize(&token, id, "2468", &[b64(&digest)]).await;
    let mut req = json!({"credentialID": id, "SAD": sad, "hash": [b64(&digest)],
        "hashAlgo": "2.16.840.1.101.3.4.2.1", "signAlgo": sign_algo});
    if let Some(p) = params {
        req["signAlgoParams"] = json!(p);
    }
    let a = s.csc("v1", "signatures/signHash", &token, req).await;
    assert_eq!(a.status, 200, "{sign_algo}: {:?}", a.body);
    let sig = STANDARD.decode(a.body["signatures"][0].as_str().unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let pubkey = public_key(tmp.path(), c["certificate"].as_str().unwrap());
    assert!(openssl_verifies(tmp.path(), md, &pubkey, MSG, &sig, &opts), "{sign_algo}");
}

const MSG: &[u8] = b"a document signed on a token";

#[tokio::test]
async fn credentials_on_a_token_sign_hashes_openssl_verifies_and_their_keys_never_leave_it() {
    for db in backends().await {
        let hsm = SoftToken::new();
        let data = tempfile::tempdir().unwrap();
        let opts = || Options { toml: hsm.toml(), data_dir: Some(data.path().to_owned()) };
        let s = TestServer::start_with(&db, opts()).await;
        s.signer("hana", "hana's password").await;
        let pss = "MDSgDzANBglghkgBZQMEAgEFAKEcMBoGCSqGSIb3DQEBCDANBglghkgBZQMEAgEFAKIDAgHe";
        let sha256 = Sha256::digest(MSG).to_vec();
        let mut made = Vec::new();
        for alg in ["p256", "p384", "rsa-2048"] {
            let (st, c) = credential(&s, alg, None).await;
            assert_eq!(st, 201, "{alg}: {c}");
            assert_eq!(c["key_store"], "pkcs11", "the configured default");
            made.push(c);
        }
        signs(&s, &made[0], ("1.2.840.10045.4.3.2", "-sha256", sha256.clone(), None, vec![])).await;
        let sha384 = Sha384::digest(MSG).to_vec();
        signs(&s, &made[1], ("1.2.840.10045.4.3.3", "-sha384", sha384, None, vec![])).await;
        signs(&s, &made[2], ("1.2.840.113549.1.1.11", "-sha256", sha256.clone(), None, vec![]))
            .await;
        let pss_opts = vec!["rsa_padding_mode:pss", "rsa_pss_saltlen:222"];
        let case = ("1.2.840.113549.1.1.10", "-sha256", sha256.clone(), Some(pss), pss_opts);
        signs(&s, &made[2], case).await;
        // A request may still ask for a sealed key.
        let (st, sealed) = credential(&s, "p256", Some("sealed")).await;
        assert_eq!((st, sealed["key_store"].as_str()), (201, Some("sealed")));

        // The token holds each key as a sensitive, non-extractable private key.
        let objects = hsm.objects();
        for c in &made {
            let label = format!("sigil-cred-{}", c["credential_id"].as_str().unwrap());
            assert!(objects.contains(&label), "{label} on the token:\n{objects}");
        }
        let private = objects.split("Private Key Object").skip(1).collect::<Vec<_>>();
        // Three credentials, and the issuing CA made at first start.
        assert_eq!(private.len(), 4, "{objects}");
        assert!(objects.contains("sigil-ca-"), "{objects}");
        for p in private {
            let access = p.lines().find(|l| l.contains("Access:")).unwrap_or_default();
            assert!(access.contains("sensitive") && access.contains("never extractable"), "{p}");
        }
        // The database holds a reference to each, no key material.
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&s.db_url).await.unwrap();
        for c in &made {
            let id = c["credential_id"].as_str().unwrap();
            let body: String =
                sqlx::query_scalar("SELECT body FROM signing_credentials WHERE id = $1")
                    .bind(id)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            let stored: Value = serde_json::from_str(&body).unwrap();
            let key = stored["sealed_key"].as_str().unwrap();
            assert_eq!(
                key,
                format!("pkcs11:{}/sigil-cred-{id}/{}", hsm.label, &key[key.len() - 32..])
            );
        }

        pool.close().await;
        // After a restart the token's keys still sign.
        s.stop().await;
        let s = TestServer::start_with(&db, opts()).await;
        signs(&s, &made[0], ("1.2.840.10045.4.3.2", "-sha256", sha256, None, vec![])).await;
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn pyhanko_signs_a_pdf_with_a_key_held_on_the_token() {
    crate::pyhanko::ensure_pyhanko();
    let db = backends().await.remove(0);
    let hsm = SoftToken::new();
    let s = TestServer::start_with(&db, Options { toml: hsm.toml(), ..Default::default() }).await;
    s.signer("hana", "hana's password").await;
    let (st, c) = credential(&s, "p256", Some("pkcs11")).await;
    assert_eq!((st, c["key_store"].as_str()), (201, Some("pkcs11")), "{c}");
    let text = crate::pyhanko::pyhanko_signs(&s, "hana", "hana's password", &c, "2468", "v1").await;
    assert!(text.contains("VALID signer="), "{text}");
    s.stop().await;
}

#[tokio::test]
async fn a_token_that_is_not_configured_or_refuses_its_pin_is_said_plainly() {
    let db = backends().await.remove(0);
    let s = TestServer::start(&db).await;
    s.signer("hana", "hana's password").await;
    let (st, e) = credential(&s, "p256", Some("pkcs11")).await;
    assert_eq!((st, e["code"].as_str()), (400, Some("key_store_unavailable")), "{e}");
    s.stop().await;

    // A wrong PIN stops start-up with one line naming the module and the token, not the PIN.
    let hsm = SoftToken::new();
    std::fs::write(hsm.dir.path().join("pin"), "987654\n").unwrap();
    let data = tempfile::tempdir().unwrap();
    let cfg_file = data.path().join("sigil.toml");
    std::fs::write(
        &cfg_file,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n{}",
            data.path().display(),
            hsm.toml()
        ),
    )
    .unwrap();
    let cfg = sigil_server::config::Config::load_from(Some(&cfg_file), std::iter::empty()).unwrap();
    let err = match sigil_server::startup::start(&cfg).await {
        Ok(_) => panic!("started with a wrong PIN"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains(MODULE) && err.contains(&hsm.label) && err.contains("PIN"), "{err}");
    assert!(!err.contains("987654"), "{err}");
    // A token that does not exist is named too.
    let toml = hsm.toml().replace(&hsm.label, "no-such-token");
    std::fs::write(
        &cfg_file,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n{toml}",
            data.path().display()
        ),
    )
    .unwrap();
    let cfg = sigil_server::config::Config::load_from(Some(&cfg_file), std::iter::empty()).unwrap();
    let err = match sigil_server::startup::start(&cfg).await {
        Ok(_) => panic!("started without its token"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("no token labelled `no-such-token`"), "{err}");
}

#[tokio::test]
async fn a_ca_made_on_first_start_issues_signs_crls_and_answers_ocsp_from_the_token() {
    for db in backends().await {
        let hsm = SoftToken::new();
        let data = tempfile::tempdir().unwrap();
        let opts = || Options { toml: hsm.toml(), data_dir: Some(data.path().to_owned()) };
        let s = TestServer::start_with(&db, opts()).await;
        let tmp = tempfile::tempdir().unwrap();
        let p = |n: &str| tmp.path().join(n).display().to_string();
        let (csr, _) = openssl_csr(tmp.path(), "web", "ec:P-256", "/CN=web.example", None);
        let (st, cert) = s.issue(&csr, "tls-client").await;
        assert_eq!(st, 201, "{cert}");
        // openssl accepts the certificate the token's key signed, up to the root.
        std::fs::write(p("leaf.pem"), cert["certificate"].as_str().unwrap()).unwrap();
        std::fs::write(p("issuing.pem"), cert["chain"][0].as_str().unwrap()).unwrap();
        std::fs::write(p("root.pem"), cert["chain"][1].as_str().unwrap()).unwrap();
        let (ok, out) = openssl(&[
            "verify",
            "-CAfile",
            &p("root.pem"),
            "-untrusted",
            &p("issuing.pem"),
            &p("leaf.pem"),
        ]);
        assert!(ok && out.contains("OK"), "{out}");
        // OCSP answers signed on the token verify.
        let ocsp = s.ocsp_text(&cert).await;
        assert!(ocsp.contains("Cert Status: good"), "{ocsp}");
        let id = cert["id"].as_str().unwrap();
        let r = s
            .admin(Method::POST, &format!("/api/v1/certificates/{id}/revoke"))
            .json(&json!({"reason": "keyCompromise"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(s.ocsp_text(&cert).await.contains("Cert Status: revoked"));
        // So does the CRL, which lists it.
        let ca = cert["ca"].as_str().unwrap();
        let crl = s.client.get(format!("{}/crl/{ca}.crl", s.url)).send().await.unwrap();
        std::fs::write(p("crl.der"), crl.bytes().await.unwrap()).unwrap();
        std::fs::write(
            p("chain.pem"),
            format!("{}{}", cert["chain"][0].as_str().unwrap(), cert["chain"][1].as_str().unwrap()),
        )
        .unwrap();
        let (ok, out) = openssl(&[
            "crl",
            "-inform",
            "DER",
            "-in",
            &p("crl.der"),
            "-CAfile",
            &p("chain.pem"),
            "-noout",
            "-text",
        ]);
        assert!(ok && out.contains("verify OK"), "{out}");
        assert!(
            out.to_lowercase().contains(&cert["serial"].as_str().unwrap().to_lowercase()),
            "{out}"
        );
        // The issuing key is on the token, never extractable; the database names it only.
        let objects = hsm.objects();
        let ca_key = objects
            .split("Private Key Object")
            .skip(1)
            .find(|b| b.contains("sigil-ca-"))
            .unwrap_or_default();
        assert!(ca_key.contains("never extractable"), "{objects}");
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&s.db_url).await.unwrap();
        let stored: Vec<u8> = sqlx::query_scalar("SELECT key_sealed FROM cas WHERE id = $1")
            .bind(ca)
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        let stored = String::from_utf8(stored).unwrap();
        assert!(stored.starts_with(&format!("pkcs11:{}/sigil-ca-{ca}/", hsm.label)), "{stored}");
        // After a restart the CA still issues from the token.
        s.stop().await;
        let s = TestServer::start_with(&db, opts()).await;
        let (csr, _) = openssl_csr(tmp.path(), "web2", "ec:P-256", "/CN=web2.example", None);
        let (st, again) = s.issue(&csr, "tls-client").await;
        assert_eq!(st, 201, "{again}");
        assert!(s.ocsp_text(&again).await.contains("Cert Status: good"));
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn an_issuing_ca_whose_key_is_already_on_the_token_is_imported_by_label() {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyUsagePurpose};
    use sigil_core::certs::KeyType;
    let db = backends().await.remove(0);
    let hsm = SoftToken::new();
    // The key was made on the token beforehand (here by Sigil's own token code, as a vendor tool
    // would), and an offline root certified it.
    let cfg = sigil_pki::pkcs11::TokenConfig {
        module: MODULE.into(),
        token_label: hsm.label.clone(),
        pin: String::from("1234").into(),
    };
    let token = sigil_pki::pkcs11::Token::open(&cfg).unwrap();
    let (id, _) = token.generate(KeyType::P384, "corp-issuing").unwrap();
    let key = token.find("corp-issuing", &id, KeyType::P384).unwrap();
    let signer = sigil_pki::pkcs11::TokenSigner::new(token, key).unwrap();
    let usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let root_key = rcgen::KeyPair::generate().unwrap();
    let mut root_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    root_params.distinguished_name.push(DnType::CommonName, "Corp Root");
    root_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    root_params.key_usages = usages.clone();
    let root = root_params.self_signed(&root_key).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, "Corp Issuing");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = usages;
    params.use_authority_key_identifier_extension = true;
    let issuing = params.signed_by(&signer, &rcgen::Issuer::new(root_params, &root_key)).unwrap();
    let files = tempfile::tempdir().unwrap();
    let f = |n: &str| files.path().join(n).display().to_string();
    std::fs::write(f("issuing.pem"), issuing.pem()).unwrap();
    std::fs::write(f("root.pem"), root.pem()).unwrap();
    let toml = hsm.toml().replacen(
        "[pki]\n",
        &format!(
            "[pki]\nimport_cert_file = \"{}\"\nimport_chain_file = \"{}\"\n\
             import_key_label = \"corp-issuing\"\n",
            f("issuing.pem"),
            f("root.pem")
        ),
        1,
    );
    let s = TestServer::start_with(&db, Options { toml, ..Default::default() }).await;
    let tmp = tempfile::tempdir().unwrap();
    let (csr, leaf_key) = openssl_csr(tmp.path(), "api", "ec:P-256", "/CN=api.example", None);
    let _ = leaf_key;
    let (st, cert) = s.issue(&csr, "tls-client").await;
    assert_eq!(st, 201, "{cert}");
    std::fs::write(f("leaf.pem"), cert["certificate"].as_str().unwrap()).unwrap();
    let (ok, out) = openssl(&[
        "verify",
        "-CAfile",
        &f("root.pem"),
        "-untrusted",
        &f("issuing.pem"),
        &f("leaf.pem"),
    ]);
    assert!(ok && out.contains("OK"), "{out}");
    assert!(s.ocsp_text(&cert).await.contains("Cert Status: good"));
    s.stop().await;
}

/// A CA made on first start with an issuing key of `key_type` on the token: its certificates
/// (signed with `sig_alg`), CRL and OCSP responses verify with openssl, and the token shows a
/// key described as `on_token` by pkcs11-tool.
async fn a_ca_of_this_type_signs_from_the_token(key_type: &str, sig_alg: &str, on_token: &str) {
    let db = backends().await.remove(0);
    let hsm = SoftToken::new();
    let toml = hsm.toml().replacen("[pki]\n", &format!("[pki]\nca_key_type = \"{key_type}\"\n"), 1);
    let s = TestServer::start_with(&db, Options { toml, ..Default::default() }).await;
    let tmp = tempfile::tempdir().unwrap();
    let cert = issued_and_verified(&s, tmp.path(), "leaf").await;
    let (_, text) = openssl(&["x509", "-in", &pem_path(tmp.path(), "leaf"), "-noout", "-text"]);
    assert!(text.contains(sig_alg), "{key_type}: {text}");
    assert!(s.ocsp_text(&cert).await.contains("Cert Status: good"), "{key_type}");
    crl_verifies(&s, tmp.path(), &cert).await;
    let objects = hsm.objects();
    assert!(objects.contains("sigil-ca-") && objects.contains(on_token), "{objects}");
    s.stop().await;
}

fn pem_path(dir: &Path, name: &str) -> String {
    dir.join(format!("{name}.pem")).display().to_string()
}

/// Issues a tls-client certificate named `name` and checks it with `openssl verify` up to the
/// root; the leaf, issuing CA and root are left as `<name>.pem`, `issuing.pem`, `root.pem`.
async fn issued_and_verified(s: &TestServer, dir: &Path, name: &str) -> Value {
    let (csr, _) = openssl_csr(dir, name, "ec:P-256", &format!("/CN={name}.example"), None);
    let (st, cert) = s.issue(&csr, "tls-client").await;
    assert_eq!(st, 201, "{cert}");
    std::fs::write(pem_path(dir, name), cert["certificate"].as_str().unwrap()).unwrap();
    std::fs::write(pem_path(dir, "issuing"), cert["chain"][0].as_str().unwrap()).unwrap();
    std::fs::write(pem_path(dir, "root"), cert["chain"][1].as_str().unwrap()).unwrap();
    let (ok, out) = openssl(&[
        "verify",
        "-CAfile",
        &pem_path(dir, "root"),
        "-untrusted",
        &pem_path(dir, "issuing"),
        &pem_path(dir, name),
    ]);
    assert!(ok && out.contains("OK"), "{out}");
    cert
}

/// The CA's current CRL verifies with openssl against the chain of `cert`.
async fn crl_verifies(s: &TestServer, dir: &Path, cert: &Value) {
    let ca = cert["ca"].as_str().unwrap();
    let crl = s.client.get(format!("{}/crl/{ca}.crl", s.url)).send().await.unwrap();
    let der = dir.join("crl.der").display().to_string();
    std::fs::write(&der, crl.bytes().await.unwrap()).unwrap();
    let chain = pem_path(dir, "chain");
    std::fs::write(
        &chain,
        format!("{}{}", cert["chain"][0].as_str().unwrap(), cert["chain"][1].as_str().unwrap()),
    )
    .unwrap();
    let (ok, out) = openssl(&["crl", "-inform", "DER", "-in", &der, "-CAfile", &chain, "-noout"]);
    assert!(ok && out.contains("verify OK"), "{out}");
}

#[tokio::test]
async fn an_rsa_3072_issuing_ca_on_the_token_signs_certificates_crls_and_ocsp_with_pkcs1() {
    a_ca_of_this_type_signs_from_the_token("rsa-3072", "sha256WithRSAEncryption", "RSA 3072").await;
}

// Multi-threaded, like the server: token calls then leave the async workers (block_in_place).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rsa_4096_issuing_ca_made_on_the_token_at_first_start_signs_from_it() {
    a_ca_of_this_type_signs_from_the_token("rsa-4096", "sha256WithRSAEncryption", "RSA 4096").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_p384_issuing_ca_made_on_the_token_at_first_start_signs_with_ecdsa_sha384() {
    a_ca_of_this_type_signs_from_the_token("p384", "ecdsa-with-SHA384", "EC_POINT 384").await;
}

/// The raw OCSP response for `cert` (the request made by openssl).
async fn ocsp_raw(s: &TestServer, dir: &Path, cert: &Value) -> Vec<u8> {
    let leaf = dir.join("ocsp-leaf.pem");
    let issuing = dir.join("ocsp-issuing.pem");
    let req = dir.join("ocsp-req.der");
    std::fs::write(&leaf, cert["certificate"].as_str().unwrap()).unwrap();
    std::fs::write(&issuing, cert["chain"][0].as_str().unwrap()).unwrap();
    let (ok, out) = openssl(&[
        "ocsp",
        "-issuer",
        issuing.to_str().unwrap(),
        "-cert",
        leaf.to_str().unwrap(),
        "-reqout",
        req.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    let r = s
        .client
        .post(format!("{}/ocsp", s.url))
        .header("content-type", "application/ocsp-request")
        .body(std::fs::read(&req).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap().to_vec()
}

/// Logs the application out of token `label` through a session of its own, as a token reset or
/// another tool would: every session of this process loses the login. With `new_pin`, the
/// user PIN is changed first (from 1234), so that the server's PIN no longer logs in.
fn log_the_token_out(label: &str, new_pin: Option<&str>) {
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    use cryptoki::types::AuthPin;
    // The same module instance as the server's (one per process); its initialisation is
    // already done, which C_Initialize says.
    let ctx = Pkcs11::new(MODULE).unwrap();
    let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        // Other tests delete their tokens meanwhile: a slot may fail to answer.
        .find(|s| ctx.get_token_info(*s).is_ok_and(|i| i.label().trim() == label))
        .unwrap();
    let session = ctx.open_rw_session(slot).unwrap();
    if let Some(pin) = new_pin {
        session.set_pin(&AuthPin::new("1234".into()), &AuthPin::new(pin.into())).unwrap();
    }
    session.logout().unwrap();
    assert!(
        session.find_objects(&[cryptoki::object::Attribute::Private(true)]).unwrap().is_empty(),
        "logged out: private objects are hidden"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_lost_its_login_is_logged_in_again_and_signing_goes_on() {
    for db in backends().await {
        let hsm = SoftToken::new();
        let s =
            TestServer::start_with(&db, Options { toml: hsm.toml(), ..Default::default() }).await;
        s.signer("hana", "hana's password").await;
        let (st, c) = credential(&s, "p256", None).await;
        assert_eq!(st, 201, "{c}");
        let sha256 = Sha256::digest(MSG).to_vec();
        let ecdsa = || ("1.2.840.10045.4.3.2", "-sha256", sha256.clone(), None, vec![]);
        signs(&s, &c, ecdsa()).await;
        let tmp = tempfile::tempdir().unwrap();
        issued_and_verified(&s, tmp.path(), "before").await;

        log_the_token_out(&hsm.label, None);
        // The credential key and the CA key are found again after a new login.
        signs(&s, &c, ecdsa()).await;
        let cert = issued_and_verified(&s, tmp.path(), "after").await;
        assert!(s.ocsp_text(&cert).await.contains("Cert Status: good"));
        log_the_token_out(&hsm.label, None);
        crl_verifies(&s, tmp.path(), &cert).await;

        // A token that will not take the server's PIN any more: clear, typed refusals that
        // change nothing, never a 500 or a signature.
        log_the_token_out(&hsm.label, Some("8642"));
        let token = s.csc_login("v1", "hana", "hana's password").await;
        let id = c["credential_id"].as_str().unwrap();
        let sad = s.csc_authorize(&token, id, "2468", &[b64(&sha256)]).await;
        let a = s
            .csc(
                "v1",
                "signatures/signHash",
                &token,
                json!({"credentialID": id, "SAD": sad, "hash": [b64(&sha256)],
                    "hashAlgo": "2.16.840.1.101.3.4.2.1", "signAlgo": "1.2.840.10045.4.3.2"}),
            )
            .await;
        assert_eq!(a.status, 503, "{:?}", a.body);
        assert_eq!(a.body["error"], "temporarily_unavailable", "{:?}", a.body);
        let (csr, _) = openssl_csr(tmp.path(), "refused", "ec:P-256", "/CN=refused.example", None);
        let before = s.admin(Method::GET, "/api/v1/certificates").send().await.unwrap();
        let before: Value = before.json().await.unwrap();
        let (st, p) = s.issue(&csr, "tls-client").await;
        assert_eq!(st, 502, "{p}");
        assert_eq!(p["code"], "key_store_unavailable", "{p}");
        assert!(!p.to_string().contains("1234"), "{p}");
        let after = s.admin(Method::GET, "/api/v1/certificates").send().await.unwrap();
        let after: Value = after.json().await.unwrap();
        // The credential's certificate, "before" and "after".
        assert_eq!(after["items"].as_array().unwrap().len(), 3);
        assert_eq!(before["items"], after["items"], "no certificate was recorded");
        // OCSP for a status it has not signed yet: an unsigned tryLater, which OCSP clients
        // understand, not an HTTP error.
        let r = s
            .admin(
                Method::POST,
                &format!("/api/v1/certificates/{}/revoke", cert["id"].as_str().unwrap()),
            )
            .json(&json!({"reason": "superseded"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(ocsp_raw(&s, tmp.path(), &cert).await, [0x30, 0x03, 0x0a, 0x01, 0x03]);
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_ca_key_reference_copied_into_a_credential_row_signs_nothing() {
    // The rule: a token key signs for a credential only when it is the key its end-entity
    // certificate certifies, and no CA's. An attacker with write access to the database points
    // a credential at the issuing CA's key on the token.
    let db = backends().await.remove(0);
    let hsm = SoftToken::new();
    let s = TestServer::start_with(&db, Options { toml: hsm.toml(), ..Default::default() }).await;
    s.signer("hana", "hana's password").await;
    let (st, c) = credential(&s, "p256", None).await;
    assert_eq!(st, 201, "{c}");
    let id = c["credential_id"].as_str().unwrap();
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&s.db_url).await.unwrap();
    let ca_ref: Vec<u8> =
        sqlx::query_scalar("SELECT key_sealed FROM cas").fetch_one(&pool).await.unwrap();
    let body: String = sqlx::query_scalar("SELECT body FROM signing_credentials WHERE id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    let mut stored: Value = serde_json::from_str(&body).unwrap();
    stored["sealed_key"] = json!(String::from_utf8(ca_ref).unwrap());
    sqlx::query("UPDATE signing_credentials SET body = $1 WHERE id = $2")
        .bind(stored.to_string())
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let token = s.csc_login("v1", "hana", "hana's password").await;
    let digest = b64(&Sha256::digest(MSG));
    let sad = s.csc_authorize(&token, id, "2468", std::slice::from_ref(&digest)).await;
    let a = s
        .csc(
            "v1",
            "signatures/signHash",
            &token,
            json!({"credentialID": id, "SAD": sad,
            "hash": [digest], "hashAlgo": "2.16.840.1.101.3.4.2.1",
            "signAlgo": "1.2.840.10045.4.3.2"}),
        )
        .await;
    assert_ne!(a.status, 200, "{:?}", a.body);
    assert!(a.body.get("signatures").is_none(), "{:?}", a.body);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_softhsm_walkthrough_runs_as_written_in_a_process_and_token_directory_of_its_own()
 {
    // `sigil serve` runs as a child process here (the `sigil_it` build of the executable), so
    // the script gives it and softhsm2-util a SOFTHSM2_CONF of their own: nothing of this test
    // touches the tokens of the others.
    ensure_softhsm();
    crate::pyhanko::ensure_pyhanko();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/hsm-walkthrough.sh");
    for db in backends().await {
        let work = tempfile::tempdir().unwrap();
        let out = tokio::process::Command::new("bash")
            .arg(script)
            .env("SIGIL", env!("CARGO_BIN_EXE_sigil_it"))
            .env("LISTEN", "127.0.0.1:0")
            .env("WORK", work.path())
            .env("DATABASE_URL", &db.url)
            .env_remove("SOFTHSM2_CONF")
            .output()
            .await
            .expect("bash");
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{}: the walk-through stopped:\n{text}", db.backend);
        assert!(text.contains("== done"), "{text}");
        assert!(text.contains("VALID signer="), "{text}");
        // The token lives in the script's own directory.
        let tokens = std::fs::read_dir(work.path().join("tokens")).unwrap().count();
        assert_eq!(tokens, 1, "{text}");
        db.cleanup().await;
    }
}

/// Points credential `victim`'s row at `source`'s token key and certificate, as an attacker
/// with write access to the database would.
async fn copy_token_key(s: &TestServer, source: &Value, victim: &Value) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&s.db_url).await.unwrap();
    let body_of = |id: String| {
        let pool = pool.clone();
        async move {
            let b: String =
                sqlx::query_scalar("SELECT body FROM signing_credentials WHERE id = $1")
                    .bind(id)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            serde_json::from_str::<Value>(&b).unwrap()
        }
    };
    let from = body_of(source["credential_id"].as_str().unwrap().to_owned()).await;
    let id = victim["credential_id"].as_str().unwrap();
    let mut to = body_of(id.to_owned()).await;
    to["sealed_key"] = from["sealed_key"].clone();
    to["certificate_id"] = from["certificate_id"].clone();
    sqlx::query("UPDATE signing_credentials SET body = $1, certificate_id = $2 WHERE id = $3")
        .bind(to.to_string())
        .bind(from["certificate_id"].as_str().unwrap())
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

#[tokio::test]
async fn another_credentials_token_key_copied_into_a_row_signs_nothing() {
    // Found by the attack review: a token cannot bind a key to its row as sealing does, so the
    // key's label must name the credential. Bob's row gets Alice's token reference and
    // certificate; Bob, with his own password and PIN, must not get Alice's signature.
    let db = backends().await.remove(0);
    let hsm = SoftToken::new();
    let s = TestServer::start_with(&db, Options { toml: hsm.toml(), ..Default::default() }).await;
    s.signer("hana", "hana's password").await;
    s.signer("bob", "bob's password").await;
    let (st, alice) = credential(&s, "p256", None).await;
    assert_eq!(st, 201, "{alice}");
    let (st, bob) = json(
        s.admin(Method::POST, "/api/v1/signing-credentials")
            .json(&json!({"signer": "bob", "key_algorithm": "p256", "pin": "1357", "scal": 1}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 201, "{bob}");
    copy_token_key(&s, &alice, &bob).await;
    // Past the credential cache.
    let s = {
        s.stop().await;
        TestServer::start_with(&db, Options { toml: hsm.toml(), ..Default::default() }).await
    };
    let token = s.csc_login("v1", "bob", "bob's password").await;
    let id = bob["credential_id"].as_str().unwrap();
    let digest = b64(&Sha256::digest(MSG));
    let sad = s.csc_authorize(&token, id, "1357", std::slice::from_ref(&digest)).await;
    let a = s
        .csc(
            "v1",
            "signatures/signHash",
            &token,
            json!({"credentialID": id, "SAD": sad, "hash": [digest],
                "hashAlgo": "2.16.840.1.101.3.4.2.1", "signAlgo": "1.2.840.10045.4.3.2"}),
        )
        .await;
    assert_ne!(a.status, 200, "{:?}", a.body);
    assert!(a.body.get("signatures").is_none(), "{:?}", a.body);
    s.stop().await;
}

#[tokio::test]
async fn a_refused_credential_leaves_no_key_on_the_token_and_pss_salts_are_bounded() {
    let db = backends().await.remove(0);
    let hsm = SoftToken::new();
    let s = TestServer::start_with(&db, Options { toml: hsm.toml(), ..Default::default() }).await;
    s.signer("hana", "hana's password").await;
    let count = || hsm.objects().matches("Private Key Object").count();
    let before = count();
    // A profile whose key rules refuse what is generated: the key made first is deleted.
    let spec = json!({"key_types": ["p384"], "validity_days": 365,
        "key_usage": ["digitalSignature", "nonRepudiation"],
        "extended_key_usage": ["documentSigning"], "subject": {"common_name": "required"}});
    let (st, p) = json(
        s.admin(Method::POST, "/api/v1/profiles")
            .json(&json!({"name": "doc-p384", "spec": spec}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 201, "{p}");
    for _ in 0..3 {
        let (st, b) = json(
            s.admin(Method::POST, "/api/v1/signing-credentials")
                .json(&json!({"signer": "hana", "key_algorithm": "p256", "pin": "2468",
                    "scal": 1, "profile": "doc-p384"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(st, 400, "{b}");
    }
    assert_eq!(count(), before, "{}", hsm.objects());
    // RSA-PSS with a salt the key cannot hold: a clear 400 naming the limit, nothing of the
    // token's own words.
    let (st, c) = credential(&s, "rsa-2048", None).await;
    assert_eq!(st, 201, "{c}");
    let token = s.csc_login("v1", "hana", "hana's password").await;
    let id = c["credential_id"].as_str().unwrap();
    let digest = b64(&Sha256::digest(MSG));
    let sad = s.csc_authorize(&token, id, "2468", std::slice::from_ref(&digest)).await;
    // RSASSA-PSS-params: SHA-256, MGF1-SHA-256, salt 223 (the most for RSA-2048 is 222).
    let params = "MDSgDzANBglghkgBZQMEAgEFAKEcMBoGCSqGSIb3DQEBCDANBglghkgBZQMEAgEFAKIDAgHf";
    let a = s
        .csc(
            "v1",
            "signatures/signHash",
            &token,
            json!({"credentialID": id, "SAD": sad, "hash": [digest],
                "hashAlgo": "2.16.840.1.101.3.4.2.1", "signAlgo": "1.2.840.113549.1.1.10",
                "signAlgoParams": params}),
        )
        .await;
    assert_eq!(a.status, 400, "{:?}", a.body);
    let text = a.body.to_string();
    assert!(text.contains("at most 222"), "{text}");
    assert!(!text.contains("sigil-cred-") && !text.contains("horrible"), "{text}");
    s.stop().await;
}
