//! Storage layers, from the bottom up: `btree` (the bbolt-format file), `backend` (etcd's
//! batching layer over it), `mvcc` (revisions and the in-memory key index; the revisioned
//! key-value store over the backend comes with the server) and `wal` (etcd's write-ahead log).

pub mod backend;
pub mod btree;
pub mod mvcc;
pub mod wal;
