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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cert_commands_issue_with_a_local_key_and_manage_the_certificate_to_its_revocation() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("api.key");
        std::fs::write(&key_file, &s.admin_key).unwrap();
        let ca = s.data_dir().join("tls/ca.pem");
        let conn = [
            "--server",
            s.url.as_str(),
            "--api-key-file",
            key_file.to_str().unwrap(),
            "--ca-file",
            ca.to_str().unwrap(),
        ];
        let cert = |args: &[&str]| {
            let mut all = vec!["cert"];
            all.extend_from_slice(&conn);
            all.extend_from_slice(args);
            all.iter().map(|a| (*a).to_owned()).collect::<Vec<String>>()
        };
        let run = |args: Vec<String>| async move {
            sigil(&args.iter().map(String::as_str).collect::<Vec<_>>()).await
        };
        let (out, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        {
            // A key file left readable by others is narrowed before the new key goes in.
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::write(&key, "old").unwrap();
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let (o, k) = (out.to_str().unwrap(), key.to_str().unwrap());
        let issued = cert(&[
            "issue",
            "--profile",
            "tls-client",
            "--subject",
            "CN=cli-user,O=Acme",
            "--san",
            "dns:cli.example",
            "--key-type",
            "p384",
            "--out",
            o,
            "--key-out",
            k,
        ]);
        assert_eq!(run(issued).await, 0);
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        }
        // The file holds the certificate then its chain; openssl verifies the leaf by it.
        let pem = std::fs::read_to_string(&out).unwrap();
        assert!(pem.matches("BEGIN CERTIFICATE").count() >= 2, "{pem}");
        // The last certificate of the chain is the root; openssl checks the leaf up to it.
        let root = pem.rfind("-----BEGIN CERTIFICATE-----").map(|i| &pem[i..]).unwrap();
        let root_file = dir.path().join("root.pem");
        std::fs::write(&root_file, root).unwrap();
        let (ok, text) = sigil_tests::openssl(&[
            "verify",
            "-CAfile",
            root_file.to_str().unwrap(),
            "-untrusted",
            o,
            o,
        ]);
        assert!(ok, "{text}");
        // The key written here is the one the certificate certifies.
        let (_, cert_pub) = sigil_tests::openssl(&["x509", "-in", o, "-noout", "-pubkey"]);
        let (_, key_pub) = sigil_tests::openssl(&["pkey", "-in", k, "-pubout"]);
        assert_eq!(cert_pub, key_pub);
        let (_, subject) = sigil_tests::openssl(&[
            "x509",
            "-in",
            o,
            "-noout",
            "-subject",
            "-ext",
            "subjectAltName",
        ]);
        assert!(
            subject.contains("CN = cli-user") && subject.contains("DNS:cli.example"),
            "{subject}"
        );
        let (_, list) = sigil_tests::json(
            s.admin(Method::GET, "/api/v1/certificates?q=cli-user").send().await.unwrap(),
        )
        .await;
        let id = list["items"][0]["id"].as_str().unwrap().to_owned();
        let status = || async {
            let (_, c) = sigil_tests::json(
                s.admin(Method::GET, &format!("/api/v1/certificates/{id}")).send().await.unwrap(),
            )
            .await;
            c["status"].as_str().unwrap().to_owned()
        };
        for (args, want) in [
            (vec!["list", "--q", "cli-user", "--output", "json"], None),
            (vec!["show", id.as_str()], None),
            (vec!["suspend", id.as_str()], Some("suspended")),
            (vec!["reactivate", id.as_str()], Some("active")),
        ] {
            assert_eq!(run(cert(&args)).await, 0, "{args:?}");
            if let Some(w) = want {
                assert_eq!(status().await, w, "{args:?}");
            }
        }
        // Renewal opens 30 days before expiry under tls-client; this profile opens it at once.
        let (_, mut spec) = sigil_tests::json(
            s.admin(Method::GET, "/api/v1/profiles/tls-client").send().await.unwrap(),
        )
        .await;
        let mut spec = spec["spec"].take();
        spec["renewal_window_days"] = serde_json::json!(365);
        let r =
            s.admin(Method::PUT, "/api/v1/profiles/tls-client").json(&spec).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let renewed = dir.path().join("renewed.pem");
        let new_key = dir.path().join("renewed.key");
        assert_eq!(
            run(cert(&[
                "renew",
                &id,
                "--out",
                renewed.to_str().unwrap(),
                "--key-out",
                new_key.to_str().unwrap()
            ]))
            .await,
            0
        );
        let (_, renewed_pub) =
            sigil_tests::openssl(&["x509", "-in", renewed.to_str().unwrap(), "-noout", "-pubkey"]);
        let (_, new_pub) =
            sigil_tests::openssl(&["pkey", "-in", new_key.to_str().unwrap(), "-pubout"]);
        assert_eq!(renewed_pub, new_pub, "the renewal certifies the new local key");
        assert_ne!(renewed_pub, cert_pub);
        assert_eq!(run(cert(&["revoke", &id, "--reason", "keyCompromise"])).await, 0);
        assert_eq!(status().await, "revoked");
        // Revoking again is idempotent (it answers the revoked certificate); lifting the hold
        // of a revoked one is refused by the server: exit 1. Not a certificate id: exit 2, and
        // nothing is sent.
        assert_eq!(run(cert(&["revoke", &id])).await, 0);
        assert_eq!(run(cert(&["reactivate", &id])).await, 1);
        assert_eq!(run(cert(&["show", "../api-keys"])).await, 2);
        assert_eq!(
            run(cert(&[
                "issue",
                "--profile",
                "tls-client",
                "--subject",
                "nonsense",
                "--out",
                o,
                "--key-out",
                k
            ]))
            .await,
            2
        );
        // A wrong key is the server's refusal too.
        std::fs::write(&key_file, "sgl_wrong").unwrap();
        assert_eq!(run(cert(&["list"])).await, 1);
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn completions_and_the_man_page_cover_the_commands() {
    assert_eq!(sigil(&["completions", "zsh"]).await, 0);
    assert_eq!(sigil(&["man"]).await, 0);
    let mut cmd = <Cli as clap::CommandFactory>::command();
    let mut bash = Vec::new();
    clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "sigil", &mut bash);
    let bash = String::from_utf8(bash).unwrap();
    for word in ["cert", "issue", "--key-out", "backup", "completions"] {
        assert!(bash.contains(word), "{word} is not completed");
    }
    let mut man = Vec::new();
    clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(&mut man).unwrap();
    let man = String::from_utf8(man).unwrap();
    assert!(man.starts_with(".ie") || man.contains(".TH sigil"), "{}", &man[..200.min(man.len())]);
    assert!(man.contains("backup"));
}

#[tokio::test]
async fn sigil_serve_with_no_configuration_starts_from_the_working_directory() {
    // The README's first command, `sigil serve` and nothing else, as a process of its own in
    // an empty directory: the default data_dir is the relative `./data`. Only the port differs.
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sigil_it"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = match sigil_tests::listening_url(&mut child).await {
        Ok(url) => url,
        Err(line) => {
            let out = child.wait_with_output().await.unwrap();
            panic!("sigil serve did not start ({line}):\n{}", String::from_utf8_lossy(&out.stderr));
        }
    };
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let client = sigil_tests::client_for(&dir.path().join("data/tls/ca.pem"), None);
    let ready = client.get(format!("{url}/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert!(dir.path().join("data/admin.key").exists());
    assert!(dir.path().join("data/plugin-cache").is_dir());
    child.kill().await.unwrap();
}
