//! End to end with a real CSC client: pyHanko (from PyPI, installed here when missing) signs a
//! PDF through `/csc/v1` with a Sigil credential, and pyHanko's validation accepts the signature
//! against Sigil's root CA.

use std::process::Command;
use std::sync::Once;

use reqwest::Method;
use serde_json::Value;
use sigil_tests::{TestServer, backends, json};

pub(crate) fn ensure_pyhanko() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let have = |m: &str| {
            Command::new("python3")
                .args(["-c", &format!("import {m}")])
                .status()
                .is_ok_and(|s| s.success())
        };
        if !(have("pyhanko") && have("aiohttp")) {
            let st = Command::new("python3")
                .args(["-m", "pip", "install", "-q", "pyhanko[async-http]==0.38.0"])
                .status()
                .expect("python3 with pip (the pyHanko test installs pyhanko from PyPI)");
            assert!(st.success(), "pip install pyhanko failed");
        }
    });
}

/// Runs the pyHanko client against `s` with credential `c`; returns its output.
pub(crate) async fn pyhanko_signs(
    s: &TestServer,
    user: &str,
    password: &str,
    c: &Value,
    pin: &str,
    api: &str,
) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root.pem");
    let chain = c["chain"].as_array().unwrap();
    std::fs::write(&root, chain.last().unwrap().as_str().unwrap()).unwrap();
    let out = tmp.path().join("signed.pdf");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/pyhanko/csc_sign.py");
    // Asynchronously: the server answers on this test's own runtime.
    let o = tokio::process::Command::new("python3")
        .args([
            script,
            &s.url,
            s.data_dir().join("tls/ca.pem").to_str().unwrap(),
            root.to_str().unwrap(),
            user,
            password,
            c["credential_id"].as_str().unwrap(),
            pin,
            out.to_str().unwrap(),
            api,
        ])
        .output()
        .await
        .unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "pyHanko failed:\n{text}");
    let pdf = std::fs::read(&out).unwrap();
    assert!(
        pdf.starts_with(b"%PDF") && pdf.windows(10).any(|w| w == b"/ByteRange"),
        "a signed PDF"
    );
    text
}

#[tokio::test]
async fn pyhanko_signs_a_pdf_through_csc_v1_and_validates_it_against_sigils_ca() {
    ensure_pyhanko();
    for db in backends().await {
        let s = TestServer::start(&db).await;
        s.signer("paula", "paula's password").await;
        // SCAL 2 (pyHanko pins the hash in authorize) with P-256, SCAL 1 with RSA-2048.
        let ec = s.credential("paula", "p256", "112233", 2, 1).await;
        let text = pyhanko_signs(&s, "paula", "paula's password", &ec, "112233", "v1").await;
        assert!(text.contains("VALID signer=") && text.contains("authorizations=1"), "{text}");
        let rsa = s.credential("paula", "rsa-2048", "445566", 1, 1).await;
        let text = pyhanko_signs(&s, "paula", "paula's password", &rsa, "445566", "v1").await;
        assert!(text.contains("VALID signer="), "{text}");
        // pyHanko keeps v1 field names on /csc/v2 too; Sigil takes either spelling there.
        let text = pyhanko_signs(&s, "paula", "paula's password", &ec, "112233", "v2").await;
        assert!(text.contains("VALID signer="), "{text}");
        // Each signature was audited as the signer.
        let id = ec["credential_id"].as_str().unwrap();
        let path = format!("/api/v1/audit?action=csc.sign_hash&object_id={id}");
        let (st, v) = json(s.admin(Method::GET, &path).send().await.unwrap()).await;
        assert_eq!(st, 200, "{v}");
        let ok = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["details"]["outcome"] == "ok")
            .count();
        assert_eq!(ok, 2, "{v}");
        s.stop().await;
        db.cleanup().await;
    }
}
