//! Side-by-side benchmark of Sigil against its peers on this machine, measured with wrk
//! (1 thread, keep-alive connections), in alternating rounds so that both see the same machine:
//!
//! - issuance: Sigil's `POST /api/v1/certificates` (HTTPS, profile tls-client, durable
//!   commit of the certificate and its audit event) against Debian's cfssl 1.2
//!   (`/api/v1/cfssl/sign`, plain HTTP, SQLite certdb in WAL mode, started as the connector
//!   tests start it), every request a distinct P-256 CSR;
//! - signHash: Sigil's `/csc/v1/signatures/signHash` (HTTPS, P-256 credential, SAD for 1,000
//!   signatures, SAD spent and audit event committed per signature) against
//!   certomancer-csc-dummy (pip, Python, plain HTTP, no persistence), one distinct SHA-256
//!   digest per call.
//!
//! Afterwards it checks what the rates claim: every certificate and signature recorded, the
//! audit chain valid, spent SADs refused, and a pass of signatures verified against each
//! credential's public key.
//!
//! ```sh
//! cargo build --release --workspace --bins
//! target/release/compare                      # both, 3 rounds of 10 s, 16 connections
//! target/release/compare --only issue --rounds 5 --seconds 20
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark tool

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use clap::Parser;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sigil_tests::TestDb;
use sigil_tests::bench::{self, WrkRun};

/// Sigil against cfssl (issuance) and certomancer-csc-dummy (signHash), with wrk.
#[derive(Debug, Parser)]
struct Args {
    /// `issue`, `sign-hash` or `both`.
    #[arg(long, default_value = "both")]
    only: String,
    /// Rounds per server (each round runs Sigil, then the peer).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds per wrk run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// wrk connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Highest rate expected of any server: sizes the distinct bodies prepared per run (and the
    /// SADs authorized for them: a run past it would sign with spent SADs and fail). By default
    /// 16,000/s for issuance and 32,000/s for signHash: on this machine's AMD EPYC (2 cores)
    /// Sigil has issued up to 11,300/s and signed up to 23,200/s at 16 connections.
    #[arg(long)]
    max_rate: Option<usize>,
    /// SQLite synchronous mode of the spawned Sigil (`full`, the default, or `normal`).
    #[arg(long, default_value = "full")]
    synchronous: String,
    /// Run Sigil on PostgreSQL: a fresh database on the server `SIGIL_TEST_DATABASE_URL`
    /// names (dropped afterwards).
    #[arg(long)]
    postgres: bool,
    /// Keep the spawned Sigil's SQLite writer thread on this CPU (`database.sqlite_writer_cpu`;
    /// by default it is not pinned).
    #[arg(long)]
    writer_cpu: Option<usize>,
    /// Keep each of the spawned Sigil's async worker threads on a CPU of its own
    /// (`server.pin_workers`; by default they are not pinned).
    #[arg(long)]
    pin_workers: bool,
}

/// The default `--max-rate` of each operation.
const ISSUE_MAX_RATE: usize = 16_000;
const SIGN_MAX_RATE: usize = 32_000;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn line(who: &str, round: usize, r: &WrkRun, cpu_us: Option<f64>) {
    println!(
        "  round {round} {who:<12} {:>7.0}/s  p50 {:>5.2} ms  p99 {:>6.2} ms  {:>7} requests  \
         {} non-2xx  {} socket errors  wrk CPU {:.0} µs{}",
        r.rate,
        r.p50_ms,
        r.p99_ms,
        r.requests,
        r.non_2xx,
        r.socket_errors,
        r.client_cpu_us,
        cpu_us.map(|c| format!("  server CPU {c:.0} µs/request")).unwrap_or_default()
    );
}

/// Runs wrk against a server whose pid is known and returns the run with the server's CPU time
/// per completed request, in microseconds.
fn wrk_with_cpu(url: &str, script: &Path, args: &Args, pid: u32) -> Result<(WrkRun, Option<f64>)> {
    let before = bench::cpu_ticks(pid);
    let r = bench::wrk(url, script, args.connections, args.seconds)?;
    let cpu = before
        .zip(bench::cpu_ticks(pid))
        .map(|(a, b)| (b - a) as f64 * 1e4 / r.requests.max(1) as f64);
    Ok((r, cpu))
}

