//! Several nodes on one PostgreSQL database: keys and revocations take effect on every node,
//! rate limits hold across nodes, and concurrent writes keep one valid audit chain.

use reqwest::Method;
use serde_json::json;
use sigil_tests::{Options, TestDb, TestServer, json};

#[tokio::test]
async fn two_nodes_share_keys_revocations_rate_limits_and_one_audit_chain() {
    let Some(db) = TestDb::postgres().await else {
        eprintln!("SIGIL_TEST_DATABASE_URL not set: scale-out needs PostgreSQL; skipped");
        return;
    };
    // Each node signs checkpoints with its own audit key and pins the other's public key.
    let keys = tempfile::tempdir().unwrap();
    // Each key in a directory of its own: the anchor log lives next to it.
    let key = |n: &str| {
        std::fs::create_dir_all(keys.path().join(n)).unwrap();
        let path = keys.path().join(n).join("audit-key.pem");
        let k = sigil_pki::audit_key::AuditKey::load_or_create(&path).unwrap();
        (path.clone(), k.publish(&path).unwrap(), k)
    };
    let (a_key, a_pub, a_audit) = key("a");
    let (b_key, b_pub, _) = key("b");
    let opts = |own: &std::path::Path, other: &std::path::Path| Options {
        toml: format!(
            "[api_keys]\ncache_ttl_ms = 300\n[audit]\nsigning_key_file = \"{}\"\n\
             trusted_keys = [\"{}\"]\n",
            own.display(),
            other.display()
        ),
        ..Default::default()
    };
    let a = TestServer::start_with(&db, opts(&a_key, &b_pub)).await;
    let b = TestServer::start_with(&db, opts(&b_key, &a_pub)).await;
    assert_ne!(a.url, b.url);
    // Only the first node created an administrator key.
    assert!(!a.admin_key.is_empty());
    assert!(b.admin_key.is_empty());
    let admin = a.admin_key.clone();

    // A key made on A works on B at once (lookups of unknown keys are never cached).
    let k = a.create_key(json!({"name": "shared", "permissions": ["api_keys:read"], "rate_limit": {"requests": 6, "per": "day"}})).await;
    let secret = k["key"].as_str().unwrap();
    for node in [&a, &b, &a, &b, &a, &b] {
        assert_eq!(
            node.req(Method::GET, "/api/v1/api-keys", secret).send().await.unwrap().status(),
            200
        );
    }
    // The seventh request is over the shared limit, whichever node gets it.
    assert_eq!(b.req(Method::GET, "/api/v1/api-keys", secret).send().await.unwrap().status(), 429);
    assert_eq!(a.req(Method::GET, "/api/v1/api-keys", secret).send().await.unwrap().status(), 429);

    // Revoked on A, refused on B within the cache TTL.
    let k2 = a.create_key(json!({"name": "revoke-me", "permissions": ["api_keys:read"]})).await;
    let s2 = k2["key"].as_str().unwrap();
    assert_eq!(b.req(Method::GET, "/api/v1/api-keys", s2).send().await.unwrap().status(), 200);
    let id2 = k2["id"].as_str().unwrap();
    assert_eq!(
        a.admin(Method::DELETE, &format!("/api/v1/api-keys/{id2}")).send().await.unwrap().status(),
        200
    );
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(b.req(Method::GET, "/api/v1/api-keys", s2).send().await.unwrap().status(), 401);

    // Interleaved concurrent writes on both nodes.
    let mut tasks = vec![];
    for i in 0..40 {
        let (client, url) = if i % 2 == 0 {
            (a.client.clone(), a.url.clone())
        } else {
            (b.client.clone(), b.url.clone())
        };
        let admin = admin.clone();
        tasks.push(tokio::spawn(async move {
            client
                .post(format!("{url}/api/v1/api-keys"))
                .bearer_auth(admin)
                .json(&json!({"name": format!("n{i}"), "permissions": ["audit:read"]}))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 201);
    }
    // Checkpoints by either node chain onto each other's, and each node verifies them all.
    assert!(a.checkpoint().await.unwrap().is_some());
    let r = b
        .req(Method::POST, "/api/v1/api-keys", &admin)
        .json(&json!({"name": "after-a", "permissions": ["audit:read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let by_b = b.checkpoint().await.unwrap().unwrap();
    // A anchors B's newest checkpoint too once it has verified it, so a writer who removes B's
    // checkpoints and rewrites what they covered is caught on A as well.
    assert!(a.checkpoint().await.unwrap().is_none(), "nothing new to sign");
    let anchored = sigil_server::anchor::FileAnchor::read_latest(
        &a_key.parent().unwrap().join("audit-anchors.log"),
    )
    .unwrap()
    .unwrap();
    assert_eq!(anchored, by_b);
    for node in [&a, &b] {
        let (_, report) =
            json(node.req(Method::GET, "/api/v1/audit/verify", &admin).send().await.unwrap()).await;
        assert_eq!(report["valid"], true, "{report}");
    }
    let (_, keys) = json(
        b.req(Method::GET, "/api/v1/audit?action=api_key.*&limit=500", &admin)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(keys["items"].as_array().unwrap().len(), 1 + 2 + 1 + 40 + 1);
    a.stop().await;
    b.stop().await;
    // Both nodes signed checkpoints with their own keys; the chain and both still verify.
    let store = {
        let mut o = TestDb::sqlite().options();
        o.url = db.url.clone();
        sigil_store::SqlStore::connect(&o).await.unwrap()
    };
    let mut both = a_audit.keyring();
    both.add_file(&b_pub).unwrap();
    let r = sigil_core::audit::trail::verify_store(&store, &both, None, None).await.unwrap();
    assert!(r.valid, "{r:?}");
    assert!(r.checkpoints_checked >= 2);
    // A verifier that pins only A's key does not accept B's checkpoints.
    let r = sigil_core::audit::trail::verify_store(&store, &a_audit.keyring(), None, None)
        .await
        .unwrap();
    assert_eq!(
        r.problem.map(|p| p.kind),
        Some(sigil_core::audit::ProblemKind::CheckpointUntrusted)
    );
    store.close().await;
    db.cleanup().await;
}

/// Issuances and signatures go through each node's group writer; on one database the batches
/// of both nodes must still form one chain, and a SAD must pay for exactly its signatures
/// whichever nodes spend it.
#[tokio::test]
async fn two_nodes_issuing_and_signing_at_once_keep_one_chain_and_exact_sads() {
    let Some(db) = TestDb::postgres().await else {
        eprintln!("SIGIL_TEST_DATABASE_URL not set: scale-out needs PostgreSQL; skipped");
        return;
    };
    // One audit key for both nodes, so that each verifies the checkpoints of the other.
    let keys = tempfile::tempdir().unwrap();
    let opts = Options {
        toml: format!(
            "[audit]\nsigning_key_file = \"{}\"\n",
            keys.path().join("audit-key.pem").display()
        ),
        ..Default::default()
    };
    let a = TestServer::start_with(&db, opts.clone()).await;
    let b = TestServer::start_with(&db, opts).await;
    let admin = a.admin_key.clone();
    // 60 issuances, half on each node, all at once.
    let csrs: Vec<String> = (0..60)
        .map(|i| {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut p = rcgen::CertificateParams::new(vec![]).unwrap();
            p.distinguished_name.push(rcgen::DnType::CommonName, format!("node-{i}"));
            p.serialize_request(&key).unwrap().pem().unwrap()
        })
        .collect();
    let mut tasks = vec![];
    for (i, csr) in csrs.into_iter().enumerate() {
        let node = if i % 2 == 0 { &a } else { &b };
        let (client, url, admin) = (node.client.clone(), node.url.clone(), admin.clone());
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(format!("{url}/api/v1/certificates"))
                .bearer_auth(admin)
                .json(&json!({"csr": csr, "profile": "tls-client"}))
                .send()
                .await
                .unwrap();
            json(r).await
        }));
    }
    let mut ids = vec![];
    for t in tasks {
        let (st, v) = t.await.unwrap();
        assert_eq!(st, 201, "{v}");
        ids.push(v["id"].as_str().unwrap().to_owned());
    }
    // Every acknowledged certificate is readable on both nodes.
    for id in &ids {
        for node in [&a, &b] {
            let r = node.req(Method::GET, &format!("/api/v1/certificates/{id}"), &admin);
            assert_eq!(r.send().await.unwrap().status(), 200, "{id} on {}", node.url);
        }
    }

    // One SAD for 20 signatures, spent by 30 requests split over both nodes at once.
    a.signer("alice", "alice-password-1").await;
    let cred = a.credential("alice", "p256", "246810", 1, 20).await;
    let cred = cred["credential_id"].as_str().unwrap().to_owned();
    let token_a = a.csc_login("v1", "alice", "alice-password-1").await;
    let token_b = b.csc_login("v1", "alice", "alice-password-1").await;
    let body = json!({"credentialID": cred, "numSignatures": 20, "PIN": "246810"});
    let sad = a.csc("v1", "credentials/authorize", &token_a, body).await;
    assert_eq!(sad.status, 200, "{:?}", sad.body);
    let sad = sad.body["SAD"].as_str().unwrap().to_owned();
    let mut tasks = vec![];
    for i in 0..30u8 {
        let (node, token) = if i % 2 == 0 { (&a, &token_a) } else { (&b, &token_b) };
        let (client, url, token) = (node.client.clone(), node.url.clone(), token.clone());
        let body = json!({"credentialID": cred, "SAD": sad,
            "hash": [base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [i; 32])],
            "signAlgo": "1.2.840.10045.4.3.2"});
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(format!("{url}/csc/v1/signatures/signHash"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        }));
    }
    let mut statuses = vec![];
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 20, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 400).count(), 10, "{statuses:?}");

    for node in [&a, &b] {
        let (_, report) =
            json(node.req(Method::GET, "/api/v1/audit/verify", &admin).send().await.unwrap()).await;
        assert_eq!(report["valid"], true, "{report}");
    }
    let (_, issued) = json(
        b.req(Method::GET, "/api/v1/audit?action=certificate.issue&limit=500", &admin)
            .send()
            .await
            .unwrap(),
    )
    .await;
    // Each issuance audited once (the credential's own certificate is audited too).
    let audited: Vec<&str> = issued["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["object_id"].as_str())
        .filter(|id| ids.iter().any(|i| i == id))
        .collect();
    assert_eq!(audited.len(), 60);
    assert!(ids.iter().all(|i| audited.contains(&i.as_str())));
    let (_, signed) = json(
        a.req(Method::GET, "/api/v1/audit?action=csc.sign_hash&limit=500", &admin)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let outcomes: Vec<&str> = signed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(outcomes.len(), 30, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| **o == "success").count(), 20, "{outcomes:?}");
    a.stop().await;
    b.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn an_acme_nonce_from_one_node_is_good_once_on_any_node() {
    let Some(db) = TestDb::postgres().await else {
        eprintln!("SIGIL_TEST_DATABASE_URL not set: scale-out needs PostgreSQL; skipped");
        return;
    };
    let opts = || Options { toml: "[acme]\nenabled = true\n".into(), ..Default::default() };
    let a = TestServer::start_with(&db, opts()).await;
    let b = TestServer::start_with(&db, opts()).await;
    // A nonce node A handed out signs a newAccount sent to node B (URLs name B).
    let client = crate::acme::RawClient::new(&b, "tls-server").await;
    let nonce_of_a = {
        let r = a.client.head(format!("{}/acme/tls-server/new-nonce", a.url)).send().await.unwrap();
        r.headers()["replay-nonce"].to_str().unwrap().to_owned()
    };
    let url = format!("{}/acme/tls-server/new-account", b.url);
    let jws = client.signed(&url, &nonce_of_a, Some(&json!({"termsOfServiceAgreed": true})));
    let first = client.send_raw(&url, &jws).await;
    assert_eq!(first.0, 201, "{}", first.1);
    // Replayed: refused as a spent nonce.
    let again = client.send_raw(&url, &jws).await;
    assert_eq!(again.1["type"], "urn:ietf:params:acme:error:badNonce", "{}", again.1);
    a.stop().await;
    b.stop().await;
    db.cleanup().await;
}
