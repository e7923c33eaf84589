//! Opening a bbolt-format file, and the shared state of its transactions.
//!
//! One [`Db`] per open file. It owns the current meta and mapping (behind a short mutex that
//! transactions take only to begin and end), the set of open read txs (pages they can see are
//! not reused) and the single [`Writer`] (the freelist), which a write tx takes out for its
//! lifetime: that is the bolt write lock.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use telemetry::{Metrics, Timer};
use tracing::{debug_span, warn};

use super::file::{FileBackend, OpenError, OsFile, View};
use super::freelist::{Freelist, FreelistType};
use super::meta::{Meta, MAX_PAGE_SIZE, MIN_PAGE_SIZE, PGID_NO_FREELIST};
use super::page::{self, BucketHeader, FREELIST_PAGE, LEAF_PAGE};
use super::tx::{CommitStats, Tx};
use super::{Error, Pgid, Result, Txid};

/// Grow the file by at most this much at a time (bbolt's maxMmapStep is 1 GiB; etcd data
/// grows steadily, so smaller steps waste less space).
const MAX_GROW_STEP: u64 = 64 << 20;

/// How to open a file.
#[derive(Debug, Clone)]
pub struct Options {
    /// Open for reading only (shared lock; no write txs; the freelist is loaded only when it is
    /// stored, for statistics).
    pub read_only: bool,
    /// The freelist algorithm (etcd's `--backend-bbolt-freelist-type`).
    pub freelist_type: FreelistType,
    /// Do not write the freelist page on commit; it is rebuilt by a scan on open (bbolt's
    /// NoFreelistSync: faster commits, slower opens).
    pub no_freelist_sync: bool,
    /// Page size for a new file; for an existing file, `Some` makes a different page size an
    /// error instead of being accepted.
    pub page_size: Option<u32>,
    /// Skip fdatasync (tests and benchmarks only: a crash can lose or corrupt data).
    pub no_sync: bool,
    pub metrics: Arc<Metrics>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            read_only: false,
            freelist_type: FreelistType::default(),
            no_freelist_sync: false,
            page_size: None,
            no_sync: false,
            metrics: Arc::new(Metrics::new()),
        }
    }
}

/// The write lock's contents: whoever holds it may write.
#[derive(Debug)]
pub struct Writer {
    pub(crate) freelist: Freelist,
}

struct Shared {
    meta: Meta,
    view: Arc<dyn View>,
    /// Open read txs by the txid they see, with how many.
    readers: BTreeMap<Txid, usize>,
}

pub(crate) struct DbInner {
    backend: Arc<dyn FileBackend>,
    options: Options,
    page_size: u32,
    shared: Mutex<Shared>,
    writer: Mutex<Option<Writer>>,
    writer_free: Condvar,
    /// The freelist type the next write tx uses (switchable while open).
    freelist_type: AtomicU8,
    no_freelist_sync: AtomicBool,
    /// Set after a failed commit wrote part of its pages: the in-memory state may no longer
    /// match the file, so no further write is allowed (etcd stops the member in that case).
    poisoned: AtomicBool,
    /// The data file's length (only the writer changes it).
    file_len: AtomicU64,
}

/// An open bbolt-format database.
#[derive(Clone)]
pub struct Db {
    inner: Arc<DbInner>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Db({})", self.inner.backend.path().display())
    }
}

fn io_err(op: &'static str, backend: &dyn FileBackend, source: std::io::Error) -> Error {
    Error::Io {
        op,
        path: backend.path().to_path_buf(),
        source,
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a panic elsewhere while holding it; every critical section here
    // leaves the data consistent before anything that can panic, so carry on with it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn type_code(t: FreelistType) -> u8 {
    match t {
        FreelistType::Array => 0,
        _ => 1,
    }
}

fn type_from(c: u8) -> FreelistType {
    if c == 0 {
        FreelistType::Array
    } else {
        FreelistType::Map
    }
}

/// Statistics of the file, for `stats` and the backend's gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DbStats {
    pub page_size: u32,
    pub txid: Txid,
    /// High-water mark in pages.
    pub high_water: Pgid,
    pub file_bytes: u64,
    pub free_pages: u64,
    pub pending_pages: u64,
    pub free_runs: u64,
    pub longest_free_run: u64,
    pub freelist_type: FreelistType,
}

impl Db {
    /// Opens (or creates) the file at `path`.
    pub fn open(path: &Path, options: Options) -> Result<Db> {
        let file = OsFile::open(path, options.read_only).map_err(|e| match e {
            OpenError::Locked => Error::Locked(path.to_path_buf()),
            OpenError::Io(source) => Error::Io {
                op: "open",
                path: path.to_path_buf(),
                source,
            },
        })?;
        Db::open_backend(Arc::new(file), options)
    }

