//! A SQLite VFS shim that hands each transaction's WAL frames to the kernel in one `pwrite`.
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
//! (`unix`) whose `xOpen` wraps WAL files only; every other file is the platform's own. A
//! wrapped WAL file keeps contiguous writes in a buffer and writes them out:
//! - when the page of a commit frame (a frame header whose "database size after commit" field
//!   is not zero) has been added: a transaction's frames reach the file before SQLite syncs
//!   them (`synchronous = FULL`) and before it publishes them in the WAL index, which is when
//!   other connections may read them (any `synchronous` mode);
//! - before any other operation on the file (read, sync, size, truncate, file control, close),
//!   before a write that does not follow the buffered bytes, and past [`MAX_BUFFER`].
//!
//! So the bytes written, their offsets and their order relative to every sync and every read
//! are SQLite's own; only the number of system calls changes. A failed write is reported to
//! SQLite by the call that flushed it (the commit frame's, so the commit fails) and the buffer
//! is dropped: SQLite writes those frames again from its own state.
//!
//! This is the host's only `unsafe` code: a VFS is a table of C callbacks over raw pointers.

use std::ffi::{c_char, c_int, c_void};
use std::mem::{align_of, size_of};
use std::ptr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicPtr, Ordering};

use rusqlite::ffi;

/// The name the shim is registered under (it is also made the default VFS).
pub const VFS_NAME: &str = "sigil-wal";
const VFS_NAME_C: &std::ffi::CStr = c"sigil-wal";

/// Bytes buffered at most before they are written out (a very large transaction).
pub const MAX_BUFFER: usize = 4 << 20;

/// Bytes handed to the platform's `xWrite` at most in one call: SQLite's unix VFS takes at
/// most 128 KiB - 1 per write (`seekAndWriteFd` masks the length with 0x1ffff). 31 pages.
pub const MAX_WRITE: usize = 31 * 4096;

/// `data` at `off` through the platform's `xWrite`.
fn write_at(
    real: *mut ffi::sqlite3_file,
    methods: &ffi::sqlite3_io_methods,
    data: &[u8],
    off: i64,
) -> c_int {
    match (methods.xWrite, c_int::try_from(data.len())) {
        // SAFETY: `data` is valid for its length; `real` is the open platform file.
        (Some(write), Ok(n)) => unsafe { write(real, data.as_ptr().cast(), n, off) },
        _ => ffi::SQLITE_IOERR_WRITE,
    }
}

/// A WAL frame header's size; SQLite writes nothing else of this length to a WAL file (the WAL
/// header is 32 bytes, pages at least 512).
const FRAME_HEADER: usize = 24;

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

/// A wrapped WAL file: SQLite's `sqlite3_file` (whose methods are [`WAL_METHODS`]) followed by
/// the buffer; the platform's own file lives at [`REAL_OFFSET`] in the same allocation.
#[repr(C)]
struct WalFile {
    base: ffi::sqlite3_file,
    real: *mut ffi::sqlite3_file,
    pending: Vec<u8>,
    /// File offset of `pending[0]`.
    start: i64,
    /// The last write was a commit frame's header: the next completes the transaction.
    commit_next: bool,
    /// Writes handed to the platform's file so far (what the tests hold the shim to).
    writes: u64,
}

/// Where the platform's file starts inside a wrapped file's allocation (aligned for any type
/// the platform's file may hold).
const REAL_OFFSET: usize = size_of::<WalFile>().next_multiple_of(16);

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
    // own and reads only fields copied here (mxPathname, pAppData).
    let vfs = ffi::sqlite3_vfs {
        szOsFile: sz_os_file,
        pNext: ptr::null_mut(),
        zName: VFS_NAME_C.as_ptr(),
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

fn root() -> *mut ffi::sqlite3_vfs {
    ROOT.load(Ordering::Acquire)
}

unsafe extern "C" fn x_open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let root = root();
    // SAFETY: ROOT was set before this VFS was registered and points to a live VFS.
    let Some(open) = (unsafe { (*root).xOpen }) else { return ffi::SQLITE_ERROR };
    if flags & ffi::SQLITE_OPEN_WAL == 0 {
        // Not a WAL file: the platform's own file, in place (szOsFile is only larger).
        // SAFETY: `file` has room for the platform's file object (szOsFile covers it).
        return unsafe { open(root, name, file, flags, out_flags) };
    }
    debug_assert!(file.cast::<WalFile>().is_aligned());
    // SAFETY: SQLite allocates szOsFile bytes at `file`, 8-byte aligned (its malloc), which
    // covers a WalFile then the platform's file at REAL_OFFSET.
    unsafe {
        let real = file.cast::<u8>().add(REAL_OFFSET).cast::<ffi::sqlite3_file>();
        ptr::write(
            file.cast::<WalFile>(),
            WalFile {
                base: ffi::sqlite3_file { pMethods: ptr::null() },
                real,
                pending: Vec::new(),
                start: 0,
                commit_next: false,
                writes: 0,
            },
        );
        (*real).pMethods = ptr::null();
        let rc = open(root, name, real, flags, out_flags);
        // SQLite calls xClose whenever pMethods is set, even after a failed open, and the
        // platform's file then needs closing too. Otherwise the empty buffer owns nothing.
        if !(*real).pMethods.is_null() {
            (*file).pMethods = &WAL_METHODS;
        }
        rc
    }
}

