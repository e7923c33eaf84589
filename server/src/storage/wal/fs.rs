//! The file seam: [`WalFs`] and [`WalFile`] are everything the WAL asks of the file system.
//!
//! - [`OsFs`]: real files. A segment is locked for as long as it is open, with the lock etcd
//!   takes (Linux open-file-description locks, `F_OFD_SETLK`, falling back to `flock` where
//!   those are missing), so that Glass and etcd exclude each other on the same directory.
//! - [`MemFs`]: files in memory, for tests. Each file keeps apart what was written and what was
//!   synced; the file system can be told to fail at the Nth write or sync (a crash), and
//!   [`MemFs::crash_image`] gives what a power cut would leave: synced bytes only, or the
//!   unsynced writes too with the last one torn.
//! - [`SlowSyncFs`]: TEST-ONLY. Another file system whose every file `sync` takes at least a
//!   given delay longer (glassd wraps [`OsFs`] in it when `GLASS_TEST_FSYNC_DELAY` is set), so
//!   that a slow disk can be had on a machine that has none (`glass doctor`'s scenarios).
//!
//! Directory changes (create, rename, remove) are durable at once in [`MemFs`]; the WAL still
//! syncs directories where etcd does.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// An open, exclusively locked segment file. Dropping it closes the file and drops the lock.
pub trait WalFile: Send + fmt::Debug {
    fn len(&self) -> io::Result<u64>;
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// The whole file.
    fn read_all(&self) -> io::Result<Vec<u8>>;
    fn write_all_at(&mut self, buf: &[u8], off: u64) -> io::Result<()>;
    /// fdatasync: what was written survives a power cut once this returns.
    fn sync(&mut self) -> io::Result<()>;
    fn truncate(&mut self, len: u64) -> io::Result<()>;
    /// Grows the file to `len` zero bytes with its blocks reserved (etcd's `Preallocate` with
    /// `extendFile`); never shrinks it.
    fn preallocate(&mut self, len: u64) -> io::Result<()>;
}

/// What the WAL needs of the file system.
pub trait WalFs: Send + Sync + fmt::Debug {
    /// Opens a file for reading and writing (creating it when `create`) and locks it; a lock
    /// held elsewhere fails at once with [`io::ErrorKind::WouldBlock`].
    fn open(&self, path: &Path, create: bool) -> io::Result<Box<dyn WalFile>>;
    /// The names in a directory ([`io::ErrorKind::NotFound`] when there is none).
    fn read_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    fn exists(&self, path: &Path) -> bool;
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Removes a file (a purged segment or snapshot); a missing file is not an error.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Renames a file or a directory; open files stay open and locked.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// fsync of a directory, making renames and new names in it durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

// ---------------------------------------------------------------------------------------------
// A slow disk, for tests

/// TEST-ONLY: `inner` with every file sync (fdatasync) followed by a sleep of `delay`, as a
/// slow device would make it last. Directory syncs are left alone. Nothing wraps a file system
/// in it unless asked (glassd: `GLASS_TEST_FSYNC_DELAY`), so it costs nothing otherwise.
#[derive(Debug, Clone)]
pub struct SlowSyncFs {
    inner: Arc<dyn WalFs>,
    delay: std::time::Duration,
}

impl SlowSyncFs {
    pub fn new(inner: Arc<dyn WalFs>, delay: std::time::Duration) -> Self {
        SlowSyncFs { inner, delay }
    }
}

#[derive(Debug)]
struct SlowSyncFile {
    inner: Box<dyn WalFile>,
    delay: std::time::Duration,
}

impl WalFs for SlowSyncFs {
    fn open(&self, path: &Path, create: bool) -> io::Result<Box<dyn WalFile>> {
        let inner = self.inner.open(path, create)?;
        Ok(Box::new(SlowSyncFile {
            inner,
            delay: self.delay,
        }))
    }
    fn read_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.read_dir(dir)
    }
    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.remove_dir_all(dir)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir)
    }
}

