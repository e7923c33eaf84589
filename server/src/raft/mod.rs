//! The raft layer: what raft-rs needs around it to run etcd's raft log on etcd's files.
//!
//! Contract: [`RaftStorage`] is raft-rs's [`::raft::Storage`]; everything raft reads from it
//! was first made durable in the WAL (`storage::wal`) and the snapshot files ([`snap`]), one
//! WAL save (one fdatasync) per Ready. Everything that reaches the disk is encoded as etcd
//! 3.4 encodes it ([`codec`]), so that etcd and Glass read each other's data directories:
//! WAL entries and hard states byte for byte, `.snap` files, `etcdserverpb.Metadata`, and the
//! bootstrap `ConfChangeAddNode` entries etcd writes for a new cluster. Opening a data
//! directory gives back the log, the hard state and the conf state, and where raft must
//! resume given the applier's applied index.
//!
//! The Ready loop that drives raft-rs over this storage is `etcdserver::raft_node` (as in
//! etcd, where `etcdserver/raft.go` drives `raft.Node`).
//!
//! # Layout
//! - `codec` — gogo-compatible `raftpb` encoding (Entry, HardState, ConfState, Snapshot,
//!   ConfChange with etcd's type numbers) from and to raft-rs's `eraftpb` types (byte table);
//! - `snap` — `member/snap/%016x-%016x.snap` files: save, load the newest usable, purge
//!   (byte table);
//! - `storage` — [`RaftStorage`]: the in-memory log over the WAL; open/bootstrap/recover,
//!   save, snapshot, compact, release and purge;
//! - `transport` — the [`Transport`] seam to peers (none yet: [`NoPeers`]);
//! - `logger` — raft-rs's `slog` records forwarded to `tracing`;
//! - `error` — [`RaftError`].

pub mod codec;
mod error;
mod logger;
pub mod snap;
mod storage;
mod transport;

pub use error::{RaftError, Result};
pub use logger::{logger, TracingDrain};
pub use snap::Snapshotter;
pub use storage::{
    Bootstrap, Opened, Peer, RaftStorage, StorageOptions, DEFAULT_CATCH_UP_ENTRIES,
    DEFAULT_MAX_FILES,
};
pub use transport::{NoPeers, Transport};
