//! Organizations, divisions and registration offices, and operators' visibility scopes: an
//! operator of office A never sees office B (404, not 403) and cannot hand out a scope wider
//! than its own.

use reqwest::Method;
use serde_json::{Value, json};
use sigil_tests::{TestServer, backends, json};

struct Org {
    north: String,
    south: String,
    a: String,
    b: String,
    c: String,
}

/// Acme with divisions North (offices A and C) and South (office B).
async fn acme(s: &TestServer) -> Org {
    let org = s
        .create("/api/v1/organizations", json!({"name": "Acme", "metadata": {"vat": "SI1"}}))
        .await;
    let oid = org["id"].as_str().unwrap();
    let div = |name: &str| json!({"name": name, "organization_id": oid});
    let north =
        s.create("/api/v1/divisions", div("North")).await["id"].as_str().unwrap().to_owned();
    let south =
        s.create("/api/v1/divisions", div("South")).await["id"].as_str().unwrap().to_owned();
    let office = |code: &str, d: &str| {
        json!({"division_id": d, "code": code, "name": format!("Office {code}"),
               "email": format!("{}@acme.example", code.to_lowercase()),
               "metadata": {"hours": "8-16"}})
    };
    let a =
        s.create("/api/v1/offices", office("A", &north)).await["id"].as_str().unwrap().to_owned();
    let b =
        s.create("/api/v1/offices", office("B", &south)).await["id"].as_str().unwrap().to_owned();
    let c =
        s.create("/api/v1/offices", office("C", &north)).await["id"].as_str().unwrap().to_owned();
    Org { north, south, a, b, c }
}

