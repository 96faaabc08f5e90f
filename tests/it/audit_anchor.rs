//! Attacks on the audit trail by someone who can write to the database (issue 14, item 1): a
//! rewritten and re-hashed tail with its checkpoints dropped, a truncated tail, checkpoints
//! re-signed with a key of the attacker's, and deleted checkpoints. Each is caught online and
//! offline, and a restarted server never signs the forged head.

use reqwest::Method;
use serde_json::{Value, json};
use sigil_core::audit::AuditCrypto as _;
use sigil_core::audit::{AuditEvent, Checkpoint};
use sigil_core::ports::AuditLog as _;
use sigil_core::ports::{AuditFilter, AuditKeyRecord};
use sigil_store::SqlStore;
use sigil_tests::{Options, TestDb, TestServer, backends, json};

/// A server whose data directory outlives it, so that it can be restarted.
async fn start(db: &TestDb, dir: &std::path::Path) -> TestServer {
    TestServer::start_with(db, Options { data_dir: Some(dir.to_path_buf()), ..Default::default() })
        .await
}

/// Five audited changes, then a checkpoint at the head (anchored in the data directory).
async fn anchored_history(s: &TestServer) -> Checkpoint {
    for i in 0..5 {
        s.create_key(json!({"name": format!("h{i}"), "permissions": ["audit:read"]})).await;
    }
    s.checkpoint().await.unwrap().expect("a new checkpoint")
}

async fn verify(s: &TestServer) -> Value {
    let (st, r) = json(s.admin(Method::GET, "/api/v1/audit/verify").send().await.unwrap()).await;
    assert_eq!(st, 200, "{r}");
    r
}

fn kind(r: &Value) -> Option<&str> {
    r["problem"]["kind"].as_str()
}

async fn events(store: &SqlStore) -> Vec<AuditEvent> {
    store.audit_events(&AuditFilter::default(), 10_000).await.unwrap()
}

/// Changes the object of event `at`, re-hashes it and every later event so that the chain
/// links again, and moves the head: what a careful database writer does.
async fn rewrite_chain(store: &SqlStore, at: i64) {
    let all = events(store).await;
    let mut prev = all[(at - 2) as usize].hash.clone();
    for mut e in all.into_iter().filter(|e| e.seq >= at) {
        if e.seq == at {
            e.object_id = "rewritten".into();
        }
        e.prev_hash = prev;
        e.hash = e.compute_hash();
        store
            .execute_raw(&format!(
                "UPDATE audit_events SET object_id = '{}', prev_hash = '{}', hash = '{}' \
                 WHERE seq = {}",
                e.object_id, e.prev_hash, e.hash, e.seq
            ))
            .await
            .unwrap();
        prev = e.hash;
    }
    store.execute_raw(&format!("UPDATE audit_head SET hash = '{prev}'")).await.unwrap();
}

/// `sigil audit verify` on the database, as the node whose data directory is `dir`.
async fn offline(dir: &std::path::Path, url: &str, extra: &[&str]) -> i32 {
    let mut args = vec!["--data-dir", dir.to_str().unwrap(), "audit", "verify"];
    args.extend_from_slice(&["--database-url", url]);
    args.extend_from_slice(extra);
    crate::cli::sigil(&args).await
}

