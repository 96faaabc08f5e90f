//! The shim against SQLite itself: what other connections see, what is on disk when a commit
//! returns, and how many writes a transaction costs.

use std::ffi::CStr;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, ffi};

use super::*;
use crate::wal::{WAL_METHODS, WalFile};

pub(crate) fn open(path: &Path, synchronous: &str) -> Connection {
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

/// The WAL file object of `c`, which must be the shim's.
fn wal_file(c: &Connection) -> &WalFile {
    wal_file_of(c, c"main")
}

/// The WAL file object of the database `schema` (`main` or an attached name) of `c`.
fn wal_file_of<'c>(c: &'c Connection, schema: &CStr) -> &'c WalFile {
    let mut p: *mut ffi::sqlite3_file = ptr::null_mut();
    // SAFETY: asks SQLite for the WAL file object of an open connection; it is a WalFile (the
    // shim is the default VFS), alive while the connection is and its WAL open.
    unsafe {
        let rc = ffi::sqlite3_file_control(
            c.handle(),
            schema.as_ptr(),
            ffi::SQLITE_FCNTL_JOURNAL_POINTER,
            (&raw mut p).cast(),
        );
        assert_eq!(rc, ffi::SQLITE_OK);
        assert!(!p.is_null());
        assert!(ptr::eq((*p).pMethods, &WAL_METHODS), "the WAL file is not wrapped");
        &*p.cast::<WalFile>()
    }
}

/// Writes the WAL file of `c` has handed to the platform so far.
pub(crate) fn wal_writes(c: &Connection) -> u64 {
    wal_file(c).writes
}

/// Bytes the WAL file of `c` holds back.
pub(crate) fn pending(c: &Connection) -> usize {
    wal_file(c).pending_len()
}

/// `dir`'s database and WAL as a crash now would leave them, opened by SQLite's own VFS.
pub(crate) fn crash_copy(dir: &Path, name: &str) -> (tempfile::TempDir, Connection) {
    let copy = tempfile::tempdir().unwrap();
    for f in [name.to_owned(), format!("{name}-wal")] {
        if dir.join(&f).exists() {
            std::fs::copy(dir.join(&f), copy.path().join(&f)).unwrap();
        }
    }
    let c = open_plain(&copy.path().join(name));
    assert_intact(&c);
    (copy, c)
}

/// SQLite's own check of every page and index of `c`'s database.
pub(crate) fn assert_intact(c: &Connection) {
    let ok: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok");
}

/// Another writer's work: the rows `keys` of 300 bytes in one transaction of `c`.
pub(crate) fn commit_rows(c: &Connection, keys: std::ops::Range<i64>) {
    try_commit_rows(c, keys).unwrap();
}

/// [`commit_rows`], or the error that stopped it (the transaction then rolled back).
pub(crate) fn try_commit_rows(c: &Connection, keys: std::ops::Range<i64>) -> rusqlite::Result<()> {
    let tx = c.unchecked_transaction()?;
    for k in keys {
        tx.execute("INSERT INTO t VALUES (?1, printf('%.300c', 'c'))", [k])?;
    }
    tx.commit()
}

pub(crate) fn count(c: &Connection) -> i64 {
    c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap()
}

/// Spills without reading back: `rows` rows of 500 bytes appended through a cache of 10
/// pages (full leaves are written to the WAL and never looked at again).
pub(crate) fn spill(c: &Connection, from: i64, rows: i64) {
    for i in from..from + rows {
        c.execute("INSERT INTO t VALUES (?1, printf('%.500c', 'a'))", [i]).unwrap();
    }
}

/// Spills: a transaction of `rows` rows of 500 bytes through a cache of 10 pages, each row
/// then changed again (so spilled frames are rewritten in place and their checksums redone).
fn spill_and_rewrite(c: &Connection, from: i64, rows: i64) {
    for i in from..from + rows {
        c.execute("INSERT INTO t VALUES (?1, printf('%.500c', 'a'))", [i]).unwrap();
    }
    c.execute("UPDATE t SET v = printf('%.500c', 'b') WHERE k >= ?1", [from]).unwrap();
}

#[test]
fn the_shim_is_the_default_vfs_once_registered() {
    register().unwrap();
    register().unwrap();
    // SAFETY: the default VFS is registered and lives for the process.
    let name = unsafe { CStr::from_ptr((*ffi::sqlite3_vfs_find(ptr::null())).zName) };
    assert_eq!(name, VFS_NAME);
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
    assert_intact(&c);
}

#[test]
fn what_a_commit_leaves_on_disk_is_recovered_by_plain_sqlite() {
    for mode in ["FULL", "NORMAL", "OFF"] {
        recovered_after_commits(mode);
    }
}

