//! HTTP hygiene: problem+json errors, request ids, body limits, unknown fields, health, metrics,
//! OpenAPI and Swagger UI.

use reqwest::Method;
use serde_json::json;
use sigil_tests::{Options, TestDb, TestServer, backends, json};

#[tokio::test]
async fn malformed_json_unknown_fields_and_wrong_types_are_400_naming_the_problem() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let post = |body: &'static str| {
            s.admin(Method::POST, "/api/v1/api-keys")
                .header("content-type", "application/json")
                .body(body)
                .send()
        };
        let (st, b) = json(post("{\"name\": ").await.unwrap()).await;
        assert_eq!((st, b["code"].as_str()), (400, Some("invalid_json")));
        let (st, b) =
            json(post("{\"name\": \"x\", \"permissions\": [\"*\"], \"colour\": 1}").await.unwrap())
                .await;
        assert_eq!((st, b["code"].as_str()), (400, Some("unknown_field")));
        assert!(b["detail"].as_str().unwrap().contains("colour"));
        let (st, b) = json(post("{\"name\": 5, \"permissions\": []}").await.unwrap()).await;
        assert_eq!(st, 400);
        assert!(b["detail"].as_str().unwrap().contains("name"), "{b}");
        // A valid body with text after it is refused whole, not read up to the text.
        let (st, b) =
            json(post("{\"name\": \"x\", \"permissions\": [\"*\"]} {\"more\": 1}").await.unwrap())
                .await;
        assert_eq!((st, b["code"].as_str()), (400, Some("invalid_json")), "{b}");
        assert!(b["detail"].as_str().unwrap().contains("trailing"), "{b}");
        let r = s
            .admin(Method::POST, "/api/v1/api-keys")
            .header("content-type", "text/plain")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 415);
        let (_, list) = json(s.admin(Method::GET, "/api/v1/api-keys").send().await.unwrap()).await;
        assert_eq!(list["items"].as_array().unwrap().len(), 1, "nothing was written");
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    for db in backends().await {
        let s = TestServer::start_with(
            &db,
            Options { toml: "[server]\nbody_limit_bytes = 2048\n".into(), ..Default::default() },
        )
        .await;
        let big = json!({"name": "x", "description": "a".repeat(4096), "permissions": ["*"]});
        let (st, b) =
            json(s.admin(Method::POST, "/api/v1/api-keys").json(&big).send().await.unwrap()).await;
        assert_eq!((st, b["code"].as_str()), (413, Some("body_too_large")));
        let (_, list) = json(s.admin(Method::GET, "/api/v1/api-keys").send().await.unwrap()).await;
        assert_eq!(list["items"].as_array().unwrap().len(), 1, "nothing was written");
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_unknown_paths_are_problem_404() {
    let db = TestDb::sqlite();
    let s = TestServer::start(&db).await;
    let r = s.admin(Method::GET, "/api/v1/nothing-here").send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers().contains_key("x-request-id"));
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = s
        .admin(Method::GET, "/health/live")
        .header("x-request-id", "trace-me")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-me");
    let r = s.admin(Method::PUT, "/api/v1/api-keys").send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET,HEAD,POST");
    // CSC paths answer CSC's error body, and still name the methods they take.
    let r = s.admin(Method::PUT, "/csc/v2/info").send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert!(r.headers()["allow"].to_str().unwrap().contains("POST"));
    assert_eq!(json(r).await.1["error"], "invalid_request");
    // The UI's routes stay out of the API's way, and the API's out of the UI's.
    let r = s.admin(Method::GET, "/ui/login").send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    s.stop().await;
}

