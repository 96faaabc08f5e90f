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