impl WalFile for SlowSyncFile {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn read_all(&self) -> io::Result<Vec<u8>> {
        self.inner.read_all()
    }
    fn write_all_at(&mut self, buf: &[u8], off: u64) -> io::Result<()> {
        self.inner.write_all_at(buf, off)
    }
    fn sync(&mut self) -> io::Result<()> {
        let r = self.inner.sync();
        // The thread that syncs waits, as it would on a slow device.
        std::thread::sleep(self.delay);
        r
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.inner.truncate(len)
    }
    fn preallocate(&mut self, len: u64) -> io::Result<()> {
        self.inner.preallocate(len)
    }
}

// ---------------------------------------------------------------------------------------------
// The OS

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsFs;

#[derive(Debug)]
struct OsFile {
    file: File,
}

fn lock_exclusive(file: &File) -> io::Result<()> {
    // Whole-file write lock on the open file description, as etcd's `ofdTryLockFile`.
    // SAFETY: `flock` is plain old data; zeroed is a valid value for every field.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: fcntl on a descriptor we own, with a pointer to a live `flock`.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &mut fl) };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) => {
            Err(io::Error::new(io::ErrorKind::WouldBlock, "file is locked"))
        }
        Some(libc::EINVAL) => {
            // No OFD locks on this kernel: etcd falls back to flock, and so do we.
            // SAFETY: flock on a descriptor we own; no memory is passed.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        }
        _ => Err(err),
    }
}

