//! [`Backend`]: the bolt file, the batch tx, the current read epoch and the commit loop.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use telemetry::{names, Metrics, Timer};
use tracing::{debug_span, field::Empty};

use super::batch_tx::BatchTx;
use super::error::{BackendError, Result};
use super::read_tx::{Epoch, ReadTx};
use crate::storage::btree::{self, Db, FreelistType, Options, Tx};

/// etcd's defaults: commit every 100 ms or every 10000 writes, whichever comes first.
pub const DEFAULT_BATCH_INTERVAL: Duration = Duration::from_millis(100);
pub const DEFAULT_BATCH_LIMIT: usize = 10_000;

/// How to open a backend.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    pub path: PathBuf,
    pub batch_interval: Duration,
    pub batch_limit: usize,
    pub freelist_type: FreelistType,
    /// Do not persist the freelist page (rebuilt by a scan on open).
    pub no_freelist_sync: bool,
    pub metrics: Arc<Metrics>,
}

impl BackendConfig {
    pub fn new(path: impl Into<PathBuf>, metrics: Arc<Metrics>) -> Self {
        BackendConfig {
            path: path.into(),
            batch_interval: DEFAULT_BATCH_INTERVAL,
            batch_limit: DEFAULT_BATCH_LIMIT,
            freelist_type: FreelistType::default(),
            no_freelist_sync: false,
            metrics,
        }
    }

    fn bolt_options(&self) -> Options {
        Options {
            freelist_type: self.freelist_type,
            no_freelist_sync: self.no_freelist_sync,
            metrics: self.metrics.clone(),
            ..Options::default()
        }
    }
}

/// One write waiting to be shown to readers: bucket, key, value (`None` = deleted).
pub(crate) type BufferedWrite = (Vec<u8>, Vec<u8>, Option<Vec<u8>>);

/// The batch tx's state, behind the batch tx lock.
pub(crate) struct BatchState {
    /// The open bolt write tx (`None` only once closed).
    pub tx: Option<Tx>,
    /// Writes since the last commit.
    pub pending: usize,
    /// Writes made under the current lock, not yet shown to readers.
    pub wbuf: Vec<BufferedWrite>,
    /// Commit when the lock is released (a bucket was deleted).
    pub force_commit: bool,
}

pub(crate) struct BackendInner {
    pub(super) config: BackendConfig,
    /// The open file; replaced by defrag.
    db: RwLock<Db>,
    batch: Mutex<BatchState>,
    /// The committed state readers start from, and the buffer of writes since.
    current: RwLock<Arc<Epoch>>,
    batch_limit: AtomicUsize,
    batch_interval_ns: AtomicU64,
    /// The file's statistics as of the last commit, taken while the bolt write lock is free:
    /// the batch tx holds it the rest of the time, and with it the freelist `Db::stats` reads.
    last_stats: Mutex<btree::DbStats>,
    /// Why the backend failed ([`Backend::poison`], a failed commit); then nothing commits.
    failed: Mutex<Option<String>>,
    /// Set to stop the commit loop; the condvar wakes it at once.
    stop: Mutex<bool>,
    stop_cv: Condvar,
}

/// etcd's backend over the bbolt-format engine. Cheap to share (`Arc` inside); the commit loop
/// stops and the last batch is committed when the last handle is dropped or on [`close`].
///
/// [`close`]: Backend::close
pub struct Backend {
    inner: Arc<BackendInner>,
    commit_loop: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Backend({})", self.inner.config.path.display())
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // Every writer of these locks leaves them consistent before anything that can panic.
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Backend {
    /// Opens (or creates) the backend file and starts the commit loop.
    pub fn open(config: BackendConfig) -> Result<Backend> {
        let db = Db::open(&config.path, config.bolt_options())?;
        let epoch = Epoch::new(db.begin_read()?)?;
        let last_stats = Mutex::new(db.stats());
        let wtx = db.begin_write()?;
        let inner = Arc::new(BackendInner {
            last_stats,
            batch_limit: AtomicUsize::new(config.batch_limit.max(1)),
            batch_interval_ns: AtomicU64::new(config.batch_interval.as_nanos() as u64),
            db: RwLock::new(db),
            batch: Mutex::new(BatchState {
                tx: Some(wtx),
                pending: 0,
                wbuf: Vec::new(),
                force_commit: false,
            }),
            current: RwLock::new(Arc::new(epoch)),
            failed: Mutex::new(None),
            stop: Mutex::new(false),
            stop_cv: Condvar::new(),
            config,
        });
        let weak = Arc::downgrade(&inner);
        let handle = std::thread::Builder::new()
            .name("backend-commit".into())
            .spawn(move || commit_loop(weak))
            .map_err(|e| {
                BackendError::Bolt(btree::Error::Io {
                    op: "spawn commit loop",
                    path: PathBuf::new(),
                    source: e,
                })
            })?;
        Ok(Backend {
            inner,
            commit_loop: Mutex::new(Some(handle)),
        })
    }

    /// Takes the batch tx lock (measured as `backend.tx_lock_wait`).
    pub fn batch_tx(&self) -> BatchTx<'_> {
        self.inner.batch_tx()
    }

