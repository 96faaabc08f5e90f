//! The database file, wrapped only to learn when its WAL must be on disk: SQLite takes and
//! releases the WAL's write lock, and publishes new frames in the WAL index, through the
//! database file's shared-memory methods (`walUnlockExclusive`, `walIndexWriteHdr` →
//! `walShmBarrier` in sqlite3.c), never through the WAL file. So before the write lock is let
//! go (after a commit or a rollback) and before every publication, the WAL's buffer is
//! written out: whatever SQLite has written to the WAL is on disk, as it would be without the
//! shim, before another connection may append to it or read it. Everything else passes through.

use std::ffi::c_int;
use std::ptr;

use rusqlite::ffi;

use crate::forward::{self, Header};
use crate::wal::WalFile;

/// A wrapped database file: the [`Header`], then the WAL file open beside it (null when none).
#[repr(C)]
pub(crate) struct DbFile {
    pub(crate) head: Header,
    pub(crate) wal: *mut WalFile,
}

/// SQLite's index of the WAL's write lock among its shared-memory locks (`WAL_WRITE_LOCK`).
const WAL_WRITE_LOCK: c_int = 0;

pub(crate) static DB_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(forward::close),
    xRead: Some(forward::read),
    xWrite: Some(forward::write),
    xTruncate: Some(forward::truncate),
    xSync: Some(forward::sync),
    xFileSize: Some(forward::file_size),
    xLock: Some(forward::lock),
    xUnlock: Some(forward::unlock),
    xCheckReservedLock: Some(forward::check_reserved_lock),
    xFileControl: Some(forward::file_control),
    xSectorSize: Some(forward::sector_size),
    xDeviceCharacteristics: Some(forward::device_characteristics),
    xShmMap: Some(forward::shm_map),
    xShmLock: Some(shm_lock),
    xShmBarrier: Some(shm_barrier),
    xShmUnmap: Some(shm_unmap),
    xFetch: Some(forward::fetch),
    xUnfetch: Some(forward::unfetch),
};

/// Prepares the allocation at `file` to hold a [`DbFile`] whose platform file is `real`.
///
/// # Safety
/// `file` must be SQLite's uninitialised file object of the shim's `szOsFile` bytes.
pub(crate) unsafe fn init(file: *mut ffi::sqlite3_file, real: *mut ffi::sqlite3_file) {
    // SAFETY: per the contract; a DbFile fits before the platform's file (REAL_OFFSET).
    unsafe {
        ptr::write(
            file.cast::<DbFile>(),
            DbFile {
                head: Header { base: ffi::sqlite3_file { pMethods: ptr::null() }, real },
                wal: ptr::null_mut(),
            },
        );
    }
}

/// Writes out the buffer of the WAL open beside `file`, if any. SQLite cannot be told of a
/// failure here (these calls return nothing, or SQLite ignores what they return): the WAL keeps
/// it for its transaction's next write and sync, and it is logged.
///
/// # Safety
/// `file` must be a live DbFile. Its `wal` is set by the WAL's open and cleared by its close;
/// the pager closes the WAL before the database file and calls both on one thread.
unsafe fn flush_wal(file: *mut ffi::sqlite3_file) {
    // SAFETY: per the contract.
    let rc = unsafe {
        let wal = (*file.cast::<DbFile>()).wal;
        if wal.is_null() { ffi::SQLITE_OK } else { (*wal).flush_or_keep() }
    };
    if rc != ffi::SQLITE_OK {
        tracing::error!(code = rc, "writing out buffered WAL frames failed");
    }
}

unsafe extern "C" fn shm_lock(
    file: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    // Every lock change, the end of a write transaction (its unlock of the write lock) among
    // them: nothing stays buffered across one. A write transaction takes its locks before it
    // writes frames, so this costs nothing; and it covers locking_mode=EXCLUSIVE, whose
    // transactions take no locks until the connection goes back to NORMAL.
    // SAFETY: SQLite calls this on a live DbFile.
    unsafe { flush_wal(file) };
    // SAFETY: SQLite's arguments, handed on.
    let rc = unsafe { forward::shm_lock(file, offset, n, flags) };
    let write_lock = ffi::SQLITE_SHM_LOCK | ffi::SQLITE_SHM_EXCLUSIVE;
    if rc == ffi::SQLITE_OK
        && flags & write_lock == write_lock
        && offset <= WAL_WRITE_LOCK
        && WAL_WRITE_LOCK < offset + n
    {
        // SAFETY: SQLite calls this on a live DbFile; its `wal` is live while set.
        unsafe {
            let wal = (*file.cast::<DbFile>()).wal;
            if !wal.is_null() {
                (*wal).begin();
            }
        }
    }
    rc
}

unsafe extern "C" fn shm_barrier(file: *mut ffi::sqlite3_file) {
    // Before SQLite publishes frames in the WAL index. A commit's frames were written out at
    // its commit frame; this is the backstop.
    // SAFETY: SQLite calls this on a live DbFile.
    unsafe { flush_wal(file) };
    // SAFETY: as above.
    unsafe { forward::shm_barrier(file) }
}

unsafe extern "C" fn shm_unmap(file: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    // Before the WAL is closed (sqlite3WalClose unmaps first).
    // SAFETY: SQLite calls this on a live DbFile.
    unsafe { flush_wal(file) };
    // SAFETY: as above.
    unsafe { forward::shm_unmap(file, delete) }
}