fn recovered_after_commits(mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.db");
    let c = open(&path, mode);
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
    assert!(dir.path().join("d.db-wal").exists());
    let (_copy, plain) = crash_copy(dir.path(), "d.db");
    assert_eq!(count(&plain), 400);
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

#[test]
fn nothing_is_held_back_after_a_commit_or_a_rollback_in_any_sync_mode() {
    for mode in ["FULL", "NORMAL", "OFF"] {
        let dir = tempfile::tempdir().unwrap();
        let c = open(&dir.path().join("p.db"), mode);
        c.execute_batch("PRAGMA cache_size=10; CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT);")
            .unwrap();
        assert_eq!(pending(&c), 0, "{mode}: after a plain commit");
        let tx = c.unchecked_transaction().unwrap();
        spill_and_rewrite(&c, 0, 300);
        tx.commit().unwrap();
        assert_eq!(pending(&c), 0, "{mode}: after a spilled, rewritten commit");
        let tx = c.unchecked_transaction().unwrap();
        spill(&c, 1000, 300);
        tx.rollback().unwrap();
        assert_eq!(pending(&c), 0, "{mode}: after a spilled rollback");
        let tx = c.unchecked_transaction().unwrap();
        spill_and_rewrite(&c, 1000, 300);
        tx.rollback().unwrap();
        assert_eq!(pending(&c), 0, "{mode}: after a spilled, rewritten rollback");
        let tx = c.unchecked_transaction().unwrap();
        c.execute_batch("SAVEPOINT s").unwrap();
        spill_and_rewrite(&c, 2000, 300);
        c.execute_batch("ROLLBACK TO s; RELEASE s").unwrap();
        c.execute("INSERT INTO t VALUES (5000, 'x')", []).unwrap();
        tx.commit().unwrap();
        assert_eq!(pending(&c), 0, "{mode}: after a savepoint rolled back");
        assert_eq!(count(&c), 301);
        let (_copy, plain) = crash_copy(dir.path(), "p.db");
        assert_eq!(count(&plain), 301, "{mode}");
    }
}

#[test]
fn a_rolled_back_spill_does_not_overwrite_another_writers_commit() {
    for mode in ["FULL", "NORMAL"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let a = open(&path, mode);
        a.execute_batch("PRAGMA cache_size=10; CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT);")
            .unwrap();
        let b = open(&path, mode);
        // A spills frames past the WAL's end, then gives up.
        let tx = a.unchecked_transaction().unwrap();
        spill(&a, 0, 300);
        tx.rollback().unwrap();
        // B appends over the same offsets, past where A stopped, and commits.
        commit_rows(&b, 10_000..12_000);
        // A reads and writes again, then closes: nothing of its rolled-back work may land now.
        assert_eq!(count(&a), 2_000, "{mode}");
        a.execute("INSERT INTO t VALUES (1, 'a')", []).unwrap();
        drop(a);
        assert_eq!(count(&b), 2_001, "{mode}");
        assert_intact(&b);
        let (_copy, plain) = crash_copy(dir.path(), "w.db");
        assert_eq!(count(&plain), 2_001, "{mode}");
    }
}

#[test]
fn two_writers_taking_turns_across_wal_restarts_leave_one_recoverable_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two.db");
    let a = open(&path, "FULL");
    a.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)").unwrap();
    let b = open(&path, "NORMAL");
    let mut k = 0;
    for round in 0..6 {
        for c in [&a, &b, &a] {
            let tx = c.unchecked_transaction().unwrap();
            for _ in 0..15 {
                tx.execute("INSERT INTO t VALUES (?1, randomblob(900))", [k]).unwrap();
                k += 1;
            }
            tx.commit().unwrap();
        }
        let how = if round % 2 == 0 { "RESTART" } else { "TRUNCATE" };
        let by = if round % 3 == 0 { &a } else { &b };
        by.query_row(&format!("PRAGMA wal_checkpoint({how})"), [], |_| Ok(())).unwrap();
    }
    b.execute("INSERT INTO t VALUES (?1, x'01')", [k]).unwrap();
    assert_eq!(count(&a), k + 1);
    let (_copy, plain) = crash_copy(dir.path(), "two.db");
    assert_eq!(count(&plain), k + 1);
}

