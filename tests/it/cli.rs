//! The command line, run in-process exactly as `sigil …` would run it.

use clap::Parser as _;
use reqwest::Method;
use sigil_core::ports::CertStore as _;
use sigil_server::cli::{Cli, run};
use sigil_tests::{TestServer, backends};

/// Runs `sigil ARGS…` and returns its exit code.
pub async fn sigil(args: &[&str]) -> i32 {
    let cli = Cli::try_parse_from(std::iter::once("sigil").chain(args.iter().copied())).unwrap();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sigil {args:?}: {e:#}");
            2
        }
    }
}

#[tokio::test]
async fn apikey_commands_work_on_the_data_dir_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    assert_eq!(sigil(&["--data-dir", d, "migrate"]).await, 0);
    assert_eq!(
        sigil(&[
            "--data-dir",
            d,
            "apikey",
            "create",
            "--name",
            "ops",
            "--permissions",
            "api_keys:read,audit:*",
            "--expires",
            "30d",
            "--rate-limit",
            "100/minute",
            "--ip",
            "127.0.0.1"
        ])
        .await,
        0
    );
    assert_eq!(
        sigil(&[
            "--data-dir",
            d,
            "apikey",
            "create",
            "--name",
            "ops",
            "--permissions",
            "audit:read"
        ])
        .await,
        2,
        "names are unique"
    );
    assert_eq!(
        sigil(&[
            "--data-dir",
            d,
            "apikey",
            "create",
            "--name",
            "bad",
            "--permissions",
            "nope:read"
        ])
        .await,
        2
    );
    assert_eq!(sigil(&["--data-dir", d, "apikey", "list"]).await, 0);
    assert_eq!(sigil(&["--data-dir", d, "audit", "verify"]).await, 0);
    assert_eq!(sigil(&["--data-dir", d, "apikey", "revoke", "not-a-uuid"]).await, 2);
    assert_eq!(sigil(&["--data-dir", d, "check-config"]).await, 0);
}

#[tokio::test]
async fn a_key_created_on_the_command_line_is_honoured_and_revoked_by_the_server() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let d = s.data_dir().to_str().unwrap().to_owned();
        let cfg = s.data_dir().join("test.toml");
        let cfg = cfg.to_str().unwrap();
        // Create through the server's API, revoke through the CLI on the same database.
        let k = s
            .create_key(serde_json::json!({"name": "cli-victim", "permissions": ["api_keys:read"]}))
            .await;
        let secret = k["key"].as_str().unwrap();
        assert_eq!(
            s.req(Method::GET, "/api/v1/api-keys", secret).send().await.unwrap().status(),
            200
        );
        assert_eq!(
            sigil(&[
                "--config",
                cfg,
                "--data-dir",
                &d,
                "apikey",
                "revoke",
                k["id"].as_str().unwrap()
            ])
            .await,
            0
        );
        assert_eq!(
            s.req(Method::GET, "/api/v1/api-keys", secret).send().await.unwrap().status(),
            401
        );
        let trail = s.trail("api_key", k["id"].as_str().unwrap()).await;
        assert_eq!(trail["items"][1]["actor"]["kind"], "cli");
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn check_config_rejects_unknown_keys_and_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.toml");
    std::fs::write(&f, "[server]\nlisten = \"127.0.0.1:0\"\n[exposure.endpoints.\"GET /api/v1/nothing\"]\nenabled = false\n").unwrap();
    assert_eq!(sigil(&["--config", f.to_str().unwrap(), "check-config"]).await, 2);
    std::fs::write(&f, "[server]\nlisten = \"127.0.0.1:0\"\ncolour = \"red\"\n").unwrap();
    assert_eq!(sigil(&["--config", f.to_str().unwrap(), "check-config"]).await, 2);
}

