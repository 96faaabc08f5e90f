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

/// Reads until the stream ends (or panics after `secs`); returns how long that took.
async fn until_it_ends(resp: reqwest::Response, secs: u64) -> Duration {
    let started = std::time::Instant::now();
    let mut body = resp.bytes_stream();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(None) | Ok(Some(Err(_))) => return started.elapsed(),
            Ok(Some(Ok(_))) => {}
            Err(_) => panic!("the stream is still open after {secs} s"),
        }
    }
}

#[tokio::test]
async fn an_event_stream_ends_with_its_key_and_its_lifetime_and_streams_are_capped() {
    for db in backends().await {
        let toml = "[server]\nstream_max_secs = 4\nstreams_per_caller = 2\nstreams_total = 3\n";
        let s = TestServer::start_with(
            &db,
            sigil_tests::Options { toml: toml.into(), ..Default::default() },
        )
        .await;
        let k = s.create_key(json!({"name": "watcher", "permissions": ["audit:read"]})).await;
        let key = k["key"].as_str().unwrap().to_owned();
        let open = |key: String| s.req(Method::GET, "/api/v1/audit/stream", &key).send();
        let one = open(key.clone()).await.unwrap();
        let two = open(key.clone()).await.unwrap();
        assert_eq!((one.status().as_u16(), two.status().as_u16()), (200, 200));
        // A third stream for the same key is refused; another caller still gets one.
        let (st, e) = json(open(key.clone()).await.unwrap()).await;
        assert_eq!((st, e["code"].as_str()), (429, Some("too_many_streams")), "{e}");
        let admin = open(s.admin_key.clone()).await.unwrap();
        let admin_opened = std::time::Instant::now();
        assert_eq!(admin.status(), 200);
        // The node's total is reached.
        let other = s.create_key(json!({"name": "other", "permissions": ["audit:read"]})).await;
        let (st, _) = json(open(other["key"].as_str().unwrap().into()).await.unwrap()).await;
        assert_eq!(st, 429);
        // Revoking the key ends its streams within seconds, before their lifetime.
        let id = k["id"].as_str().unwrap();
        let r = s.admin(Method::DELETE, &format!("/api/v1/api-keys/{id}")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let (a, b) = tokio::join!(until_it_ends(one, 10), until_it_ends(two, 10));
        assert!(a < Duration::from_secs(4) && b < Duration::from_secs(4), "{a:?} {b:?}");
        // The administrator's stream ends at its maximum lifetime (the client reconnects), 4 s
        // after it opened, counted from then: the revocation's streams may take their recheck
        // (2 s) and more under load to end, and a stream ended with them, a second or two after
        // it opened, would fail this.
        until_it_ends(admin, 10).await;
        let lived = admin_opened.elapsed();
        assert!(lived >= Duration::from_secs(3), "{lived:?}");
        // Ended streams give their slots back.
        let again = open(s.admin_key.clone()).await.unwrap();
        assert_eq!(again.status(), 200);
        drop(again);
        s.stop().await;
        db.cleanup().await;
    }
}