impl WalFs for OsFs {
    fn open(&self, path: &Path, create: bool) -> io::Result<Box<dyn WalFile>> {
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(create).truncate(false);
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600); // etcd's PrivateFileMode
        }
        let file = opts.open(path)?;
        lock_exclusive(&file)?;
        Ok(Box::new(OsFile { file }))
    }
    fn read_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for e in std::fs::read_dir(dir)? {
            names.push(e?.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        // etcd's PrivateDirMode.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

impl WalFile for OsFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
    fn read_all(&self) -> io::Result<Vec<u8>> {
        let len = usize::try_from(self.len()?).map_err(io::Error::other)?;
        let mut buf = vec![0; len];
        self.file.read_exact_at(&mut buf, 0)?;
        Ok(buf)
    }
    fn write_all_at(&mut self, buf: &[u8], off: u64) -> io::Result<()> {
        self.file.write_all_at(buf, off)
    }
    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
    fn preallocate(&mut self, len: u64) -> io::Result<()> {
        if len <= self.len()? {
            return Ok(());
        }
        let n = libc::off_t::try_from(len).map_err(io::Error::other)?;
        // Mode 0 grows the file; the blocks are reserved and read as zeros.
        // SAFETY: fallocate on a descriptor we own; no memory is passed.
        let rc = unsafe { libc::fallocate(self.file.as_raw_fd(), 0, 0, n) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            // Not supported here (etcd falls back the same way): extend without reserving.
            Some(libc::EOPNOTSUPP) | Some(libc::EINTR) => self.file.set_len(len),
            _ => Err(err),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// In memory

/// What a crash leaves of the files, see [`MemFs::crash_image`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crash {
    /// A power cut: every file holds what was last synced.
    LoseUnsynced,
    /// A power cut during the last write: the writes since the last sync reached the disk in
    /// order, but only the first `keep` bytes of the very last write did.
    TornLastWrite { keep: usize },
}

/// A change to a file since its last sync.
#[derive(Debug, Clone)]
enum Change {
    Write { off: usize, bytes: Vec<u8> },
    SetLen(usize),
}

#[derive(Debug, Default)]
struct Inode {
    /// What the process reads back (the page cache).
    data: Vec<u8>,
    /// What survives a power cut.
    durable: Vec<u8>,
    /// Changes since the last sync, in order: replayed over `durable` they give `data`.
    unsynced: Vec<Change>,
}

fn apply(data: &mut Vec<u8>, change: &Change) {
    match change {
        Change::Write { off, bytes } => {
            let end = off + bytes.len();
            if data.len() < end {
                data.resize(end, 0);
            }
            data[*off..end].copy_from_slice(bytes);
        }
        Change::SetLen(len) => data.resize(*len, 0),
    }
}

#[derive(Debug)]
struct Node {
    inode: Mutex<Inode>,
    locked: AtomicBool,
}

#[derive(Debug, Default)]
struct FsState {
    files: BTreeMap<PathBuf, Arc<Node>>,
    dirs: BTreeSet<PathBuf>,
    /// Writes and syncs allowed before the injected crash; `None` = never crash.
    ops_left: Option<u64>,
    /// Set once the crash happened: every later call fails, as in a dead process.
    crashed: bool,
    /// Writes and syncs done so far.
    ops: u64,
    /// The file written last, for [`Crash::TornLastWrite`].
    last_written: Option<PathBuf>,
}

/// An in-memory file system with crash injection.
#[derive(Debug, Clone, Default)]
pub struct MemFs {
    state: Arc<Mutex<FsState>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding this lock can only come from a failed test assertion: the data is
    // still consistent, so recover it rather than cascade the panic.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn dead() -> io::Error {
    io::Error::other("injected crash: the file system is gone")
}

impl MemFs {
    pub fn new() -> MemFs {
        MemFs::default()
    }

    /// Fail (and crash) at the `n`th write or sync from now (0 = the next one).
    pub fn crash_after(&self, n: u64) {
        lock(&self.state).ops_left = Some(n);
    }

    /// Writes and syncs so far.
    pub fn ops(&self) -> u64 {
        lock(&self.state).ops
    }

    /// Whether the injected crash has happened.
    pub fn crashed(&self) -> bool {
        lock(&self.state).crashed
    }

    /// A new file system holding what `crash` leaves of this one; no file in it is open.
    pub fn crash_image(&self, crash: Crash) -> MemFs {
        let s = lock(&self.state);
        let mut files = BTreeMap::new();
        for (path, node) in &s.files {
            let ino = lock(&node.inode);
            let mut data = ino.durable.clone();
            if let Crash::TornLastWrite { keep } = crash {
                if s.last_written.as_deref() == Some(path.as_path()) {
                    let last = ino
                        .unsynced
                        .iter()
                        .rposition(|c| matches!(c, Change::Write { .. }));
                    for (i, c) in ino.unsynced.iter().enumerate() {
                        match c {
                            Change::Write { off, bytes } if Some(i) == last => {
                                let cut = Change::Write {
                                    off: *off,
                                    bytes: bytes[..keep.min(bytes.len())].to_vec(),
                                };
                                apply(&mut data, &cut);
                            }
                            c => apply(&mut data, c),
                        }
                    }
                }
            }
            files.insert(
                path.clone(),
                Arc::new(Node {
                    inode: Mutex::new(Inode {
                        durable: data.clone(),
                        data,
                        unsynced: Vec::new(),
                    }),
                    locked: AtomicBool::new(false),
                }),
            );
        }
        MemFs {
            state: Arc::new(Mutex::new(FsState {
                files,
                dirs: s.dirs.clone(),
                ..FsState::default()
            })),
        }
    }

    /// A file's bytes as the process sees them.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let s = lock(&self.state);
        let node = s.files.get(path)?;
        let data = lock(&node.inode).data.clone();
        Some(data)
    }

    /// Replaces a file's bytes, durably (to damage it in tests).
    pub fn set_contents(&self, path: &Path, bytes: Vec<u8>) {
        let mut s = lock(&self.state);
        let node = s.files.entry(path.to_path_buf()).or_insert_with(|| {
            Arc::new(Node {
                inode: Mutex::new(Inode::default()),
                locked: AtomicBool::new(false),
            })
        });
        let mut ino = lock(&node.inode);
        ino.durable = bytes.clone();
        ino.data = bytes;
        ino.unsynced.clear();
    }

    /// Counts an operation that may be the injected crash.
    fn op(&self) -> io::Result<()> {
        let mut s = lock(&self.state);
        if s.crashed {
            return Err(dead());
        }
        if let Some(left) = s.ops_left {
            if left == 0 {
                s.crashed = true;
                return Err(io::Error::other("injected crash"));
            }
            s.ops_left = Some(left - 1);
        }
        s.ops += 1;
        Ok(())
    }

    fn alive(&self) -> io::Result<MutexGuard<'_, FsState>> {
        let s = lock(&self.state);
        if s.crashed {
            return Err(dead());
        }
        Ok(s)
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file", path.display()),
    )
}

impl WalFs for MemFs {
    fn open(&self, path: &Path, create: bool) -> io::Result<Box<dyn WalFile>> {
        let mut s = self.alive()?;
        let parent = path.parent().unwrap_or(Path::new(""));
        if !s.dirs.contains(parent) {
            return Err(not_found(parent));
        }
        let node = match s.files.get(path) {
            Some(n) => n.clone(),
            None if create => {
                let n = Arc::new(Node {
                    inode: Mutex::new(Inode::default()),
                    locked: AtomicBool::new(false),
                });
                s.files.insert(path.to_path_buf(), n.clone());
                n
            }
            None => return Err(not_found(path)),
        };
        if node.locked.swap(true, Ordering::AcqRel) {
            return Err(io::Error::new(io::ErrorKind::WouldBlock, "file is locked"));
        }
        Ok(Box::new(MemFile {
            fs: self.clone(),
            node,
            path: path.to_path_buf(),
        }))
    }
    fn read_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let s = self.alive()?;
        if !s.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let files = s.files.keys().filter(|p| p.parent() == Some(dir));
        let dirs = s.dirs.iter().filter(|p| p.parent() == Some(dir));
        Ok(files
            .chain(dirs)
            .filter_map(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .collect())
    }
    fn exists(&self, path: &Path) -> bool {
        let s = lock(&self.state);
        s.files.contains_key(path) || s.dirs.contains(path)
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.alive()?;
        for a in dir.ancestors() {
            s.dirs.insert(a.to_path_buf());
        }
        Ok(())
    }
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.alive()?;
        s.files.retain(|p, _| !p.starts_with(dir));
        s.dirs.retain(|p| !p.starts_with(dir));
        Ok(())
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.alive()?;
        s.files.remove(path);
        Ok(())
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.alive()?;
        if let Some(node) = s.files.remove(from) {
            if s.last_written.as_deref() == Some(from) {
                s.last_written = Some(to.to_path_buf());
            }
            s.files.insert(to.to_path_buf(), node);
            return Ok(());
        }
        if !s.dirs.contains(from) {
            return Err(not_found(from));
        }
        // A directory: move it and everything under it.
        let moved = |p: &Path| p.strip_prefix(from).ok().map(|rest| to.join(rest));
        let files: Vec<_> = s
            .files
            .keys()
            .filter(|p| p.starts_with(from))
            .cloned()
            .collect();
        for p in files {
            if let (Some(node), Some(q)) = (s.files.remove(&p), moved(&p)) {
                if s.last_written.as_deref() == Some(p.as_path()) {
                    s.last_written = Some(q.clone());
                }
                s.files.insert(q, node);
            }
        }
        let dirs: Vec<_> = s
            .dirs
            .iter()
            .filter(|p| p.starts_with(from))
            .cloned()
            .collect();
        for p in dirs {
            s.dirs.remove(&p);
            if let Some(q) = moved(&p) {
                s.dirs.insert(q);
            }
        }
        Ok(())
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let s = self.alive()?;
        if s.dirs.contains(dir) {
            Ok(())
        } else {
            Err(not_found(dir))
        }
    }
}

