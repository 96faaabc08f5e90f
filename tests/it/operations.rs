//! What operators run Sigil with: metrics Prometheus can scrape, an access log, a valid OpenAPI
//! document, the client's address behind a trusted proxy, reload on SIGHUP, and commands that
//! leave an installation as they found it.

use std::io::Write as _;

use reqwest::Method;
use serde_json::json;
use sigil_tests::{Options, TestDb, TestServer, backends, json, openssl_csr};

use crate::cli::sigil;

/// The value of the sample `name` (with its labels, as printed) in an exposition.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn metrics_count_the_certificate_lifecycle_and_show_the_audit_head_crls_and_pools() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let dir = tempfile::tempdir().unwrap();
        let (csr, _) = openssl_csr(dir.path(), "m", "ec:P-256", "/CN=metered", None);
        let (st, cert) = s.issue(&csr, "tls-client").await;
        assert_eq!(st, 201, "{cert}");
        let id = cert["id"].as_str().unwrap();
        for (action, body) in [
            ("suspend", json!({})),
            ("reactivate", json!({})),
            ("revoke", json!({"reason": "keyCompromise"})),
        ] {
            let r = s
                .admin(Method::POST, &format!("/api/v1/certificates/{id}/{action}"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{action}");
        }
        // The CRL is made on first fetch.
        assert!(s.crl_text("builtin").await.contains("Serial Number"));
        let r = s.client.get(format!("{}/metrics", s.url)).send().await.unwrap();
        assert_eq!(
            r.headers()["content-type"],
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        let m = r.text().await.unwrap();
        assert!(m.trim_end().ends_with("# EOF"), "an OpenMetrics body ends with # EOF");
        for (name, want) in [
            ("sigil_certificates_issued_total", 1.0),
            ("sigil_certificates_suspended_total", 1.0),
            ("sigil_certificates_reactivated_total", 1.0),
            ("sigil_certificates_revoked_total", 1.0),
            ("sigil_certificates_renewed_total", 0.0),
            ("sigil_audit_events_total{action=\"certificate.issue\",outcome=\"success\"}", 1.0),
            ("sigil_crls_generated_total{ca=\"builtin\"}", 1.0),
        ] {
            assert_eq!(sample(&m, name), Some(want), "{name}\n{m}");
        }
        let (_, verify) =
            json(s.admin(Method::GET, "/api/v1/audit?limit=500").send().await.unwrap()).await;
        let last =
            verify["items"].as_array().unwrap().iter().filter_map(|e| e["seq"].as_i64()).max();
        let gauge = sample(&m, "sigil_audit_chain_head").map(|v| v as i64);
        assert!(gauge.is_some() && gauge >= last, "head {gauge:?}, last event seen {last:?}");
        let age =
            sample(&m, "sigil_crl_age_seconds{ca=\"builtin\"}").unwrap_or_else(|| panic!("{m}"));
        assert!((0.0..60.0).contains(&age), "{age}");
        assert!(sample(&m, "sigil_crl_next_update_seconds{ca=\"builtin\"}").is_some());
        assert!(m.contains("sigil_db_pool_connections{pool=\"read\",state=\"max\"}"), "{m}");
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn csc_signatures_and_logins_are_counted_by_outcome() {
    let db = TestDb::sqlite();
    let s = TestServer::start(&db).await;
    s.create("/api/v1/signers", json!({"username": "mia", "password": "pw-mia-123456"})).await;
    let cred = s
        .create(
            "/api/v1/signing-credentials",
            json!({"signer": "mia", "key_algorithm": "p256", "pin": "123456", "scal": 1, "multisign": 2}),
        )
        .await;
    let login = |pw: &str| {
        s.client
            .post(format!("{}/csc/v2/auth/login", s.url))
            .basic_auth("mia", Some(pw))
            .json(&json!({}))
            .send()
    };
    assert_eq!(login("wrong").await.unwrap().status(), 400);
    let (_, tok) = json(login("pw-mia-123456").await.unwrap()).await;
    let token = tok["access_token"].as_str().unwrap();
    let credential = cred["credential_id"].as_str().unwrap();
    let hash = "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=";
    let (st, auth) = json(
        s.client
            .post(format!("{}/csc/v2/credentials/authorize", s.url))
            .bearer_auth(token)
            .json(&json!({"credentialID": credential, "numSignatures": 1, "hashes": [hash], "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1", "PIN": "123456"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200, "{auth}");
    let (st, signed) = json(
        s.client
            .post(format!("{}/csc/v2/signatures/signHash", s.url))
            .bearer_auth(token)
            .json(&json!({"credentialID": credential, "SAD": auth["SAD"], "hashes": [hash], "hashAlgorithmOID": "2.16.840.1.101.3.4.2.1", "signAlgo": "1.2.840.10045.4.3.2"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200, "{signed}");
    let m = s.client.get(format!("{}/metrics", s.url)).send().await.unwrap().text().await.unwrap();
    assert_eq!(sample(&m, "sigil_csc_sign_hash_total"), Some(1.0), "{m}");
    assert_eq!(sample(&m, "sigil_csc_logins_total{outcome=\"success\"}"), Some(1.0), "{m}");
    assert_eq!(sample(&m, "sigil_csc_logins_total{outcome=\"failure\"}"), Some(1.0), "{m}");
    s.stop().await;
}

const PIP_VALIDATOR: &str = "openapi-spec-validator==0.7.2";

#[tokio::test]
async fn the_openapi_document_passes_openapi_spec_validator() {
    let have = std::process::Command::new("python3")
        .args(["-c", "import openapi_spec_validator"])
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        let st = std::process::Command::new("python3")
            .args(["-m", "pip", "install", "-q", "--break-system-packages", PIP_VALIDATOR])
            .status()
            .expect("python3 with pip (this test installs openapi-spec-validator from PyPI)");
        assert!(st.success(), "pip install {PIP_VALIDATOR} failed");
    }
    let db = TestDb::sqlite();
    let s = TestServer::start(&db).await;
    let doc = s.client.get(format!("{}/openapi.json", s.url)).send().await.unwrap();
    let body = doc.bytes().await.unwrap();
    // By default an API key is the credential: the served document does not offer mTLS.
    let served: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let security = served["paths"]["/api/v1/certificates"]["post"]["security"].to_string();
    assert!(security.contains("api_key") && !security.contains("mtls"), "{security}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("openapi.json");
    std::fs::File::create(&path).unwrap().write_all(&body).unwrap();
    let out = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    s.stop().await;
}

#[tokio::test]
async fn a_forwarded_client_address_is_believed_only_from_a_trusted_proxy() {
    let db = TestDb::sqlite();
    let trusted = TestServer::start_with(
        &db,
        Options {
            toml: "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n".into(),
            ..Default::default()
        },
    )
    .await;
    let k = trusted
        .create_key(json!({"name": "remote", "permissions": ["profiles:read"], "ip_whitelist": ["203.0.113.7"]}))
        .await;
    let key = k["key"].as_str().unwrap();
    let call = |s: &TestServer, xff: Option<&str>| {
        let mut r = s.req(Method::GET, "/api/v1/profiles", key);
        if let Some(v) = xff {
            r = r.header("x-forwarded-for", v);
        }
        r.send()
    };
    assert_eq!(call(&trusted, Some("203.0.113.7")).await.unwrap().status(), 200);
    // Without the header the proxy itself is the client, and it is not on the whitelist.
    assert_eq!(call(&trusted, None).await.unwrap().status(), 403);
    // A client cannot name itself: what it wrote is left of what the proxy appended.
    assert_eq!(call(&trusted, Some("203.0.113.7, 198.51.100.1")).await.unwrap().status(), 403);
    assert_eq!(call(&trusted, Some("not-an-ip")).await.unwrap().status(), 400);
    // A line the client starts with a byte that is not ASCII (the proxy appends the real client
    // to it) is refused, not dropped: dropped, it would leave the proxy as the client.
    // (Over HTTP/1.1, as proxies forward; HTTP/2's header decoding drops such a value.)
    let h1 = sigil_tests::client_http1(&trusted.data_dir().join("tls/ca.pem"));
    let r = h1
        .get(format!("{}/api/v1/profiles", trusted.url))
        .bearer_auth(key)
        .header(
            "x-forwarded-for",
            reqwest::header::HeaderValue::from_bytes(b"\xff, 203.0.113.7").unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // The audit trail records the forwarded client.
    let r = trusted
        .admin(Method::POST, "/api/v1/api-keys")
        .header("x-forwarded-for", "192.0.2.44")
        .json(&json!({"name": "audited", "permissions": ["profiles:read"]}))
        .send()
        .await
        .unwrap();
    let (_, made) = json(r).await;
    let trail = trusted.trail("api_key", made["id"].as_str().unwrap()).await;
    assert_eq!(trail["items"][0]["client_ip"], "192.0.2.44", "{trail}");
    trusted.stop().await;
    // By default the header is ignored.
    let db2 = TestDb::sqlite();
    let plain = TestServer::start(&db2).await;
    let k = plain
        .create_key(json!({"name": "remote", "permissions": ["profiles:read"], "ip_whitelist": ["203.0.113.7"]}))
        .await;
    let r = plain
        .req(Method::GET, "/api/v1/profiles", k["key"].as_str().unwrap())
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    plain.stop().await;
}

/// The status of `GET /api/v1/profiles` as soon as it is `want`, or the last one seen in 5 s.
async fn profiles_status_once(s: &TestServer, want: u16) -> u16 {
    let mut status = 0;
    for _ in 0..50 {
        status = s.admin(Method::GET, "/api/v1/profiles").send().await.unwrap().status().as_u16();
        if status == want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    status
}

#[tokio::test]
async fn reading_the_configuration_file_reloads_nothing() {
    // The watcher is told of opens of the file too, and a reload reads the file: reacting to
    // an open made any read (an operator's `cat`, a backup) start a reload every 300 ms for as
    // long as the server ran. Seen here through a change the watcher cannot see (written
    // through a hard link in another directory), which only a reload would apply.
    // The link is made before the server starts: making it changes the file's link count,
    // which the watcher is told of, and the reload that follows ran late on a loaded CI
    // machine (after the change below), failing this test whatever the wait before it. The
    // server writes its configuration through the file's name, into the linked inode.
    let db = TestDb::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("test.toml");
    std::fs::write(&file, "").unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let link = elsewhere.path().join("linked.toml");
    std::fs::hard_link(&file, &link).unwrap();
    let opts = Options { data_dir: Some(dir.path().to_path_buf()), ..Default::default() };
    let s = TestServer::start_with(&db, opts).await;
    assert_eq!(s.config.source.as_deref(), Some(file.as_path()));
    let profiles = || s.admin(Method::GET, "/api/v1/profiles").send();
    assert_eq!(profiles().await.unwrap().status(), 200);
    let mut text = std::fs::read_to_string(&link).unwrap();
    text.push_str("\n[exposure.endpoints.\"GET /api/v1/profiles\"]\nenabled = false\n");
    std::fs::write(&link, &text).unwrap();
    for _ in 0..3 {
        assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    assert_eq!(profiles().await.unwrap().status(), 200, "a read of the file reloaded it");
    // A write through its own name is seen and applied.
    std::fs::write(&file, &text).unwrap();
    let status = profiles_status_once(&s, 404).await;
    assert_eq!(status, 404, "the change is applied once written through the file's name");
    s.stop().await;
}

#[tokio::test]
async fn sighup_reloads_the_exposure_of_the_configuration_file() {
    let db = TestDb::sqlite();
    let s = TestServer::start_with(
        &db,
        Options { toml: "[plugins]\nwatch = false\n".into(), ..Default::default() },
    )
    .await;
    let profiles = || s.admin(Method::GET, "/api/v1/profiles").send();
    assert_eq!(profiles().await.unwrap().status(), 200);
    let file = s.config.source.clone().unwrap();
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("\n[exposure.endpoints.\"GET /api/v1/profiles\"]\nenabled = false\n");
    std::fs::write(&file, text).unwrap();
    // No watcher: nothing changes until the signal.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(profiles().await.unwrap().status(), 200);
    let st = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let status = profiles_status_once(&s, 404).await;
    assert_eq!(status, 404, "the endpoint is switched off after SIGHUP");
    // The change is on the audit trail, as the server's, with what it replaced.
    let (_, trail) = json(
        s.admin(Method::GET, "/api/v1/audit?action=exposure.file_reload").send().await.unwrap(),
    )
    .await;
    let events = trail["items"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{trail}");
    let ev = &events[0];
    assert_eq!(ev["actor"]["kind"], "system", "{ev}");
    let details: serde_json::Value = match &ev["details"] {
        serde_json::Value::String(t) => serde_json::from_str(t).unwrap(),
        v => v.clone(),
    };
    assert_eq!(details["trigger"], "sighup", "{details}");
    assert_eq!(details["in_force"], true);
    assert_eq!(
        details["after"]["endpoints"]["GET /api/v1/profiles"]["enabled"], false,
        "{details}"
    );
    // A reload that changes nothing records nothing.
    let st = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let (_, again) = json(
        s.admin(Method::GET, "/api/v1/audit?action=exposure.file_reload").send().await.unwrap(),
    )
    .await;
    assert_eq!(again["items"].as_array().unwrap().len(), 1, "{again}");
    s.stop().await;
}

#[tokio::test]
async fn a_busy_port_is_a_one_line_error_and_creates_nothing() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cli = <sigil_server::cli::Cli as clap::Parser>::try_parse_from([
        "sigil",
        "--data-dir",
        data.to_str().unwrap(),
        "serve",
        "--listen",
        &addr,
    ])
    .unwrap();
    let err = sigil_server::cli::run(cli).await.unwrap_err();
    let line = format!("{err:#}");
    assert!(line.starts_with(&format!("cannot listen on {addr}")), "{line}");
    assert!(line.contains("in use") && !line.contains('\n') && !line.contains("Os {"), "{line}");
    assert!(!data.exists(), "nothing was created before the port was taken");
}

#[tokio::test]
async fn read_only_commands_leave_an_empty_directory_empty_and_verify_never_migrates() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("nothing-here");
    let d = d.to_str().unwrap();
    assert_ne!(sigil(&["--data-dir", d, "apikey", "list"]).await, 0);
    assert!(!std::path::Path::new(d).exists(), "apikey list created {d}");
    let url = format!("sqlite://{}/absent.db", dir.path().display());
    let key = dir.path().join("k.pem");
    assert_ne!(
        sigil(&["audit", "verify", "--database-url", &url, "--public-key", key.to_str().unwrap()])
            .await,
        0
    );
    assert!(!dir.path().join("absent.db").exists(), "verify created a database");
    // An installation one migration behind is refused, not migrated.
    let live = dir.path().join("live");
    let l = live.to_str().unwrap();
    assert_eq!(sigil(&["--data-dir", l, "migrate"]).await, 0);
    let db_url = format!("sqlite://{}/sigil.db", live.display());
    let pool = sqlx::SqlitePool::connect(&db_url).await.unwrap();
    sqlx::query(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    let before = count().await;
    assert_ne!(sigil(&["--data-dir", l, "apikey", "list"]).await, 0);
    assert_eq!(count().await, before, "apikey list migrated the database");
    pool.close().await;
    // A database a newer Sigil migrated is refused too.
    let newer = dir.path().join("newer");
    let n = newer.to_str().unwrap();
    assert_eq!(sigil(&["--data-dir", n, "migrate"]).await, 0);
    assert_eq!(sigil(&["--data-dir", n, "apikey", "list"]).await, 0);
    let pool =
        sqlx::SqlitePool::connect(&format!("sqlite://{}/sigil.db", newer.display())).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, \
         execution_time) VALUES (99999, 'from the future', CURRENT_TIMESTAMP, 1, x'00', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert_ne!(sigil(&["--data-dir", n, "apikey", "list"]).await, 0);
    pool.close().await;
}

#[tokio::test]
async fn the_database_and_the_data_directory_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt as _;
    // `migrate` on a fresh directory creates what `serve` creates: the directory and the file.
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("own");
    let f = fresh.to_str().unwrap();
    assert_eq!(sigil(&["--data-dir", f, "migrate"]).await, 0);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&fresh), 0o700);
    for name in ["sigil.db", "sigil.db-wal", "sigil.db-shm"] {
        let p = fresh.join(name);
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{name}");
        }
    }
    assert!(fresh.join("sigil.db").exists());
    // An existing database left readable by others is tightened on open.
    std::fs::set_permissions(fresh.join("sigil.db"), std::fs::Permissions::from_mode(0o644))
        .unwrap();
    assert_eq!(sigil(&["--data-dir", f, "migrate"]).await, 0);
    assert_eq!(mode(&fresh.join("sigil.db")), 0o600);
}

/// A server on `data` with the default configuration (as `sigil serve --data-dir DATA` runs).
async fn serve_default(data: &std::path::Path) -> sigil_server::startup::Running {
    let env = [
        ("SIGIL__SERVER__DATA_DIR".to_owned(), data.display().to_string()),
        ("SIGIL__SERVER__LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        ("SIGIL__PLUGINS__WATCH".to_owned(), "false".to_owned()),
    ];
    let cfg = sigil_server::config::Config::load_from(None, env.into_iter()).unwrap();
    sigil_server::startup::start(&cfg).await.unwrap()
}

#[tokio::test]
async fn a_backup_taken_while_serving_restores_every_certificate_key_and_audit_event() {
    sigil_tests::install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let running = serve_default(&a).await;
    let url = format!("https://{}", running.addr);
    let client = sigil_tests::client_for(&a.join("tls/ca.pem"), None);
    let admin = std::fs::read_to_string(a.join("admin.key")).unwrap().trim().to_owned();
    let issue = |cn: &str| {
        let (csr, _) = openssl_csr(dir.path(), cn, "ec:P-256", &format!("/CN={cn}"), None);
        client
            .post(format!("{url}/api/v1/certificates"))
            .bearer_auth(&admin)
            .json(&json!({"csr": csr, "profile": "tls-client"}))
            .send()
    };
    let mut kept = Vec::new();
    for cn in ["one", "two", "three"] {
        let (st, c) = json(issue(cn).await.unwrap()).await;
        assert_eq!(st, 201, "{c}");
        kept.push(c["id"].as_str().unwrap().to_owned());
    }
    let (a_s, b_s) = (a.to_str().unwrap(), b.to_str().unwrap());
    assert_eq!(sigil(&["--data-dir", a_s, "backup", "--out", b_s]).await, 0);
    let (st, later) = json(issue("after").await.unwrap()).await;
    assert_eq!(st, 201);
    running.shutdown().await.unwrap();
    // A second backup never writes over the first, nor into a directory that exists.
    assert_ne!(sigil(&["--data-dir", a_s, "backup", "--out", b_s]).await, 0);
    let planted = dir.path().join("planted");
    std::fs::create_dir(&planted).unwrap();
    assert_ne!(sigil(&["--data-dir", a_s, "backup", "--out", planted.to_str().unwrap()]).await, 0);
    assert!(!planted.join("master.key").exists());
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&b), 0o700);
        for f in ["sigil.db", "master.key", "audit-key.pem", "admin.key", "tls/ca.pem"] {
            assert_eq!(mode(&b.join(f)), 0o600, "{f}");
        }
    }
    // The copy verifies offline, then serves what was there when it was taken.
    assert_eq!(sigil(&["--data-dir", b_s, "audit", "verify"]).await, 0);
    let restored = serve_default(&b).await;
    let url = format!("https://{}", restored.addr);
    let client = sigil_tests::client_for(&b.join("tls/ca.pem"), None);
    let (st, list) = json(
        client
            .get(format!("{url}/api/v1/certificates?limit=100"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200, "{list}");
    let ids: Vec<&str> =
        list["items"].as_array().unwrap().iter().filter_map(|c| c["id"].as_str()).collect();
    for id in &kept {
        assert!(ids.contains(&id.as_str()), "{id} is not in the restored inventory");
    }
    assert!(!ids.contains(&later["id"].as_str().unwrap()), "issued after the backup");
    // The restored CA still signs: its sealed key opened under the copied master key.
    let (csr, _) = openssl_csr(dir.path(), "restored", "ec:P-256", "/CN=restored", None);
    let r = client
        .post(format!("{url}/api/v1/certificates"))
        .bearer_auth(&admin)
        .json(&json!({"csr": csr, "profile": "tls-client"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    restored.shutdown().await.unwrap();
    assert_eq!(sigil(&["--data-dir", b_s, "audit", "verify"]).await, 0);
}

#[tokio::test]
async fn plugin_calls_faults_and_call_durations_are_scraped() {
    let db = TestDb::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("naming.wasm");
    std::fs::copy(format!("{}/naming_validator.wasm", env!("SIGIL_TEST_PLUGINS")), &wasm).unwrap();
    let toml = format!(
        "[plugins.load.naming]\nfile = \"{}\"\ngrants = [\"log\", \"config\"]\n\
         hooks = [\"certificate-issuance\"]\n[plugins.load.naming.config]\n\
         cn_suffix = \".corp.example\"\n",
        wasm.display()
    );
    let s = TestServer::start_with(&db, Options { toml, ..Default::default() }).await;
    for cn in ["a.corp.example", "b.corp.example", "c.elsewhere.example"] {
        let (csr, _) = openssl_csr(dir.path(), cn, "ec:P-256", &format!("/CN={cn}"), None);
        s.issue(&csr, "tls-client").await;
    }
    let m = s.client.get(format!("{}/metrics", s.url)).send().await.unwrap().text().await.unwrap();
    let labels = "{plugin=\"naming\",kind=\"validator\"}";
    let calls =
        sample(&m, &format!("sigil_plugin_calls_total{labels}")).unwrap_or_else(|| panic!("{m}"));
    assert!(calls >= 3.0, "{calls}");
    assert_eq!(sample(&m, &format!("sigil_plugin_faults_total{labels}")), Some(0.0), "{m}");
    let count = sample(&m, &format!("sigil_plugin_call_duration_seconds_count{labels}"));
    assert_eq!(count, Some(calls), "one observation per call\n{m}");
    let inf = sample(
        &m,
        "sigil_plugin_call_duration_seconds_bucket{le=\"+Inf\",plugin=\"naming\",kind=\"validator\"}",
    )
    .or_else(|| {
        sample(
            &m,
            "sigil_plugin_call_duration_seconds_bucket{plugin=\"naming\",kind=\"validator\",le=\"+Inf\"}",
        )
    });
    assert_eq!(inf, Some(calls), "{m}");
    assert!(sample(&m, &format!("sigil_plugin_call_duration_seconds_sum{labels}")).unwrap() > 0.0);
    s.stop().await;
}

/// `sigil serve` as a process of its own on a fresh data directory, listening on port 0, with
/// `server` appended to its `[server]` section and `sections` after it; its standard output is
/// piped (for `sigil_tests::listening_url`), its standard error goes to `stderr`. Returns the
/// temporary directory (kept while the server runs), the data directory and the child.
fn serve_process(
    server: &str,
    sections: &str,
    stderr: std::process::Stdio,
) -> (tempfile::TempDir, std::path::PathBuf, tokio::process::Child) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sigil.toml");
    let data = dir.path().join("data");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n{server}{sections}",
            data.display()
        ),
    )
    .unwrap();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sigil_it"))
        .args(["--config", config.to_str().unwrap(), "serve"])
        .env_remove("SIGIL_LOG")
        .env_remove("SIGIL__DATABASE__URL")
        // The runtime's size is the CPU count (the pinning test relies on it).
        .env_remove("TOKIO_WORKER_THREADS")
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    (dir, data, child)
}

#[tokio::test]
async fn the_access_log_has_a_line_for_every_request_with_its_route_status_and_caller() {
    // `sigil serve` as a process of its own with JSON logs at info, behind a trusted proxy
    // (this test's client): the lines are read from its standard error.
    use tokio::io::AsyncBufReadExt as _;
    let (_dir, data, mut child) = serve_process(
        "trusted_proxies = [\"127.0.0.1\"]\n",
        "[log]\nformat = \"json\"\nlevel = \"info\"\n",
        std::process::Stdio::piped(),
    );
    // Standard error is read from the start, so that the server never waits on a full pipe.
    let mut log = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let (access_tx, mut access) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(l)) = log.next_line().await {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&l)
                && v["target"] == "sigil::access"
            {
                let _ = access_tx.send(v["fields"].clone());
            }
        }
    });
    let url = sigil_tests::listening_url(&mut child).await.unwrap();
    let client = sigil_tests::client_for(&data.join("tls/ca.pem"), None);
    let admin = std::fs::read_to_string(data.join("admin.key")).unwrap().trim().to_owned();
    let send = |method: Method, path: &str, id: &str, xff: &str| {
        client
            .request(method, format!("{url}{path}"))
            .header("x-request-id", id)
            .header("x-forwarded-for", xff)
    };
    // An authenticated call through the proxy.
    let r = send(Method::GET, "/api/v1/api-keys", "log-keys", "192.0.2.7");
    assert_eq!(r.bearer_auth(&admin).send().await.unwrap().status(), 200);
    // A path that no route serves.
    let r = send(Method::GET, "/api/v1/no-such-thing", "log-unrouted", "192.0.2.7");
    assert_eq!(r.bearer_auth(&admin).send().await.unwrap().status(), 404);
    // A CSC call without a token: a CSC error, and a line.
    let r = send(Method::POST, "/csc/v1/signatures/signHash", "log-csc", "192.0.2.8");
    let (status, body) = json(r.json(&json!({})).send().await.unwrap()).await;
    assert!(status == 400 || status == 401, "{status} {body}");
    assert!(body["error"].is_string(), "{body}");
    // Refused for what the proxy forwarded, before anything else looked at it: a line too.
    let r = send(Method::GET, "/api/v1/api-keys", "log-refused", "not-an-ip");
    assert_eq!(r.bearer_auth(&admin).send().await.unwrap().status(), 400);

    let mut lines = std::collections::HashMap::new();
    let read = async {
        while lines.len() < 4 {
            let Some(f) = access.recv().await else { break };
            lines.insert(f["request_id"].as_str().unwrap_or_default().to_owned(), f);
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), read).await.unwrap();
    let keys = &lines["log-keys"];
    assert_eq!(keys["message"], "request", "{keys}");
    assert_eq!(keys["method"], "GET", "{keys}");
    assert_eq!(keys["route"], "/api/v1/api-keys", "{keys}");
    assert_eq!(keys["path"], "/api/v1/api-keys", "{keys}");
    assert_eq!(keys["status"], 200, "{keys}");
    assert_eq!(keys["client"], "192.0.2.7", "{keys}");
    assert_eq!(keys["via"], "127.0.0.1", "{keys}");
    assert_ne!(keys["principal"], "-", "{keys}");
    assert_ne!(keys["api_key_id"], "-", "{keys}");
    assert!(keys["ms"].as_str().unwrap().parse::<f64>().unwrap() >= 0.0, "{keys}");
    let unrouted = &lines["log-unrouted"];
    assert_eq!((unrouted["status"].as_u64(), unrouted["route"].as_str()), (Some(404), Some("-")));
    assert_eq!(unrouted["path"], "/api/v1/no-such-thing", "{unrouted}");
    let csc = &lines["log-csc"];
    assert_eq!(csc["route"], "/csc/v1/signatures/signHash", "{csc}");
    assert_eq!(csc["status"], status, "{csc}");
    assert_eq!(csc["principal"], "-", "{csc}");
    assert_eq!(csc["client"], "192.0.2.8", "{csc}");
    let refused = &lines["log-refused"];
    assert_eq!(refused["status"], 400, "{refused}");
    assert_eq!(refused["code"], "invalid_request", "{refused}");
    // Not believed: the client is the proxy that sent it.
    assert_eq!(
        (refused["client"].as_str(), refused["via"].as_str()),
        (Some("127.0.0.1"), Some("-"))
    );
    assert_eq!(refused["principal"], "-", "{refused}");
    child.kill().await.unwrap();
}

#[cfg(target_os = "linux")]
/// Whether this process may raise a thread's priority to `nice`: `CAP_SYS_NICE` among its
/// effective capabilities, or an `RLIMIT_NICE` that allows it (20 − limit is the floor).
fn may_raise_priority_to(nice: i32) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let soft: i64 = limits
        .lines()
        .find(|l| l.starts_with("Max nice priority"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    cap_eff & (1 << 23) != 0 || 20 - soft <= i64::from(nice)
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_server_runs_its_sqlite_writer_thread_at_the_configured_priority_and_cpu() {
    use sigil_store::testing::{last_allowed_cpu, stat_name_and_nice, thread_cpus, thread_nice};
    let cpu = last_allowed_cpu().unwrap();
    let (_dir, _data, mut child) = serve_process(
        "",
        &format!(
            "[database]\nsqlite_writer_nice = -4\nsqlite_writer_cpu = {cpu}\n[log]\nlevel = \"warn\"\n"
        ),
        std::process::Stdio::null(),
    );
    sigil_tests::listening_url(&mut child).await.unwrap();
    let pid = child.id().unwrap().to_string();
    let writers: Vec<i32> = thread_nice(&pid, "sigil-sqlite-wr").into_values().collect();
    // The server's own nice value, which the writer keeps when raising it is refused.
    let own = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let own = stat_name_and_nice(&own).unwrap().1;
    let expected = if may_raise_priority_to(-4) { -4 } else { own };
    assert_eq!(writers, [expected], "the server's SQLite writer threads");
    let on: Vec<String> = thread_nice(&pid, "sigil-sqlite-wr")
        .into_keys()
        .filter_map(|t| thread_cpus(&pid, t))
        .collect();
    assert_eq!(on, [cpu.to_string()], "the CPUs of the server's SQLite writer threads");
    child.kill().await.unwrap();
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn with_pin_workers_each_async_worker_thread_runs_on_a_cpu_of_its_own() {
    use sigil_store::testing::{thread_cpus, thread_nice};
    let cpus = std::thread::available_parallelism().unwrap().get();
    if cpus < 2 {
        // One CPU: every thread shows it, pinned or not; nothing to tell apart.
        return;
    }
    // The CPUs of each thread named as tokio names its threads (workers and blocking threads).
    let threads = |pid: &str| -> Vec<String> {
        let mut on: Vec<String> = thread_nice(pid, "tokio-rt-worker")
            .into_keys()
            .filter_map(|t| thread_cpus(pid, t))
            .collect();
        on.sort();
        on
    };
    let single = |on: &[String]| -> Vec<String> {
        on.iter().filter(|c| c.parse::<usize>().is_ok()).cloned().collect()
    };
    for pin in [true, false] {
        let (_dir, _data, mut child) = serve_process(
            &format!("pin_workers = {pin}\n"),
            "[log]\nlevel = \"warn\"\n",
            std::process::Stdio::null(),
        );
        sigil_tests::listening_url(&mut child).await.unwrap();
        let pid = child.id().unwrap().to_string();
        let on = threads(&pid);
        let pinned = single(&on);
        if pin {
            // One worker per CPU, each on its own; the blocking threads (started from workers)
            // keep every CPU.
            assert_eq!(pinned.len(), cpus, "{on:?}");
            let distinct: std::collections::BTreeSet<_> = pinned.iter().collect();
            assert_eq!(distinct.len(), cpus, "{on:?}");
        } else {
            assert!(pinned.is_empty(), "unpinned: {on:?}");
        }
        child.kill().await.unwrap();
    }
}
