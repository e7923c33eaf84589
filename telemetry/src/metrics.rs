//! [`Metrics`]: the histograms and counters every layer records to.
//!
//! One `Metrics` exists per process (per member in tests that run several); it is created by the
//! binary or the test and handed down the layers as an `Arc<Metrics>`.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use crate::{names, Histogram, Measurement};

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn inc(&self) {
        self.0.fetch_add(1, Relaxed);
    }
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    #[inline]
    pub fn set(&self, v: i64) {
        self.0.store(v, Relaxed);
    }
    /// Adds `d` (negative to subtract).
    #[inline]
    pub fn add(&self, d: i64) {
        self.0.fetch_add(d, Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Relaxed)
    }
}

/// Every always-on measurement of a Glass process.
#[derive(Debug, Default)]
pub struct Metrics {
    /// [`names::BACKEND_TX_LOCK_WAIT`]
    pub backend_tx_lock_wait: Histogram,
    /// [`names::BACKEND_COMMIT`]
    pub backend_commit: Histogram,
    /// [`names::BACKEND_COMMIT_FSYNC`]
    pub backend_commit_fsync: Histogram,
    /// [`names::BACKEND_WRITE_BUFFER`]
    pub backend_write_buffer: Histogram,
    /// [`names::BACKEND_COMMIT_PAGES`]
    pub backend_commit_pages: Histogram,
    /// [`names::BOLT_MMAP_REMAP`]
    pub bolt_mmap_remap: Histogram,
    /// [`names::BOLT_RW_LOCK_WAIT`]
    pub bolt_rw_lock_wait: Histogram,
    /// [`names::FREELIST_ALLOCATE`]
    pub freelist_allocate: Histogram,
    /// [`names::FREELIST_RELEASE`]
    pub freelist_release: Histogram,
    /// [`names::WAL_APPEND`]
    pub wal_append: Histogram,
    /// [`names::WAL_FSYNC`]
    pub wal_fsync: Histogram,
    /// [`names::MVCC_TREEINDEX_LOCK_WAIT`]
    pub mvcc_treeindex_lock_wait: Histogram,
    /// [`names::MVCC_TREEINDEX_LOCK_HOLD`]
    pub mvcc_treeindex_lock_hold: Histogram,
    /// [`names::MVCC_PUT`]
    pub mvcc_put: Histogram,
    /// [`names::MVCC_RANGE`]
    pub mvcc_range: Histogram,
    /// [`names::MVCC_DELETE`]
    pub mvcc_delete: Histogram,
    /// [`names::MVCC_TXN`]
    pub mvcc_txn: Histogram,
    /// [`names::MVCC_INDEX_COMPACTION`]
    pub mvcc_index_compaction: Histogram,
    /// [`names::MVCC_COMPACTION`]
    pub mvcc_compaction: Histogram,
    /// [`names::MVCC_COMPACTION_PAUSE`]
    pub mvcc_compaction_pause: Histogram,
    /// [`names::MVCC_RESTORE`]
    pub mvcc_restore: Histogram,
    /// [`names::RAFT_PROPOSE_COMMIT`]
    pub raft_propose_commit: Histogram,
    /// [`names::RAFT_READY`]
    pub raft_ready: Histogram,
    /// [`names::RAFT_APPLY_QUEUE`]
    pub raft_apply_queue: Histogram,
    /// [`names::ETCDSERVER_APPLY`]
    pub etcdserver_apply: Histogram,
    /// [`names::ETCDSERVER_READ_INDEX`]
    pub etcdserver_read_index: Histogram,
    /// [`names::API_UNARY`]
    pub api_unary: Histogram,

