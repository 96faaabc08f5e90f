//! Faults injected into the platform's WAL writes and syncs, in test builds only: what the shim
//! does when the disk refuses (a full disk, an I/O error, a failed `fdatasync`). SQLite calls a
//! connection's files on the thread running its statement, so a fault armed by a test thread
//! hits only that thread's connections (the tests run in parallel).

use std::cell::Cell;

use rusqlite::{Connection, ErrorCode};

use crate::tests::{
    assert_intact, commit_rows, count, crash_copy, open, pending, spill, try_commit_rows,
    wal_writes,
};

thread_local! {
    /// Platform writes let through before the next one fails; `None`: none fails.
    static WRITES_BEFORE_FAILURE: Cell<Option<u64>> = const { Cell::new(None) };
    /// The next WAL sync fails (after the buffer is written out).
    static SYNC_FAILS: Cell<bool> = const { Cell::new(false) };
}

/// Whether this platform write fails (one failure per arming).
pub(crate) fn write_fails() -> bool {
    WRITES_BEFORE_FAILURE.with(|c| match c.get() {
        Some(0) => {
            c.set(None);
            true
        }
        Some(n) => {
            c.set(Some(n - 1));
            false
        }
        None => false,
    })
}

/// Whether this WAL sync fails (one failure per arming).
pub(crate) fn sync_fails() -> bool {
    SYNC_FAILS.with(|c| c.replace(false))
}

fn fail_write_after(writes: u64) {
    WRITES_BEFORE_FAILURE.with(|c| c.set(Some(writes)));
}

fn fail_next_sync() {
    SYNC_FAILS.with(|c| c.set(true));
}

fn disarm() {
    WRITES_BEFORE_FAILURE.with(|c| c.set(None));
    SYNC_FAILS.with(|c| c.set(false));
}

/// A database `name` in a new directory whose table `t` holds the rows 0..50, with its writer
/// (a page cache of `cache_pages`, or SQLite's default) and another connection to read it.
fn fifty_rows(name: &str, cache_pages: Option<u32>) -> (tempfile::TempDir, Connection, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    let c = open(&path, "FULL");
    if let Some(n) = cache_pages {
        c.execute_batch(&format!("PRAGMA cache_size={n};")).unwrap();
    }
    c.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)").unwrap();
    commit_rows(&c, 0..50);
    let reader = open(&path, "FULL");
    assert_eq!(count(&reader), 50);
    (dir, c, reader)
}

fn assert_io_error(r: rusqlite::Result<()>, what: &str) {
    match r {
        Err(e) => {
            assert_eq!(e.sqlite_error_code(), Some(ErrorCode::SystemIoFailure), "{what}: {e}")
        }
        Ok(()) => panic!("{what}: the transaction committed through a failed write"),
    }
}

/// Rows of `c` with a key in `keys`.
fn count_in(c: &Connection, keys: std::ops::Range<i64>) -> i64 {
    c.query_row("SELECT count(*) FROM t WHERE k >= ?1 AND k < ?2", [keys.start, keys.end], |r| {
        r.get(0)
    })
    .unwrap()
}

#[test]
fn a_failed_wal_write_fails_its_commit_and_nothing_of_it_is_seen_or_recovered() {
    // 0: the commit's first write fails, so none of its frames reaches the file. 1: its second
    // write of up to 124 KiB fails, so the first part of its frames is on disk and the commit
    // frame is not.
    for writes_before in [0, 1] {
        let (dir, c, reader) = fifty_rows("f.db", None);
        let writes = wal_writes(&c);
        fail_write_after(writes_before);
        // About 290 KB of rows: three writes of the WAL when nothing fails.
        assert_io_error(try_commit_rows(&c, 50..1_000), "a failed write");
        disarm();
        assert!(wal_writes(&c) > writes + writes_before, "the failure hit before any write");
        assert_eq!(count(&c), 50, "after {writes_before} writes: the writer");
        assert_eq!(count(&reader), 50, "after {writes_before} writes: another connection");
        let (_copy, plain) = crash_copy(dir.path(), "f.db");
        assert_eq!(count(&plain), 50, "after {writes_before} writes: as a crash leaves it");
        // The connection carries on, and its next commit is whole and alone on disk.
        commit_rows(&c, 1_000..1_010);
        assert_eq!(count(&reader), 60);
        assert_eq!(count_in(&reader, 50..1_000), 0);
        assert_intact(&c);
        let (_copy, plain) = crash_copy(dir.path(), "f.db");
        assert_eq!(count(&plain), 60, "after {writes_before} writes, then a commit");
        assert_eq!(count_in(&plain, 50..1_000), 0);
    }
}

#[test]
fn a_failed_wal_sync_fails_its_commit_and_the_next_commit_overwrites_it() {
    let (dir, c, reader) = fifty_rows("s.db", None);
    // The frames reach the file and the sync fails: the commit is not answered as done, and
    // nothing of it becomes visible.
    let writes = wal_writes(&c);
    fail_next_sync();
    assert_io_error(try_commit_rows(&c, 50..100), "a failed sync");
    disarm();
    assert!(wal_writes(&c) > writes, "the frames did not reach the file before the sync");
    assert_eq!(count(&c), 50);
    assert_eq!(count(&reader), 50);
    // The next commit is written from the same place: its frames replace the failed ones, and
    // WAL recovery stops where the failed transaction's leftover frames no longer chain on.
    commit_rows(&c, 100..110);
    assert_eq!(count(&reader), 60);
    assert_eq!(count_in(&reader, 50..100), 0);
    let (_copy, plain) = crash_copy(dir.path(), "s.db");
    assert_eq!(count(&plain), 60);
    assert_eq!(count_in(&plain, 50..100), 0);
}

#[test]
fn a_failed_write_of_spilled_frames_stops_the_transaction_and_leaves_the_database_whole() {
    let (dir, c, reader) = fifty_rows("p.db", Some(10));
    // A transaction larger than its cache spills frames before its commit; the shim holds them
    // and writes them out with the commit's own, and that first write fails: the transaction
    // cannot commit.
    let tx = c.unchecked_transaction().unwrap();
    fail_write_after(0);
    spill(&c, 1_000, 300);
    assert!(pending(&c) > 0, "nothing spilled before the commit");
    assert_io_error(tx.commit(), "a failed write of spilled frames");
    disarm();
    assert_eq!(count(&c), 50);
    assert_eq!(count(&reader), 50);
    let (_copy, plain) = crash_copy(dir.path(), "p.db");
    assert_eq!(count(&plain), 50);
    commit_rows(&c, 2_000..2_010);
    assert_eq!(count(&reader), 60);
    assert_intact(&reader);
    let (_copy, plain) = crash_copy(dir.path(), "p.db");
    assert_eq!(count(&plain), 60);
}
