//! sqlx implementations of sigil-core's storage ports, for SQLite and PostgreSQL.
//!
//! The backend is chosen by the URL scheme. Queries are runtime queries through sqlx's `Any`
//! driver with SQL that both backends accept; where they differ (row locks) the store picks the
//! variant by [`Backend`]. No other crate writes SQL.
//!
//! On SQLite all writes go through a pool of one connection: SQLite has one writer anyway, and
//! serialising in the pool avoids `SQLITE_BUSY` when a deferred transaction upgrades to a write.
//! On PostgreSQL the audit head row is locked (`FOR UPDATE`) by every appender, so concurrent
//! writers on several nodes still build one chain.

mod acme;
mod apikeys;
mod audit;
mod certs;
mod checkpointer;
mod csc;
mod filter;
mod group;
mod operators;
mod ops;
mod pg_group;
mod ports;
mod priority;
mod records;
mod search;
mod sqlite_read;
// Feature `testing` only: keeps `tempfile` out of the server binary.
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod tx;
mod ui_sessions;

use std::time::Duration;

use async_trait::async_trait;
use sigil_core::StoreError;
use sigil_core::access::api_key::ApiKey;
use sigil_core::audit::{AuditEvent, Checkpoint};
use sigil_core::ports::{
    AccessStore, ApiKeyFilter, AuditFilter, AuditHead, AuditKeyRecord, AuditLog, CertStore,
    PageRequest, SettingsStore, SigningStore, Store, StoreResult, Tx,
};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use std::str::FromStr;
use std::sync::Arc;

use sqlx::{AnyPool, Executor};
use uuid::Uuid;

/// Which database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file (WAL).
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// How to open the database.
#[derive(Clone)]
pub struct DbOptions {
    /// `sqlite://path` or `postgres://user:pass@host/db`.
    pub url: String,
    /// Pool size for reads (and for writes on PostgreSQL).
    pub max_connections: u32,
    /// SQLite `synchronous` pragma: `full` (durable on power loss) or `normal`.
    pub sqlite_synchronous: String,
    /// SQLite on Linux only: the nice value of the group writer's thread (the server's
    /// configuration allows −20 to 0; 0 leaves it as it is). Every durable write waits on that
    /// one thread, so it should not wait for a core behind the request threads (priority.rs).
    pub sqlite_writer_nice: i32,
    /// SQLite on Linux only: the CPU the group writer's thread is kept on (`None`: anywhere;
    /// see priority.rs).
    pub sqlite_writer_cpu: Option<usize>,
    /// How long to wait for a connection.
    pub acquire_timeout: Duration,
    /// Open only a database that exists (SQLite: never create the file): for commands that
    /// read or change an existing installation and must not leave a new one behind.
    pub existing: bool,
}

impl std::fmt::Debug for DbOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbOptions")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

/// The URL with any password replaced, for logs and errors: the one in `user:password@` and
/// a `password=` query parameter (libpq's other way of giving it).
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = match (base.find("://"), base.rfind('@')) {
        (Some(s), Some(at)) if at > s => match base[s + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &base[..s + 3], &base[at..]),
            None => base.to_owned(),
        },
        _ => base.to_owned(),
    };
    if let Some(q) = query {
        let params: Vec<String> = q
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => kv.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// Errors opening or migrating the database.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The URL names no supported backend.
    #[error("unsupported database url `{0}`: use sqlite://… or postgres://…")]
    Scheme(String),
    /// Connecting failed.
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// Redacted URL.
        url: String,
        /// Cause.
        source: sqlx::Error,
    },
    /// SQLite's group writer could not open the database or start.
    #[error("cannot start the SQLite writer: {0}")]
    Writer(String),
    /// SQLite's text-search database could not be opened or prepared.
    #[error("cannot open the text-search database: {0}")]
    Search(String),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database was migrated by a newer version of Sigil.
    #[error(
        "the database has {0} migrations this version of sigil does not know: use a newer sigil"
    )]
    Newer(usize),
    /// An existing database was asked for and there is none.
    #[error("no database at {0}: start the server once (sigil serve) or run sigil migrate")]
    Missing(String),
    /// The database file could not be created or its mode set.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
}

