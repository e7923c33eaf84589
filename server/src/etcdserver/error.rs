//! Errors of the etcd server layer, with etcd's messages (`etcdserver/errors.go`): the API
//! layer returns these texts to clients unchanged.

use crate::raft::RaftError;
use crate::storage::backend::BackendError;
use crate::storage::mvcc::MvccError;

pub type Result<T, E = ServerError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// etcd's `ErrTimeout`: the result did not come in time. The request may still be applied
    /// later (or may already have been): the caller cannot know.
    #[error("etcdserver: request timed out")]
    Timeout,
    /// etcd's `ErrStopped`: the raft node is not running.
    #[error("etcdserver: server stopped")]
    Stopped,
    /// raft refused the proposal (etcd's `raft.ErrProposalDropped`): no leader here, or the
    /// entry was replaced by a new leader's before it committed.
    #[error("raft proposal dropped")]
    ProposalDropped,
    /// Two waiters registered the same request id (etcd's `pkg/wait` panics here).
    #[error("etcdserver: duplicate request id {0:x}")]
    DuplicateRequestId(u64),
    /// etcd's `ErrRequestTooLarge`: the encoded proposal is over `--max-request-bytes`.
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    /// etcd's `ErrKeyNotFound`: `ignore_value` / `ignore_lease` on a key that does not exist.
    #[error("etcdserver: key not found")]
    KeyNotFound,
    /// etcd's `lease.ErrLeaseNotFound` (every lease id, until leases exist).
    #[error("lease not found")]
    LeaseNotFound,
    /// etcd's `ErrNoSpace`: the backend quota is exhausted or the NOSPACE alarm is raised.
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    /// etcd's `ErrNoLeader`.
    #[error("etcdserver: no leader")]
    NoLeader,
    /// A request this server does not serve yet (a lease or auth request in the log).
    #[error("glass: {0} is not implemented yet")]
    Unimplemented(&'static str),
    /// The backend is behind the raft snapshot it restarts from: data the log no longer
    /// holds is missing (etcd: "failed to recover v3 backend from snapshot").
    #[error("etcdserver: the backend (consistent index {backend}) is behind the raft snapshot at index {snapshot}")]
    BackendBehindSnapshot { backend: u64, snapshot: u64 },
    /// The backend stopped committing (a failed commit, or an apply that failed half way).
    #[error("etcdserver: the backend failed: {0}")]
    BackendFailed(String),
    /// etcd's `ErrTooManyRequests`: the applier is too far behind the commit index.
    #[error("etcdserver: too many requests")]
    TooManyRequests,
    /// Something that cannot happen did (a response of the wrong kind, a damaged alarm bucket).
    #[error("etcdserver: internal error: {0}")]
    Internal(String),
    /// The configuration does not describe a member this server can start.
    #[error("{0}")]
    Config(String),
    /// The data directory cannot be used.
    #[error("etcdserver: {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Raft(#[from] RaftError),
    #[error(transparent)]
    Mvcc(#[from] MvccError),
    #[error(transparent)]
    Backend(#[from] BackendError),
}
