//! [`KvStore`]: etcd's `store` (`mvcc/kvstore.go`): the revisioned key space over the backend.
//!
//! State, and what guards it:
//! - the backend's `key` and `meta` buckets (see `schema`), written only through the backend's
//!   batch tx — a [`TxnWrite`] holds it from begin to end, the compactor one batch at a time;
//! - the [`TreeIndex`], rebuilt from the `key` bucket when the store opens;
//! - `revs`: the current revision (the last write txn that changed something) and the last
//!   compaction revision. A write txn bumps the current revision *while still holding the batch
//!   tx* and publishes its writes before releasing `revs`, and a read txn takes its revision and
//!   its backend snapshot under `revs`: a reader that sees revision R sees every write of R;
//! - the read gate (etcd's `mu`): every read txn is inside it for its whole life, and a
//!   compaction closes it — waiting for the read txns inside, holding up new ones — only while
//!   it moves the compaction revision. So the compaction revision never moves under an open
//!   txn (write txns are covered by the batch tx, which a compaction takes too): a read txn
//!   can always read at its own revision, and at any revision from its start's compaction on.
//!   The index is compacted after the gate reopens; readers that start after it read at or
//!   above the new compaction revision, which that index compaction does not touch.
//!
//! Lock order: read gate, batch tx, `revs`, index lock (each taken alone or in this order).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{
    Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
};
use std::time::Duration;

use telemetry::{names, Metrics, Timer};
use tracing::field::Empty;

use super::compaction::{CompactionHandle, Compactor};
use super::schema::{
    self, CONSISTENT_INDEX_KEY, FINISHED_COMPACT_KEY, KEY_BUCKET, META_BUCKET,
    SCHEDULED_COMPACT_KEY, TERM_KEY,
};
use super::txn::{RangeOptions, RangeResult, TxnRead, TxnWrite};
use super::{BucketKey, KeyIndex, MvccError, Revision, TreeIndex};
use crate::storage::backend::{Backend, ReadTx};

/// etcd's `--experimental-compaction-batch-limit` default: revisions deleted per batch.
pub const DEFAULT_COMPACTION_BATCH_LIMIT: usize = 1000;
/// etcd 3.4's pause between two compaction batches.
pub const DEFAULT_COMPACTION_PAUSE: Duration = Duration::from_millis(10);
/// etcd's `restoreChunkKeys`: `key` bucket entries read per chunk when the store opens.
pub const DEFAULT_RESTORE_CHUNK_KEYS: usize = 10_000;

/// How the store runs its compactions and its start-up.
#[derive(Debug, Clone)]
pub struct KvStoreConfig {
    /// Revisions a compaction deletes per batch: each batch holds the batch tx (and so every
    /// writer) for its deletes and its commit.
    pub compaction_batch_limit: usize,
    /// Pause between two compaction batches, in which writers get the batch tx. A setting
    /// rather than a clock: tests use zero.
    pub compaction_pause: Duration,
    /// `key` bucket entries read per chunk when the index is rebuilt at open.
    pub restore_chunk_keys: usize,
}

impl Default for KvStoreConfig {
    fn default() -> Self {
        KvStoreConfig {
            compaction_batch_limit: DEFAULT_COMPACTION_BATCH_LIMIT,
            compaction_pause: DEFAULT_COMPACTION_PAUSE,
            restore_chunk_keys: DEFAULT_RESTORE_CHUNK_KEYS,
        }
    }
}

/// The store's two revisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Revs {
    /// The revision of the last write txn that changed something; 1 in an empty store (etcd's
    /// first write is revision 2).
    pub current: i64,
    /// The last compaction's revision; -1 before the first.
    pub compacted: i64,
}

/// etcd's `mu`: read txns enter, compactions close it (see the module documentation). A lock
/// of its own rather than a `RwLock` because a read txn owns its place (`TxnRead` is `Send`
/// and borrows nothing), and closing has writer preference.
#[derive(Default)]
pub(super) struct ReadGate {
    state: Mutex<GateState>,
    cv: Condvar,
}

#[derive(Default)]
struct GateState {
    /// Read txns inside.
    readers: usize,
    /// A compaction is closing or has closed the gate.
    closed: bool,
}

