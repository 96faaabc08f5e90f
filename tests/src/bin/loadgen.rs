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
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark tool

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;

/// Issuance load generator.
#[derive(Debug, Parser)]
struct Args {
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
    /// Profile to issue under.
    #[arg(long, default_value = "tls-client")]
    profile: String,
}

fn csrs(n: usize) -> Vec<String> {
    let threads = std::thread::available_parallelism().map_or(2, |p| p.get());
    let per = n.div_ceil(threads);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            std::thread::spawn(move || {
                (0..per)
                    .map(|i| {
                        let key = rcgen::KeyPair::generate().unwrap();
                        let mut p = rcgen::CertificateParams::new(vec![]).unwrap();
                        p.distinguished_name
                            .push(rcgen::DnType::CommonName, format!("load-{t}-{i}"));
                        let pem = p.serialize_request(&key).unwrap().pem().unwrap();
                        serde_json::to_string(
                            &serde_json::json!({"csr": pem, "profile": "PROFILE"}),
                        )
                        .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<String> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    all.truncate(n);
    all
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15; `after` starts at field 3.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

struct Spawned {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(synchronous: &str) -> Result<(Spawned, String, PathBuf)> {
    let bin = std::env::current_exe()?.with_file_name("sigil");
    if !bin.exists() {
        bail!("{} not found: run `cargo build --release --workspace --bins` first", bin.display());
    }
    let dir = tempfile::tempdir()?;
    let mut child = std::process::Command::new(&bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("SIGIL__DATABASE__SQLITE_SYNCHRONOUS", synchronous)
        .env("SIGIL_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)?;
    let url =
        line.trim().strip_prefix("listening on ").context("unexpected first line")?.to_owned();
    let data = dir.path().to_path_buf();
    Ok((Spawned { child, _dir: dir }, url, data))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (spawned, url, data_dir) = if args.spawn {
        let (s, url, dir) = spawn(&args.synchronous)?;
        (Some(s), url, dir)
    } else {
        (None, args.url.clone(), args.data_dir.clone())
    };
    let pid = args.pid.or(spawned.as_ref().map(|s| s.child.id()));
    let key =
        std::fs::read_to_string(data_dir.join("admin.key")).context("admin.key")?.trim().to_owned();
    eprintln!("generating {} CSRs…", args.requests + args.warmup);
    let bodies: Arc<Vec<String>> = Arc::new(
        csrs(args.requests + args.warmup)
            .into_iter()
            .map(|b| b.replace("PROFILE", &args.profile))
            .collect(),
    );
    let client = {
        let tls = {
            use rustls_pki_types::CertificateDer;
            use rustls_pki_types::pem::PemObject;
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(data_dir.join("tls/ca.pem"))? {
                roots.add(c?)?;
            }
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth()
        };
        reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .http1_only()
            .pool_max_idle_per_host(args.concurrency)
            .build()?
    };
    let endpoint = format!("{url}/api/v1/certificates");
    let run = |start: usize, count: usize| {
        let next = Arc::new(AtomicUsize::new(start));
        let end = start + count;
        let tasks: Vec<_> = (0..args.concurrency)
            .map(|_| {
                let (client, endpoint, key, bodies, next) =
                    (client.clone(), endpoint.clone(), key.clone(), bodies.clone(), next.clone());
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
                                let _ = r.bytes().await;
                                lat.push(t.elapsed());
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
    let cpu0 = pid.and_then(cpu_ticks);
    let started = Instant::now();
    let (mut lat, errors) = run(args.warmup, args.requests).await;
    let wall = started.elapsed();
    let cpu1 = pid.and_then(cpu_ticks);
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "issuance benchmark: P-256 CSRs, profile {}, {} clients, HTTPS keep-alive (HTTP/1.1)",
        args.profile, args.concurrency
    );
    println!("  requests   {} ok, {} failed, in {:.2} s", lat.len(), errors, wall.as_secs_f64());
    println!("  throughput {:.0} issuances/s", lat.len() as f64 / wall.as_secs_f64());
    println!(
        "  latency    p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(pct(0.50)),
        ms(pct(0.90)),
        ms(pct(0.99)),
        ms(pct(1.0))
    );
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        // Clock ticks are 100 per second on Linux.
        let cpu_s = (b - a) as f64 / 100.0;
        println!(
            "  server CPU {:.2} s, {:.0} µs per issuance",
            cpu_s,
            cpu_s * 1e6 / lat.len().max(1) as f64
        );
    }
    drop(spawned);
    if errors > 0 {
        bail!("{errors} requests failed");
    }
    Ok(())
}