/// Creates an empty SQLite file readable by its owner only (SQLite gives its `-wal` and `-shm`
/// files the database file's mode), and takes group and world access away from an existing one.
#[cfg(unix)]
fn private_file(path: &std::path::Path, create: bool) -> Result<(), OpenError> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let err = |source| OpenError::File { path: path.display().to_string(), source };
    // Never through a symbolic link: a command run as root must not change the mode of what a
    // link in someone else's data directory points at.
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            Err(err(std::io::Error::other("is a symbolic link; name the database file itself")))
        }
        Ok(m) if m.permissions().mode() & 0o077 != 0 => {
            tracing::info!(file = %path.display(), "making the database readable by its owner only");
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map(|_| ())
            .or_else(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists { Ok(()) } else { Err(err(e)) }
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(OpenError::Missing(path.display().to_string()))
        }
        Err(e) => Err(err(e)),
    }
}

#[cfg(not(unix))]
fn private_file(path: &std::path::Path, create: bool) -> Result<(), OpenError> {
    if !create && !path.exists() {
        return Err(OpenError::Missing(path.display().to_string()));
    }
    Ok(())
}

/// The SQL store.
#[derive(Debug, Clone)]
pub struct SqlStore {
    read: AnyPool,
    write: AnyPool,
    backend: Backend,
    /// The group-commit writer of single-unit changes (issuance, SAD spends): a thread of its
    /// own on SQLite, a task on PostgreSQL.
    group: tokio::sync::mpsc::Sender<group::Unit>,
    /// SQLite: the writers' queue. The group writer and sqlx's write connection are two
    /// SQLite connections, and SQLite's busy handler polls rather than queues, so a busy group
    /// writer could starve the other; both take this fair (first come, first served) lock
    /// before SQLite's writer lock. `None` on PostgreSQL.
    gate: Option<Arc<tokio::sync::Mutex<()>>>,
    /// Told of every commit's events (metrics); set once, after the services are built.
    observer: Observer,
    /// SQLite: the database file. `None` on PostgreSQL.
    sqlite_file: Option<std::path::PathBuf>,
    /// SQLite: the audit checkpoint walk's reader of that file
    /// ([`sqlite_read::events_after_in_file`]). `None` on PostgreSQL.
    walk: Option<Arc<sqlite_read::WalkReader>>,
}

/// The commit observer of a store, shared with its transactions.
pub(crate) type Observer = Arc<std::sync::OnceLock<Arc<dyn sigil_core::ports::CommitObserver>>>;

