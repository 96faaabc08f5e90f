//! Load generator: P-256 certificate issuance through the HTTPS API, with the database write and
//! the audit event, by N concurrent keep-alive clients sending distinct pre-generated CSRs.
//! Reports throughput, latency percentiles and (with a spawned or given server pid) the server's
//! CPU time per request.
//!
//! ```sh
//! cargo build --release --workspace --bins
//! target/release/loadgen --spawn --requests 30000 --concurrency 64
//! # or against a running server:
//! target/release/loadgen --url https://127.0.0.1:8443 --data-dir data --pid $(pidof sigil)
//! # swap a profile's CA back end between the built-in CA and connector `cfssl` every 250 ms:
//! target/release/loadgen --spawn --config with-cfssl.toml --swap-ca cfssl
//! # remote signing: CSC signHash with a P-256 credential (signature + SAD spend + audit event)
//! target/release/loadgen --spawn --mode sign-hash --requests 50000 --concurrency 64
//! # … with an RSA key, or on PostgreSQL (the spawned server inherits the environment):
//! target/release/loadgen --spawn --mode sign-hash --key-algorithm rsa-2048
//! SIGIL__DATABASE__URL=postgres://… target/release/loadgen --spawn --mode sign-hash
//! # anonymous auth/login from 64 clients (login throttles off, so only the Argon2 bound
//! # holds): peak server memory and /health/live latency while they run
//! target/release/loadgen --spawn --mode login --requests 2000 --concurrency 64
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark tool

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use sigil_tests::bench::{self, cpu_ticks};

/// Issuance and signing load generator.
#[derive(Debug, Parser)]
struct Args {
    /// `issue` (POST /api/v1/certificates), `sign-hash` (POST /csc/v1/signatures/signHash),
    /// `login` (anonymous POST /csc/v1/auth/login), `fill` (issue `--requests` certificates
    /// into `--keep DIR`, no warm-up) or `inventory` (start on `--keep DIR`, time the start
    /// and certificate-list queries).
    #[arg(long, default_value = "issue")]
    mode: String,
    /// Server URL (ignored with --spawn).
    #[arg(long, default_value = "https://127.0.0.1:8443")]
    url: String,
    /// Data directory of the server (admin.key and tls/ca.pem are read from it).
    #[arg(long, default_value = "data")]
    data_dir: PathBuf,
    /// Start `sigil serve` (next to this binary) on a fresh data directory and port.
    #[arg(long)]
    spawn: bool,
    /// With --spawn: SQLite synchronous mode, `full` or `normal`.
    #[arg(long, default_value = "full")]
    synchronous: String,
    /// Server pid, to report its CPU time per request (known with --spawn).
    #[arg(long)]
    pid: Option<u32>,
    /// Measured requests.
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Warm-up requests (not measured).
    #[arg(long, default_value_t = 1_000)]
    warmup: usize,
    /// Concurrent clients (one keep-alive connection each).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// With --mode sign-hash: the credential's key, `p256`, `p384`, `rsa-2048` or `rsa-3072`.
    #[arg(long, default_value = "p256")]
    key_algorithm: String,
    /// Profile to issue under.
    #[arg(long, default_value = "tls-client")]
    profile: String,
    /// With --spawn: serve this data directory and keep it (a new one is initialised).
    #[arg(long)]
    keep: Option<PathBuf>,
    /// With --mode inventory: times each query runs.
    #[arg(long, default_value_t = 100)]
    repeat: usize,
    /// With --spawn: the configuration file the server starts with.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Issue under a profile of our own (tls-client's rules) whose CA back end swaps between
    /// the built-in CA and this one (a CA connector plugin id) during the run.
    #[arg(long)]
    swap_ca: Option<String>,
    /// With --swap-ca: time between swaps.
    #[arg(long, default_value_t = 250)]
    swap_every_ms: u64,
}