    /// A read view of everything written so far; never waits for a commit.
    pub fn read_tx(&self) -> ReadTx {
        let epoch = self.inner.epoch();
        let seq = read(&epoch.buf).seq;
        ReadTx { epoch, seq }
    }

    /// Commits whatever is pending now.
    pub fn force_commit(&self) -> Result<()> {
        let mut tx = self.inner.batch_tx();
        tx.commit()
    }

    /// Stops every later commit (the layer above found the open batch inconsistent, e.g. a
    /// request failed half way): the file stays at its last commit.
    pub fn poison(&self, reason: &str) {
        self.inner.poison(reason);
    }

    /// Why the backend failed, if it did.
    pub fn failure(&self) -> Option<String> {
        lock(&self.inner.failed).clone()
    }

    pub fn set_batch_limit(&self, n: usize) {
        self.inner.batch_limit.store(n.max(1), Ordering::Relaxed);
    }

    pub fn batch_limit(&self) -> usize {
        self.inner.batch_limit()
    }

    /// Changes the commit interval; the commit loop picks it up at its next wake-up, which
    /// this triggers at once.
    pub fn set_batch_interval(&self, d: Duration) {
        let ns = (d.as_nanos() as u64).max(1_000_000);
        self.inner.batch_interval_ns.store(ns, Ordering::Relaxed);
        self.inner.stop_cv.notify_all();
    }

    pub fn batch_interval(&self) -> Duration {
        Duration::from_nanos(self.inner.batch_interval_ns.load(Ordering::Relaxed))
    }

    /// Switches the freelist algorithm from the next write tx on (i.e. after the next commit).
    pub fn set_freelist_type(&self, t: FreelistType) {
        read(&self.inner.db).set_freelist_type(t);
    }

    pub fn freelist_type(&self) -> FreelistType {
        read(&self.inner.db).freelist_type()
    }

    /// The data file's size as the last commit left it (high-water mark × page size).
    pub fn size(&self) -> u64 {
        let st = read(&self.inner.db).stats();
        st.high_water * u64::from(st.page_size)
    }

    /// Bytes in use: size less free pages.
    pub fn size_in_use(&self) -> u64 {
        let st = self.stats();
        st.high_water.saturating_sub(st.free_pages) * u64::from(st.page_size)
    }

    /// Statistics of the open file; the freelist's as of the last commit.
    pub fn stats(&self) -> btree::DbStats {
        let mut st = read(&self.inner.db).stats();
        let last = *lock(&self.inner.last_stats);
        st.free_pages = last.free_pages;
        st.pending_pages = last.pending_pages;
        st.free_runs = last.free_runs;
        st.longest_free_run = last.longest_free_run;
        st
    }

    pub fn path(&self) -> &Path {
        &self.inner.config.path
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.config.metrics
    }

    /// etcd's backend hash: CRC-32C over every bucket name, key and value in order (after a
    /// commit, so every write so far counts), skipping entries `ignore` selects.
    pub fn hash(&self, ignore: impl Fn(&[u8], &[u8]) -> bool) -> Result<u32> {
        self.force_commit()?;
        let db = read(&self.inner.db).clone();
        let mut tx = db.begin_read()?;
        let root = tx.root();
        let mut names = Vec::new();
        tx.for_each(root, |k, _| {
            names.push(k.to_vec());
            Ok::<(), btree::Error>(())
        })?;
        let mut h = 0u32;
        for name in names {
            let b = tx
                .bucket(root, &name)?
                .ok_or_else(|| BackendError::NoBucket(String::from_utf8_lossy(&name).into()))?;
            h = crc32c::crc32c_append(h, &name);
            tx.for_each(b, |k, v| {
                if !ignore(&name, k) {
                    h = crc32c::crc32c_append(h, k);
                    h = crc32c::crc32c_append(h, v.unwrap_or(&[]));
                }
                Ok::<(), btree::Error>(())
            })?;
        }
        Ok(h)
    }