/// Every one of Sigil's answers must be a success; a peer's failures are reported (and counted
/// in its rate as wrk counts them), since they say nothing about Sigil.
fn check_failures(ours: &[WrkRun], peer: &[WrkRun], peer_name: &str) -> Result<()> {
    let bad = |runs: &[WrkRun]| runs.iter().map(|r| r.non_2xx + r.socket_errors).sum::<u64>();
    ensure!(bad(ours) == 0, "Sigil: {} requests were not answered with success", bad(ours));
    if bad(peer) > 0 {
        println!("  note: {peer_name} failed {} requests", bad(peer));
    }
    Ok(())
}

fn summary(what: &str, ours: &[WrkRun], peer: &[WrkRun], peer_name: &str, goal: f64) {
    let (a, b) = (
        median(ours.iter().map(|r| r.rate).collect()),
        median(peer.iter().map(|r| r.rate).collect()),
    );
    let (pa, pb) = (
        median(ours.iter().map(|r| r.p99_ms).collect()),
        median(peer.iter().map(|r| r.p99_ms).collect()),
    );
    println!(
        "{what}: Sigil {a:.0}/s (p99 {pa:.1} ms) against {peer_name} {b:.0}/s (p99 {pb:.1} ms), \
         medians of {} rounds: {:.2}× (goal {goal}×)",
        ours.len(),
        a / b.max(1.0)
    );
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    bench::ensure_wrk()?;
    let work = tempfile::tempdir()?;
    println!(
        "wrk -t1 -c{} -d{}s, {} alternating rounds; Sigil release build on {}{}",
        args.connections,
        args.seconds,
        args.rounds,
        if args.postgres {
            "PostgreSQL".to_owned()
        } else {
            format!("SQLite (synchronous={})", args.synchronous)
        },
        if args.pin_workers { ", async workers pinned" } else { "" }
    );
    if matches!(args.only.as_str(), "issue" | "both") {
        issuance(&args, work.path()).await?;
    }
    if matches!(args.only.as_str(), "sign-hash" | "both") {
        sign_hash(&args, work.path()).await?;
    }
    Ok(())
}

/// A count over the spawned server's database (`url`: SQLite opened read-only, or PostgreSQL).
async fn count(url: &str, sql: &'static str) -> Result<i64> {
    sqlx::any::install_default_drivers();
    let url = if url.starts_with("sqlite:") { format!("{url}?mode=ro") } else { url.to_owned() };
    let pool = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&url).await?;
    let n: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await?;
    pool.close().await;
    Ok(n)
}

/// Starts Sigil on a fresh database: SQLite in its data directory, or with --postgres a fresh
/// database on the server `SIGIL_TEST_DATABASE_URL` names. Returns it with its database URL.
async fn start_sigil(args: &Args) -> Result<(bench::Spawned, String, Option<TestDb>)> {
    let cpu = args.writer_cpu.map(|c| c.to_string());
    let mut env: Vec<(&str, &str)> = Vec::new();
    if let Some(cpu) = &cpu {
        env.push(("SIGIL__DATABASE__SQLITE_WRITER_CPU", cpu));
    }
    if args.pin_workers {
        env.push(("SIGIL__SERVER__PIN_WORKERS", "true"));
    }
    if args.postgres {
        let db = TestDb::postgres().await.context("--postgres needs SIGIL_TEST_DATABASE_URL")?;
        env.push(("SIGIL__DATABASE__URL", &db.url));
        let s = bench::spawn_sigil(&args.synchronous, None, &env)?;
        let url = db.url.clone();
        Ok((s, url, Some(db)))
    } else {
        let s = bench::spawn_sigil(&args.synchronous, None, &env)?;
        let url = format!("sqlite://{}", s.data_dir.join("sigil.db").display());
        Ok((s, url, None))
    }
}

async fn audit_valid(client: &reqwest::Client, url: &str, key: &str) -> Result<Value> {
    let r = client.get(format!("{url}/api/v1/audit/verify")).bearer_auth(key).send().await?;
    let v: Value = r.json().await?;
    ensure!(v["valid"] == json!(true), "the audit chain does not verify: {v}");
    Ok(v)
}