impl ReadGate {
    fn lock(&self) -> MutexGuard<'_, GateState> {
        // Nothing that can panic runs under this lock.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, g: MutexGuard<'a, GateState>) -> MutexGuard<'a, GateState> {
        self.cv.wait(g).unwrap_or_else(PoisonError::into_inner)
    }

    /// Enters as a reader, waiting while the gate is closed; pair with [`leave`](Self::leave).
    pub fn enter(&self) {
        let mut g = self.lock();
        while g.closed {
            g = self.wait(g);
        }
        g.readers += 1;
    }

    pub fn leave(&self) {
        let mut g = self.lock();
        g.readers = g.readers.saturating_sub(1);
        if g.readers == 0 {
            self.cv.notify_all();
        }
    }

    /// Closes the gate once the readers inside have left; it reopens when the guard drops.
    fn close(&self) -> GateClosed<'_> {
        let mut g = self.lock();
        while g.closed {
            g = self.wait(g);
        }
        g.closed = true;
        while g.readers > 0 {
            g = self.wait(g);
        }
        GateClosed(self)
    }
}

struct GateClosed<'a>(&'a ReadGate);

impl Drop for GateClosed<'_> {
    fn drop(&mut self) {
        self.0.lock().closed = false;
        self.0.cv.notify_all();
    }
}

/// What the store, its txns and its compactor thread share.
pub(super) struct Shared {
    pub backend: Arc<Backend>,
    pub index: TreeIndex,
    pub metrics: Arc<Metrics>,
    pub config: KvStoreConfig,
    /// A `RwLock`: read txns only copy the two numbers out; write txns (at end) and
    /// compactions change them.
    pub revs: RwLock<Revs>,
    pub gate: ReadGate,
    /// Keys that exist at the current revision (the `mvcc_keys` gauge).
    pub live_keys: AtomicI64,
    /// The `meta` bucket's consistent index and term as of the last write txn that set them.
    pub consistent_index: AtomicU64,
    pub term: AtomicU64,
}

impl Shared {
    pub fn revs(&self) -> Revs {
        *self.revs_read()
    }

    fn revs_read(&self) -> RwLockReadGuard<'_, Revs> {
        // Writers of `revs` change two integers and nothing that can panic.
        self.revs.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn revs_mut(&self) -> RwLockWriteGuard<'_, Revs> {
        self.revs.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn publish_gauges(&self, revs: Revs) {
        self.metrics.mvcc_current_revision.set(revs.current);
        self.metrics.mvcc_compact_revision.set(revs.compacted);
        self.metrics
            .mvcc_keys
            .set(self.live_keys.load(Ordering::Relaxed));
    }
}

/// etcd's `HashKV` answer: a CRC-32C over the `key` bucket up to a revision, and the revisions
/// it is comparable at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvHash {
    pub hash: u32,
    /// The store's current revision when hashed.
    pub revision: i64,
    /// The store's compaction revision when hashed (-1 before the first).
    pub compact_revision: i64,
}

/// etcd's MVCC key-value store; see the module documentation. Share it behind an `Arc`;
/// dropping it stops the compactor (a compaction cut short resumes at the next open) but leaves
/// the backend open: its owner closes it.
pub struct KvStore {
    shared: Arc<Shared>,
    compactor: Compactor,
    /// Key → lease of every live key with a lease, as found at open, for the lessor to attach
    /// (etcd attaches them in `restore`; Glass's lessor comes later and takes them).
    restored_leases: Mutex<BTreeMap<Vec<u8>, i64>>,
}

impl std::fmt::Debug for KvStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let revs = self.shared.revs();
        f.debug_struct("KvStore")
            .field("backend", &self.shared.backend)
            .field("current", &revs.current)
            .field("compacted", &revs.compacted)
            .finish()
    }
}

/// What the `key` and `meta` buckets said at open.
struct Restored {
    revs: Revs,
    /// A compaction begun and not finished.
    scheduled: Option<i64>,
    leases: BTreeMap<Vec<u8>, i64>,
}

