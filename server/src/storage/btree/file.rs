//! The file seam: [`FileBackend`] is everything the engine asks of its data file.
//!
//! - [`OsFile`]: a real file, read through a shared read-only `mmap` and written with `pwrite`;
//!   an OS file lock (`flock`) keeps a second process from opening it for writing.
//! - [`MemFile`]: the file in memory, for tests; it keeps apart what was written and what was
//!   synced, and can be told to fail (crash) at the Nth write or sync, so that tests can cut a
//!   commit at every step and reopen what a power cut would have left.
//!
//! Mappings ([`View`]) are reference counted: a read transaction keeps the mapping it started
//! with alive, so growing the file never waits for readers (bbolt's remap takes its mmap lock
//! and waits for every open read tx; Glass does not).

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Bytes of the file as of when the view was made (or live, see [`FileBackend::map_is_live`]).
pub trait View: Send + Sync {
    fn bytes(&self) -> &[u8];
}

/// What the engine needs of its data file.
pub trait FileBackend: Send + Sync + fmt::Debug {
    /// Where the file is (for messages).
    fn path(&self) -> &Path;
    fn len(&self) -> io::Result<u64>;
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    fn read_exact_at(&self, buf: &mut [u8], off: u64) -> io::Result<()>;
    fn write_all_at(&self, buf: &[u8], off: u64) -> io::Result<()>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// fdatasync: everything written so far survives a power cut once this returns.
    fn sync(&self) -> io::Result<()>;

    /// Maps the first `len` bytes (`len` <= file length).
    fn map(&self, len: u64) -> io::Result<Arc<dyn View>>;
    /// Whether a view sees writes made after it was taken (true for a shared mmap). When false,
    /// the engine takes a fresh view after every commit.
    fn map_is_live(&self) -> bool;
}

/// A data file on disk.
pub struct OsFile {
    file: File,
    path: PathBuf,
}

impl fmt::Debug for OsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OsFile({})", self.path.display())
    }
}

/// Why opening a file failed: the lock is held elsewhere, or an I/O error.
#[derive(Debug)]
pub enum OpenError {
    Locked,
    Io(io::Error),
}

impl OsFile {
    /// Opens (creating when writable) and locks the file: exclusively when writable, shared
    /// when read-only, failing at once when another process holds a conflicting lock.
    pub fn open(path: &Path, read_only: bool) -> Result<OsFile, OpenError> {
        let file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .create(!read_only)
            .truncate(false)
            .open(path)
            .map_err(OpenError::Io)?;
        let op = if read_only {
            libc::LOCK_SH
        } else {
            libc::LOCK_EX
        };
        // SAFETY: flock on a file descriptor we own; no memory is passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), op | libc::LOCK_NB) };
        if rc != 0 {
            let err = io::Error::last_os_error();
            return Err(if err.kind() == io::ErrorKind::WouldBlock {
                OpenError::Locked
            } else {
                OpenError::Io(err)
            });
        }
        Ok(OsFile {
            file,
            path: path.to_path_buf(),
        })
    }
}

struct Mapped(memmap2::Mmap);

impl View for Mapped {
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

struct Empty;
impl View for Empty {
    fn bytes(&self) -> &[u8] {
        &[]
    }
}

impl FileBackend for OsFile {
    fn path(&self) -> &Path {
        &self.path
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
    fn read_exact_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        FileExt::read_exact_at(&self.file, buf, off)
    }
    fn write_all_at(&self, buf: &[u8], off: u64) -> io::Result<()> {
        FileExt::write_all_at(&self.file, buf, off)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        let cur = self.file.metadata()?.len();
        if len > cur {
            // Reserve the blocks now, in one call: writing into a hole makes the file system
            // allocate block by block inside every commit's writes.
            let (off, n) = (cur as libc::off_t, (len - cur) as libc::off_t);
            // SAFETY: fallocate on a descriptor we own; no memory is passed.
            let rc = unsafe { libc::fallocate(self.file.as_raw_fd(), 0, off, n) };
            if rc == 0 {
                return Ok(());
            }
            // Not supported here (e.g. tmpfs on old kernels): fall back to a sparse extension.
        }
        self.file.set_len(len)
    }
    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
    fn map(&self, len: u64) -> io::Result<Arc<dyn View>> {
        if len == 0 {
            return Ok(Arc::new(Empty));
        }
        let len = usize::try_from(len).map_err(|_| io::Error::other("file too large to map"))?;
        // SAFETY: the mapping is read-only and shared. Its bytes can change under us only
        // through our own writes (the exclusive flock keeps other writers out), and the engine
        // never rewrites a page a live reader can see (copy-on-write, pages freed only after
        // the last reader that sees them is gone). The file never shrinks while open, so no
        // mapped byte goes past the end of the file.
        let map = unsafe { memmap2::MmapOptions::new().len(len).map(&self.file)? };
        Ok(Arc::new(Mapped(map)))
    }
    fn map_is_live(&self) -> bool {
        true
    }
}

/// An in-memory file with crash and error injection.
#[derive(Clone, Default)]
pub struct MemFile {
    state: Arc<Mutex<MemState>>,
}

#[derive(Default)]
struct MemState {
    /// What the process reads back (the OS page cache).
    data: Vec<u8>,
    /// What survives a power cut: `data` as of the last sync.
    durable: Vec<u8>,
    /// Writes and syncs allowed before the injected crash; `None` = never crash.
    ops_left: Option<u64>,
    /// Set once the crash happened: every later call fails, as in a dead process.
    crashed: bool,
    /// Writes and syncs done so far.
    ops: u64,
}

impl fmt::Debug for MemFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MemFile")
    }
}

