//! etcd's MVCC layer (`server/storage/mvcc`): the key space as a history of revisions.
//!
//! Contract:
//! - **Revisions**: every committed change set gets the next `main` revision, each key it
//!   touches its own `sub`; a value is stored in the backend's `key` bucket under its revision
//!   (17 bytes, 18 with the tombstone mark), never under its user key.
//! - **Reads at any revision** since the last compaction: the in-memory [`TreeIndex`] maps each
//!   user key to the revisions of its values, in [`KeyIndex`] generations (creation to
//!   deletion), and answers "which revision holds key K as of revision R" without touching the
//!   backend. A read below the compaction is [`MvccError::Compacted`], above the current
//!   revision [`MvccError::FutureRev`].
//! - **Compaction** at R drops every revision at or below R except, per key, the one a read at R
//!   still needs (not a tombstone); the index returns that set ([`Available`]) so the backend
//!   deletes everything else.
//! - The index is rebuilt from the backend at start-up ([`TreeIndex::restore`]); it is never
//!   persisted itself.
//!
//! Measurements: `mvcc.treeindex_lock_wait` and `mvcc.treeindex_lock_hold` (every acquisition
//! of the index lock, with the operation and the lock mode).
//!
//! # Layout
//! - `revision` — [`Revision`] and the `key` bucket key format (byte table), [`BucketKey`];
//! - `key_index` — [`KeyIndex`]: one key's generations; put, tombstone, get, since, compact,
//!   keep — with etcd's worked examples as test tables;
//! - `index` — [`TreeIndex`]: every key's key index in key order behind one measured lock;
//!   get, range, revisions, range_since, compact, keep;
//! - `error` — [`MvccError`].
//!
//! Calls go down only: the key-value store above (kv store, txns, compaction, watchable store)
//! uses this index and the backend; nothing here calls up or touches the backend.

mod error;
mod index;
mod key_index;
mod revision;

pub use error::MvccError;
pub use index::TreeIndex;
pub use key_index::{Available, Generation, KeyIndex};
pub use revision::{
    is_tombstone, mark_tombstone, BucketKey, Revision, MARKED_REV_BYTES_LEN, MARK_TOMBSTONE,
    REV_BYTES_LEN,
};
