//! Errors of the etcd server layer, with etcd's messages (`etcdserver/errors.go`): the API
//! layer returns these texts to clients unchanged.

use crate::raft::RaftError;

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
    #[error(transparent)]
    Raft(#[from] RaftError),
}
