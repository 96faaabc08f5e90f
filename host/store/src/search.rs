//! Text search over certificates' subjects and SANs (`q=` on the certificate list).
//!
//! `LIKE '%text%'` alone reads every certificate (half a second over a million). PostgreSQL
//! keeps a pg_trgm GIN index on `certificates.search` and its planner weighs it. SQLite keeps
//! an FTS5 trigram table (`certificates_search`) that is filled in batches by
//! [`SqlStore::index_certificate_search`] rather than by a trigger: one FTS insert per
//! certificate would cost the issuance path about a tenth of its rate, a batch of thousands
//! costs little. `certificates_search_mark` holds the last certificate (rowid and id) the
//! index covers; a search narrowed by the index also takes every certificate after the mark
//! (`rowid >`), so nothing issued since is missed, and the LIKE is always applied, so the
//! answer is the same as without the index.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use sigil_core::StoreError;
use sigil_core::ports::StoreResult;
use sqlx::AnyPool;

use crate::{Backend, SqlStore, map_err};

/// Above this many trigram matches a text search is not narrowed by the index: the matching
/// certificates are common enough that walking the list in its order finds a page sooner than
/// sorting every match.
const NARROW_LIMIT: i64 = 2_000;

/// Certificates indexed per transaction, which is one FTS segment: large enough that the insert
/// is cheap per row (a catch-up over 1.38 million certificates indexed about 115,000 a second
/// here at 1,000). 4,000 rather than 1,000 makes fewer, larger segments to merge later: about
/// 10% less indexing work per certificate, which under sustained issuance runs beside it.
const INDEX_BATCH: i64 = 4_000;

/// The FTS5 phrase that matches `text` as a substring through the trigram index.
pub(crate) fn fts_phrase(text: &str) -> String {
    format!("\"{}\"", text.to_lowercase().replace('"', "\"\""))
}

/// The condition that narrows a certificate query to the index's candidates for `text`, when
/// it should: on SQLite, for text of three or more characters (a trigram; shorter text is not
/// indexed) that matches at most [`NARROW_LIMIT`] indexed certificates.
pub(crate) async fn narrowing(
    pool: &AnyPool,
    backend: Backend,
    text: &str,
) -> StoreResult<Option<(&'static str, String)>> {
    if backend != Backend::Sqlite || text.chars().count() < 3 {
        return Ok(None);
    }
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT 1 FROM certificates_search \
         WHERE certificates_search MATCH $1 LIMIT $2)",
    )
    .bind(fts_phrase(text))
    .bind(NARROW_LIMIT + 1)
    .fetch_one(pool)
    .await
    .map_err(map_err)?;
    Ok((n <= NARROW_LIMIT).then(|| {
        (
            // One IN list (not an OR, which SQLite answers by walking the whole list order):
            // the index's matches and the certificates after its mark.
            "id IN (SELECT id FROM certificates_search WHERE certificates_search MATCH ? \
             UNION ALL SELECT id FROM certificates \
             WHERE rowid > (SELECT last_rowid FROM certificates_search_mark WHERE id = 1))",
            fts_phrase(text),
        )
    }))
}

/// The text-search database beside the SQLite database `db`, named after the whole file name
/// as SQLite names its own companions (`sigil.db` → `sigil.db-search`, whose WAL is then
/// `sigil.db-search-wal`): two databases in one directory never share one index.
pub(crate) fn file_for(db: &Path) -> PathBuf {
    let mut name = db.file_name().map(ToOwned::to_owned).unwrap_or_default();
    name.push("-search");
    db.with_file_name(name)
}

/// Removes the index file of earlier versions beside `db` (`sigil.db` → `sigil-search.db`,
/// named after the stem, which `x.db` and `x.sqlite` shared), with its WAL and shared memory:
/// derived data that [`file_for`]'s file replaces. Only a file that holds an index and no
/// database of Sigil's is removed: `a-search.db` may be someone's database beside `a.db`.
/// Not called by opens of an existing installation (CLI reads), which change nothing.
pub(crate) fn remove_legacy_file(db: &Path) -> Result<(), String> {
    let stem = db.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let legacy = db.with_file_name(format!("{stem}-search.db"));
    if legacy == db || !legacy.is_file() || !holds_only_an_index(&legacy) {
        return Ok(());
    }
    remove_with_companions(&legacy)?;
    tracing::info!(file = %legacy.display(), "removed the text-search index of an earlier version; it is rebuilt under its new name");
    Ok(())
}

/// Removes the SQLite file `file` with its WAL and shared memory, those of them that exist.
fn remove_with_companions(file: &Path) -> Result<(), String> {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = file.as_os_str().to_owned();
        p.push(suffix);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("removing {}: {e}", PathBuf::from(p).display())),
        }
    }
    Ok(())
}

/// The statement that attaches the search database `file` to a connection as `search`; the
/// unqualified names `certificates_search` and `certificates_search_mark` then resolve there.
pub(crate) fn attach_sql(file: &Path) -> Result<String, String> {
    let path = file.to_str().ok_or("the search database's path is not UTF-8")?;
    Ok(format!("ATTACH DATABASE '{}' AS search;", path.replace('\'', "''")))
}

