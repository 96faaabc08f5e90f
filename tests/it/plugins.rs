//! The plugin host with real components built from `plugins/`: a validator runs and its verdict
//! and config come through; a runaway loop is stopped at its deadline, a memory bomb at its
//! limit, a trap is reported, and an import that is not granted is refused at load — while the
//! host keeps serving other calls.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use sigil_wasm::plugin::{Kv, Subject, Verdict};
use sigil_wasm::{PluginEngine, PluginError, PluginPolicy, World};

fn wasm(name: &str) -> Vec<u8> {
    let dir = env!("SIGIL_TEST_PLUGINS");
    std::fs::read(format!("{dir}/{name}.wasm")).unwrap_or_else(|e| panic!("{name}.wasm: {e}"))
}

fn policy(grants: &[&str]) -> PluginPolicy {
    PluginPolicy {
        grants: grants.iter().map(|g| g.to_string()).collect::<BTreeSet<_>>(),
        ..Default::default()
    }
}

fn subject(cn: &str, sans: &[&str], key: Option<(&str, u32)>) -> Subject {
    Subject {
        hook: "certificate-issuance".into(),
        attributes: vec![Kv { key: "CN".into(), value: cn.into() }],
        sans: sans.iter().map(|s| s.to_string()).collect(),
        key_type: key.map(|k| k.0.to_owned()),
        key_bits: key.map(|k| k.1),
        context: "tls-server".into(),
        json: "{}".into(),
    }
}