#[test]
fn an_exclusive_connection_going_back_to_normal_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.db");
    let a = open(&path, "NORMAL");
    a.execute_batch("PRAGMA cache_size=10; CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT);")
        .unwrap();
    a.execute_batch("PRAGMA locking_mode=EXCLUSIVE").unwrap();
    let tx = a.unchecked_transaction().unwrap();
    spill(&a, 0, 300);
    tx.rollback().unwrap();
    a.execute_batch("PRAGMA locking_mode=NORMAL; BEGIN IMMEDIATE; COMMIT;").unwrap();
    assert_eq!(pending(&a), 0);
    let b = open(&path, "NORMAL");
    commit_rows(&b, 10_000..12_000);
    assert_eq!(count(&a), 2_000);
    drop(a);
    let (_copy, plain) = crash_copy(dir.path(), "x.db");
    assert_eq!(count(&plain), 2_000);
}

#[test]
fn a_wal_opened_again_after_a_journal_mode_change_is_buffered_again() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(&dir.path().join("j.db"), "FULL");
    c.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)").unwrap();
    c.execute_batch("PRAGMA journal_mode=DELETE; INSERT INTO t VALUES (0, x'00');").unwrap();
    c.execute_batch("PRAGMA journal_mode=WAL").unwrap();
    c.execute("INSERT INTO t VALUES (1, randomblob(100))", []).unwrap();
    let before = wal_writes(&c);
    let tx = c.unchecked_transaction().unwrap();
    for i in 2..200 {
        tx.execute("INSERT INTO t VALUES (?1, randomblob(300))", [i]).unwrap();
    }
    tx.commit().unwrap();
    assert!(wal_writes(&c) - before <= 3, "{} writes", wal_writes(&c) - before);
    assert_eq!(count(&c), 200);
}

#[test]
fn the_smallest_and_largest_pages_and_a_size_limited_wal_round_trip() {
    for page in [512, 65536] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z.db");
        register().unwrap();
        let c = Connection::open(&path).unwrap();
        c.execute_batch(&format!(
            "PRAGMA page_size={page}; PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; \
             PRAGMA journal_size_limit=0; CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB);"
        ))
        .unwrap();
        for round in 0..4 {
            let tx = c.unchecked_transaction().unwrap();
            for i in 0..100 {
                tx.execute("INSERT INTO t VALUES (?1, randomblob(3000))", [round * 100 + i])
                    .unwrap();
            }
            tx.commit().unwrap();
            assert_eq!(pending(&c), 0, "page {page}");
            c.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(())).unwrap();
        }
        c.execute("INSERT INTO t VALUES (1000, x'01')", []).unwrap();
        let (_copy, plain) = crash_copy(dir.path(), "z.db");
        assert_eq!(count(&plain), 401, "page {page}");
    }
}

#[test]
fn writers_a_reader_and_checkpoints_on_threads_of_their_own_agree() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("th.db");
    open(&path, "FULL").execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)").unwrap();
    let threaded = |mode: &'static str| {
        let c = open(&path, mode);
        c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
        c
    };
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let writers: Vec<_> = [(0, "FULL"), (1, "NORMAL")]
            .into_iter()
            .map(|(w, mode)| {
                let c = threaded(mode);
                s.spawn(move || {
                    for i in 0..100 {
                        let tx = c.unchecked_transaction().unwrap();
                        for j in 0..5 {
                            tx.execute(
                                "INSERT INTO t VALUES (?1, randomblob(1500))",
                                [w * 10_000 + i * 5 + j],
                            )
                            .unwrap();
                        }
                        tx.commit().unwrap();
                    }
                })
            })
            .collect();
        let reader = threaded("FULL");
        let done = &done;
        let r = s.spawn(move || {
            let mut last = 0;
            while !done.load(Ordering::Acquire) {
                let n = count(&reader);
                assert!(n >= last && n % 5 == 0, "a reader saw {n} rows after {last}");
                last = n;
            }
        });
        let ckpt = threaded("FULL");
        let c = s.spawn(move || {
            while !done.load(Ordering::Acquire) {
                let _ = ckpt.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()));
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        });
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Release);
        r.join().unwrap();
        c.join().unwrap();
    });
    let (_copy, plain) = crash_copy(dir.path(), "th.db");
    assert_eq!(count(&plain), 1_000);
}

