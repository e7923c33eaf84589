//! glassd: an etcd-compatible key-value server that shows where every millisecond goes.
//!
//! # Layout
//! The modules follow etcd's layers; calls only go down:
//!
//! ```text
//!   api                            etcd's wire types (the gRPC services: next issue)
//!    └ etcdserver                  the raft node (Ready loop thread), propose and wait,
//!       │                          read index, the apply channel (apply: next issue)
//!       ├ raft                     raft-rs storage over the WAL, .snap files, raftpb codec
//!       │  └ storage::wal          etcd's WAL format: segments, chained CRC, repair
//!       └ storage::mvcc, lease     the revisioned kv store: txns, treeIndex, compaction
//!          └ storage::backend      batch tx, concurrent reads, defrag, hash
//!             └ storage::btree     the bbolt-format file: pages, freelists, transactions
//! ```
//!
//! Beside the layers, `config` reads etcd's flags, `ETCD_*` variables and YAML config file into
//! a validated [`config::Config`] that `main` hands to the server.
//!
//! Every layer records its measurements through the `telemetry` crate's vocabulary: an
//! always-on histogram and a `tracing` span per measurement.

pub mod api;
pub mod config;
pub mod etcdserver;
pub mod pb;
pub mod raft;
pub mod storage;
