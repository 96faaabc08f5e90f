//! Exposure switches: disabled modules and endpoints are 404 and absent from /openapi.json;
//! IP ranges per endpoint and globally.

use reqwest::Method;
use sigil_tests::{Options, TestServer, backends, json};

const TOML: &str = r#"
[exposure.modules.audit]
enabled = false
[exposure.endpoints."DELETE /api/v1/api-keys/{id}"]
enabled = false
[exposure.endpoints."GET /api/v1/permissions"]
allowed_ips = ["10.0.0.0/8"]
"#;

#[tokio::test]
async fn disabled_endpoints_are_404_and_missing_from_the_openapi_document() {
    for db in backends().await {
        let s =
            TestServer::start_with(&db, Options { toml: TOML.into(), ..Default::default() }).await;
        let (st, b) = json(s.admin(Method::GET, "/api/v1/audit").send().await.unwrap()).await;
        assert_eq!((st, b["code"].as_str()), (404, Some("not_found")));
        assert_eq!(
            s.admin(Method::GET, "/api/v1/audit/verify").send().await.unwrap().status(),
            404
        );
        let some_id = "01a20721-c8e6-7322-a928-24ab094d9989";
        assert_eq!(
            s.admin(Method::DELETE, &format!("/api/v1/api-keys/{some_id}"))
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
        // The rest of the module is still served.
        assert_eq!(
            s.admin(Method::GET, &format!("/api/v1/api-keys/{some_id}"))
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
        assert_eq!(s.admin(Method::GET, "/api/v1/api-keys").send().await.unwrap().status(), 200);
        let (_, doc) =
            json(s.client.get(format!("{}/openapi.json", s.url)).send().await.unwrap()).await;
        let paths = doc["paths"].as_object().unwrap();
        assert!(!paths.keys().any(|p| p.starts_with("/api/v1/audit")), "{:?}", paths.keys());
        assert!(paths["/api/v1/api-keys/{id}"]["delete"].is_null());
        assert!(paths["/api/v1/api-keys/{id}"]["get"].is_object());
        // Outside the endpoint's range: 403 even for the administrator.
        let (st, b) = json(s.admin(Method::GET, "/api/v1/permissions").send().await.unwrap()).await;
        assert_eq!((st, b["code"].as_str()), (403, Some("ip_not_allowed")));
        // The exposure view shows the effective rules.
        let (st, view) = json(s.admin(Method::GET, "/api/v1/exposure").send().await.unwrap()).await;
        assert_eq!(st, 200);
        let audit = view["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["endpoint"] == "GET /api/v1/audit")
            .unwrap();
        assert_eq!(audit["enabled"], false);
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn an_endpoint_can_require_a_client_certificate() {
    for db in backends().await {
        let toml = "[exposure.endpoints.\"GET /api/v1/api-keys\"]\nauth = \"mtls\"\n";
        let s =
            TestServer::start_with(&db, Options { toml: toml.into(), ..Default::default() }).await;
        let (st, b) = json(s.admin(Method::GET, "/api/v1/api-keys").send().await.unwrap()).await;
        assert_eq!((st, b["code"].as_str()), (401, Some("client_certificate_required")));
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn exposure_changed_through_the_api_applies_on_every_node_and_is_audited() {
    for db in backends().await {
        let opts =
            Options { toml: "[server]\nsettings_refresh_ms = 100\n".into(), ..Default::default() };
        let a = TestServer::start_with(&db, opts.clone()).await;
        let b = TestServer::start_with(&db, opts).await;
        let admin = a.admin_key.clone();
        let body =
            serde_json::json!({"endpoints": {"GET /api/v1/permissions": {"enabled": false}}});
        let (st, view) =
            json(a.admin(Method::PUT, "/api/v1/exposure").json(&body).send().await.unwrap()).await;
        assert_eq!((st, view["source"].as_str()), (200, Some("api")), "{view}");
        assert_eq!(a.admin(Method::GET, "/api/v1/permissions").send().await.unwrap().status(), 404);
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        assert_eq!(
            b.req(Method::GET, "/api/v1/permissions", &admin).send().await.unwrap().status(),
            404
        );
        // Bad changes are refused and change nothing.
        let lockout = serde_json::json!({"modules": {"exposure": {"enabled": false}}});
        let (st, e) =
            json(a.admin(Method::PUT, "/api/v1/exposure").json(&lockout).send().await.unwrap())
                .await;
        assert_eq!((st, e["code"].as_str()), (409, Some("exposure_lockout")));
        let unknown = serde_json::json!({"endpoints": {"GET /api/v1/nowhere": {"enabled": false}}});
        let (st, e) =
            json(a.admin(Method::PUT, "/api/v1/exposure").json(&unknown).send().await.unwrap())
                .await;
        assert_eq!((st, e["code"].as_str()), (400, Some("invalid_exposure")));
        let (st, e) = json(
            a.admin(Method::PUT, "/api/v1/exposure")
                .json(&serde_json::json!({"colour": 1}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((st, e["code"].as_str()), (400, Some("unknown_field")));
        // A key without exposure:update may read but not change.
        let reader = a
            .create_key(serde_json::json!({"name": "x-reader", "permissions": ["exposure:read"]}))
            .await;
        let r = a
            .req(Method::PUT, "/api/v1/exposure", reader["key"].as_str().unwrap())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        // Reset: the file applies again, everywhere.
        let (st, view) =
            json(a.admin(Method::DELETE, "/api/v1/exposure").send().await.unwrap()).await;
        assert_eq!((st, view["source"].as_str()), (200, Some("file")));
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        assert_eq!(
            b.req(Method::GET, "/api/v1/permissions", &admin).send().await.unwrap().status(),
            200
        );
        let actions = a.trail_actions("setting", "exposure").await;
        assert_eq!(actions, ["exposure.update", "exposure.reset"]);
        a.stop().await;
        b.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn an_endpoint_throttle_counts_each_caller_separately() {
    for db in backends().await {
        let toml = "[exposure.endpoints.\"GET /api/v1/permissions\"]\nrate_limit = { requests = 2, per = \"day\" }\n";
        let s =
            TestServer::start_with(&db, Options { toml: toml.into(), ..Default::default() }).await;
        let other =
            s.create_key(serde_json::json!({"name": "other", "permissions": ["roles:read"]})).await;
        let other = other["key"].as_str().unwrap();
        for _ in 0..2 {
            assert_eq!(
                s.admin(Method::GET, "/api/v1/permissions").send().await.unwrap().status(),
                200
            );
        }
        let r = s.admin(Method::GET, "/api/v1/permissions").send().await.unwrap();
        assert_eq!(r.status(), 429);
        assert!(r.headers().contains_key("retry-after"));
        assert_eq!(
            s.req(Method::GET, "/api/v1/permissions", other).send().await.unwrap().status(),
            200
        );
        // Other endpoints are not throttled.
        assert_eq!(s.admin(Method::GET, "/api/v1/api-keys").send().await.unwrap().status(), 200);
        s.stop().await;
        db.cleanup().await;
    }
}