/// An open file of a [`MemFs`].
struct MemFile {
    fs: MemFs,
    node: Arc<Node>,
    /// Where it was opened (for the torn-write bookkeeping; renames update the fs's record).
    path: PathBuf,
}

impl fmt::Debug for MemFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MemFile({})", self.path.display())
    }
}

impl Drop for MemFile {
    fn drop(&mut self) {
        self.node.locked.store(false, Ordering::Release);
    }
}

impl MemFile {
    fn change(&mut self, c: Change, counted: bool) -> io::Result<()> {
        if counted {
            self.fs.op()?;
        } else {
            drop(self.fs.alive()?);
        }
        if matches!(c, Change::Write { .. }) {
            let mut s = lock(&self.fs.state);
            let path = s
                .files
                .iter()
                .find(|(_, n)| Arc::ptr_eq(n, &self.node))
                .map(|(p, _)| p.clone());
            s.last_written = path;
        }
        let mut ino = lock(&self.node.inode);
        apply(&mut ino.data, &c);
        ino.unsynced.push(c);
        Ok(())
    }
}

impl WalFile for MemFile {
    fn len(&self) -> io::Result<u64> {
        Ok(lock(&self.node.inode).data.len() as u64)
    }
    fn read_all(&self) -> io::Result<Vec<u8>> {
        drop(self.fs.alive()?);
        Ok(lock(&self.node.inode).data.clone())
    }
    fn write_all_at(&mut self, buf: &[u8], off: u64) -> io::Result<()> {
        let off = usize::try_from(off).map_err(io::Error::other)?;
        self.change(
            Change::Write {
                off,
                bytes: buf.to_vec(),
            },
            true,
        )
    }
    fn sync(&mut self) -> io::Result<()> {
        self.fs.op()?;
        let mut ino = lock(&self.node.inode);
        ino.durable = ino.data.clone();
        ino.unsynced.clear();
        Ok(())
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(io::Error::other)?;
        self.change(Change::SetLen(len), false)
    }
    fn preallocate(&mut self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(io::Error::other)?;
        if len <= lock(&self.node.inode).data.len() {
            return Ok(());
        }
        self.change(Change::SetLen(len), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem() -> (MemFs, PathBuf) {
        let fs = MemFs::new();
        let dir = PathBuf::from("/d");
        fs.create_dir_all(&dir).unwrap();
        (fs, dir)
    }

    #[test]
    fn slow_sync_fs_delays_file_syncs_only() {
        let (fs, dir) = mem();
        let delay = std::time::Duration::from_millis(30);
        let slow = SlowSyncFs::new(Arc::new(fs.clone()), delay);
        let p = dir.join("a");
        let mut f = slow.open(&p, true).unwrap();
        f.write_all_at(b"x", 0).unwrap();
        let t = std::time::Instant::now();
        f.sync().unwrap();
        assert!(t.elapsed() >= delay);
        assert_eq!(fs.contents(&p).unwrap(), b"x");
    }

    #[test]
    fn mem_locks_exclude_until_dropped() {
        let (fs, dir) = mem();
        let p = dir.join("a");
        let f = fs.open(&p, true).unwrap();
        let err = fs.open(&p, false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        drop(f);
        fs.open(&p, false).unwrap();
    }

    #[test]
    fn mem_crash_images() {
        let (fs, dir) = mem();
        let p = dir.join("a");
        let mut f = fs.open(&p, true).unwrap();
        f.write_all_at(b"synced", 0).unwrap();
        f.sync().unwrap();
        f.write_all_at(b"-one", 6).unwrap();
        f.write_all_at(b"-two", 10).unwrap();
        assert_eq!(fs.contents(&p).unwrap(), b"synced-one-two");
        let lost = fs.crash_image(Crash::LoseUnsynced);
        assert_eq!(lost.contents(&p).unwrap(), b"synced");
        let torn = fs.crash_image(Crash::TornLastWrite { keep: 2 });
        assert_eq!(torn.contents(&p).unwrap(), b"synced-one-t");
        // The image is a fresh file system: nothing is locked in it.
        drop(torn.open(&p, false).unwrap());
    }

    #[test]
    fn mem_crash_after_fails_everything_later() {
        let (fs, dir) = mem();
        let mut f = fs.open(&dir.join("a"), true).unwrap();
        fs.crash_after(1);
        f.write_all_at(b"x", 0).unwrap();
        assert!(f.sync().is_err());
        assert!(fs.crashed());
        assert!(f.write_all_at(b"y", 1).is_err());
        assert!(fs.open(&dir.join("b"), true).is_err());
    }

    #[test]
    fn os_files_lock_and_preallocate() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("seg");
        let mut f = OsFs.open(&p, true).unwrap();
        let err = OsFs.open(&p, false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        f.preallocate(4096).unwrap();
        assert_eq!(f.len().unwrap(), 4096);
        f.write_all_at(b"abc", 8).unwrap();
        f.sync().unwrap();
        let all = f.read_all().unwrap();
        assert_eq!(&all[8..11], b"abc");
        assert!(all[11..].iter().all(|&b| b == 0));
        f.truncate(11).unwrap();
        assert_eq!(f.len().unwrap(), 11);
        drop(f);
        drop(OsFs.open(&p, false).unwrap());
    }
}
