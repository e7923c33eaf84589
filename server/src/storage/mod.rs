//! Storage layers, from the bottom up: `btree` (the bbolt-format file), `backend` (etcd's
//! batching layer over it), `mvcc` (the revisioned key-value store over the backend: txns,
//! the in-memory key index, compaction) and `wal` (etcd's write-ahead log).

pub mod backend;
pub mod btree;
pub mod mvcc;
pub mod wal;