/// The production setup: a root made and kept offline signs the issuing CA from a request made
/// on the server node and its own CRL; the server serves the issuing CA and never sees the root
/// key. Each refusal (a foreign chain, a mismatched root key, an overwritten file) is checked.
#[tokio::test]
async fn an_offline_root_signs_the_issuing_ca_and_its_crl_and_the_server_never_holds_its_key() {
    use sigil_tests::{Options, json, openssl, openssl_csr};
    for db in backends().await {
        let off = tempfile::tempdir().unwrap();
        let node = tempfile::tempdir().unwrap();
        let o = |f: &str| off.path().join(f).display().to_string();
        // The node's configuration: the database, the shared master key, the CA it will serve.
        let master = std::env::temp_dir().join(format!(
            "sigil-test-master-{}.key",
            uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, db.url.as_bytes()).simple()
        ));
        let cfg = node.path().join("node.toml");
        std::fs::write(
            &cfg,
            format!(
                "[server]\ndata_dir = \"{}\"\n[database]\nurl = \"{}\"\n[pki]\nmaster_key_file = \"{}\"\nca_id = \"corp\"\n",
                node.path().display(),
                db.url,
                master.display()
            ),
        )
        .unwrap();
        let c = cfg.to_str().unwrap();

        // Offline: the root.
        let root = ["ca", "root", "--key-out", &o("root-key.pem"), "--cert-out", &o("root.pem")];
        assert_eq!(sigil(&[&root[..], &["--cn", "Example Root"]].concat()).await, 0);
        assert_eq!(sigil(&root).await, 2, "an existing root key is never overwritten");
        // Node: the issuing key and its request.
        let request = ["--config", c, "ca", "request", "--id", "corp", "--out", &o("corp.csr")];
        assert_eq!(sigil(&request).await, 0);
        assert!(node.path().join("ca/corp.pending-key.json").exists());
        // Offline: the root signs it; a root key that is not the certificate's does not.
        let (ok, out) = openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-out",
            &o("other-key.pem"),
        ]);
        assert!(ok, "{out}");
        let sign = |key: String, out: String| {
            let args = [
                "ca",
                "sign",
                "--root-key",
                &key,
                "--root-cert",
                &o("root.pem"),
                "--csr",
                &o("corp.csr"),
                "--out",
                &out,
                "--public-url",
                "http://pki.example.org",
                "--ca-id",
                "corp",
            ]
            .map(str::to_owned);
            async move { sigil(&args.iter().map(String::as_str).collect::<Vec<_>>()).await }
        };
        assert_eq!(sign(o("other-key.pem"), o("x.pem")).await, 2);
        assert_eq!(sign(o("root-key.pem"), o("corp.pem")).await, 0);
        let (_, text) = openssl(&["x509", "-in", &o("corp.pem"), "-noout", "-text"]);
        assert!(text.contains("URI:http://pki.example.org/crl/corp-root.crl"), "{text}");
        assert!(
            text.contains("CA Issuers - URI:http://pki.example.org/ca/corp-root.crt"),
            "{text}"
        );
        let (_, text) = openssl(&["x509", "-in", &o("corp.pem"), "-noout", "-text"]);
        assert!(text.contains("URI:http://pki.example.org/crl/corp-root.crl"), "{text}");
        assert!(
            text.contains("CA Issuers - URI:http://pki.example.org/ca/corp-root.crt"),
            "{text}"
        );
        // Node: a chain to another root is refused and leaves the request pending.
        let other = ["ca", "root", "--key-out", &o("r2-key.pem"), "--cert-out", &o("r2.pem")];
        assert_eq!(sigil(&other).await, 0);
        let install = |chain: String| {
            let args = [
                "--config",
                c,
                "ca",
                "install",
                "--id",
                "corp",
                "--cert",
                &o("corp.pem"),
                "--chain",
                &chain,
            ]
            .map(str::to_owned);
            async move { sigil(&args.iter().map(String::as_str).collect::<Vec<_>>()).await }
        };
        assert_eq!(install(o("r2.pem")).await, 2);
        assert_eq!(install(o("root.pem")).await, 0);
        assert_eq!(install(o("root.pem")).await, 2, "installed once; nothing pending any more");
        assert!(!node.path().join("ca/corp.pending-key.json").exists());

        // The server serves the issuing CA; its certificates chain to the offline root.
        let s = TestServer::start_with(
            &db,
            Options {
                toml: "[pki]\nca_id = \"corp\"\n".into(),
                data_dir: Some(node.path().to_path_buf()),
            },
        )
        .await;
        let (csr, _) =
            openssl_csr(off.path(), "srv", "ec:P-256", "/CN=srv", Some("DNS:www.example.org"));
        let (st, cert) = s.issue(&csr, "tls-server").await;
        assert_eq!(st, 201, "{cert}");
        std::fs::write(off.path().join("leaf.pem"), cert["certificate"].as_str().unwrap()).unwrap();
        let (ok, out) = openssl(&[
            "verify",
            "-CAfile",
            &o("root.pem"),
            "-untrusted",
            &o("corp.pem"),
            &o("leaf.pem"),
        ]);
        assert!(ok, "{out}");
        let store = s.db().await;
        let cas = store.cas().await.unwrap();
        assert_eq!(
            cas.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            ["corp"],
            "no CA made on start"
        );
        assert!(cas[0].root_key_sealed.is_none());
        assert!(
            !node.path().join("ca").read_dir().unwrap().any(|f| f
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("root-key"))
        );
        assert!(s.trail_actions("ca", "corp").await.contains(&"ca.install".to_owned()));
        let (st, list) =
            json(s.admin(Method::GET, "/api/v1/ca-backends").send().await.unwrap()).await;
        assert_eq!(st, 200, "{list}");
        store.close().await;
        s.stop().await;

        // Offline: the root's CRL revokes a certificate the root issued; openssl verifies it.
        let serial = {
            let (_, text) = openssl(&["x509", "-in", &o("corp.pem"), "-noout", "-serial"]);
            text.trim().trim_start_matches("serial=").to_owned()
        };
        let crl = [
            "ca",
            "crl",
            "--root-key",
            &o("root-key.pem"),
            "--root-cert",
            &o("root.pem"),
            "--out",
            &o("root.crl"),
        ];
        let revoke = format!("{serial}:keyCompromise");
        assert_eq!(sigil(&[&crl[..], &["--revoke", "zz"]].concat()).await, 2, "a serial is hex");
        assert_eq!(sigil(&[&crl[..], &["--revoke", &revoke, "--number", "7"]].concat()).await, 0);
        assert_eq!(sigil(&crl).await, 2, "an existing CRL is never overwritten");
        let (ok, out) = openssl(&[
            "crl",
            "-inform",
            "DER",
            "-in",
            &o("root.crl"),
            "-CAfile",
            &o("root.pem"),
            "-noout",
            "-text",
        ]);
        assert!(
            ok && out.contains("verify OK")
                && out.contains(&serial)
                && out.contains("Key Compromise"),
            "{out}"
        );
        let (ok, out) =
            openssl(&["crl", "-inform", "DER", "-in", &o("root.crl"), "-out", &o("root-crl.pem")]);
        assert!(ok, "{out}");
        let (ok, out) = openssl(&[
            "verify",
            "-crl_check",
            "-CAfile",
            &o("root.pem"),
            "-CRLfile",
            &o("root-crl.pem"),
            &o("corp.pem"),
        ]);
        assert!(!ok && out.contains("revoked"), "{out}");
        // Node: the root's CRL is published as it is (PEM or DER), once per number, and
        // served where the issuing CA points.
        let publish = |file: String| {
            let args = ["--config", c, "ca", "publish-root-crl", "--id", "corp", "--crl", &file]
                .map(str::to_owned);
            async move { sigil(&args.iter().map(String::as_str).collect::<Vec<_>>()).await }
        };
        assert_eq!(publish(o("root-crl.pem")).await, 0);
        assert_eq!(publish(o("root.crl")).await, 2, "number 7 is published already");
        assert_eq!(publish(o("corp.pem")).await, 2, "a certificate is no CRL");
        let s = TestServer::start_with(
            &db,
            Options {
                toml: "[pki]\nca_id = \"corp\"\n".into(),
                data_dir: Some(node.path().to_path_buf()),
            },
        )
        .await;
        let served = s.client.get(format!("{}/crl/corp-root.crl", s.url)).send().await.unwrap();
        assert_eq!(served.status(), 200);
        assert_eq!(served.bytes().await.unwrap().to_vec(), std::fs::read(o("root.crl")).unwrap());
        assert!(s.trail_actions("ca", "corp").await.contains(&"ca.root_crl_publish".to_owned()));
        s.stop().await;
        db.cleanup().await;
    }
}
