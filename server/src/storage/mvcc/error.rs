//! Errors of the MVCC layer. The first two carry etcd's exact messages: clients match on them
//! (`etcdserver: mvcc: required revision has been compacted` is what etcdctl prints).

use std::fmt;
use std::sync::Arc;

use super::Revision;
use crate::storage::backend::BackendError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MvccError {
    /// The revision asked for is gone: a range below the last compaction, or a compaction at or
    /// below it.
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
    /// A `key` bucket value that is not an encoded `mvccpb.KeyValue` (etcd exits here).
    #[error("mvcc: value at revision {revision} is not a KeyValue: {reason}")]
    MalformedValue { revision: Revision, reason: String },
    /// A `meta` bucket value of the wrong size (etcd would misread it or panic).
    #[error("mvcc: meta key {key:?} holds {len} bytes, want {want}")]
    MalformedMeta {
        key: &'static str,
        len: usize,
        want: usize,
    },
    /// The key index points at a revision the `key` bucket does not hold (etcd exits here:
    /// index and backend disagree).
    #[error("mvcc: revision {0} is in the key index but not in the backend")]
    MissingRevision(Revision),
    /// The store stopped before the work waited for was done (etcd's `ErrClosed`); a
    /// compaction cut short this way resumes when the store opens again.
    #[error("mvcc: closed")]
    Closed,
    /// The store could not start its compactor thread.
    #[error("mvcc: cannot start the compactor thread: {0}")]
    Thread(String),
    /// The backend below failed.
    #[error(transparent)]
    Backend(SharedBackendError),
}

impl From<BackendError> for MvccError {
    fn from(e: BackendError) -> Self {
        MvccError::Backend(SharedBackendError(Arc::new(e)))
    }
}

/// A [`BackendError`] shared by the clones of an [`MvccError`] (backend errors carry I/O
/// errors, which are not `Clone`). Two are equal when they are the same error.
#[derive(Debug, Clone)]
pub struct SharedBackendError(Arc<BackendError>);

impl SharedBackendError {
    pub fn get(&self) -> &BackendError {
        &self.0
    }
}

impl PartialEq for SharedBackendError {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for SharedBackendError {}

impl fmt::Display for SharedBackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for SharedBackendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}