async fn issuance(args: &Args, work: &Path) -> Result<()> {
    let (sigil, db, pg) = start_sigil(args).await?;
    let key = std::fs::read_to_string(sigil.data_dir.join("admin.key"))?.trim().to_owned();
    let client = bench::client(&sigil.data_dir, 4)?;
    let cfssl = sigil_tests::cfssl::Cfssl::start().await;
    let per_run = args.max_rate.unwrap_or(ISSUE_MAX_RATE) * args.seconds as usize;
    eprintln!("generating {} distinct P-256 CSRs…", per_run * args.rounds);
    let csrs = bench::p256_csrs(per_run * args.rounds, "compare");
    let auth = format!("Bearer {key}");
    let (mut ours, mut peer) = (Vec::new(), Vec::new());
    println!("issuance (P-256 CSR → certificate):");
    for round in 0..args.rounds {
        let slice = &csrs[round * per_run..(round + 1) * per_run];
        let body = |b: &String| json!({"csr": b, "profile": "tls-client"}).to_string();
        let s = bench::post_script(
            work,
            &format!("sigil-issue-{round}"),
            "/api/v1/certificates",
            &[("Content-Type", "application/json"), ("Authorization", &auth)],
            &slice.iter().map(body).collect::<Vec<_>>(),
        )?;
        let (r, cpu) = wrk_with_cpu(&sigil.url, &s, args, sigil.pid())?;
        line("Sigil", round + 1, &r, cpu);
        ensure!(
            (r.requests as usize) <= per_run,
            "Sigil ran past the {per_run} distinct CSRs prepared: raise --max-rate"
        );
        ours.push(r);
        let body = |b: &String| json!({"certificate_request": b, "profile": "client"}).to_string();
        let s = bench::post_script(
            work,
            &format!("cfssl-issue-{round}"),
            "/api/v1/cfssl/sign",
            &[("Content-Type", "application/json")],
            &slice.iter().map(body).collect::<Vec<_>>(),
        )?;
        let r = bench::wrk(&cfssl.url, &s, args.connections, args.seconds)?;
        line("cfssl+WAL", round + 1, &r, None);
        peer.push(r);
    }
    // What the rates claim is there: each 2xx a recorded certificate with its audit event
    // (wrk stops with up to one request in flight per connection, which may still land).
    let answered: u64 = ours.iter().map(|r| r.requests - r.non_2xx).sum();
    let certs = count(&db, "SELECT count(*) FROM certificates").await? as u64;
    let events = count(&db, "SELECT count(*) FROM audit_events WHERE action = 'certificate.issue'")
        .await? as u64;
    let inflight = (args.connections * args.rounds) as u64;
    ensure!(
        (answered..=answered + inflight).contains(&certs) && events == certs,
        "Sigil answered {answered} issuances but recorded {certs} certificates and {events} events"
    );
    audit_valid(&client, &sigil.url, &key).await?;
    let peer_rows = count(
        &format!("sqlite://{}", cfssl.path("certdb.sqlite")),
        "SELECT count(*) FROM certificates",
    )
    .await? as u64;
    println!(
        "  checked: {answered} issuances answered, {certs} certificates and {events} audit events \
         recorded, audit chain valid; cfssl recorded {peer_rows} certificates"
    );
    check_failures(&ours, &peer, "cfssl")?;
    summary("issuance", &ours, &peer, "cfssl+WAL", 2.0);
    drop(sigil);
    if let Some(pg) = pg {
        pg.cleanup().await;
    }
    Ok(())
}

/// certomancer-csc-dummy on 127.0.0.1, silent (no access log), killed when dropped.
struct Certomancer(Child, String);

impl Drop for Certomancer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/certomancer/certomancer.yml")
}

