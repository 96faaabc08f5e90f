//! Test databases for both backends: a fresh SQLite file, and, when `SIGIL_TEST_DATABASE_URL`
//! names a PostgreSQL server, a fresh database created on it for each test and dropped after.

#![allow(clippy::panic)] // Test support: a broken test database should stop the test loudly.

use std::time::Duration;

use sqlx::Executor;
use sqlx::any::AnyPoolOptions;

use crate::{DbOptions, SqlStore, redact_url};

/// The environment variable that enables the PostgreSQL runs.
pub const PG_ENV: &str = "SIGIL_TEST_DATABASE_URL";

/// A throw-away database.
#[derive(Debug)]
pub struct TestDb {
    /// Connection URL for the server under test.
    pub url: String,
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    admin: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// Every backend available here: SQLite always, PostgreSQL when the variable is set.
    pub async fn all() -> Vec<TestDb> {
        let mut v = vec![Self::sqlite()];
        if let Some(pg) = Self::postgres().await {
            v.push(pg);
        }
        v
    }

    /// A fresh SQLite file in a temporary directory.
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let url = format!("sqlite://{}/sigil.db", dir.path().display());
        TestDb { url, backend: "sqlite", admin: None, _dir: Some(dir) }
    }

    /// A fresh PostgreSQL database, or `None` when the variable is unset.
    pub async fn postgres() -> Option<TestDb> {
        let admin_url = std::env::var(PG_ENV).ok().filter(|s| !s.is_empty())?;
        sqlx::any::install_default_drivers();
        let name = format!("sigil_t_{}", uuid::Uuid::new_v4().simple());
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot reach {}: {e}", redact_url(&admin_url)));
        pool.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE: {e}"));
        pool.close().await;
        let base = admin_url.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin_url);
        let url = format!("{base}/{name}");
        Some(TestDb { url, backend: "postgres", admin: Some((admin_url, name)), _dir: None })
    }

    /// Options for this database.
    pub fn options(&self) -> DbOptions {
        DbOptions {
            url: self.url.clone(),
            max_connections: 8,
            sqlite_synchronous: "normal".into(),
            // The server's default, so the tests' writers run as a server's do.
            sqlite_writer_nice: -10,
            sqlite_writer_cpu: None,
            acquire_timeout: Duration::from_secs(30),
            existing: false,
        }
    }

    /// Connects and migrates.
    pub async fn store(&self) -> SqlStore {
        let s = SqlStore::connect(&self.options()).await.unwrap_or_else(|e| panic!("{e}"));
        s.migrate().await.unwrap_or_else(|e| panic!("{e}"));
        s
    }

    /// Drops the PostgreSQL database (SQLite files go with their temporary directory).
    pub async fn cleanup(self) {
        if let Some((admin_url, name)) = &self.admin
            && let Ok(pool) = AnyPoolOptions::new().max_connections(1).connect(admin_url).await
        {
            let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            let _ = pool.execute(sqlx::AssertSqlSafe(sql)).await;
            pool.close().await;
        }
    }
}

/// A certificate record for storage tests: serial `serial`, issued now, valid for a day, with a
/// placeholder DER (an empty SEQUENCE).
pub fn certificate(serial: &str) -> sigil_core::certs::Certificate {
    let now = time::OffsetDateTime::now_utc();
    sigil_core::certs::Certificate {
        id: uuid::Uuid::now_v7(),
        serial: serial.into(),
        ca_id: "builtin".into(),
        profile: "p".into(),
        status: sigil_core::certs::CertStatus::Active,
        subject: "CN=x".into(),
        sans: vec![],
        key_type: sigil_core::certs::KeyType::P256,
        not_before: now,
        not_after: now + time::Duration::days(1),
        der: vec![0x30, 0x00],
        sha256: "00".into(),
        issued_at: now,
        issued_by: "test".into(),
        revoked_at: None,
        revocation_reason: None,
        metadata: serde_json::json!({}),
        renewed_from: None,
        superseded_by: None,
        superseded_until: None,
        office_id: None,
        updated_at: now,
    }
}

/// Stores the certificate `serial` in a unit of its own (through the group writer), audited as
/// an issuance of `object_id`.
pub async fn issue_one(
    store: &dyn sigil_core::ports::Store,
    serial: &str,
    object_id: &str,
) -> sigil_core::ports::StoreResult<()> {
    let ev = sigil_core::audit::NewAuditEvent::new(
        &sigil_core::access::authz::Principal::system(),
        sigil_core::audit::AuditAction::CertificateIssue,
        "certificate",
        object_id,
    );
    let op =
        sigil_core::ports::WriteOp::InsertCertificate(std::sync::Arc::new(certificate(serial)));
    store.commit_ops(vec![op], vec![ev], time::OffsetDateTime::now_utc()).await
}

/// The nice value in a line of `/proc/<pid>/stat` or `/proc/<pid>/task/<tid>/stat`, and the
/// name before it: the fields after the parenthesised name start at field 3 (the state), and
/// field 19 is the nice value.
pub fn stat_name_and_nice(stat: &str) -> Option<(&str, i32)> {
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1;
    Some((name, rest.split_whitespace().nth(16)?.parse().ok()?))
}

/// The threads of process `pid` (`"self"` for this one) named `name` (as the kernel keeps a
/// name, cut to 15 bytes), with their nice values, by thread id; from /proc (Linux).
pub fn thread_nice(pid: &str, name: &str) -> std::collections::HashMap<u32, i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Default::default();
    };
    tasks
        .flatten()
        .filter_map(|t| {
            let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
            let (n, nice) = stat_name_and_nice(&stat)?;
            (n == name).then(|| Some((t.file_name().to_str()?.parse().ok()?, nice)))?
        })
        .collect()
}

/// The CPUs thread `tid` of process `pid` may run on, as /proc lists them (`0-1`, `1`).
pub fn thread_cpus(pid: &str, tid: u32) -> Option<String> {
    cpus_allowed_list(&format!("/proc/{pid}/task/{tid}/status"))
}

/// The highest CPU this process may run on (from /proc, Linux).
pub fn last_allowed_cpu() -> Option<usize> {
    let list = cpus_allowed_list("/proc/self/status")?;
    list.split(',').filter_map(|r| r.trim().rsplit('-').next()?.parse().ok()).max()
}

/// The `Cpus_allowed_list` of a /proc status file.
fn cpus_allowed_list(status: &str) -> Option<String> {
    let status = std::fs::read_to_string(status).ok()?;
    let line = status.lines().find(|l| l.starts_with("Cpus_allowed_list:"))?;
    Some(line.split_once(':')?.1.trim().to_owned())
}
