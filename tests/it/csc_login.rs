//! CSC `auth/login` against password guessing, and a credential whose record cannot be stored:
//! consecutive wrong passwords lock a signer out for a while (every refusal looks the same),
//! an administrator can lift it, and a credential that fails after its certificate was issued
//! leaves that certificate revoked rather than valid and keyless.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sigil_tests::{Options, TestServer, backends, json};

/// POSTs `auth/login` with HTTP Basic; returns the status and the body.
async fn login(s: &TestServer, user: &str, password: &str) -> (u16, Value) {
    let url = format!("{}/csc/v2/auth/login", s.url);
    json(s.client.post(&url).basic_auth(user, Some(password)).send().await.unwrap()).await
}

async fn signer_view(s: &TestServer, id: &str) -> Value {
    let r = s.admin(Method::GET, &format!("/api/v1/signers/{id}")).send().await.unwrap();
    let (st, v) = json(r).await;
    assert_eq!(st, 200, "{v}");
    v
}

async fn patch_signer(s: &TestServer, id: &str, body: Value) -> Value {
    let r = s.admin(Method::PATCH, &format!("/api/v1/signers/{id}")).json(&body).send();
    let (st, v) = json(r.await.unwrap()).await;
    assert_eq!(st, 200, "{v}");
    v
}