    /// Rewrites the file compactly into a fresh one and swaps it in (etcd's defragment).
    /// Writers wait meanwhile; readers go on with the old file until they finish.
    pub fn defrag(&self) -> Result<()> {
        self.inner.defrag()
    }

    /// Commits what is pending and stops the commit loop. Later writes fail.
    pub fn close(&self) -> Result<()> {
        *lock(&self.inner.stop) = true;
        self.inner.stop_cv.notify_all();
        if let Some(h) = lock(&self.commit_loop).take() {
            let _ = h.join();
        }
        let mut state = lock(&self.inner.batch);
        let r = self.inner.commit_locked(&mut state, true);
        state.tx = None;
        r
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::error!(error = %e, "backend: final commit failed");
        }
    }
}

fn commit_loop(weak: std::sync::Weak<BackendInner>) {
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let interval = Duration::from_nanos(inner.batch_interval_ns.load(Ordering::Relaxed));
        {
            let stop = lock(&inner.stop);
            if *stop {
                return;
            }
            let (stop, _) = inner
                .stop_cv
                .wait_timeout(stop, interval)
                .unwrap_or_else(|e| e.into_inner());
            if *stop {
                return;
            }
        }
        let mut state = inner.lock_batch();
        if state.pending > 0 {
            if let Err(e) = inner.commit_locked(&mut state, false) {
                tracing::error!(error = %e, "backend: periodic commit failed");
            }
        }
    }
}

impl BackendInner {
    pub(crate) fn metrics(&self) -> &Arc<Metrics> {
        &self.config.metrics
    }

    pub(crate) fn batch_limit(&self) -> usize {
        self.batch_limit.load(Ordering::Relaxed)
    }

    pub(crate) fn epoch(&self) -> Arc<Epoch> {
        read(&self.current).clone()
    }

