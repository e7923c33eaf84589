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
}

pub type Result<T, E = BackendError> = std::result::Result<T, E>;
