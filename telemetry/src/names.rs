//! One name per measurement, the same for the span and the histogram.
//!
//! Names are `layer.what`. Durations are in nanoseconds; sizes in the unit the name says.

/// What a measurement counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Nanoseconds,
    Pages,
    Bytes,
    Count,
}

impl Unit {
    /// The unit's short name, as the diagnostics stream spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Nanoseconds => "ns",
            Unit::Pages => "pages",
            Unit::Bytes => "bytes",
            Unit::Count => "count",
        }
    }
}

/// A named measurement with its help text (the `# HELP` line of its `glass_` Prometheus family,
/// see [`crate::prometheus`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measurement {
    pub name: &'static str,
    pub unit: Unit,
    pub help: &'static str,
}

macro_rules! measurements {
    ($($(#[$doc:meta])* $ident:ident = $name:literal, $unit:ident, $help:literal;)*) => {
        $( $(#[$doc])* pub const $ident: &str = $name; )*
        /// Every measurement, in declaration order.
        pub const ALL: &[Measurement] = &[
            $( Measurement { name: $name, unit: Unit::$unit, help: $help }, )*
        ];
    };
}

measurements! {
    /// Waiting for the backend's batch (write) tx lock. Span fields: `holder`.
    BACKEND_TX_LOCK_WAIT = "backend.tx_lock_wait", Nanoseconds,
        "Time spent waiting for the backend batch transaction lock.";
    /// A backend commit, end to end. Span fields: `pages`, `bytes`, `writes`, `fsync_ns`, `txid`.
    BACKEND_COMMIT = "backend.commit", Nanoseconds,
        "Time to commit a backend batch transaction (write pages, fdatasync, write meta, fdatasync).";
    /// The fdatasync calls inside a commit, measured on their own.
    BACKEND_COMMIT_FSYNC = "backend.commit_fsync", Nanoseconds,
        "Time spent in fdatasync during backend commits.";
    /// Publishing a write txn's buffered writes to readers when the batch tx lock is released
    /// (etcd's `txWriteBuffer.writeback`). Span fields: `writes`.
    BACKEND_WRITE_BUFFER = "backend.write_buffer", Nanoseconds,
        "Time to publish a write transaction's buffered writes to readers.";
    /// Pages written per commit.
    BACKEND_COMMIT_PAGES = "backend.commit_pages", Pages,
        "Pages written by a backend commit.";
    /// Waiting to (re)map the data file. Readers never hold up a remap in Glass (old mappings
    /// stay alive while a reader uses them), so this is the remap itself.
    BOLT_MMAP_REMAP = "bolt.mmap_remap", Nanoseconds,
        "Time to grow the data file and map it again.";
    /// Waiting for the bolt write tx lock (one writer at a time). Span fields: none.
    BOLT_RW_LOCK_WAIT = "bolt.rw_lock_wait", Nanoseconds,
        "Time spent waiting for the bolt read-write transaction lock.";
    /// One freelist allocation. Span fields: `run` (pages asked), `free_pages`, `algorithm`,
    /// `outcome` (`reused`, or `miss` when the file must grow instead).
    FREELIST_ALLOCATE = "freelist.allocate", Nanoseconds,
        "Time to find a run of free pages in the freelist.";
    /// Moving pages freed by finished txs into the free set. Span fields: `pages`, `algorithm`.
    FREELIST_RELEASE = "freelist.release", Nanoseconds,
        "Time to release pending pages into the free set.";
    /// Appending one batch of records to the WAL (encode and write; the fsync is measured on
    /// its own). Span fields: `records`, `bytes`.
    WAL_APPEND = "wal.append", Nanoseconds,
        "Time to append a batch of records to the WAL (encode and write, fsync excluded).";
    /// One fdatasync of the WAL's tail segment. Span fields: `bytes` (written since the last
    /// sync).
    WAL_FSYNC = "wal.fsync", Nanoseconds,
        "Time spent in fdatasync of WAL segments.";
    /// Waiting to take the MVCC key index (treeIndex) lock. Span fields: `op` (`get`, `range`,
    /// `range_since`, `revisions`, `count_revisions`, `put`, `tombstone`, `restore`, `insert`,
    /// `key_index`, `len`, `compact` — once per batch of keys —, `keep`, `equal`), `mode` (`read`,
    /// `write`), `wait_ns`.
    MVCC_TREEINDEX_LOCK_WAIT = "mvcc.treeindex_lock_wait", Nanoseconds,
        "Time spent waiting for the MVCC key index lock (read or write).";
    /// Holding the MVCC key index lock, from acquisition to release. Span fields: `op`, `mode`,
    /// `hold_ns`.
    MVCC_TREEINDEX_LOCK_HOLD = "mvcc.treeindex_lock_hold", Nanoseconds,
        "Time the MVCC key index lock is held (read or write).";
    /// One put in an MVCC write txn (backend write and key index update). Span fields:
    /// `key_bytes`, `value_bytes`, `revision` (main), `sub`, `version` (the key's, after the put).
    MVCC_PUT = "mvcc.put", Nanoseconds,
        "Time to put one key in an MVCC write transaction.";
    /// One range read, in a read or a write txn (key index lookup and backend reads). Span
    /// fields: `txn` (`read`, `write`), `rev` (asked; 0 = current), `limit`, `count_only`,
    /// `keys` (returned), `count` (in range), `key_bytes`.
    MVCC_RANGE = "mvcc.range", Nanoseconds,
        "Time to read a range of keys at a revision.";
    /// One delete range in an MVCC write txn (a tombstone per key). Span fields: `deleted`,
    /// `revision`.
    MVCC_DELETE = "mvcc.delete", Nanoseconds,
        "Time to delete a range of keys in an MVCC write transaction.";
    /// An MVCC write txn from begin to end: the backend batch tx lock is held all along, so
    /// this is one request's critical section. Span fields: `puts`, `deletes`, `ranges`,
    /// `changes`, `revision` (the store's, after the txn).
    MVCC_TXN = "mvcc.txn", Nanoseconds,
        "Time an MVCC write transaction holds the backend batch transaction.";
    /// The part of a compaction callers wait for: persisting the scheduled revision and
    /// compacting the key index (etcd's index compaction pause). Span fields: `revision`,
    /// `kept` (revisions the backend keeps at or below it).
    MVCC_INDEX_COMPACTION = "mvcc.index_compaction", Nanoseconds,
        "Time to schedule a compaction: persist the revision and compact the key index.";
    /// A whole physical compaction, from its first batch to `finishedCompactRev` (pauses
    /// included). Runs on the store's compactor thread. Span fields: `revision`, `batches`,
    /// `deleted`.
    MVCC_COMPACTION = "mvcc.compaction", Nanoseconds,
        "Time to delete compacted revisions from the backend, pauses between batches included.";
    /// One batch of a physical compaction: the batch tx lock, the deletes and the commit — what
    /// writers wait behind. Span fields: `revision`, `batch`, `scanned`, `deleted`.
    MVCC_COMPACTION_PAUSE = "mvcc.compaction_pause", Nanoseconds,
        "Time one compaction batch holds up writers (batch transaction lock, deletes, commit).";
    /// Rebuilding the key index from the backend when the store opens. Span fields: `entries`
    /// (of the key bucket), `keys`, `revision`, `compact_revision`.
    MVCC_RESTORE = "mvcc.restore", Nanoseconds,
        "Time to rebuild the MVCC key index from the backend at start-up.";
    /// One proposal, from the moment the raft node took it to the moment its entry was
    /// committed (measured by the leader, which knows the entry's index; the wait for room in
    /// the apply queue that follows is `raft.apply_queue`'s). Span fields: `index`, `term`.
    ///
    /// Since the per-request traces (b0e62b2) it ends when the Ready that commits the entry is
    /// handled, *before* the committed batch is queued for the applier; before that it also
    /// held the wait for room in the apply queue. Dashboards comparing across that change see
    /// it drop by that wait, which `raft.apply_queue` now shows.
    RAFT_PROPOSE_COMMIT = "raft.propose_commit", Nanoseconds,
        "Time from the raft node taking a proposal to its entry being committed (the Ready that commits it; the wait to hand it to the applier is not included: see raft.apply_queue).";
    /// Handling one raft Ready: messages, snapshot, committed entries, the WAL save (one per
    /// Ready), advance and the light ready. Span fields: `entries` (appended), `committed`,
    /// `messages`.
    RAFT_READY = "raft.ready", Nanoseconds,
        "Time to handle one raft Ready, WAL save included.";
    /// Time a batch of committed entries waited in the apply channel before the applier took
    /// it. Span fields: `entries`.
    RAFT_APPLY_QUEUE = "raft.apply_queue", Nanoseconds,
        "Time committed entries wait in the apply queue before the applier takes them.";
    /// Applying one committed entry to the state machine (etcd's `applyEntryNormal`): the MVCC
    /// write txn with its consistent index, or a compaction's scheduling. Span fields: `index`,
    /// `term`, `op` (`put`, `delete_range`, `txn`, `compaction`, `alarm`, `empty`, `conf_change`),
    /// `error`.
    ETCDSERVER_APPLY = "etcdserver.apply", Nanoseconds,
        "Time to apply one committed raft entry to the state machine.";
    /// A linearizable read's wait: asking raft for the read index and waiting until the applier
    /// has applied up to it. Span fields: `read_index`.
    ETCDSERVER_READ_INDEX = "etcdserver.read_index", Nanoseconds,
        "Time a linearizable read waits for the read index and its apply.";
    /// One unary gRPC request, from decoded request to encoded response. Span fields:
    /// `method`, `code`.
    API_UNARY = "api.unary", Nanoseconds,
        "Time to serve one unary gRPC request, end to end.";
}
