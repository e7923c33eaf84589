//! etcd's MVCC layer (`server/storage/mvcc`): the key space as a history of revisions.
//!
//! Contract:
//! - **Revisions**: every write txn that changes something gets the next `main` revision, each
//!   change in it its own `sub`; a value is stored in the backend's `key` bucket under its
//!   revision (17 bytes, 18 with the tombstone mark), never under its user key. An empty store
//!   is at revision 1; its first write is revision 2 (as in etcd).
//! - **One request, one critical section**: a [`TxnWrite`] holds the backend's batch tx from
//!   begin to end; its ranges see its own changes; [`TxnWrite::set_consistent_index`] writes the
//!   raft index it applies in the same batch tx, so data and index reach the file together.
//! - **Reads at any revision** since the last compaction: a [`TxnRead`] is a revision and a
//!   backend snapshot taken together, never waiting for writers (a compaction waits for open
//!   read txns before it moves the compaction revision, as etcd's `mu` does). The in-memory [`TreeIndex`]
//!   maps each user key to the revisions of its values, in [`KeyIndex`] generations (creation
//!   to deletion), and answers "which revision holds key K as of revision R" without touching
//!   the backend. A range below the compaction is [`MvccError::Compacted`], above the current
//!   revision [`MvccError::FutureRev`].
//! - **Compaction** at R drops every revision at or below R except, per key, the one a read at R
//!   still needs (not a tombstone): the index at once, the backend in the background, in
//!   batches with pauses so writers go on ([`KvStore::compact`], [`CompactionHandle`]).
//! - **Restart**: the index is never persisted; [`KvStore::open`] rebuilds it from the `key`
//!   bucket, restores the revisions and the consistent index from `meta`, and finishes a
//!   compaction the last run left half done. The on-disk layout is etcd's (see `schema`).
//!
//! Measurements: `mvcc.put`, `mvcc.range`, `mvcc.delete`, `mvcc.txn` (a write txn's hold of
//! the batch tx), `mvcc.index_compaction`, `mvcc.compaction`, `mvcc.compaction_pause` (one
//! batch of deletes, what writers wait behind), `mvcc.restore`; `mvcc.treeindex_lock_wait` and
//! `mvcc.treeindex_lock_hold` (every acquisition of the index lock). Gauges `mvcc_keys`,
//! `mvcc_current_revision`, `mvcc_compact_revision`; counter `mvcc_compaction_keys`.
//!
//! # Layout
//! - `revision` — [`Revision`] and the `key` bucket key format (byte table), [`BucketKey`];
//! - `key_index` — [`KeyIndex`]: one key's generations; put, tombstone, get, since, compact,
//!   keep — with etcd's worked examples as test tables;
//! - `index` — [`TreeIndex`]: every key's key index in key order behind one measured lock;
//!   get, range, revisions, range_since, compact, keep;
//! - `schema` — the `key` and `meta` buckets (byte table): names, value encodings;
//! - `kv_store` — [`KvStore`]: open and restore, read and write txns, compact, hash;
//! - `txn` — [`TxnRead`], [`TxnWrite`], [`RangeOptions`], [`RangeResult`];
//! - `compaction` — the compactor thread deleting compacted revisions in batches;
//! - `error` — [`MvccError`].
//!
//! Calls go down only: the server above uses [`KvStore`]; the store uses the index and the
//! backend.

mod compaction;
mod error;
mod index;
mod key_index;
mod kv_store;
mod revision;
pub mod schema;
mod txn;

pub use compaction::CompactionHandle;
pub use error::{MvccError, SharedBackendError};
pub use index::TreeIndex;
pub use key_index::{Available, Generation, KeyIndex};
pub use kv_store::{
    KvHash, KvStore, KvStoreConfig, DEFAULT_COMPACTION_BATCH_LIMIT, DEFAULT_COMPACTION_PAUSE,
    DEFAULT_RESTORE_CHUNK_KEYS,
};
pub use revision::{
    is_tombstone, mark_tombstone, BucketKey, Revision, MARKED_REV_BYTES_LEN, MARK_TOMBSTONE,
    REV_BYTES_LEN,
};
pub use txn::{RangeOptions, RangeResult, TxnRead, TxnWrite};
