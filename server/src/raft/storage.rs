//! [`RaftStorage`]: raft-rs's [`Storage`] over etcd's WAL and snapshot files.
//!
//! The log raft reads is held in memory (as etcd's `raft.MemoryStorage`): the entries after a
//! compaction point, the hard state, the conf state and the latest snapshot. It is made
//! durable by the WAL: [`RaftStorage::save`] writes a Ready's entries and hard state with
//! **one** [`Wal::save`] (one fdatasync) *before* changing the memory, so raft never sees an
//! entry as stored that a crash could lose.
//!
//! On start ([`RaftStorage::open`]):
//! - a new data directory gets a WAL whose metadata is `etcdserverpb.Metadata{NodeID,
//!   ClusterID}` and, as etcd's `raft.Bootstrap` writes them, one `ConfChangeAddNode` entry per
//!   initial member at term 1 (indexes 1..=n) with a hard state `{term 1, vote 0, commit n}`;
//! - an existing one is read back from the newest snapshot file that the WAL has a record of
//!   (older ones are tried when the newest is unreadable or missing from the WAL), then every
//!   WAL record after it;
//! - the applier's applied index (its persisted consistent index) decides where raft resumes:
//!   raft delivers only entries after it. Below the snapshot, the applier must first restore
//!   the snapshot ([`Opened::restore`]). Above the saved commit index — the applier applied
//!   entries whose commit the WAL had not recorded yet, which raft-rs's Ready order allows —
//!   the commit index is raised to it: those entries were committed, and are in the WAL since
//!   raft hands out only persisted entries.
//!
//! The conf state at start is the snapshot's with every committed conf change after it folded
//! in; the committed ones raft delivers again are applied again (idempotent for etcd 3.4's
//! single-node changes).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ::raft::eraftpb::{ConfState, Entry, EntryType, HardState, Snapshot};
use ::raft::{GetEntriesContext, RaftState, Storage, StorageError};
use bytes::Bytes;
use prost::Message;
use telemetry::Metrics;
use tracing::{info, warn};

use crate::pb::etcdserverpb::Metadata;
use crate::storage::wal::{
    self, parse_segment_name, segment_name, EntryRef, Wal, WalError, WalFs, WalSnapshot,
};

use super::codec::{self, ConfChange, ConfChangeKind};
use super::error::{RaftError, Result};
use super::snap::Snapshotter;

/// etcd's default `--max-snapshots` and `--max-wals`.
pub const DEFAULT_MAX_FILES: usize = 5;

/// etcd's `SnapshotCatchUpEntries`: entries kept in memory after a snapshot, so that a slow
/// follower can catch up from the log instead of a snapshot.
pub const DEFAULT_CATCH_UP_ENTRIES: u64 = 5000;

/// A member of the initial cluster, as etcd's `raft.Peer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub id: u64,
    /// The bootstrap conf change's context; etcd puts the member there as JSON.
    pub context: Vec<u8>,
}

/// Where and how the storage keeps its files.
#[derive(Debug, Clone)]
pub struct StorageOptions {
    /// `member/snap`.
    pub snap_dir: PathBuf,
    /// `member/wal`, or `--wal-dir`.
    pub wal_dir: PathBuf,
    /// The file system of both; [`wal::OsFs`] outside tests.
    pub fs: Arc<dyn WalFs>,
    /// WAL segment size ([`wal::SEGMENT_SIZE_BYTES`] outside tests).
    pub segment_size: u64,
    pub metrics: Arc<Metrics>,
    /// Snapshot files kept (etcd's `--max-snapshots`).
    pub max_snapshots: usize,
    /// WAL segments kept, when no longer locked (etcd's `--max-wals`).
    pub max_wals: usize,
    /// Entries kept in memory before a snapshot's index when compacting.
    pub catch_up_entries: u64,
}