    /// Opens a database on any [`FileBackend`] (an in-memory one in tests).
    pub fn open_backend(backend: Arc<dyn FileBackend>, options: Options) -> Result<Db> {
        let len = backend.len().map_err(|e| io_err("stat", &*backend, e))?;
        if len == 0 {
            if options.read_only {
                return Err(Error::NotBolt("the file is empty".into()));
            }
            init(&*backend, &options)?;
        }
        let len = backend.len().map_err(|e| io_err("stat", &*backend, e))?;
        let meta = read_meta(&*backend, len, options.page_size)?;
        let page_size = meta.page_size;
        let need = meta.pgid.saturating_mul(u64::from(page_size));
        if len < need {
            return Err(Error::NotBolt(format!(
                "the file is truncated: {len} bytes, but its meta needs {need} ({} pages of {page_size} bytes)",
                meta.pgid
            )));
        }
        let view = backend.map(len).map_err(|e| io_err("mmap", &*backend, e))?;
        let mut freelist = Freelist::new(options.freelist_type, options.metrics.clone());
        let inner = Arc::new(DbInner {
            freelist_type: AtomicU8::new(type_code(options.freelist_type)),
            no_freelist_sync: AtomicBool::new(options.no_freelist_sync),
            poisoned: AtomicBool::new(false),
            file_len: AtomicU64::new(len),
            backend,
            page_size,
            shared: Mutex::new(Shared {
                meta,
                view: view.clone(),
                readers: BTreeMap::new(),
            }),
            writer: Mutex::new(None),
            writer_free: Condvar::new(),
            options,
        });
        let read_only = inner.options.read_only;
        // A writer needs the freelist. A reader loads it only for statistics, and only when it
        // is stored (a scan would make every read-only open read the whole file); a damaged
        // freelist does not stop a read-only open (`check` reports it).
        if !read_only || meta.freelist != PGID_NO_FREELIST {
            let mut tx = Tx::new(inner.clone(), view, meta, None);
            tx.set_unregistered();
            let loaded = load_freelist_ids(&tx, &meta);
            drop(tx);
            match loaded {
                Ok(ids) => {
                    freelist.read_ids(&ids);
                    *lock(&inner.writer) = Some(Writer { freelist });
                }
                Err(e) if read_only => {
                    tracing::debug!(error = %e, "read-only open without freelist statistics");
                }
                Err(e) => return Err(e),
            }
        }
        let db = Db { inner };
        db.update_gauges();
        Ok(db)
    }

    /// Begins a read-only transaction on the last committed state.
    pub fn begin_read(&self) -> Result<Tx> {
        let (meta, view) = {
            let mut s = lock(&self.inner.shared);
            let meta = s.meta;
            *s.readers.entry(meta.txid).or_insert(0) += 1;
            (meta, s.view.clone())
        };
        Ok(Tx::new(self.inner.clone(), view, meta, None))
    }

    /// Begins the read-write transaction, waiting for the current one to finish.
    pub fn begin_write(&self) -> Result<Tx> {
        if self.inner.options.read_only {
            return Err(Error::ReadOnly);
        }
        if self.inner.poisoned.load(Ordering::Acquire) {
            return Err(Error::Poisoned);
        }
        let wait = Timer::start();
        let mut writer = {
            let _span = debug_span!(telemetry::names::BOLT_RW_LOCK_WAIT).entered();
            let mut guard = lock(&self.inner.writer);
            loop {
                if let Some(w) = guard.take() {
                    break w;
                }
                guard = self
                    .inner
                    .writer_free
                    .wait(guard)
                    .unwrap_or_else(|e| e.into_inner());
            }
        };
        let ns = wait.elapsed_ns();
        self.inner.options.metrics.bolt_rw_lock_wait.record(ns);
        telemetry::request::record(telemetry::names::BOLT_RW_LOCK_WAIT, &wait, ns);
        let want = type_from(self.inner.freelist_type.load(Ordering::Relaxed));
        if writer.freelist.kind() != want {
            writer.freelist.set_kind(want);
        }
        let (mut meta, view) = {
            let s = lock(&self.inner.shared);
            // Pages freed by txs that no open reader can see become allocatable.
            release_pages(&mut writer.freelist, &s.readers, s.meta.txid);
            (s.meta, s.view.clone())
        };
        let Some(txid) = meta.txid.checked_add(1) else {
            // Only a damaged meta gets here.
            self.inner.release_writer(writer);
            return Err(Error::InvalidMeta {
                page: meta.txid % 2,
                reason: format!("txid {} leaves no next txid", meta.txid),
            });
        };
        meta.txid = txid;
        Ok(Tx::new(self.inner.clone(), view, meta, Some(writer)))
    }

