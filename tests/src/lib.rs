//! The testkit: starts the real Sigil server (HTTPS, real database) on 127.0.0.1 port 0 with a
//! fresh data directory, and hands the test a client that trusts the server's local CA.
//!
//! Every storage-touching test runs once per backend from [`backends`]: SQLite always, and
//! PostgreSQL when `SIGIL_TEST_DATABASE_URL` names a server (a fresh database per test).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test support

pub mod bench;
pub mod cfssl;
pub mod csc;
pub mod inventory;
pub mod login_load;
pub mod signhash;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};

use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::Value;
use sigil_server::config::Config;
use sigil_server::startup::{Running, start};
use sigil_store::SqlStore;
pub use sigil_store::testing::TestDb;

/// The URL a `sigil serve` child process announces on the first line of its standard output
/// (`listening on …`; the child's stdout must be piped), waited for up to 60 s; the rest of its
/// output is read and dropped, so the child never writes into a closed or full pipe. `Err`
/// holds what it printed instead (nothing, when it printed nothing or ended).
pub async fn listening_url(child: &mut tokio::process::Child) -> Result<String, String> {
    use tokio::io::AsyncBufReadExt as _;
    let out = child.stdout.take().ok_or("the child's stdout is not piped")?;
    let mut lines = tokio::io::BufReader::new(out).lines();
    let first = tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line()).await;
    let line = match first {
        Ok(Ok(Some(line))) => line,
        _ => return Err(String::new()),
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    line.strip_prefix("listening on ").map(str::to_owned).ok_or(line)
}