#[test]
fn an_attached_wal_database_written_in_the_same_transaction_keeps_each_files_frames() {
    // One transaction writes two WAL databases (the main one and an attached one): each file's
    // frames must reach its own WAL by the commit, be seen by readers of each file, and be
    // recovered from each file by plain SQLite. A rolled-back transaction leaves neither.
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
    let w = open(&a, "FULL");
    w.execute("ATTACH DATABASE ?1 AS b", [b.to_str().unwrap()]).unwrap();
    w.execute_batch(
        "PRAGMA b.journal_mode=WAL; PRAGMA b.wal_autocheckpoint=0; \
         CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB); \
         CREATE TABLE b.t (k INTEGER PRIMARY KEY, v BLOB);",
    )
    .unwrap();
    let (ra, rb) = (open(&a, "FULL"), open(&b, "FULL"));
    for i in 0..60 {
        let tx = w.unchecked_transaction().unwrap();
        for j in 0..5 {
            let k = i * 5 + j;
            tx.execute("INSERT INTO main.t VALUES (?1, zeroblob(700))", [k]).unwrap();
            // Other sizes in the other file: its frames and commit frame fall elsewhere.
            tx.execute("INSERT INTO b.t VALUES (?1, zeroblob(1500 + ?1))", [k]).unwrap();
        }
        if i % 10 == 9 {
            drop(tx); // rolled back
        } else {
            tx.commit().unwrap();
        }
        assert_eq!(pending(&w), 0, "main holds frames back after transaction {i}");
        assert_eq!(wal_file_of(&w, c"b").pending_len(), 0, "b holds frames back after {i}");
        let committed = (i + 1 - (i + 1) / 10) * 5;
        assert_eq!(count(&ra), committed, "a reader of a.db after transaction {i}");
        assert_eq!(count(&rb), committed, "a reader of b.db after transaction {i}");
    }
    // A rolled-back transaction that spills to both WALs (a cache of 10 pages each): the
    // spilled frames of each file are written or dropped, never held back or left valid.
    w.execute_batch("PRAGMA main.cache_size=10; PRAGMA b.cache_size=10;").unwrap();
    let out = |w: &Connection, s: &CStr| {
        let f = wal_file_of(w, s);
        f.writes + u64::try_from(f.pending_len()).unwrap()
    };
    let before = (out(&w, c"main"), out(&w, c"b"));
    let tx = w.unchecked_transaction().unwrap();
    for k in 1000..1200 {
        tx.execute("INSERT INTO main.t VALUES (?1, zeroblob(900))", [k]).unwrap();
        tx.execute("INSERT INTO b.t VALUES (?1, zeroblob(1700))", [k]).unwrap();
    }
    // Frames of the open transaction went to each WAL (written, or held in its buffer).
    let spilled = (out(&tx, c"main") > before.0, out(&tx, c"b") > before.1);
    drop(tx);
    assert_eq!(spilled, (true, true), "the transaction did not spill to both files");
    assert_eq!((pending(&w), wal_file_of(&w, c"b").pending_len()), (0, 0));
    assert_eq!((count(&ra), count(&rb)), (270, 270));
    for name in ["a.db", "b.db"] {
        let (_copy, plain) = crash_copy(dir.path(), name);
        assert_eq!(count(&plain), 270, "{name} as a crash leaves it");
    }
}

#[test]
fn commits_padded_to_a_sector_boundary_without_powersafe_overwrite_are_kept_whole() {
    // With powersafe overwrite off (`psow=0`) a synced commit pads the WAL to a sector
    // boundary by writing its commit frame again (SQLite's walWriteToLog): writes at offsets
    // the shim does not buffer. Every commit must still be whole for readers and on disk.
    let (frames_psow, _) = padded_commits("psow=1");
    let (frames_padded, rows) = padded_commits("psow=0");
    // The padding frames are there: without it the same commits make fewer frames.
    assert!(frames_padded > frames_psow, "{frames_padded} frames against {frames_psow}");
    assert_eq!(rows, 155);
}

/// 40 synced commits of 1 to 7 rows through a connection opened with the URI parameter
/// `param`, each checked by a reader and the last by a crash copy; the WAL's frame count and
/// the rows written.
fn padded_commits(param: &str) -> (i64, i64) {
    register().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    let uri = format!("file:{}?{param}", path.display());
    let flags = OpenFlags::default() | OpenFlags::SQLITE_OPEN_URI;
    let w = Connection::open_with_flags(&uri, flags).unwrap();
    w.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA wal_autocheckpoint=0; \
         CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB);",
    )
    .unwrap();
    let r = open(&path, "FULL");
    let mut rows = 0;
    for i in 0..40 {
        let tx = w.unchecked_transaction().unwrap();
        // 1 to 7 rows: commits of different frame counts, so the padding differs.
        for j in 0..(i % 7 + 1) {
            tx.execute("INSERT INTO t VALUES (?1, zeroblob(900))", [i * 10 + j]).unwrap();
            rows += 1;
        }
        tx.commit().unwrap();
        assert_eq!(pending(&w), 0, "{param}: frames held back after commit {i}");
        assert_eq!(count(&r), rows, "{param}: a reader after commit {i}");
    }
    let (_copy, plain) = crash_copy(dir.path(), "p.db");
    assert_eq!(count(&plain), rows, "{param}: as a crash leaves it");
    let frames: i64 = r.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |x| x.get(1)).unwrap();
    (frames, rows)
}
