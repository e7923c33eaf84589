//! The bbolt-format engine: etcd's BoltDB, file-compatible, written in Rust.
//!
//! Contract: a single file of fixed-size pages holding a B+tree of buckets, readable and
//! writable by bbolt 1.3 (file format version 2) and back. One read-write transaction at a time
//! and any number of read-only ones, each on a consistent snapshot; a committed transaction
//! survives a crash at any point; a damaged file is reported, never trusted blindly, and never
//! makes the process panic.
//!
//! # Layout
//! - `page` — page header, branch/leaf elements, bucket values, freelist page (byte tables);
//! - `meta` — the two meta pages, FNV-1a checksums, choosing the valid one;
//! - `file` — the [`FileBackend`] seam: an mmap'd OS file, and an in-memory file with crash
//!   injection;
//! - `freelist/` — the free-page set: bbolt's sorted array and the segregated hashmap, one trait,
//!   pending pages per txid;
//! - `node` — pages decoded for change in a write tx; split and merge;
//! - `cursor` — ordered iteration over pages and nodes;
//! - `tx` — transactions: buckets, get/put/delete, rebalance, spill and commit;
//! - `db` — opening, metas, the write lock, readers and page release, growing and remapping;
//! - `check` — consistency check, dump and statistics;
//! - `tool` — `compact` and `bench`, behind `glassd bolt`.
//!
//! Every layer above uses this one through the `backend` module only.

mod check;
mod cursor;
mod db;
mod error;
mod file;
pub mod freelist;
mod meta;
mod node;
mod page;
pub mod tool;
mod tx;

pub use check::{check, check_path, dump, file_stats, BucketStats, CheckReport, FileStats};
pub use cursor::{Cursor, Entry};
pub use db::{Db, DbStats, Options};
pub use error::{Error, Result};
pub use file::{FileBackend, MemFile, OsFile, View};
pub use freelist::{Freelist, FreelistType};
pub use meta::{Meta, PGID_NO_FREELIST};
pub use tx::{CommitStats, Tx, DEFAULT_FILL_PERCENT};

/// A page id: the page's offset in the file divided by the page size.
pub type Pgid = u64;
/// A transaction id; each committed write tx gets the next one.
pub type Txid = u64;
/// A bucket handle, valid within the transaction that opened it.
pub type BucketId = usize;
