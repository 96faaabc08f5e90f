//! A SQLite VFS shim that hands each transaction's WAL frames to the kernel in a few `pwrite`s.
//!
//! SQLite writes a WAL frame as two system calls, the 24-byte frame header and then the page
//! (`walWriteOneFrame` in sqlite3.c), and has no option to do otherwise. A Sigil commit writes
//! 20 to 40 frames (the rightmost leaf of every index it appends to, the rows, the audit head),
//! so 40 to 80 `pwrite`s. On ext4 each costs about 2 µs whatever its size (the file's timestamps
//! and page-cache bookkeeping per call), against about 7 µs for the same 130 KiB in one call:
//! measured, the writer thread spent a third of its time there, on the path every request
//! waits on.
//!
//! [`register`] installs, as the process's default VFS, a copy of the platform's default VFS
//! (`unix`) whose `xOpen` wraps database files and WAL files; every other file is the
//! platform's own. A wrapped WAL file keeps the bytes a write transaction appends in a buffer
//! and writes them out (in pieces of at most [`MAX_WRITE`], what the `unix` VFS takes):
//! - when the page of a commit frame (a frame header whose "database size after commit" field
//!   is not zero) has been added: a transaction's frames reach the file before SQLite syncs
//!   them, and that call reports a failed write, so the commit fails;
//! - before any other operation on the WAL (read, sync, size, truncate, file control, close),
//!   before a write that is not a whole frame appended (a frame rewritten in place, a checksum
//!   rewrite, a frame split at a sector boundary: those go straight to the file), and past
//!   [`MAX_BUFFER`];
//! - through the database file (see `db.rs`): before SQLite publishes frames in the WAL index
//!   (`xShmBarrier`) and before any shared-memory lock or unlock, the end of a write
//!   transaction (commit or rollback) among them. So whatever SQLite has written to the WAL is
//!   on disk before another connection may read those frames or append after them, as
//!   without the shim. A write-out that fails where SQLite cannot be told fails the
//!   transaction's next write and sync instead, so it cannot commit.
//!
//! The bytes written, their offsets and their order relative to every sync, every read and
//! every other connection are SQLite's own; only the number of system calls changes. A WAL
//! whose database file is not the shim's (opened through another VFS) is not buffered.
//!
//! This is the host's only `unsafe` code: a VFS is a table of C callbacks over raw pointers.

mod db;
mod forward;
mod wal;

use std::ffi::{c_char, c_int};
use std::mem::{align_of, size_of};
use std::ptr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicPtr, Ordering};

use rusqlite::ffi;

/// The name the shim is registered under (it is also made the default VFS).
pub const VFS_NAME: &std::ffi::CStr = c"sigil-wal";

/// Bytes buffered at most before they are written out (a very large transaction).
pub const MAX_BUFFER: usize = 4 << 20;

/// Bytes handed to the platform's `xWrite` at most in one call: SQLite's unix VFS takes at
/// most 128 KiB - 1 per write (`seekAndWriteFd` masks the length with 0x1ffff). 31 pages.
pub const MAX_WRITE: usize = 31 * 4096;

/// A WAL frame header's size; SQLite writes nothing else of this length to a WAL file (the WAL
/// header is 32 bytes, pages at least 512).
pub(crate) const FRAME_HEADER: usize = 24;

/// The WAL header's size (at the file's start).
pub(crate) const WAL_HEADER: usize = 32;

/// The platform VFS the shim forwards to.
static ROOT: AtomicPtr<ffi::sqlite3_vfs> = AtomicPtr::new(ptr::null_mut());

/// Installs the shim as SQLite's default VFS, once per process; later calls return the first
/// outcome. Call it before opening connections: one opened earlier keeps the VFS it had.
pub fn register() -> Result<(), Error> {
    static DONE: OnceLock<Result<(), Error>> = OnceLock::new();
    // SAFETY: `install` is called once (OnceLock), before the VFS it registers is used.
    DONE.get_or_init(|| unsafe { install() }).clone()
}

/// Why the shim could not be installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SQLite WAL shim: {}", self.0)
    }
}

impl std::error::Error for Error {}

