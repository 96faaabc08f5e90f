//! The WAL file: appended bytes are buffered and written out in as few calls as the platform
//! takes (see the crate comment for when).

use std::ffi::{c_int, c_void};
use std::ptr;

use rusqlite::ffi;

use crate::db::{DB_METHODS, DbFile};
use crate::forward::{self, Header};
use crate::{FRAME_HEADER, MAX_BUFFER, MAX_WRITE, WAL_HEADER};

/// A wrapped WAL file: the [`Header`], the database file beside it and the buffer.
#[repr(C)]
pub(crate) struct WalFile {
    head: Header,
    /// The wrapped database file whose shared-memory calls write this buffer out; null if the
    /// database file is not the shim's, and then nothing is buffered.
    db: *mut DbFile,
    pending: Vec<u8>,
    /// File offset of `pending[0]`.
    start: i64,
    /// End of the furthest write of the current write transaction: only writes from there
    /// on (appended frames) are buffered; a write before it (a spilled frame rewritten in
    /// place, `walRewriteChecksums`) goes straight to the file.
    high: i64,
    /// The last buffered write was a frame header: its page comes next.
    page_next: bool,
    /// ... and that header was a commit frame's: its page completes the transaction.
    commit_next: bool,
    /// A write-out that failed where SQLite could not be told (a shared-memory call) or might
    /// go on regardless (a read): every later write and sync of the transaction fails with it,
    /// so the transaction cannot commit frames that are not on disk.
    failed: c_int,
    /// Writes handed to the platform's file so far (what the tests hold the shim to).
    pub(crate) writes: u64,
}

pub(crate) static WAL_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(forward::lock),
    xUnlock: Some(forward::unlock),
    xCheckReservedLock: Some(forward::check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(forward::sector_size),
    xDeviceCharacteristics: Some(forward::device_characteristics),
    xShmMap: Some(forward::shm_map),
    xShmLock: Some(forward::shm_lock),
    xShmBarrier: Some(forward::shm_barrier),
    xShmUnmap: Some(forward::shm_unmap),
    xFetch: Some(forward::fetch),
    xUnfetch: Some(forward::unfetch),
};

/// Prepares the allocation at `file` to hold a [`WalFile`] whose platform file is `real`,
/// beside the database file `db` (SQLite's, found by the WAL's name).
///
/// # Safety
/// `file` must be SQLite's uninitialised file object of the shim's `szOsFile` bytes, and `db`
/// null or a live file object.
pub(crate) unsafe fn init(
    file: *mut ffi::sqlite3_file,
    real: *mut ffi::sqlite3_file,
    db: *mut ffi::sqlite3_file,
) {
    // Buffer only beside a database file of ours: its shared-memory calls are the backstop.
    // SAFETY: a live file object's methods pointer may be read.
    let ours = !db.is_null() && unsafe { ptr::eq((*db).pMethods, &DB_METHODS) };
    // SAFETY: per the contract; a WalFile fits before the platform's file (REAL_OFFSET).
    unsafe {
        ptr::write(
            file.cast::<WalFile>(),
            WalFile {
                head: Header { base: ffi::sqlite3_file { pMethods: ptr::null() }, real },
                db: if ours { db.cast() } else { ptr::null_mut() },
                pending: Vec::new(),
                start: 0,
                high: 0,
                page_next: false,
                commit_next: false,
                failed: ffi::SQLITE_OK,
                writes: 0,
            },
        );
    }
}

/// Links an opened WalFile at `file` to its database file, so that the database file's
/// shared-memory calls write its buffer out.
///
/// # Safety
/// `file` must be a WalFile just opened by [`init`] and the platform.
pub(crate) unsafe fn link(file: *mut ffi::sqlite3_file) {
    // SAFETY: per the contract; `db`, when set, is a live DbFile (the pager opens the WAL
    // after the database file and closes it first).
    unsafe {
        let w = file.cast::<WalFile>();
        if !(*w).db.is_null() {
            (*(*w).db).wal = w;
        }
    }
}

