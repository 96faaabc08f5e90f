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
    let pem_body: String = audit_key.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!logs.contains(&pem_body[..40]), "the audit key was logged");
}