/// A free port on 127.0.0.1 for a listener the test configures by number (bound over TCP and
/// UDP and released: the server under test takes it next).
///
/// It is taken below the kernel's ephemeral range (`ip_local_port_range`, 32768–60999 by
/// default), never from it: a port handed out by `bind(0)` goes back into that range when it is
/// released, and an outgoing connection of a concurrent test could take it before the server
/// binds it, which failed CI once. A counter hands the ports out in turn, so no two calls of one
/// test binary get the same port; its start depends on the process id, so that two test
/// processes at once are unlikely to meet. Where the range starts too low to leave room below
/// it, a port from `bind(0)` it is.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let ephemeral_low: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768);
    let Some(low) = ephemeral_low.checked_sub(SPAN).filter(|&l| l >= 1024) else {
        return std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    };
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = (low + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        let free = std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok();
        if free {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 between {low} and {}", low + SPAN)
}

/// Every backend to run a test on.
pub async fn backends() -> Vec<TestDb> {
    TestDb::all().await
}

/// Installs Debian `packages` (as root): from the cached package lists first, after an
/// `apt-get update` if that fails. Tests call it for the external tools they drive when those
/// are missing, as `.ci/run` does.
pub fn apt_install(packages: &[&str]) {
    let install = || {
        std::process::Command::new("apt-get")
            .args(["install", "-y", "-q"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    if !install() {
        let _ = std::process::Command::new("apt-get").args(["update", "-q"]).status();
        assert!(install(), "apt-get install {packages:?} failed (installing needs root)");
    }
}

/// Installs ring as rustls' process-wide provider (once).
pub fn install_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Options for a test server.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// Extra TOML appended to the configuration file.
    pub toml: String,
    /// Use this data directory instead of a fresh one.
    pub data_dir: Option<PathBuf>,
}

/// A running test server.
pub struct TestServer {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// The first-start administrator key.
    pub admin_key: String,
    /// A client trusting the local CA.
    pub client: Client,
    /// The configuration it runs with.
    pub config: Config,
    /// The database URL.
    pub db_url: String,
    running: Option<Running>,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    /// Starts a server on `db` with default options.
    pub async fn start(db: &TestDb) -> TestServer {
        Self::start_with(db, Options::default()).await
    }

    /// Starts a server on `db`.
    pub async fn start_with(db: &TestDb, opts: Options) -> TestServer {
        install_crypto();
        let tmp = if opts.data_dir.is_none() { Some(tempfile::tempdir().unwrap()) } else { None };
        let data_dir =
            opts.data_dir.clone().unwrap_or_else(|| tmp.as_ref().unwrap().path().to_path_buf());
        std::fs::create_dir_all(&data_dir).unwrap();
        let cfg_file = data_dir.join("test.toml");
        // Every node on one database must share the master key that seals the CA keys.
        let master = std::env::temp_dir().join(format!(
            "sigil-test-master-{}.key",
            uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, db.url.as_bytes()).simple()
        ));
        let toml = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nshutdown_grace_secs = 5\n\
             [database]\nurl = \"{}\"\nsqlite_synchronous = \"normal\"\n\
             [api_keys]\ncache_ttl_ms = 0\n[pki]\nmaster_key_file = \"{}\"\n{}",
            data_dir.display(),
            db.url,
            master.display(),
            opts.toml
        );
        // Later sections in `opts.toml` may repeat a table; TOML forbids that, so merge by
        // writing the base and the extra into separate files only when needed.
        std::fs::write(&cfg_file, merge_toml(&toml)).unwrap();
        let config = Config::load_from(Some(&cfg_file), std::iter::empty()).unwrap();
        let running = start(&config).await.unwrap();
        let url = format!("https://{}", running.addr);
        let admin_key = std::fs::read_to_string(data_dir.join("admin.key"))
            .unwrap_or_default()
            .trim()
            .to_owned();
        let client = client_for(&data_dir.join("tls/ca.pem"), None);
        TestServer {
            url,
            admin_key,
            client,
            config,
            db_url: db.url.clone(),
            running: Some(running),
            _dir: tmp,
        }
    }

    /// Signs an audit checkpoint now, as the periodic job does.
    pub async fn checkpoint(&self) -> sigil_core::Result<Option<sigil_core::audit::Checkpoint>> {
        self.running.as_ref().expect("running").checkpoint().await
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.config.server.data_dir
    }

    /// A request with `key`.
    pub fn req(&self, method: Method, path: &str, key: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.url)).bearer_auth(key)
    }

    /// A request as the administrator.
    pub fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.req(method, path, &self.admin_key)
    }

    /// Creates an API key as the administrator from a JSON body; returns the response JSON.
    pub async fn create_key(&self, body: Value) -> Value {
        let r = self.admin(Method::POST, "/api/v1/api-keys").json(&body).send().await.unwrap();
        assert_eq!(r.status(), 201, "{:?}", r.text().await);
        r.json().await.unwrap()
    }

    /// Issues a certificate from `csr` (PEM) under `profile` as the administrator; returns
    /// the status and body, whatever they are.
    pub async fn issue(&self, csr: &str, profile: &str) -> (u16, Value) {
        let body = serde_json::json!({"csr": csr, "profile": profile});
        json(self.admin(Method::POST, "/api/v1/certificates").json(&body).send().await.unwrap())
            .await
    }

    /// `POST path` with `body` as the administrator; the call must answer 201. Returns the body.
    pub async fn create(&self, path: &str, body: Value) -> Value {
        let (st, b) = json(self.admin(Method::POST, path).json(&body).send().await.unwrap()).await;
        assert_eq!(st, 201, "POST {path}: {b}");
        b
    }

    /// Creates organization "Acme", its division "HQ" and one office per code (named as the
    /// code); returns the offices' ids in order.
    pub async fn offices(&self, codes: &[&str]) -> Vec<String> {
        let org = self.create("/api/v1/organizations", serde_json::json!({"name": "Acme"})).await;
        let div = self
            .create(
                "/api/v1/divisions",
                serde_json::json!({"name": "HQ", "organization_id": org["id"]}),
            )
            .await;
        let mut out = Vec::new();
        for c in codes {
            let o = self
                .create(
                    "/api/v1/offices",
                    serde_json::json!({"division_id": div["id"], "code": c, "name": c}),
                )
                .await;
            out.push(o["id"].as_str().unwrap().to_owned());
        }
        out
    }

    /// Creates operator `username` with `roles` and `extra` fields (scope: `offices`,
    /// `divisions`, `unrestricted`), and an API key acting for it with `permissions`.
    /// Returns (operator id, key secret).
    pub async fn operator_key(
        &self,
        username: &str,
        roles: &[&str],
        extra: Value,
        permissions: &[&str],
    ) -> (String, String) {
        let mut body = serde_json::json!({"username": username, "roles": roles});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let op = self.create("/api/v1/operators", body).await;
        let id = op["id"].as_str().unwrap().to_owned();
        let key = self
            .create_key(serde_json::json!({"name": format!("{username}-key"),
                "permissions": permissions, "operator_id": id}))
            .await;
        (id, key["key"].as_str().unwrap().to_owned())
    }

    /// The CRL of CA `ca` as `openssl crl -text` prints it.
    pub async fn crl_text(&self, ca: &str) -> String {
        let r = self.client.get(format!("{}/crl/{ca}.crl", self.url)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let dir = tempfile::tempdir().unwrap();
        let der = dir.path().join("crl.der");
        std::fs::write(&der, r.bytes().await.unwrap()).unwrap();
        let (ok, out) =
            openssl(&["crl", "-inform", "DER", "-in", der.to_str().unwrap(), "-noout", "-text"]);
        assert!(ok, "{out}");
        out
    }

    /// Asks Sigil's OCSP responder about `cert` (a certificate view with `certificate` and
    /// `chain`) with openssl, checks the response's signature, and returns openssl's text of
    /// it (`Cert Status: good`, or `Cert Status: revoked` with `Revocation Reason: …`).
    pub async fn ocsp_text(&self, cert: &Value) -> String {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n).display().to_string();
        std::fs::write(p("leaf.pem"), cert["certificate"].as_str().unwrap()).unwrap();
        std::fs::write(p("issuing.pem"), cert["chain"][0].as_str().unwrap()).unwrap();
        let chain: String =
            cert["chain"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
        std::fs::write(p("chain.pem"), chain).unwrap();
        let (ok, out) = openssl(&[
            "ocsp",
            "-issuer",
            &p("issuing.pem"),
            "-cert",
            &p("leaf.pem"),
            "-reqout",
            &p("req.der"),
        ]);
        assert!(ok, "{out}");
        let r = self
            .client
            .post(format!("{}/ocsp", self.url))
            .header("content-type", "application/ocsp-request")
            .body(std::fs::read(p("req.der")).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        std::fs::write(p("resp.der"), r.bytes().await.unwrap()).unwrap();
        let (ok, out) = openssl(&[
            "ocsp",
            "-respin",
            &p("resp.der"),
            "-reqin",
            &p("req.der"),
            "-issuer",
            &p("issuing.pem"),
            "-CAfile",
            &p("chain.pem"),
            "-resp_text",
        ]);
        assert!(ok && out.contains("Response verify OK"), "{out}");
        out
    }

    /// The audit trail of one object (`GET /api/v1/audit/objects/{type}/{id}`), as the
    /// administrator; the call must succeed.
    pub async fn trail(&self, object_type: &str, id: &str) -> Value {
        let path = format!("/api/v1/audit/objects/{object_type}/{id}");
        let (status, trail) = json(self.admin(Method::GET, &path).send().await.unwrap()).await;
        assert_eq!(status, 200, "{trail}");
        trail
    }

    /// The actions on one object's audit trail, oldest first.
    pub async fn trail_actions(&self, object_type: &str, id: &str) -> Vec<String> {
        let trail = self.trail(object_type, id).await;
        trail["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_owned())
            .collect()
    }

    /// A second connection to the server's database, for inspection and tampering.
    pub async fn db(&self) -> SqlStore {
        let mut o = TestDb::sqlite().options();
        o.url = self.db_url.clone();
        SqlStore::connect(&o).await.unwrap()
    }

    /// Makes every insert into `table` fail with `message` from now on (a trigger), to see
    /// what a write failure in the middle of an operation leaves behind.
    pub async fn refuse_inserts(&self, table: &str, message: &str) {
        let sql = if self.db_url.starts_with("sqlite") {
            format!(
                "CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} \
                 BEGIN SELECT RAISE(ABORT, '{message}'); END"
            )
        } else {
            format!(
                "CREATE FUNCTION refuse_{table}() RETURNS trigger AS $$ BEGIN \
                 RAISE EXCEPTION '{message}'; END $$ LANGUAGE plpgsql; \
                 CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} \
                 FOR EACH ROW EXECUTE FUNCTION refuse_{table}()"
            )
        };
        self.db().await.execute_raw(&sql).await.unwrap();
    }

    /// Stops the server gracefully.
    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await.unwrap();
        }
    }
}

