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
        let s = TestServer::start_with(
            &db,
            Options {
                toml: TOML.into(),
                ..Default::default()
            },
        )
        .await;
        let (st, b) = json(s.admin(Method::GET, "/api/v1/audit").send().await.unwrap()).await;
        assert_eq!((st, b["code"].as_str()), (404, Some("not_found")));
        assert_eq!(
            s.admin(Method::GET, "/api/v1/audit/verify")
                .send()
                .await
                .unwrap()
                .status(),
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
        assert_eq!(
            s.admin(Method::GET, "/api/v1/api-keys")
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        let (_, doc) = json(
            s.client
                .get(format!("{}/openapi.json", s.url))
                .send()
                .await
                .unwrap(),
        )
        .await;
        let paths = doc["paths"].as_object().unwrap();
        assert!(
            !paths.keys().any(|p| p.starts_with("/api/v1/audit")),
            "{:?}",
            paths.keys()
        );
        assert!(paths["/api/v1/api-keys/{id}"]["delete"].is_null());
        assert!(paths["/api/v1/api-keys/{id}"]["get"].is_object());
        // Outside the endpoint's range: 403 even for the administrator.
        let (st, b) = json(
            s.admin(Method::GET, "/api/v1/permissions")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((st, b["code"].as_str()), (403, Some("ip_not_allowed")));
        // The exposure view shows the effective rules.
        let (st, view) = json(
            s.admin(Method::GET, "/api/v1/exposure")
                .send()
                .await
                .unwrap(),
        )
        .await;
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
        let s = TestServer::start_with(
            &db,
            Options {
                toml: toml.into(),
                ..Default::default()
            },
        )
        .await;
        let (st, b) = json(
            s.admin(Method::GET, "/api/v1/api-keys")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (st, b["code"].as_str()),
            (401, Some("client_certificate_required"))
        );
        s.stop().await;
        db.cleanup().await;
    }
}
