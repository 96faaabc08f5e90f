//! Monitoring: the Server-Sent Events stream of audit events and lifecycle changes, filtered by
//! type and resumable, and the report of certificates expiring per office.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use sigil_tests::{TestServer, backends, json, openssl_csr};

/// Reads the stream until an event of `kind` arrives; returns the text read so far.
async fn read_until(resp: reqwest::Response, kind: &str) -> String {
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !text.contains(&format!("event: {kind}\n")) {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("the event arrives in time");
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap().unwrap()));
    }
    text
}

async fn office(s: &TestServer, div: &Value, code: &str) -> String {
    s.create("/api/v1/offices", json!({"division_id": div["id"], "code": code, "name": code})).await
        ["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_event_stream_delivers_a_device_suspension_and_resumes_after_an_id() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let org = s.create("/api/v1/organizations", json!({"name": "Acme"})).await;
        let div = s
            .create("/api/v1/divisions", json!({"name": "HQ", "organization_id": org["id"]}))
            .await;
        let a = office(&s, &div, "A").await;
        let dev = s
            .create(
                "/api/v1/devices",
                json!({"kind": "usb_token", "serial": "T-1", "office_id": a}),
            )
            .await;
        let id = dev["id"].as_str().unwrap().to_owned();
        let open = |q: &str| s.admin(Method::GET, &format!("/api/v1/audit/stream?{q}")).send();
        let live = open("types=device.suspended").await.unwrap();
        assert_eq!(live.status(), 200);
        assert!(live.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        s.admin(Method::POST, &format!("/api/v1/devices/{id}/activate")).send().await.unwrap();
        s.admin(Method::POST, &format!("/api/v1/devices/{id}/suspend"))
            .json(&json!({"reason": "alert"}))
            .send()
            .await
            .unwrap();
        let text = read_until(live, "device.suspended").await;
        // Only the type asked for: the activation before it was filtered out.
        assert!(!text.contains("device.active"), "{text}");
        let data = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
        let ev: Value = serde_json::from_str(data).unwrap();
        assert_eq!(
            (ev["object_type"].as_str(), ev["object_id"].as_str()),
            (Some("device"), Some(id.as_str()))
        );
        assert_eq!(ev["details"]["reason"], "alert");
        let seq: u64 = text.lines().find_map(|l| l.strip_prefix("id: ")).unwrap().parse().unwrap();
        // Resuming from before the activation replays both, in order.
        let replay = s
            .admin(Method::GET, "/api/v1/audit/stream?types=device.*")
            .header("last-event-id", (seq - 2).to_string())
            .send()
            .await
            .unwrap();
        let text = read_until(replay, "device.suspended").await;
        let active = text.find("event: device.active").expect("activation replayed");
        assert!(active < text.find("event: device.suspended").unwrap(), "{text}");
        let (st, e) = json(open("after=minus-one").await.unwrap()).await;
        assert_eq!((st, e["code"].as_str()), (400, Some("invalid_query")));
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn the_expiry_report_counts_certificates_per_office_within_the_callers_scope() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let org = s.create("/api/v1/organizations", json!({"name": "Acme"})).await;
        let div = s
            .create("/api/v1/divisions", json!({"name": "HQ", "organization_id": org["id"]}))
            .await;
        let (a, b) = (office(&s, &div, "A").await, office(&s, &div, "B").await);
        let (_, p) =
            json(s.admin(Method::GET, "/api/v1/profiles/tls-client").send().await.unwrap()).await;
        let mut spec = p["spec"].clone();
        spec["validity_days"] = json!(10);
        spec["renewal_window_days"] = json!(5);
        s.create("/api/v1/profiles", json!({"name": "short", "spec": spec})).await;
        let tmp = tempfile::tempdir().unwrap();
        for (cn, profile, office) in [
            ("a1", "short", &a),
            ("a2", "short", &a),
            ("a3", "tls-client", &a),
            ("b1", "short", &b),
        ] {
            let (csr, _) = openssl_csr(tmp.path(), cn, "ec:P-256", &format!("/CN={cn}"), None);
            s.create(
                "/api/v1/certificates",
                json!({"csr": csr, "profile": profile, "office_id": office}),
            )
            .await;
        }
        let report = |key: String, days: u32| {
            let s = &s;
            async move {
                json(
                    s.req(Method::GET, &format!("/api/v1/reports/expiring?days={days}"), &key)
                        .send()
                        .await
                        .unwrap(),
                )
                .await
            }
        };
        let (st, r) = report(s.admin_key.clone(), 30).await;
        assert_eq!((st, r["total"].as_u64()), (200, Some(3)), "{r}");
        let counts: Vec<(String, u64)> = r["offices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| (o["office_code"].as_str().unwrap().to_owned(), o["count"].as_u64().unwrap()))
            .collect();
        let mut counts = counts;
        counts.sort();
        assert_eq!(counts, [("A".to_owned(), 2), ("B".to_owned(), 1)]);
        assert_eq!(report(s.admin_key.clone(), 5).await.1["total"], 0);
        let (_, key) = s
            .operator_key(
                "ra-a",
                &["service-desk"],
                json!({"offices": [a]}),
                &["certificates:read"],
            )
            .await;
        let (_, mine) = report(key, 30).await;
        assert_eq!(mine["offices"].as_array().unwrap().len(), 1, "{mine}");
        assert_eq!(mine["offices"][0]["office_code"], "A");
        let (st, e) = report(s.admin_key.clone(), 0).await;
        assert_eq!((st, e["code"].as_str()), (400, Some("invalid_days")));
        s.stop().await;
        db.cleanup().await;
    }
}
