//! The durability contract, as a user meets it: `sigil serve` killed with SIGKILL in the
//! middle of a load of issuances and signatures, started again on the same data directory and
//! database, still has every certificate it answered 201 for and an audit event for every
//! signature it returned, and its audit chain verifies. On SQLite this runs through the group
//! writer and the WAL shim (sigil-sqlite-wal), whose buffered frames must all be written by the
//! time a commit is answered.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sigil_tests::TestDb;
use tokio::process::{Child, Command};

/// `sigil serve` as a process of its own on `data_dir` and database `db`, and its URL.
async fn serve(data_dir: &Path, db: &TestDb) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sigil_it"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("SIGIL__DATABASE__URL", &db.url)
        .env("SIGIL_LOG", "error")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = sigil_tests::listening_url(&mut child).await.expect("sigil serve did not start");
    (child, url)
}

/// GET `url` as the holder of `key`: the status and the JSON body.
async fn get_json(client: &reqwest::Client, url: String, key: &str) -> (u16, Value) {
    let r = client.get(url).bearer_auth(key).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// A SAD for 1,000 signatures (retried while the server sheds PIN checks with a 503).
async fn authorize(c: &reqwest::Client, url: &str, token: &str, cred: &str) -> String {
    for _ in 0..50 {
        let r = c
            .post(format!("{url}/csc/v1/credentials/authorize"))
            .bearer_auth(token)
            .json(&json!({"credentialID": cred, "numSignatures": 1000,
                "PIN": sigil_tests::signhash::PIN}))
            .send()
            .await
            .unwrap();
        if r.status() == 503 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        return v["SAD"].as_str().unwrap().to_owned();
    }
    panic!("authorize: shed 50 times");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_under_load_keeps_every_certificate_and_signature_it_acknowledged() {
    for db in sigil_tests::backends().await {
        let dir = tempfile::tempdir().unwrap();
        let (mut child, url) = serve(dir.path(), &db).await;
        let key = std::fs::read_to_string(dir.path().join("admin.key")).unwrap();
        let key = key.trim().to_owned();
        let client = sigil_tests::bench::client(dir.path(), 16).unwrap();
        let setup = sigil_tests::signhash::setup(&client, &url, &key, "p256").await.unwrap();
        let (cred, token) = (setup.credential().to_owned(), setup.token().to_owned());
        let sad = authorize(&client, &url, &token, &cred).await;
        let csrs = Arc::new(Mutex::new(sigil_tests::bench::p256_csrs(3000, "kill")));
        let issued = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
        // The request id of every signature returned, to find its audit event by.
        let signed = Arc::new(Mutex::new(Vec::<String>::new()));
        let mut tasks = Vec::new();
        for t in 0..12 {
            let (client, url, key) = (client.clone(), url.clone(), key.clone());
            let (csrs, issued, signed) = (csrs.clone(), issued.clone(), signed.clone());
            let (cred, token, sad) = (cred.clone(), token.clone(), sad.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0.. {
                    // Two tasks in three issue, the third signs.
                    let sent = if t % 3 < 2 {
                        let Some(csr) = csrs.lock().unwrap().pop() else { return };
                        client
                            .post(format!("{url}/api/v1/certificates"))
                            .bearer_auth(&key)
                            .json(&json!({"csr": csr, "profile": "tls-client"}))
                            .send()
                            .await
                    } else {
                        let digest = Sha256::digest(format!("kill-{t}-{i}"));
                        let hash = base64::engine::general_purpose::STANDARD.encode(digest);
                        client
                            .post(format!("{url}/csc/v1/signatures/signHash"))
                            .bearer_auth(&token)
                            .json(&json!({"credentialID": cred, "SAD": sad, "hash": [hash],
                                "signAlgo": "1.2.840.10045.4.3.2"}))
                            .send()
                            .await
                    };
                    // The kill cuts connections and answers short: those were not acknowledged.
                    let Ok(r) = sent else { return };
                    let status = r.status().as_u16();
                    let request_id = r
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let Ok(body) = r.json::<Value>().await else { return };
                    match status {
                        201 => issued.lock().unwrap().push((
                            body["id"].as_str().unwrap().to_owned(),
                            body["serial"].as_str().unwrap().to_owned(),
                        )),
                        200 if body["signatures"].as_array().is_some_and(|s| s.len() == 1) => {
                            assert!(!request_id.is_empty(), "a signature without a request id");
                            signed.lock().unwrap().push(request_id)
                        }
                        _ => panic!("{status}: {body}"),
                    }
                }
            }));
        }
        // SIGKILL once both kinds of write have been acknowledged, with requests in flight.
        let start = Instant::now();
        while (issued.lock().unwrap().len() < 100 || signed.lock().unwrap().len() < 50)
            && start.elapsed() < Duration::from_secs(60)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        child.start_kill().unwrap();
        let status = child.wait().await.unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9));
        for t in tasks {
            t.await.unwrap();
        }
        let issued = issued.lock().unwrap().clone();
        let signed = signed.lock().unwrap().clone();
        let n = signed.len();
        assert!(issued.len() >= 100 && n >= 50, "{} issued, {n} signed", issued.len());
        eprintln!("{}: killed after {} issued and {n} signed", db.backend, issued.len());

        let (child, url) = serve(dir.path(), &db).await;
        let client = sigil_tests::bench::client(dir.path(), 4).unwrap();
        let get = |path: String| get_json(&client, format!("{url}{path}"), &key);
        for (id, serial) in &issued {
            let (status, v) = get(format!("/api/v1/certificates/{id}")).await;
            assert_eq!(status, 200, "certificate {id}, answered 201, is gone");
            assert_eq!(v["serial"].as_str(), Some(serial.as_str()));
        }
        // The signatures' audit events, paged through as a client would: one for each
        // signature returned, found by its request id.
        let (mut recorded, mut cursor) = (std::collections::HashSet::new(), String::new());
        loop {
            let (status, v) = get(format!(
                "/api/v1/audit?action=csc.sign_hash&object_id={cred}&outcome=success\
                 &limit=500{cursor}"
            ))
            .await;
            assert_eq!(status, 200, "{v}");
            let items = v["items"].as_array().unwrap_or_else(|| panic!("no items: {v}"));
            recorded
                .extend(items.iter().filter_map(|e| e["request_id"].as_str()).map(String::from));
            match v["next_cursor"].as_str() {
                Some(c) => cursor = format!("&cursor={c}"),
                None => break,
            }
        }
        for id in &signed {
            assert!(recorded.contains(id), "signature of request {id}, returned, is not audited");
        }
        let (_, v) = get("/api/v1/audit/verify".into()).await;
        assert_eq!(v["valid"], json!(true), "{v}");
        drop(child);
        db.cleanup().await;
    }
}
