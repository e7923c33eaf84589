//! Errors of the MVCC layer. The first three carry etcd's exact messages: clients match on them
//! (`etcdserver: mvcc: required revision has been compacted` is what etcdctl prints).

use super::Revision;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MvccError {
    /// The revision asked for is at or below the last compaction: its history is gone.
    #[error("mvcc: required revision has been compacted")]
    Compacted,
    /// The revision asked for is above the store's current revision.
    #[error("mvcc: required revision is a future revision")]
    FutureRev,
    /// The key does not exist at the revision asked for (never created, deleted, or not yet
    /// created), or a tombstone was asked for a key that is not live.
    #[error("mvcc: revision not found")]
    RevisionNotFound,
    /// A put or tombstone whose revision is not after the key's last modification. etcd panics
    /// here; it can only come from a bug above (revisions are handed out in order), so it is
    /// refused and the index stays as it was.
    #[error("mvcc: revision {given} is not after the key's last modification {modified}")]
    RevisionNotIncreasing { given: Revision, modified: Revision },
    /// `restore` into a key index that already has revisions (etcd panics here too).
    #[error("mvcc: restore into a key index that already holds revisions")]
    RestoreNonEmpty,
    /// A `key` bucket key that is not 17 bytes (or 18 with the tombstone mark) in etcd's
    /// revision format: a damaged file, reported instead of trusted.
    #[error("mvcc: malformed revision key {0:02x?}")]
    MalformedRevision(Vec<u8>),
}
