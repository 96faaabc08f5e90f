//! People with extended attributes: custom field definitions validated on every write, the
//! validate endpoint, scopes, and validator plugins that add rules to or take over the built-in
//! ones at the `person` and `custom-field` hooks.

use reqwest::Method;
use serde_json::{Value, json};
use sigil_tests::{Options, TestServer, backends, json};

/// An organization with offices A and B; returns their ids.
async fn offices(s: &TestServer) -> (String, String) {
    let [a, b]: [String; 2] = s.offices(&["A", "B"]).await.try_into().unwrap();
    (a, b)
}

async fn call(s: &TestServer, m: Method, path: &str, body: Value) -> (u16, Value) {
    json(s.admin(m, path).json(&body).send().await.unwrap()).await
}

#[tokio::test]
async fn custom_fields_are_enforced_on_every_person_write_and_reported_by_validate() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let (a, _) = offices(&s).await;
        let (st, f) = call(
            &s,
            Method::PUT,
            "/api/v1/custom-fields/employee_no",
            json!({"type": "string", "required": true, "pattern": "E[0-9]{5}", "label": "Employee number"}),
        )
        .await;
        assert_eq!(st, 201, "{f}");
        for (name, def) in [
            ("clearance", json!({"type": "string", "allowed_values": ["basic", "secret"]})),
            ("start_date", json!({"type": "date"})),
        ] {
            let (st, f) =
                call(&s, Method::PUT, &format!("/api/v1/custom-fields/{name}"), def).await;
            assert_eq!(st, 201, "{f}");
        }
        let (st, b) = call(
            &s,
            Method::PUT,
            "/api/v1/custom-fields/bad",
            json!({"type": "string", "pattern": "("}),
        )
        .await;
        assert_eq!((st, b["code"].as_str()), (400, Some("invalid_pattern")));

        let person = |attrs: Value| {
            json!({"office_id": a, "given_name": "Ana", "family_name": "Novak",
                   "email": "ana@acme.example", "external_id": "HR-1", "attributes": attrs})
        };
        let (st, b) = call(&s, Method::POST, "/api/v1/people", person(json!({}))).await;
        assert_eq!((st, b["code"].as_str()), (400, Some("invalid_attributes")), "{b}");
        assert!(b["detail"].as_str().unwrap().contains("employee_no"), "{b}");
        let (st, ana) = call(
            &s,
            Method::POST,
            "/api/v1/people",
            person(json!({"employee_no": "E12345", "start_date": "2024-03-01"})),
        )
        .await;
        assert_eq!(st, 201, "{ana}");
        let id = ana["id"].as_str().unwrap().to_owned();
        let path = format!("/api/v1/people/{id}");
        let (st, b) =
            call(&s, Method::PATCH, &path, json!({"attributes": {"clearance": "top"}})).await;
        assert_eq!((st, b["code"].as_str()), (400, Some("invalid_attributes")), "{b}");
        let (st, b) =
            call(&s, Method::PATCH, &path, json!({"attributes": {"employee_no": null}})).await;
        assert_eq!(
            (st, b["code"].as_str()),
            (400, Some("invalid_attributes")),
            "a required field stays: {b}"
        );
        let (st, b) = call(
            &s,
            Method::PATCH,
            &path,
            json!({"attributes": {"clearance": "secret", "start_date": null}}),
        )
        .await;
        assert_eq!(st, 200, "{b}");
        assert_eq!(b["attributes"], json!({"employee_no": "E12345", "clearance": "secret"}));
        let (_, got) = call(&s, Method::GET, &path, json!({})).await;
        assert_eq!(got["attributes"]["clearance"], "secret");

        // The validate endpoint reports every problem by field, and stores nothing.
        let (st, v) = call(
            &s,
            Method::POST,
            "/api/v1/custom-fields/validate",
            json!({"attributes": {"employee_no": "X1", "start_date": "2024-02-30", "shoe": 44}}),
        )
        .await;
        assert_eq!((st, v["valid"].as_bool()), (200, Some(false)), "{v}");
        let mut codes: Vec<String> = v["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| format!("{}:{}", e["field"].as_str().unwrap(), e["code"].as_str().unwrap()))
            .collect();
        codes.sort();
        assert_eq!(
            codes,
            ["employee_no:pattern_mismatch", "shoe:unknown_attribute", "start_date:wrong_type"]
        );
        let (_, v) = call(
            &s,
            Method::POST,
            "/api/v1/custom-fields/validate",
            json!({"attributes": {"employee_no": "E00001"}}),
        )
        .await;
        assert_eq!(v, json!({"valid": true, "errors": []}));

        // Unique source ids; personal data stays out of the audit trail (field names only).
        let (st, b) =
            call(&s, Method::POST, "/api/v1/people", person(json!({"employee_no": "E54321"})))
                .await;
        assert_eq!((st, b["code"].as_str()), (409, Some("external_id_taken")));
        let trail = s.trail("person", &id).await;
        let text = trail.to_string();
        assert!(!text.contains("E12345") && !text.contains("Novak"), "{text}");
        assert!(text.contains("attributes.clearance"), "{text}");
        assert_eq!(s.trail_actions("person", &id).await, ["person.create", "person.update"]);
        // Filters.
        let (_, l) =
            call(&s, Method::GET, "/api/v1/people?q=nov&external_id=HR-1", json!({})).await;
        assert_eq!(l["items"].as_array().unwrap().len(), 1);
        let (_, l) =
            call(&s, Method::GET, "/api/v1/people?email=ANA@acme.example", json!({})).await;
        assert_eq!(l["items"].as_array().unwrap().len(), 1);
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn people_outside_an_operators_offices_do_not_exist_for_it() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        let (a, b) = offices(&s).await;
        let mk =
            |office: &str, n: &str| json!({"office_id": office, "given_name": n, "family_name": n});
        let pa = s.create("/api/v1/people", mk(&a, "Ana")).await["id"].as_str().unwrap().to_owned();
        let pb = s.create("/api/v1/people", mk(&b, "Bor")).await["id"].as_str().unwrap().to_owned();
        let (_, key) = s
            .operator_key(
                "reg-a",
                &["registration-officer"],
                json!({"offices": [a]}),
                &["people:*", "organizations:read"],
            )
            .await;
        let get = |p: String| {
            let (s, key) = (&s, key.clone());
            async move { json(s.req(Method::GET, &p, &key).send().await.unwrap()).await }
        };
        let (_, list) = get("/api/v1/people".into()).await;
        let ids: Vec<&str> =
            list["items"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
        assert_eq!(ids, [pa.as_str()]);
        assert_eq!(get(format!("/api/v1/people/{pb}")).await.0, 404);
        assert_eq!(get(format!("/api/v1/people?office_id={b}")).await.1["items"], json!([]));
        let r = s
            .req(Method::PATCH, &format!("/api/v1/people/{pb}"), &key)
            .json(&json!({"given_name": "X"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        let (st, e) = json(
            s.req(Method::POST, "/api/v1/people", &key).json(&mk(&b, "Cene")).send().await.unwrap(),
        )
        .await;
        assert_eq!((st, e["code"].as_str()), (400, Some("unknown_office")));
        // Moving a person out of scope is refused the same way.
        let (st, e) = json(
            s.req(Method::PATCH, &format!("/api/v1/people/{pa}"), &key)
                .json(&json!({"office_id": b}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((st, e["code"].as_str()), (400, Some("unknown_office")));
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn validator_plugins_add_person_rules_and_can_take_over_custom_field_rules() {
    let dir = env!("SIGIL_TEST_PLUGINS");
    let toml = format!(
        "[plugins.load.rules]\nfile = \"{dir}/person_rules.wasm\"\ngrants = [\"config\", \"log\"]\n\
         hooks = [\"person\", \"custom-field\"]\n[plugins.load.rules.config]\n\
         email_domains = \"acme.example\"\nchecksum_field = \"card_no\"\noverride = \"yes\"\n"
    );
    for db in backends().await {
        let s =
            TestServer::start_with(&db, Options { toml: toml.clone(), ..Default::default() }).await;
        let (a, _) = offices(&s).await;
        // The built-in rule would refuse an 11-digit card number; the plugin takes over.
        let (st, _) = call(
            &s,
            Method::PUT,
            "/api/v1/custom-fields/card_no",
            json!({"type": "string", "pattern": "[0-9]{5}"}),
        )
        .await;
        assert_eq!(st, 201);
        let person = |email: &str, card: &str| {
            json!({"office_id": a, "given_name": "Ana", "family_name": "Novak", "email": email,
                   "attributes": {"card_no": card}})
        };
        let (st, b) =
            call(&s, Method::POST, "/api/v1/people", person("ana@evil.example", "79927398713"))
                .await;
        assert_eq!((st, b["code"].as_str()), (400, Some("validation_failed")), "{b}");
        assert!(b["detail"].as_str().unwrap().contains("evil.example"), "{b}");
        let (st, b) =
            call(&s, Method::POST, "/api/v1/people", person("ana@acme.example", "79927398710"))
                .await;
        assert_eq!((st, b["code"].as_str()), (400, Some("invalid_attributes")), "{b}");
        assert!(b["detail"].as_str().unwrap().contains("check digit"), "{b}");
        let (st, b) =
            call(&s, Method::POST, "/api/v1/people", person("ana@acme.example", "79927398713"))
                .await;
        assert_eq!(st, 201, "the plugin's rule replaces the pattern: {b}");
        let (_, v) = call(
            &s,
            Method::POST,
            "/api/v1/custom-fields/validate",
            json!({"attributes": {"card_no": "1234"}}),
        )
        .await;
        assert_eq!(v["valid"], false, "{v}");
        assert_eq!(v["errors"][0]["code"], "plugin");
        s.stop().await;
        db.cleanup().await;
    }
}