impl SqlStore {
    /// Connects (creating a SQLite file if needed). Does not migrate.
    pub async fn connect(opts: &DbOptions) -> Result<Self, OpenError> {
        install_default_drivers();
        let backend = if opts.url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if opts.url.starts_with("postgres://") || opts.url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(OpenError::Scheme(redact_url(&opts.url)));
        };
        let connect_err = |source| OpenError::Connect { url: redact_url(&opts.url), source };
        match backend {
            Backend::Sqlite => {
                // Each commit's WAL frames in one write instead of two per frame (see the
                // sigil-sqlite-wal crate); without it SQLite works as before, only slower.
                if let Err(e) = sigil_sqlite_wal::register() {
                    tracing::warn!(error = %e, "SQLite WAL write coalescing is off");
                }
                let url = sqlite_url(&opts.url);
                let file = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
                    .map_err(connect_err)?
                    .get_filename()
                    .to_path_buf();
                if file.as_os_str().is_empty() || file.as_os_str() == ":memory:" {
                    return Err(OpenError::Writer("SQLite needs a database file".into()));
                }
                private_file(&file, !opts.existing)?;
                // The text-search index's own file (see search.rs), attached to the read
                // pool's connections only: a `BEGIN IMMEDIATE` takes the writer lock of every
                // attached file, so on the write pool it would wait for the indexer again.
                let search_file = search::file_for(&file);
                if !opts.existing {
                    search::remove_legacy_file(&file).map_err(OpenError::Search)?;
                }
                private_file(&search_file, true)?;
                search::open_or_reset(&search_file).map_err(OpenError::Search)?;
                let attach = search::attach_sql(&search_file).map_err(OpenError::Search)?;
                let sync = if opts.sqlite_synchronous == "normal" { "NORMAL" } else { "FULL" };
                let setup = format!(
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous={sync}; PRAGMA busy_timeout=10000; PRAGMA foreign_keys=ON; \
                     PRAGMA wal_autocheckpoint={};",
                    checkpointer::WRITER_FRAMES,
                );
                let pool = |n: u32, attach: Option<&str>| {
                    let setup = match attach {
                        Some(a) => format!("{setup} {a}"),
                        None => setup.clone(),
                    };
                    AnyPoolOptions::new()
                        .max_connections(n)
                        .acquire_timeout(opts.acquire_timeout)
                        // A file database has no connection to lose; pinging before each use
                        // would cost a round trip to sqlx's worker thread per acquire.
                        .test_before_acquire(false)
                        .after_connect(move |conn, _| {
                            let setup = setup.clone();
                            Box::pin(async move {
                                conn.execute(sqlx::AssertSqlSafe(setup)).await?;
                                Ok(())
                            })
                        })
                        .connect(&url)
                };
                let write = pool(1, None).await.map_err(connect_err)?;
                let read =
                    pool(opts.max_connections.max(1), Some(&attach)).await.map_err(connect_err)?;
                // The group writer opens the file too.
                let gate = Arc::new(tokio::sync::Mutex::new(()));
                let group = group::spawn(
                    &file,
                    sync,
                    opts.sqlite_writer_nice,
                    opts.sqlite_writer_cpu,
                    Arc::clone(&gate),
                )
                .map_err(OpenError::Writer)?;
                Ok(Self {
                    read,
                    write,
                    backend,
                    group,
                    gate: Some(gate),
                    observer: Observer::default(),
                    sqlite_file: Some(file.clone()),
                    walk: Some(Arc::new(sqlite_read::WalkReader::new(file.clone()))),
                })
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(opts.max_connections.max(2))
                    .acquire_timeout(opts.acquire_timeout)
                    .connect(&opts.url)
                    .await
                    .map_err(connect_err)?;
                let group = pg_group::spawn(pool.clone());
                Ok(Self {
                    read: pool.clone(),
                    write: pool,
                    backend,
                    group,
                    gate: None,
                    observer: Observer::default(),
                    sqlite_file: None,
                    walk: None,
                })
            }
        }
    }

    /// How many of this version's migrations the database has not applied (0: up to date);
    /// an error if it holds migrations this version does not know (a newer Sigil's). Reads
    /// only; a database never migrated has them all pending.
    pub async fn pending_migrations(&self) -> Result<usize, OpenError> {
        let migrator = self.migrator();
        let applied: Vec<i64> =
            match sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.read)
                .await
            {
                Ok(v) => v,
                // No migration table: nothing was ever applied.
                Err(sqlx::Error::Database(_)) => Vec::new(),
                Err(e) => return Err(OpenError::Connect { url: String::new(), source: e }),
            };
        let unknown = applied.iter().filter(|v| !migrator.iter().any(|m| m.version == **v)).count();
        if unknown > 0 {
            return Err(OpenError::Newer(unknown));
        }
        Ok(migrator.iter().filter(|m| !applied.contains(&m.version)).count())
    }

    /// This backend's migrations, embedded once.
    fn migrator(&self) -> sqlx::migrate::Migrator {
        match self.backend {
            Backend::Sqlite => sqlx::migrate!("../../migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("../../migrations/postgres"),
        }
    }

    /// Applies pending migrations for this backend.
    pub async fn migrate(&self) -> Result<(), OpenError> {
        self.migrator().run(&self.write).await?;
        Ok(())
    }

    /// A transaction on the write pool. On SQLite it waits its turn at the writers' gate, then
    /// takes the writer lock at once (`BEGIN IMMEDIATE`): a deferred transaction that read
    /// before the group writer's commit could not write afterwards.
    async fn begin_write(&self) -> StoreResult<tx::SqlTx> {
        let gate = self.gate().await;
        let tx = match self.backend {
            Backend::Sqlite => self.write.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.write.begin().await,
        }
        .map_err(map_err)?;
        Ok(tx::SqlTx {
            tx,
            backend: self.backend,
            _gate: gate,
            observer: Arc::clone(&self.observer),
        })
    }

    /// SQLite: this writer's turn (held until dropped); PostgreSQL: nothing to wait for.
    async fn gate(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match &self.gate {
            Some(g) => Some(Arc::clone(g).lock_owned().await),
            None => None,
        }
    }

    /// Which backend this is.
    pub fn kind(&self) -> Backend {
        self.backend
    }

    /// Runs raw SQL on the write connection. For tests that simulate tampering or failures.
    pub async fn execute_raw(&self, sql: &str) -> Result<(), sqlx::Error> {
        let _turn = self.gate().await;
        self.write.execute(sqlx::AssertSqlSafe(sql.to_owned())).await.map(|_| ())
    }

    /// Closes both pools.
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

/// Most rows in one multi-row INSERT. Statements are prepared once per SQL text, so a batch is
/// split into runs of 32, 16, 8, 4, 2 and 1 rows: six texts per table, whatever the batch.
const MAX_ROWS_PER_INSERT: usize = 32;

/// `items` in runs whose lengths are powers of two, longest first (see [`MAX_ROWS_PER_INSERT`]).
pub(crate) fn insert_runs<T>(mut items: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if items.is_empty() {
            return None;
        }
        let n = items.len().min(MAX_ROWS_PER_INSERT);
        // The largest power of two not above n.
        let run = 1usize << (usize::BITS - 1 - n.leading_zeros());
        let (head, rest) = items.split_at(run);
        items = rest;
        Some(head)
    })
}