/// Where the platform's file starts inside a wrapped file's allocation: after the larger of
/// our two headers, aligned as SQLite aligns the allocation (8 bytes).
const REAL_OFFSET: usize =
    max(size_of::<wal::WalFile>(), size_of::<db::DbFile>()).next_multiple_of(8);

const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

const _: () = assert!(
    align_of::<wal::WalFile>() <= 8 && align_of::<db::DbFile>() <= 8,
    "SQLite's allocations are 8-byte aligned"
);

unsafe fn install() -> Result<(), Error> {
    // SAFETY: a null name asks for the default VFS; sqlite3_vfs_find initialises SQLite.
    let root = unsafe { ffi::sqlite3_vfs_find(ptr::null()) };
    if root.is_null() {
        return Err(Error("SQLite has no default VFS".into()));
    }
    // SAFETY: a registered VFS stays valid for the life of the process (nothing unregisters
    // the platform's); reading it is reading a plain struct.
    let root_vfs = unsafe { *root };
    if root_vfs.xOpen.is_none() {
        return Err(Error("the default VFS has no xOpen".into()));
    }
    let size = usize::try_from(root_vfs.szOsFile).map_err(|_| Error("bad szOsFile".into()))?;
    let sz_os_file = c_int::try_from(REAL_OFFSET + size.max(size_of::<ffi::sqlite3_file>()))
        .map_err(|_| Error("file object too large".into()))?;
    ROOT.store(root, Ordering::Release);
    // The platform's VFS with a larger file object and our xOpen; every other method is its
    // own and reads only fields copied here (mxPathname; pAppData only in xOpen, which gets
    // the platform's VFS).
    let vfs = ffi::sqlite3_vfs {
        szOsFile: sz_os_file,
        pNext: ptr::null_mut(),
        zName: VFS_NAME.as_ptr(),
        xOpen: Some(x_open),
        ..root_vfs
    };
    // SQLite keeps the pointer for the life of the process.
    let vfs: &'static mut ffi::sqlite3_vfs = Box::leak(Box::new(vfs));
    // SAFETY: `vfs` is a complete, 'static VFS whose methods are the platform's or ours.
    let rc = unsafe { ffi::sqlite3_vfs_register(vfs, 1) };
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(Error(format!("sqlite3_vfs_register returned {rc}")))
    }
}

unsafe extern "C" fn x_open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let root = ROOT.load(Ordering::Acquire);
    // SAFETY: ROOT was set before this VFS was registered and points to a live VFS.
    let Some(open) = (unsafe { (*root).xOpen }) else { return ffi::SQLITE_ERROR };
    let main_db = flags & ffi::SQLITE_OPEN_MAIN_DB != 0;
    let wal = flags & ffi::SQLITE_OPEN_WAL != 0;
    if !main_db && !wal {
        // Journals, temporary files: the platform's own file, in place (szOsFile is larger).
        // SAFETY: `file` has room for the platform's file object.
        return unsafe { open(root, name, file, flags, out_flags) };
    }
    // SAFETY: SQLite allocates szOsFile bytes at `file`, 8-byte aligned, which covers our
    // header then the platform's file at REAL_OFFSET. `name` is the WAL's name as SQLite
    // passes it to xOpen, which sqlite3_database_file_object accepts.
    unsafe {
        let real = file.cast::<u8>().add(REAL_OFFSET).cast::<ffi::sqlite3_file>();
        if wal {
            wal::init(file, real, ffi::sqlite3_database_file_object(name));
        } else {
            db::init(file, real);
        }
        (*real).pMethods = ptr::null();
        let rc = open(root, name, real, flags, out_flags);
        // SQLite calls xClose whenever pMethods is set, even after a failed open, and the
        // platform's file then needs closing too. Otherwise our header owns nothing.
        if !(*real).pMethods.is_null() {
            if wal {
                (*file).pMethods = &wal::WAL_METHODS;
                wal::link(file);
            } else {
                (*file).pMethods = &db::DB_METHODS;
            }
        }
        rc
    }
}

#[cfg(test)]
mod fault;
#[cfg(test)]
mod tests;