    /// Runs `f` in a write tx and commits it (rolls back on error).
    pub fn update<T>(&self, f: impl FnOnce(&mut Tx) -> Result<T>) -> Result<T> {
        let mut tx = self.begin_write()?;
        let out = f(&mut tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Runs `f` in a read tx.
    pub fn view<T>(&self, f: impl FnOnce(&mut Tx) -> Result<T>) -> Result<T> {
        let mut tx = self.begin_read()?;
        f(&mut tx)
    }

    /// Switches the freelist algorithm from the next write tx on.
    pub fn set_freelist_type(&self, t: FreelistType) {
        self.inner
            .freelist_type
            .store(type_code(t), Ordering::Relaxed);
    }

    pub fn freelist_type(&self) -> FreelistType {
        type_from(self.inner.freelist_type.load(Ordering::Relaxed))
    }

    /// Whether commits write the freelist page (see [`Options::no_freelist_sync`]).
    pub fn set_no_freelist_sync(&self, v: bool) {
        self.inner.no_freelist_sync.store(v, Ordering::Relaxed);
    }

    pub fn page_size(&self) -> u32 {
        self.inner.page_size
    }

    pub fn path(&self) -> &Path {
        self.inner.backend.path()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.options.metrics
    }

    /// Current statistics. The freelist figures are zero while a write tx holds the freelist,
    /// and when a read-only open found none stored.
    pub fn stats(&self) -> DbStats {
        let (meta, file_bytes) = {
            let s = lock(&self.inner.shared);
            (s.meta, s.view.bytes().len() as u64)
        };
        let mut st = DbStats {
            page_size: meta.page_size,
            txid: meta.txid,
            high_water: meta.pgid,
            file_bytes,
            freelist_type: self.freelist_type(),
            ..DbStats::default()
        };
        if let Some(w) = lock(&self.inner.writer).as_ref() {
            let runs = w.freelist.runs();
            st.free_pages = runs.free_pages;
            st.free_runs = runs.runs;
            st.longest_free_run = runs.longest;
            st.pending_pages = w.freelist.pending_count() as u64;
        }
        st
    }

    fn update_gauges(&self) {
        let st = self.stats();
        let m = &self.inner.options.metrics;
        m.backend_db_size.set(st.file_bytes as i64);
        let in_use = (st
            .high_water
            .saturating_sub(st.free_pages + st.pending_pages))
            * u64::from(st.page_size);
        m.backend_db_size_in_use.set(in_use as i64);
        m.freelist_free_pages.set(st.free_pages as i64);
    }
}

/// bbolt's `freePages`: release pending pages no open reader can see.
fn release_pages(fl: &mut Freelist, readers: &BTreeMap<Txid, usize>, _current: Txid) {
    let mut minid = match readers.keys().next() {
        Some(&t) => t,
        None => u64::MAX,
    };
    if minid > 0 {
        fl.release(minid - 1);
    }
    for &t in readers.keys() {
        if t > 0 {
            fl.release_range(minid, t - 1);
        }
        minid = t + 1;
    }
    fl.release_range(minid, u64::MAX);
}

/// The free page ids: from the freelist page, or by finding every unreachable page.
fn load_freelist_ids(tx: &Tx, meta: &Meta) -> Result<Vec<Pgid>> {
    let ids = if meta.freelist == PGID_NO_FREELIST {
        free_pages_by_scan(tx)?
    } else {
        tx.page(meta.freelist)?.freelist_ids()?
    };
    // A damaged freelist page must not hand out pages past the end of the data: the commit
    // would grow the file to reach them.
    if let Some(bad) = ids.iter().find(|&&id| id >= meta.pgid) {
        return Err(Error::corrupt(
            meta.freelist,
            format!("freed page {bad} beyond the high-water mark {}", meta.pgid),
        ));
    }
    Ok(ids)
}

/// Every page id in `2..pgid` not reachable from the root: the freelist when it is not stored.
fn free_pages_by_scan(tx: &Tx) -> Result<Vec<Pgid>> {
    let hw = tx.meta().pgid;
    let mut reachable = vec![false; usize::try_from(hw).unwrap_or(0)];
    tx.walk_pages(|id, p, _| {
        for i in 0..=u64::from(p.overflow()) {
            if let Some(r) = reachable.get_mut((id + i) as usize) {
                *r = true;
            }
        }
        Ok(())
    })?;
    Ok((2..hw).filter(|i| !reachable[*i as usize]).collect())
}

/// Writes a fresh database: two metas, an empty freelist and an empty root leaf (bbolt's init).
fn init(backend: &dyn FileBackend, options: &Options) -> Result<()> {
    let ps = options.page_size.unwrap_or_else(os_page_size);
    if !ps.is_power_of_two() || !(MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&ps) {
        return Err(Error::NotBolt(format!("invalid page size {ps}")));
    }
    let psz = ps as usize;
    let mut buf = vec![0u8; 4 * psz];
    for i in 0..2u64 {
        let m = Meta {
            page_size: ps,
            flags: 0,
            root: BucketHeader {
                root: 3,
                sequence: 0,
            },
            freelist: 2,
            pgid: 4,
            txid: i,
        };
        let at = i as usize * psz;
        buf[at..at + psz].copy_from_slice(&m.encode());
    }
    page::write_header(&mut buf[2 * psz..], 2, FREELIST_PAGE, 0, 0);
    page::write_header(&mut buf[3 * psz..], 3, LEAF_PAGE, 0, 0);
    backend
        .write_all_at(&buf, 0)
        .map_err(|e| io_err("write", backend, e))?;
    if !options.no_sync {
        backend
            .sync()
            .map_err(|e| io_err("fdatasync", backend, e))?;
    }
    Ok(())
}

fn os_page_size() -> u32 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u32::try_from(v).unwrap_or(4096)
}

/// Reads both metas and picks the valid one with the larger txid.
fn read_meta(backend: &dyn FileBackend, len: u64, want: Option<u32>) -> Result<Meta> {
    let mut first = vec![0u8; len.min(u64::from(MAX_PAGE_SIZE)) as usize];
    backend
        .read_exact_at(&mut first, 0)
        .map_err(|e| io_err("read", backend, e))?;
    let m0 = Meta::decode(&first, 0);
    // Meta 1 sits one page in; without a valid meta 0 the page size is unknown, so try each.
    let sizes: Vec<u32> = match &m0 {
        Ok(m) => vec![m.page_size],
        Err(_) => (10..=16).map(|s| 1u32 << s).collect(),
    };
    let mut m1 = Err(Error::InvalidMeta {
        page: 1,
        reason: "the file is too short for a second meta page".into(),
    });
    for ps in sizes {
        let off = u64::from(ps);
        if off + 128 > len {
            continue;
        }
        let mut b = vec![0u8; (ps as usize).min((len - off) as usize)];
        backend
            .read_exact_at(&mut b, off)
            .map_err(|e| io_err("read", backend, e))?;
        let m = Meta::decode(&b, 1);
        if let Ok(meta) = &m {
            if meta.page_size != ps {
                continue;
            }
        }
        m1 = m;
        if m1.is_ok() {
            break;
        }
    }
    let meta = match (m0, m1) {
        (Ok(a), Ok(b)) => {
            if a.page_size != b.page_size {
                return Err(Error::InvalidMeta {
                    page: 1,
                    reason: format!(
                        "page size {} differs from meta 0's {}",
                        b.page_size, a.page_size
                    ),
                });
            }
            if a.txid >= b.txid {
                a
            } else {
                b
            }
        }
        (Ok(a), Err(e)) | (Err(e), Ok(a)) => {
            warn!(error = %e, "one meta page is invalid; using the other");
            a
        }
        (Err(e0), Err(e1)) => {
            return Err(Error::NotBolt(format!("no valid meta page: {e0}; {e1}")));
        }
    };
    if let Some(w) = want {
        if w != meta.page_size {
            return Err(Error::PageSizeMismatch {
                file: meta.page_size,
                expected: w,
            });
        }
    }
    if meta.pgid < 4 || meta.root.root >= meta.pgid || meta.root.root < 2 {
        return Err(Error::InvalidMeta {
            page: meta.txid % 2,
            reason: format!(
                "root page {} outside the data (high-water mark {})",
                meta.root.root, meta.pgid
            ),
        });
    }
    if meta.freelist != PGID_NO_FREELIST && (meta.freelist >= meta.pgid || meta.freelist < 2) {
        return Err(Error::InvalidMeta {
            page: meta.txid % 2,
            reason: format!(
                "freelist page {} outside the data (high-water mark {})",
                meta.freelist, meta.pgid
            ),
        });
    }
    Ok(meta)
}

impl DbInner {
    pub(crate) fn no_freelist_sync(&self) -> bool {
        self.no_freelist_sync.load(Ordering::Relaxed)
    }