impl KvStore {
    /// Opens the store over `backend`: creates the buckets, rebuilds the index from the `key`
    /// bucket, restores the current and compaction revisions and the consistent index, and
    /// resumes a compaction the last run left unfinished (in the background; see
    /// [`compact_barrier`](Self::compact_barrier)).
    pub fn open(
        backend: Arc<Backend>,
        metrics: Arc<Metrics>,
        config: KvStoreConfig,
    ) -> Result<KvStore, MvccError> {
        {
            let mut tx = backend.batch_tx();
            tx.create_bucket(KEY_BUCKET)?;
            tx.create_bucket(META_BUCKET)?;
        }
        backend.force_commit()?;
        let shared = Arc::new(Shared {
            index: TreeIndex::new(metrics.clone()),
            backend,
            metrics,
            config,
            revs: RwLock::new(Revs {
                current: 1,
                compacted: -1,
            }),
            gate: ReadGate::default(),
            live_keys: AtomicI64::new(0),
            consistent_index: AtomicU64::new(0),
            term: AtomicU64::new(0),
        });
        let restored = restore(&shared)?;
        *shared.revs_mut() = restored.revs;
        shared.publish_gauges(restored.revs);
        let store = KvStore {
            compactor: Compactor::start(shared.clone())?,
            shared,
            restored_leases: Mutex::new(restored.leases),
        };
        if let Some(rev) = restored.scheduled {
            tracing::info!(revision = rev, "mvcc: resuming an unfinished compaction");
            // The handle is not needed: `compact_barrier` waits for it.
            store.compact(rev)?;
        }
        Ok(store)
    }

    /// A read txn at the current revision: a backend snapshot and the index. Waits only while
    /// a compaction moves its revision (see [`TxnRead`]).
    pub fn read(&self) -> TxnRead {
        self.shared.gate.enter();
        let revs = self.shared.revs_read();
        // Under `revs`: the snapshot holds every write of `revs.current`.
        let tx = self.shared.backend.read_tx();
        TxnRead::new(self.shared.clone(), tx, *revs)
    }

