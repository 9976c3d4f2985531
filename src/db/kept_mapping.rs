//! SQLite's own file layer (the "unix" VFS) with one change: a connection keeps its mapping of
//! the database file across other connections' commits for as long as the file keeps its size.
//!
//! In WAL mode a reader that begins a transaction after any commit drops its page cache and also
//! unmaps the whole file (`pagerBeginReadTransaction`), because POSIX leaves a mapping of a file
//! that was truncated and grown back undefined. Every page it then touches faults back in: under
//! the benchmark's 80/20 mix, both readers remapped after each of 2 000 commits a second. Linux
//! keeps a shared mapping coherent with the file, so only a change of size needs a new mapping:
//! one that covers the new pages, or none past the end of a shrunk file. The file grows in
//! steps of [`GROWTH_CHUNK_BYTES`], so that this happens rarely.

use std::ffi::{c_int, c_void};
use std::ptr;
use std::sync::Once;
use std::sync::atomic::{AtomicPtr, Ordering};

use libsqlite3_sys as ffi;

/// The VFS this one wraps: SQLite's default.
static REAL: AtomicPtr<ffi::sqlite3_vfs> = AtomicPtr::new(ptr::null_mut());

/// What SQLite allocates per open file: this header, then the real VFS's file at [`HEADER`].
#[repr(C)]
struct KeptFile {
    base: ffi::sqlite3_file,
    mapping: Mapping,
}

/// What this layer knows of the real file's mapping.
#[derive(Clone, Copy, PartialEq)]
enum Mapping {
    /// None: the next fetch maps the file at its size of that moment.
    Unmapped,
    /// Made by a fetch when the file was at least this long.
    Mapped(i64),
    /// Resized by SQLite itself (a size hint, a truncation, `PRAGMA mmap_size`): the next
    /// request to unmap the whole file goes through.
    Unknown,
}

/// The database file grows by this much at a time, so that its size, and with it every
/// reader's mapping, changes rarely: a checkpoint that appends pages would otherwise grow it at
/// every pass, and each reader would unmap a mapping of the whole file. The cost: a new
/// database takes 16 MiB on disk, and a truncation (after a VACUUM) leaves up to 16 MiB.
const GROWTH_CHUNK_BYTES: c_int = 16 << 20;

const HEADER: usize = std::mem::size_of::<KeptFile>().next_multiple_of(16);

/// Makes this VFS SQLite's default, once, before the first connection opens.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: sqlite3_vfs_find and sqlite3_vfs_register are safe to call at any time; the
        // registered struct is leaked, so it lives as long as SQLite may use it.
        unsafe {
            let real = ffi::sqlite3_vfs_find(ptr::null());
            assert!(!real.is_null(), "SQLite has no default VFS");
            REAL.store(real, Ordering::Release);
            // The real VFS's other methods ignore the VFS they are called with, or read only
            // fields copied here with them (`mxPathname`, `pAppData`).
            let mut vfs = *real;
            vfs.szOsFile = c_int::try_from(HEADER).expect("a small header") + (*real).szOsFile;
            vfs.zName = c"dossier-kept-mapping".as_ptr();
            vfs.pNext = ptr::null_mut();
            vfs.xOpen = Some(open);
            let rc = ffi::sqlite3_vfs_register(Box::leak(Box::new(vfs)), 1);
            assert_eq!(rc, ffi::SQLITE_OK, "registering the SQLite VFS");
        }
    });
}

/// The real VFS's file inside ours.
///
/// # Safety
/// `file` is a file SQLite allocated for this VFS.
unsafe fn inner(file: *mut ffi::sqlite3_file) -> *mut ffi::sqlite3_file {
    unsafe { file.cast::<u8>().add(HEADER).cast() }
}

unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // SAFETY: SQLite hands over `szOsFile` bytes at `file`; the real VFS opens its file in the
    // part past the header, and is still registered (VFSs are never unregistered here).
    unsafe {
        let real = REAL.load(Ordering::Acquire);
        let Some(real_open) = (*real).xOpen else {
            return ffi::SQLITE_CANTOPEN;
        };
        let rc = real_open(real, name, inner(file), flags, out_flags);
        let methods = if (*inner(file)).pMethods.is_null() {
            ptr::null() // SQLite calls no method, xClose included, on a file that did not open
        } else {
            &METHODS
        };
        ptr::write(
            file.cast::<KeptFile>(),
            KeptFile {
                base: ffi::sqlite3_file { pMethods: methods },
                mapping: Mapping::Unmapped,
            },
        );
        if rc == ffi::SQLITE_OK && !methods.is_null() && flags & ffi::SQLITE_OPEN_MAIN_DB != 0 {
            let mut chunk = GROWTH_CHUNK_BYTES;
            file_control(file, ffi::SQLITE_FCNTL_CHUNK_SIZE, (&raw mut chunk).cast());
        }
        rc
    }
}

/// The size of the real file, or `None` if it cannot be read.
///
/// # Safety
/// `file` is an open file of this VFS.
unsafe fn file_size(file: *mut ffi::sqlite3_file) -> Option<i64> {
    let mut size = 0;
    // SAFETY: as the caller promises.
    let rc = unsafe { size_of_file(file, &mut size) };
    (rc == ffi::SQLITE_OK).then_some(size)
}

