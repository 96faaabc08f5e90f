//! Logs are structured (JSON when configured) and never contain a secret: this binary installs a
//! JSON subscriber at debug level that writes to memory, drives the server through key creation,
//! rotation, use and misuse, and searches everything logged for the secrets involved.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use reqwest::Method;
use serde_json::json;
use sigil_tests::{TestDb, TestServer};

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_secret_reaches_the_logs() {
    let buf = Buffer::default();
    let writer = buf.clone();
    tracing_subscriber::fmt()
        .json()
        .with_env_filter("debug")
        .with_writer(move || writer.clone())
        .init();
    let db = TestDb::sqlite();
    let s = TestServer::start(&db).await;
    let k = s.create_key(json!({"name": "logged", "permissions": ["api_keys:read"]})).await;
    let secret = k["key"].as_str().unwrap().to_owned();
    s.req(Method::GET, "/api/v1/api-keys", &secret).send().await.unwrap();
    let id = k["id"].as_str().unwrap();
    let rotated: serde_json::Value = s
        .admin(Method::POST, &format!("/api/v1/api-keys/{id}/rotate"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_secret = rotated["key"].as_str().unwrap().to_owned();
    s.req(Method::GET, "/api/v1/api-keys", &new_secret).send().await.unwrap();
    s.req(Method::GET, "/api/v1/api-keys", &secret).send().await.unwrap();
    s.client
        .get(format!("{}/api/v1/audit", s.url))
        .header("x-api-key", &s.admin_key)
        .send()
        .await
        .unwrap();
    // One access line per request, naming the caller, never a secret or a query.
    let r = s
        .admin(Method::GET, "/api/v1/certificates?q=secret-search-text")
        .header("x-request-id", "trace-me-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let admin = s.admin_key.clone();
    let audit_key = std::fs::read_to_string(s.data_dir().join("audit-key.pem")).unwrap();
    s.stop().await;

    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(logs.lines().count() > 5, "the server logged: {logs}");
    for line in logs.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
    for (what, s) in [("admin key", &admin), ("key", &secret), ("rotated key", &new_secret)] {
        // `sgk_<prefix>_<secret>`; the secret itself may contain `_`.
        let secret_part = s.splitn(3, '_').nth(2).unwrap();
        assert!(secret_part.len() >= 40);
        assert!(!logs.contains(secret_part), "the {what} was logged");
    }
    let access: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["target"] == "sigil::access")
        .collect();
    let line = access
        .iter()
        .find(|l| l["fields"]["request_id"] == "trace-me-1")
        .unwrap_or_else(|| panic!("no access line for the request:\n{logs}"));
    let f = &line["fields"];
    assert_eq!(line["level"], "INFO");
    assert_eq!(
        (f["method"].as_str(), f["route"].as_str()),
        (Some("GET"), Some("/api/v1/certificates"))
    );
    assert_eq!(f["path"], "/api/v1/certificates", "no query string");
    assert_eq!(f["status"], 200);
    assert_eq!(f["client"], "127.0.0.1");
    assert!(f["api_key_id"].as_str().is_some_and(|k| k.len() == 36), "{f}");
    assert!(f["ms"].as_str().is_some_and(|ms| ms.parse::<f64>().is_ok()), "{f}");
    // The request with the old, rotated-away key was refused: its line says why and names no one.
    let refused = access.iter().find(|l| l["fields"]["status"] == 401).expect("a refused request");
    assert!(refused["fields"]["code"].as_str().is_some_and(|c| c != "-"), "{refused}");
    assert_eq!(refused["fields"]["principal"], "-");
    // Every request the test made has its line.
    assert!(access.len() >= 7, "{} access lines", access.len());
    let leaked: Vec<&str> = logs.lines().filter(|l| l.contains("secret-search-text")).collect();
    assert!(leaked.is_empty(), "a query string was logged: {leaked:?}");
    let pem_body: String = audit_key.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!logs.contains(&pem_body[..40]), "the audit key was logged");
}
