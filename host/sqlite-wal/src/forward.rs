//! Pass-through methods: a wrapped file's call handed to the platform's file it wraps.

use std::ffi::{c_int, c_void};

use rusqlite::ffi;

/// The start of every wrapped file: SQLite's `sqlite3_file` (pointing at our methods), then
/// the platform's file, which lives further on in the same allocation.
#[repr(C)]
pub(crate) struct Header {
    pub(crate) base: ffi::sqlite3_file,
    pub(crate) real: *mut ffi::sqlite3_file,
}

/// The platform's file behind a wrapped `file`, and its methods.
///
/// # Safety
/// `file` must be a live wrapped file (a `WalFile` or a `DbFile`, each starting with a
/// [`Header`]) whose platform file is open.
pub(crate) unsafe fn real(
    file: *mut ffi::sqlite3_file,
) -> (*mut ffi::sqlite3_file, &'static ffi::sqlite3_io_methods) {
    // SAFETY: per the contract; an open platform file's methods table is static.
    unsafe {
        let real = (*file.cast::<Header>()).real;
        (real, &*(*real).pMethods)
    }
}

/// Calls the platform's `$method` with `$call`, or answers `$missing` if it has none (or, for
/// the methods of a later `iVersion`, if its table is older).
macro_rules! forward {
    ($file:expr, $method:ident, $version:expr, $missing:expr, |$f:ident, $real:ident| $call:expr) => {{
        // SAFETY: SQLite calls a method only on a live file it opened through the shim.
        let ($real, m) = unsafe { $crate::forward::real($file) };
        match m.$method {
            // SAFETY: SQLite's own arguments, handed to the platform's open file.
            Some($f) if m.iVersion >= $version => unsafe { $call },
            _ => $missing,
        }
    }};
}

pub(crate) unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    forward!(file, xClose, 1, ffi::SQLITE_OK, |f, real| f(real))
}

pub(crate) unsafe extern "C" fn read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amt: c_int,
    off: i64,
) -> c_int {
    forward!(file, xRead, 1, ffi::SQLITE_IOERR_READ, |f, real| f(real, buf, amt, off))
}

pub(crate) unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amt: c_int,
    off: i64,
) -> c_int {
    forward!(file, xWrite, 1, ffi::SQLITE_IOERR_WRITE, |f, real| f(real, buf, amt, off))
}

pub(crate) unsafe extern "C" fn truncate(file: *mut ffi::sqlite3_file, size: i64) -> c_int {
    forward!(file, xTruncate, 1, ffi::SQLITE_IOERR_TRUNCATE, |f, real| f(real, size))
}

pub(crate) unsafe extern "C" fn sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    forward!(file, xSync, 1, ffi::SQLITE_IOERR_FSYNC, |f, real| f(real, flags))
}

pub(crate) unsafe extern "C" fn file_size(file: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
    forward!(file, xFileSize, 1, ffi::SQLITE_IOERR_FSTAT, |f, real| f(real, size))
}

pub(crate) unsafe extern "C" fn lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    forward!(file, xLock, 1, ffi::SQLITE_IOERR_LOCK, |f, real| f(real, level))
}

pub(crate) unsafe extern "C" fn unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    forward!(file, xUnlock, 1, ffi::SQLITE_IOERR_UNLOCK, |f, real| f(real, level))
}

pub(crate) unsafe extern "C" fn check_reserved_lock(
    file: *mut ffi::sqlite3_file,
    out: *mut c_int,
) -> c_int {
    forward!(file, xCheckReservedLock, 1, ffi::SQLITE_IOERR_CHECKRESERVEDLOCK, |f, real| f(
        real, out
    ))
}

pub(crate) unsafe extern "C" fn file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    forward!(file, xFileControl, 1, ffi::SQLITE_NOTFOUND, |f, real| f(real, op, arg))
}

pub(crate) unsafe extern "C" fn sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    forward!(file, xSectorSize, 1, 4096, |f, real| f(real))
}

pub(crate) unsafe extern "C" fn device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    forward!(file, xDeviceCharacteristics, 1, 0, |f, real| f(real))
}

pub(crate) unsafe extern "C" fn shm_map(
    file: *mut ffi::sqlite3_file,
    region: c_int,
    size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    forward!(file, xShmMap, 2, ffi::SQLITE_IOERR_SHMMAP, |f, real| f(
        real, region, size, extend, out
    ))
}

pub(crate) unsafe extern "C" fn shm_lock(
    file: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    forward!(file, xShmLock, 2, ffi::SQLITE_IOERR_SHMLOCK, |f, real| f(real, offset, n, flags))
}

pub(crate) unsafe extern "C" fn shm_barrier(file: *mut ffi::sqlite3_file) {
    forward!(file, xShmBarrier, 2, (), |f, real| f(real))
}

pub(crate) unsafe extern "C" fn shm_unmap(file: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    forward!(file, xShmUnmap, 2, ffi::SQLITE_OK, |f, real| f(real, delete))
}

pub(crate) unsafe extern "C" fn fetch(
    file: *mut ffi::sqlite3_file,
    off: i64,
    amt: c_int,
    out: *mut *mut c_void,
) -> c_int {
    // No mapping (allowed: SQLite then reads through xRead).
    let none = {
        // SAFETY: `out` is SQLite's pointer to fill.
        unsafe { *out = std::ptr::null_mut() };
        ffi::SQLITE_OK
    };
    forward!(file, xFetch, 3, none, |f, real| f(real, off, amt, out))
}

pub(crate) unsafe extern "C" fn unfetch(
    file: *mut ffi::sqlite3_file,
    off: i64,
    page: *mut c_void,
) -> c_int {
    forward!(file, xUnfetch, 3, ffi::SQLITE_OK, |f, real| f(real, off, page))
}