static WAL_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(x_close),
    xRead: Some(x_read),
    xWrite: Some(x_write),
    xTruncate: Some(x_truncate),
    xSync: Some(x_sync),
    xFileSize: Some(x_file_size),
    xLock: Some(x_lock),
    xUnlock: Some(x_unlock),
    xCheckReservedLock: Some(x_check_reserved_lock),
    xFileControl: Some(x_file_control),
    xSectorSize: Some(x_sector_size),
    xDeviceCharacteristics: Some(x_device_characteristics),
    xShmMap: Some(x_shm_map),
    xShmLock: Some(x_shm_lock),
    xShmBarrier: Some(x_shm_barrier),
    xShmUnmap: Some(x_shm_unmap),
    xFetch: Some(x_fetch),
    xUnfetch: Some(x_unfetch),
};

/// The wrapped file behind `file`.
///
/// # Safety
/// `file` must be a WalFile opened by [`x_open`] and not yet closed, used by one thread at a
/// time (SQLite serialises calls on a file object), and no other reference to it may be live.
unsafe fn wal<'a>(file: *mut ffi::sqlite3_file) -> &'a mut WalFile {
    // SAFETY: per the contract above.
    unsafe { &mut *file.cast::<WalFile>() }
}

impl WalFile {
    /// The platform's methods for the platform's file.
    fn methods(&self) -> &'static ffi::sqlite3_io_methods {
        // SAFETY: `real` is an open platform file (x_open sets our methods only then) whose
        // methods table is static.
        unsafe { &*(*self.real).pMethods }
    }

    /// Writes out the buffered bytes; the buffer is empty afterwards whatever the outcome.
    fn flush(&mut self) -> c_int {
        if self.pending.is_empty() {
            return ffi::SQLITE_OK;
        }
        let mut rc = ffi::SQLITE_OK;
        let mut off = self.start;
        for chunk in self.pending.chunks(MAX_WRITE) {
            rc = write_at(self.real, self.methods(), chunk, off);
            self.writes += 1;
            if rc != ffi::SQLITE_OK {
                break;
            }
            off = off.saturating_add(i64::try_from(chunk.len()).unwrap_or(i64::MAX));
        }
        self.pending.clear();
        rc
    }

    fn write(&mut self, data: &[u8], off: i64) -> c_int {
        let end =
            i64::try_from(self.pending.len()).map_or(i64::MAX, |n| self.start.saturating_add(n));
        if !self.pending.is_empty() && (off != end || self.pending.len() + data.len() > MAX_BUFFER)
        {
            let rc = self.flush();
            if rc != ffi::SQLITE_OK {
                return rc;
            }
        }
        if data.len() > MAX_WRITE {
            // Not a WAL frame (SQLite's pages are 64 KiB at most): as it came.
            self.writes += 1;
            return write_at(self.real, self.methods(), data, off);
        }
        if self.pending.is_empty() {
            self.start = off;
        }
        self.pending.extend_from_slice(data);
        if data.len() == FRAME_HEADER {
            // Bytes 4..8 of a frame header: the database size after a commit, 0 otherwise.
            self.commit_next = data[4..8] != [0, 0, 0, 0];
            return ffi::SQLITE_OK;
        }
        if std::mem::take(&mut self.commit_next) {
            // The commit frame's page: the transaction's frames are all here.
            return self.flush();
        }
        ffi::SQLITE_OK
    }
}

unsafe extern "C" fn x_write(
    file: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amt: c_int,
    off: i64,
) -> c_int {
    let Ok(len) = usize::try_from(amt) else { return ffi::SQLITE_IOERR_WRITE };
    // SAFETY: SQLite passes a live WalFile and `amt` readable bytes at `buf`.
    unsafe { wal(file).write(std::slice::from_raw_parts(buf.cast::<u8>(), len), off) }
}

unsafe extern "C" fn x_close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite closes a live WalFile once, and frees its memory afterwards.
    let w = unsafe { wal(file) };
    let flushed = w.flush();
    // SAFETY: closing the platform's open file, once.
    let closed = w.methods().xClose.map_or(ffi::SQLITE_OK, |close| unsafe { close(w.real) });
    // SAFETY: the buffer was written by x_open and is dropped once, here.
    unsafe { ptr::drop_in_place(&mut w.pending) };
    if flushed != ffi::SQLITE_OK { flushed } else { closed }
}

