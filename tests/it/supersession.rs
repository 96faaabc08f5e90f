//! Supersession: a renewed certificate names its renewal, stays valid for its profile's grace,
//! and is then revoked with reason superseded (CRL, OCSP, audit as the server). A holder renews
//! only a certificate that still names them as their person record does.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sigil_tests::{Options, TestServer, backends, json, openssl_csr};

async fn get(s: &TestServer, path: &str) -> Value {
    let (st, v) = json(s.admin(Method::GET, path).send().await.unwrap()).await;
    assert_eq!(st, 200, "{path}: {v}");
    v
}

/// A copy of tls-client, renewable at once, whose renewed certificates get `grace` days.
async fn renewable_profile(s: &TestServer, name: &str, grace: u32) {
    let mut spec = get(s, "/api/v1/profiles/tls-client").await["spec"].take();
    spec["renewal_window_days"] = json!(365);
    spec["supersede_grace_days"] = json!(grace);
    let (st, b) = json(
        s.admin(Method::POST, "/api/v1/profiles")
            .json(&json!({"name": name, "spec": spec}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 201, "{b}");
}

fn ids(page: &Value) -> Vec<String> {
    page["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().into()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_superseded_then_revoked_as_superseded_after_its_grace() {
    for db in backends().await {
        let toml = "[pki]\nsupersede_check_secs = 1\n".to_owned();
        let s = TestServer::start_with(&db, Options { toml, ..Default::default() }).await;
        let dir = tempfile::tempdir().unwrap();
        renewable_profile(&s, "now", 0).await;
        renewable_profile(&s, "week", 7).await;
        let mut olds = vec![];
        for (profile, cn) in [("now", "/CN=quick"), ("week", "/CN=slow")] {
            let (csr, _) = openssl_csr(dir.path(), profile, "ec:P-256", cn, None);
            let (st, old) = s.issue(&csr, profile).await;
            assert_eq!(st, 201, "{old}");
            let id = old["id"].as_str().unwrap().to_owned();
            let (st, new) = json(
                s.admin(Method::POST, &format!("/api/v1/certificates/{id}/renew"))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(st, 201, "{new}");
            let old = get(&s, &format!("/api/v1/certificates/{id}")).await;
            assert_eq!(old["superseded_by"], new["id"], "{old}");
            assert!(old["superseded_until"].is_string(), "{old}");
            assert!(new["superseded_by"].is_null() && new["superseded_until"].is_null());
            olds.push((old, new));
        }
        // Listed apart: the superseded ones, and the current ones.
        let superseded = ids(&get(&s, "/api/v1/certificates?superseded=true").await);
        let current = ids(&get(&s, "/api/v1/certificates?superseded=false").await);
        for (old, new) in &olds {
            let (o, n) = (old["id"].as_str().unwrap(), new["id"].as_str().unwrap());
            assert!(superseded.iter().any(|i| i == o) && !superseded.iter().any(|i| i == n));
            assert!(current.iter().any(|i| i == n) && !current.iter().any(|i| i == o));
        }
        // Grace 0: revoked by the server's sweep, reason superseded, everywhere.
        let quick = olds[0].0["id"].as_str().unwrap();
        let mut revoked = Value::Null;
        for _ in 0..100 {
            revoked = get(&s, &format!("/api/v1/certificates/{quick}")).await;
            if revoked["status"] == "revoked" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(revoked["status"], "revoked", "{revoked}");
        assert_eq!(revoked["revocation_reason"], "superseded");
        let crl = s.crl_text("builtin").await;
        let serial = revoked["serial"].as_str().unwrap().to_uppercase();
        let entry = crl.split("Serial Number: ").find(|e| e.starts_with(&serial)).expect("listed");
        assert!(entry.contains("Superseded"), "{crl}");
        let ocsp = s.ocsp_text(&revoked).await;
        assert!(ocsp.contains("Cert Status: revoked") && ocsp.contains("superseded"), "{ocsp}");
        let trail = s.trail("certificate", quick).await;
        let ev = trail["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["action"] == "certificate.revoke")
            .expect("audited");
        assert_eq!(ev["actor"]["kind"], "system", "{ev}");
        assert_eq!(ev["details"]["superseded_by"], olds[0].1["id"], "{ev}");
        // The renewal lives on; a week's grace is not over, sweeps or not.
        let renewal =
            get(&s, &format!("/api/v1/certificates/{}", olds[0].1["id"].as_str().unwrap())).await;
        assert_eq!(renewal["status"], "active");
        let slow =
            get(&s, &format!("/api/v1/certificates/{}", olds[1].0["id"].as_str().unwrap())).await;
        assert_eq!(slow["status"], "active", "{slow}");
        assert!(s.ocsp_text(&slow).await.contains("Cert Status: good"));
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_grace_longer_than_the_validity_is_refused() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let mut spec = get(&s, "/api/v1/profiles/tls-client").await["spec"].take();
        spec["supersede_grace_days"] = json!(366);
        let (st, e) = json(
            s.admin(Method::PUT, "/api/v1/profiles/tls-client").json(&spec).send().await.unwrap(),
        )
        .await;
        assert_eq!((st, e["code"].as_str()), (400, Some("invalid_profile")), "{e}");
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_holder_renews_only_a_certificate_that_still_names_them_as_their_record_does() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let a = s.offices(&["A"]).await.remove(0);
        let mut spec = get(&s, "/api/v1/profiles/tls-client").await["spec"].take();
        spec["renewal_window_days"] = json!(365);
        spec["subject"]["allowed_attributes"] =
            json!(["CN", "GN", "SN", "emailAddress", "serialNumber"]);
        let r = s.admin(Method::PUT, "/api/v1/profiles/tls-client").json(&spec).send().await;
        assert_eq!(r.unwrap().status(), 200);
        let ana = s
            .create(
                "/api/v1/people",
                json!({"office_id": a, "given_name": "Ana", "family_name": "Alpha",
                       "email": "ana@acme.example", "external_id": "HR-1"}),
            )
            .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let card = s
            .create(
                "/api/v1/devices",
                json!({"kind": "smart_card", "serial": "SC-1", "office_id": a, "holder_id": ana}),
            )
            .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let dir = tempfile::tempdir().unwrap();
        let mut certs = vec![];
        for (name, subject, san) in [
            ("mail", "/CN=Ana Alpha/emailAddress=ana@acme.example", None),
            ("san", "/CN=Ana Alpha", Some("email:Ana@Acme.example")),
            ("names", "/CN=Ana/GN=Ana/SN=Alpha", None),
            ("number", "/CN=Ana/serialNumber=HR-1", None),
        ] {
            let (csr, _) = openssl_csr(dir.path(), name, "ec:P-256", subject, san);
            let c = s
                .create(
                    "/api/v1/certificates",
                    json!({"csr": csr, "profile": "tls-client", "office_id": a}),
                )
                .await;
            let id = c["id"].as_str().unwrap().to_owned();
            let r = s
                .admin(Method::POST, &format!("/api/v1/devices/{card}/certificates"))
                .json(&json!({"certificate_id": id}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            certs.push(id);
        }
        let key = s
            .create_key(
                json!({"name": "ana", "permissions": ["self_service:use"], "holder_id": ana}),
            )
            .await["key"]
            .as_str()
            .unwrap()
            .to_owned();
        let renew = |id: String| {
            let (s, key) = (&s, key.clone());
            async move {
                let path = format!("/api/v1/self/certificates/{id}/renew");
                json(s.req(Method::POST, &path, &key).send().await.unwrap()).await
            }
        };
        // The record still says so: the first renews (e-mail compared without case).
        let (st, b) = renew(certs[1].clone()).await;
        assert_eq!(st, 201, "{b}");
        // Ana marries and moves: her record changes, her certificates no longer describe her.
        let r = s
            .admin(Method::PATCH, &format!("/api/v1/people/{ana}"))
            .json(&json!({"family_name": "Beta", "email": "ana.beta@acme.example",
                          "external_id": "HR-2"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        for (id, names) in
            [(&certs[0], "ana@acme.example"), (&certs[2], "SN=Alpha"), (&certs[3], "HR-1")]
        {
            let (st, e) = renew(id.clone()).await;
            assert_eq!((st, e["code"].as_str()), (409, Some("person_record_changed")), "{e}");
            assert!(e["detail"].as_str().unwrap().contains(names), "{e}");
        }
        // An operator may still renew them (the operator answers for the identity).
        let (st, b) = json(
            s.admin(Method::POST, &format!("/api/v1/certificates/{}/renew", certs[2]))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(st, 201, "{b}");
        s.stop().await;
        db.cleanup().await;
    }
}

async fn renew(s: &TestServer, id: &str) -> Value {
    let (st, new) = json(
        s.admin(Method::POST, &format!("/api/v1/certificates/{id}/renew")).send().await.unwrap(),
    )
    .await;
    assert_eq!(st, 201, "{new}");
    new
}

async fn act(s: &TestServer, id: &str, action: &str, body: Value) -> Value {
    let path = format!("/api/v1/certificates/{id}/{action}");
    let (st, c) = json(s.admin(Method::POST, &path).json(&body).send().await.unwrap()).await;
    assert_eq!(st, 200, "{action}: {c}");
    c
}

// Attacks from review: a hold (maybe for a compromise) is never turned into "superseded"; a
// revoked renewal leaves its predecessor in service; an expired predecessor is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_leaves_holds_alone_and_a_revoked_renewal_cancels_the_supersession() {
    for db in backends().await {
        let toml = "[pki]\nsupersede_check_secs = 1\n".to_owned();
        let s = TestServer::start_with(&db, Options { toml, ..Default::default() }).await;
        let dir = tempfile::tempdir().unwrap();
        renewable_profile(&s, "week", 7).await;
        let mut ids = vec![];
        for cn in ["held", "undone", "expired"] {
            let (csr, _) = openssl_csr(dir.path(), cn, "ec:P-256", &format!("/CN={cn}"), None);
            let (st, c) = s.issue(&csr, "week").await;
            assert_eq!(st, 201, "{c}");
            ids.push(c["id"].as_str().unwrap().to_owned());
        }
        let held_renewal = renew(&s, &ids[0]).await;
        act(&s, &ids[0], "suspend", json!({})).await;
        let undone_renewal = renew(&s, &ids[1]).await;
        renew(&s, &ids[2]).await;
        // The renewal is revoked within the grace: the predecessor is no longer due.
        act(
            &s,
            undone_renewal["id"].as_str().unwrap(),
            "revoke",
            json!({"reason": "keyCompromise"}),
        )
        .await;
        let undone = get(&s, &format!("/api/v1/certificates/{}", ids[1])).await;
        assert!(undone["superseded_until"].is_null(), "{undone}");
        assert_eq!(undone["superseded_by"], undone_renewal["id"], "history stays");
        // Every grace ends now; the third has expired meanwhile (planted in the database).
        let store = s.db().await;
        store
            .execute_raw(
                "UPDATE certificates SET superseded_until = 0 WHERE superseded_until IS NOT NULL",
            )
            .await
            .unwrap();
        store
            .execute_raw(&format!("UPDATE certificates SET not_after = 1 WHERE id = '{}'", ids[2]))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let held = get(&s, &format!("/api/v1/certificates/{}", ids[0])).await;
        assert_eq!(
            (held["status"].as_str(), held["revocation_reason"].as_str()),
            (Some("suspended"), Some("certificateHold")),
            "{held}"
        );
        let expired = get(&s, &format!("/api/v1/certificates/{}", ids[2])).await;
        assert_eq!(expired["status"], "expired", "{expired}");
        assert!(get(&s, &format!("/api/v1/certificates/{}", ids[1])).await["status"] == "active");
        // Released from hold, it is superseded like any other.
        act(&s, &ids[0], "reactivate", json!({})).await;
        let mut now = Value::Null;
        for _ in 0..50 {
            now = get(&s, &format!("/api/v1/certificates/{}", ids[0])).await;
            if now["status"] == "revoked" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(now["revocation_reason"], "superseded", "{now}");
        assert_eq!(held_renewal["status"], "active");
        store.close().await;
        s.stop().await;
        db.cleanup().await;
    }
}

// Attacks from the second review: a renewal escapes neither its device's cascades nor its
// holder; a renewal revoked after the grace does not revive what it superseded; aliases and
// extension tricks are refused when a profile is saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_belongs_to_the_device_and_holder_of_what_it_renewed() {
    for db in backends().await {
        let toml = "[pki]\nsupersede_check_secs = 1\n".to_owned();
        let s = TestServer::start_with(&db, Options { toml, ..Default::default() }).await;
        let a = s.offices(&["A"]).await.remove(0);
        renewable_profile(&s, "week", 7).await;
        let ana = s
            .create(
                "/api/v1/people",
                json!({"office_id": a, "given_name": "Ana", "family_name": "Alpha"}),
            )
            .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let card = s
            .create(
                "/api/v1/devices",
                json!({"kind": "smart_card", "serial": "SC-9", "office_id": a, "holder_id": ana}),
            )
            .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let dir = tempfile::tempdir().unwrap();
        let (csr, _) = openssl_csr(dir.path(), "x", "ec:P-256", "/CN=Ana Alpha", None);
        let x = s
            .create("/api/v1/certificates", json!({"csr": csr, "profile": "week", "office_id": a}))
            .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = s
            .admin(Method::POST, &format!("/api/v1/devices/{card}/certificates"))
            .json(&json!({"certificate_id": x}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let r = s.admin(Method::POST, &format!("/api/v1/devices/{card}/activate")).send().await;
        assert_eq!(r.unwrap().status(), 200);
        let y = renew(&s, &x).await["id"].as_str().unwrap().to_owned();
        // The holder renews the renewal: it is theirs as what it renewed was.
        let key = s
            .create_key(
                json!({"name": "ana", "permissions": ["self_service:use"], "holder_id": ana}),
            )
            .await["key"]
            .as_str()
            .unwrap()
            .to_owned();
        let path = format!("/api/v1/self/certificates/{y}/renew");
        let (st, z) = json(s.req(Method::POST, &path, &key).send().await.unwrap()).await;
        assert_eq!(st, 201, "{z}");
        let z = z["id"].as_str().unwrap().to_owned();
        // Another holder of the same office: the chain is Ana's, so it does not exist for Bob.
        let bob = s
            .create(
                "/api/v1/people",
                json!({"office_id": a, "given_name": "Bob", "family_name": "Beta"}),
            )
            .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let bob_key = s
            .create_key(
                json!({"name": "bob", "permissions": ["self_service:use"], "holder_id": bob}),
            )
            .await["key"]
            .as_str()
            .unwrap()
            .to_owned();
        for id in [&y, &z] {
            let path = format!("/api/v1/self/certificates/{id}/renew");
            let r = s.req(Method::POST, &path, &bob_key).send().await.unwrap();
            assert_eq!(r.status(), 404, "{id}");
        }
        // The card is lost: the whole chain is held, and found, released.
        let status = |id: String| {
            let s = &s;
            async move { get(s, &format!("/api/v1/certificates/{id}")).await["status"].clone() }
        };
        let r = s.admin(Method::POST, &format!("/api/v1/devices/{card}/lost")).send().await;
        assert_eq!(r.unwrap().status(), 200);
        for id in [&x, &y, &z] {
            assert_eq!(status(id.clone()).await, "suspended", "{id}");
        }
        let r = s
            .admin(Method::POST, &format!("/api/v1/devices/{card}/reactivate"))
            .json(&json!({"reason": "found"}))
            .send()
            .await;
        assert_eq!(r.unwrap().status(), 200);
        for id in [&x, &y, &z] {
            assert_eq!(status(id.clone()).await, "active", "{id}");
        }
        // After y's grace, revoking its renewal z no longer keeps y: the sweep revokes it.
        let store = s.db().await;
        store
            .execute_raw(&format!("UPDATE certificates SET superseded_until = 0 WHERE id = '{y}'"))
            .await
            .unwrap();
        act(&s, &z, "revoke", json!({"reason": "keyCompromise"})).await;
        let mut now = Value::Null;
        for _ in 0..50 {
            now = get(&s, &format!("/api/v1/certificates/{y}")).await;
            if now["status"] == "revoked" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(now["revocation_reason"], "superseded", "{now}");
        store.close().await;
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn extension_aliases_unsafe_extensions_and_oversized_oids_are_refused_in_profiles() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let base = get(&s, "/api/v1/profiles/tls-client").await["spec"].take();
        for (oid, value) in [
            ("2.5.29.7", "MA0wC4IJYS5leGFtcGxl"), // obsolete subjectAltName
            ("2.5.29.3", "MAA="),                 // obsolete certificatePolicies
            ("1.3.6.1.4.1.11129.2.4.3", "BQA="),  // CT poison
            ("1.3.6.1.5.5.7.48.1.5", "BQA="),     // OCSP no-check
            ("1.3.6.1.4.1.311.21.10", "MAA="),    // AD CS application policies
            ("2.18446744073709551535", "BQA="),   // an arc the encoder cannot take
        ] {
            let mut spec = base.clone();
            spec["custom_extensions"] = json!([{"oid": oid, "critical": false, "value": value}]);
            let (st, e) = json(
                s.admin(Method::POST, "/api/v1/profiles")
                    .json(&json!({"name": "x", "spec": spec}))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!((st, e["code"].as_str()), (400, Some("invalid_profile")), "{oid}: {e}");
        }
        let mut spec = base.clone();
        spec["extended_key_usage"] = json!(["2.18446744073709551535"]);
        let (st, e) = json(
            s.admin(Method::POST, "/api/v1/profiles")
                .json(&json!({"name": "x", "spec": spec}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((st, e["code"].as_str()), (400, Some("invalid_profile")), "{e}");
        // The CA/Browser Forum profile takes no custom extension at all.
        let mut public = get(&s, "/api/v1/profiles/tls-server-public").await["spec"].take();
        public["custom_extensions"] =
            json!([{"oid": "1.3.6.1.4.1.55555.1", "critical": false, "value": "BQA="}]);
        let (st, e) = json(
            s.admin(Method::PUT, "/api/v1/profiles/tls-server-public")
                .json(&public)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((st, e["code"].as_str()), (400, Some("invalid_profile")), "{e}");
        s.stop().await;
        db.cleanup().await;
    }
}