/// The configuration of the `test-proxy` endpoint plugin (`plugins/test-proxy`) granted every
/// permission: `POST /api/v1/ext/test-proxy/call?method=M&to=<path>` forwards to `/api/v1<path>`
/// as the plugin acting for its caller. Its deadline is 10 s, not the default 100 ms: it is
/// there to reach routes as the plugin, and each call runs a whole request inside it, which on
/// a CI machine busy with other tests ran past 100 ms (a 502 `plugin_timeout` where the matrix
/// expected 403).
pub fn proxy_plugin_toml() -> String {
    format!(
        "[plugins.load.test-proxy]\nfile = \"{}/test_proxy.wasm\"\ngrants = [\"sigil-api\"]\n\
         permissions = [\"*\"]\ntimeout_ms = 10000\n",
        env!("SIGIL_TEST_PLUGINS")
    )
}

/// Merges TOML fragments that may repeat a table header or key into one document.
fn merge_toml(s: &str) -> String {
    let mut tables: Vec<(String, Vec<String>)> = vec![(String::new(), vec![])];
    for line in s.lines() {
        let t = line.trim();
        if t.starts_with('[') && !t.starts_with("[[") {
            if let Some(i) = tables.iter().position(|(h, _)| h == t) {
                let (h, body) = tables.remove(i);
                tables.push((h, body));
            } else {
                tables.push((t.to_owned(), vec![]));
            }
        } else if let Some((_, body)) = tables.last_mut() {
            // A later value for the same key wins.
            if let Some((k, _)) = t.split_once('=') {
                let k = k.trim();
                body.retain(|l| l.split_once('=').is_none_or(|(lk, _)| lk.trim() != k));
            }
            body.push(line.to_owned());
        }
    }
    let mut out = String::new();
    for (h, body) in tables {
        if !h.is_empty() {
            out.push_str(&h);
            out.push('\n');
        }
        for l in body {
            out.push_str(&l);
            out.push('\n');
        }
    }
    out
}

