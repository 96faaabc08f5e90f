//! The audit trail over HTTP: every change is recorded with its actor; verification finds an
//! edited, a deleted, an inserted and a reordered event; exports are signed; a failing audit
//! write rolls the change back.

use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};
use sigil_core::access::authz::Principal;
use sigil_core::audit::NewAuditEvent;
use sigil_core::ports::AuditFilter;
use sigil_core::ports::AuditLog as _;
use sigil_tests::{TestServer, backends, json};

/// Makes five audited changes (admin bootstrap + four creates).
async fn some_history(s: &TestServer) {
    for i in 0..4 {
        s.create_key(json!({"name": format!("h{i}"), "permissions": ["audit:read"]})).await;
    }
}

async fn verify(s: &TestServer) -> Value {
    let (st, r) = json(s.admin(Method::GET, "/api/v1/audit/verify").send().await.unwrap()).await;
    assert_eq!(st, 200, "{r}");
    r
}

#[tokio::test]
async fn every_change_is_audited_with_its_actor_and_queryable() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let k = s.create_key(json!({"name": "watched", "permissions": ["audit:read"]})).await;
        let id = k["id"].as_str().unwrap();
        s.admin(Method::DELETE, &format!("/api/v1/api-keys/{id}")).send().await.unwrap();
        let trail = s.trail("api_key", id).await;
        let actions: Vec<_> = trail["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        assert_eq!(actions, ["api_key.create", "api_key.revoke"]);
        let ev = &trail["items"][0];
        assert_eq!(ev["actor"]["kind"], "api_key");
        assert_eq!(ev["client_ip"], "127.0.0.1");
        assert!(ev["request_id"].is_string());
        assert!(!trail.to_string().contains(k["key"].as_str().unwrap()), "no secret in the trail");
        // Filters: action prefix, actor, time range.
        let (_, q) =
            json(s.admin(Method::GET, "/api/v1/audit?action=api_key.rev*").send().await.unwrap())
                .await;
        assert_eq!(q["items"].as_array().unwrap().len(), 1);
        let (_, q) = json(
            s.admin(Method::GET, "/api/v1/audit?actor=system&action=api_key.*")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            q["items"].as_array().unwrap().len(),
            1,
            "the bootstrap key was made by the system"
        );
        let (_, q) = json(
            s.admin(Method::GET, "/api/v1/audit?from=2999-01-01T00:00:00Z").send().await.unwrap(),
        )
        .await;
        assert!(q["items"].as_array().unwrap().is_empty());
        let (st, q) =
            json(s.admin(Method::GET, "/api/v1/audit?from=yesterday").send().await.unwrap()).await;
        assert_eq!((st, q["code"].as_str()), (400, Some("invalid_query")));
        // Paging.
        let (_, p1) =
            json(s.admin(Method::GET, "/api/v1/audit?limit=2").send().await.unwrap()).await;
        let c = p1["next_cursor"].as_str().unwrap();
        let (_, p2) = json(
            s.admin(Method::GET, &format!("/api/v1/audit?limit=2&cursor={c}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(p2["items"][0]["seq"], p1["items"][1]["seq"].as_i64().unwrap() + 1);
        assert_eq!(verify(&s).await["valid"], true);
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn verification_names_an_edited_event() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        some_history(&s).await;
        s.db()
            .await
            .execute_raw("UPDATE audit_events SET object_id = 'forged' WHERE seq = 3")
            .await
            .unwrap();
        let r = verify(&s).await;
        assert_eq!(r["valid"], false);
        assert_eq!(
            (r["problem"]["seq"].as_i64(), r["problem"]["kind"].as_str()),
            (Some(3), Some("edited")),
            "{r}"
        );
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn verification_names_a_deleted_event() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        some_history(&s).await;
        s.db().await.execute_raw("DELETE FROM audit_events WHERE seq = 2").await.unwrap();
        let r = verify(&s).await;
        assert_eq!(
            (r["problem"]["seq"].as_i64(), r["problem"]["kind"].as_str()),
            (Some(2), Some("deleted")),
            "{r}"
        );
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn verification_names_a_truncated_tail() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        some_history(&s).await;
        let last = verify(&s).await["last_seq"].as_i64().unwrap();
        s.db()
            .await
            .execute_raw(&format!("DELETE FROM audit_events WHERE seq = {last}"))
            .await
            .unwrap();
        let r = verify(&s).await;
        assert_eq!(
            (r["problem"]["seq"].as_i64(), r["problem"]["kind"].as_str()),
            (Some(last), Some("truncated")),
            "{r}"
        );
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn verification_names_an_inserted_event() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        some_history(&s).await;
        let store = s.db().await;
        // A forger who knows the format: shift events 3.. up by one and put a well-formed event
        // chained to event 2 in the gap.
        let events = store.audit_events(&AuditFilter::default(), 100).await.unwrap();
        let forged = NewAuditEvent::new(
            &Principal::system(),
            sigil_core::audit::AuditAction::ApiKeyCreate,
            "api_key",
            "ghost",
        )
        .seal(3, time::OffsetDateTime::now_utc(), &events[1].hash);
        store.execute_raw("UPDATE audit_events SET seq = seq + 1000 WHERE seq >= 3").await.unwrap();
        store
            .execute_raw("UPDATE audit_events SET seq = seq - 999 WHERE seq >= 1000")
            .await
            .unwrap();
        store
            .execute_raw(&format!(
                "INSERT INTO audit_events (seq, id, occurred_at, actor_kind, actor_id, actor_name, action, object_type, object_id, outcome, details, prev_hash, hash) \
                 VALUES (3, '{}', {}, 'system', 'system', 'sigil server', 'api_key.create', 'api_key', 'ghost', 'success', '{{}}', '{}', '{}')",
                forged.id, forged.occurred_at_us, forged.prev_hash, forged.hash
            ))
            .await
            .unwrap();
        store.execute_raw("UPDATE audit_head SET seq = seq + 1").await.unwrap();
        let r = verify(&s).await;
        assert_eq!(
            (r["problem"]["seq"].as_i64(), r["problem"]["kind"].as_str()),
            (Some(3), Some("inserted")),
            "{r}"
        );
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn verification_names_reordered_events() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        some_history(&s).await;
        let store = s.db().await;
        store.execute_raw("UPDATE audit_events SET seq = -2 WHERE seq = 2").await.unwrap();
        store.execute_raw("UPDATE audit_events SET seq = 2 WHERE seq = 3").await.unwrap();
        store.execute_raw("UPDATE audit_events SET seq = 3 WHERE seq = -2").await.unwrap();
        let r = verify(&s).await;
        assert_eq!(
            (r["problem"]["seq"].as_i64(), r["problem"]["kind"].as_str()),
            (Some(2), Some("reordered")),
            "{r}"
        );
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_failing_audit_write_rolls_the_change_back() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        s.refuse_inserts("audit_events", "audit store is full").await;
        let r = s
            .admin(Method::POST, "/api/v1/api-keys")
            .json(&json!({"name": "unaudited", "permissions": ["audit:read"]}))
            .send()
            .await
            .unwrap();
        let (st, b) = json(r).await;
        assert_eq!((st, b["code"].as_str()), (503, Some("storage_unavailable")), "{b}");
        assert!(!b.to_string().contains("audit store is full"), "internals stay in the log");
        let (_, list) =
            json(s.admin(Method::GET, "/api/v1/api-keys?name=unaudited").send().await.unwrap())
                .await;
        assert!(list["items"].as_array().unwrap().is_empty(), "the key was not kept: {list}");
        s.stop().await;
        db.cleanup().await;
    }
}

/// `sigil --data-dir DATA audit verify --file FILE --signature SIG`; its exit code.
async fn verify_export(
    data: &std::path::Path,
    file: &std::path::Path,
    sig: &std::path::Path,
) -> i32 {
    let s = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    crate::cli::sigil(&[
        "--data-dir",
        &s(data),
        "audit",
        "verify",
        "--file",
        &s(file),
        "--signature",
        &s(sig),
    ])
    .await
}

#[tokio::test]
async fn exports_come_in_three_formats_with_a_verifiable_signature() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        some_history(&s).await;
        let count = verify(&s).await["last_seq"].as_i64().unwrap().to_string();
        for format in ["json", "csv", "xml"] {
            let r = s
                .admin(Method::GET, &format!("/api/v1/audit/export?format={format}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let sig = r.headers()["sigil-signature"].to_str().unwrap().to_owned();
            assert_eq!(r.headers()["sigil-event-count"].to_str().unwrap(), count);
            let body = r.bytes().await.unwrap();
            let dir = tempfile::tempdir().unwrap();
            let (file, sigf) = (dir.path().join(format!("e.{format}")), dir.path().join("e.sig"));
            std::fs::write(&file, &body).unwrap();
            std::fs::write(&sigf, &sig).unwrap();
            let code = verify_export(s.data_dir(), &file, &sigf).await;
            assert_eq!(code, 0, "{format}");
            // A made-up export signed with a key of the forger's own does not verify: the key
            // in the signature file is never trusted, only the pinned one.
            let forger =
                sigil_pki::audit_key::AuditKey::load_or_create(&dir.path().join("forger.pem"))
                    .unwrap();
            let forged = sigil_core::audit::export::ExportSignature::sign(
                &body,
                time::OffsetDateTime::now_utc(),
                &forger,
            )
            .unwrap();
            let forged_sig = dir.path().join("forged.sig");
            std::fs::write(&forged_sig, serde_json::to_vec(&forged).unwrap()).unwrap();
            let code = verify_export(s.data_dir(), &file, &forged_sig).await;
            assert_eq!(code, 1, "{format}: a forged signature verified");
            // With no pinned key at all, verification refuses to run (exit 2).
            let empty = tempfile::tempdir().unwrap();
            let code = verify_export(empty.path(), &file, &sigf).await;
            assert_eq!(code, 2, "{format}");
            assert!(!empty.path().join("audit-key.pem").exists(), "verification creates no key");
            // One byte changed and the signature no longer holds.
            let mut bad = body.to_vec();
            let i = bad.len() / 2;
            bad[i] = bad[i].wrapping_add(1);
            std::fs::write(&file, &bad).unwrap();
            let code = verify_export(s.data_dir(), &file, &sigf).await;
            assert_eq!(code, 1, "{format}");
            let decoded = base64::engine::general_purpose::STANDARD.decode(&sig).unwrap();
            let sig: Value = serde_json::from_slice(&decoded).unwrap();
            assert_eq!(sig["algorithm"], "ecdsa-p256-sha256");
        }
        let (st, b) =
            json(s.admin(Method::GET, "/api/v1/audit/export?format=pdf").send().await.unwrap())
                .await;
        assert_eq!((st, b["code"].as_str()), (400, Some("invalid_format")));
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn signed_checkpoints_catch_a_rewritten_tail() {
    for db in backends().await {
        // The data directory (audit key, anchor log) outlives the server.
        let dir = tempfile::tempdir().unwrap();
        let opts =
            sigil_tests::Options { data_dir: Some(dir.path().to_path_buf()), ..Default::default() };
        let s = TestServer::start_with(&db, opts).await;
        some_history(&s).await;
        let last = verify(&s).await["last_seq"].as_i64().unwrap();
        let data_dir = s.data_dir().to_path_buf();
        let url = s.db_url.clone();
        // Shutdown signs a checkpoint at the head.
        s.stop().await;
        let store = {
            let mut o = sigil_store::testing::TestDb::sqlite().options();
            o.url = url.clone();
            sigil_store::SqlStore::connect(&o).await.unwrap()
        };
        assert_eq!(store.audit_checkpoints(1).await.unwrap().last().unwrap().seq, last);
        // Rewrite the last event and re-hash it consistently, head included: only the checkpoint
        // notices.
        let mut e = store
            .audit_events(&AuditFilter { after_seq: Some(last - 1), ..Default::default() }, 1)
            .await
            .unwrap()
            .remove(0);
        e.object_id = "rewritten".into();
        e.hash = e.compute_hash();
        store
            .execute_raw(&format!(
                "UPDATE audit_events SET object_id = 'rewritten', hash = '{}' WHERE seq = {last}",
                e.hash
            ))
            .await
            .unwrap();
        store.execute_raw(&format!("UPDATE audit_head SET hash = '{}'", e.hash)).await.unwrap();
        let code = crate::cli::sigil(&[
            "--data-dir",
            data_dir.to_str().unwrap(),
            "audit",
            "verify",
            "--database-url",
            &url,
        ])
        .await;
        assert_eq!(code, 1);
        let pinned =
            sigil_pki::audit_key::AuditKey::load_or_create(&data_dir.join("audit-key.pem"))
                .unwrap()
                .keyring();
        let report =
            sigil_core::audit::trail::verify_store(&store, &pinned, None, None).await.unwrap();
        assert_eq!(
            report.problem.unwrap().kind,
            sigil_core::audit::ProblemKind::CheckpointMismatch
        );
        store.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn refused_requests_of_known_callers_are_audited_as_failures() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let k = s.create_key(json!({"name": "nosy", "permissions": ["api_keys:read"]})).await;
        let r = s
            .req(Method::GET, "/api/v1/audit/verify", k["key"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        let (_, q) = json(
            s.admin(Method::GET, "/api/v1/audit?action=access.denied&outcome=failure")
                .send()
                .await
                .unwrap(),
        )
        .await;
        let ev = &q["items"][0];
        assert_eq!(ev["object_id"], "GET /api/v1/audit/verify");
        assert_eq!(ev["actor"]["id"], k["id"]);
        assert_eq!(ev["details"]["code"], "permission_denied");
        assert_eq!(verify(&s).await["valid"], true);
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_client_request_id_that_is_not_short_and_plain_is_replaced_in_the_trail() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let mut ids = Vec::new();
        for (i, rid) in
            ["=HYPERLINK(\"http://evil\")", &"a".repeat(500), "plain-id_1.2"].iter().enumerate()
        {
            let r = s
                .admin(Method::POST, "/api/v1/api-keys")
                .header("x-request-id", *rid)
                .json(&serde_json::json!({"name": format!("k{i}"), "permissions": ["audit:read"]}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            let (_, k) = json(r).await;
            let trail = s.trail("api_key", k["id"].as_str().unwrap()).await;
            ids.push(trail["items"][0]["request_id"].as_str().unwrap_or("").to_owned());
        }
        assert!(!ids[0].starts_with('=') && !ids[0].is_empty(), "{ids:?}");
        assert!(ids[1].len() <= 64, "{ids:?}");
        assert_eq!(ids[2], "plain-id_1.2");
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn repeated_refusals_are_counted_into_one_event_per_minute() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let k = s.create_key(json!({"name": "nosy", "permissions": ["api_keys:read"]})).await;
        let key = k["key"].as_str().unwrap();
        for _ in 0..40 {
            let r = s.req(Method::GET, "/api/v1/audit/verify", key).send().await.unwrap();
            assert_eq!(r.status(), 403);
        }
        // Anonymous logins with made-up names from one address.
        for i in 0..12 {
            let r = s
                .client
                .post(format!("{}/csc/v2/auth/login", s.url))
                .basic_auth(format!("made-up-{i}"), Some("x"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 400);
        }
        let store = s.db().await;
        let count = |action: &'static str| {
            let store = &store;
            async move {
                let f = AuditFilter { action: Some(action.into()), ..Default::default() };
                store.audit_events(&f, 1000).await.unwrap()
            }
        };
        // A minute may have turned during the loop: then two events of each kind.
        assert!(count("access.denied").await.len() <= 2);
        assert!(count("csc.login").await.len() <= 2);
        // At shutdown the counts are written.
        s.stop().await;
        let total = |evs: Vec<sigil_core::audit::AuditEvent>| -> u64 {
            evs.iter()
                .map(|e| {
                    serde_json::from_str::<Value>(&e.details).unwrap()["count"].as_u64().unwrap()
                })
                .sum()
        };
        let denied = count("access.denied").await.len() as u64;
        assert_eq!(denied + total(count("access.denied.repeated").await), 40);
        let logins = count("csc.login").await.len() as u64;
        assert_eq!(logins + total(count("csc.login.repeated").await), 12);
        let repeated = count("access.denied.repeated").await;
        let d: Value = serde_json::from_str(&repeated[0].details).unwrap();
        assert_eq!(
            (d["by"].as_str(), d["code"].as_str()),
            (k["id"].as_str(), Some("permission_denied"))
        );
        store.close().await;
        db.cleanup().await;
    }
}