impl StorageOptions {
    /// etcd's defaults for a member directory.
    pub fn new(member_dir: &Path) -> Self {
        StorageOptions {
            snap_dir: member_dir.join("snap"),
            wal_dir: member_dir.join("wal"),
            fs: Arc::new(wal::OsFs),
            segment_size: wal::SEGMENT_SIZE_BYTES,
            metrics: Arc::new(Metrics::new()),
            max_snapshots: DEFAULT_MAX_FILES,
            max_wals: DEFAULT_MAX_FILES,
            catch_up_entries: DEFAULT_CATCH_UP_ENTRIES,
        }
    }

    fn wal_options(&self) -> wal::Options {
        wal::Options {
            segment_size: self.segment_size,
            fs: self.fs.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

/// Who is starting, and from where the applier is.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    /// This member's id.
    pub id: u64,
    pub cluster_id: u64,
    /// The initial cluster; written to a new data directory only.
    pub peers: Vec<Peer>,
    /// The applier's applied index (etcd's consistent index in the backend).
    pub applied: u64,
}

/// What [`RaftStorage::open`] gives back.
#[derive(Debug)]
pub struct Opened {
    pub storage: RaftStorage,
    /// raft's `Config::applied`: raft delivers the committed entries after it.
    pub applied: u64,
    /// Set when the applier is behind the snapshot: it must restore this snapshot first.
    pub restore: Option<Snapshot>,
    /// Whether the data directory was new (bootstrapped now).
    pub bootstrapped: bool,
    /// The cluster id the WAL's metadata holds.
    pub cluster_id: u64,
}

/// raft-rs storage backed by the WAL and snapshot files. Owned by the raft node's thread.
#[derive(Debug)]
pub struct RaftStorage {
    wal: Wal,
    snapshotter: Snapshotter,
    opts: StorageOptions,
    /// The hard state raft last gave, with the commit index of later light readies.
    hard_state: HardState,
    /// The hard state last written to the WAL.
    persisted: HardState,
    /// The current conf state (as of the last conf change raft applied).
    conf_state: ConfState,
    /// Conf states after the snapshot, with the index of the change that made each; a new
    /// snapshot takes the one in force at its index.
    conf_history: Vec<(u64, ConfState)>,
    /// The latest snapshot (data included, to send to followers).
    snapshot: Snapshot,
    /// Index of the entry just before `entries[0]` (the compaction point), and its term.
    offset: u64,
    offset_term: u64,
    entries: Vec<Entry>,
}

impl RaftStorage {
    fn new(wal: Wal, snapshotter: Snapshotter, snapshot: Snapshot, opts: StorageOptions) -> Self {
        let m = snapshot.get_metadata();
        RaftStorage {
            wal,
            snapshotter,
            opts,
            hard_state: HardState::default(),
            persisted: HardState::default(),
            conf_state: m.get_conf_state().clone(),
            conf_history: Vec::new(),
            offset: m.index,
            offset_term: m.term,
            snapshot,
            entries: Vec::new(),
        }
    }

    /// Opens (or creates) the member's raft storage; see the module doc.
    pub fn open(boot: &Bootstrap, opts: StorageOptions) -> Result<Opened> {
        let fs = opts.fs.clone();
        let snapshotter = Snapshotter::open(&opts.snap_dir, fs.clone())?;
        let has_wal = fs
            .read_dir(&opts.wal_dir)
            .is_ok_and(|names| names.iter().any(|n| parse_segment_name(n).is_some()));
        if !has_wal {
            let meta = Metadata {
                node_id: boot.id,
                cluster_id: boot.cluster_id,
            }
            .encode_to_vec();
            let w = Wal::create_with(&opts.wal_dir, &meta, opts.wal_options())?;
            let mut st = RaftStorage::new(w, snapshotter, Snapshot::default(), opts);
            st.bootstrap(&boot.peers)?;
            info!(id = %format!("{:x}", boot.id), peers = boot.peers.len(), "bootstrapped a new raft log");
            return st.finish(boot, boot.cluster_id, true);
        }

        let wal_opts = opts.wal_options();
        let open_at = |ws: WalSnapshot| -> Result<Option<(Wal, wal::Recovered)>> {
            let r = Wal::open_with(&opts.wal_dir, ws, wal_opts.clone()).and_then(|mut w| {
                let rec = w.read_all()?;
                Ok((w, rec))
            });
            match r {
                Ok(x) => Ok(Some(x)),
                Err(WalError::SnapshotNotFound { .. }) => Ok(None),
                Err(e) => Err(e.into()),
            }
        };
        let found = snapshotter.load_newest(|s| {
            let m = s.get_metadata();
            open_at(WalSnapshot {
                index: m.index,
                term: m.term,
            })
        })?;
        let (snap, (w, rec)) = match found {
            Some(x) => x,
            None => match open_at(WalSnapshot::default())? {
                Some(x) => (Snapshot::default(), x),
                None => {
                    return Err(WalError::SnapshotNotFound { index: 0, term: 0 }.into());
                }
            },
        };
        let meta = Metadata::decode(rec.metadata.as_slice()).map_err(|e| {
            RaftError::io(
                "decode WAL metadata",
                &opts.wal_dir,
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        })?;
        if meta.node_id != boot.id {
            return Err(RaftError::MemberMismatch {
                found: meta.node_id,
                expected: boot.id,
            });
        }
        let mut st = RaftStorage::new(w, snapshotter, snap, opts);
        if let Some(b) = &rec.hard_state {
            st.hard_state =
                codec::decode_hard_state(b).map_err(|e| RaftError::codec("WAL hard state", e))?;
            st.persisted = st.hard_state.clone();
        }
        st.entries = rec
            .entries
            .iter()
            .map(|e| {
                codec::decode_entry(&e.data)
                    .map_err(|err| RaftError::codec(format!("WAL entry {}", e.index), err))
            })
            .collect::<Result<_>>()?;
        info!(
            snapshot = st.offset,
            entries = st.entries.len(),
            term = st.hard_state.term,
            commit = st.hard_state.commit,
            "recovered the raft log"
        );
        let empty = st.entries.is_empty() && st.offset == 0 && st.hard_state.term == 0;
        if empty {
            // A crash between creating the WAL and writing the bootstrap entries: finish it.
            warn!("the WAL holds no raft state: bootstrapping again");
            st.bootstrap(&boot.peers)?;
        }
        st.finish(boot, meta.cluster_id, empty)
    }

    /// etcd's `raft.Bootstrap`: one `ConfChangeAddNode` per peer at term 1, committed.
    fn bootstrap(&mut self, peers: &[Peer]) -> Result<()> {
        let ents: Vec<Entry> = peers
            .iter()
            .zip(1u64..)
            .map(|(p, index)| {
                let cc = ConfChange {
                    id: 0,
                    kind: ConfChangeKind::AddNode,
                    node_id: p.id,
                    context: p.context.clone(),
                };
                let mut e = Entry::default();
                e.set_entry_type(EntryType::EntryConfChange);
                e.term = 1;
                e.index = index;
                e.data = Bytes::from(cc.encode());
                e
            })
            .collect();
        let hs = HardState {
            term: 1,
            commit: ents.len() as u64,
            ..Default::default()
        };
        self.save(Some(&hs), &ents)
    }

    /// Settles where raft resumes (module doc) and the conf state.
    fn finish(mut self, boot: &Bootstrap, cluster_id: u64, bootstrapped: bool) -> Result<Opened> {
        let snap_index = self.snapshot_index();
        let last = self.last();
        let mut applied = boot.applied;
        let mut restore = None;
        if applied < snap_index {
            restore = Some(self.snapshot.clone());
            applied = snap_index;
        }
        if applied > last {
            return Err(RaftError::AppliedAhead { applied, last });
        }
        let commit = self.hard_state.commit.max(applied).max(snap_index);
        if commit != self.hard_state.commit {
            info!(
                saved = self.hard_state.commit,
                commit, "raising the commit index to what was applied"
            );
            self.hard_state.commit = commit;
        }
        let mut cs = self.snapshot.get_metadata().get_conf_state().clone();
        let mut history = Vec::new();
        for e in self.entries.iter().take_while(|e| e.index <= commit) {
            match e.get_entry_type() {
                EntryType::EntryConfChange => {
                    let cc = ConfChange::decode(&e.data)
                        .map_err(|err| RaftError::codec(format!("conf change {}", e.index), err))?;
                    codec::fold_conf_change(&mut cs, &cc);
                    history.push((e.index, cs.clone()));
                }
                EntryType::EntryConfChangeV2 => {
                    return Err(RaftError::ConfChangeV2 { index: e.index })
                }
                EntryType::EntryNormal => {}
            }
        }
        self.conf_state = cs;
        self.conf_history = history;
        Ok(Opened {
            storage: self,
            applied,
            restore,
            bootstrapped,
            cluster_id,
        })
    }

    fn first(&self) -> u64 {
        self.offset + 1
    }

    fn last(&self) -> u64 {
        self.offset + self.entries.len() as u64
    }

    /// The hard state raft last gave (commit as of the last light ready).
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    /// The latest snapshot's index.
    pub fn snapshot_index(&self) -> u64 {
        self.snapshot.get_metadata().index
    }

    /// The WAL segments held open, as `(seq, first index)`.
    pub fn wal_segments(&self) -> Vec<(u64, u64)> {
        self.wal.segments()
    }

    /// Persists a Ready: its entries and hard state (or, when it has none, the commit index of
    /// earlier light readies) with one WAL save — one fdatasync when raft's `MustSync` holds —
    /// and then makes them visible to raft.
    pub fn save(&mut self, hs: Option<&HardState>, entries: &[Entry]) -> Result<()> {
        if let Some(hs) = hs {
            let commit = hs.commit.max(self.hard_state.commit);
            self.hard_state = hs.clone();
            self.hard_state.commit = commit;
        }
        let hs_bytes =
            (self.hard_state != self.persisted).then(|| codec::encode_hard_state(&self.hard_state));
        let encoded: Vec<Vec<u8>> = entries.iter().map(codec::encode_entry).collect();
        let refs: Vec<EntryRef<'_>> = entries
            .iter()
            .zip(&encoded)
            .map(|(e, data)| EntryRef {
                index: e.index,
                term: e.term,
                data,
            })
            .collect();
        self.wal.save(hs_bytes.as_deref(), &refs)?;
        self.persisted = self.hard_state.clone();
        self.append(entries);
        Ok(())
    }

    /// Records a commit index from a light ready; written with the next save.
    pub fn set_commit(&mut self, commit: u64) {
        self.hard_state.commit = self.hard_state.commit.max(commit);
    }

    /// etcd's `MemoryStorage.Append`: entries replace everything from their first index on.
    fn append(&mut self, entries: &[Entry]) {
        let Some(e0) = entries.first() else {
            return;
        };
        let first = self.first();
        let last_new = e0.index + entries.len() as u64 - 1;
        if last_new < first {
            return;
        }
        let skip = first.saturating_sub(e0.index) as usize;
        let entries = &entries[skip..];
        let at = (entries[0].index - first) as usize;
        assert!(
            at <= self.entries.len(),
            "missing log entry: last {}, appending at {}",
            self.last(),
            entries[0].index
        );
        self.entries.truncate(at);
        self.entries.extend_from_slice(entries);
    }

    /// Records the conf state raft reached by applying the conf change at `index`.
    pub fn set_conf_state(&mut self, index: u64, cs: ConfState) {
        self.conf_history.push((index, cs.clone()));
        self.conf_state = cs;
    }

    /// A snapshot received from the leader: saved (file, then WAL record) and the log replaced
    /// by it. Called before the Ready's entries are saved, as etcd does.
    pub fn apply_snapshot(&mut self, snap: Snapshot) -> Result<()> {
        let m = snap.get_metadata().clone();
        if m.index <= self.snapshot_index() {
            return Ok(());
        }
        self.snapshotter.save(&snap)?;
        self.wal.save_snapshot(WalSnapshot {
            index: m.index,
            term: m.term,
        })?;
        self.entries.clear();
        self.offset = m.index;
        self.offset_term = m.term;
        self.hard_state.commit = self.hard_state.commit.max(m.index);
        self.conf_state = m.get_conf_state().clone();
        self.conf_history.clear();
        self.snapshot = snap;
        self.release_and_purge(m.index)
    }

    /// Takes a snapshot at `index` (applied by the applier) holding `data`: the `.snap` file,
    /// the WAL's snapshot record, then the in-memory log compacted up to `index` less the
    /// catch-up entries, the WAL segments before it unlocked, and old files purged. Returns
    /// the snapshot's metadata.
    pub fn create_snapshot(
        &mut self,
        index: u64,
        data: Vec<u8>,
    ) -> Result<::raft::eraftpb::SnapshotMetadata> {
        if index <= self.snapshot_index() {
            return Err(RaftError::BadSnapshotIndex {
                index,
                reason: "not after the latest snapshot",
            });
        }
        if index > self.hard_state.commit {
            return Err(RaftError::BadSnapshotIndex {
                index,
                reason: "not committed",
            });
        }
        let term = self.term_of(index)?;
        let cs = self
            .conf_history
            .iter()
            .rev()
            .find(|(i, _)| *i <= index)
            .map(|(_, cs)| cs.clone())
            .unwrap_or_else(|| self.snapshot.get_metadata().get_conf_state().clone());
        let mut snap = Snapshot {
            data: Bytes::from(data),
            ..Default::default()
        };
        {
            let m = snap.mut_metadata();
            m.index = index;
            m.term = term;
            m.set_conf_state(cs);
        }
        // etcd's storage.SaveSnap: the file first, so that a WAL record always has its file.
        self.snapshotter.save(&snap)?;
        self.wal.save_snapshot(WalSnapshot { index, term })?;
        let meta = snap.get_metadata().clone();
        self.snapshot = snap;
        self.conf_history.retain(|(i, _)| *i > index);
        let compact_to = index.saturating_sub(self.opts.catch_up_entries);
        if compact_to > self.offset {
            self.compact(compact_to)?;
        }
        self.release_and_purge(index)?;
        Ok(meta)
    }

    /// etcd's `MemoryStorage.Compact`: drops the entries up to `index` (kept as the new
    /// offset, for its term).
    pub fn compact(&mut self, index: u64) -> Result<()> {
        if index <= self.offset {
            return Err(::raft::Error::Store(StorageError::Compacted).into());
        }
        if index > self.last() {
            return Err(::raft::Error::Store(StorageError::Unavailable).into());
        }
        let term = self.term_of(index)?;
        let n = (index - self.offset) as usize;
        self.entries.drain(..n);
        self.offset = index;
        self.offset_term = term;
        Ok(())
    }

    /// Unlocks the WAL segments the snapshot at `index` made unnecessary and purges old
    /// segments and snapshot files beyond the numbers kept.
    fn release_and_purge(&mut self, index: u64) -> Result<()> {
        self.wal.release_lock_to(index)?;
        self.snapshotter.purge(self.opts.max_snapshots)?;
        let held = self.wal.segments().first().map_or(u64::MAX, |s| s.0);
        let dir = self.opts.wal_dir.clone();
        let mut segs: Vec<(u64, u64)> = self
            .opts
            .fs
            .read_dir(&dir)
            .map_err(|e| RaftError::io("read directory", &dir, e))?
            .iter()
            .filter_map(|n| parse_segment_name(n))
            .collect();
        segs.sort_unstable();
        let excess = segs.len().saturating_sub(self.opts.max_wals);
        // Oldest first, never one still held (locked) by the WAL (etcd stops at a locked file).
        for &(seq, first) in segs.iter().take(excess).take_while(|s| s.0 < held) {
            let p = dir.join(segment_name(seq, first));
            self.opts
                .fs
                .remove_file(&p)
                .map_err(|e| RaftError::io("remove", &p, e))?;
            info!(path = %p.display(), "purged WAL segment");
        }
        Ok(())
    }

    fn term_of(&self, idx: u64) -> Result<u64> {
        Ok(self.term(idx)?)
    }

    /// Syncs and closes the WAL.
    pub fn close(self) -> Result<()> {
        Ok(self.wal.close()?)
    }
}

impl Storage for RaftStorage {
    fn initial_state(&self) -> ::raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> ::raft::Result<Vec<Entry>> {
        if low <= self.offset {
            return Err(::raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 || low > high {
            return Err(::raft::Error::Store(StorageError::Unavailable));
        }
        let lo = (low - self.first()) as usize;
        let hi = (high - self.first()) as usize;
        let mut ents = self.entries[lo..hi].to_vec();
        ::raft::util::limit_size(&mut ents, max_size.into());
        Ok(ents)
    }

    fn term(&self, idx: u64) -> ::raft::Result<u64> {
        if idx == self.offset {
            return Ok(self.offset_term);
        }
        if idx < self.offset {
            return Err(::raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last() {
            return Err(::raft::Error::Store(StorageError::Unavailable));
        }
        Ok(self.entries[(idx - self.first()) as usize].term)
    }

    fn first_index(&self) -> ::raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> ::raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> ::raft::Result<Snapshot> {
        if self.snapshot_index() < request_index {
            return Err(::raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::wal::MemFs;

    const ID: u64 = 0x8e9e_05c5_2164_694d;

    fn opts(fs: &MemFs) -> StorageOptions {
        StorageOptions {
            fs: Arc::new(fs.clone()),
            segment_size: 2048,
            catch_up_entries: 3,
            ..StorageOptions::new(Path::new("/data/member"))
        }
    }

    fn boot(applied: u64) -> Bootstrap {
        Bootstrap {
            id: ID,
            cluster_id: 0xc1,
            peers: vec![Peer {
                id: ID,
                context: b"{\"id\":1}".to_vec(),
            }],
            applied,
        }
    }

    fn ent(index: u64, term: u64, data: &str) -> Entry {
        Entry {
            index,
            term,
            data: Bytes::copy_from_slice(data.as_bytes()),
            ..Default::default()
        }
    }

    fn hs(term: u64, vote: u64, commit: u64) -> HardState {
        HardState {
            term,
            vote,
            commit,
            ..Default::default()
        }
    }

    #[test]
    fn bootstrap_writes_etcds_first_entry_and_reopens() {
        let fs = MemFs::new();
        let o = RaftStorage::open(&boot(0), opts(&fs)).unwrap();
        assert!(o.bootstrapped);
        assert_eq!((o.applied, o.cluster_id), (0, 0xc1));
        let st = &o.storage;
        assert_eq!((st.first(), st.last()), (1, 1));
        assert_eq!(st.conf_state().voters, [ID]);
        assert_eq!(*st.hard_state(), hs(1, 0, 1));
        let e = &st
            .entries(1, 2, None, GetEntriesContext::empty(false))
            .unwrap()[0];
        assert_eq!(e.get_entry_type(), EntryType::EntryConfChange);
        let cc = ConfChange::decode(&e.data).unwrap();
        assert_eq!((cc.kind, cc.node_id), (ConfChangeKind::AddNode, ID));
        o.storage.close().unwrap();

        let o = RaftStorage::open(&boot(0), opts(&fs)).unwrap();
        assert!(!o.bootstrapped);
        assert_eq!(o.storage.conf_state().voters, [ID]);
        assert_eq!((o.storage.first(), o.storage.last()), (1, 1));
        o.storage.close().unwrap();

        let mut other = boot(0);
        other.id = 7;
        let err = RaftStorage::open(&other, opts(&fs)).unwrap_err();
        assert!(matches!(err, RaftError::MemberMismatch { .. }), "{err}");
    }

    #[test]
    fn storage_contract() {
        let fs = MemFs::new();
        let mut st = RaftStorage::open(&boot(0), opts(&fs)).unwrap().storage;
        st.save(
            Some(&hs(2, ID, 1)),
            &[ent(2, 2, ""), ent(3, 2, "a"), ent(4, 2, "b")],
        )
        .unwrap();
        assert_eq!(st.term(0).unwrap(), 0);
        assert_eq!(st.term(4).unwrap(), 2);
        assert!(matches!(
            st.term(5),
            Err(::raft::Error::Store(StorageError::Unavailable))
        ));
        let all = st
            .entries(2, 5, None, GetEntriesContext::empty(false))
            .unwrap();
        assert_eq!(all.len(), 3);
        // At least one entry, whatever the size limit.
        let one = st
            .entries(2, 5, 0, GetEntriesContext::empty(false))
            .unwrap();
        assert_eq!(one.len(), 1);
        // A new leader's entries replace the tail.
        st.save(Some(&hs(3, ID, 2)), &[ent(3, 3, "c")]).unwrap();
        assert_eq!(st.last(), 3);
        assert_eq!(st.term(3).unwrap(), 3);
        st.compact(2).unwrap();
        assert_eq!(st.first(), 3);
        assert_eq!(
            st.term(2).unwrap(),
            2,
            "the term before the first entry is kept"
        );
        assert!(matches!(
            st.entries(2, 3, None, GetEntriesContext::empty(false)),
            Err(::raft::Error::Store(StorageError::Compacted))
        ));
        assert!(st.compact(2).is_err());
    }

    #[test]
    fn applied_index_decides_where_raft_resumes() {
        let fs = MemFs::new();
        let mut st = RaftStorage::open(&boot(0), opts(&fs)).unwrap().storage;
        let ents: Vec<_> = (2..=6).map(|i| ent(i, 2, "x")).collect();
        // Commit 3 saved; the applier went on to 5 before the next save.
        st.save(Some(&hs(2, ID, 3)), &ents).unwrap();
        st.close().unwrap();
        let o = RaftStorage::open(&boot(5), opts(&fs)).unwrap();
        assert_eq!(o.applied, 5);
        assert_eq!(
            o.storage.hard_state().commit,
            5,
            "raised to the applied index"
        );
        assert!(o.restore.is_none());
        o.storage.close().unwrap();
        let err = RaftStorage::open(&boot(7), opts(&fs)).unwrap_err();
        assert!(
            matches!(
                err,
                RaftError::AppliedAhead {
                    applied: 7,
                    last: 6
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn snapshot_compacts_purges_and_reopens() {
        let fs = MemFs::new();
        let o = opts(&fs);
        let mut st = RaftStorage::open(&boot(0), o.clone()).unwrap().storage;
        let mut index = 1;
        for round in 0..12u64 {
            let ents: Vec<_> = (index + 1..=index + 20)
                .map(|i| {
                    ent(
                        i,
                        2,
                        &format!("value {i} padded to take some room in the WAL"),
                    )
                })
                .collect();
            index += 20;
            st.save(Some(&hs(2, ID, index)), &ents).unwrap();
            st.create_snapshot(index - 2, format!("state {round}").into_bytes())
                .unwrap();
            assert_eq!(st.first(), index - 2 - 3 + 1, "catch-up entries kept");
        }
        let snaps = Snapshotter::open(&o.snap_dir, o.fs.clone()).unwrap();
        assert_eq!(snaps.names().unwrap().len(), 5);
        let segs: Vec<_> = fs
            .read_dir(&o.wal_dir)
            .unwrap()
            .into_iter()
            .filter(|n| parse_segment_name(n).is_some())
            .collect();
        assert!(segs.len() <= 5 + st.wal_segments().len(), "{segs:?}");
        assert!(
            !segs.contains(&segment_name(0, 0)),
            "the first segment was purged: {segs:?}"
        );
        // Errors for snapshots raft cannot take.
        assert!(st.create_snapshot(index - 2, Vec::new()).is_err());
        assert!(st.create_snapshot(index + 1, Vec::new()).is_err());
        st.close().unwrap();

        // Reopen from the newest snapshot; an applier behind it is told to restore it.
        let o2 = RaftStorage::open(&boot(0), o.clone()).unwrap();
        let snap_index = index - 2;
        assert_eq!(o2.applied, snap_index);
        let restore = o2.restore.as_ref().unwrap();
        assert_eq!(restore.get_metadata().index, snap_index);
        assert_eq!(&restore.data[..], b"state 11");
        assert_eq!(restore.get_metadata().get_conf_state().voters, [ID]);
        assert_eq!(o2.storage.conf_state().voters, [ID]);
        assert_eq!(
            (o2.storage.first(), o2.storage.last()),
            (snap_index + 1, index)
        );
        o2.storage.close().unwrap();
        let o3 = RaftStorage::open(&boot(index), o).unwrap();
        assert!(o3.restore.is_none());
        assert_eq!(o3.applied, index);
    }

    /// A snapshot from a leader replaces the log; the node restarts from it.
    #[test]
    fn a_received_snapshot_replaces_the_log() {
        let fs = MemFs::new();
        let o = opts(&fs);
        let mut st = RaftStorage::open(&boot(0), o.clone()).unwrap().storage;
        st.save(Some(&hs(2, ID, 2)), &[ent(2, 2, "a"), ent(3, 2, "b")])
            .unwrap();
        let mut snap = Snapshot {
            data: Bytes::from_static(b"leader state"),
            ..Default::default()
        };
        let m = snap.mut_metadata();
        m.index = 40;
        m.term = 5;
        m.mut_conf_state().voters = vec![ID, 2, 3];
        st.apply_snapshot(snap.clone()).unwrap();
        assert_eq!((st.first(), st.last()), (41, 40));
        assert_eq!(st.term(40).unwrap(), 5);
        assert_eq!(st.conf_state().voters, [ID, 2, 3]);
        assert_eq!(st.hard_state().commit, 40);
        st.save(Some(&hs(5, 2, 41)), &[ent(41, 5, "c")]).unwrap();
        st.close().unwrap();
        let o2 = RaftStorage::open(&boot(0), o).unwrap();
        assert_eq!(o2.restore.as_ref(), Some(&snap));
        assert_eq!((o2.storage.first(), o2.storage.last()), (41, 41));
        assert_eq!(o2.storage.conf_state().voters, [ID, 2, 3]);
    }

    #[test]
    fn a_snapshot_missing_from_the_wal_is_skipped() {
        let fs = MemFs::new();
        let o = opts(&fs);
        let mut st = RaftStorage::open(&boot(0), o.clone()).unwrap().storage;
        let ents: Vec<_> = (2..=10).map(|i| ent(i, 2, "v")).collect();
        st.save(Some(&hs(2, ID, 10)), &ents).unwrap();
        st.create_snapshot(5, b"five".to_vec()).unwrap();
        st.close().unwrap();
        // A crash between writing a snapshot file and its WAL record leaves a file the WAL
        // does not know.
        let mut s = Snapshot {
            data: Bytes::from_static(b"eight"),
            ..Default::default()
        };
        s.mut_metadata().index = 8;
        s.mut_metadata().term = 2;
        let snaps = Snapshotter::open(&o.snap_dir, o.fs.clone()).unwrap();
        snaps.save(&s).unwrap();
        let o2 = RaftStorage::open(&boot(0), o).unwrap();
        assert_eq!(o2.restore.unwrap().get_metadata().index, 5);
        assert_eq!(o2.storage.last(), 10);
    }
}
