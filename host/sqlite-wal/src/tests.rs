//! The shim against SQLite itself: what other connections see, what is on disk when a commit
//! returns, and how many writes a transaction costs.

use std::ffi::CStr;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, ffi};

use super::*;

fn open(path: &Path, synchronous: &str) -> Connection {
    register().unwrap();
    let c = Connection::open(path).unwrap();
    c.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous={synchronous}; PRAGMA wal_autocheckpoint=0;"
    ))
    .unwrap();
    c
}

/// The platform's own VFS, bypassing the shim.
fn open_plain(path: &Path) -> Connection {
    Connection::open_with_flags_and_vfs(path, OpenFlags::default(), c"unix").unwrap()
}

/// Writes the WAL file of `c` has handed to the platform so far.
fn wal_writes(c: &Connection) -> u64 {
    let mut p: *mut ffi::sqlite3_file = ptr::null_mut();
    // SAFETY: asks SQLite for the WAL file object of an open connection; it is a WalFile (the
    // shim is the default VFS), alive while the connection is.
    unsafe {
        let rc = ffi::sqlite3_file_control(
            c.handle(),
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_JOURNAL_POINTER,
            (&raw mut p).cast(),
        );
        assert_eq!(rc, ffi::SQLITE_OK);
        assert!(!p.is_null());
        assert!(ptr::eq((*p).pMethods, &WAL_METHODS), "the WAL file is not wrapped");
        (*p.cast::<WalFile>()).writes
    }
}

#[test]
fn the_shim_is_the_default_vfs_once_registered() {
    register().unwrap();
    register().unwrap();
    // SAFETY: the default VFS is registered and lives for the process.
    let name = unsafe { CStr::from_ptr((*ffi::sqlite3_vfs_find(ptr::null())).zName) };
    assert_eq!(name.to_str().unwrap(), VFS_NAME);
}

#[test]
fn a_transaction_of_many_frames_reaches_the_wal_file_in_a_few_writes() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(&dir.path().join("t.db"), "FULL");
    c.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB); CREATE INDEX t_v ON t (v);")
        .unwrap();
    // An empty WAL: what follows is this transaction's frames only.
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
    let before = wal_writes(&c);
    let tx = c.unchecked_transaction().unwrap();
    for i in 0..200 {
        tx.execute("INSERT INTO t VALUES (?1, randomblob(300))", [i]).unwrap();
    }
    tx.commit().unwrap();
    // Dozens of frames (200 rows of 300 bytes and their index): SQLite alone makes two writes
    // of each; through the shim, the WAL header, then as few as the platform's largest write
    // allows.
    let frames: i64 = c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1)).unwrap();
    let frames = usize::try_from(frames).unwrap();
    assert!(frames > 20, "only {frames} frames");
    let writes = wal_writes(&c) - before;
    let most = 1 + (frames * (FRAME_HEADER + 4096)).div_ceil(MAX_WRITE);
    assert!(writes <= most as u64, "{writes} writes for {frames} frames");
}

#[test]
fn commits_are_visible_at_once_to_another_connection_in_every_sync_mode() {
    for mode in ["FULL", "NORMAL", "OFF"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.db");
        let w = open(&path, mode);
        w.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)").unwrap();
        let r = open(&path, mode);
        for i in 0..50 {
            let tx = w.unchecked_transaction().unwrap();
            for j in 0..5 {
                tx.execute("INSERT INTO t VALUES (?1, randomblob(1000))", [i * 5 + j]).unwrap();
            }
            tx.commit().unwrap();
            let n: i64 = r.query_row("SELECT count(*) FROM t", [], |x| x.get(0)).unwrap();
            assert_eq!(n, (i + 1) * 5, "{mode}: a reader missed a commit");
        }
    }
}

#[test]
fn a_transaction_larger_than_its_page_cache_reads_back_its_spilled_pages() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(&dir.path().join("s.db"), "FULL");
    // A cache of 20 pages: the transaction spills uncommitted frames to the WAL and reads
    // them back (through the buffer's write-out) before it commits.
    c.execute_batch("PRAGMA cache_size=20; CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT);")
        .unwrap();
    let tx = c.unchecked_transaction().unwrap();
    for i in 0..5_000 {
        tx.execute("INSERT INTO t VALUES (?1, printf('%.500c', ?1 % 26 + 65))", [i]).unwrap();
    }
    let inside: i64 = tx.query_row("SELECT sum(length(v) + k) FROM t", [], |r| r.get(0)).unwrap();
    tx.commit().unwrap();
    let expected: i64 = (0..5_000).map(|k| 500 + k).sum();
    assert_eq!(inside, expected);
    let ok: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok");
}

#[test]
fn what_a_commit_leaves_on_disk_is_recovered_by_plain_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.db");
    let c = open(&path, "FULL");
    c.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)").unwrap();
    for i in 0..40 {
        let tx = c.unchecked_transaction().unwrap();
        for j in 0..10 {
            tx.execute("INSERT INTO t VALUES (?1, zeroblob(700))", [i * 10 + j]).unwrap();
        }
        tx.commit().unwrap();
    }
    // The files as a crash right after the last commit would leave them (the connection still
    // open, nothing checkpointed), read by SQLite's own VFS: WAL recovery must find every row.
    let copy = tempfile::tempdir().unwrap();
    for f in ["d.db", "d.db-wal"] {
        std::fs::copy(dir.path().join(f), copy.path().join(f)).unwrap();
    }
    let plain = open_plain(&copy.path().join("d.db"));
    let n: i64 = plain.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 400);
    let ok: String = plain.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok");
}

#[test]
fn the_wal_restarts_and_truncates_through_the_shim() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let c = open(&path, "FULL");
    c.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)").unwrap();
    for round in 0..3 {
        for i in 0..20 {
            c.execute("INSERT INTO t VALUES (?1, randomblob(2000))", [round * 100 + i]).unwrap();
        }
        // Every frame copied: the next write starts the WAL over at its beginning.
        let (busy, log, done): (i64, i64, i64) = c
            .query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!((busy, log), (0, done));
    }
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
    assert_eq!(std::fs::metadata(dir.path().join("r.db-wal")).unwrap().len(), 0);
    c.execute("INSERT INTO t VALUES (1000, x'00')", []).unwrap();
    drop(c);
    let plain = open_plain(&path);
    let n: i64 = plain.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 61);
}