fn ids(list: &Value) -> Vec<String> {
    let mut v: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn an_operator_of_office_a_sees_office_a_only_and_gets_404_for_office_b() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let o = acme(&s).await;
        let reader = ["organizations:read", "operators:read"];
        s.create("/api/v1/roles", json!({"name": "clerk", "permissions": reader})).await;
        let (alice, ak) =
            s.operator_key("alice", &["clerk"], json!({"offices": [o.a]}), &reader).await;
        let (bob, _) =
            s.operator_key("bob", &["clerk"], json!({"divisions": [o.north]}), &reader).await;
        let get = |path: String| {
            let (s, ak) = (&s, ak.clone());
            async move { json(s.req(Method::GET, &path, &ak).send().await.unwrap()).await }
        };

        let (st, offices) = get("/api/v1/offices".into()).await;
        assert_eq!(st, 200);
        assert_eq!(ids(&offices), vec![o.a.clone()]);
        assert_eq!(get(format!("/api/v1/offices/{}", o.a)).await.0, 200);
        let (st, b) = get(format!("/api/v1/offices/{}", o.b)).await;
        assert_eq!(
            (st, b["code"].as_str()),
            (404, Some("not_found")),
            "existence does not leak: {b}"
        );
        assert_eq!(
            get(format!("/api/v1/offices?division_id={}", o.south)).await.1["items"],
            json!([])
        );
        let (_, divisions) = get("/api/v1/divisions".into()).await;
        assert_eq!(ids(&divisions), vec![o.north.clone()]);
        assert_eq!(get(format!("/api/v1/divisions/{}", o.south)).await.0, 404);
        let (_, orgs) = get("/api/v1/organizations".into()).await;
        assert_eq!(orgs["items"].as_array().unwrap().len(), 1);

        // Operators: alice sees herself, not bob, whose scope is wider than hers.
        let (_, ops) = get("/api/v1/operators".into()).await;
        assert_eq!(ids(&ops), vec![alice.clone()]);
        assert_eq!(get(format!("/api/v1/operators/{bob}")).await.0, 404);
        // The administrator sees bob's effective scope: both offices of North.
        let (st, scope) = json(
            s.admin(Method::GET, &format!("/api/v1/operators/{bob}/scope")).send().await.unwrap(),
        )
        .await;
        assert_eq!(st, 200, "{scope}");
        assert_eq!(scope["unrestricted"], false);
        assert_eq!(
            ids(&json!({"items": scope["offices"]})),
            sorted(vec![o.a.clone(), o.c.clone()])
        );
        assert_eq!(scope["divisions"][0]["name"], "North");
        let (_, mine) = get(format!("/api/v1/operators/{alice}/scope")).await;
        assert_eq!(ids(&json!({"items": mine["offices"]})), vec![o.a.clone()]);
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_restricted_manager_changes_only_its_own_offices_and_cannot_widen_scopes() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let o = acme(&s).await;
        let perms = ["organizations:*", "operators:read", "operators:create", "operators:update"];
        s.create("/api/v1/roles", json!({"name": "office-manager", "permissions": perms})).await;
        let (_, key) =
            s.operator_key("carol", &["office-manager"], json!({"offices": [o.a]}), &perms).await;
        let req = |m: Method, path: String, body: Value| {
            let (s, key) = (&s, key.clone());
            async move { json(s.req(m, &path, &key).json(&body).send().await.unwrap()).await }
        };
        // Her own office: metadata is merged, and the change is on the office's trail.
        let (st, a) = req(
            Method::PATCH,
            format!("/api/v1/offices/{}", o.a),
            json!({"metadata": {"hours": null, "printer": "P-7"}, "phone": "+386 1 000"}),
        )
        .await;
        assert_eq!(st, 200, "{a}");
        assert_eq!(a["metadata"], json!({"printer": "P-7"}));
        assert_eq!(s.trail_actions("office", &o.a).await, ["office.create", "office.update"]);
        // Another office does not exist for her.
        let (st, _) =
            req(Method::PATCH, format!("/api/v1/offices/{}", o.b), json!({"name": "x"})).await;
        assert_eq!(st, 404);
        // The structure above offices belongs to unrestricted operators.
        let (st, b) = req(
            Method::POST,
            "/api/v1/offices".into(),
            json!({"division_id": o.north, "code": "D", "name": "D"}),
        )
        .await;
        assert_eq!((st, b["code"].as_str()), (403, Some("scope_restricted")));
        // No scope escalation: not unrestricted, not an office she does not see.
        let (st, b) = req(
            Method::POST,
            "/api/v1/operators".into(),
            json!({"username": "eve", "unrestricted": true}),
        )
        .await;
        assert_eq!((st, b["code"].as_str()), (403, Some("scope_escalation")), "{b}");
        let (st, b) = req(
            Method::POST,
            "/api/v1/operators".into(),
            json!({"username": "eve", "offices": [o.b]}),
        )
        .await;
        assert_eq!((st, b["code"].as_str()), (400, Some("unknown_office")), "{b}");
        let (st, b) = req(
            Method::POST,
            "/api/v1/operators".into(),
            json!({"username": "eve", "divisions": [o.north]}),
        )
        .await;
        assert_eq!(
            (st, b["code"].as_str()),
            (400, Some("unknown_division")),
            "she sees only A of North: {b}"
        );
        // Without divisions or offices, a restricted caller's operator would be unrestricted.
        let (st, b) =
            req(Method::POST, "/api/v1/operators".into(), json!({"username": "eve"})).await;
        assert_eq!((st, b["code"].as_str()), (403, Some("scope_escalation")), "{b}");
        let (st, eve) = req(
            Method::POST,
            "/api/v1/operators".into(),
            json!({"username": "eve", "offices": [o.a]}),
        )
        .await;
        assert_eq!((st, eve["unrestricted"].as_bool()), (201, Some(false)), "{eve}");
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn organization_input_is_validated_and_clashes_are_conflicts() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let o = acme(&s).await;
        let post = |path: &'static str, body: Value| {
            let s = &s;
            async move { json(s.admin(Method::POST, path).json(&body).send().await.unwrap()).await }
        };
        let (st, b) =
            post("/api/v1/offices", json!({"division_id": o.north, "code": "A", "name": "again"}))
                .await;
        assert_eq!((st, b["code"].as_str()), (409, Some("code_taken")));
        let (st, b) = post(
            "/api/v1/offices",
            json!({"division_id": o.north, "code": "no spaces", "name": "x"}),
        )
        .await;
        assert_eq!((st, b["code"].as_str()), (400, Some("invalid_code")));
        let (st, b) = post(
            "/api/v1/offices",
            json!({"division_id": "0190b7a4-0000-7000-8000-000000000000", "code": "Z", "name": "x"}),
        )
        .await;
        assert_eq!((st, b["code"].as_str()), (400, Some("unknown_division")));
        let (st, b) = post("/api/v1/organizations", json!({"name": "Acme"})).await;
        assert_eq!((st, b["code"].as_str()), (409, Some("name_taken")));
        let (st, b) = post("/api/v1/organizations", json!({"name": "X", "metadata": [1]})).await;
        assert_eq!((st, b["code"].as_str()), (400, Some("invalid_metadata")));
        let (st, b) = post("/api/v1/divisions", json!({"name": "North"})).await;
        assert_eq!((st, b["code"].as_str()), (400, Some("missing_field")));
        // Pagination and the office filter by division.
        let (_, p1) =
            json(s.admin(Method::GET, "/api/v1/offices?limit=2").send().await.unwrap()).await;
        assert_eq!(p1["items"].as_array().unwrap().len(), 2);
        let cursor = p1["next_cursor"].as_str().unwrap();
        let (_, p2) = json(
            s.admin(Method::GET, &format!("/api/v1/offices?limit=2&cursor={cursor}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(p2["items"].as_array().unwrap().len(), 1);
        assert_eq!(p2["next_cursor"], Value::Null);
        let (_, north) = json(
            s.admin(Method::GET, &format!("/api/v1/offices?division_id={}", o.north))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(ids(&north), sorted(vec![o.a.clone(), o.c.clone()]));
        let _ = (&o.b, &o.south);
        s.stop().await;
        db.cleanup().await;
    }
}
