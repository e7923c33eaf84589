//! Errors of the backend layer.

use crate::storage::btree;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    #[error(transparent)]
    Bolt(#[from] btree::Error),
    #[error("bucket {0:?} does not exist")]
    NoBucket(String),
    #[error("defrag: {0}")]
    Defrag(String),
    #[error("backend is closed")]
    Closed,
    /// A commit failed, or the layer above found its writes inconsistent: nothing more is
    /// committed (the writes since the last commit may be partial), as etcd exits on a failed
    /// commit. Reopen the file to go on from the last good commit.
    #[error("backend failed, nothing more is committed: {0}")]
    Failed(String),
}

pub type Result<T, E = BackendError> = std::result::Result<T, E>;
