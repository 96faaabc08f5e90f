//! PIN reset: challenge-response answers that openssl computes the same way from the card's
//! administration key, unlock codes handed out to the holder or the service desk only, secrets
//! that no read of a device or of the audit trail shows, and refusals for the wrong state,
//! the wrong holder and missing setup.

use reqwest::Method;
use serde_json::{Value, json};
use sigil_tests::{TestServer, backends, json, openssl};

/// The block `challenge` encrypted with `key` (ECB, no padding), as openssl computes it.
fn openssl_ecb(dir: &std::path::Path, cipher: &str, key: &str, challenge: &str) -> String {
    let (input, output) = (dir.join("challenge.bin"), dir.join("response.bin"));
    std::fs::write(&input, hex::decode(challenge).unwrap()).unwrap();
    let (ok, out) = openssl(&[
        "enc",
        cipher,
        "-nopad",
        "-K",
        key,
        "-in",
        input.to_str().unwrap(),
        "-out",
        output.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    hex::encode(std::fs::read(&output).unwrap())
}

struct Setup {
    office: String,
    ana: String,
    bor: String,
}

async fn people(s: &TestServer) -> Setup {
    let office = s.offices(&["A"]).await.remove(0);
    let person = |n: &str| json!({"office_id": office, "given_name": n, "family_name": n});
    let ana = s.create("/api/v1/people", person("Ana")).await["id"].as_str().unwrap().to_owned();
    let bor = s.create("/api/v1/people", person("Bor")).await["id"].as_str().unwrap().to_owned();
    Setup { office, ana, bor }
}

async fn card(s: &TestServer, office: &str, serial: &str, holder: &str) -> String {
    let d = s
        .create(
            "/api/v1/devices",
            json!({"kind": "smart_card", "serial": serial, "office_id": office, "holder_id": holder}),
        )
        .await;
    let id = d["id"].as_str().unwrap().to_owned();
    let r = s.admin(Method::POST, &format!("/api/v1/devices/{id}/activate")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    id
}

async fn setup(s: &TestServer, id: &str, body: Value) -> (u16, Value) {
    let path = format!("/api/v1/devices/{id}/pin-reset-setup");
    json(s.admin(Method::PATCH, &path).json(&body).send().await.unwrap()).await
}

async fn block(s: &TestServer, id: &str) {
    let r = s
        .admin(Method::PATCH, &format!("/api/v1/devices/{id}"))
        .json(&json!({"pin_retries_left": 0}))
        .send()
        .await
        .unwrap();
    let (st, d) = json(r).await;
    assert_eq!((st, d["pin_retries_left"].as_u64()), (200, Some(0)), "{d}");
}

#[tokio::test]
async fn a_holder_unblocks_their_pin_with_a_response_openssl_computes_the_same_way() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let p = people(&s).await;
        let tmp = tempfile::tempdir().unwrap();
        let aes = card(&s, &p.office, "SC-AES", &p.ana).await;
        let tdes = card(&s, &p.office, "SC-3DES", &p.ana).await;
        let theirs = card(&s, &p.office, "SC-BOR", &p.bor).await;
        let aes_key = "000102030405060708090a0b0c0d0e0f";
        let (st, d) = setup(&s, &aes, json!({"algorithm": "aes128", "admin_key": aes_key})).await;
        assert_eq!(st, 200, "{d}");
        assert_eq!(
            d["device"]["pin_reset"],
            json!({"challenge_response": "aes128", "unlock_code": false})
        );
        assert_eq!(d["generated"], json!({}));
        let (st, d) = setup(&s, &tdes, json!({"algorithm": "3des", "admin_key": "generate"})).await;
        assert_eq!(st, 200, "{d}");
        let tdes_key = d["generated"]["admin_key"].as_str().unwrap().to_owned();
        assert_eq!(tdes_key.len(), 48);
        setup(&s, &theirs, json!({"algorithm": "aes128", "admin_key": aes_key})).await;
        block(&s, &aes).await;

        let key = s
            .create_key(json!({"name": "ana-portal", "permissions": ["self_service:use"], "holder_id": p.ana}))
            .await["key"]
            .as_str()
            .unwrap()
            .to_owned();
        let reset = |id: &str, body: Value| {
            let (s, key, path) = (&s, key.clone(), format!("/api/v1/self/devices/{id}/pin-reset"));
            async move {
                let r = s.req(Method::POST, &path, &key).json(&body).send().await.unwrap();
                let cache =
                    r.headers().get("cache-control").map(|v| v.to_str().unwrap().to_owned());
                let (st, v) = json(r).await;
                (st, v, cache)
            }
        };
        let challenge = "8899aabbccddeeff0011223344556677";
        let (st, r, cache) = reset(&aes, json!({"challenge": challenge})).await;
        assert_eq!(st, 200, "{r}");
        assert_eq!(cache.as_deref(), Some("no-store"));
        assert_eq!(r["method"], "challenge-response");
        let expected = openssl_ecb(tmp.path(), "-aes-128-ecb", aes_key, challenge);
        assert_eq!(r["response"].as_str().unwrap(), expected);
        assert_eq!(r["device"]["pin_retries_left"], 3);

        let (st, r, _) = reset(&tdes, json!({"challenge": "0123456789abcdef"})).await;
        assert_eq!(st, 200, "{r}");
        let expected = openssl_ecb(tmp.path(), "-des-ede3-ecb", &tdes_key, "0123456789abcdef");
        assert_eq!(r["response"].as_str().unwrap(), expected);

        // A 3DES card's challenge is one 8-byte block; someone else's card does not exist.
        let (st, r, _) = reset(&tdes, json!({"challenge": challenge})).await;
        assert_eq!((st, r["code"].as_str()), (400, Some("invalid_challenge")), "{r}");
        let (st, r, _) = reset(&theirs, json!({"challenge": challenge})).await;
        assert_eq!((st, r["code"].as_str()), (404, Some("not_found")), "{r}");
        // No unlock code on file for this card.
        let (st, r, _) = reset(&aes, json!({})).await;
        assert_eq!((st, r["code"].as_str()), (409, Some("pin_reset_unavailable")), "{r}");

        // Neither reads nor the audit trail carry the key or the response.
        let (_, dev) =
            json(s.admin(Method::GET, &format!("/api/v1/devices/{tdes}")).send().await.unwrap())
                .await;
        let trail = s.trail("device", &tdes).await.to_string();
        for text in [dev.to_string(), trail.clone()] {
            assert!(!text.contains(&tdes_key) && !text.contains(&expected), "{text}");
        }
        assert!(trail.contains("device.pin_reset_configure") && trail.contains("device.pin_reset"));
        let (_, hist) = json(
            s.admin(Method::GET, &format!("/api/v1/devices/{aes}/history")).send().await.unwrap(),
        )
        .await;
        let kinds: Vec<&str> =
            hist["items"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds.last(), Some(&"pin_reset"), "{hist}");
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn the_service_desk_hands_out_an_unlock_code_only_for_an_active_card_in_scope() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let p = people(&s).await;
        let id = card(&s, &p.office, "SC-PUK", &p.ana).await;
        let bare = card(&s, &p.office, "SC-BARE", &p.ana).await;
        let (st, d) = setup(&s, &id, json!({"unlock_code": "generate"})).await;
        assert_eq!(st, 200, "{d}");
        let code = d["generated"]["unlock_code"].as_str().unwrap().to_owned();
        assert!(code.len() == 8 && code.bytes().all(|b| b.is_ascii_digit()), "{code}");
        let (st, d) = setup(&s, &id, json!({"unlock_code": "12"})).await;
        assert_eq!((st, d["code"].as_str()), (400, Some("invalid_unlock_code")), "{d}");
        let (st, d) = setup(&s, &id, json!({"admin_key": "00ff"})).await;
        assert_eq!((st, d["code"].as_str()), (400, Some("invalid_field")), "{d}");
        let (st, d) = setup(&s, &id, json!({"algorithm": "aes256", "admin_key": "00ff"})).await;
        assert_eq!((st, d["code"].as_str()), (400, Some("invalid_admin_key")), "{d}");

        let (_, desk) = s
            .operator_key(
                "desk",
                &["service-desk"],
                json!({}),
                &["devices:read", "device:pin_reset", "device:suspend"],
            )
            .await;
        let (_, viewer) =
            s.operator_key("viewer", &["service-desk"], json!({}), &["devices:read"]).await;
        let reset = |key: &str, id: &str| {
            let (s, key, path) = (&s, key.to_owned(), format!("/api/v1/devices/{id}/pin-reset"));
            async move { json(s.req(Method::POST, &path, &key).send().await.unwrap()).await }
        };
        let (st, r) = reset(&desk, &id).await;
        assert_eq!(st, 200, "{r}");
        assert_eq!(
            (r["method"].as_str(), r["unlock_code"].as_str()),
            (Some("unlock-code"), Some(code.as_str()))
        );
        let (st, r) = reset(&viewer, &id).await;
        assert_eq!((st, r["code"].as_str()), (403, Some("permission_denied")), "{r}");
        let (st, r) = reset(&desk, &bare).await;
        assert_eq!((st, r["code"].as_str()), (409, Some("pin_reset_unavailable")), "{r}");
        let r = s
            .req(Method::POST, &format!("/api/v1/devices/{id}/suspend"), &desk)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let (st, r) = reset(&desk, &id).await;
        assert_eq!((st, r["code"].as_str()), (409, Some("invalid_state")), "{r}");
        // Removing the code leaves nothing to hand out.
        let (st, d) = setup(&s, &id, json!({"unlock_code": null})).await;
        assert_eq!(
            (st, d["device"]["pin_reset"]["unlock_code"].as_bool()),
            (200, Some(false)),
            "{d}"
        );
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn challenge_response_resets_are_limited_per_device_per_day_and_refusals_audited() {
    for db in backends().await {
        let toml = "[devices]\npin_resets_per_day = 2\n".to_owned();
        let s =
            TestServer::start_with(&db, sigil_tests::Options { toml, ..Default::default() }).await;
        let p = people(&s).await;
        let one = card(&s, &p.office, "SC-ONE", &p.ana).await;
        let two = card(&s, &p.office, "SC-TWO", &p.ana).await;
        let aes_key = "000102030405060708090a0b0c0d0e0f";
        for id in [&one, &two] {
            let (st, d) = setup(&s, id, json!({"algorithm": "aes128", "admin_key": aes_key})).await;
            assert_eq!(st, 200, "{d}");
        }
        let reset = |id: &str, challenge: &str| {
            let path = format!("/api/v1/devices/{id}/pin-reset");
            let body = json!({"challenge": challenge});
            let r = s.admin(Method::POST, &path).json(&body).send();
            async move {
                let r = r.await.unwrap();
                let retry = r.headers().get("retry-after").is_some();
                let (st, v) = json(r).await;
                (st, v, retry)
            }
        };
        // Two answers under the card's administration key, then no more today: the key is not
        // an oracle for as many challenges as a caller likes.
        for c in ["00000000000000000000000000000001", "00000000000000000000000000000002"] {
            let (st, r, _) = reset(&one, c).await;
            assert_eq!(st, 200, "{r}");
        }
        let (st, r, retry) = reset(&one, "00000000000000000000000000000003").await;
        assert_eq!((st, r["code"].as_str(), retry), (429, Some("rate_limited"), true), "{r}");
        assert!(r.get("response").is_none(), "{r}");
        // The limit is per device; a malformed challenge is refused before it counts.
        let (st, r, _) = reset(&two, "abcd").await;
        assert_eq!((st, r["code"].as_str()), (400, Some("invalid_challenge")), "{r}");
        assert_eq!(reset(&two, "00000000000000000000000000000004").await.0, 200);
        // The refusal is in the device's trail.
        let trail = s.trail("device", &one).await;
        let refused = trail["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "device.pin_reset" && e["outcome"] == "failure")
            .count();
        assert_eq!(refused, 1, "{trail}");
        s.stop().await;
        db.cleanup().await;
    }
}
