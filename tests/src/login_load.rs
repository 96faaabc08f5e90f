//! The load generator's login mode: anonymous CSC `auth/login` attempts (unknown usernames,
//! HTTP Basic) from many concurrent clients, with the server's resident memory sampled every
//! 20 ms and `/health/live` timed every 100 ms while they run. Shows that password hashing is
//! bounded: memory stays flat and the health check stays fast however many logins arrive.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What a run saw.
#[derive(Debug, Default)]
pub struct LoginRun {
    /// Answers by status: 400 (refused), 429 (throttled), 503 (shed), other.
    pub refused: usize,
    /// 429 answers.
    pub throttled: usize,
    /// 503 answers.
    pub shed: usize,
    /// Anything else (including transport errors).
    pub other: usize,
    /// Server resident memory before the run, KiB.
    pub rss_before_kib: u64,
    /// Highest resident memory seen during the run, KiB.
    pub rss_peak_kib: u64,
    /// `/health/live` latencies during the run.
    pub health: Vec<Duration>,
    /// Wall time.
    pub wall: Duration,
}

/// Resident memory of `pid`, KiB (Linux).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `requests` logins from `concurrency` clients against `url`, watching server `pid`.
pub async fn run(
    client: &reqwest::Client,
    url: &str,
    pid: u32,
    concurrency: usize,
    requests: usize,
) -> LoginRun {
    let mut out = LoginRun { rss_before_kib: rss_kib(pid).unwrap_or(0), ..Default::default() };
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(out.rss_before_kib));
    let sampler = {
        let (done, peak) = (done.clone(), peak.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                if let Some(r) = rss_kib(pid) {
                    peak.fetch_max(r, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let prober = {
        let (done, client, url) = (done.clone(), client.clone(), url.to_owned());
        tokio::spawn(async move {
            let mut lat = vec![];
            while !done.load(Ordering::Relaxed) {
                let t = Instant::now();
                if client.get(format!("{url}/health/live")).send().await.is_ok() {
                    lat.push(t.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            lat
        })
    };
    let next = Arc::new(AtomicUsize::new(0));
    let counts: Arc<[AtomicUsize; 4]> = Arc::new(Default::default());
    let started = Instant::now();
    let mut tasks = vec![];
    for _ in 0..concurrency {
        let (client, url, next, counts) =
            (client.clone(), url.to_owned(), next.clone(), counts.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    break;
                }
                let r = client
                    .post(format!("{url}/csc/v1/auth/login"))
                    .basic_auth(format!("nobody-{i}"), Some("wrong password"))
                    .send()
                    .await;
                let slot = match r.map(|r| r.status().as_u16()) {
                    Ok(400) => 0,
                    Ok(429) => 1,
                    Ok(503) => 2,
                    _ => 3,
                };
                counts[slot].fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    out.wall = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    out.health = prober.await.unwrap_or_default();
    out.rss_peak_kib = peak.load(Ordering::Relaxed);
    out.refused = counts[0].load(Ordering::Relaxed);
    out.throttled = counts[1].load(Ordering::Relaxed);
    out.shed = counts[2].load(Ordering::Relaxed);
    out.other = counts[3].load(Ordering::Relaxed);
    out
}