/// The WalFile behind `file`.
///
/// # Safety
/// `file` must be a live WalFile, used by one thread at a time (SQLite serialises the calls
/// on a connection's files), with no other reference to it live.
unsafe fn wal<'a>(file: *mut ffi::sqlite3_file) -> &'a mut WalFile {
    // SAFETY: per the contract above.
    unsafe { &mut *file.cast::<WalFile>() }
}

impl WalFile {
    fn methods(&self) -> &'static ffi::sqlite3_io_methods {
        // SAFETY: the platform's file is open (our methods are set only then) and its methods
        // table is static.
        unsafe { &*(*self.head.real).pMethods }
    }

    /// `data` at `off` through the platform's `xWrite`.
    fn write_through(&mut self, data: &[u8], off: i64) -> c_int {
        self.writes += 1;
        #[cfg(test)]
        if crate::fault::write_fails() {
            return ffi::SQLITE_IOERR_WRITE;
        }
        match (self.methods().xWrite, c_int::try_from(data.len())) {
            // SAFETY: `data` is valid for its length; the platform's file is open.
            (Some(write), Ok(n)) => unsafe { write(self.head.real, data.as_ptr().cast(), n, off) },
            _ => ffi::SQLITE_IOERR_WRITE,
        }
    }

    /// Writes out the buffered bytes; the buffer is empty afterwards whatever the outcome (a
    /// failed write fails the SQLite call that asked for it, and SQLite writes those frames
    /// again from its own state).
    pub(crate) fn flush(&mut self) -> c_int {
        self.page_next = false;
        self.commit_next = false;
        let pending = std::mem::take(&mut self.pending);
        let mut rc = ffi::SQLITE_OK;
        let mut off = self.start;
        for chunk in pending.chunks(MAX_WRITE) {
            rc = self.write_through(chunk, off);
            if rc != ffi::SQLITE_OK {
                break;
            }
            off = off.saturating_add(i64::try_from(chunk.len()).unwrap_or(i64::MAX));
        }
        // Keep the allocation for the next transaction.
        self.pending = pending;
        self.pending.clear();
        rc
    }

    /// [`Self::flush`] where the caller cannot report a failure to SQLite, or SQLite might
    /// carry on after it: the failure is kept for the transaction's next write and sync.
    pub(crate) fn flush_or_keep(&mut self) -> c_int {
        let rc = self.flush();
        if rc != ffi::SQLITE_OK && self.failed == ffi::SQLITE_OK {
            self.failed = ffi::SQLITE_IOERR_WRITE;
        }
        rc
    }

    /// A write transaction begins (its connection took the WAL's write lock): SQLite appends
    /// from the WAL's end, wherever other connections left it.
    pub(crate) fn begin(&mut self) {
        debug_assert!(self.pending.is_empty(), "buffered bytes outlived a write transaction");
        self.high = 0;
        self.page_next = false;
        self.commit_next = false;
        self.failed = ffi::SQLITE_OK;
    }

    fn write(&mut self, data: &[u8], off: i64) -> c_int {
        if self.failed != ffi::SQLITE_OK {
            return self.failed;
        }
        let len = i64::try_from(data.len()).unwrap_or(i64::MAX);
        let end = self.start.saturating_add(i64::try_from(self.pending.len()).unwrap_or(0));
        let at_end = if self.pending.is_empty() { off >= self.high } else { off == end };
        // Only whole frames, and the WAL header, are buffered: a frame header at the end, the
        // page right after a buffered header. Anything else (a frame rewritten in place, a
        // checksum rewrite, a frame split at a sector boundary) goes straight to the file.
        let frame_part = if self.page_next {
            data.len() > FRAME_HEADER && data.len() <= MAX_WRITE
        } else {
            data.len() == FRAME_HEADER || (data.len() == WAL_HEADER && off == 0)
        };
        let buffered = !self.db.is_null()
            && at_end
            && frame_part
            && self.pending.len() + data.len() <= MAX_BUFFER;
        if !buffered {
            let rc = self.flush();
            if rc != ffi::SQLITE_OK {
                return rc;
            }
            self.high = self.high.max(off.saturating_add(len));
            return self.write_through(data, off);
        }
        self.high = self.high.max(off.saturating_add(len));
        if self.pending.is_empty() {
            self.start = off;
        }
        self.pending.extend_from_slice(data);
        if std::mem::take(&mut self.page_next) {
            if std::mem::take(&mut self.commit_next) {
                // The commit frame's page: the transaction's frames are all here.
                return self.flush();
            }
        } else if data.len() == FRAME_HEADER {
            // Bytes 4..8 of a frame header: the database size after a commit, 0 otherwise.
            self.page_next = true;
            self.commit_next = data[4..8] != [0, 0, 0, 0];
        }
        ffi::SQLITE_OK
    }
}

unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amt: c_int,
    off: i64,
) -> c_int {
    let Ok(len) = usize::try_from(amt) else { return ffi::SQLITE_IOERR_WRITE };
    // SAFETY: SQLite passes a live WalFile and `amt` readable bytes at `buf`.
    unsafe { wal(file).write(std::slice::from_raw_parts(buf.cast::<u8>(), len), off) }
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    let flushed = {
        // SAFETY: SQLite closes a live WalFile once, and frees its memory afterwards.
        let w = unsafe { wal(file) };
        if !w.db.is_null() {
            // SAFETY: the database file outlives its WAL (the pager closes the WAL first).
            unsafe { (*w.db).wal = ptr::null_mut() };
        }
        w.flush()
    };
    // SAFETY: closing the platform's open file, once.
    let closed = unsafe { forward::close(file) };
    // SAFETY: the buffer was written by `init` and is dropped once, here, through the raw
    // pointer (no reference to the WalFile is live).
    unsafe { ptr::drop_in_place(&raw mut (*file.cast::<WalFile>()).pending) };
    if flushed != ffi::SQLITE_OK { flushed } else { closed }
}

/// A method that may depend on the file's bytes: the buffer is written out first. A failed
/// write-out is an I/O error of the write kind (so SQLite rolls the transaction back) and is
/// kept for the transaction's next write and sync.
macro_rules! flushed {
    ($file:expr, $call:expr) => {{
        // SAFETY: SQLite passes a live WalFile.
        if unsafe { wal($file) }.flush_or_keep() != ffi::SQLITE_OK {
            return ffi::SQLITE_IOERR_WRITE;
        }
        // SAFETY: SQLite's arguments, handed on.
        unsafe { $call }
    }};
}

unsafe extern "C" fn read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amt: c_int,
    off: i64,
) -> c_int {
    flushed!(file, forward::read(file, buf, amt, off))
}

unsafe extern "C" fn truncate(file: *mut ffi::sqlite3_file, size: i64) -> c_int {
    flushed!(file, forward::truncate(file, size))
}

unsafe extern "C" fn sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    // SAFETY: SQLite passes a live WalFile.
    let failed = unsafe { wal(file) }.failed;
    if failed != ffi::SQLITE_OK {
        return failed;
    }
    flushed!(file, {
        #[cfg(test)]
        if crate::fault::sync_fails() {
            return ffi::SQLITE_IOERR_FSYNC;
        }
        forward::sync(file, flags)
    })
}

unsafe extern "C" fn file_size(file: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
    flushed!(file, forward::file_size(file, size))
}

unsafe extern "C" fn file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    flushed!(file, forward::file_control(file, op, arg))
}

#[cfg(test)]
impl WalFile {
    pub(crate) fn pending_len(&self) -> usize {
        self.pending.len()
    }
}