    pub(crate) fn release_reader(&self, txid: Txid) {
        let mut s = lock(&self.shared);
        if let Some(n) = s.readers.get_mut(&txid) {
            *n -= 1;
            if *n == 0 {
                s.readers.remove(&txid);
            }
        }
    }

    pub(crate) fn release_writer(&self, w: Writer) {
        *lock(&self.writer) = Some(w);
        self.writer_free.notify_one();
    }

    /// Writes consecutive pages starting at `start`, growing the file first when they reach
    /// past its end.
    pub(crate) fn write_pages(&self, start: Pgid, buf: &[u8]) -> Result<()> {
        let backend = &*self.backend;
        let ps = u64::from(self.page_size);
        let off = start * ps;
        let end = off + buf.len() as u64;
        let len = self.file_len.load(Ordering::Relaxed);
        if end > len {
            // Grow in steps (doubling up to MAX_GROW_STEP), not page by page.
            let step = len.clamp(ps * 8, MAX_GROW_STEP);
            let new_len = end.max(len + step).div_ceil(ps) * ps;
            backend
                .set_len(new_len)
                .map_err(|e| io_err("grow", backend, e))?;
            self.file_len.store(new_len, Ordering::Relaxed);
        }
        // No writeback hint (sync_file_range) here: measured, it made commits slower — the
        // disk does better with the whole batch at the fdatasync.
        backend
            .write_all_at(buf, off)
            .map_err(|e| self.poison(e, "write"))?;
        Ok(())
    }

