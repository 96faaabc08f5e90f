//! API key rules on the wire: expiry, revocation, IP whitelist, rate limit, permission, rotation.

use reqwest::Method;
use serde_json::json;
use sigil_tests::{TestServer, backends, json};

#[tokio::test]
async fn the_first_start_admin_key_works_and_is_private() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let key_file = s.data_dir().join("admin.key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let (st, body) = json(s.admin(Method::GET, "/api/v1/api-keys").send().await.unwrap()).await;
        assert_eq!(st, 200, "{body}");
        assert_eq!(body["items"][0]["name"], "admin");
        assert!(!body.to_string().contains(&s.admin_key), "secrets are never listed");
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn missing_unknown_and_malformed_keys_get_401() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let url = format!("{}/api/v1/api-keys", s.url);
        let r = s.client.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let (_, b) = json(r).await;
        assert_eq!(b["code"], "credentials_missing");
        for bad in ["nonsense", "sgk_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"] {
            let (st, b) = json(s.client.get(&url).bearer_auth(bad).send().await.unwrap()).await;
            assert_eq!((st, b["code"].as_str()), (401, Some("credentials_invalid")), "{bad}");
        }
        // A valid prefix with a wrong secret is still unknown.
        let forged = format!("{}X", &s.admin_key[..s.admin_key.len() - 1]);
        let (st, _) =
            json(s.client.get(&url).header("x-api-key", forged).send().await.unwrap()).await;
        assert_eq!(st, 401);
        // The X-API-Key header is accepted like the bearer token.
        let r = s.client.get(&url).header("x-api-key", &s.admin_key).send().await.unwrap();
        assert_eq!(r.status(), 200);
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_revoked_key_is_refused_at_once() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let k = s.create_key(json!({"name": "temp", "permissions": ["api_keys:read"]})).await;
        let secret = k["key"].as_str().unwrap();
        assert_eq!(
            s.req(Method::GET, "/api/v1/api-keys", secret).send().await.unwrap().status(),
            200
        );
        let id = k["id"].as_str().unwrap();
        let (st, b) = json(
            s.admin(Method::DELETE, &format!("/api/v1/api-keys/{id}?reason=leaked"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((st, b["status"].as_str()), (200, Some("revoked")));
        let (st, b) =
            json(s.req(Method::GET, "/api/v1/api-keys", secret).send().await.unwrap()).await;
        assert_eq!((st, b["code"].as_str()), (401, Some("api_key_revoked")));
        // Revoking again is a harmless retry.
        let r = s.admin(Method::DELETE, &format!("/api/v1/api-keys/{id}")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        // Rotating a revoked key is a conflict.
        let r = s
            .admin(Method::POST, &format!("/api/v1/api-keys/{id}/rotate"))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 409);
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn an_expired_key_is_refused() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let soon = (time::OffsetDateTime::now_utc() + time::Duration::seconds(2))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let k = s
            .create_key(json!({"name": "short", "expires": soon, "permissions": ["api_keys:read"]}))
            .await;
        let secret = k["key"].as_str().unwrap();
        assert_eq!(
            s.req(Method::GET, "/api/v1/api-keys", secret).send().await.unwrap().status(),
            200
        );
        tokio::time::sleep(std::time::Duration::from_millis(2300)).await;
        let (st, b) =
            json(s.req(Method::GET, "/api/v1/api-keys", secret).send().await.unwrap()).await;
        assert_eq!((st, b["code"].as_str()), (401, Some("api_key_expired")));
        // Past dates are refused at creation.
        let r = s.admin(Method::POST, "/api/v1/api-keys")
            .json(&json!({"name": "past", "expires": "2001-01-01T00:00:00Z", "permissions": ["api_keys:read"]}))
            .send().await.unwrap();
        let (st, b) = json(r).await;
        assert_eq!((st, b["code"].as_str()), (400, Some("invalid_expiry")));
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn the_ip_whitelist_admits_only_listed_addresses() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let only2 = s.create_key(json!({"name": "two", "permissions": ["api_keys:read"], "ip_whitelist": ["127.0.0.2"]})).await;
        let net = s.create_key(json!({"name": "net", "permissions": ["api_keys:read"], "ip_whitelist": ["127.0.0.0/30"]})).await;
        let url = format!("{}/api/v1/api-keys", s.url);
        let from2 = sigil_tests::client_bound(
            &s.data_dir().join("tls/ca.pem"),
            "127.0.0.2".parse().unwrap(),
        );
        // The default client connects from 127.0.0.1.
        let (st, b) = json(
            s.client.get(&url).bearer_auth(only2["key"].as_str().unwrap()).send().await.unwrap(),
        )
        .await;
        assert_eq!((st, b["code"].as_str()), (403, Some("ip_not_allowed")));
        let (st, _) =
            json(from2.get(&url).bearer_auth(only2["key"].as_str().unwrap()).send().await.unwrap())
                .await;
        assert_eq!(st, 200);
        let (st, _) = json(
            s.client.get(&url).bearer_auth(net["key"].as_str().unwrap()).send().await.unwrap(),
        )
        .await;
        assert_eq!(st, 200);
        // Bad entries are rejected by name.
        let r = s.admin(Method::POST, "/api/v1/api-keys")
            .json(&json!({"name": "bad", "permissions": ["api_keys:read"], "ip_whitelist": ["10.0.0.0/33"]}))
            .send().await.unwrap();
        let (st, b) = json(r).await;
        assert_eq!(st, 400);
        assert!(b["detail"].as_str().unwrap().contains("10.0.0.0/33"));
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn the_rate_limit_answers_429_with_retry_after() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let k = s.create_key(json!({"name": "limited", "permissions": ["api_keys:read"], "rate_limit": {"requests": 3, "per": "day"}})).await;
        let secret = k["key"].as_str().unwrap();
        for _ in 0..3 {
            assert_eq!(
                s.req(Method::GET, "/api/v1/api-keys", secret).send().await.unwrap().status(),
                200
            );
        }
        let r = s.req(Method::GET, "/api/v1/api-keys", secret).send().await.unwrap();
        assert_eq!(r.status(), 429);
        let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=86_400).contains(&retry));
        let (_, b) = json(r).await;
        assert_eq!(b["code"], "rate_limited");
        // Other keys are not affected.
        assert_eq!(s.admin(Method::GET, "/api/v1/api-keys").send().await.unwrap().status(), 200);
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_missing_permission_is_named_in_the_403() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let k = s.create_key(json!({"name": "reader", "permissions": ["api_keys:read"]})).await;
        let secret = k["key"].as_str().unwrap();
        let (st, b) = json(s.req(Method::GET, "/api/v1/audit", secret).send().await.unwrap()).await;
        assert_eq!((st, b["code"].as_str()), (403, Some("permission_denied")));
        assert!(b["detail"].as_str().unwrap().contains("audit:read"), "{b}");
        // A key cannot mint a key with more than it holds.
        let maker = s
            .create_key(
                json!({"name": "maker", "permissions": ["api_keys:create", "api_keys:read"]}),
            )
            .await;
        let r = s
            .req(Method::POST, "/api/v1/api-keys", maker["key"].as_str().unwrap())
            .json(&json!({"name": "escalate", "permissions": ["*"]}))
            .send()
            .await
            .unwrap();
        let (st, b) = json(r).await;
        assert_eq!((st, b["code"].as_str()), (403, Some("permission_escalation")));
        // Unknown permissions are rejected by name.
        let r = s
            .admin(Method::POST, "/api/v1/api-keys")
            .json(&json!({"name": "typo", "permissions": ["audit:raed"]}))
            .send()
            .await
            .unwrap();
        let (st, b) = json(r).await;
        assert_eq!((st, b["code"].as_str()), (400, Some("unknown_permission")));
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn rotation_issues_a_new_secret_and_honours_the_grace_period() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let a = s.create_key(json!({"name": "rot", "permissions": ["api_keys:read"]})).await;
        let b = s.create_key(json!({"name": "rot2", "permissions": ["api_keys:read"]})).await;
        let (old_a, old_b) = (a["key"].as_str().unwrap(), b["key"].as_str().unwrap());
        let rotate = |id: &str, grace: i64| {
            s.admin(Method::POST, &format!("/api/v1/api-keys/{id}/rotate"))
                .json(&json!({"grace_period_seconds": grace}))
        };
        let (st, ra) = json(rotate(a["id"].as_str().unwrap(), 0).send().await.unwrap()).await;
        assert_eq!(st, 200, "{ra}");
        let (_, rb) = json(rotate(b["id"].as_str().unwrap(), 3600).send().await.unwrap()).await;
        let get = |k: &str| s.req(Method::GET, "/api/v1/api-keys", k).send();
        assert_eq!(get(old_a).await.unwrap().status(), 401, "no grace: the old secret dies");
        assert_eq!(get(ra["key"].as_str().unwrap()).await.unwrap().status(), 200);
        assert_eq!(get(old_b).await.unwrap().status(), 200, "grace: the old secret still works");
        assert_eq!(get(rb["key"].as_str().unwrap()).await.unwrap().status(), 200);
        assert!(rb["previous_secret_valid_until"].is_string());
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn keys_are_updated_listed_with_filters_and_paged() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        for i in 0..5 {
            s.create_key(json!({"name": format!("batch-{i}"), "permissions": ["api_keys:read"]}))
                .await;
        }
        let k = s.create_key(json!({"name": "other", "permissions": ["api_keys:read"]})).await;
        let id = k["id"].as_str().unwrap();
        let r = s
            .admin(Method::PATCH, &format!("/api/v1/api-keys/{id}"))
            .json(&json!({"description": "changed", "rate_limit": {"requests": 10, "per": "hour"}}))
            .send()
            .await
            .unwrap();
        let (st, b) = json(r).await;
        assert_eq!((st, b["description"].as_str()), (200, Some("changed")));
        assert_eq!(b["rate_limit"]["per"], "hour");
        let r = s
            .admin(Method::PATCH, &format!("/api/v1/api-keys/{id}"))
            .json(&json!({"rate_limit": null}))
            .send()
            .await
            .unwrap();
        let (_, b) = json(r).await;
        assert!(b["rate_limit"].is_null());
        // Name uniqueness.
        let r = s
            .admin(Method::PATCH, &format!("/api/v1/api-keys/{id}"))
            .json(&json!({"name": "batch-1"}))
            .send()
            .await
            .unwrap();
        assert_eq!(json(r).await.1["code"], "name_taken");
        // Paging through the batch by name filter, two at a time.
        let mut seen = vec![];
        let mut cursor: Option<String> = None;
        loop {
            let mut path = "/api/v1/api-keys?name=BATCH&limit=2".to_owned();
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let (_, page) = json(s.admin(Method::GET, &path).send().await.unwrap()).await;
            for i in page["items"].as_array().unwrap() {
                seen.push(i["name"].as_str().unwrap().to_owned());
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        assert_eq!(seen, (0..5).map(|i| format!("batch-{i}")).collect::<Vec<_>>());
        let (st, b) =
            json(s.admin(Method::GET, "/api/v1/api-keys?limit=0").send().await.unwrap()).await;
        assert_eq!((st, b["code"].as_str()), (400, Some("invalid_limit")));
        let (st, _) =
            json(s.admin(Method::GET, "/api/v1/api-keys?colour=red").send().await.unwrap()).await;
        assert_eq!(st, 400);
        let (st, _) =
            json(s.admin(Method::GET, "/api/v1/api-keys/not-a-uuid").send().await.unwrap()).await;
        assert_eq!(st, 404);
        s.stop().await;
        db.cleanup().await;
    }
}