#[tokio::test]
async fn a_rewritten_chain_with_its_checkpoints_dropped_is_caught_and_never_signed() {
    for db in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let s = start(&db, dir.path()).await;
        let anchored = anchored_history(&s).await;
        // The checkpoint is in the anchor log next to the audit key, whose public half is
        // published for other nodes and auditors.
        let log = std::fs::read_to_string(dir.path().join("audit-anchors.log")).unwrap();
        let last: Checkpoint = serde_json::from_str(log.lines().last().unwrap()).unwrap();
        assert_eq!(last, anchored);
        assert!(dir.path().join("audit-key.pub.pem").exists());
        assert_eq!(verify(&s).await["valid"], true);

        let store = s.db().await;
        rewrite_chain(&store, 3).await;
        store.execute_raw("DELETE FROM audit_checkpoints").await.unwrap();
        let r = verify(&s).await;
        assert_eq!(
            (r["valid"].as_bool(), kind(&r)),
            (Some(false), Some("checkpoint_missing")),
            "{r}"
        );
        // The server refuses to sign the forged head, now and after a restart.
        let e = s.checkpoint().await.unwrap_err();
        assert!(e.to_string().contains("fails verification"), "{e}");
        s.stop().await;
        let s = start(&db, dir.path()).await;
        assert!(s.checkpoint().await.is_err());
        assert!(store.audit_checkpoints(1).await.unwrap().is_empty());
        assert_eq!(kind(&verify(&s).await), Some("checkpoint_missing"));
        let url = s.db_url.clone();
        s.stop().await;
        assert_eq!(offline(dir.path(), &url, &[]).await, 1);
        store.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_truncated_tail_is_caught_though_the_newest_checkpoints_and_the_head_were_moved() {
    for db in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let s = start(&db, dir.path()).await;
        let anchored = anchored_history(&s).await;
        let keep = anchored.seq - 2;
        let store = s.db().await;
        let kept_hash = events(&store).await[(keep - 1) as usize].hash.clone();
        for sql in [
            format!("DELETE FROM audit_events WHERE seq > {keep}"),
            format!("DELETE FROM audit_checkpoints WHERE seq > {keep}"),
            format!("UPDATE audit_head SET seq = {keep}, hash = '{kept_hash}'"),
        ] {
            store.execute_raw(&sql).await.unwrap();
        }
        let r = verify(&s).await;
        assert_eq!(
            (r["valid"].as_bool(), kind(&r)),
            (Some(false), Some("checkpoint_missing")),
            "{r}"
        );
        assert!(s.checkpoint().await.is_err());
        let url = s.db_url.clone();
        s.stop().await;
        assert_eq!(offline(dir.path(), &url, &[]).await, 1);
        // A verifier without this node's anchor log is left with the freshness bound: no
        // surviving checkpoint covers events older than it.
        let no_anchor = dir.path().join("elsewhere.log");
        let no_anchor = no_anchor.to_str().unwrap();
        assert_eq!(
            offline(dir.path(), &url, &["--anchor-file", no_anchor, "--max-checkpoint-age", "0"])
                .await,
            0
        );
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        assert_eq!(
            offline(dir.path(), &url, &["--anchor-file", no_anchor, "--max-checkpoint-age", "1"])
                .await,
            1
        );
        store.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn checkpoints_re_signed_with_a_key_that_is_not_pinned_are_refused() {
    for db in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let s = start(&db, dir.path()).await;
        anchored_history(&s).await;
        let store = s.db().await;
        rewrite_chain(&store, 3).await;
        // The attacker signs a fresh, well-linked checkpoint chain with a key of their own and
        // registers that key in the database.
        let keydir = tempfile::tempdir().unwrap();
        let evil =
            sigil_pki::audit_key::AuditKey::load_or_create(&keydir.path().join("k.pem")).unwrap();
        store
            .register_audit_key(&AuditKeyRecord {
                key_id: evil.key_id().into(),
                public_key_pem: evil.public_key_pem().into(),
                created_at_us: 0,
            })
            .await
            .unwrap();
        store.execute_raw("DELETE FROM audit_checkpoints").await.unwrap();
        let all = events(&store).await;
        let mut prev: Option<Checkpoint> = None;
        for e in [&all[1], all.last().unwrap()] {
            let now = sigil_core::audit::unix_micros(time::OffsetDateTime::now_utc());
            let mut c = Checkpoint::next(prev.as_ref(), e.seq, &e.hash, now, evil.key_id());
            c.signature = evil.sign(&c.message()).unwrap();
            assert!(store.insert_audit_checkpoint(&c).await.unwrap());
            prev = Some(c);
        }
        let r = verify(&s).await;
        assert_eq!(
            (r["valid"].as_bool(), kind(&r)),
            (Some(false), Some("checkpoint_untrusted")),
            "{r}"
        );
        let url = s.db_url.clone();
        s.stop().await;
        assert_eq!(offline(dir.path(), &url, &[]).await, 1);
        // Even without the anchor log and with no freshness bound.
        let no_anchor = dir.path().join("elsewhere.log");
        let args = ["--anchor-file", no_anchor.to_str().unwrap(), "--max-checkpoint-age", "0"];
        assert_eq!(offline(dir.path(), &url, &args).await, 1);
        store.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_deleted_checkpoint_is_caught() {
    for db in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let s = start(&db, dir.path()).await;
        let first = anchored_history(&s).await;
        s.create_key(json!({"name": "more", "permissions": ["audit:read"]})).await;
        let newest = s.checkpoint().await.unwrap().unwrap();
        assert_eq!(newest.counter, first.counter + 1);
        assert_eq!(newest.prev, first.digest());
        let store = s.db().await;
        // The newest one (the anchored one) ...
        store
            .execute_raw(&format!(
                "DELETE FROM audit_checkpoints WHERE counter = {}",
                newest.counter
            ))
            .await
            .unwrap();
        assert_eq!(kind(&verify(&s).await), Some("checkpoint_missing"));
        store.insert_audit_checkpoint(&newest).await.unwrap();
        assert_eq!(verify(&s).await["valid"], true);
        // ... or one in the middle.
        store
            .execute_raw(&format!(
                "DELETE FROM audit_checkpoints WHERE counter = {}",
                first.counter
            ))
            .await
            .unwrap();
        assert_eq!(kind(&verify(&s).await), Some("checkpoint_missing"));
        s.stop().await;
        store.close().await;
        db.cleanup().await;
    }
}

/// A start verifies the events after the newest checkpoint before serving; under load the
/// checkpoints follow the event count, not only the clock, so that tail stays short.
#[tokio::test]
async fn a_checkpoint_is_signed_once_enough_events_wait_without_waiting_for_the_interval() {
    for db in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let s = TestServer::start_with(
            &db,
            Options {
                data_dir: Some(dir.path().to_path_buf()),
                toml: "[audit]\ncheckpoint_interval_secs = 1800\ncheckpoint_every_events = 5\n"
                    .into(),
            },
        )
        .await;
        let store = db.store().await;
        let before = store.audit_checkpoints(1).await.unwrap().len();
        for i in 0..6 {
            s.create_key(json!({"name": format!("c{i}"), "permissions": ["audit:read"]})).await;
        }
        let head = store.audit_head().await.unwrap().seq;
        let mut covered = false;
        for _ in 0..50 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let cps = store.audit_checkpoints(1).await.unwrap();
            if cps.len() > before && cps.last().is_some_and(|c| c.seq >= head) {
                covered = true;
                break;
            }
        }
        assert!(covered, "no checkpoint covered the 6 new events within 5 s (interval 30 min)");
        s.stop().await;
        store.close().await;
        db.cleanup().await;
    }
}