/// Whether the SQLite file `file` holds a text-search index (its mark table) and neither of the
/// main database's `certificates` and `audit_head`; `false` for a file SQLite cannot read. The
/// file is opened immutable (no locks, no `-wal` or `-shm` made beside someone's database).
fn holds_only_an_index(file: &Path) -> bool {
    let Some(path) = file.to_str() else { return false };
    let uri = format!(
        "file:{}?immutable=1",
        path.replace('%', "%25").replace('?', "%3f").replace('#', "%23")
    );
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
        | rusqlite::OpenFlags::SQLITE_OPEN_URI
        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let Ok(conn) = Connection::open_with_flags(uri, flags) else { return false };
    let tables: rusqlite::Result<Vec<String>> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect());
    matches!(tables, Ok(t) if t.iter().any(|n| n == "certificates_search_mark")
        && !t.iter().any(|n| n == "audit_head" || n == "certificates"))
}

/// The search database's tables and mark, created if missing.
const SCHEMA: &str = "CREATE VIRTUAL TABLE IF NOT EXISTS main.certificates_search \
         USING fts5(id UNINDEXED, search, tokenize = 'trigram'); \
     CREATE TABLE IF NOT EXISTS main.certificates_search_mark ( \
         id INTEGER PRIMARY KEY CHECK (id = 1), last_rowid BIGINT NOT NULL, last_id TEXT); \
     INSERT OR IGNORE INTO main.certificates_search_mark (id, last_rowid, last_id) \
         VALUES (1, 0, NULL);";

/// A connection to the search database `file` (WAL; `NORMAL` sync is enough for derived data,
/// and the mark and the rows it covers commit together), its tables created if missing.
fn open(file: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(file)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

/// Makes the search database `file` usable at start. A file SQLite cannot open or prepare (a
/// damaged one) is derived data: it is removed, with its WAL and shared memory, and made anew
/// empty, for the indexer to fill.
pub(crate) fn open_or_reset(file: &Path) -> Result<(), String> {
    let Err(first) = open(file) else { return Ok(()) };
    tracing::warn!(file = %file.display(), error = %first, "the text-search database cannot be used; rebuilding it");
    remove_with_companions(file)?;
    crate::private_file(file, true).map_err(|e| e.to_string())?;
    open(file).map(drop).map_err(|e| e.to_string())
}

impl SqlStore {
    /// SQLite: adds the certificates issued since the last call to the text-search index, in
    /// batches, and returns how many it added (0 on PostgreSQL, whose index is kept by the
    /// database). The server calls this every second. If the mark no longer names the
    /// certificate it recorded (a database rebuilt by VACUUM may renumber rows, a backup may be
    /// restored), the index is rebuilt from scratch. Runs on a blocking thread with connections
    /// of its own, writing only the search database.
    pub async fn index_certificate_search(&self) -> StoreResult<u64> {
        let Some(db) = self.sqlite_file.clone() else { return Ok(0) };
        tokio::task::spawn_blocking(move || index_into(&db))
            .await
            .map_err(|e| StoreError::Backend(format!("text-search indexer: {e}")))?
    }
}

/// [`SqlStore::index_certificate_search`] for the main database file `db`.
fn index_into(db: &Path) -> StoreResult<u64> {
    let map_err = |e: rusqlite::Error| StoreError::Backend(format!("text-search index: {e}"));
    // Made again (owner-only, tables created) if it was removed while the server ran.
    let file = file_for(db);
    crate::private_file(&file, true).map_err(|e| StoreError::Backend(e.to_string()))?;
    let mut conn = open(&file).map_err(map_err)?;
    let main =
        db.to_str().ok_or_else(|| StoreError::Backend("the database path is not UTF-8".into()))?;
    conn.execute("ATTACH DATABASE ?1 AS db", params![main]).map_err(map_err)?;
    let mut added = 0;
    loop {
        // Deferred: the first write takes the search file's lock only; the main file is read
        // in one snapshot.
        let tx = conn.transaction().map_err(map_err)?;
        let (mark, mark_id): (i64, Option<String>) = tx
            .query_row(
                "SELECT last_rowid, last_id FROM main.certificates_search_mark WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(map_err)?;
        let mut from = mark;
        if mark > 0 {
            let at: Option<String> = tx
                .query_row("SELECT id FROM db.certificates WHERE rowid = ?1", params![mark], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(map_err)?;
            if at != mark_id {
                // Dropped and made again: an FTS5 table deletes row by row.
                tx.execute_batch(&format!("DROP TABLE main.certificates_search; {SCHEMA}"))
                    .map_err(map_err)?;
                from = 0;
            }
        }
        let (last, n): (Option<i64>, i64) = tx
            .query_row(
                "SELECT MAX(rowid), COUNT(*) FROM (SELECT rowid FROM db.certificates \
                 WHERE rowid > ?1 ORDER BY rowid LIMIT ?2)",
                params![from, INDEX_BATCH],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(map_err)?;
        let Some(last) = last else {
            if from != mark {
                tx.execute(
                    "UPDATE main.certificates_search_mark SET last_rowid = 0, last_id = NULL \
                     WHERE id = 1",
                    [],
                )
                .map_err(map_err)?;
            }
            tx.commit().map_err(map_err)?;
            return Ok(added);
        };
        tx.execute(
            "INSERT INTO main.certificates_search (id, search) SELECT id, search \
             FROM db.certificates WHERE rowid > ?1 AND rowid <= ?2",
            params![from, last],
        )
        .map_err(map_err)?;
        tx.execute(
            "UPDATE main.certificates_search_mark SET last_rowid = ?1, \
             last_id = (SELECT id FROM db.certificates WHERE rowid = ?1) WHERE id = 1",
            params![last],
        )
        .map_err(map_err)?;
        tx.commit().map_err(map_err)?;
        added += u64::try_from(n).unwrap_or(0);
        if n < INDEX_BATCH {
            return Ok(added);
        }
    }
}