    fn poison(&self, e: std::io::Error, op: &'static str) -> Error {
        self.poisoned.store(true, Ordering::Release);
        io_err(op, &*self.backend, e)
    }

    /// Completes a commit whose pages are written: fdatasync, write the meta page, fdatasync,
    /// then publish the new meta (remapping if the file grew).
    pub(crate) fn write_commit(&self, meta: &Meta) -> Result<CommitStats> {
        let backend = &*self.backend;
        let ps = u64::from(self.page_size);
        let mut stats = CommitStats {
            txid: meta.txid,
            ..CommitStats::default()
        };
        if !self.options.no_sync {
            let t = Timer::start();
            backend.sync().map_err(|e| self.poison(e, "fdatasync"))?;
            stats.fsync_ns += t.elapsed_ns();
        }
        let t = Timer::start();
        let mbuf = meta.encode();
        backend
            .write_all_at(&mbuf, (meta.txid % 2) * ps)
            .map_err(|e| self.poison(e, "write meta"))?;
        stats.write_ns = t.elapsed_ns();
        stats.pages = 1;
        stats.bytes = ps;
        if !self.options.no_sync {
            let t = Timer::start();
            backend.sync().map_err(|e| self.poison(e, "fdatasync"))?;
            stats.fsync_ns += t.elapsed_ns();
        }
        // Publish: new readers see this commit. Remap when the file outgrew the mapping (or
        // always, for backends whose views do not see later writes).
        let file_len = self.file_len.load(Ordering::Relaxed);
        let mapped = lock(&self.shared).view.bytes().len() as u64;
        let view = if !backend.map_is_live() || file_len > mapped {
            let t = Timer::start();
            let _span = debug_span!(telemetry::names::BOLT_MMAP_REMAP, bytes = file_len).entered();
            let v = backend.map(file_len).map_err(|e| self.poison(e, "mmap"))?;
            let ns = t.elapsed_ns();
            self.options.metrics.bolt_mmap_remap.record(ns);
            telemetry::request::record(telemetry::names::BOLT_MMAP_REMAP, &t, ns);
            Some(v)
        } else {
            None
        };
        let mut s = lock(&self.shared);
        s.meta = *meta;
        if let Some(v) = view {
            s.view = v;
        }
        Ok(stats)
    }
}

impl Tx {
    /// Commit hook used by `Tx::commit`: hands the writer back once the meta is published.
    pub(crate) fn release_after_commit(&mut self) {
        if let Some(w) = self.finish_commit() {
            self.db.release_writer(w);
        }
    }
}

impl Db {
    /// Both meta pages as decoded from the file (for `check`'s warnings).
    pub fn raw_metas(&self) -> [Result<Meta>; 2] {
        let ps = u64::from(self.inner.page_size);
        let backend = &*self.inner.backend;
        let read = |at: u64| -> Result<Meta> {
            let mut b = vec![0u8; ps as usize];
            backend
                .read_exact_at(&mut b, at * ps)
                .map_err(|e| io_err("read", backend, e))?;
            Meta::decode(&b, at)
        };
        [read(0), read(1)]
    }

    /// Updates the size gauges (the backend calls this after each commit).
    pub fn refresh_gauges(&self) {
        self.update_gauges();
    }
}