    /// A write txn: takes the backend's batch tx (waiting for other writers and compaction
    /// batches) and holds it until [`TxnWrite::end`] or drop. Never open one while this thread
    /// holds another, or call [`compact`](Self::compact) while it is open: both wait for the
    /// batch tx this thread holds.
    pub fn write(&self) -> TxnWrite<'_> {
        TxnWrite::begin(&self.shared)
    }

    /// A read txn with one range.
    pub fn range(
        &self,
        key: &[u8],
        end: &[u8],
        opts: RangeOptions,
    ) -> Result<RangeResult, MvccError> {
        self.read().range(key, end, opts)
    }

    /// A write txn with one put; returns its revision.
    pub fn put(&self, key: &[u8], value: &[u8], lease: i64) -> Result<i64, MvccError> {
        let mut txn = self.write();
        let rev = txn.put(key, value, lease)?;
        txn.end();
        Ok(rev)
    }

    /// A write txn with one delete range; returns (keys deleted, revision).
    pub fn delete_range(&self, key: &[u8], end: &[u8]) -> Result<(i64, i64), MvccError> {
        let mut txn = self.write();
        let r = txn.delete_range(key, end)?;
        txn.end();
        Ok(r)
    }

    /// Keys in the key index: live ones and deleted ones a compaction has not removed yet.
    pub fn index_len(&self) -> usize {
        self.shared.index.len()
    }

    /// The revision of the last write txn that changed something.
    pub fn current_revision(&self) -> i64 {
        self.shared.revs().current
    }

    /// The last compaction's revision, -1 before the first.
    pub fn compacted_revision(&self) -> i64 {
        self.shared.revs().compacted
    }

    /// The index of the last raft entry whose changes are in the backend (0: none yet).
    pub fn consistent_index(&self) -> u64 {
        self.shared.consistent_index.load(Ordering::Acquire)
    }

    /// The term of that entry (0 when unknown: a file written by etcd 3.4).
    pub fn term(&self) -> u64 {
        self.shared.term.load(Ordering::Acquire)
    }

    /// The live keys with a lease, as found at open (key → lease id); the lessor attaches
    /// them. Empty after the first call.
    pub fn take_restored_leases(&self) -> BTreeMap<Vec<u8>, i64> {
        std::mem::take(
            &mut *self
                .restored_leases
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    pub fn backend(&self) -> &Arc<Backend> {
        &self.shared.backend
    }

    /// Compacts the history at `rev`: afterwards ranges below `rev` fail with
    /// [`MvccError::Compacted`], and every revision at or below it that a read at `rev` does
    /// not need is deleted from the backend — in the background, in batches, with pauses in
    /// between. The returned handle says when that physical part is done.
    ///
    /// Before returning it waits for the open read txns (etcd's `Compact` takes `mu`), moves
    /// the compaction revision, persists `scheduledCompactRev` (committed) and compacts the
    /// index. [`MvccError::Compacted`] when `rev` is at or below the last compaction,
    /// [`MvccError::FutureRev`] when above the current revision.
    pub fn compact(&self, rev: i64) -> Result<CompactionHandle, MvccError> {
        let sh = &self.shared;
        let timer = Timer::start();
        let span = tracing::debug_span!(
            names::MVCC_INDEX_COMPACTION,
            revision = rev,
            reader_wait_ns = Empty,
            kept = Empty
        );
        let _entered = span.enter();
        {
            let closed = sh.gate.close();
            span.record("reader_wait_ns", timer.elapsed_ns());
            let mut tx = sh.backend.batch_tx();
            let mut revs = sh.revs_mut();
            if rev <= revs.compacted {
                return Err(MvccError::Compacted);
            }
            if rev > revs.current {
                return Err(MvccError::FutureRev);
            }
            tx.put(
                META_BUCKET,
                SCHEDULED_COMPACT_KEY,
                &schema::encode_compact_rev(rev),
            )?;
            // Before the index compaction: a range that sees the compacted index also sees
            // this (see the module documentation).
            revs.compacted = rev;
            sh.metrics.mvcc_compact_revision.set(rev);
            drop(revs);
            drop(tx);
            drop(closed);
        }
        // The compaction must survive a crash from here on (readers need not wait for that).
        sh.backend.force_commit()?;
        let keep = sh.index.compact(rev);
        span.record("kept", keep.len());
        let handle = self.compactor.schedule(rev, keep);
        sh.metrics.mvcc_index_compaction.record(timer.elapsed_ns());
        Ok(handle)
    }

    /// A handle that is done when every compaction scheduled so far is (etcd's compact
    /// barrier).
    pub fn compact_barrier(&self) -> CompactionHandle {
        self.compactor.barrier()
    }

    /// etcd's `HashByRev`: CRC-32C of the bucket name `key` and then of every `key` bucket
    /// entry (key, value) up to revision `rev` (0: the current one), skipping revisions at or
    /// below the compaction that a read at `rev` does not need — so the hash does not depend
    /// on how far a physical compaction has got (unless no key is live at `rev`, where etcd
    /// hashes every entry below the compaction).
    pub fn hash_kv(&self, rev: i64) -> Result<KvHash, MvccError> {
        // A read txn: the index's keep set must stay that of the snapshot's compaction.
        let txn = self.read();
        let (revs, tx) = (txn.revs, &txn.tx);
        if rev > 0 && rev <= revs.compacted {
            return Err(MvccError::Compacted);
        }
        if rev > revs.current {
            return Err(MvccError::FutureRev);
        }
        let rev = if rev <= 0 { revs.current } else { rev };
        let keep = self.shared.index.keep(rev);
        let lower = Revision::new(revs.compacted + 1, 0);
        let upper = Revision::new(rev + 1, 0);
        let mut hash = crc32c::crc32c_append(0, KEY_BUCKET);
        let mut bad = None;
        tx.for_each(KEY_BUCKET, |k, v| {
            let kr = match Revision::from_bytes(k) {
                Ok(kr) => kr,
                Err(e) => {
                    bad.get_or_insert(e);
                    return;
                }
            };
            if kr >= upper || (kr < lower && !keep.is_empty() && !keep.contains(&kr)) {
                return;
            }
            hash = crc32c::crc32c_append(hash, k);
            hash = crc32c::crc32c_append(hash, v);
        })?;
        if let Some(e) = bad {
            return Err(e);
        }
        Ok(KvHash {
            hash,
            revision: revs.current,
            compact_revision: revs.compacted,
        })
    }
}

/// etcd's `restore`: reads the compaction revisions and the consistent index from `meta`, and
/// rebuilds the index from the `key` bucket in revision order, a chunk at a time.
fn restore(sh: &Shared) -> Result<Restored, MvccError> {
    let timer = Timer::start();
    let span = tracing::debug_span!(
        names::MVCC_RESTORE,
        entries = Empty,
        keys = Empty,
        revision = Empty,
        compact_revision = Empty
    );
    let _entered = span.enter();
    let tx = sh.backend.read_tx();
    let meta = |key: &[u8]| tx.get(META_BUCKET, key);
    let finished = meta(FINISHED_COMPACT_KEY)?
        .map(|v| schema::decode_compact_rev("finishedCompactRev", &v))
        .transpose()?;
    let scheduled = meta(SCHEDULED_COMPACT_KEY)?
        .map(|v| schema::decode_compact_rev("scheduledCompactRev", &v))
        .transpose()?;
    let ci = meta(CONSISTENT_INDEX_KEY)?
        .map(|v| schema::decode_u64("consistent_index", &v))
        .transpose()?;
    let term = meta(TERM_KEY)?
        .map(|v| schema::decode_u64("term", &v))
        .transpose()?;
    sh.consistent_index
        .store(ci.unwrap_or(0), Ordering::Release);
    sh.term.store(term.unwrap_or(0), Ordering::Release);

    let mut keys: BTreeMap<Vec<u8>, KeyIndex> = BTreeMap::new();
    let mut leases: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
    let mut current = 1;
    let mut entries = 0usize;
    let chunk_len = sh.config.restore_chunk_keys.max(1);
    let mut from = Revision::new(1, 0).to_bytes();
    let to = Revision::new(i64::MAX, i64::MAX).to_bytes();
    loop {
        let chunk = tx.range(KEY_BUCKET, &from, &to, chunk_len)?;
        for (k, v) in &chunk {
            let BucketKey {
                revision,
                tombstone,
            } = BucketKey::from_bytes(k)?;
            let kv = schema::decode_kv(revision, v)?;
            current = revision.main;
            if tombstone {
                leases.remove(&kv.key);
                // A tombstone whose put a compaction already deleted (or of a key not live)
                // has nothing to end: etcd skips it too.
                if let Some(ki) = keys.get_mut(&kv.key) {
                    match ki.tombstone(revision) {
                        Ok(()) | Err(MvccError::RevisionNotFound) => {}
                        Err(e) => return Err(e),
                    }
                }
                continue;
            }
            if kv.lease != 0 {
                leases.insert(kv.key.clone(), kv.lease);
            } else {
                leases.remove(&kv.key);
            }
            match keys.get_mut(&kv.key) {
                Some(ki) => ki.put(revision)?,
                None => {
                    let mut ki = KeyIndex::new();
                    ki.restore(Revision::new(kv.create_revision, 0), revision, kv.version)?;
                    keys.insert(kv.key, ki);
                }
            }
        }
        entries += chunk.len();
        match chunk.last() {
            Some((k, _)) if chunk.len() == chunk_len => {
                let last = Revision::from_bytes(k)?;
                from = Revision::new(last.main, last.sub + 1).to_bytes();
            }
            _ => break,
        }
    }

    let live = keys
        .values()
        .filter(|ki| ki.generations().last().is_some_and(|g| !g.is_empty()))
        .count();
    sh.live_keys.store(live as i64, Ordering::Relaxed);
    let key_count = keys.len();
    for (key, ki) in keys {
        sh.index.insert(key, ki);
    }

    let compacted = finished.unwrap_or(-1);
    let scheduled = scheduled.filter(|&s| s > compacted);
    // Compaction may have deleted every revision up to the compaction revision (all of them
    // tombstones or overwritten), and an unfinished one every revision up to the scheduled
    // revision: the current revision is at least both. (etcd only does the first.)
    let current = current.max(compacted).max(scheduled.unwrap_or(0));
    span.record("entries", entries);
    span.record("keys", key_count);
    span.record("revision", current);
    span.record("compact_revision", compacted);
    sh.metrics.mvcc_restore.record(timer.elapsed_ns());
    tracing::info!(
        current,
        compacted,
        keys = key_count,
        consistent_index = ci.unwrap_or(0),
        "mvcc: store restored"
    );
    Ok(Restored {
        revs: Revs { current, compacted },
        scheduled,
        leases,
    })
}

/// The value of one revision as a read txn's snapshot holds it.
pub(super) fn snapshot_value(tx: &ReadTx, rev: Revision) -> Result<Option<Vec<u8>>, MvccError> {
    Ok(tx.get(KEY_BUCKET, &rev.to_bytes())?)
}
