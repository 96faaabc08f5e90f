//! Benchmark support shared by `loadgen` and `compare`: a release `sigil serve` on a fresh data
//! directory, the server's CPU time, distinct P-256 CSRs, and runs of `wrk` (Debian's `wrk`,
//! installed with apt-get when absent) with a Lua script that sends each body of a file once.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A `sigil serve` started by a benchmark, killed when dropped.
pub struct Spawned {
    child: Child,
    _dir: Option<tempfile::TempDir>,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// Its data directory (`admin.key`, `tls/ca.pem`, `sigil.db`).
    pub data_dir: PathBuf,
    /// From the start of the process to its `listening on` line.
    pub startup: Duration,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Spawned {
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Starts the `sigil` binary that sits next to the running one (build with
/// `cargo build --release --workspace --bins`) on port 0 and a fresh data directory, with
/// SQLite `synchronous` as given and `env` added to its environment.
pub fn spawn_sigil(
    synchronous: &str,
    config: Option<&Path>,
    env: &[(&str, &str)],
) -> Result<Spawned> {
    let dir = tempfile::tempdir()?;
    let mut s = spawn_sigil_in(dir.path(), synchronous, config, env)?;
    s._dir = Some(dir);
    Ok(s)
}

/// As [`spawn_sigil`], on data directory `dir`, which is kept (a fresh one is initialised, an
/// existing one is served as it is).
pub fn spawn_sigil_in(
    dir: &Path,
    synchronous: &str,
    config: Option<&Path>,
    env: &[(&str, &str)],
) -> Result<Spawned> {
    let bin = std::env::current_exe()?.with_file_name("sigil");
    if !bin.exists() {
        bail!("{} not found: run `cargo build --release --workspace --bins` first", bin.display());
    }
    std::fs::create_dir_all(dir)?;
    let mut cmd = Command::new(&bin);
    cmd.arg("serve");
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    cmd.args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("SIGIL__DATABASE__SQLITE_SYNCHRONOUS", synchronous)
        // wrk names the address in SNI, which rustls warns about on every connection.
        .env("SIGIL_LOG", "warn,rustls=error");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)?;
    let startup = started.elapsed();
    let url =
        line.trim().strip_prefix("listening on ").context("unexpected first line")?.to_owned();
    Ok(Spawned { child, _dir: None, url, data_dir: dir.to_path_buf(), startup })
}

/// An HTTPS client trusting the data directory's local CA, HTTP/1.1 with `pool` idle
/// connections kept.
pub fn client(data_dir: &Path, pool: usize) -> Result<reqwest::Client> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(data_dir.join("tls/ca.pem"))? {
        roots.add(c?)?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .http1_only()
        .pool_max_idle_per_host(pool)
        .build()?)
}

/// utime + stime of `pid`, in clock ticks (100 per second on Linux).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    stat_pair(&format!("/proc/{pid}/stat"), 14)
}

/// The sum of fields `field` and `field + 1` (numbered from 1, as proc(5) does) of the stat
/// file at `path`. The name (field 2) may hold spaces, so fields are counted after its `)`.
fn stat_pair(path: &str, field: usize) -> Option<u64> {
    let stat = std::fs::read_to_string(path).ok()?;
    let f: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let at = |n: usize| f.get(n.checked_sub(3)?)?.parse::<u64>().ok();
    Some(at(field)? + at(field + 1)?)
}

