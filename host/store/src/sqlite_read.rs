//! SQLite reads that go past sqlx: a rusqlite connection of its own on a blocking thread, for
//! hot reads of many rows where sqlx's one worker message per row is the cost.

use sigil_core::StoreError;
use sigil_core::audit::AuditEvent;
use sigil_core::ports::StoreResult;
use uuid::Uuid;

use crate::audit::COLUMNS;
use crate::group::map_err as sqlite_err;

/// The audit checkpoint walk's own read connection to the database file, opened on first use
/// and kept: opening one per call (a thousand rows) read the schema again each time, about a
/// tenth of the walk's cost. A failed read drops it, and the next call opens a new one. Between
/// calls it holds no lock and no snapshot (its statement is reset after each read).
pub(crate) struct WalkReader {
    file: std::path::PathBuf,
    conn: std::sync::Mutex<Option<rusqlite::Connection>>,
}

impl std::fmt::Debug for WalkReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalkReader").field("file", &self.file).finish_non_exhaustive()
    }
}

impl WalkReader {
    pub(crate) fn new(file: std::path::PathBuf) -> Self {
        Self { file, conn: std::sync::Mutex::new(None) }
    }
}

/// The events after `after_seq` in chain order, as [`crate::audit::events`] returns them for a
/// filter of `after_seq` alone. The audit checkpoint reads every new event once to verify the
/// chain; through sqlx each row was a message from its worker thread, and that walk cost about
/// a tenth of the server's CPU under signing load. A call reads up to `limit` (a thousand)
/// rows on the reader's connection, which nothing shares with the pools.
pub(crate) async fn events_after_in_file(
    reader: std::sync::Arc<WalkReader>,
    after_seq: i64,
    limit: u32,
) -> StoreResult<Vec<AuditEvent>> {
    tokio::task::spawn_blocking(move || {
        let mut conn = reader
            .conn
            .lock()
            .map_err(|_| StoreError::Backend("the audit walk's connection".into()))?;
        if conn.is_none() {
            let c = rusqlite::Connection::open(&reader.file).map_err(sqlite_err)?;
            c.busy_timeout(std::time::Duration::from_secs(10)).map_err(sqlite_err)?;
            *conn = Some(c);
        }
        let read = conn.as_ref().map_or_else(
            || Err(StoreError::Backend("the audit walk's connection".into())),
            |c| read_after(c, after_seq, limit),
        );
        if read.is_err() {
            *conn = None;
        }
        read
    })
    .await
    .map_err(|e| StoreError::Backend(format!("reading audit events: {e}")))?
}

fn read_after(
    conn: &rusqlite::Connection,
    after_seq: i64,
    limit: u32,
) -> StoreResult<Vec<AuditEvent>> {
    let mut st = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM audit_events WHERE seq > ?1 ORDER BY seq LIMIT ?2"
        ))
        .map_err(sqlite_err)?;
    let rows = st
        .query_map(rusqlite::params![after_seq, limit], |r| {
            Ok(AuditEvent {
                seq: r.get(0)?,
                // As in `from_row`: an id that does not parse shows as the nil UUID and
                // fails the hash check.
                id: Uuid::parse_str(&r.get::<_, String>(1)?).unwrap_or_default(),
                occurred_at_us: r.get(2)?,
                actor_kind: r.get(3)?,
                actor_id: r.get(4)?,
                actor_name: r.get(5)?,
                api_key_id: r.get(6)?,
                operator_id: r.get(7)?,
                action: r.get(8)?,
                object_type: r.get(9)?,
                object_id: r.get(10)?,
                outcome: r.get(11)?,
                request_id: r.get(12)?,
                client_ip: r.get(13)?,
                details: r.get(14)?,
                prev_hash: r.get(15)?,
                hash: r.get(16)?,
            })
        })
        .map_err(sqlite_err)?;
    rows.map(|r| r.map_err(sqlite_err)).collect()
}