unsafe extern "C" fn fetch(
    file: *mut ffi::sqlite3_file,
    offset: ffi::sqlite3_int64,
    amount: c_int,
    page: *mut *mut c_void,
) -> c_int {
    // SAFETY: SQLite calls this on a file of this VFS that it opened.
    unsafe {
        let kept = file.cast::<KeptFile>();
        if (*kept).mapping != Mapping::Unmapped {
            return fetch_real(file, offset, amount, page);
        }
        // This fetch maps the file at its size of the moment, this size or more (the file only
        // shrinks by a truncation, which leaves the mapping `Unknown`).
        let size = file_size(file);
        let rc = fetch_real(file, offset, amount, page);
        if rc == ffi::SQLITE_OK {
            (*kept).mapping = size.map_or(Mapping::Unknown, Mapping::Mapped);
        }
        rc
    }
}

unsafe extern "C" fn unfetch(
    file: *mut ffi::sqlite3_file,
    offset: ffi::sqlite3_int64,
    page: *mut c_void,
) -> c_int {
    // SAFETY: SQLite calls this on a file of this VFS that it opened.
    unsafe {
        let kept = file.cast::<KeptFile>();
        // A null page asks to unmap the whole file; a page is one fetch's reference to give back.
        if page.is_null() {
            if let Mapping::Mapped(size) = (*kept).mapping
                && file_size(file) == Some(size)
            {
                return ffi::SQLITE_OK;
            }
            (*kept).mapping = Mapping::Unmapped;
        }
        unfetch_real(file, offset, page)
    }
}

unsafe extern "C" fn truncate(file: *mut ffi::sqlite3_file, size: ffi::sqlite3_int64) -> c_int {
    // SAFETY: SQLite calls this on a file of this VFS that it opened.
    unsafe {
        (*file.cast::<KeptFile>()).mapping = Mapping::Unknown;
        truncate_real(file, size)
    }
}

unsafe extern "C" fn file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    // SAFETY: SQLite calls this on a file of this VFS that it opened.
    unsafe {
        if op == ffi::SQLITE_FCNTL_SIZE_HINT || op == ffi::SQLITE_FCNTL_MMAP_SIZE {
            (*file.cast::<KeptFile>()).mapping = Mapping::Unknown;
        }
        file_control_real(file, op, arg)
    }
}

/// Defines a method that calls the real file's, and the table SQLite calls them through.
macro_rules! forwarded {
    ($( $method:ident => $field:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $missing:expr; )*) => {
        $(
            unsafe extern "C" fn $method(file: *mut ffi::sqlite3_file, $($arg: $ty),*) -> $ret {
                // SAFETY: SQLite calls this on a file of this VFS that it opened.
                unsafe {
                    let real = inner(file);
                    match (*(*real).pMethods).$field {
                        Some(method) => method(real, $($arg),*),
                        None => $missing,
                    }
                }
            }
        )*
    };
}

forwarded! {
    close => xClose() -> c_int = ffi::SQLITE_OK;
    read => xRead(buf: *mut c_void, amount: c_int, offset: ffi::sqlite3_int64) -> c_int = ffi::SQLITE_IOERR_READ;
    write => xWrite(buf: *const c_void, amount: c_int, offset: ffi::sqlite3_int64) -> c_int = ffi::SQLITE_IOERR_WRITE;
    truncate_real => xTruncate(size: ffi::sqlite3_int64) -> c_int = ffi::SQLITE_IOERR_TRUNCATE;
    sync => xSync(flags: c_int) -> c_int = ffi::SQLITE_IOERR_FSYNC;
    size_of_file => xFileSize(size: *mut ffi::sqlite3_int64) -> c_int = ffi::SQLITE_IOERR_FSTAT;
    lock => xLock(level: c_int) -> c_int = ffi::SQLITE_IOERR_LOCK;
    unlock => xUnlock(level: c_int) -> c_int = ffi::SQLITE_IOERR_UNLOCK;
    check_reserved_lock => xCheckReservedLock(out: *mut c_int) -> c_int = ffi::SQLITE_IOERR_CHECKRESERVEDLOCK;
    file_control_real => xFileControl(op: c_int, arg: *mut c_void) -> c_int = ffi::SQLITE_NOTFOUND;
    sector_size => xSectorSize() -> c_int = 4096;
    device_characteristics => xDeviceCharacteristics() -> c_int = 0;
    shm_map => xShmMap(region: c_int, size: c_int, extend: c_int, out: *mut *mut c_void) -> c_int = ffi::SQLITE_IOERR_SHMMAP;
    shm_lock => xShmLock(offset: c_int, n: c_int, flags: c_int) -> c_int = ffi::SQLITE_IOERR_SHMLOCK;
    shm_barrier => xShmBarrier() -> () = ();
    shm_unmap => xShmUnmap(delete: c_int) -> c_int = ffi::SQLITE_OK;
    fetch_real => xFetch(offset: ffi::sqlite3_int64, amount: c_int, page: *mut *mut c_void) -> c_int = ffi::SQLITE_OK;
    unfetch_real => xUnfetch(offset: ffi::sqlite3_int64, page: *mut c_void) -> c_int = ffi::SQLITE_OK;
}

static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(size_of_file),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: Some(shm_map),
    xShmLock: Some(shm_lock),
    xShmBarrier: Some(shm_barrier),
    xShmUnmap: Some(shm_unmap),
    xFetch: Some(fetch),
    xUnfetch: Some(unfetch),
};