/// `n` CSRs (PEM), each for a fresh P-256 key and subject `CN=<prefix>-<t>-<i>`, made on every
/// core.
pub fn p256_csrs(n: usize, prefix: &str) -> Vec<String> {
    let threads = std::thread::available_parallelism().map_or(2, |p| p.get());
    let per = n.div_ceil(threads);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let prefix = prefix.to_owned();
            std::thread::spawn(move || {
                (0..per)
                    .map(|i| {
                        let key = rcgen::KeyPair::generate().unwrap();
                        let mut p = rcgen::CertificateParams::new(vec![]).unwrap();
                        p.distinguished_name
                            .push(rcgen::DnType::CommonName, format!("{prefix}-{t}-{i}"));
                        p.serialize_request(&key).unwrap().pem().unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<String> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    all.truncate(n);
    all
}

/// What one wrk run measured.
#[derive(Debug, Clone, Default)]
pub struct WrkRun {
    /// Completed requests.
    pub requests: u64,
    /// Completed requests per second.
    pub rate: f64,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: f64,
    /// Responses other than 2xx/3xx.
    pub non_2xx: u64,
    /// Connect, read, write and timeout errors.
    pub socket_errors: u64,
    /// wrk's own CPU time per completed request, microseconds: the load generator shares the
    /// machine's two cores with the server, so this is CPU the server could not use.
    pub client_cpu_us: f64,
}

/// Installs Debian's wrk when it is missing (as root).
pub fn ensure_wrk() -> Result<()> {
    if Command::new("wrk").arg("--version").output().is_ok() {
        return Ok(());
    }
    for args in [&["update", "-qq"][..], &["install", "-y", "-qq", "wrk"][..]] {
        let st =
            Command::new("apt-get").args(args).env("DEBIAN_FRONTEND", "noninteractive").status()?;
        if !st.success() {
            bail!("apt-get {args:?} failed (installing wrk needs root)");
        }
    }
    Ok(())
}

/// Writes `bodies` (one per line, no newline inside) and a wrk script that POSTs them in turn
/// to `path` with `headers`, starting over when they run out. Returns the script's path.
///
/// wrk calls `request()` once before connecting, to check what it returns; that call gets
/// index 0, which holds no body, so the first body sent is the first body given (a wrk that
/// skipped the check would send a bodiless request, refused and counted as non-2xx).
pub fn post_script(
    dir: &Path,
    name: &str,
    path: &str,
    headers: &[(&str, &str)],
    bodies: &[String],
) -> Result<PathBuf> {
    let data = dir.join(format!("{name}.bodies"));
    let mut text = String::with_capacity(bodies.iter().map(|b| b.len() + 1).sum());
    for b in bodies {
        if b.contains('\n') {
            bail!("a body holds a newline");
        }
        text.push_str(b);
        text.push('\n');
    }
    std::fs::write(&data, text)?;
    let lua_str = |s: &str| format!("{s:?}"); // Rust's escapes are valid Lua for these texts
    let mut hdrs = String::from("{");
    for (k, v) in headers {
        hdrs.push_str(&format!("[{}] = {}, ", lua_str(k), lua_str(v)));
    }
    hdrs.push('}');
    // The requests are formatted once, in init(), as wrk's SCRIPTING advises ("pre-generate
    // all requests in init() and do a quick lookup in request()"): formatting one per call
    // spends the load generator's CPU, which on this machine is CPU the server under test
    // cannot use. init() runs once per wrk thread, after wrk has set the Host header.
    let script = format!(
        "local reqs, n, i = {{}}, 0, -1\n\
         init = function(args)\n\
         \x20 local headers = {hdrs}\n\
         \x20 reqs[0] = wrk.format(\"POST\", {path}, headers, nil)\n\
         \x20 for line in io.lines({data}) do\n\
         \x20   n = n + 1\n\
         \x20   reqs[n] = wrk.format(\"POST\", {path}, headers, line)\n\
         \x20 end\n\
         end\n\
         request = function()\n\
         \x20 i = i + 1\n\
         \x20 if i > n then i = 1 end\n\
         \x20 return reqs[i]\n\
         end\n",
        data = lua_str(data.to_str().context("path")?),
        path = lua_str(path),
    );
    let file = dir.join(format!("{name}.lua"));
    std::fs::write(&file, script)?;
    Ok(file)
}

/// Runs wrk (1 thread, `connections` keep-alive connections, `seconds`) with `script` against
/// `url` and reads its report.
pub fn wrk(url: &str, script: &Path, connections: usize, seconds: u64) -> Result<WrkRun> {
    let before = children_cpu_ticks();
    let out = Command::new("wrk")
        .args(["-t1", &format!("-c{connections}"), &format!("-d{seconds}s"), "--latency", "-s"])
        .arg(script)
        .arg(url)
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    }
    let mut run = parse_wrk(&text).with_context(|| format!("reading wrk's report:\n{text}"))?;
    if let Some((a, b)) = before.zip(children_cpu_ticks()) {
        run.client_cpu_us = b.saturating_sub(a) as f64 * 1e4 / run.requests.max(1) as f64;
    }
    Ok(run)
}

/// cutime + cstime of this process: the CPU time of the children it has waited for, in clock
/// ticks (wrk is waited for when it ends, so the difference around one run is that run's).
fn children_cpu_ticks() -> Option<u64> {
    stat_pair("/proc/self/stat", 16)
}

fn millis(s: &str) -> Option<f64> {
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
    let v: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => v / 1000.0,
        "ms" => v,
        "s" => v * 1000.0,
        "m" => v * 60_000.0,
        _ => return None,
    })
}

fn parse_wrk(text: &str) -> Option<WrkRun> {
    let mut r = WrkRun::default();
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", v] => r.p50_ms = millis(v)?,
            ["99%", v] => r.p99_ms = millis(v)?,
            [n, "requests", "in", ..] => r.requests = n.parse().ok()?,
            ["Requests/sec:", v] => r.rate = v.parse().ok()?,
            ["Non-2xx", "or", "3xx", "responses:", n] => r.non_2xx = n.parse().ok()?,
            ["Socket", "errors:", rest @ ..] => {
                r.socket_errors =
                    rest.iter().filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok()).sum();
            }
            _ => {}
        }
    }
    (r.requests > 0).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrk_report_is_read_with_its_percentiles_and_failures() {
        let text = "Running 10s test @ https://127.0.0.1:1/x\n  1 threads and 16 connections\n\
            \x20 Latency Distribution\n     50%  812.00us\n     75%    1.20ms\n     90%    2.00ms\n\
            \x20    99%   11.52ms\n  70001 requests in 10.00s, 50.00MB read\n\
            \x20 Socket errors: connect 0, read 2, write 0, timeout 1\n\
            \x20 Non-2xx or 3xx responses: 12\nRequests/sec:   7000.10\nTransfer/sec:      5.00MB\n";
        let r = parse_wrk(text).unwrap();
        assert_eq!((r.requests, r.non_2xx, r.socket_errors), (70001, 12, 3));
        assert!((r.p50_ms - 0.812).abs() < 1e-9 && (r.p99_ms - 11.52).abs() < 1e-9);
        assert!((r.rate - 7000.10).abs() < 1e-9);
        assert!(parse_wrk("garbage").is_none());
    }

    #[test]
    fn cpu_times_are_read_from_the_stat_fields_proc_names() {
        // Fields after the name: 3 state, …, 14 utime, 15 stime, 16 cutime, 17 cstime.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stat");
        std::fs::write(&path, "42 (a b) c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n").unwrap();
        let path = path.to_str().unwrap();
        assert_eq!(stat_pair(path, 14), Some(11 + 12));
        assert_eq!(stat_pair(path, 16), Some(13 + 14));
        assert!(cpu_ticks(std::process::id()).is_some());
        assert!(children_cpu_ticks().is_some());
    }
}