/// A client that trusts `ca` and connects from `local` (any 127.0.0.0/8 address works here).
pub fn client_bound(ca: &Path, local: std::net::IpAddr) -> Client {
    Client::builder()
        .tls_backend_preconfigured(tls_config(ca, None))
        .local_address(local)
        .build()
        .unwrap()
}

/// A client that speaks HTTP/1.1 only (the default one negotiates HTTP/2).
pub fn client_http1(ca: &Path) -> Client {
    let mut tls = tls_config(ca, None);
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Client::builder().tls_backend_preconfigured(tls).http1_only().build().unwrap()
}

/// A client that trusts `ca` and does not follow redirects (to see a page's 303 itself).
pub fn client_no_redirect(ca: &Path) -> Client {
    Client::builder()
        .tls_backend_preconfigured(tls_config(ca, None))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A client that trusts `ca` and optionally presents a client certificate (cert chain PEM, key).
pub fn client_for(ca: &Path, identity: Option<(&Path, &Path)>) -> Client {
    Client::builder().tls_backend_preconfigured(tls_config(ca, identity)).build().unwrap()
}

fn tls_config(ca: &Path, identity: Option<(&Path, &Path)>) -> rustls::ClientConfig {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    install_crypto();
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut tls = match identity {
        None => b.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert).unwrap().map(Result::unwrap).collect();
            b.with_client_auth_cert(chain, PrivateKeyDer::from_pem_file(key).unwrap()).unwrap()
        }
    };
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    tls
}

/// The JSON body of a response, with its status.
pub async fn json(r: Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Runs openssl with `args`; returns (success, stdout + stderr).
pub fn openssl(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl CLI is installed");
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Makes a key and a CSR with the openssl CLI. `key` is an openssl `-newkey` argument such as
/// `ec:P-256` (the curve is resolved here), `rsa:2048`; `sans` like `DNS:a.example,IP:10.0.0.1`.
pub fn openssl_csr(
    dir: &Path,
    name: &str,
    key: &str,
    subject: &str,
    sans: Option<&str>,
) -> (String, PathBuf) {
    let key_path = dir.join(format!("{name}.key"));
    let csr_path = dir.join(format!("{name}.csr"));
    let k = key_path.to_str().unwrap();
    match key.strip_prefix("ec:") {
        Some(curve) => {
            let (ok, out) = openssl(&[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                &format!("ec_paramgen_curve:{curve}"),
                "-out",
                k,
            ]);
            assert!(ok, "{out}");
        }
        None => {
            let bits = key.strip_prefix("rsa:").unwrap_or("2048");
            let (ok, out) = openssl(&[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                &format!("rsa_keygen_bits:{bits}"),
                "-out",
                k,
            ]);
            assert!(ok, "{out}");
        }
    }
    let mut args =
        vec!["req", "-new", "-key", k, "-subj", subject, "-out", csr_path.to_str().unwrap()];
    let ext;
    if let Some(s) = sans {
        ext = format!("subjectAltName={s}");
        args.extend(["-addext", &ext]);
    }
    let (ok, out) = openssl(&args);
    assert!(ok, "{out}");
    (std::fs::read_to_string(&csr_path).unwrap(), key_path)
}

#[cfg(test)]
mod tests {
    #[test]
    fn free_ports_are_distinct_and_outside_the_ephemeral_range() {
        let ports: Vec<u16> = (0..50).map(|_| super::free_port()).collect();
        let distinct: std::collections::BTreeSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), ports.len());
        let low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .map(|r| r.split_whitespace().next().unwrap().parse().unwrap())
            .unwrap_or(32_768);
        assert!(ports.iter().all(|p| *p < low), "{ports:?}");
    }
}
