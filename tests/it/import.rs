//! Batch import of operators (JSON and CSV): every row validated like a single create and
//! reported; all-or-nothing writes nothing when a row is bad, best effort writes the good rows.

use reqwest::Method;
use serde_json::{Value, json};
use sigil_tests::{TestServer, backends, json};

async fn import(s: &TestServer, mode: &str, ctype: &str, body: String) -> (u16, Value) {
    json(
        s.admin(Method::POST, &format!("/api/v1/operators/import?mode={mode}"))
            .header("content-type", ctype)
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn usernames(s: &TestServer) -> Vec<String> {
    let (_, l) =
        json(s.admin(Method::GET, "/api/v1/operators?limit=500").send().await.unwrap()).await;
    let mut v: Vec<String> = l["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["username"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn an_import_with_bad_rows_writes_nothing_all_or_nothing_and_the_good_rows_best_effort() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        s.create("/api/v1/operators", json!({"username": "taken"})).await;
        let csv = "username,email,roles,unrestricted\n\
                   ana,ana@acme.example,auditor,\n\
                   bad name,,auditor,\n\
                   cene,cene@acme.example,nosuchrole,\n\
                   ana,,auditor,\n\
                   taken,,,\n\
                   dora,dora@acme.example,auditor;service-desk,false\n";
        let (st, r) = import(&s, "all_or_nothing", "text/csv", csv.into()).await;
        assert_eq!(st, 200, "{r}");
        assert_eq!(
            (r["committed"].as_bool(), r["total"].as_u64(), r["created"].as_u64()),
            (Some(false), Some(6), Some(0))
        );
        let codes: Vec<String> = r["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                format!(
                    "{}:{}",
                    x["row"],
                    x["code"].as_str().unwrap_or(x["status"].as_str().unwrap())
                )
            })
            .collect();
        assert_eq!(codes[..4], ["1:valid", "2:invalid_username", "3:unknown_role", "4:name_taken"]);
        assert_eq!(usernames(&s).await, ["taken"], "nothing was written");

        let (st, r) = import(&s, "best_effort", "text/csv", csv.into()).await;
        assert_eq!(st, 200, "{r}");
        assert_eq!(
            (r["committed"].as_bool(), r["created"].as_u64(), r["failed"].as_u64()),
            (Some(true), Some(2), Some(4))
        );
        let taken = r["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["username"] == "taken")
            .unwrap()
            .clone();
        assert_eq!(
            (taken["status"].as_str(), taken["code"].as_str()),
            (Some("failed"), Some("name_taken")),
            "{taken}"
        );
        assert_eq!(usernames(&s).await, ["ana", "dora", "taken"]);
        let dora = r["rows"][5]["id"].as_str().unwrap().to_owned();
        let (_, d) =
            json(s.admin(Method::GET, &format!("/api/v1/operators/{dora}")).send().await.unwrap())
                .await;
        assert_eq!(d["roles"], json!(["auditor", "service-desk"]));
        // The creations are audited, tagged with their import.
        let trail = s.trail("operator", &dora).await;
        assert!(trail["items"][0]["details"]["import"].is_string(), "{trail}");

        // JSON: all good rows go in together; an unknown field fails its row only.
        let rows = json!([{"username": "eva", "roles": ["auditor"]}, {"username": "fred", "colour": "red"}]);
        let (_, r) = import(&s, "all_or_nothing", "application/json", rows.to_string()).await;
        assert_eq!(
            (r["committed"].as_bool(), r["rows"][1]["code"].as_str()),
            (Some(false), Some("invalid_row")),
            "{r}"
        );
        let rows = json!([{"username": "eva", "roles": ["auditor"]}, {"username": "fred"}]);
        let (_, r) = import(&s, "all_or_nothing", "application/json", rows.to_string()).await;
        assert_eq!((r["committed"].as_bool(), r["created"].as_u64()), (Some(true), Some(2)), "{r}");
        // Wrong media type, bad mode, bad CSV header.
        let (st, e) = import(&s, "best_effort", "text/plain", "x".into()).await;
        assert_eq!((st, e["code"].as_str()), (415, Some("unsupported_media_type")));
        let (st, e) = import(&s, "sometimes", "text/csv", "username\nx\n".into()).await;
        assert_eq!((st, e["code"].as_str()), (400, Some("invalid_query")));
        let (st, e) = import(&s, "best_effort", "text/csv", "login\nx\n".into()).await;
        assert_eq!((st, e["code"].as_str()), (400, Some("invalid_csv")));
        s.stop().await;
        db.cleanup().await;
    }
}