#[tokio::test]
async fn a_validator_plugin_enforces_naming_and_key_rules_from_its_config() {
    let engine = PluginEngine::new(None).unwrap();
    let mut p = policy(&["log", "config"]);
    p.config = BTreeMap::from([("cn_suffix".to_owned(), ".acme.test".to_owned())]);
    let plugin = engine.load("naming", &wasm("naming_validator"), p).unwrap();
    assert_eq!(plugin.world, World::Validator);
    assert_eq!(plugin.digest.len(), 64);
    let (v, stats) = engine
        .validate(&plugin, &subject("web.acme.test", &["dns:web.acme.test"], Some(("p256", 256))))
        .await
        .unwrap();
    assert!(matches!(v, Verdict::OverrideAllow), "{v:?}");
    assert!(stats.peak_memory > 0);
    let (v, _) = engine
        .validate(
            &plugin,
            &subject("web.evil.test", &["dns:x.acme.test"], Some(("rsa-2048", 2048))),
        )
        .await
        .unwrap();
    match v {
        Verdict::Deny(reasons) => {
            assert_eq!(reasons.len(), 2, "{reasons:?}");
            assert!(
                reasons[0].contains("web.evil.test") && reasons[1].contains("3072"),
                "{reasons:?}"
            );
        }
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[tokio::test]
async fn a_plugin_written_with_the_sdk_loads_and_decides() {
    let engine = PluginEngine::new(None).unwrap();
    let mut p = policy(&["log", "config"]);
    p.config = BTreeMap::from([("forbidden".to_owned(), "test, staging".to_owned())]);
    let plugin = engine.load("sdk", &wasm("sdk_validator"), p).unwrap();
    let (v, _) = engine
        .validate(&plugin, &subject("prod.corp", &["dns:www.prod.corp"], None))
        .await
        .unwrap();
    assert!(matches!(v, Verdict::Allow), "{v:?}");
    let (v, _) = engine
        .validate(&plugin, &subject("prod.corp", &["dns:staging.prod.corp"], None))
        .await
        .unwrap();
    assert!(matches!(v, Verdict::Deny(ref r) if r.len() == 1 && r[0].contains("staging")), "{v:?}");
}

#[tokio::test]
async fn runaway_and_memory_bomb_plugins_are_stopped_while_others_keep_working() {
    let engine = PluginEngine::new(None).unwrap();
    let looping = engine
        .load("loop", &wasm("test_loop"), PluginPolicy { timeout_ms: 50, ..policy(&[]) })
        .unwrap();
    let bomb = engine
        .load("bomb", &wasm("test_alloc"), PluginPolicy { memory_mib: 16, ..policy(&[]) })
        .unwrap();
    let trap = engine.load("trap", &wasm("test_trap"), policy(&[])).unwrap();
    let good =
        engine.load("naming", &wasm("naming_validator"), policy(&["log", "config"])).unwrap();
    let s = subject("a.corp.example", &[], None);
    let started = std::time::Instant::now();
    let (r_loop, r_bomb, r_trap, r_good) = tokio::join!(
        engine.validate(&looping, &s),
        engine.validate(&bomb, &s),
        engine.validate(&trap, &s),
        engine.validate(&good, &s),
    );
    assert!(matches!(r_loop, Err(PluginError::Timeout { ms: 50, .. })), "{r_loop:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the deadline stopped it: {:?}",
        started.elapsed()
    );
    assert!(matches!(r_bomb, Err(PluginError::MemoryLimit { mib: 16, .. })), "{r_bomb:?}");
    assert!(matches!(r_trap, Err(PluginError::Trap { .. })), "{r_trap:?}");
    assert!(matches!(r_good, Ok((Verdict::OverrideAllow, _))), "{r_good:?}");
    // Faults do not poison the plugins: each call has a fresh instance.
    assert!(engine.validate(&good, &s).await.is_ok());
    assert!(matches!(engine.validate(&looping, &s).await, Err(PluginError::Timeout { .. })));
}

#[tokio::test]
async fn an_import_that_is_not_granted_is_refused_at_load_by_name() {
    let engine = PluginEngine::new(None).unwrap();
    let e = engine.load("peek", &wasm("test_forbidden"), policy(&["log"])).unwrap_err();
    match &e {
        PluginError::NotGranted { interface, grant, .. } => {
            assert!(interface.starts_with("sigil:plugin/clock@0.1"), "{interface}");
            assert_eq!(grant, "clock");
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("clock"));
    assert!(engine.load("peek", &wasm("test_forbidden"), policy(&["clock"])).is_ok());
    let e = engine.load("junk", b"not wasm", policy(&[])).unwrap_err();
    assert_eq!(e.code(), "plugin_incompatible");
}

#[tokio::test]
async fn plugin_check_and_run_report_world_limits_and_failures() {
    let dir = env!("SIGIL_TEST_PLUGINS");
    let p = |n: &str| format!("{dir}/{n}.wasm");
    assert_eq!(crate::cli::sigil(&["plugin", "check", &p("naming_validator")]).await, 0);
    let junk = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(junk.path(), b"junk").unwrap();
    assert_eq!(crate::cli::sigil(&["plugin", "check", junk.path().to_str().unwrap()]).await, 1);
    let input = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(input.path(), r#"{"attributes": {"CN": "a.corp.example"}, "sans": ["dns:a.corp.example"], "key_type": "p256", "key_bits": 256}"#).unwrap();
    let i = input.path().to_str().unwrap();
    assert_eq!(
        crate::cli::sigil(&["plugin", "run", &p("naming_validator"), "--input", i]).await,
        0
    );
    assert_eq!(
        crate::cli::sigil(&["plugin", "run", &p("test_loop"), "--input", i, "--timeout-ms", "30"])
            .await,
        3
    );
    assert_eq!(
        crate::cli::sigil(&["plugin", "run", &p("test_alloc"), "--input", i, "--memory-mib", "8"])
            .await,
        4
    );
    assert_eq!(crate::cli::sigil(&["plugin", "run", &p("test_trap"), "--input", i]).await, 1);
}

mod served {
    use reqwest::Method;
    use serde_json::json;
    use sigil_tests::{Options, TestDb, TestServer, json, openssl_csr};

    fn plugin_toml(id: &str, file: &std::path::Path, extra: &str) -> String {
        format!(
            "[plugins.load.{id}]\nfile = \"{}\"\ngrants = [\"log\", \"config\"]\nhooks = [\"certificate-issuance\"]\n{extra}\n",
            file.display()
        )
    }

    fn copy(name: &str, to: &std::path::Path) {
        std::fs::copy(format!("{}/{name}.wasm", env!("SIGIL_TEST_PLUGINS")), to).unwrap();
    }

    #[tokio::test]
    async fn a_validator_plugin_guards_issuance_and_can_replace_the_key_policy() {
        for db in sigil_tests::backends().await {
            let dir = tempfile::tempdir().unwrap();
            let wasm = dir.path().join("naming.wasm");
            copy("naming_validator", &wasm);
            let toml = plugin_toml(
                "naming",
                &wasm,
                "[plugins.load.naming.config]\ncn_suffix = \".corp.example\"\nmin_rsa_bits = \"3072\"",
            );
            let s = TestServer::start_with(&db, Options { toml, ..Default::default() }).await;
            let d = dir.path();
            let (good, _) = openssl_csr(
                d,
                "g",
                "ec:P-256",
                "/CN=web.corp.example",
                Some("DNS:web.corp.example"),
            );
            let (st, c) = s.issue(&good, "tls-server").await;
            assert_eq!(st, 201, "{c}");
            let (evil, _) = openssl_csr(
                d,
                "e",
                "ec:P-256",
                "/CN=web.evil.example",
                Some("DNS:web.corp.example"),
            );
            let (st, b) = s.issue(&evil, "tls-server").await;
            assert_eq!((st, b["code"].as_str()), (400, Some("validation_failed")), "{b}");
            assert!(b["detail"].as_str().unwrap().contains("naming: CN web.evil.example"), "{b}");
            // RSA-2048 is fine for the built-in profile but not for the plugin's key rule.
            let (weak, _) = openssl_csr(
                d,
                "w",
                "rsa:2048",
                "/CN=rsa.corp.example",
                Some("DNS:rsa.corp.example"),
            );
            let (st, b) = s.issue(&weak, "tls-server").await;
            assert_eq!((st, b["code"].as_str()), (400, Some("validation_failed")), "{b}");
            // And the plugin's rule replaces the profile's: a P-384-only profile takes P-256 now.
            let spec = json!({"key_types": ["p384"], "san": {"dns": "required"}, "extended_key_usage": ["serverAuth"]});
            let r = s
                .admin(Method::POST, "/api/v1/profiles")
                .json(&json!({"name": "p384-only", "spec": spec}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            let (st, c) = s.issue(&good, "p384-only").await;
            assert_eq!((st, c["key_type"].as_str()), (201, Some("p256")), "{c}");
            let (st, list) =
                json(s.admin(Method::GET, "/api/v1/plugins").send().await.unwrap()).await;
            assert_eq!(st, 200);
            let p = &list[0];
            assert_eq!(
                (p["id"].as_str(), p["kind"].as_str(), p["status"].as_str()),
                (Some("naming"), Some("validator"), Some("active")),
                "{list}"
            );
            assert!(p["calls"].as_u64().unwrap() >= 4);
            assert_eq!(p["faults"], 0);
            s.stop().await;
            db.cleanup().await;
        }
    }

    #[tokio::test]
    async fn a_broken_new_version_is_refused_and_the_old_one_keeps_serving() {
        let db = TestDb::sqlite();
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("naming.wasm");
        copy("naming_validator", &wasm);
        let toml = plugin_toml("naming", &wasm, "") + "[plugins]\nwatch = false\n";
        let s = TestServer::start_with(&db, Options { toml, ..Default::default() }).await;
        let (_, before) = json(s.admin(Method::GET, "/api/v1/plugins").send().await.unwrap()).await;
        // The new "version" never returns: its canary call times out.
        copy("test_loop", &wasm);
        let (st, after) =
            json(s.admin(Method::POST, "/api/v1/plugins/reload").send().await.unwrap()).await;
        assert_eq!(st, 200, "{after}");
        assert_eq!(after[0]["status"], "failed");
        assert!(after[0]["last_error"].as_str().unwrap().contains("canary"), "{after}");
        assert_eq!(
            after[0]["digest"], before[0]["digest"],
            "the old version is still the one in service"
        );
        let (evil, _) = openssl_csr(
            dir.path(),
            "e",
            "ec:P-256",
            "/CN=web.evil.example",
            Some("DNS:x.corp.example"),
        );
        let (st, b) = s.issue(&evil, "tls-server").await;
        assert_eq!(
            (st, b["code"].as_str()),
            (400, Some("validation_failed")),
            "the old validator still decides: {b}"
        );
        // A good file again: reloaded, active.
        copy("naming_validator", &wasm);
        let (_, again) =
            json(s.admin(Method::POST, "/api/v1/plugins/reload").send().await.unwrap()).await;
        assert_eq!(again[0]["status"], "active", "{again}");
        s.stop().await;
    }

    #[tokio::test]
    async fn changing_the_configuration_file_reloads_plugins_by_itself() {
        let db = TestDb::sqlite();
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("naming.wasm");
        copy("naming_validator", &wasm);
        let s = TestServer::start(&db).await;
        let (_, none) = json(s.admin(Method::GET, "/api/v1/plugins").send().await.unwrap()).await;
        assert_eq!(none, json!([]));
        let cfg = s.data_dir().join("test.toml");
        let mut text = std::fs::read_to_string(&cfg).unwrap();
        text.push_str(&plugin_toml("naming", &wasm, ""));
        std::fs::write(&cfg, text).unwrap();
        let mut loaded = json!([]);
        for _ in 0..50 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            loaded = json(s.admin(Method::GET, "/api/v1/plugins").send().await.unwrap()).await.1;
            if loaded[0]["status"] == "active" {
                break;
            }
        }
        assert_eq!(loaded[0]["id"], "naming", "{loaded}");
        assert_eq!(loaded[0]["status"], "active");
        s.stop().await;
    }

    #[tokio::test]
    async fn a_failing_validator_fails_closed_unless_configured_open() {
        let db = TestDb::sqlite();
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("trap.wasm");
        copy("test_trap", &wasm);
        let toml = plugin_toml("closed", &wasm, "");
        let s = TestServer::start_with(&db, Options { toml, ..Default::default() }).await;
        let (csr, _) = openssl_csr(dir.path(), "c", "ec:P-256", "/CN=x", Some("DNS:x.example"));
        let (st, b) = s.issue(&csr, "tls-server").await;
        assert_eq!((st, b["code"].as_str()), (502, Some("plugin_trap")), "{b}");
        let (_, p) = json(s.admin(Method::GET, "/api/v1/plugins").send().await.unwrap()).await;
        assert_eq!(p[0]["faults"], 1);
        let admin = s.admin_key.clone();
        s.stop().await;
        let toml = plugin_toml("open", &wasm, "fail_open = true");
        let s = TestServer::start_with(&db, Options { toml, ..Default::default() }).await;
        let r = s
            .req(Method::POST, "/api/v1/certificates", &admin)
            .json(&json!({"csr": csr, "profile": "tls-server"}))
            .send()
            .await
            .unwrap();
        let (st, b) = json(r).await;
        assert_eq!(st, 201, "{b}");
        s.stop().await;
    }
}

mod ext {
    use reqwest::Method;
    use serde_json::json;
    use sigil_tests::{Options, TestServer, backends, json, openssl_csr};

    fn toml(file: &std::path::Path, permissions: &str) -> String {
        format!(
            "[plugins.load.expiry]\nfile = \"{}/expiry_report.wasm\"\ngrants = [\"config\", \"sigil-api\"]\npermissions = [{permissions}]\n",
            file.display()
        )
    }

    #[tokio::test]
    async fn an_endpoint_plugin_serves_a_report_from_sigils_own_api() {
        for db in backends().await {
            let dir = std::path::PathBuf::from(env!("SIGIL_TEST_PLUGINS"));
            let s = TestServer::start_with(
                &db,
                Options { toml: toml(&dir, "\"certificates:read\""), ..Default::default() },
            )
            .await;
            let tmp = tempfile::tempdir().unwrap();
            for (i, profile) in ["tls-client", "tls-client", "tls-server"].iter().enumerate() {
                let (csr, _) = openssl_csr(
                    tmp.path(),
                    &format!("c{i}"),
                    "ec:P-256",
                    &format!("/CN=c{i}"),
                    Some(&format!("DNS:c{i}.example")),
                );
                let r = s
                    .admin(Method::POST, "/api/v1/certificates")
                    .json(&json!({"csr": csr, "profile": profile}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
            }
            let (st, report) = json(
                s.admin(Method::GET, "/api/v1/ext/expiry/expiring?days=366").send().await.unwrap(),
            )
            .await;
            assert_eq!(st, 200, "{report}");
            assert_eq!(
                report["count"], 2,
                "tls-client certificates expire within a year: {report}"
            );
            assert_eq!(report["by_profile"]["tls-client"], 2);
            // Sigil authenticates the caller first, and the plugin must exist.
            let r =
                s.client.get(format!("{}/api/v1/ext/expiry/expiring", s.url)).send().await.unwrap();
            assert_eq!(r.status(), 401);
            assert_eq!(
                s.admin(Method::GET, "/api/v1/ext/nope/expiring").send().await.unwrap().status(),
                404
            );
            let k = s
                .create_key(json!({"name": "no-invoke", "permissions": ["certificates:read"]}))
                .await;
            let r = s
                .req(Method::GET, "/api/v1/ext/expiry/expiring", k["key"].as_str().unwrap())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 403);
            s.stop().await;
            db.cleanup().await;
        }
    }

    #[tokio::test]
    async fn a_plugin_only_has_the_permissions_it_was_granted() {
        let db = sigil_tests::TestDb::sqlite();
        let dir = std::path::PathBuf::from(env!("SIGIL_TEST_PLUGINS"));
        let s = TestServer::start_with(&db, Options { toml: toml(&dir, ""), ..Default::default() })
            .await;
        let (st, body) =
            json(s.admin(Method::GET, "/api/v1/ext/expiry/expiring").send().await.unwrap()).await;
        assert_eq!(st, 502, "{body}");
        assert_eq!(body["status"], 403, "Sigil refused the plugin: {body}");
        // The refusal is on the audit trail, with the plugin as the actor.
        let (_, denied) =
            json(s.admin(Method::GET, "/api/v1/audit?action=access.denied").send().await.unwrap())
                .await;
        assert_eq!(denied["items"][0]["actor"]["kind"], "plugin", "{denied}");
        assert_eq!(denied["items"][0]["actor"]["id"], "expiry");
        s.stop().await;
    }
}

#[tokio::test]
async fn a_workflow_plugin_acts_on_lifecycle_events_as_itself() {
    use reqwest::Method;
    use serde_json::json;
    use sigil_tests::{Options, TestServer, json as body, openssl_csr};
    for db in sigil_tests::backends().await {
        let dir = env!("SIGIL_TEST_PLUGINS");
        let toml = format!(
            "[plugins.load.tagger]\nfile = \"{dir}/revocation_tagger.wasm\"\ngrants = [\"config\"]\n\
             hooks = [\"certificate.revoked\"]\npermissions = [\"certificates:update\"]\n\
             [plugins.load.tagger.config]\nnotify = \"pki-ops\"\n"
        );
        let s = TestServer::start_with(&db, Options { toml, ..Default::default() }).await;
        let tmp = tempfile::tempdir().unwrap();
        let (csr, _) = openssl_csr(tmp.path(), "w", "ec:P-256", "/CN=w", None);
        let (_, c) = body(
            s.admin(Method::POST, "/api/v1/certificates")
                .json(&json!({"csr": csr, "profile": "tls-client"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        let id = c["id"].as_str().unwrap().to_owned();
        let r = s
            .admin(Method::POST, &format!("/api/v1/certificates/{id}/revoke"))
            .json(&json!({"reason": "keyCompromise"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let mut meta = json!({});
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            meta = body(
                s.admin(Method::GET, &format!("/api/v1/certificates/{id}")).send().await.unwrap(),
            )
            .await
            .1["metadata"]
                .clone();
            if meta.get("notify").is_some() {
                break;
            }
        }
        assert_eq!(
            meta,
            json!({"notify": "pki-ops", "notify_reason": "certificate.revoked: keyCompromise"})
        );
        let trail = s.trail("certificate", &id).await;
        let last = trail["items"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(
            (last["action"].as_str(), last["actor"]["kind"].as_str(), last["actor"]["id"].as_str()),
            (Some("certificate.update"), Some("plugin"), Some("tagger")),
            "{trail}"
        );
        s.stop().await;
        db.cleanup().await;
    }
}

/// A webhook receiver: `POST /hook` bodies arrive on the returned channel.
fn hook_app() -> (axum::Router, tokio::sync::mpsc::Receiver<String>) {
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(8);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |b: String| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(b).await;
                "ok"
            }
        }),
    );
    (app, rx)
}

/// Issues a certificate and revokes it with `reason`; returns its id.
async fn issue_and_revoke(s: &sigil_tests::TestServer, reason: &str) -> String {
    use reqwest::Method;
    let tmp = tempfile::tempdir().unwrap();
    let (csr, _) = sigil_tests::openssl_csr(tmp.path(), "w", "ec:P-256", "/CN=w", None);
    let (_, c) = sigil_tests::json(
        s.admin(Method::POST, "/api/v1/certificates")
            .json(&serde_json::json!({"csr": csr, "profile": "tls-client"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let id = c["id"].as_str().unwrap().to_owned();
    let r = s
        .admin(Method::POST, &format!("/api/v1/certificates/{id}/revoke"))
        .json(&serde_json::json!({"reason": reason}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    id
}

/// `GET /api/v1/plugins`, polled until the plugin at `index` has a fault (or 2.5 s passed).
async fn plugins_once_faulted(s: &sigil_tests::TestServer, index: usize) -> serde_json::Value {
    let mut status = serde_json::json!([]);
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        status = sigil_tests::json(
            s.admin(reqwest::Method::GET, "/api/v1/plugins").send().await.unwrap(),
        )
        .await
        .1;
        if status[index]["faults"] == 1 {
            break;
        }
    }
    status
}

#[tokio::test]
async fn a_workflow_notifies_a_webhook_only_on_its_allowlist() {
    use sigil_tests::{Options, TestServer};
    // A webhook receiver on loopback.
    let (app, mut rx) = hook_app();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let db = sigil_tests::TestDb::sqlite();
    let dir = env!("SIGIL_TEST_PLUGINS");
    let plugin = |id: &str, allowed: &str| {
        format!(
            "[plugins.load.{id}]\nfile = \"{dir}/revocation_notifier.wasm\"\ngrants = [\"config\", \"outbound-http\"]\n\
             hooks = [\"certificate.revoked\"]\nallowed_hosts = [\"{allowed}\"]\ntimeout_ms = 2000\n\
             [plugins.load.{id}.config]\nurl = \"{hook}\"\n"
        )
    };
    let toml = plugin("notify", &origin) + &plugin("blocked", "http://127.0.0.2:9");
    let s = TestServer::start_with(&db, Options { toml, ..Default::default() }).await;
    let id = issue_and_revoke(&s, "superseded").await;
    let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
    let got: serde_json::Value = serde_json::from_str(&got).unwrap();
    assert_eq!(
        (got["event"].as_str(), got["object_id"].as_str()),
        (Some("certificate.revoked"), Some(id.as_str()))
    );
    assert_eq!(got["details"]["reason"], "superseded");
    // The plugin whose allowlist does not include the webhook could not reach it.
    let status = plugins_once_faulted(&s, 0).await;
    let blocked = &status[0];
    assert_eq!(blocked["id"], "blocked");
    assert_eq!(blocked["faults"], 1, "{status}");
    assert!(blocked["last_error"].as_str().unwrap().contains("allowed_hosts"), "{status}");
    assert!(rx.try_recv().is_err(), "only one notification arrived");
    s.stop().await;
}

/// An HTTPS webhook on loopback with a certificate from a throwaway CA; returns the CA (PEM),
/// the hook URL and the channel the received bodies arrive on.
async fn https_hook() -> (String, String, tokio::sync::mpsc::Receiver<String>) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.subject_alt_names = vec![SanType::IpAddress("127.0.0.1".parse().unwrap())];
    let leaf = leaf.signed_by(&key, &issuer).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    let (app, rx) = hook_app();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("https://{}/hook", listener.local_addr().unwrap());
    let tls = axum_server::tls_rustls::RustlsConfig::from_config(std::sync::Arc::new(server));
    tokio::spawn(async move {
        axum_server::from_tcp_rustls(listener, tls).unwrap().serve(app.into_make_service()).await
    });
    (ca_cert.pem(), url, rx)
}

#[tokio::test]
async fn https_webhooks_are_reached_only_through_the_plugins_ca_file() {
    use sigil_tests::{Options, TestServer};
    let (ca_pem, hook, mut rx) = https_hook().await;
    let origin = hook.trim_end_matches("/hook").to_owned();
    let tmp = tempfile::tempdir().unwrap();
    let ca_file = tmp.path().join("hooks-ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let dir = env!("SIGIL_TEST_PLUGINS");
    let plugin = |id: &str, extra: &str| {
        format!(
            "[plugins.load.{id}]\nfile = \"{dir}/revocation_notifier.wasm\"\ngrants = [\"config\", \"outbound-http\"]\n\
             hooks = [\"certificate.revoked\"]\nallowed_hosts = [\"{origin}\"]\ntimeout_ms = 2000\n{extra}\
             [plugins.load.{id}.config]\nurl = \"{hook}\"\n"
        )
    };
    // `trusting` lists the webhook's CA; `untrusting` is allowed the origin but trusts no CA.
    let toml = plugin("trusting", &format!("ca_file = \"{}\"\n", ca_file.display()))
        + &plugin("untrusting", "");
    let db = sigil_tests::TestDb::sqlite();
    let s = TestServer::start_with(&db, Options { toml, ..Default::default() }).await;
    let id = issue_and_revoke(&s, "keyCompromise").await;
    let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
    let got: serde_json::Value = serde_json::from_str(&got).unwrap();
    assert_eq!(got["object_id"].as_str(), Some(id.as_str()));
    let status = plugins_once_faulted(&s, 1).await;
    assert_eq!(
        (status[0]["id"].as_str(), status[0]["faults"].as_u64()),
        (Some("trusting"), Some(0))
    );
    let untrusting = &status[1];
    assert_eq!(untrusting["id"], "untrusting");
    assert_eq!(untrusting["faults"], 1, "{status}");
    assert!(untrusting["last_error"].as_str().unwrap().contains("UnknownIssuer"), "{status}");
    assert!(rx.try_recv().is_err(), "only the trusting plugin delivered");
    s.stop().await;
}

#[test]
fn a_ca_file_that_holds_no_certificate_refuses_the_plugin_at_load() {
    let engine = PluginEngine::new(None).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate\n").unwrap();
    let err = engine
        .load(
            "notify",
            &wasm("revocation_notifier"),
            PluginPolicy { ca_file: Some(bad), ..policy(&["config", "outbound-http"]) },
        )
        .err()
        .unwrap();
    assert!(err.to_string().contains("ca_file"), "{err}");
    let missing = engine
        .load(
            "notify",
            &wasm("revocation_notifier"),
            PluginPolicy {
                ca_file: Some(tmp.path().join("absent.pem")),
                ..policy(&["config", "outbound-http"])
            },
        )
        .err()
        .unwrap();
    assert!(missing.to_string().contains("absent.pem"), "{missing}");
}

#[tokio::test]
async fn plugin_run_calls_every_world_from_json() {
    use serde_json::json;
    let engine = PluginEngine::new(None).unwrap();
    let mut wf = policy(&["config"]);
    wf.config = BTreeMap::from([("offices".to_owned(), "o1".to_owned())]);
    let auto = engine.load("auto", &wasm("auto_approver"), wf).unwrap();
    let event = json!({"kind": "request.created", "object_type": "request", "object_id": "r1",
                       "json": {"office_id": "o1"}});
    let (out, stats) = engine.run_json(&auto, &event).await.unwrap();
    assert_eq!(out["actions"][0]["path"], "/api/v1/requests/r1/approve", "{out}");
    assert!(stats.peak_memory > 0);
    let (out, _) = engine
        .run_json(&auto, &json!({"kind": "request.created", "json": {"office_id": "o2"}}))
        .await
        .unwrap();
    assert_eq!(out["actions"], json!([]));
    // A CA connector (the test double): info, and a call it does not have.
    let (ca_pem, _) = crate::connector::rcgen_ca("Run CA");
    let mut cp = policy(&["config"]);
    cp.config = BTreeMap::from([("ca_pem".to_owned(), ca_pem.clone())]);
    let conn = engine.load("double", &wasm("test_connector"), cp).unwrap();
    let (info, _) = engine.run_json(&conn, &json!({"call": "info"})).await.unwrap();
    let der = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        info["ca_certificate"].as_str().unwrap(),
    )
    .unwrap();
    assert!(
        ca_pem.contains(
            &base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der)[..40]
        )
    );
    let e = engine.run_json(&conn, &json!({"call": "frobnicate"})).await.unwrap_err();
    assert!(
        matches!(e, PluginError::Rejected { .. }) && e.to_string().contains("frobnicate"),
        "{e}"
    );
    // An endpoint answers its request (without Sigil's API behind it here).
    let ep =
        engine.load("expiry", &wasm("expiry_report"), policy(&["config", "sigil-api"])).unwrap();
    let (out, _) =
        engine.run_json(&ep, &json!({"method": "GET", "path": "/nowhere"})).await.unwrap();
    assert!(out["status"].as_u64().unwrap() >= 400, "{out}");
    // And through the CLI, with config values.
    let input = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(input.path(), event.to_string()).unwrap();
    let dir = env!("SIGIL_TEST_PLUGINS");
    let code = crate::cli::sigil(&[
        "plugin",
        "run",
        &format!("{dir}/auto_approver.wasm"),
        "--input",
        input.path().to_str().unwrap(),
        "--set",
        "offices=o1",
    ])
    .await;
    assert_eq!(code, 0);
}

#[tokio::test]
async fn workflows_triggered_by_workflow_actions_stop_at_the_depth_limit() {
    use reqwest::Method;
    use serde_json::json;
    use sigil_tests::{Options, TestServer};
    for db in sigil_tests::backends().await {
        let dir = env!("SIGIL_TEST_PLUGINS");
        let toml = format!(
            "[plugins.load.pingpong]\nfile = \"{dir}/test_pingpong.wasm\"\n\
             hooks = [\"device.active\", \"device.suspended\"]\npermissions = [\"*\"]\n"
        );
        let s = TestServer::start_with(&db, Options { toml, ..Default::default() }).await;
        let org = s.create("/api/v1/organizations", json!({"name": "Acme"})).await;
        let div = s
            .create("/api/v1/divisions", json!({"name": "HQ", "organization_id": org["id"]}))
            .await;
        let office = s
            .create("/api/v1/offices", json!({"division_id": div["id"], "code": "A", "name": "A"}))
            .await;
        let dev = s
            .create(
                "/api/v1/devices",
                json!({"kind": "usb_token", "serial": "PP-1", "office_id": office["id"]}),
            )
            .await;
        let id = dev["id"].as_str().unwrap().to_owned();
        let r = s.admin(Method::POST, &format!("/api/v1/devices/{id}/activate")).send().await;
        assert_eq!(r.unwrap().status(), 200);
        // The plugin answers its own changes: suspend, activate, suspend, … until the host stops
        // announcing changes made three workflow actions deep.
        let by_plugin = || async {
            let trail = s.trail("device", &id).await;
            trail["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["actor"]["kind"] == "plugin")
                .map(|e| e["action"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        let mut seen = vec![];
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            seen = by_plugin().await;
            if seen.len() >= 3 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(by_plugin().await, seen, "the chain went on");
        assert_eq!(seen.len(), 3, "{seen:?}");
        let (_, d) = sigil_tests::json(
            s.admin(Method::GET, &format!("/api/v1/devices/{id}")).send().await.unwrap(),
        )
        .await;
        assert_eq!(d["status"], "suspended", "{d}");
        s.stop().await;
        db.cleanup().await;
    }
}