/// Forwards a method after writing out the buffer (the operation may depend on the bytes).
macro_rules! flushed_then {
    ($file:expr, $method:ident, $missing:expr, |$f:ident, $real:ident| $call:expr) => {{
        // SAFETY: SQLite passes a live WalFile.
        let w = unsafe { wal($file) };
        let rc = w.flush();
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        let $real = w.real;
        match w.methods().$method {
            // SAFETY: forwarding SQLite's arguments to the platform's open file.
            Some($f) => unsafe { $call },
            None => $missing,
        }
    }};
}

/// Forwards a method that does not touch the file's bytes.
macro_rules! forward {
    ($file:expr, $method:ident, $missing:expr, |$f:ident, $real:ident| $call:expr) => {{
        // SAFETY: SQLite passes a live WalFile.
        let w = unsafe { wal($file) };
        let $real = w.real;
        match w.methods().$method {
            // SAFETY: forwarding SQLite's arguments to the platform's open file.
            Some($f) => unsafe { $call },
            None => $missing,
        }
    }};
}

unsafe extern "C" fn x_read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amt: c_int,
    off: i64,
) -> c_int {
    flushed_then!(file, xRead, ffi::SQLITE_IOERR_READ, |f, real| f(real, buf, amt, off))
}

unsafe extern "C" fn x_truncate(file: *mut ffi::sqlite3_file, size: i64) -> c_int {
    flushed_then!(file, xTruncate, ffi::SQLITE_IOERR_TRUNCATE, |f, real| f(real, size))
}

unsafe extern "C" fn x_sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    flushed_then!(file, xSync, ffi::SQLITE_IOERR_FSYNC, |f, real| f(real, flags))
}

unsafe extern "C" fn x_file_size(file: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
    flushed_then!(file, xFileSize, ffi::SQLITE_IOERR_FSTAT, |f, real| f(real, size))
}

unsafe extern "C" fn x_file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    flushed_then!(file, xFileControl, ffi::SQLITE_NOTFOUND, |f, real| f(real, op, arg))
}

unsafe extern "C" fn x_lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    forward!(file, xLock, ffi::SQLITE_OK, |f, real| f(real, level))
}

unsafe extern "C" fn x_unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    forward!(file, xUnlock, ffi::SQLITE_OK, |f, real| f(real, level))
}

unsafe extern "C" fn x_check_reserved_lock(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    forward!(file, xCheckReservedLock, ffi::SQLITE_IOERR_CHECKRESERVEDLOCK, |f, real| f(real, out))
}

unsafe extern "C" fn x_sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    forward!(file, xSectorSize, 4096, |f, real| f(real))
}

unsafe extern "C" fn x_device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    forward!(file, xDeviceCharacteristics, 0, |f, real| f(real))
}

// SQLite maps shared memory and pages through the database file, never the WAL; these forward
// in case a future SQLite does, and answer as a platform without them would otherwise.
fn has_version(real: *mut ffi::sqlite3_file, v: c_int) -> bool {
    // SAFETY: `real` is an open platform file with a methods table.
    unsafe { (*(*real).pMethods).iVersion >= v }
}

unsafe extern "C" fn x_shm_map(
    file: *mut ffi::sqlite3_file,
    region: c_int,
    size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    forward!(file, xShmMap, ffi::SQLITE_IOERR_SHMMAP, |f, real| if has_version(real, 2) {
        f(real, region, size, extend, out)
    } else {
        ffi::SQLITE_IOERR_SHMMAP
    })
}

unsafe extern "C" fn x_shm_lock(
    file: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    forward!(file, xShmLock, ffi::SQLITE_IOERR_SHMLOCK, |f, real| if has_version(real, 2) {
        f(real, offset, n, flags)
    } else {
        ffi::SQLITE_IOERR_SHMLOCK
    })
}

unsafe extern "C" fn x_shm_barrier(file: *mut ffi::sqlite3_file) {
    forward!(file, xShmBarrier, (), |f, real| if has_version(real, 2) {
        f(real)
    })
}

unsafe extern "C" fn x_shm_unmap(file: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    forward!(file, xShmUnmap, ffi::SQLITE_OK, |f, real| if has_version(real, 2) {
        f(real, delete)
    } else {
        ffi::SQLITE_OK
    })
}

unsafe extern "C" fn x_fetch(
    file: *mut ffi::sqlite3_file,
    off: i64,
    amt: c_int,
    out: *mut *mut c_void,
) -> c_int {
    // No mapping: SQLite then reads through xRead (which writes out the buffer first).
    // SAFETY: `out` is SQLite's pointer to fill.
    unsafe { *out = ptr::null_mut() };
    let _ = (file, off, amt);
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_unfetch(file: *mut ffi::sqlite3_file, off: i64, page: *mut c_void) -> c_int {
    let _ = (file, off, page);
    ffi::SQLITE_OK
}

const _: () = assert!(align_of::<WalFile>() <= 8, "SQLite's allocations are 8-byte aligned");

#[cfg(test)]
mod tests;