struct Snapshot(Vec<u8>);
impl View for Snapshot {
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl MemFile {
    pub fn new() -> MemFile {
        MemFile::default()
    }

    /// A file whose durable and visible contents are `bytes`.
    pub fn from_bytes(bytes: Vec<u8>) -> MemFile {
        let f = MemFile::default();
        {
            let mut s = f.lock();
            s.durable = bytes.clone();
            s.data = bytes;
        }
        f
    }

    fn lock(&self) -> MutexGuard<'_, MemState> {
        // A panic while holding this lock can only come from a failed test assertion: the
        // data is still consistent, so recover it rather than cascade the panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fail (and crash) at the `n`th write or sync from now (0 = the next one).
    pub fn crash_after(&self, n: u64) {
        self.lock().ops_left = Some(n);
    }

    /// Writes and syncs so far.
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// Whether the injected crash has happened.
    pub fn crashed(&self) -> bool {
        self.lock().crashed
    }

    /// What a power cut leaves: the contents as of the last sync.
    pub fn durable_image(&self) -> Vec<u8> {
        self.lock().durable.clone()
    }

    /// What a process kill (no power cut) leaves: everything written.
    pub fn written_image(&self) -> Vec<u8> {
        self.lock().data.clone()
    }

    fn op(&self) -> io::Result<MutexGuard<'_, MemState>> {
        let mut s = self.lock();
        if s.crashed {
            return Err(io::Error::other("injected crash: file is gone"));
        }
        if let Some(left) = s.ops_left {
            if left == 0 {
                s.crashed = true;
                return Err(io::Error::other("injected crash"));
            }
            s.ops_left = Some(left - 1);
        }
        s.ops += 1;
        Ok(s)
    }
}

impl FileBackend for MemFile {
    fn path(&self) -> &Path {
        Path::new("<memory>")
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.lock().data.len() as u64)
    }
    fn read_exact_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        let s = self.lock();
        let off = usize::try_from(off).map_err(io::Error::other)?;
        let src = off
            .checked_add(buf.len())
            .and_then(|end| s.data.get(off..end))
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn write_all_at(&self, buf: &[u8], off: u64) -> io::Result<()> {
        let mut s = self.op()?;
        let off = usize::try_from(off).map_err(io::Error::other)?;
        let end = off + buf.len();
        if s.data.len() < end {
            s.data.resize(end, 0);
        }
        s.data[off..end].copy_from_slice(buf);
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut s = self.lock();
        if s.crashed {
            return Err(io::Error::other("injected crash: file is gone"));
        }
        let len = usize::try_from(len).map_err(io::Error::other)?;
        s.data.resize(len, 0);
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        let mut s = self.op()?;
        s.durable = s.data.clone();
        Ok(())
    }
    fn map(&self, len: u64) -> io::Result<Arc<dyn View>> {
        let s = self.lock();
        let len = usize::try_from(len).map_err(io::Error::other)?;
        let bytes = s
            .data
            .get(..len)
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        Ok(Arc::new(Snapshot(bytes.to_vec())))
    }
    fn map_is_live(&self) -> bool {
        false
    }
}
