//! Enrolment requests: approval issues what a request asks for (certificates, a device) and
//! records it; dual control, separation of duties and mutually exclusive roles are enforced;
//! lists filter; validator and workflow plugins take part.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sigil_tests::{TestServer, backends, json, openssl_csr};

struct World {
    a: String,
    b: String,
    ana: String,
    bor: String,
}

async fn world(s: &TestServer) -> World {
    let [a, b]: [String; 2] = s.offices(&["A", "B"]).await.try_into().unwrap();
    let person = |o: &str, n: &str| json!({"office_id": o, "given_name": n, "family_name": n});
    let ana =
        s.create("/api/v1/people", person(&a, "Ana")).await["id"].as_str().unwrap().to_owned();
    let bor =
        s.create("/api/v1/people", person(&b, "Bor")).await["id"].as_str().unwrap().to_owned();
    World { a, b, ana, bor }
}

fn csr(dir: &std::path::Path, cn: &str) -> String {
    openssl_csr(dir, cn, "ec:P-256", &format!("/CN={cn}"), None).0
}

async fn call(s: &TestServer, key: &str, m: Method, path: &str, body: Value) -> (u16, Value) {
    json(s.req(m, path, key).json(&body).send().await.unwrap()).await
}

#[tokio::test]
async fn approving_a_request_issues_its_certificates_and_device_and_records_them() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let w = world(&s).await;
        let tmp = tempfile::tempdir().unwrap();
        let (_, clerk) = s
            .operator_key(
                "clerk",
                &["registration-officer"],
                json!({"offices": [w.a]}),
                &["requests:*", "people:read"],
            )
            .await;
        let (_, boss) = s
            .operator_key("boss", &["request-approver"], json!({"offices": [w.a]}), &["requests:*"])
            .await;
        let body = json!({"person_id": w.ana,
            "certificates": [{"profile": "tls-client", "csr": csr(tmp.path(), "ana-auth")},
                             {"profile": "tls-client", "csr": csr(tmp.path(), "ana-sign")}],
            "device": {"kind": "smart_card", "serial": "SC-ANA-1"},
            "metadata": {"ticket": "HR-77"}});
        let (st, r) = call(&s, &clerk, Method::POST, "/api/v1/requests", body).await;
        assert_eq!((st, r["status"].as_str()), (201, Some("pending")), "{r}");
        let id = r["id"].as_str().unwrap().to_owned();
        assert_eq!(r["office_id"], w.a.as_str());
        // Enrich, then approve.
        let (st, r) = call(
            &s,
            &clerk,
            Method::PATCH,
            &format!("/api/v1/requests/{id}"),
            json!({"metadata": {"priority": "high"}}),
        )
        .await;
        assert_eq!((st, r["metadata"]["priority"].as_str()), (200, Some("high")));
        let (st, r) = call(
            &s,
            &boss,
            Method::POST,
            &format!("/api/v1/requests/{id}/approve"),
            json!({"reason": "ok"}),
        )
        .await;
        assert_eq!((st, r["status"].as_str()), (200, Some("completed")), "{r}");
        let certs = r["result"]["certificates"].as_array().unwrap().clone();
        assert_eq!(certs.len(), 2);
        let dev = r["result"]["device_id"].as_str().unwrap().to_owned();
        let (_, d) =
            json(s.admin(Method::GET, &format!("/api/v1/devices/{dev}")).send().await.unwrap())
                .await;
        assert_eq!(
            (d["serial"].as_str(), d["holder_id"].as_str()),
            (Some("SC-ANA-1"), Some(w.ana.as_str()))
        );
        assert_eq!(d["certificates"].as_array().unwrap(), &certs);
        let (_, c) = json(
            s.admin(Method::GET, &format!("/api/v1/certificates/{}", certs[0].as_str().unwrap()))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (c["status"].as_str(), c["metadata"]["request_id"].as_str()),
            (Some("active"), Some(id.as_str()))
        );
        assert_eq!(
            s.trail_actions("request", &id).await,
            ["request.create", "request.update", "request.approve", "request.complete"]
        );
        // Once decided, a request does not move again.
        let (st, e) =
            call(&s, &boss, Method::POST, &format!("/api/v1/requests/{id}/reject"), json!({}))
                .await;
        assert_eq!((st, e["code"].as_str()), (409, Some("not_pending")));
        // A person of another office does not exist for this clerk.
        let (st, e) = call(
            &s,
            &clerk,
            Method::POST,
            "/api/v1/requests",
            json!({"person_id": w.bor,
            "certificates": [{"profile": "tls-client", "csr": csr(tmp.path(), "bor")}]}),
        )
        .await;
        assert_eq!((st, e["code"].as_str()), (400, Some("unknown_person")));
        // A CSR the profile refuses is refused now, not at approval.
        let (st, e) = call(
            &s,
            &clerk,
            Method::POST,
            "/api/v1/requests",
            json!({"person_id": w.ana,
            "certificates": [{"profile": "tls-client", "csr": "garbage"}]}),
        )
        .await;
        assert_eq!(st, 400, "{e}");
        let _ = &w.b;
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn dual_control_separation_of_duties_and_exclusive_roles_are_enforced() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let w = world(&s).await;
        let tmp = tempfile::tempdir().unwrap();
        // A profile that needs two approvals.
        let (_, p) =
            json(s.admin(Method::GET, "/api/v1/profiles/tls-client").send().await.unwrap()).await;
        let mut spec = p["spec"].clone();
        spec["approvals_required"] = json!(2);
        s.create("/api/v1/profiles", json!({"name": "dual", "spec": spec})).await;
        // Requesting and approving are exclusive roles.
        s.create("/api/v1/roles", json!({"name": "requester", "permissions": ["requests:read", "requests:write", "people:read"],
            "excludes": ["request-approver"]})).await;
        let (st, e) = call(
            &s,
            &s.admin_key,
            Method::POST,
            "/api/v1/operators",
            json!({"username": "both", "roles": ["requester", "request-approver"]}),
        )
        .await;
        assert_eq!((st, e["code"].as_str()), (409, Some("conflicting_roles")), "{e}");
        let (req_id, req_key) =
            s.operator_key("req", &["requester"], json!({}), &["requests:*", "people:read"]).await;
        let (st, e) = call(
            &s,
            &s.admin_key,
            Method::PATCH,
            &format!("/api/v1/operators/{req_id}"),
            json!({"roles": ["requester", "request-approver"]}),
        )
        .await;
        assert_eq!((st, e["code"].as_str()), (409, Some("conflicting_roles")));
        let (_, a1) =
            s.operator_key("app1", &["request-approver"], json!({}), &["requests:*"]).await;
        let (_, a2) =
            s.operator_key("app2", &["request-approver"], json!({}), &["requests:*"]).await;

        let new = |cn: &str| json!({"person_id": w.ana, "certificates": [{"profile": "dual", "csr": csr(tmp.path(), cn)}]});
        let (_, r) = call(&s, &req_key, Method::POST, "/api/v1/requests", new("dual-1")).await;
        assert_eq!(r["approvals_required"], 2);
        let id = r["id"].as_str().unwrap().to_owned();
        let approve = |key: String, id: String| {
            let s = &s;
            async move {
                call(s, &key, Method::POST, &format!("/api/v1/requests/{id}/approve"), json!({}))
                    .await
            }
        };
        let (st, r1) = approve(a1.clone(), id.clone()).await;
        assert_eq!(
            (st, r1["status"].as_str(), r1["approvals"].as_array().unwrap().len()),
            (200, Some("pending"), 1)
        );
        let (st, e) = approve(a1.clone(), id.clone()).await;
        assert_eq!((st, e["code"].as_str()), (403, Some("separation_of_duties")), "{e}");
        let (st, r2) = approve(a2.clone(), id.clone()).await;
        assert_eq!((st, r2["status"].as_str()), (200, Some("completed")), "{r2}");

        // The requester never approves their own request, whatever keys they hold.
        s.create(
            "/api/v1/roles",
            json!({"name": "all-in-one", "permissions": ["requests:*", "people:read"]}),
        )
        .await;
        let (_, solo) = s
            .operator_key("solo", &["all-in-one"], json!({}), &["requests:*", "people:read"])
            .await;
        let (_, r) = call(&s, &solo, Method::POST, "/api/v1/requests", new("solo")).await;
        let (st, e) = approve(solo.clone(), r["id"].as_str().unwrap().to_owned()).await;
        assert_eq!((st, e["code"].as_str()), (403, Some("separation_of_duties")));

        // Reject and cancel carry reasons.
        let (_, r) = call(&s, &req_key, Method::POST, "/api/v1/requests", new("rej")).await;
        let (st, r) = call(
            &s,
            &a1,
            Method::POST,
            &format!("/api/v1/requests/{}/reject", r["id"].as_str().unwrap()),
            json!({"reason": "not employed"}),
        )
        .await;
        assert_eq!(
            (st, r["status"].as_str(), r["decision"]["comment"].as_str()),
            (200, Some("rejected"), Some("not employed"))
        );
        let (_, r) = call(&s, &req_key, Method::POST, "/api/v1/requests", new("can")).await;
        let (st, r) = call(
            &s,
            &req_key,
            Method::POST,
            &format!("/api/v1/requests/{}/cancel", r["id"].as_str().unwrap()),
            json!({"reason": "duplicate"}),
        )
        .await;
        assert_eq!((st, r["status"].as_str()), (200, Some("cancelled")));

        // Filters: status, operator, profile, office, dates.
        let list = |q: String| {
            let s = &s;
            async move {
                json(s.admin(Method::GET, &format!("/api/v1/requests?{q}")).send().await.unwrap())
                    .await
                    .1["items"]
                    .as_array()
                    .unwrap()
                    .len()
            }
        };
        assert_eq!(list("status=completed".into()).await, 1);
        assert_eq!(list("status=pending".into()).await, 1);
        assert_eq!(list(format!("operator={req_id}")).await, 3);
        assert_eq!(list("profile=dual".into()).await, 4);
        assert_eq!(list(format!("office_id={}", w.a)).await, 4);
        assert_eq!(list(format!("office_id={}", w.b)).await, 0);
        assert_eq!(
            list("created_from=2000-01-01T00:00:00Z&created_until=2001-01-01T00:00:00Z".into())
                .await,
            0
        );
        assert_eq!(list("created_from=2000-01-01T00:00:00Z".into()).await, 4);
        let (st, e) =
            json(s.admin(Method::GET, "/api/v1/requests?status=maybe").send().await.unwrap()).await;
        assert_eq!((st, e["code"].as_str()), (400, Some("invalid_status")));
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_workflow_auto_approves_requests_of_its_offices_and_a_validator_blocks_others() {
    let dir = env!("SIGIL_TEST_PLUGINS");
    for db in backends().await {
        // The offices' ids are known only once they exist: start, create, then configure.
        let s = TestServer::start(&db).await;
        let w = world(&s).await;
        let cfg = s.data_dir().join("test.toml");
        let mut text = std::fs::read_to_string(&cfg).unwrap();
        text.push_str(&format!(
            "[plugins.load.auto]\nfile = \"{dir}/auto_approver.wasm\"\ngrants = [\"config\"]\n\
             hooks = [\"request.created\"]\npermissions = [\"requests:approve\", \"requests:read\"]\n\
             [plugins.load.auto.config]\noffices = \"{a}\"\n\
             [plugins.load.rules]\nfile = \"{dir}/person_rules.wasm\"\ngrants = [\"config\"]\n\
             hooks = [\"enrolment-request\"]\n[plugins.load.rules.config]\nblocked_offices = \"{b}\"\n",
            a = w.a,
            b = w.b
        ));
        std::fs::write(&cfg, text).unwrap();
        let (st, status) =
            json(s.admin(Method::POST, "/api/v1/plugins/reload").send().await.unwrap()).await;
        assert_eq!(st, 200, "{status}");
        assert!(status.as_array().unwrap().iter().all(|p| p["status"] == "active"), "{status}");
        let tmp = tempfile::tempdir().unwrap();
        // A plugin is not a person: it approves only under a profile that lets anyone approve
        // (dual control and "requester may not approve", as tls-client says, count operators).
        let (_, p) =
            json(s.admin(Method::GET, "/api/v1/profiles/tls-client").send().await.unwrap()).await;
        let mut spec = p["spec"].clone();
        spec["requester_may_approve"] = json!(true);
        s.create("/api/v1/profiles", json!({"name": "auto", "spec": spec})).await;
        let (_, guarded) = call(&s, &s.admin_key, Method::POST, "/api/v1/requests",
            json!({"person_id": w.ana, "certificates": [{"profile": "tls-client", "csr": csr(tmp.path(), "guarded")}]})).await;
        let (_, r) = call(&s, &s.admin_key, Method::POST, "/api/v1/requests",
            json!({"person_id": w.ana, "certificates": [{"profile": "auto", "csr": csr(tmp.path(), "auto")}]})).await;
        let id = r["id"].as_str().unwrap().to_owned();
        let mut got = Value::Null;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            got =
                json(s.admin(Method::GET, &format!("/api/v1/requests/{id}")).send().await.unwrap())
                    .await
                    .1;
            if got["status"] == "completed" {
                break;
            }
        }
        assert_eq!(got["status"], "completed", "{got}");
        assert_eq!(got["approvals"][0]["by"], "auto");
        assert_eq!(got["result"]["certificates"].as_array().unwrap().len(), 1);
        // The tls-client request, filed first, was refused to the plugin and still waits.
        let gid = guarded["id"].as_str().unwrap();
        let (_, g) =
            json(s.admin(Method::GET, &format!("/api/v1/requests/{gid}")).send().await.unwrap())
                .await;
        assert_eq!(
            (g["status"].as_str(), g["approvals"].as_array().map(Vec::len)),
            (Some("pending"), Some(0)),
            "{g}"
        );
        // Office B takes no requests at all: the validator refuses them.
        let (st, e) = call(
            &s,
            &s.admin_key,
            Method::POST,
            "/api/v1/requests",
            json!({"person_id": w.bor, "device": {"kind": "virtual_token"}}),
        )
        .await;
        assert_eq!((st, e["code"].as_str()), (400, Some("validation_failed")), "{e}");
        s.stop().await;
        db.cleanup().await;
    }
}