    fn lock_batch(&self) -> MutexGuard<'_, BatchState> {
        let t = Timer::start();
        let span = debug_span!(names::BACKEND_TX_LOCK_WAIT, wait_ns = Empty);
        let _e = span.enter();
        let guard = lock(&self.batch);
        let ns = t.elapsed_ns();
        span.record("wait_ns", ns);
        self.config.metrics.backend_tx_lock_wait.record(ns);
        telemetry::request::record(names::BACKEND_TX_LOCK_WAIT, &t, ns);
        guard
    }

    pub(crate) fn batch_tx(&self) -> BatchTx<'_> {
        BatchTx {
            state: self.lock_batch(),
            inner: self,
        }
    }

    fn poison(&self, reason: &str) {
        let mut f = lock(&self.failed);
        if f.is_none() {
            tracing::error!(reason, "backend failed: nothing more will be committed");
            *f = Some(reason.to_string());
        }
    }

    /// Commits the bolt write tx, opens the next read epoch and write tx (batch lock held).
    pub(crate) fn commit_locked(&self, state: &mut BatchState, stop: bool) -> Result<()> {
        state.force_commit = false;
        if let Some(why) = lock(&self.failed).clone() {
            return Err(BackendError::Failed(why));
        }
        let Some(tx) = state.tx.take() else {
            return if stop {
                Ok(())
            } else {
                Err(BackendError::Closed)
            };
        };
        if state.pending == 0 {
            // Nothing to write: keep the tx (or end it when stopping).
            if !stop {
                state.tx = Some(tx);
            }
            return Ok(());
        }
        let metrics = &self.config.metrics;
        let span = debug_span!(
            names::BACKEND_COMMIT,
            txid = Empty,
            writes = state.pending,
            pages = Empty,
            bytes = Empty,
            fsync_ns = Empty
        );
        let _e = span.enter();
        let t = Timer::start();
        let stats = tx.commit();
        let db = read(&self.db).clone();
        let stats = match stats {
            Ok(s) => s,
            Err(e) => {
                // The batch is lost to the file while its writes were acknowledged above (and
                // their raft index recorded in it): nothing may commit after it, or a restart
                // would skip them. etcd exits here; the backend refuses further work and the
                // member stops, to replay the WAL from the last good commit on restart.
                state.pending = 0;
                self.poison(&format!("commit failed: {e}"));
                return Err(e.into());
            }
        };
        let ns = t.elapsed_ns();
        span.record("txid", stats.txid);
        span.record("pages", stats.pages);
        span.record("bytes", stats.bytes);
        span.record("fsync_ns", stats.fsync_ns);
        metrics.backend_commit.record(ns);
        // Inline, under a request's txn that filled the batch: the commit serves every write of
        // the batch (`backend.writes`), this request pays for it.
        telemetry::request::record_with(
            names::BACKEND_COMMIT,
            &t,
            ns,
            &[
                ("backend.writes", state.pending as i64),
                ("backend.pages", stats.pages as i64),
                ("backend.bytes", stats.bytes as i64),
            ],
        );
        metrics.backend_commit_fsync.record(stats.fsync_ns);
        metrics.backend_commit_pages.record(stats.pages);
        metrics.backend_commits.inc();
        metrics.backend_commit_bytes.add(stats.bytes);
        db.refresh_gauges();
        *lock(&self.last_stats) = db.stats();
        state.pending = 0;
        metrics.backend_pending_writes.set(0);
        // Readers move to the new commit; the old epoch lives on while they hold it.
        let epoch = Epoch::new(db.begin_read()?)?;
        *write(&self.current) = Arc::new(epoch);
        if !stop {
            state.tx = Some(db.begin_write()?);
        }
        Ok(())
    }

    fn defrag(&self) -> Result<()> {
        let mut state = self.lock_batch();
        self.commit_locked(&mut state, true)?;
        state.tx = None;
        let old = read(&self.db).clone();
        let path = self.config.path.clone();
        let tmp = path.with_extension("defrag.tmp");
        let result = (|| -> Result<Db> {
            let _ = std::fs::remove_file(&tmp);
            let fresh = Db::open(&tmp, self.config.bolt_options())?;
            copy_all(&old, &fresh)?;
            // Swap the files while the fresh one stays open (and locked): closing and reopening
            // it would leave a moment in which its lock is not held.
            std::fs::rename(&tmp, &path)
                .map_err(|e| BackendError::Defrag(format!("rename: {e}")))?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| BackendError::Defrag(format!("sync {}: {e}", dir.display())))?;
            }
            Ok(fresh)
        })();
        let db = match result {
            Ok(db) => db,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                state.tx = Some(old.begin_write()?);
                return Err(e);
            }
        };
        db.set_freelist_type(old.freelist_type());
        *lock(&self.last_stats) = db.stats();
        *write(&self.db) = db.clone();
        let epoch = Epoch::new(db.begin_read()?)?;
        *write(&self.current) = Arc::new(epoch);
        state.tx = Some(db.begin_write()?);
        Ok(())
    }
}

/// Copies every top-level bucket of `from` into `to` (fill 90 %: nothing is inserted between
/// the keys of a fresh copy), committing every few MiB.
fn copy_all(from: &Db, to: &Db) -> Result<()> {
    const TX_BYTES: usize = 16 << 20;
    let mut rtx = from.begin_read()?;
    let root = rtx.root();
    let mut names = Vec::new();
    rtx.for_each(root, |k, _| {
        names.push(k.to_vec());
        Ok::<(), btree::Error>(())
    })?;
    let mut wtx = to.begin_write()?;
    let mut size = 0usize;
    for name in names {
        let Some(src) = rtx.bucket(root, &name)? else {
            continue;
        };
        let wroot = wtx.root();
        let dst = wtx.create_bucket_if_not_exists(wroot, &name)?;
        wtx.set_fill_percent(dst, 0.9);
        let seq = rtx.sequence(src)?;
        wtx.set_sequence(dst, seq)?;
        let mut c = rtx.cursor(src);
        let mut e = c.first()?;
        while let Some((k, v)) = e {
            if let Some(v) = v {
                let wroot = wtx.root();
                let dst = match wtx.bucket(wroot, &name)? {
                    Some(b) => b,
                    None => wtx.create_bucket(wroot, &name)?,
                };
                wtx.set_fill_percent(dst, 0.9);
                wtx.put(dst, k, v)?;
                size += k.len() + v.len();
                if size >= TX_BYTES {
                    wtx.commit()?;
                    wtx = to.begin_write()?;
                    size = 0;
                }
            }
            e = c.next()?;
        }
    }
    wtx.commit()?;
    Ok(())
}