async fn start_certomancer() -> Result<Certomancer> {
    let present = Command::new("python3")
        .args(["-c", "import csc_dummy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !present {
        let st = Command::new("python3")
            .args(["-m", "pip", "install", "-q", "certomancer-csc-dummy==0.4.2"])
            .status()?;
        ensure!(st.success(), "pip install certomancer-csc-dummy failed");
    }
    let port = sigil_tests::free_port();
    let code = format!(
        "from aiohttp import web\n\
         from certomancer import registry\n\
         from csc_dummy.csc_dummy_server import CSCWithCertomancer, DummyServiceParams\n\
         cfg = registry.CertomancerConfig.from_file({cfg:?})\n\
         app = CSCWithCertomancer(cfg, service_params=DummyServiceParams(hash_pinning_required=False))\n\
         app.register_routes()\n\
         web.run_app(app.app, host='127.0.0.1', port={port}, access_log=None, print=None)\n",
        cfg = fixture().to_str().context("path")?,
    );
    let child = Command::new("python3")
        .args(["-c", &code])
        .stdout(Stdio::null())
        .spawn()
        .context("starting certomancer-csc-dummy")?;
    let c = Certomancer(child, format!("http://127.0.0.1:{port}"));
    let http = reqwest::Client::new();
    for _ in 0..100 {
        let ok = http
            .post(format!("{}/csc/v1/credentials/list", c.1))
            .json(&json!({}))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        if ok {
            return Ok(c);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("certomancer-csc-dummy did not answer on {}", c.1)
}

/// The digest of signature `i` of round `round` of server `who`: SHA-256 of a text naming them.
fn message(who: &str, round: usize, i: usize) -> Vec<u8> {
    format!("{who}-{round}-{i}").into_bytes()
}

fn sign_body(credential: &str, sad: &str, msg: &[u8]) -> String {
    json!({"credentialID": credential, "SAD": sad, "hash": [STANDARD.encode(Sha256::digest(msg))],
        "signAlgo": "1.2.840.10045.4.3.2"})
    .to_string()
}

/// The public key (uncompressed point) of the credential's certificate.
async fn public_key(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    credential: &str,
) -> Result<Vec<u8>> {
    let mut rq = client
        .post(format!("{url}/csc/v1/credentials/info"))
        .json(&json!({"credentialID": credential, "certificates": "single"}));
    if let Some(t) = token {
        rq = rq.bearer_auth(t);
    }
    let v: Value = rq.send().await?.json().await?;
    let der = STANDARD.decode(v["cert"]["certificates"][0].as_str().context("certificate")?)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).context("certificate")?;
    Ok(cert.public_key().subject_public_key.data.to_vec())
}

/// Signs `n` digests one call each over SAD `sad` (made for exactly `n`), verifies every
/// signature, and checks that the SAD then refuses one more.
async fn verify_pass(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    credential: &str,
    sad: &str,
    n: usize,
    refuses_spent: bool,
) -> Result<()> {
    let pk = public_key(client, url, token, credential).await?;
    let key = ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, pk);
    let post = |body: String| {
        let mut rq = client
            .post(format!("{url}/csc/v1/signatures/signHash"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = token {
            rq = rq.bearer_auth(t);
        }
        rq.send()
    };
    for i in 0..n {
        let msg = message("verify", 0, i);
        let r = post(sign_body(credential, sad, &msg)).await?;
        ensure!(r.status() == 200, "signHash {i} of {n}: {}", r.text().await?);
        let v: Value = r.json().await?;
        let sig = STANDARD.decode(v["signatures"][0].as_str().context("signature")?)?;
        key.verify(&msg, &sig).map_err(|_| anyhow::anyhow!("signature {i} does not verify"))?;
    }
    if refuses_spent {
        let r = post(sign_body(credential, sad, b"one too many")).await?;
        ensure!(r.status() == 400, "a spent SAD signed again: {}", r.status());
    }
    Ok(())
}

async fn authorize(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: Value,
) -> Result<String> {
    for _ in 0..50 {
        let mut rq = client.post(format!("{url}/csc/v1/credentials/authorize")).json(&body);
        if let Some(t) = token {
            rq = rq.bearer_auth(t);
        }
        let r = rq.send().await?;
        if r.status() == 503 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        ensure!(r.status() == 200, "authorize: {}", r.text().await?);
        let v: Value = r.json().await?;
        return Ok(v["SAD"].as_str().context("SAD")?.to_owned());
    }
    bail!("authorize: shed 50 times")
}

const PER_SAD: usize = 1000;

async fn sign_hash(args: &Args, work: &Path) -> Result<()> {
    let (sigil, db, pg) = start_sigil(args).await?;
    let key = std::fs::read_to_string(sigil.data_dir.join("admin.key"))?.trim().to_owned();
    let client = bench::client(&sigil.data_dir, 4)?;
    let setup = sigil_tests::signhash::setup(&client, &sigil.url, &key, "p256").await?;
    let (cred, token) = (setup.credential().to_owned(), setup.token().to_owned());
    let pin = sigil_tests::signhash::PIN;
    let peer = start_certomancer().await?;
    let http = reqwest::Client::new();
    const PEER_CRED: &str = "sigil/signer";
    // Correctness of what is signed, before the measured runs: 1,000 signatures each.
    let body = json!({"credentialID": cred, "numSignatures": PER_SAD, "PIN": pin});
    let sad = authorize(&client, &sigil.url, Some(&token), body).await?;
    verify_pass(&client, &sigil.url, Some(&token), &cred, &sad, PER_SAD, true).await?;
    let sad =
        authorize(&http, &peer.1, None, json!({"credentialID": PEER_CRED, "numSignatures": 1}))
            .await?;
    verify_pass(&http, &peer.1, None, PEER_CRED, &sad, PER_SAD, false).await?;
    const SIGNED: &str = "SELECT count(*) FROM audit_events WHERE action = 'csc.sign_hash'";
    let before = count(&db, SIGNED).await? as u64;
    let per_run = args.max_rate.unwrap_or(SIGN_MAX_RATE) * args.seconds as usize;
    let sads = per_run.div_ceil(PER_SAD);
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let mut spent = Vec::new();
    println!("signHash (P-256, one SHA-256 digest per call, SAD for {PER_SAD} signatures):");
    for round in 0..args.rounds {
        eprintln!("authorizing {sads} SADs on each server…");
        let mut ours_sads = Vec::with_capacity(sads);
        for _ in 0..sads {
            let body = json!({"credentialID": cred, "numSignatures": PER_SAD, "PIN": pin});
            ours_sads.push(authorize(&client, &sigil.url, Some(&token), body).await?);
        }
        let peer_sad =
            authorize(&http, &peer.1, None, json!({"credentialID": PEER_CRED, "numSignatures": 1}))
                .await?;
        let bodies: Vec<String> = (0..per_run)
            .map(|i| sign_body(&cred, &ours_sads[i / PER_SAD], &message("sigil", round, i)))
            .collect();
        let s = bench::post_script(
            work,
            &format!("sigil-sign-{round}"),
            "/csc/v1/signatures/signHash",
            &[("Content-Type", "application/json"), ("Authorization", &format!("Bearer {token}"))],
            &bodies,
        )?;
        let (r, cpu) = wrk_with_cpu(&sigil.url, &s, args, sigil.pid())?;
        line("Sigil", round + 1, &r, cpu);
        ensure!(
            (r.requests as usize) <= per_run,
            "Sigil ran past the {per_run} prepared signatures: raise --max-rate"
        );
        // The SADs this round used up, to be refused afterwards.
        // A request may still have been in flight on each connection when wrk stopped, so
        // only SADs whose every signature was sent before the last `connections` count.
        let settled = (r.requests as usize).saturating_sub(args.connections);
        spent.extend(ours_sads.into_iter().take(settled / PER_SAD));
        ours.push(r);
        // The peer keeps no SAD state: one SAD for a single hash serves every call.
        let bodies: Vec<String> = (0..per_run)
            .map(|i| sign_body(PEER_CRED, &peer_sad, &message("peer", round, i)))
            .collect();
        let s = bench::post_script(
            work,
            &format!("peer-sign-{round}"),
            "/csc/v1/signatures/signHash",
            &[("Content-Type", "application/json")],
            &bodies,
        )?;
        let r = bench::wrk(&peer.1, &s, args.connections, args.seconds)?;
        line("certomancer", round + 1, &r, None);
        theirs.push(r);
    }
    let answered: u64 = ours.iter().map(|r| r.requests - r.non_2xx).sum();
    let events = count(&db, SIGNED).await? as u64 - before;
    let inflight = (args.connections * args.rounds) as u64;
    ensure!(
        (answered..=answered + inflight).contains(&events),
        "Sigil answered {answered} signatures but audited {events}"
    );
    for sad in &spent {
        let r = client
            .post(format!("{}/csc/v1/signatures/signHash", sigil.url))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(sign_body(&cred, sad, b"after the run"))
            .send()
            .await?;
        ensure!(
            r.status() == 400,
            "SAD {} of those spent during the run signed again ({})",
            spent.iter().position(|s| s == sad).unwrap_or_default(),
            r.status()
        );
    }
    audit_valid(&client, &sigil.url, &key).await?;
    println!(
        "  checked: {answered} signatures answered, {events} audited, {} spent SADs refused, \
         audit chain valid; {PER_SAD} signatures from each server verified against its \
         credential's public key, and Sigil refused signature {} of a SAD for {PER_SAD}",
        spent.len(),
        PER_SAD + 1
    );
    check_failures(&ours, &theirs, "certomancer")?;
    summary("signHash", &ours, &theirs, "certomancer-csc-dummy", 3.0);
    drop(sigil);
    if let Some(pg) = pg {
        pg.cleanup().await;
    }
    Ok(())
}
