//! The etcd server layer: proposals in, the raft log's committed entries out to the applier,
//! results back to the waiting callers (etcd's `etcdserver`).
//!
//! Contract: a proposal's caller gets the applier's result for its request id, or etcd's
//! `etcdserver: request timed out` — never a success for an entry that is not committed, and
//! an entry whose commit was acknowledged survives a crash. Committed entries reach the
//! applier in log order, each exactly once per process; after a restart, from the index
//! after the applier's reported applied (consistent) index. A linearizable read waits until
//! the applier has applied everything committed when it was asked. Every `snapshot_count`
//! applied entries the applier asks for a snapshot, which compacts the log and lets old WAL
//! segments and snapshot files go.
//!
//! Calls go down only: `server` → `raft_node` → `raft` (storage, snapshot files, codec) →
//! `storage::wal`; `apply` → `storage::mvcc`; `alarm` → `storage::backend` (etcd's alarm bucket).
//!
//! # Layout
//! - `server` — [`EtcdServer`]: opens the data directory, starts raft and the applier, serves
//!   the KV requests (proposals and local reads), status, members, hashes, defragment;
//! - `apply` — the applier thread and etcd's request semantics (range sort/filter/limit, put
//!   flags, txn compares and nested txns, quota), shared by writes and local reads;
//! - `compactor` — auto compaction, periodic or by revisions ([`AutoCompaction`]);
//! - `alarm` — [`Alarms`], etcd's alarm store; `quota` — [`Quota`], the backend quota;
//! - `member` — [`Member`] and etcd's member and cluster ids;
//! - `raft_node` — [`RaftNode`]: the raft thread and its Ready loop; propose, read index,
//!   snapshot, status; the [`Apply`] batches and the applier's end of their channel;
//! - `wait` — [`Wait`], etcd's `pkg/wait` registry of callers by request id, and
//!   [`RequestIds`], etcd's `idutil` generator;
//! - `error` — [`ServerError`], with etcd's messages.
//!
//! (Next: batching linearizable reads into one read index, as etcd's `linearizableReadLoop`.)

mod alarm;
mod apply;
mod compactor;
mod error;
mod member;
mod quota;
mod raft_node;
mod server;
mod wait;

pub use alarm::{Alarms, ALARM_BUCKET};
pub use apply::{Applied, ApplyResult};
pub use compactor::{
    run_watched as compactor_run_watched, AutoCompaction, Compactable, REVISION_INTERVAL,
};
pub use member::{cluster_id, json_string, member_id, Member};
pub use quota::Quota;
pub(crate) use server::read_locally;
pub use server::{EtcdServer, ServerConfig, ServerStatus, CLUSTER_VERSION, ETCD_VERSION};

pub use error::{Result, ServerError};
pub use raft_node::{
    Apply, ApplyNotify, ApplyRx, Committed, ProposalHandle, RaftNode, RaftNodeConfig,
    ReadIndexHandle, SnapshotHandle, Status, Ticks, DEFAULT_APPLY_QUEUE, DEFAULT_SNAPSHOT_COUNT,
    MAX_BATCH,
};
pub use wait::{RequestIds, Wait, Waiter};
