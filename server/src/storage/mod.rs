//! Storage layers, from the bottom up: `btree` (the bbolt-format file) and `backend` (etcd's
//! batching layer over it). The WAL, the MVCC store and the key index come with the server.

pub mod backend;
pub mod btree;
