//! Devices: the state machine, its cascade to the device's certificates (visible in the CRL
//! and over OCSP), the per-device history, production metadata, scopes and permissions.

use reqwest::Method;
use serde_json::{Value, json};
use sigil_tests::{TestServer, backends, json, openssl_csr};

/// Office A and B, a person in A, and a registered smart card held by that person.
async fn setup(s: &TestServer) -> (String, String, String, Value) {
    let [a, b]: [String; 2] = s.offices(&["A", "B"]).await.try_into().unwrap();
    let person = s
        .create(
            "/api/v1/people",
            json!({"office_id": a, "given_name": "Ana", "family_name": "Novak"}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let card = s
        .create(
            "/api/v1/devices",
            json!({"kind": "smart_card", "serial": "SC-0001", "office_id": a, "holder_id": person,
                   "production": {"batch": "B-2026-11", "manufacturer": "Idemia", "model": "ID-One",
                                  "applet": "PIV 2.1", "chip_serial": "04A1", "disposal_status": "in_use"}}),
        )
        .await;
    (a, b, person, card)
}

async fn issue(s: &TestServer, dir: &std::path::Path, cn: &str) -> Value {
    let (csr, _) = openssl_csr(dir, cn, "ec:P-256", &format!("/CN={cn}"), None);
    s.create("/api/v1/certificates", json!({"csr": csr, "profile": "tls-client"})).await
}

async fn post(s: &TestServer, path: &str, body: Value) -> (u16, Value) {
    json(s.admin(Method::POST, path).json(&body).send().await.unwrap()).await
}

async fn status(s: &TestServer, cert: &Value) -> String {
    let (_, c) = json(
        s.admin(Method::GET, &format!("/api/v1/certificates/{}", cert["id"].as_str().unwrap()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    c["status"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn suspending_a_device_puts_its_certificates_on_hold_and_reactivating_releases_them() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let (_, _, _, card) = setup(&s).await;
        let dev = card["id"].as_str().unwrap().to_owned();
        assert_eq!(card["status"], "registered");
        assert_eq!(card["production"]["applet"], "PIV 2.1");
        let tmp = tempfile::tempdir().unwrap();
        let (c1, c2, c3) = (
            issue(&s, tmp.path(), "auth").await,
            issue(&s, tmp.path(), "sign").await,
            issue(&s, tmp.path(), "old").await,
        );
        for c in [&c1, &c2, &c3] {
            let (st, d) = post(
                &s,
                &format!("/api/v1/devices/{dev}/certificates"),
                json!({"certificate_id": c["id"]}),
            )
            .await;
            assert_eq!(st, 200, "{d}");
        }
        // c3 was put on hold by itself before the device was suspended.
        let (st, _) = post(
            &s,
            &format!("/api/v1/certificates/{}/suspend", c3["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
        assert_eq!(st, 200);
        let (st, d) = post(&s, &format!("/api/v1/devices/{dev}/activate"), json!({})).await;
        assert_eq!((st, d["status"].as_str()), (200, Some("active")), "{d}");

        let (st, d) = post(
            &s,
            &format!("/api/v1/devices/{dev}/suspend"),
            json!({"reason": "holder on leave"}),
        )
        .await;
        assert_eq!((st, d["status"].as_str()), (200, Some("suspended")), "{d}");
        assert_eq!(status(&s, &c1).await, "suspended");
        assert_eq!(status(&s, &c2).await, "suspended");
        let crl = s.crl_text("builtin").await;
        for c in [&c1, &c2, &c3] {
            assert!(crl.contains(&c["serial"].as_str().unwrap().to_uppercase()), "{crl}");
        }
        assert!(crl.contains("Certificate Hold"), "{crl}");
        let o = s.ocsp_text(&c1).await;
        assert!(o.contains("Cert Status: revoked") && o.contains("certificateHold"), "{o}");

        // Reactivation releases exactly the holds the device placed.
        let (st, d) = post(&s, &format!("/api/v1/devices/{dev}/reactivate"), json!({})).await;
        assert_eq!((st, d["status"].as_str()), (200, Some("active")), "{d}");
        assert_eq!(status(&s, &c1).await, "active");
        assert_eq!(status(&s, &c2).await, "active");
        assert_eq!(status(&s, &c3).await, "suspended", "its own hold stays");
        let crl = s.crl_text("builtin").await;
        assert!(!crl.contains(&c1["serial"].as_str().unwrap().to_uppercase()), "{crl}");
        assert!(s.ocsp_text(&c1).await.contains("Cert Status: good"));

        // Terminating revokes everything on the device, for good.
        let (st, d) =
            post(&s, &format!("/api/v1/devices/{dev}/terminate"), json!({"reason": "returned"}))
                .await;
        assert_eq!((st, d["status"].as_str()), (200, Some("terminated")), "{d}");
        for c in [&c1, &c2, &c3] {
            assert_eq!(status(&s, c).await, "revoked");
        }
        let crl = s.crl_text("builtin").await;
        assert!(crl.contains("Cessation Of Operation"), "{crl}");
        let o = s.ocsp_text(&c2).await;
        assert!(o.contains("Cert Status: revoked") && o.contains("cessationOfOperation"), "{o}");
        let (st, b) = post(&s, &format!("/api/v1/devices/{dev}/reactivate"), json!({})).await;
        assert_eq!((st, b["code"].as_str()), (409, Some("invalid_transition")), "{b}");

        // The history tells the whole story; the audit trail too.
        let (_, h) = json(
            s.admin(Method::GET, &format!("/api/v1/devices/{dev}/history")).send().await.unwrap(),
        )
        .await;
        let story: Vec<String> = h["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| format!("{}:{}", e["kind"].as_str().unwrap(), e["to"].as_str().unwrap_or("")))
            .collect();
        assert_eq!(
            story,
            [
                "registered:registered",
                "certificate_linked:",
                "certificate_linked:",
                "certificate_linked:",
                "transition:active",
                "transition:suspended",
                "transition:active",
                "transition:terminated",
            ]
        );
        assert_eq!(h["items"][5]["reason"], "holder on leave");
        assert_eq!(h["items"][5]["certificates"].as_array().unwrap().len(), 2);
        let actions = s.trail_actions("device", &dev).await;
        assert_eq!(actions.last().map(String::as_str), Some("device.terminated"));
        let (_, st_view) = json(
            s.admin(Method::GET, &format!("/api/v1/devices/{dev}/state")).send().await.unwrap(),
        )
        .await;
        assert_eq!(st_view["allowed_transitions"], json!([]));
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_lost_device_holds_its_certificates_until_found_and_damage_revokes_them() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let (a, _, person, _) = setup(&s).await;
        let tmp = tempfile::tempdir().unwrap();
        let token = s
            .create("/api/v1/devices", json!({"kind": "usb_token", "serial": "USB-7", "office_id": a, "holder_id": person}))
            .await;
        let dev = token["id"].as_str().unwrap().to_owned();
        let c = issue(&s, tmp.path(), "usb").await;
        post(
            &s,
            &format!("/api/v1/devices/{dev}/certificates"),
            json!({"certificate_id": c["id"]}),
        )
        .await;
        post(&s, &format!("/api/v1/devices/{dev}/activate"), json!({})).await;
        let (st, d) = post(&s, &format!("/api/v1/devices/{dev}/lost"), json!({})).await;
        assert_eq!((st, d["status"].as_str()), (200, Some("lost")));
        assert_eq!(status(&s, &c).await, "suspended");
        let (st, d) =
            post(&s, &format!("/api/v1/devices/{dev}/reactivate"), json!({"reason": "found"}))
                .await;
        assert_eq!((st, d["status"].as_str()), (200, Some("active")));
        assert_eq!(status(&s, &c).await, "active");
        let (st, d) = post(
            &s,
            &format!("/api/v1/devices/{dev}/damaged"),
            json!({"revocation_reason": "keyCompromise"}),
        )
        .await;
        assert_eq!((st, d["status"].as_str()), (200, Some("damaged")), "{d}");
        let (_, cert) = json(
            s.admin(Method::GET, &format!("/api/v1/certificates/{}", c["id"].as_str().unwrap()))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (cert["status"].as_str(), cert["revocation_reason"].as_str()),
            (Some("revoked"), Some("keyCompromise"))
        );
        // Filters: by state, kind, batch, holder.
        let q = |path: String| {
            let s = &s;
            async move { json(s.admin(Method::GET, &path).send().await.unwrap()).await.1 }
        };
        assert_eq!(
            q("/api/v1/devices?status=damaged".into()).await["items"].as_array().unwrap().len(),
            1
        );
        assert_eq!(
            q("/api/v1/devices?kind=smart_card".into()).await["items"][0]["serial"],
            "SC-0001"
        );
        assert_eq!(
            q("/api/v1/devices?batch=B-2026-11".into()).await["items"].as_array().unwrap().len(),
            1
        );
        assert_eq!(
            q(format!("/api/v1/devices?holder_id={person}")).await["items"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        let (st, b) =
            json(s.admin(Method::GET, "/api/v1/devices?status=broken").send().await.unwrap()).await;
        assert_eq!((st, b["code"].as_str()), (400, Some("invalid_status")));
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn devices_keep_to_scopes_serials_and_the_permission_of_each_transition() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let (a, b, person, card) = setup(&s).await;
        let dev = card["id"].as_str().unwrap().to_owned();
        let (st, e) = post(
            &s,
            "/api/v1/devices",
            json!({"kind": "smart_card", "serial": "SC-0001", "office_id": a}),
        )
        .await;
        assert_eq!((st, e["code"].as_str()), (409, Some("serial_taken")));
        let other = s
            .create(
                "/api/v1/devices",
                json!({"kind": "virtual_token", "serial": "VT-1", "office_id": b}),
            )
            .await;
        // A service desk operator of office A may suspend, not revoke, and never sees office B.
        let (_, key) = s
            .operator_key(
                "desk",
                &["service-desk"],
                json!({"offices": [a]}),
                &["devices:read", "device:suspend", "device:reactivate"],
            )
            .await;
        let call = |m: Method, path: String| {
            let (s, key) = (&s, key.clone());
            async move { json(s.req(m, &path, &key).send().await.unwrap()).await }
        };
        let (_, list) = call(Method::GET, "/api/v1/devices".into()).await;
        assert_eq!(list["items"].as_array().unwrap().len(), 1);
        assert_eq!(
            call(Method::GET, format!("/api/v1/devices/{}", other["id"].as_str().unwrap())).await.0,
            404
        );
        assert_eq!(
            call(
                Method::POST,
                format!("/api/v1/devices/{}/suspend", other["id"].as_str().unwrap())
            )
            .await
            .0,
            404
        );
        post(&s, &format!("/api/v1/devices/{dev}/activate"), json!({})).await;
        let (st, d) = call(Method::POST, format!("/api/v1/devices/{dev}/suspend")).await;
        assert_eq!((st, d["status"].as_str()), (200, Some("suspended")), "{d}");
        let (st, e) = call(Method::POST, format!("/api/v1/devices/{dev}/revoke")).await;
        assert_eq!((st, e["code"].as_str()), (403, Some("permission_denied")));
        // A holder outside the caller's scope is refused; production data merges.
        let (st, e) = json(
            s.admin(Method::PATCH, &format!("/api/v1/devices/{}", other["id"].as_str().unwrap()))
                .json(&json!({"holder_id": "0190b7a4-0000-7000-8000-000000000000"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((st, e["code"].as_str()), (400, Some("unknown_person")));
        let (st, d) = json(
            s.admin(Method::PATCH, &format!("/api/v1/devices/{dev}"))
                .json(&json!({"production": {"disposal_status": "returned", "extra": {"bin": 4}}}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(st, 200, "{d}");
        assert_eq!(d["production"]["disposal_status"], "returned");
        assert_eq!(d["production"]["batch"], "B-2026-11");
        assert_eq!(d["production"]["extra"], json!({"bin": 4}));
        let _ = person;
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn certificates_outside_an_operators_offices_do_not_exist_for_it() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let (a, b, _, _) = setup(&s).await;
        let tmp = tempfile::tempdir().unwrap();
        let mk = |cn: &str, office: Option<&str>| {
            let (csr, _) = openssl_csr(tmp.path(), cn, "ec:P-256", &format!("/CN={cn}"), None);
            json!({"csr": csr, "profile": "tls-client", "office_id": office})
        };
        let in_a = s.create("/api/v1/certificates", mk("in-a", Some(&a))).await;
        let in_b = s.create("/api/v1/certificates", mk("in-b", Some(&b))).await;
        let nowhere = s.create("/api/v1/certificates", mk("nowhere", None)).await;
        assert_eq!(in_a["office_id"], a.as_str());
        let perms = ["certificates:read", "certificate:issue", "certificate:suspend"];
        s.create("/api/v1/roles", json!({"name": "ra", "permissions": perms})).await;
        let (_, key) = s.operator_key("ra-a", &["ra"], json!({"offices": [a]}), &perms).await;
        let call = |m: Method, path: String, body: Value| {
            let (s, key) = (&s, key.clone());
            async move { json(s.req(m, &path, &key).json(&body).send().await.unwrap()).await }
        };
        let (_, list) = call(Method::GET, "/api/v1/certificates".into(), json!(null)).await;
        let ids: Vec<&str> =
            list["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
        assert_eq!(ids, [in_a["id"].as_str().unwrap()]);
        for other in [&in_b, &nowhere] {
            let id = other["id"].as_str().unwrap();
            assert_eq!(
                call(Method::GET, format!("/api/v1/certificates/{id}"), json!(null)).await.0,
                404
            );
            assert_eq!(
                call(Method::POST, format!("/api/v1/certificates/{id}/suspend"), json!({})).await.0,
                404
            );
        }
        let (st, e) = call(Method::POST, "/api/v1/certificates".into(), mk("x", None)).await;
        assert_eq!((st, e["code"].as_str()), (400, Some("missing_field")));
        let (st, e) = call(Method::POST, "/api/v1/certificates".into(), mk("y", Some(&b))).await;
        assert_eq!((st, e["code"].as_str()), (400, Some("unknown_office")));
        let (st, c) = call(Method::POST, "/api/v1/certificates".into(), mk("z", Some(&a))).await;
        assert_eq!(st, 201, "{c}");
        s.stop().await;
        db.cleanup().await;
    }
}