#[tokio::test]
async fn wrong_passwords_lock_a_signer_out_until_it_lapses_or_is_lifted() {
    for db in backends().await {
        let toml = "[csc]\nlogin_retries = 3\nlogin_lock_secs = 2\ncache_ttl_ms = 0\n\
                    login_per_username_per_minute = 0\n"
            .to_owned();
        let s = TestServer::start_with(&db, Options { toml, ..Default::default() }).await;
        let id = s.signer("ivy", "ivy's password").await;
        let refused = (
            400,
            json!({"error": "authentication_error",
            "error_description": "Authentication failed."}),
        );
        // Two wrong passwords are counted; the right one forgets them.
        for _ in 0..2 {
            assert_eq!(login(&s, "ivy", "guess").await, refused);
        }
        assert_eq!(signer_view(&s, &id).await["failed_logins"], 2);
        assert_eq!(login(&s, "ivy", "ivy's password").await.0, 200);
        assert_eq!(signer_view(&s, &id).await["failed_logins"], 0);
        // Three in a row lock it out: then the right password gets the same answer as a wrong
        // one, or as a name that does not exist.
        for _ in 0..3 {
            assert_eq!(login(&s, "ivy", "guess").await, refused);
        }
        let v = signer_view(&s, &id).await;
        assert!(v["locked_until"].is_string(), "{v}");
        assert_eq!(login(&s, "ivy", "ivy's password").await, refused);
        assert_eq!(login(&s, "nobody", "ivy's password").await, refused);
        // An administrator lifts it.
        let v = patch_signer(&s, &id, json!({"unlock": true})).await;
        assert_eq!(
            (v["locked_until"].clone(), v["failed_logins"].clone()),
            (Value::Null, json!(0))
        );
        assert_eq!(login(&s, "ivy", "ivy's password").await.0, 200);
        // A new password lifts it too.
        for _ in 0..3 {
            login(&s, "ivy", "guess").await;
        }
        assert_eq!(login(&s, "ivy", "ivy's password").await, refused);
        patch_signer(&s, &id, json!({"password": "ivy's new password"})).await;
        assert_eq!(login(&s, "ivy", "ivy's new password").await.0, 200);
        // And it lapses by itself.
        for _ in 0..3 {
            login(&s, "ivy", "guess").await;
        }
        assert_eq!(login(&s, "ivy", "ivy's new password").await, refused);
        tokio::time::sleep(Duration::from_millis(2200)).await;
        assert_eq!(login(&s, "ivy", "ivy's new password").await.0, 200);
        assert_eq!(signer_view(&s, &id).await["locked_until"], Value::Null);
        // Each attempt is in the signer's trail with its outcome, never a password.
        let trail = s.trail("signer", &id).await;
        let outcomes: Vec<&str> = trail["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "csc.login")
            .map(|e| e["details"]["outcome"].as_str().unwrap())
            .collect();
        // Refusals of a locked-out signer are counted per address and minute: the first is in
        // the trail, the others in a `csc.login.repeated` summary.
        assert!(outcomes.contains(&"locked"), "{outcomes:?}");
        let outcomes: Vec<&str> = outcomes.into_iter().filter(|o| *o != "locked").collect();
        let wrong = "authentication_error";
        let mut expected = vec![wrong, wrong, "ok"];
        for _ in 0..3 {
            expected.extend([wrong, wrong, "locked_out", "ok"]);
        }
        assert_eq!(outcomes, expected);
        let text = trail.to_string();
        assert!(!text.contains("guess") && !text.contains("ivy's"), "{text}");
        let actions = s.trail_actions("signer", &id).await;
        assert_eq!(actions.iter().filter(|a| *a == "signer.update").count(), 2, "{actions:?}");
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_signer_is_never_locked_out_when_login_retries_is_zero() {
    for db in backends().await {
        let toml = "[csc]\nlogin_retries = 0\n".to_owned();
        let s = TestServer::start_with(&db, Options { toml, ..Default::default() }).await;
        let id = s.signer("jon", "jon's password").await;
        for _ in 0..8 {
            assert_eq!(login(&s, "jon", "guess").await.0, 400);
        }
        let v = signer_view(&s, &id).await;
        assert_eq!(
            (v["failed_logins"].clone(), v["locked_until"].clone()),
            (json!(8), Value::Null)
        );
        assert_eq!(login(&s, "jon", "jon's password").await.0, 200);
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_credential_that_cannot_be_stored_leaves_its_certificate_revoked() {
    for db in backends().await {
        let s = TestServer::start(&db).await;
        s.signer("kim", "kim's password").await;
        s.refuse_inserts("signing_credentials", "disk full").await;
        let r = s
            .admin(Method::POST, "/api/v1/signing-credentials")
            .json(&json!({"signer": "kim", "key_algorithm": "p256", "pin": "246802"}))
            .send()
            .await
            .unwrap();
        let (st, b) = json(r).await;
        assert_eq!((st, b["code"].as_str()), (503, Some("storage_unavailable")), "{b}");
        let (_, creds) =
            json(s.admin(Method::GET, "/api/v1/signing-credentials").send().await.unwrap()).await;
        assert_eq!(creds["items"], json!([]), "nothing half-made is listed");
        // The certificate issued for it is in the inventory, revoked.
        let r = s.admin(Method::GET, "/api/v1/certificates?profile=document-signing").send();
        let (_, certs) = json(r.await.unwrap()).await;
        let items = certs["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{certs}");
        assert_eq!(items[0]["status"], "revoked", "{certs}");
        assert_eq!(items[0]["revocation_reason"], "cessationOfOperation", "{certs}");
        s.stop().await;
        db.cleanup().await;
    }
}

/// The CSC `auth/login` answer for `user`/`password` sent from a fresh connection.
async fn login_status(
    url: String,
    client: reqwest::Client,
    user: String,
    pw: String,
) -> (u16, Option<String>) {
    let r = client
        .post(format!("{url}/csc/v2/auth/login"))
        .basic_auth(user, Some(pw))
        .send()
        .await
        .unwrap();
    let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    (r.status().as_u16(), retry)
}

#[tokio::test]
async fn a_concurrent_burst_gets_no_more_guesses_than_the_retry_budget() {
    for db in backends().await {
        let toml = "[csc]\nlogin_retries = 5\ncache_ttl_ms = 0\nargon2_queue = 100\n\
                    login_per_address_per_minute = 0\nlogin_per_username_per_minute = 0\n"
            .to_owned();
        let s = TestServer::start_with(&db, Options { toml, ..Default::default() }).await;
        let id = s.signer("burst", "the right one").await;
        // 59 wrong guesses and the right password last, all at once.
        let mut tasks = vec![];
        for i in 0..60 {
            let pw = if i == 59 { "the right one".to_owned() } else { format!("guess {i}") };
            tasks.push(tokio::spawn(login_status(
                s.url.clone(),
                s.client.clone(),
                "burst".into(),
                pw,
            )));
        }
        let mut answers = vec![];
        for t in tasks {
            answers.push(t.await.unwrap().0);
        }
        assert!(answers[..59].iter().all(|a| *a == 400), "{answers:?}");
        // In the trail: no more wrong passwords were tried than the budget, and no login
        // succeeded after the lockout was recorded.
        let (_, trail) = json(
            s.admin(
                Method::GET,
                &format!("/api/v1/audit?object_id={id}&action=csc.login&limit=500"),
            )
            .send()
            .await
            .unwrap(),
        )
        .await;
        let outcomes: Vec<&str> = trail["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["details"]["outcome"].as_str().unwrap_or("?"))
            .collect();
        let tried = outcomes
            .iter()
            .filter(|o| matches!(**o, "authentication_error" | "locked_out"))
            .count();
        let locked_at = outcomes.iter().position(|o| *o == "locked_out");
        let ok_at = outcomes.iter().position(|o| *o == "ok");
        assert!(locked_at.is_some(), "{outcomes:?}");
        if let Some(ok) = ok_at {
            assert!(ok < locked_at.unwrap(), "a login succeeded after the lockout: {outcomes:?}");
            assert_eq!(answers[59], 200);
        } else {
            assert_eq!(answers[59], 400);
            assert_eq!(tried, 5, "{outcomes:?}");
        }
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn logins_are_throttled_per_address_and_per_username_before_any_hashing() {
    for db in backends().await {
        let toml = "[csc]\nlogin_per_address_per_minute = 5\nlogin_per_username_per_minute = 3\n"
            .to_owned();
        let s = TestServer::start_with(&db, Options { toml, ..Default::default() }).await;
        s.signer("thea", "thea's password").await;
        let go = |user: &str, pw: &str| {
            login_status(s.url.clone(), s.client.clone(), user.into(), pw.into())
        };
        for _ in 0..3 {
            assert_eq!(go("thea", "guess").await.0, 400);
        }
        // The username's budget is spent for this minute, even for the right password.
        let (st, retry) = go("Thea", "thea's password").await;
        assert_eq!(st, 429);
        assert!(retry.unwrap().parse::<u64>().unwrap() <= 60);
        // Other names from the same address, up to the address's budget.
        assert_eq!(go("someone", "x").await.0, 400);
        assert_eq!(
            go("someone-else", "x").await.0,
            429,
            "the fourth... sixth attempt from one address"
        );
        s.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn password_hashing_beyond_its_bound_is_shed_with_503_and_retry_after() {
    for db in backends().await {
        let toml = "[csc]\nargon2_concurrency = 1\nargon2_queue = 1\n\
                    login_per_address_per_minute = 0\nlogin_per_username_per_minute = 0\n"
            .to_owned();
        let s = TestServer::start_with(&db, Options { toml, ..Default::default() }).await;
        let mut tasks = vec![];
        for i in 0..24 {
            tasks.push(tokio::spawn(login_status(
                s.url.clone(),
                s.client.clone(),
                format!("nobody{i}"),
                "pw".into(),
            )));
        }
        let (mut refused, mut shed) = (0, 0);
        for t in tasks {
            match t.await.unwrap() {
                (400, _) => refused += 1,
                (503, Some(r)) => {
                    assert_eq!(r, "1");
                    shed += 1;
                }
                other => panic!("unexpected answer {other:?}"),
            }
        }
        assert!(refused >= 2 && shed >= 1, "{refused} refused, {shed} shed");
        // The server recovers at once.
        assert_eq!(login(&s, "nobody", "pw").await.0, 400);
        s.stop().await;
        db.cleanup().await;
    }
}
