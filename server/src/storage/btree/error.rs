//! Errors of the bbolt-format engine.

use std::path::PathBuf;

use super::freelist::FreelistError;
use super::Pgid;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}: database file is locked by another process")]
    Locked(PathBuf),
    #[error("not a bbolt database: {0}")]
    NotBolt(String),
    #[error("invalid meta page {page}: {reason}")]
    InvalidMeta { page: Pgid, reason: String },
    #[error("page size mismatch: the file has {file} byte pages, expected {expected}")]
    PageSizeMismatch { file: u32, expected: u32 },
    #[error("page {page}: {reason}")]
    Corrupt { page: Pgid, reason: String },
    #[error("freelist: {0}")]
    Freelist(#[from] FreelistError),
    #[error("database is read-only")]
    ReadOnly,
    #[error("tx not writable")]
    TxNotWritable,
    #[error("bucket not found")]
    BucketNotFound,
    #[error("bucket already exists")]
    BucketExists,
    #[error("bucket name required")]
    BucketNameRequired,
    #[error("key required")]
    KeyRequired,
    #[error("key too large")]
    KeyTooLarge,
    #[error("value too large")]
    ValueTooLarge,
    #[error("incompatible value")]
    IncompatibleValue,
    #[error("a commit failed part way; the database must be reopened")]
    Poisoned,
    #[error("database is closed")]
    Closed,
}

impl Error {
    pub(crate) fn corrupt(page: Pgid, reason: impl Into<String>) -> Error {
        Error::Corrupt {
            page,
            reason: reason.into(),
        }
    }
}
