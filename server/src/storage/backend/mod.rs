//! etcd's backend layer (`server/storage/backend`) over the bbolt-format engine.
//!
//! Contract:
//! - **Batching**: writes go through one [`BatchTx`] that stays open across many callers and
//!   commits every `batch_interval` (default 100 ms) or once `batch_limit` writes (default
//!   10000) are pending — both changeable while running. A commit is one group fdatasync.
//! - **Fully concurrent reads** (etcd 3.4): a [`ReadTx`] sees every write already made through
//!   the batch tx, committed or not (a read buffer holds the uncommitted ones), and never waits
//!   for a commit or for the batch tx lock.
//! - **Defragmentation** into a fresh file, swapped in atomically; size, size in use, hash.
//!
//! Measurements: `backend.tx_lock_wait` (waiting for the batch tx), `backend.commit` (with
//! pages, bytes, writes and fsync time), plus the engine's own.
//!
//! # Layout
//! - `backend` — [`Backend`]: the shared state, commit loop, defrag, sizes and hash;
//! - `batch_tx` — [`BatchTx`], the write side, and its write buffer;
//! - `read_tx` — [`ReadTx`] and the read buffer it merges with the committed state;
//! - `error` — [`BackendError`].

#[allow(clippy::module_inception)]
mod backend;
mod batch_tx;
mod error;
mod read_tx;

pub use backend::{Backend, BackendConfig, DEFAULT_BATCH_INTERVAL, DEFAULT_BATCH_LIMIT};
pub use batch_tx::BatchTx;
pub use error::BackendError;
pub use read_tx::ReadTx;
