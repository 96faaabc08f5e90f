//! Completion of person records from an external identity source: the `hr-directory` plugin
//! asks an HR system over outbound HTTP, and Sigil fills what the record lacks through the
//! ordinary validated, audited person update.
//!
//! The HR system is a test double (a real HTTP server on loopback, serving a fixed employee
//! list): a customer's HR system cannot run here.

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use reqwest::Method;
use serde_json::{Value, json};
use sigil_tests::{Options, TestServer, backends, json};

fn employee(id: &str) -> Option<Value> {
    match id {
        "E100" => {
            Some(json!({"employee_id": "E100", "given_name": "Ana", "family_name": "Novak-Kralj",
            "email": "ana.novak@example.com", "phone": "+386 1 234 5678", "department": "Finance", "badge": 42,
            "cost_center": "CC-7"}))
        }
        "E200" => Some(json!({"employee_id": "E200", "given_name": "Bor", "family_name": "Bad",
            "email": "not-an-email"})),
        _ => None,
    }
}

/// The HR double: `GET /employees/{id}` and `GET /employees?email=`; `E500` is an outage.
async fn hr_system() -> String {
    async fn by_id(Path(id): Path<String>) -> Result<axum::Json<Value>, StatusCode> {
        if id == "E500" {
            return Err(StatusCode::INTERNAL_SERVER_ERROR);
        }
        employee(&id).map(axum::Json).ok_or(StatusCode::NOT_FOUND)
    }
    async fn by_email(
        Query(q): Query<std::collections::HashMap<String, String>>,
    ) -> axum::Json<Value> {
        let email = q.get("email").cloned().unwrap_or_default();
        let found: Vec<Value> = ["E100", "E200"]
            .iter()
            .filter_map(|id| employee(id))
            .filter(|e| e["email"] == email.as_str())
            .collect();
        axum::Json(Value::Array(found))
    }
    let app = axum::Router::new()
        .route("/employees/{id}", axum::routing::get(by_id))
        .route("/employees", axum::routing::get(by_email));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    origin
}

async fn call(s: &TestServer, m: Method, path: &str, body: Value) -> (u16, Value) {
    json(s.admin(m, path).json(&body).send().await.unwrap()).await
}

#[tokio::test]
async fn a_person_record_is_completed_from_the_hr_system_through_the_identity_plugin() {
    let hr = hr_system().await;
    let dir = env!("SIGIL_TEST_PLUGINS");
    for db in backends().await {
        let toml = format!(
            "[plugins.load.hr]\nfile = \"{dir}/hr_directory.wasm\"\ngrants = [\"config\", \"outbound-http\"]\n\
             allowed_hosts = [\"{hr}\"]\ntimeout_ms = 2000\n[plugins.load.hr.config]\nurl = \"{hr}\"\n"
        );
        let s = TestServer::start_with(&db, Options { toml, ..Default::default() }).await;
        let (st, sources) = call(&s, Method::GET, "/api/v1/identity-sources", json!(null)).await;
        assert_eq!((st, sources), (200, json!([{"id": "hr"}])));
        for (name, ty) in [("badge", "integer"), ("department", "string")] {
            let (st, f) = call(
                &s,
                Method::PUT,
                &format!("/api/v1/custom-fields/{name}"),
                json!({"type": ty}),
            )
            .await;
            assert_eq!(st, 201, "{f}");
        }
        let office = s.offices(&["A"]).await.remove(0);
        let person = |ext: &str, family: &str| json!({"office_id": office, "external_id": ext, "given_name": "Ana", "family_name": family});
        let ana = s.create("/api/v1/people", person("E100", "Novak")).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let path = format!("/api/v1/people/{ana}/complete");

        // A dry run with overwrite reports every difference and writes nothing.
        let (st, c) =
            call(&s, Method::POST, &path, json!({"overwrite": true, "dry_run": true})).await;
        assert_eq!(st, 200, "{c}");
        let mut done: Vec<&str> =
            c["completed"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        done.sort_unstable();
        assert_eq!(
            done,
            ["attributes.badge", "attributes.department", "email", "family_name", "phone"]
        );
        assert!(c["person"]["email"].is_null(), "{c}");
        assert_eq!(c["ignored"], json!(["attributes.cost_center"]), "not a custom field here");

        // Completion fills only what is missing: the family name on file stays.
        let (st, c) = call(&s, Method::POST, &path, json!({})).await;
        assert_eq!(st, 200, "{c}");
        let p = &c["person"];
        assert_eq!(
            (p["email"].as_str(), p["phone"].as_str()),
            (Some("ana.novak@example.com"), Some("+386 1 234 5678"))
        );
        assert_eq!(p["family_name"], "Novak");
        assert_eq!(
            p["attributes"],
            json!({"badge": 42, "department": "Finance"}),
            "typed as the custom field says"
        );
        let (_, stored) =
            call(&s, Method::GET, &format!("/api/v1/people/{ana}"), json!(null)).await;
        assert_eq!(stored["email"], "ana.novak@example.com");
        let trail = s.trail("person", &ana).await;
        let ev = trail["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["action"] == "person.complete")
            .expect("audited");
        assert_eq!(ev["details"]["source"], "hr", "{ev}");

        // With overwrite the source wins; a second run has nothing left to do.
        let (st, c) =
            call(&s, Method::POST, &path, json!({"source": "hr", "overwrite": true})).await;
        assert_eq!((st, c["completed"].clone()), (200, json!(["family_name"])), "{c}");
        assert_eq!(c["person"]["family_name"], "Novak-Kralj");
        let (_, c) = call(&s, Method::POST, &path, json!({"overwrite": true})).await;
        assert_eq!(c["completed"], json!([]));

        // Someone the HR system does not know; an HR outage; HR data that fails validation.
        let nobody = s.create("/api/v1/people", person("E404", "Nobody")).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (st, c) =
            call(&s, Method::POST, &format!("/api/v1/people/{nobody}/complete"), json!({})).await;
        assert_eq!((st, c["found"].as_bool()), (200, Some(false)), "{c}");
        let down = s.create("/api/v1/people", person("E500", "Down")).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (st, c) =
            call(&s, Method::POST, &format!("/api/v1/people/{down}/complete"), json!({})).await;
        assert_eq!((st, c["code"].as_str()), (502, Some("identity_source_failed")), "{c}");
        // The source's own words (its status, its address) go to the log, not to the client.
        assert!(!c["detail"].as_str().unwrap().contains("http"), "{c}");
        let bad = s.create("/api/v1/people", person("E200", "Bad")).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (st, c) =
            call(&s, Method::POST, &format!("/api/v1/people/{bad}/complete"), json!({})).await;
        assert_eq!(st, 400, "{c}");
        let (_, stored) =
            call(&s, Method::GET, &format!("/api/v1/people/{bad}"), json!(null)).await;
        assert!(stored["email"].is_null(), "nothing was written: {stored}");

        // Looking someone up before they are enrolled; an unknown source.
        let (st, l) = call(
            &s,
            Method::POST,
            "/api/v1/identity-sources/lookup",
            json!({"known": {"email": "ana.novak@example.com"}}),
        )
        .await;
        assert_eq!((st, l["found"].as_bool()), (200, Some(true)), "{l}");
        assert_eq!(l["fields"]["external_id"], "E100");
        let (st, l) = call(
            &s,
            Method::POST,
            "/api/v1/identity-sources/lookup",
            json!({"source": "ldap", "known": {"email": "x@example.com"}}),
        )
        .await;
        assert_eq!((st, l["code"].as_str()), (400, Some("unknown_source")), "{l}");
        s.stop().await;
        db.cleanup().await;
    }
}
