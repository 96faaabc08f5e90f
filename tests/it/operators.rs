//! Roles group permissions; operators hold roles; an API key bound to an operator never exceeds
//! the operator's roles and stops working the moment the operator is disabled.

use reqwest::Method;
use serde_json::json;
use sigil_tests::{TestServer, backends, json};

#[tokio::test]
async fn roles_are_managed_with_built_ins_protected_and_no_escalation() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let (st, roles) = json(s.admin(Method::GET, "/api/v1/roles").send().await.unwrap()).await;
        assert_eq!(st, 200);
        let names: Vec<_> =
            roles.as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "administrator",
                "auditor",
                "device-officer",
                "organization-manager",
                "registration-officer",
                "request-approver",
                "security-officer",
                "service-desk"
            ]
        );
        let r = s.admin(Method::POST, "/api/v1/roles")
            .json(&json!({"name": "help-desk", "description": "Help desk", "permissions": ["api_keys:read"]}))
            .send().await.unwrap();
        assert_eq!(r.status(), 201);
        let (st, b) = json(s.admin(Method::PUT, "/api/v1/roles/help-desk")
            .json(&json!({"description": "Help desk v2", "permissions": ["api_keys:read", "audit:read"]}))
            .send().await.unwrap()).await;
        assert_eq!((st, b["permissions"].as_array().unwrap().len()), (200, 2));
        let (st, b) = json(
            s.admin(Method::PUT, "/api/v1/roles/auditor")
                .json(&json!({"permissions": ["*"]}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((st, b["code"].as_str()), (409, Some("built_in_role")));
        let (st, b) = json(
            s.admin(Method::POST, "/api/v1/roles")
                .json(&json!({"name": "Bad Name", "permissions": []}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((st, b["code"].as_str()), (400, Some("invalid_name")));
        // A key with roles:write but little else cannot mint a powerful role.
        let k = s.create_key(json!({"name": "role-writer", "permissions": ["roles:write"]})).await;
        let (st, b) = json(
            s.req(Method::POST, "/api/v1/roles", k["key"].as_str().unwrap())
                .json(&json!({"name": "god", "permissions": ["*"]}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((st, b["code"].as_str()), (403, Some("permission_escalation")));
        // A held role cannot be deleted; a free one can.
        let (st, _) = json(
            s.admin(Method::POST, "/api/v1/operators")
                .json(&json!({"username": "hd1", "roles": ["help-desk"]}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(st, 201);
        let (st, b) =
            json(s.admin(Method::DELETE, "/api/v1/roles/help-desk").send().await.unwrap()).await;
        assert_eq!((st, b["code"].as_str()), (409, Some("role_in_use")));
        s.admin(Method::POST, "/api/v1/roles")
            .json(&json!({"name": "spare", "permissions": ["audit:read"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            s.admin(Method::DELETE, "/api/v1/roles/spare").send().await.unwrap().status(),
            204
        );
        assert_eq!(s.admin(Method::GET, "/api/v1/roles/spare").send().await.unwrap().status(), 404);
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_key_bound_to_an_operator_is_limited_by_its_roles_and_stops_when_disabled() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let (st, op) = json(s.admin(Method::POST, "/api/v1/operators")
            .json(&json!({"username": "alice", "display_name": "Alice Auditor", "email": "alice@example.org", "roles": ["auditor"]}))
            .send().await.unwrap()).await;
        assert_eq!(st, 201, "{op}");
        let op_id = op["id"].as_str().unwrap();
        let k = s
            .create_key(json!({"name": "alice-key", "permissions": ["*"], "operator_id": op_id}))
            .await;
        assert_eq!(k["operator_id"], op_id);
        let key = k["key"].as_str().unwrap();
        // The key says "*", the operator's role says audit only: audit only.
        assert_eq!(s.req(Method::GET, "/api/v1/audit", key).send().await.unwrap().status(), 200);
        let (st, b) = json(s.req(Method::GET, "/api/v1/api-keys", key).send().await.unwrap()).await;
        assert_eq!((st, b["code"].as_str()), (403, Some("permission_denied")));
        // Her actions carry her operator id.
        s.req(Method::GET, "/api/v1/audit/export?format=json", key).send().await.unwrap();
        // Disabled: refused at once; enabled: back.
        let (st, b) = json(
            s.admin(Method::POST, &format!("/api/v1/operators/{op_id}/disable"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((st, b["status"].as_str()), (200, Some("disabled")));
        let (st, b) = json(s.req(Method::GET, "/api/v1/audit", key).send().await.unwrap()).await;
        assert_eq!((st, b["code"].as_str()), (401, Some("principal_disabled")));
        s.admin(Method::POST, &format!("/api/v1/operators/{op_id}/enable")).send().await.unwrap();
        assert_eq!(s.req(Method::GET, "/api/v1/audit", key).send().await.unwrap().status(), 200);
        // Roles change with the operator.
        let (st, _) = json(
            s.admin(Method::PATCH, &format!("/api/v1/operators/{op_id}"))
                .json(&json!({"roles": ["security-officer"]}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(st, 200);
        assert_eq!(s.req(Method::GET, "/api/v1/api-keys", key).send().await.unwrap().status(), 200);
        // Unknown operators and roles are refused by name.
        let (st, b) = json(s.admin(Method::POST, "/api/v1/api-keys")
            .json(&json!({"name": "ghost-key", "permissions": ["audit:read"], "operator_id": "01a20721-c8e6-7322-a928-24ab094d9989"}))
            .send().await.unwrap()).await;
        assert_eq!((st, b["code"].as_str()), (400, Some("unknown_operator")));
        let (st, b) = json(
            s.admin(Method::POST, "/api/v1/operators")
                .json(&json!({"username": "bob", "roles": ["wizard"]}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((st, b["code"].as_str()), (400, Some("unknown_role")));
        let (st, b) = json(
            s.admin(Method::POST, "/api/v1/operators")
                .json(&json!({"username": "alice"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((st, b["code"].as_str()), (409, Some("name_taken")));
        // Lists filter by status and role.
        s.admin(Method::POST, "/api/v1/operators")
            .json(&json!({"username": "carol", "roles": ["auditor"]}))
            .send()
            .await
            .unwrap();
        let (_, l) =
            json(s.admin(Method::GET, "/api/v1/operators?role=auditor").send().await.unwrap())
                .await;
        assert_eq!(l["items"].as_array().unwrap().len(), 1);
        assert_eq!(l["items"][0]["username"], "carol");
        let (_, l) = json(
            s.admin(Method::GET, "/api/v1/operators?status=active&name=ALI").send().await.unwrap(),
        )
        .await;
        assert_eq!(l["items"].as_array().unwrap().len(), 1);
        let actions = s.trail_actions("operator", op_id).await;
        assert_eq!(
            actions,
            ["operator.create", "operator.disable", "operator.enable", "operator.update"]
        );
        s.stop().await;
        db.cleanup().await;
    }
}
