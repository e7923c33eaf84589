//! Errors of the raft layer: its storage (WAL, snapshot files, the raftpb encoding) and
//! raft-rs itself.

use std::path::PathBuf;

use crate::storage::wal::WalError;

use super::codec::CodecError;

pub type Result<T, E = RaftError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RaftError {
    #[error(transparent)]
    Wal(#[from] WalError),
    /// raft-rs refused something (a step, a conf change) or failed.
    #[error("raft: {0}")]
    Raft(#[from] ::raft::Error),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Bytes read back from the WAL or a snapshot file that are not the raftpb message they
    /// should be.
    #[error("{what}: {source}")]
    Codec {
        what: String,
        #[source]
        source: CodecError,
    },
    /// etcd's `snap.ErrEmptySnapshot`: a snapshot file with no data or no CRC.
    #[error("{0}: empty snapshot")]
    EmptySnapshot(PathBuf),
    /// etcd's `snap.ErrCRCMismatch`.
    #[error(
        "{path}: snapshot crc mismatch (file says {stored:#010x}, data gives {computed:#010x})"
    )]
    SnapshotCrcMismatch {
        path: PathBuf,
        stored: u32,
        computed: u32,
    },
    /// The WAL's metadata names another member than the one starting on it.
    #[error("the WAL belongs to member {found:x}, not {expected:x}")]
    MemberMismatch { found: u64, expected: u64 },
    /// The applier reports an index past the end of the raft log: the WAL lost entries that
    /// the backend has applied.
    #[error("the applied index {applied} is past the last raft log index {last}")]
    AppliedAhead { applied: u64, last: u64 },
    /// etcd 3.4 never writes joint-consensus (v2) conf changes; Glass does not apply them yet.
    #[error("entry {index}: EntryConfChangeV2 is not supported")]
    ConfChangeV2 { index: u64 },
    /// A snapshot asked for at an index raft cannot take it at.
    #[error("cannot snapshot at index {index}: {reason}")]
    BadSnapshotIndex { index: u64, reason: &'static str },
}

impl RaftError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RaftError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn codec(what: impl Into<String>, source: CodecError) -> Self {
        RaftError::Codec {
            what: what.into(),
            source,
        }
    }
}