    /// Backend commits done.
    pub backend_commits: Counter,
    /// Bytes of pages written by commits.
    pub backend_commit_bytes: Counter,
    /// Allocations the freelist could not serve (the file grew instead).
    pub freelist_allocate_misses: Counter,
    /// Freelist allocations served by the array algorithm (hits and misses).
    pub freelist_allocate_array: Counter,
    /// Freelist allocations served by the hashmap algorithm (hits and misses).
    pub freelist_allocate_map: Counter,
    /// Size of the data file, bytes.
    pub backend_db_size: Gauge,
    /// Bytes of the data file holding live data (size less free pages).
    pub backend_db_size_in_use: Gauge,
    /// Free pages in the freelist at the last commit.
    pub freelist_free_pages: Gauge,
    /// Writes in the open batch, not committed yet.
    pub backend_pending_writes: Gauge,
    /// Revisions deleted from the backend by compactions.
    pub mvcc_compaction_keys: Counter,
    /// Keys that exist at the MVCC store's current revision.
    pub mvcc_keys: Gauge,
    /// The MVCC store's current revision.
    pub mvcc_current_revision: Gauge,
    /// The MVCC store's last compaction revision (-1 before the first).
    pub mvcc_compact_revision: Gauge,

    /// Raft entries committed by this process (etcd's `proposals_committed_total` is the commit
    /// index: [`Metrics::raft_commit_index`]).
    pub raft_proposals_committed: Counter,
    /// Raft entries the applier reported applied by this process.
    pub raft_proposals_applied: Counter,
    /// Proposals that failed: refused (no leader, node stopped), or timed out waiting for
    /// their result (counted where the caller learns it: `propose_and_wait`, as etcd does).
    pub raft_proposals_failed: Counter,
    /// Proposals waiting for their result.
    pub raft_proposals_pending: Gauge,
    /// Times this member saw the leader change (including to "no leader").
    pub raft_leader_changes: Counter,
    /// The current raft term.
    pub raft_term: Gauge,
    /// The raft commit index.
    pub raft_commit_index: Gauge,
    /// The index the applier last reported applied.
    pub raft_applied_index: Gauge,
    /// 1 while this member is the leader, else 0.
    pub raft_is_leader: Gauge,
    /// 1 while this member knows a leader, else 0.
    pub raft_has_leader: Gauge,

    /// The backend quota (`--quota-backend-bytes`, or etcd's default when 0).
    pub server_quota_backend_bytes: Gauge,
    /// Linearizable reads whose read index failed (timed out or the node stopped).
    pub server_read_indexes_failed: Counter,
    /// Entries whose apply took longer than etcd's 100 ms warning threshold.
    pub server_slow_apply: Counter,
    /// Spans the OTLP exporter dropped: its queue was full, or an export failed (collector down
    /// or too slow) or was partly rejected.
    pub spans_dropped: Counter,
    /// Requests not exported because `--trace-max-exports-per-second` was reached (their
    /// spans are also in `spans_dropped`).
    pub trace_exports_throttled: Counter,
    /// Requests slower than `--slow-request-threshold`.
    pub slow_requests: Counter,
    /// Unary gRPC requests handled, by method and status code.
    pub grpc_handled: GrpcCounts,
    /// Latency of each KV operation (what `api.unary` measures, per method).
    pub kv_latency: KvLatency,
}

/// The KV methods whose latency is kept per method ([`KvLatency`]).
pub const KV_METHODS: [&str; 5] = [
    "etcdserverpb.KV/Range",
    "etcdserverpb.KV/Put",
    "etcdserverpb.KV/DeleteRange",
    "etcdserverpb.KV/Txn",
    "etcdserverpb.KV/Compact",
];

/// A latency histogram per KV operation (etcd's `grpc_server_handling_seconds` for those
/// methods): `api.unary` is one histogram over every method, and a slow Txn must not hide
/// behind fast Ranges.
#[derive(Debug)]
pub struct KvLatency([Histogram; KV_METHODS.len()]);

impl Default for KvLatency {
    fn default() -> Self {
        KvLatency(std::array::from_fn(|_| Histogram::new()))
    }
}

impl KvLatency {
    /// `method`'s histogram (`etcdserverpb.KV/Put`), `None` for a method not in [`KV_METHODS`].
    pub fn get(&self, method: &str) -> Option<&Histogram> {
        // Every RPC asks: the methods that are not KV's leave at the prefix.
        let i = match method.strip_prefix("etcdserverpb.KV/")? {
            "Range" => 0,
            "Put" => 1,
            "DeleteRange" => 2,
            "Txn" => 3,
            "Compact" => 4,
            _ => return None,
        };
        Some(&self.0[i])
    }