/// Creates profile `loadgen-swap` on tls-client's rules; returns its spec and the built-in CA id.
async fn swap_profile(
    client: &reqwest::Client,
    url: &str,
    key: &str,
) -> Result<(serde_json::Value, String)> {
    let p: serde_json::Value = client
        .get(format!("{url}/api/v1/profiles/tls-client"))
        .bearer_auth(key)
        .send()
        .await?
        .json()
        .await?;
    let spec = p["spec"].clone();
    let builtin = spec["ca"].as_str().context("tls-client has no ca")?.to_owned();
    let r = client
        .post(format!("{url}/api/v1/profiles"))
        .bearer_auth(key)
        .json(&serde_json::json!({"name": "loadgen-swap", "spec": spec}))
        .send()
        .await?;
    if !r.status().is_success() && r.status() != 409 {
        bail!("creating profile loadgen-swap: {}", r.text().await?);
    }
    Ok((spec, builtin))
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = Args::parse();
    if args.swap_ca.is_some() {
        args.profile = "loadgen-swap".into();
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (spawned, url, data_dir) = if args.spawn {
        // Login mode measures the Argon2 bound, so the per-address throttle (which would
        // otherwise answer most of one address's requests with 429) is off.
        let env = [
            ("SIGIL__CSC__LOGIN_PER_ADDRESS_PER_MINUTE", "0"),
            ("SIGIL__CSC__LOGIN_PER_USERNAME_PER_MINUTE", "0"),
        ];
        let s = match &args.keep {
            Some(dir) => {
                bench::spawn_sigil_in(dir, &args.synchronous, args.config.as_deref(), &env)?
            }
            None => bench::spawn_sigil(&args.synchronous, args.config.as_deref(), &env)?,
        };
        eprintln!("server listening after {:.0} ms", s.startup.as_secs_f64() * 1000.0);
        let (url, dir) = (s.url.clone(), s.data_dir.clone());
        (Some(s), url, dir)
    } else {
        (None, args.url.clone(), args.data_dir.clone())
    };
    let pid = args.pid.or(spawned.as_ref().map(bench::Spawned::pid));
    let key =
        std::fs::read_to_string(data_dir.join("admin.key")).context("admin.key")?.trim().to_owned();
    let client = bench::client(&data_dir, args.concurrency)?;
    if args.mode == "login" {
        let pid = pid.context("--mode login needs --spawn or --pid (memory is sampled)")?;
        let r =
            sigil_tests::login_load::run(&client, &url, pid, args.concurrency, args.requests).await;
        let mut h = r.health.clone();
        h.sort();
        let pct = |p: f64| h.get(((h.len() as f64 * p) as usize).min(h.len().saturating_sub(1)));
        println!(
            "auth/login benchmark: {} anonymous attempts (unknown usernames) from {} clients in \
             {:.1} s: {} refused (400), {} throttled (429), {} shed (503), {} other",
            args.requests,
            args.concurrency,
            r.wall.as_secs_f64(),
            r.refused,
            r.throttled,
            r.shed,
            r.other
        );
        println!(
            "server memory: {} MiB before, {} MiB peak; /health/live during the run: p50 {:?}, \
             p99 {:?}, max {:?} ({} probes)",
            r.rss_before_kib / 1024,
            r.rss_peak_kib / 1024,
            pct(0.5).copied().unwrap_or_default(),
            pct(0.99).copied().unwrap_or_default(),
            h.last().copied().unwrap_or_default(),
            h.len()
        );
        drop(spawned);
        if r.other > 0 {
            bail!("{} requests failed", r.other);
        }
        return Ok(());
    }
    if args.mode == "inventory" {
        let s = spawned.as_ref().context("--mode inventory needs --spawn --keep DIR")?;
        let rss = std::fs::read_to_string(format!("/proc/{}/status", s.pid()))
            .ok()
            .and_then(|t| t.lines().find(|l| l.starts_with("VmRSS:")).map(|l| l.trim().to_owned()))
            .unwrap_or_default();
        println!(
            "inventory benchmark: data directory {}, start to `listening` {:.0} ms ({rss})",
            s.data_dir.display(),
            s.startup.as_secs_f64() * 1000.0
        );
        let runs = sigil_tests::inventory::run(&client, &url, &key, args.repeat).await?;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        for r in runs {
            println!(
                "  {:<32} p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  ({} items; {})",
                r.name,
                ms(r.p50),
                ms(r.p99),
                ms(r.max),
                r.items,
                r.query
            );
        }
        return Ok(());
    }
    if args.mode == "fill" {
        args.warmup = 0;
        if args.keep.is_none() {
            bail!("--mode fill needs --spawn --keep DIR (the directory to fill)");
        }
    }
    if args.mode == "sign-hash" {
        let setup = sigil_tests::signhash::setup(&client, &url, &key, &args.key_algorithm).await?;
        eprintln!("warming up with {} signatures…", args.warmup);
        let _ = sigil_tests::signhash::run(&client, &setup, args.concurrency, 0, args.warmup).await;
        let cpu0 = pid.and_then(cpu_ticks);
        let started = Instant::now();
        let (lat, errors) = sigil_tests::signhash::run(
            &client,
            &setup,
            args.concurrency,
            args.warmup,
            args.requests,
        )
        .await;
        let wall = started.elapsed();
        let cpu = cpu0.zip(pid.and_then(cpu_ticks)).map(|(a, b)| (b - a) as f64 / 100.0);
        println!(
            "signHash benchmark: {} credential, one SHA-256 digest per request, {} clients, \
             HTTPS keep-alive (HTTP/1.1), SAD spent and audit event written per signature",
            args.key_algorithm, args.concurrency
        );
        report(lat, errors, wall, cpu, "signatures");
        drop(spawned);
        if errors > 0 {
            bail!("{errors} requests failed");
        }
        return Ok(());
    }
    eprintln!("generating {} CSRs…", args.requests + args.warmup);
    let bodies: Arc<Vec<String>> = Arc::new(
        bench::p256_csrs(args.requests + args.warmup, "load")
            .into_iter()
            .map(|pem| serde_json::json!({"csr": pem, "profile": args.profile}).to_string())
            .collect(),
    );
    let swap = match &args.swap_ca {
        Some(ca) => {
            let (spec, builtin) = swap_profile(&client, &url, &key).await?;
            Some((spec, builtin, ca.clone()))
        }
        None => None,
    };
    // Responses naming the swapped-in back end (swap mode only).
    let on_swapped = Arc::new(AtomicUsize::new(0));
    let marker = args.swap_ca.as_ref().map(|ca| format!("\"ca\":\"{ca}\""));
    let endpoint = format!("{url}/api/v1/certificates");
    let run = |start: usize, count: usize| {
        let next = Arc::new(AtomicUsize::new(start));
        let end = start + count;
        let tasks: Vec<_> = (0..args.concurrency)
            .map(|_| {
                let (client, endpoint, key, bodies, next) =
                    (client.clone(), endpoint.clone(), key.clone(), bodies.clone(), next.clone());
                let (marker, on_swapped) = (marker.clone(), on_swapped.clone());
                tokio::spawn(async move {
                    let mut lat = Vec::new();
                    let mut errors = 0usize;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= end {
                            break;
                        }
                        let t = Instant::now();
                        let r = client
                            .post(&endpoint)
                            .bearer_auth(&key)
                            .header("content-type", "application/json")
                            .body(bodies[i].clone())
                            .send()
                            .await;
                        match r {
                            Ok(r) if r.status() == 201 => {
                                let b = r.bytes().await.unwrap_or_default();
                                lat.push(t.elapsed());
                                if let Some(m) = &marker
                                    && b.windows(m.len()).any(|w| w == m.as_bytes())
                                {
                                    on_swapped.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            Ok(r) => {
                                errors += 1;
                                if errors < 3 {
                                    eprintln!(
                                        "HTTP {}: {}",
                                        r.status(),
                                        r.text().await.unwrap_or_default()
                                    );
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
        async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            for t in tasks {
                let (l, e) = t.await.unwrap();
                lat.extend(l);
                errors += e;
            }
            (lat, errors)
        }
    };
    eprintln!("warming up with {} requests…", args.warmup);
    let _ = run(0, args.warmup).await;
    on_swapped.store(0, Ordering::Relaxed);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Swaps the profile's back end while the measured run issues under it.
    let swapper = swap.map(|(mut spec, builtin, ca)| {
        let (client, url, key, stop) = (client.clone(), url.clone(), key.clone(), stop.clone());
        let every = Duration::from_millis(args.swap_every_ms);
        tokio::spawn(async move {
            let mut swaps = 0usize;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(every).await;
                let to = if swaps.is_multiple_of(2) { &ca } else { &builtin };
                spec["ca"] = serde_json::json!(to);
                let r = client
                    .put(format!("{url}/api/v1/profiles/loadgen-swap"))
                    .bearer_auth(&key)
                    .json(&spec)
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => swaps += 1,
                    Ok(r) => eprintln!("swap refused: {}", r.text().await.unwrap_or_default()),
                    Err(e) => eprintln!("swap failed: {e}"),
                }
            }
            swaps
        })
    });
    let cpu0 = pid.and_then(cpu_ticks);
    let started = Instant::now();
    let (mut lat, errors) = run(args.warmup, args.requests).await;
    let wall = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let swaps = match swapper {
        Some(t) => Some(t.await?),
        None => None,
    };
    let cpu1 = pid.and_then(cpu_ticks);
    println!(
        "issuance benchmark: P-256 CSRs, profile {}, {} clients, HTTPS keep-alive (HTTP/1.1)",
        args.profile, args.concurrency
    );
    let ok = lat.len();
    let cpu = cpu0.zip(cpu1).map(|(a, b)| (b - a) as f64 / 100.0);
    report(std::mem::take(&mut lat), errors, wall, cpu, "issuances");
    if let (Some(n), Some(ca)) = (swaps, &args.swap_ca) {
        let on = on_swapped.load(Ordering::Relaxed);
        println!(
            "  swaps      {n} back-end swaps (built-in <-> {ca}, every {} ms): {} built-in, {on} {ca}",
            args.swap_every_ms,
            ok - on
        );
    }
    drop(spawned);
    if errors > 0 {
        bail!("{errors} requests failed");
    }
    Ok(())
}

/// Prints throughput, latency percentiles and (when known) the server's CPU seconds per item.
fn report(mut lat: Vec<Duration>, errors: usize, wall: Duration, cpu_s: Option<f64>, what: &str) {
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("  requests   {} ok, {} failed, in {:.2} s", lat.len(), errors, wall.as_secs_f64());
    println!("  throughput {:.0} {what}/s", lat.len() as f64 / wall.as_secs_f64());
    println!(
        "  latency    p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(pct(0.50)),
        ms(pct(0.90)),
        ms(pct(0.99)),
        ms(pct(1.0))
    );
    if let Some(cpu_s) = cpu_s {
        // Clock ticks are 100 per second on Linux.
        println!(
            "  server CPU {:.2} s, {:.0} µs per request",
            cpu_s,
            cpu_s * 1e6 / lat.len().max(1) as f64
        );
    }
}
