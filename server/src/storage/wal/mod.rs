//! The write-ahead log: etcd 3.4's WAL format, byte-compatible, so that Glass starts on a data
//! directory etcd wrote (`member/wal/`) and etcd on one Glass wrote.
//!
//! Contract: records saved by a call that returned `Ok` survive a crash (one fdatasync per
//! call, skipped only where raft's `MustSync` allows); reopening gives back the metadata, the
//! last hard state and the entries after a snapshot, with entries that raft overwrote dropped;
//! a torn write at the tail (a crash before the sync) is cut away; damage anywhere else —
//! a bad CRC, a flipped bit — is an error naming the file and the byte offset, never skipped.
//! The WAL stores `raftpb.Entry` and `raftpb.HardState` bytes as the raft layer encodes them;
//! it reads only an entry's index and term, and a hard state's term and vote.
//!
//! # Layout
//! - `record` — the frame and `walpb.Record` encoding (byte table), the CRC chain, and the few
//!   protobuf fields the WAL reads itself;
//! - `decoder` — one segment's frames; torn tail versus damage;
//! - `log` — [`Wal`]: segments (naming, preallocation, cut, locks), create/open/read_all/
//!   save/save_snapshot/release_lock_to/close;
//! - `fs` — the [`WalFs`] seam: OS files with etcd's locks, and an in-memory file system with
//!   crash injection.
//!
//! Only `raft::storage` (through `raft_node`) uses this layer.

mod decoder;
mod error;
mod fs;
mod log;
mod record;
#[cfg(test)]
mod tests;

pub use error::{Result, WalError};
pub use fs::{Crash, MemFs, OsFs, SlowSyncFs, WalFile, WalFs};
pub use log::{
    parse_segment_name, segment_name, Entry, EntryRef, Options, Recovered, Wal, SEGMENT_SIZE_BYTES,
};
pub use record::{RecordType, WalSnapshot};
