//! Errors of the write-ahead log.
//!
//! Damage is always reported with the segment's path and the byte offset of the frame where
//! reading stopped, so that an operator can look at (or cut) exactly that spot.

use std::path::PathBuf;

pub type Result<T, E = WalError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}: WAL segment is locked by another process")]
    Locked(PathBuf),
    #[error("{0}: a WAL already exists there")]
    Exists(PathBuf),
    #[error("{dir}: no WAL segment holds index {index}")]
    FileNotFound { dir: PathBuf, index: u64 },
    #[error("{dir}: WAL segments out of sequence: {reason}")]
    BadSequence { dir: PathBuf, reason: String },
    /// A record that is damaged, and not a torn write at the tail of the log.
    #[error("{path} at byte {offset}: corrupt WAL record: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("{path} at byte {offset}: crc mismatch (record says {stored:#010x}, data gives {computed:#010x})")]
    CrcMismatch {
        path: PathBuf,
        offset: u64,
        stored: u32,
        computed: u32,
    },
    #[error("{path} at byte {offset}: conflicting metadata found")]
    MetadataConflict { path: PathBuf, offset: u64 },
    #[error("{path} at byte {offset}: snapshot mismatch: index {index} has term {found} in the WAL, expected {expected}")]
    SnapshotMismatch {
        path: PathBuf,
        offset: u64,
        index: u64,
        found: u64,
        expected: u64,
    },
    #[error("snapshot (index {index}, term {term}) not found in the WAL")]
    SnapshotNotFound { index: u64, term: u64 },
    /// An entry leaves a gap after the entries before it (etcd: `ErrSliceOutOfRange`).
    #[error("{path} at byte {offset}: entry {index} leaves a gap (expected at most {max})")]
    EntryGap {
        path: PathBuf,
        offset: u64,
        index: u64,
        max: u64,
    },
    #[error("{path} at byte {offset}: unexpected record type {kind}")]
    UnexpectedRecordType {
        path: PathBuf,
        offset: u64,
        kind: i64,
    },
    /// The caller handed `save` something that is not what it claims to be.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("the WAL is not open for appending (call read_all first, once)")]
    NotAppending,
    #[error("the WAL has already been read")]
    AlreadyRead,
    #[error("a write to the WAL failed part way; the WAL must be reopened")]
    Poisoned,
}

impl WalError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        WalError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(
        path: impl Into<PathBuf>,
        offset: u64,
        reason: impl Into<String>,
    ) -> Self {
        WalError::Corrupt {
            path: path.into(),
            offset,
            reason: reason.into(),
        }
    }

    /// The byte offset the error names, when it names one.
    pub fn offset(&self) -> Option<u64> {
        match self {
            WalError::Corrupt { offset, .. }
            | WalError::CrcMismatch { offset, .. }
            | WalError::MetadataConflict { offset, .. }
            | WalError::SnapshotMismatch { offset, .. }
            | WalError::EntryGap { offset, .. }
            | WalError::UnexpectedRecordType { offset, .. } => Some(*offset),
            _ => None,
        }
    }
}
