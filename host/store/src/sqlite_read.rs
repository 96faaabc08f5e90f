//! SQLite reads that go past sqlx: a rusqlite connection of its own on a blocking thread, for
//! hot reads of many rows where sqlx's one worker message per row is the cost.

use sigil_core::StoreError;
use sigil_core::audit::AuditEvent;
use sigil_core::ports::StoreResult;
use uuid::Uuid;

use crate::audit::COLUMNS;
use crate::group::map_err as sqlite_err;

/// The kept read connection of [`events_after_in_file`], opened on first use: opening one per
/// call (a thousand rows) read the schema again each time, about a tenth of the checkpoint
/// walk's cost. A failed read drops it, and the next call opens a new one. Between calls it
/// holds no lock and no snapshot (its statement is reset after each read). The walk is not its
/// only reader (an audit stream, a listing paged by sequence number read the same way): a call
/// that finds it in use reads on a connection of its own rather than queue behind another.
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

    fn open(&self) -> StoreResult<rusqlite::Connection> {
        let c = rusqlite::Connection::open(&self.file).map_err(sqlite_err)?;
        c.busy_timeout(std::time::Duration::from_secs(10)).map_err(sqlite_err)?;
        Ok(c)
    }

    /// Reads on the kept connection, or on a new one while another call holds it.
    fn read(&self, after_seq: i64, limit: u32) -> StoreResult<Vec<AuditEvent>> {
        use std::sync::TryLockError;
        let mut kept = match self.conn.try_lock() {
            Ok(guard) => guard,
            // A reader that panicked leaves nothing half-done on a connection: start afresh.
            Err(TryLockError::Poisoned(p)) => {
                let mut guard = p.into_inner();
                *guard = None;
                guard
            }
            Err(TryLockError::WouldBlock) => return read_after(&self.open()?, after_seq, limit),
        };
        let read = match kept.take() {
            Some(c) => read_after(&c, after_seq, limit).map(|rows| (rows, c)),
            None => self.open().and_then(|c| read_after(&c, after_seq, limit).map(|r| (r, c))),
        };
        read.map(|(rows, c)| {
            *kept = Some(c);
            rows
        })
    }
}

/// The events after `after_seq` in chain order, as [`crate::audit::events`] returns them for a
/// filter of `after_seq` alone. The audit checkpoint reads every new event once to verify the
/// chain; through sqlx each row was a message from its worker thread, and that walk cost about
/// a tenth of the server's CPU under signing load. A call reads up to `limit` (a thousand)
/// rows on a connection nothing shares with the pools ([`WalkReader`]).
pub(crate) async fn events_after_in_file(
    reader: std::sync::Arc<WalkReader>,
    after_seq: i64,
    limit: u32,
) -> StoreResult<Vec<AuditEvent>> {
    tokio::task::spawn_blocking(move || reader.read(after_seq, limit))
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sigil_core::ports::Store as _;

    use super::WalkReader;
    use crate::testing::TestDb;

    /// A migrated SQLite file with three audit events (the migrations' own and two more).
    async fn file_with_events() -> (TestDb, std::path::PathBuf) {
        let db = TestDb::sqlite();
        let store = db.store().await;
        let cap = sigil_core::access::authz::Principal::local_cli();
        for i in 0..3 {
            let ev = sigil_core::audit::NewAuditEvent::new(
                &cap,
                sigil_core::audit::AuditAction::CertificateIssue,
                "certificate",
                format!("c{i}"),
            );
            store.commit_ops(vec![], vec![ev], time::OffsetDateTime::now_utc()).await.unwrap();
        }
        let file = std::path::PathBuf::from(db.url.trim_start_matches("sqlite://"));
        (db, file)
    }

    #[tokio::test]
    async fn a_read_while_the_kept_connection_is_in_use_reads_on_its_own() {
        let (_db, file) = file_with_events().await;
        let reader = Arc::new(WalkReader::new(file));
        let all = reader.read(0, 100).unwrap();
        assert!(all.len() >= 3);
        let held = reader.conn.lock().unwrap();
        assert!(held.is_some(), "the first read keeps its connection");
        let other = Arc::clone(&reader);
        let during = std::thread::spawn(move || other.read(0, 100).unwrap()).join().unwrap();
        assert_eq!(during, all);
    }

    #[tokio::test]
    async fn a_reader_that_panicked_holding_the_connection_is_recovered_from() {
        let (_db, file) = file_with_events().await;
        let reader = Arc::new(WalkReader::new(file));
        let all = reader.read(0, 100).unwrap();
        let poisoner = Arc::clone(&reader);
        let _ = std::thread::spawn(move || {
            let _guard = poisoner.conn.lock().unwrap();
            panic!("a reader fails while holding the connection");
        })
        .join();
        assert!(reader.conn.is_poisoned());
        assert_eq!(reader.read(0, 100).unwrap(), all);
        assert_eq!(reader.read(all[0].seq, 100).unwrap(), all[1..]);
    }
}