    /// Every method of [`KV_METHODS`] with its histogram, in that order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Histogram)> {
        KV_METHODS.iter().copied().zip(self.0.iter())
    }
}

/// Requests handled per gRPC method and status code (etcd's `grpc_server_handled_total`).
#[derive(Debug, Default)]
pub struct GrpcCounts(std::sync::Mutex<std::collections::BTreeMap<(&'static str, i32), u64>>);

impl GrpcCounts {
    /// Counts one request to `method` (`etcdserverpb.KV/Put`) ending with gRPC code `code`.
    pub fn inc(&self, method: &'static str, code: i32) {
        // Nothing panics under this lock; a poisoned map is still a valid map.
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((method, code)).or_insert(0) += 1;
    }

    /// Every (method, code) seen, with its count, in order.
    pub fn snapshot(&self) -> Vec<(&'static str, i32, u64)> {
        let m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.iter()
            .map(|(&(meth, code), &n)| (meth, code, n))
            .collect()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Turns every histogram's recording on or off (`--glass-measurements=off` measures what
    /// the histograms cost). Plain counters and gauges keep counting, but the counts that are
    /// read from histograms stop with them: etcd's `etcd_mvcc_{put,range,delete}_total`, the
    /// `etcd_debugging_mvcc_*_total` counters and every `*_duration_seconds` family.
    pub fn set_histograms_recording(&self, on: bool) {
        for (_, h) in self.histograms() {
            h.set_recording(on);
        }
        for (_, h) in self.kv_latency.iter() {
            h.set_recording(on);
        }
    }

    /// Every histogram with its measurement, in [`names::ALL`] order.
    pub fn histograms(&self) -> Vec<(&'static Measurement, &Histogram)> {
        names::ALL
            .iter()
            .filter_map(|m| self.histogram(m.name).map(|h| (m, h)))
            .collect()
    }

    /// The histogram recording measurement `name`, if it is one.
    pub fn histogram(&self, name: &str) -> Option<&Histogram> {
        Some(match name {
            names::BACKEND_TX_LOCK_WAIT => &self.backend_tx_lock_wait,
            names::BACKEND_COMMIT => &self.backend_commit,
            names::BACKEND_COMMIT_FSYNC => &self.backend_commit_fsync,
            names::BACKEND_WRITE_BUFFER => &self.backend_write_buffer,
            names::BACKEND_COMMIT_PAGES => &self.backend_commit_pages,
            names::BOLT_MMAP_REMAP => &self.bolt_mmap_remap,
            names::BOLT_RW_LOCK_WAIT => &self.bolt_rw_lock_wait,
            names::FREELIST_ALLOCATE => &self.freelist_allocate,
            names::FREELIST_RELEASE => &self.freelist_release,
            names::WAL_APPEND => &self.wal_append,
            names::WAL_FSYNC => &self.wal_fsync,
            names::MVCC_TREEINDEX_LOCK_WAIT => &self.mvcc_treeindex_lock_wait,
            names::MVCC_TREEINDEX_LOCK_HOLD => &self.mvcc_treeindex_lock_hold,
            names::MVCC_PUT => &self.mvcc_put,
            names::MVCC_RANGE => &self.mvcc_range,
            names::MVCC_DELETE => &self.mvcc_delete,
            names::MVCC_TXN => &self.mvcc_txn,
            names::MVCC_INDEX_COMPACTION => &self.mvcc_index_compaction,
            names::MVCC_COMPACTION => &self.mvcc_compaction,
            names::MVCC_COMPACTION_PAUSE => &self.mvcc_compaction_pause,
            names::MVCC_RESTORE => &self.mvcc_restore,
            names::RAFT_PROPOSE_COMMIT => &self.raft_propose_commit,
            names::RAFT_READY => &self.raft_ready,
            names::RAFT_APPLY_QUEUE => &self.raft_apply_queue,
            names::ETCDSERVER_APPLY => &self.etcdserver_apply,
            names::ETCDSERVER_READ_INDEX => &self.etcdserver_read_index,
            names::API_UNARY => &self.api_unary,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_has_a_histogram() {
        let m = Metrics::new();
        assert_eq!(m.histograms().len(), names::ALL.len());
    }
}