#[tokio::test]
async fn health_metrics_openapi_and_swagger_ui_are_served() {
    let db = TestDb::sqlite();
    let s = TestServer::start(&db).await;
    let get = |p: &str| s.client.get(format!("{}{p}", s.url)).send();
    assert_eq!(get("/health/live").await.unwrap().status(), 200);
    assert_eq!(get("/health/ready").await.unwrap().status(), 200);
    s.admin(Method::GET, "/api/v1/api-keys").send().await.unwrap();
    let m = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(
        m.contains(
            "sigil_http_requests_total{method=\"GET\",route=\"/api/v1/api-keys\",status=\"200\"}"
        ),
        "{m}"
    );
    assert!(m.contains("sigil_http_request_duration_seconds_bucket"));
    // The root CRL signed on first start runs out in a year: the gauge says when.
    let line = m
        .lines()
        .find(|l| l.starts_with("sigil_root_crl_next_update_seconds{ca=\"builtin\"}"))
        .unwrap_or_else(|| panic!("{m}"));
    let at: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    let in_a_year = time::OffsetDateTime::now_utc() + time::Duration::days(365);
    assert!((at - in_a_year.unix_timestamp()).abs() < 3600, "{line}");
    let (st, doc) = json(get("/openapi.json").await.unwrap()).await;
    assert_eq!(st, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(doc["paths"]["/api/v1/api-keys"]["post"].is_object());
    assert!(doc["paths"]["/api/v1/audit/verify"]["get"].is_object());
    // Every error code of the catalogue is documented, with its meaning, on the problem body.
    let mut code = &doc["components"]["schemas"]["Problem"]["properties"]["code"];
    if let Some(r) = code["$ref"].as_str() {
        code = &doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")];
    }
    let listed: Vec<&str> =
        code["enum"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    let all: Vec<&str> = sigil_core::ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(listed, all);
    assert!(all.len() > 150, "{}", all.len());
    let described = code["description"].as_str().unwrap();
    assert!(described.contains("- `not_pending`: The request was decided already."), "{described}");
    // So is every audit action, on the audit event's `action`.
    let action = &doc["components"]["schemas"]["AuditActionName"]["description"];
    for a in sigil_core::audit::AuditAction::ALL {
        assert!(action.as_str().unwrap().contains(&format!("- `{a}`: ")), "{a}: {action}");
    }
    let ui = get("/docs/").await.unwrap();
    assert_eq!(ui.status(), 200);
    assert!(ui.text().await.unwrap().contains("swagger"));
    let init = get("/docs/swagger-initializer.js").await.unwrap().text().await.unwrap();
    assert!(init.contains("/openapi.json"), "{init}");
    s.stop().await;
}

/// A JSON body that arrives in `parts`, one every `gap`.
fn slow_body(parts: Vec<String>, gap: std::time::Duration) -> reqwest::Body {
    let stream = futures_util::stream::unfold(parts.into_iter(), move |mut it| async move {
        let next = it.next()?;
        tokio::time::sleep(gap).await;
        Some((Ok::<_, std::io::Error>(bytes::Bytes::from(next)), it))
    });
    reqwest::Body::wrap_stream(stream)
}

fn key_body_parts(name: &str) -> Vec<String> {
    vec![
        "{\"name\": ".to_owned(),
        format!("\"{name}\", "),
        "\"permissions\": [\"audit:read\"]}".to_owned(),
    ]
}

#[tokio::test]
async fn a_request_that_outlives_the_timeout_gets_a_503_problem() {
    let db = TestDb::sqlite();
    let toml = "[server]\nrequest_timeout_secs = 1\n";
    let s = TestServer::start_with(&db, Options { toml: toml.into(), ..Default::default() }).await;
    let body = slow_body(key_body_parts("slow"), std::time::Duration::from_millis(700));
    let r = s
        .admin(Method::POST, "/api/v1/api-keys")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let (st, b) = json(r).await;
    assert_eq!((st, b["code"].as_str()), (503, Some("request_timeout")), "{b}");
    let (_, list) =
        json(s.admin(Method::GET, "/api/v1/api-keys?name=slow").send().await.unwrap()).await;
    assert!(list["items"].as_array().unwrap().is_empty());
    s.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_lets_an_in_flight_request_finish() {
    let db = TestDb::sqlite();
    let s = TestServer::start(&db).await;
    let (client, url, key) = (s.client.clone(), s.url.clone(), s.admin_key.clone());
    let in_flight = tokio::spawn(async move {
        let body = slow_body(key_body_parts("late"), std::time::Duration::from_millis(300));
        client
            .post(format!("{url}/api/v1/api-keys"))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
    });
    // Shut down while the body is still arriving.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let url = s.url.clone();
    let probe = s.client.clone();
    let stopping = tokio::spawn(s.stop());
    let r = in_flight.await.unwrap().expect("the in-flight request completes");
    assert_eq!(r.status(), 201);
    stopping.await.unwrap();
    assert!(
        probe.get(format!("{url}/health/live")).send().await.is_err(),
        "no new connections after shutdown"
    );
}

#[tokio::test]
async fn a_body_that_is_not_a_json_object_is_refused() {
    let db = TestDb::sqlite();
    let s = TestServer::start(&db).await;
    for body in ["[null, null]", "\"x\"", "42", ""] {
        let r = s
            .admin(Method::POST, "/api/v1/operators")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let (st, b) = json(r).await;
        assert_eq!((st, b["code"].as_str()), (400, Some("invalid_json")), "{body}");
    }
    s.stop().await;
}

/// A body of which `sent` bytes arrive, and then nothing more, ever.
fn stalled_body(sent: usize) -> reqwest::Body {
    let first = futures_util::stream::once(async move {
        Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; sent]))
    });
    reqwest::Body::wrap_stream(futures_util::StreamExt::chain(
        first,
        futures_util::stream::pending(),
    ))
}

#[tokio::test]
async fn a_body_declared_too_large_is_refused_at_once_over_http1_and_http2() {
    let db = TestDb::sqlite();
    let toml = "[server]\nbody_limit_bytes = 65536\nrequest_timeout_secs = 20\n";
    let s = TestServer::start_with(&db, Options { toml: toml.into(), ..Default::default() }).await;
    let h1 = sigil_tests::client_http1(&s.data_dir().join("tls/ca.pem"));
    for (client, version) in
        [(&h1, reqwest::Version::HTTP_11), (&s.client, reqwest::Version::HTTP_2)]
    {
        for path in ["/api/v1/api-keys", "/api/v1/ext/nothing/here", "/csc/v2/auth/login"] {
            let started = std::time::Instant::now();
            let r = client
                .post(format!("{}{path}", s.url))
                .bearer_auth(&s.admin_key)
                .header("content-type", "application/json")
                .header("content-length", (20 * 1024 * 1024).to_string())
                .body(stalled_body(4096))
                .send();
            let r = tokio::time::timeout(std::time::Duration::from_secs(5), r)
                .await
                .expect("answered at once, without waiting for the body")
                .unwrap();
            assert_eq!(r.version(), version);
            assert_eq!(r.status(), 413, "{path} over {version:?}");
            let (_, b) = json(r).await;
            let code = b["code"].as_str().or(b["error"].as_str());
            assert!(matches!(code, Some("body_too_large" | "invalid_request")), "{b}");
            assert!(started.elapsed() < std::time::Duration::from_secs(5));
        }
        // A body with no declared length is cut at the limit as it is read: 413, not a reset.
        let chunks = futures_util::stream::iter(
            (0..64).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 4096]))),
        );
        let r = client
            .post(format!("{}/api/v1/api-keys", s.url))
            .bearer_auth(&s.admin_key)
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(chunks))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413, "{version:?}");
    }
    s.stop().await;
}
