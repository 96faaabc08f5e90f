//! A real cfssl CA for the CA connector tests: Debian's `golang-cfssl` (installed with apt-get
//! when absent, as root), a root and an issuing CA made with `cfssl gencert`/`sign` from the
//! configuration in `tests/fixtures/cfssl/`, a SQLite certdb in WAL mode, and `cfssl serve` on
//! 127.0.0.1 at a free port, killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use sqlx::Row;

/// The auth key of the `client-auth` profile in `fixtures/cfssl/ca-config.json`.
pub const AUTH_KEY: &str = "0123456789abcdef0123456789abcdef";

/// A running cfssl CA.
pub struct Cfssl {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its folder: `root.pem`, `int.pem`, `certdb.sqlite`, …
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Drop for Cfssl {
    fn drop(&mut self) {
        self.stop();
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cfssl")
}

/// Installs golang-cfssl from Debian's packages once per process if `cfssl` is not on PATH.
fn ensure_installed() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let present =
            Command::new("cfssl").arg("version").output().is_ok_and(|o| o.status.success());
        if present {
            return;
        }
        let run = |args: &[&str]| {
            let st = Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .expect("apt-get (the cfssl tests install golang-cfssl when it is missing)");
            assert!(st.success(), "apt-get {args:?} failed (installing cfssl needs root)");
        };
        run(&["update", "-qq"]);
        run(&["install", "-y", "-qq", "golang-cfssl"]);
    });
}

/// Runs `cmd` in `dir`, feeding stdout of `cfssl` into `cfssljson -bare name`.
fn cfssl_json(dir: &Path, args: &[&str], bare: &str) {
    let out = Command::new("cfssl").args(args).current_dir(dir).output().expect("cfssl");
    assert!(out.status.success(), "cfssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    let mut child = Command::new("cfssljson")
        .args(["-bare", bare])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .spawn()
        .expect("cfssljson");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &out.stdout).unwrap();
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success(), "cfssljson -bare {bare}");
}

impl Cfssl {
    /// Creates a CA and starts `cfssl serve` for it.
    pub async fn start() -> Cfssl {
        crate::install_crypto();
        ensure_installed();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let f = fixtures();
        let fx = |n: &str| f.join(n).to_str().unwrap().to_owned();
        cfssl_json(d, &["gencert", "-initca", &fx("root-csr.json")], "root");
        cfssl_json(d, &["genkey", &fx("intermediate-csr.json")], "int");
        cfssl_json(
            d,
            &[
                "sign",
                "-ca",
                "root.pem",
                "-ca-key",
                "root-key.pem",
                "-config",
                &fx("ca-config.json"),
                "-profile",
                "intermediate",
                "int.csr",
            ],
            "int",
        );
        let db = d.join("certdb.sqlite");
        let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(&db).create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
        let ddl = std::fs::read_to_string(f.join("certdb-sqlite.sql")).unwrap();
        // A fixture file of ours, not input.
        sqlx::raw_sql(sqlx::AssertSqlSafe(ddl)).execute(&pool).await.unwrap();
        pool.close().await;
        // WAL: cfssl's default DSN locks the certdb under concurrent signing (pitfall 3).
        std::fs::write(
            d.join("db-config.json"),
            serde_json::json!({"driver": "sqlite3",
                "data_source": format!("file:{}?_journal_mode=WAL&_busy_timeout=5000", db.display())})
            .to_string(),
        )
        .unwrap();
        let mut cfssl = Cfssl { url: String::new(), dir, child: None };
        cfssl.serve(crate::free_port()).await;
        cfssl
    }

    async fn serve(&mut self, port: u16) {
        let d = self.dir.path();
        let child = Command::new("cfssl")
            .args(["serve", "-address", "127.0.0.1", "-port", &port.to_string()])
            .args(["-ca", "int.pem", "-ca-key", "int-key.pem", "-config"])
            .arg(fixtures().join("ca-config.json"))
            .args(["-db-config", "db-config.json", "-loglevel", "3"])
            .current_dir(d)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cfssl serve");
        self.child = Some(child);
        self.url = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        for _ in 0..100 {
            let ok = client
                .post(format!("{}/api/v1/cfssl/info", self.url))
                .body("{}")
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ok {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("cfssl serve did not answer on {}", self.url);
    }

    /// Stops the server (the CA and its certdb stay).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port.
    pub async fn restart(&mut self) {
        self.stop();
        let port = self.url.rsplit(':').next().unwrap().parse().unwrap();
        self.serve(port).await;
    }

    /// A file of the CA folder as text.
    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap()
    }

    /// A file of the CA folder, its path.
    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }

    /// The certdb row of `serial` (decimal): (status, reason).
    pub async fn row(&self, serial_decimal: &str) -> Option<(String, i64)> {
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(self.dir.path().join("certdb.sqlite"))
            .read_only(true);
        let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
        let row = sqlx::query(
            "SELECT CAST(status AS TEXT), reason FROM certificates \
             WHERE CAST(serial_number AS TEXT) = ?",
        )
        .bind(serial_decimal)
        .fetch_optional(&pool)
        .await
        .unwrap();
        pool.close().await;
        row.map(|r| (r.get::<String, _>(0), r.get::<Option<i64>, _>(1).unwrap_or(0)))
    }

    /// The `[plugins.load.<id>]` section for the cfssl connector talking to this CA, signing
    /// with HMAC (`/authsign`, profile `client-auth`).
    pub fn plugin_toml(&self, id: &str, wasm: &Path) -> String {
        let chain = self.read("root.pem");
        format!(
            "[plugins.load.{id}]\nfile = \"{}\"\ngrants = [\"log\", \"config\", \"outbound-http\"]\n\
             timeout_ms = 5000\nmax_concurrency = 64\nallowed_hosts = [\"{url}\"]\n\
             [plugins.load.{id}.config]\nurl = \"{url}\"\nprofile = \"client-auth\"\n\
             auth_key = \"{AUTH_KEY}\"\nchain_pem = \"\"\"\n{chain}\"\"\"\n",
            wasm.display(),
            url = self.url,
        )
    }
}
