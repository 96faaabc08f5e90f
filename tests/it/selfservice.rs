//! Self-service: a key bound to a token holder suspends and reactivates, and reports lost or
//! damaged, only that holder's devices; anyone else's device does not exist for it.

use reqwest::Method;
use serde_json::{Value, json};
use sigil_tests::{TestServer, backends, json, openssl_csr};

#[tokio::test]
async fn self_service_acts_for_the_token_holder_only() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let a = s.offices(&["A"]).await.remove(0);
        let person = |n: &str| json!({"office_id": a, "given_name": n, "family_name": n});
        let ana =
            s.create("/api/v1/people", person("Ana")).await["id"].as_str().unwrap().to_owned();
        let bor =
            s.create("/api/v1/people", person("Bor")).await["id"].as_str().unwrap().to_owned();
        let card = |serial: &str, holder: &str| json!({"kind": "smart_card", "serial": serial, "office_id": a, "holder_id": holder});
        let mine = s.create("/api/v1/devices", card("SC-ANA", &ana)).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let theirs = s.create("/api/v1/devices", card("SC-BOR", &bor)).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let tmp = tempfile::tempdir().unwrap();
        let (csr, _) = openssl_csr(tmp.path(), "ana", "ec:P-256", "/CN=ana", None);
        let cert = s
            .create(
                "/api/v1/certificates",
                json!({"csr": csr, "profile": "tls-client", "office_id": a}),
            )
            .await;
        let cid = cert["id"].as_str().unwrap().to_owned();
        for (d, c) in [(&mine, Some(&cid)), (&theirs, None)] {
            if let Some(c) = c {
                let r = s
                    .admin(Method::POST, &format!("/api/v1/devices/{d}/certificates"))
                    .json(&json!({"certificate_id": c}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
            }
            s.admin(Method::POST, &format!("/api/v1/devices/{d}/activate")).send().await.unwrap();
        }
        let key = s
            .create_key(json!({"name": "ana-portal", "permissions": ["self_service:use"], "holder_id": ana}))
            .await["key"]
            .as_str()
            .unwrap()
            .to_owned();
        let call = |m: Method, path: String| {
            let (s, key) = (&s, key.clone());
            async move { json(s.req(m, &path, &key).send().await.unwrap()).await }
        };
        let cert_status = || {
            let (s, cid) = (&s, cid.clone());
            async move {
                let (_, c) = json(
                    s.admin(Method::GET, &format!("/api/v1/certificates/{cid}"))
                        .send()
                        .await
                        .unwrap(),
                )
                .await;
                c["status"].as_str().unwrap().to_owned()
            }
        };
        let (_, list) = call(Method::GET, "/api/v1/self/devices".into()).await;
        let serials: Vec<&str> =
            list.as_array().unwrap().iter().map(|d| d["serial"].as_str().unwrap()).collect();
        assert_eq!(serials, ["SC-ANA"]);
        let (st, d) = call(Method::POST, format!("/api/v1/self/devices/{mine}/suspend")).await;
        assert_eq!((st, d["status"].as_str()), (200, Some("suspended")), "{d}");
        assert_eq!(cert_status().await, "suspended");
        let (st, d) = call(Method::POST, format!("/api/v1/self/devices/{mine}/reactivate")).await;
        assert_eq!((st, d["status"].as_str()), (200, Some("active")), "{d}");
        assert_eq!(cert_status().await, "active");
        // Someone else's device: not found, whatever the step.
        for step in ["suspend", "lost", "damaged", "reactivate"] {
            let (st, _) = call(Method::POST, format!("/api/v1/self/devices/{theirs}/{step}")).await;
            assert_eq!(st, 404, "{step}");
        }
        // The holder's key has no operator powers, and an operator's key is no holder.
        assert_eq!(call(Method::POST, format!("/api/v1/devices/{theirs}/suspend")).await.0, 403);
        let (st, e) =
            json(s.admin(Method::GET, "/api/v1/self/devices").send().await.unwrap()).await;
        assert_eq!((st, e["code"].as_str()), (403, Some("not_a_holder")));
        // Renewal of my certificate reaches the renewal rules (outside its window here); a
        // certificate that is not mine does not exist for me.
        let (st, e) = call(Method::POST, format!("/api/v1/self/certificates/{cid}/renew")).await;
        assert_eq!((st, e["code"].as_str()), (409, Some("outside_renewal_window")), "{e}");
        let (csr2, _) = openssl_csr(tmp.path(), "other", "ec:P-256", "/CN=other", None);
        let other =
            s.create("/api/v1/certificates", json!({"csr": csr2, "profile": "tls-client"})).await;
        let (st, _) = call(
            Method::POST,
            format!("/api/v1/self/certificates/{}/renew", other["id"].as_str().unwrap()),
        )
        .await;
        assert_eq!(st, 404);
        // Metadata anyone with `certificates:update` can write does not make a certificate mine.
        let (csr3, _) = openssl_csr(tmp.path(), "claimed", "ec:P-256", "/CN=claimed", None);
        let claimed = s
            .create(
                "/api/v1/certificates",
                json!({"csr": csr3, "profile": "tls-client", "office_id": a,
                       "metadata": {"person_id": ana, "request_id": uuid::Uuid::now_v7()}}),
            )
            .await;
        let (st, _) = call(
            Method::POST,
            format!("/api/v1/self/certificates/{}/renew", claimed["id"].as_str().unwrap()),
        )
        .await;
        assert_eq!(st, 404);
        // A virtual token is asked for through an enrolment request for me, pending approval.
        let (st, r) = call(Method::POST, "/api/v1/self/virtual-tokens".into()).await;
        assert_eq!(
            (st, r["status"].as_str(), r["person_id"].as_str()),
            (201, Some("pending"), Some(ana.as_str())),
            "{r}"
        );
        assert_eq!(r["device"]["kind"], "virtual_token");
        // Lost: holds stay until an operator decides; the holder cannot "find" it back.
        let (st, d) = call(Method::POST, format!("/api/v1/self/devices/{mine}/lost")).await;
        assert_eq!((st, d["status"].as_str()), (200, Some("lost")));
        let (st, e) = call(Method::POST, format!("/api/v1/self/devices/{mine}/reactivate")).await;
        assert_eq!((st, e["code"].as_str()), (409, Some("invalid_transition")));
        let trail = s.trail("device", &mine).await;
        let last: &Value = trail["items"].as_array().unwrap().last().unwrap();
        assert_eq!(
            (last["action"].as_str(), last["actor"]["kind"].as_str()),
            (Some("device.lost"), Some("api_key"))
        );
        // A key bound to a person that does not exist, or to both kinds of actor, is refused.
        let r = s
            .admin(Method::POST, "/api/v1/api-keys")
            .json(&json!({"name": "x", "permissions": ["self_service:use"], "holder_id": "0190b7a4-0000-7000-8000-000000000000"}))
            .send()
            .await
            .unwrap();
        assert_eq!(json(r).await.1["code"], "unknown_person");
        s.stop().await;
        db.cleanup().await;
    }
}
