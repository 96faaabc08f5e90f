//! The load generator's CSC mode: `signatures/signHash` with a P-256 (or P-384, RSA-2048,
//! RSA-3072) credential through `/csc/v1`, each request one distinct SHA-256 digest, signed and audited. Every client logs
//! in once, authorizes a SAD for 1,000 signatures with the PIN, and authorizes again when it
//! is spent (those authorizations run inside the measured time but are not latency samples).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Signatures one SAD allows (the credential's multisign).
const PER_SAD: usize = 1000;
const USER: &str = "loadgen";
const PASSWORD: &str = "loadgen-password";
/// The credential's PIN.
pub const PIN: &str = "135790";

/// What the benchmark signs with.
#[derive(Debug, Clone)]
pub struct Setup {
    url: String,
    credential: String,
    token: String,
    sign_algo: &'static str,
}

impl Setup {
    /// The credential's id.
    pub fn credential(&self) -> &str {
        &self.credential
    }

    /// The signer's access token.
    pub fn token(&self) -> &str {
        &self.token
    }
}

/// The signature algorithm OID signHash is asked for with a key of type `alg` (SHA-256
/// digests: ECDSA with SHA-256, or RSA PKCS#1 v1.5 with SHA-256).
fn sign_algo(alg: &str) -> Result<&'static str> {
    Ok(match alg {
        "p256" | "p384" => "1.2.840.10045.4.3.2",
        "rsa-2048" | "rsa-3072" => "1.2.840.113549.1.1.11",
        other => bail!("--key-algorithm is p256, p384, rsa-2048 or rsa-3072, not {other}"),
    })
}

/// Creates the signer and a credential with a key of type `alg` (SCAL 1, multisign 1,000) as
/// the administrator `key`, and logs in.
pub async fn setup(client: &reqwest::Client, url: &str, key: &str, alg: &str) -> Result<Setup> {
    let sign_algo = sign_algo(alg)?;
    let r = client
        .post(format!("{url}/api/v1/signers"))
        .bearer_auth(key)
        .json(&json!({"username": USER, "password": PASSWORD}))
        .send()
        .await?;
    if !r.status().is_success() && r.status() != 409 {
        bail!("creating the signer: {}", r.text().await?);
    }
    let r = client
        .post(format!("{url}/api/v1/signing-credentials"))
        .bearer_auth(key)
        .json(&json!({"signer": USER, "key_algorithm": alg, "pin": PIN, "scal": 1,
            "multisign": PER_SAD}))
        .send()
        .await?;
    if r.status() != 201 {
        bail!("creating the credential: {}", r.text().await?);
    }
    let c: Value = r.json().await?;
    let credential = c["credential_id"].as_str().context("credential_id")?.to_owned();
    let r = client
        .post(format!("{url}/csc/v1/auth/login"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await?;
    let v: Value = r.json().await?;
    let token = v["access_token"].as_str().context("access_token")?.to_owned();
    Ok(Setup { url: url.to_owned(), credential, token, sign_algo })
}

/// Authorizes a SAD with the PIN; a 503 (the server shedding Argon2 work) is retried after its
/// `Retry-After`, as a well-behaved client does.
async fn authorize(client: &reqwest::Client, s: &Setup) -> Result<String> {
    for _ in 0..20 {
        let r = client
            .post(format!("{}/csc/v1/credentials/authorize", s.url))
            .bearer_auth(&s.token)
            .json(&json!({"credentialID": s.credential, "numSignatures": PER_SAD, "PIN": PIN}))
            .send()
            .await?;
        if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            let secs = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(1u64);
            tokio::time::sleep(Duration::from_secs(secs)).await;
            continue;
        }
        let v: Value = r.json().await?;
        return Ok(v["SAD"].as_str().context("SAD")?.to_owned());
    }
    bail!("authorize: still shed after 20 tries")
}

/// Runs requests `start..start + count` over `concurrency` clients; returns the latencies of
/// the signatures that came back, and the number of failures.
pub async fn run(
    client: &reqwest::Client,
    s: &Setup,
    concurrency: usize,
    start: usize,
    count: usize,
) -> (Vec<Duration>, usize) {
    let next = Arc::new(AtomicUsize::new(start));
    let end = start + count;
    let endpoint = format!("{}/csc/v1/signatures/signHash", s.url);
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, s, next, endpoint) =
                (client.clone(), s.clone(), next.clone(), endpoint.clone());
            tokio::spawn(async move {
                let (mut lat, mut errors) = (Vec::new(), 0usize);
                let (mut sad, mut left) = (String::new(), 0usize);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= end {
                        break;
                    }
                    if left == 0 {
                        match authorize(&client, &s).await {
                            Ok(v) => (sad, left) = (v, PER_SAD),
                            Err(e) => {
                                errors += 1;
                                eprintln!("authorize failed: {e}");
                                continue;
                            }
                        }
                    }
                    let digest = STANDARD.encode(Sha256::digest(i.to_le_bytes()));
                    let body = format!(
                        r#"{{"credentialID":"{}","SAD":"{sad}","hash":["{digest}"],"signAlgo":"{}"}}"#,
                        s.credential, s.sign_algo
                    );
                    let t = Instant::now();
                    let r = client
                        .post(&endpoint)
                        .bearer_auth(&s.token)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await;
                    left -= 1;
                    match r {
                        Ok(r) if r.status() == 200 => {
                            let _ = r.bytes().await;
                            lat.push(t.elapsed());
                        }
                        Ok(r) => {
                            errors += 1;
                            if errors < 3 {
                                eprintln!("HTTP {}: {}", r.status(), r.text().await.unwrap_or_default());
                            }
                        }
                        Err(e) => {
                            errors += 1;
                            if errors < 3 {
                                eprintln!("request failed: {e}");
                            }
                        }
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let (mut lat, mut errors) = (Vec::new(), 0);
    for t in tasks {
        if let Ok((l, e)) = t.await {
            lat.extend(l);
            errors += e;
        }
    }
    (lat, errors)
}