/// `INSERT INTO {table} ({columns}) VALUES ($1, …), (…)` for `rows` rows of `width` values.
pub(crate) fn multi_insert(table: &str, columns: &str, width: usize, rows: usize) -> String {
    let mut sql = format!("INSERT INTO {table} ({columns}) VALUES ");
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..width {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", r * width + c + 1));
        }
        sql.push(')');
    }
    sql
}

/// Writes a consistent copy of the SQLite database at `url` to `out` (which must not exist),
/// readable by its owner only, while writers may go on: `VACUUM INTO` reads one snapshot in a
/// read transaction, so the copy is what a commit left and never a torn mix (a file copy of a
/// live WAL database is not). The source is opened read-only.
pub async fn sqlite_backup(url: &str, out: &std::path::Path) -> Result<(), OpenError> {
    use sqlx::Connection as _;
    let file = sqlx::sqlite::SqliteConnectOptions::from_str(url)
        .map_err(|source| OpenError::Connect { url: redact_url(url), source })?
        .get_filename()
        .to_path_buf();
    if !file.is_file() {
        return Err(OpenError::Missing(file.display().to_string()));
    }
    // An empty file of mode 0600 first: VACUUM INTO fills an empty file and keeps its mode.
    private_file(out, true)?;
    let ro = sqlx::sqlite::SqliteConnectOptions::new().filename(&file).read_only(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&ro)
        .await
        .map_err(|source| OpenError::Connect { url: redact_url(url), source })?;
    let target = out.to_str().ok_or_else(|| OpenError::File {
        path: out.display().to_string(),
        source: std::io::Error::other("the path is not UTF-8"),
    })?;
    sqlx::query("VACUUM INTO ?")
        .bind(target)
        .execute(&mut conn)
        .await
        .map_err(|source| OpenError::Connect { url: redact_url(url), source })?;
    conn.close().await.map_err(|source| OpenError::Connect { url: redact_url(url), source })?;
    Ok(())
}

/// Adds `mode=rwc` so that a missing SQLite file is created.
fn sqlite_url(url: &str) -> String {
    if url.contains("mode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict {
            constraint: db
                .constraint()
                .map(str::to_owned)
                .unwrap_or_else(|| db.message().to_owned()),
        },
        other => StoreError::Backend(other.to_string()),
    }
}

/// `%…%` around the lowercased, escaped `s`, for a `LIKE … ESCAPE '\'` substring match.
pub(crate) fn like_pattern(s: &str) -> String {
    format!("%{}%", filter::escape_like(&s.to_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_appear_in_redacted_urls() {
        assert_eq!(
            redact_url("postgres://sigil:hunter2@127.0.0.1/sigil"),
            "postgres://sigil:***@127.0.0.1/sigil"
        );
        assert_eq!(redact_url("sqlite://data/sigil.db"), "sqlite://data/sigil.db");
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("A_b%"), "%a\\_b\\%%");
    }

    #[test]
    fn sqlite_urls_create_missing_files() {
        assert_eq!(sqlite_url("sqlite://x.db"), "sqlite://x.db?mode=rwc");
        assert_eq!(sqlite_url("sqlite://x.db?mode=ro"), "sqlite://x.db?mode=ro");
    }
}

#[cfg(test)]
mod insert_tests {
    use super::*;

    #[test]
    fn a_batch_splits_into_power_of_two_runs_of_at_most_32_in_order() {
        let items: Vec<usize> = (0..77).collect();
        let runs: Vec<&[usize]> = insert_runs(&items).collect();
        assert_eq!(runs.iter().map(|r| r.len()).collect::<Vec<_>>(), [32, 32, 8, 4, 1]);
        assert_eq!(runs.concat(), items);
        assert_eq!(insert_runs::<u8>(&[]).count(), 0);
    }

    #[test]
    fn a_multi_row_insert_numbers_its_placeholders_row_by_row() {
        assert_eq!(
            multi_insert("t", "a, b", 2, 2),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)"
        );
    }
}
