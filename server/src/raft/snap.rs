//! Snapshot files in etcd 3.4's format (`etcdserver/api/snap`): `member/snap/%016x-%016x.snap`,
//! named by the snapshot's raft term and index (hex, 16 digits each), e.g.
//! `0000000000000002-0000000000000012.snap` for term 2, index 18.
//!
//! A file is one `snappb.snapshot` protobuf (gogo, proto2), nothing before or after it:
//!
//! | bytes                    | field       | meaning                                               |
//! |--------------------------|-------------|-------------------------------------------------------|
//! | `08` varint              | 1 `crc`     | uint32 CRC-32C (Castagnoli) of `data`, not chained    |
//! | `12` varint(len) bytes   | 2 `data`    | a `raftpb.Snapshot`, encoded by [`super::codec`]      |
//!
//! and `raftpb.Snapshot` is `0a` len `data` (the state machine's snapshot: etcd 3.4 puts the v2
//! store's JSON there; absent when empty) then `12` len `SnapshotMetadata` (`0a` len
//! `ConfState`, `10` index, `18` term). etcd refuses a file with no data or a zero CRC
//! (`ErrEmptySnapshot`) and one whose CRC does not match (`ErrCRCMismatch`); when loading, it
//! renames a file it cannot read to `<name>.broken` and tries the next older one.
//!
//! Glass writes a snapshot as `<name>.tmp`, fsyncs it and renames it into place (then syncs
//! the directory), so a crash never leaves a half-written `.snap`; etcd 3.4 writes the final
//! name directly. A leftover `.tmp` is removed when the directory is opened.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ::raft::eraftpb::Snapshot;
use prost::Message;
use tracing::{info, warn};

use crate::pb::snappb;
use crate::storage::wal::WalFs;

use super::codec;
use super::error::{RaftError, Result};

const SNAP_SUFFIX: &str = ".snap";

/// The file name of the snapshot at `term`, `index`.
pub fn snap_name(term: u64, index: u64) -> String {
    format!("{term:016x}-{index:016x}{SNAP_SUFFIX}")
}

/// `(term, index)` from a snapshot file name; `None` for anything else.
pub fn parse_snap_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(SNAP_SUFFIX)?;
    let (term, index) = stem.split_once('-')?;
    let hex = |s: &str| {
        (s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u64::from_str_radix(s, 16).ok())
            .flatten()
    };
    Some((hex(term)?, hex(index)?))
}

/// The bytes of a `.snap` file holding `snap`.
pub fn encode_file(snap: &Snapshot) -> Vec<u8> {
    let data = codec::encode_snapshot(snap);
    snappb::Snapshot {
        crc: crc32c::crc32c(&data),
        data: Some(data),
    }
    .encode_to_vec()
}

/// The snapshot in a `.snap` file's bytes, checked as etcd's `snap.Read` checks it.
pub fn decode_file(path: &Path, bytes: &[u8]) -> Result<Snapshot> {
    let file = snappb::Snapshot::decode(bytes).map_err(|e| {
        RaftError::io(
            "decode",
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        )
    })?;
    let data = file.data.unwrap_or_default();
    if data.is_empty() || file.crc == 0 {
        return Err(RaftError::EmptySnapshot(path.to_path_buf()));
    }
    let computed = crc32c::crc32c(&data);
    if computed != file.crc {
        return Err(RaftError::SnapshotCrcMismatch {
            path: path.to_path_buf(),
            stored: file.crc,
            computed,
        });
    }
    codec::decode_snapshot(&data).map_err(|e| RaftError::codec(path.display().to_string(), e))
}

/// The snapshot directory (etcd's `snap.Snapshotter`).
#[derive(Debug, Clone)]
pub struct Snapshotter {
    dir: PathBuf,
    fs: Arc<dyn WalFs>,
}

impl Snapshotter {
    /// Opens (creating it when missing) the snapshot directory and removes unfinished writes.
    pub fn open(dir: &Path, fs: Arc<dyn WalFs>) -> Result<Snapshotter> {
        fs.create_dir_all(dir)
            .map_err(|e| RaftError::io("create directory", dir, e))?;
        let s = Snapshotter {
            dir: dir.to_path_buf(),
            fs,
        };
        for name in s.read_dir()? {
            if name.ends_with(".snap.tmp") {
                let p = s.dir.join(&name);
                s.fs.remove_file(&p)
                    .map_err(|e| RaftError::io("remove", &p, e))?;
            }
        }
        Ok(s)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn read_dir(&self) -> Result<Vec<String>> {
        self.fs
            .read_dir(&self.dir)
            .map_err(|e| RaftError::io("read directory", &self.dir, e))
    }

    /// The `.snap` files, newest (highest term, then index) first.
    pub fn names(&self) -> Result<Vec<String>> {
        let mut snaps: Vec<_> = self
            .read_dir()?
            .into_iter()
            .filter_map(|n| parse_snap_name(&n).map(|k| (k, n)))
            .collect();
        snaps.sort_unstable_by_key(|s| std::cmp::Reverse(s.0));
        Ok(snaps.into_iter().map(|(_, n)| n).collect())
    }

    /// Writes `snap` durably. A snapshot at index 0 is not written (etcd: `SaveSnap` of an
    /// empty snapshot does nothing).
    pub fn save(&self, snap: &Snapshot) -> Result<()> {
        let m = snap.get_metadata();
        if m.index == 0 {
            return Ok(());
        }
        let name = snap_name(m.term, m.index);
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let bytes = encode_file(snap);
        {
            let mut f = self
                .fs
                .open(&tmp, true)
                .map_err(|e| RaftError::io("open", &tmp, e))?;
            f.truncate(0)
                .and_then(|()| f.write_all_at(&bytes, 0))
                .and_then(|()| f.sync())
                .map_err(|e| RaftError::io("write", &tmp, e))?;
        }
        self.fs
            .rename(&tmp, &path)
            .map_err(|e| RaftError::io("rename", &tmp, e))?;
        self.fs
            .sync_dir(&self.dir)
            .map_err(|e| RaftError::io("sync directory", &self.dir, e))?;
        info!(path = %path.display(), index = m.index, term = m.term, bytes = bytes.len(), "saved snapshot");
        Ok(())
    }

    /// Reads one snapshot file.
    pub fn read(&self, name: &str) -> Result<Snapshot> {
        let path = self.dir.join(name);
        let f = self
            .fs
            .open(&path, false)
            .map_err(|e| RaftError::io("open", &path, e))?;
        let bytes = f.read_all().map_err(|e| RaftError::io("read", &path, e))?;
        drop(f);
        decode_file(&path, &bytes)
    }

    /// The newest snapshot `usable` accepts, with what it returned (etcd 3.5's
    /// `LoadNewestAvailable`: the caller accepts a snapshot the WAL has a record of). A file
    /// that cannot be read is renamed `<name>.broken`, as etcd does, and skipped.
    pub fn load_newest<T>(
        &self,
        mut usable: impl FnMut(&Snapshot) -> Result<Option<T>>,
    ) -> Result<Option<(Snapshot, T)>> {
        for name in self.names()? {
            let snap = match self.read(&name) {
                Ok(s) => s,
                Err(e) => {
                    warn!(name, error = %e, "unreadable snapshot file, renaming it .broken");
                    let from = self.dir.join(&name);
                    let to = self.dir.join(format!("{name}.broken"));
                    self.fs
                        .rename(&from, &to)
                        .map_err(|e| RaftError::io("rename", &from, e))?;
                    continue;
                }
            };
            if let Some(t) = usable(&snap)? {
                return Ok(Some((snap, t)));
            }
            warn!(
                name,
                "snapshot has no record in the WAL, trying an older one"
            );
        }
        Ok(None)
    }

    /// Removes all but the newest `keep` snapshot files (etcd's `--max-snapshots`, default 5);
    /// returns the names removed.
    pub fn purge(&self, keep: usize) -> Result<Vec<String>> {
        let names = self.names()?;
        let old: Vec<String> = names.into_iter().skip(keep).collect();
        for name in &old {
            let p = self.dir.join(name);
            self.fs
                .remove_file(&p)
                .map_err(|e| RaftError::io("remove", &p, e))?;
            info!(path = %p.display(), "purged snapshot file");
        }
        Ok(old)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::wal::MemFs;
    use bytes::Bytes;

    fn snapshot(term: u64, index: u64, data: &[u8]) -> Snapshot {
        let mut s = Snapshot {
            data: Bytes::copy_from_slice(data),
            ..Default::default()
        };
        let m = s.mut_metadata();
        m.term = term;
        m.index = index;
        m.mut_conf_state().voters = vec![0xbdae_9bbc_11dd_390d];
        s
    }

    fn snapper() -> (MemFs, Snapshotter) {
        let fs = MemFs::new();
        let s = Snapshotter::open(Path::new("/m/snap"), Arc::new(fs.clone())).unwrap();
        (fs, s)
    }

    #[test]
    fn names() {
        assert_eq!(snap_name(2, 18), "0000000000000002-0000000000000012.snap");
        assert_eq!(
            parse_snap_name("0000000000000002-0000000000000012.snap"),
            Some((2, 18))
        );
        assert_eq!(
            parse_snap_name("0000000000000002-0000000000000012.snap.broken"),
            None
        );
        assert_eq!(parse_snap_name("2-12.snap"), None);
    }

    /// A snapshot file written by etcd 3.4.23 reads back, and Glass writes it again byte for
    /// byte.
    #[test]
    fn etcd_snap_file_round_trips() {
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/etcd-3.4.23.snap"
        ))
        .unwrap();
        let snap = decode_file(Path::new("etcd.snap"), &bytes).unwrap();
        let m = snap.get_metadata();
        assert_eq!((m.term, m.index), (2, 18));
        assert_eq!(m.get_conf_state().voters.len(), 1);
        assert!(snap.data.starts_with(b"{\"Root\":"), "the v2 store's JSON");
        assert_eq!(encode_file(&snap), bytes);
    }

    #[test]
    fn save_load_newest_and_purge() {
        let (fs, s) = snapper();
        s.save(&snapshot(0, 0, b"ignored")).unwrap();
        assert!(s.names().unwrap().is_empty());
        for (term, index) in [
            (1, 10),
            (2, 20),
            (2, 30),
            (3, 40),
            (3, 50),
            (3, 60),
            (3, 70),
        ] {
            s.save(&snapshot(
                term,
                index,
                format!("state at {index}").as_bytes(),
            ))
            .unwrap();
        }
        assert_eq!(s.names().unwrap()[0], snap_name(3, 70));
        // Newest usable: the caller refuses 70 (say the WAL never recorded it).
        let (snap, ()) = s
            .load_newest(|snap| Ok((snap.get_metadata().index != 70).then_some(())))
            .unwrap()
            .unwrap();
        assert_eq!(snap.get_metadata().index, 60);
        assert_eq!(&snap.data[..], b"state at 60");

        let removed = s.purge(5).unwrap();
        assert_eq!(removed, [snap_name(2, 20), snap_name(1, 10)]);
        assert_eq!(s.names().unwrap().len(), 5);

        // Damage the newest: it is set aside as .broken and the next one is used.
        let newest = s.dir().join(snap_name(3, 70));
        let mut b = fs.contents(&newest).unwrap();
        let n = b.len();
        b[n - 3] ^= 0x40;
        fs.set_contents(&newest, b);
        let (snap, ()) = s.load_newest(|_| Ok(Some(()))).unwrap().unwrap();
        assert_eq!(snap.get_metadata().index, 60);
        assert!(fs.exists(&s.dir().join(format!("{}.broken", snap_name(3, 70)))));
        assert!(!fs.exists(&newest));
    }

    #[test]
    fn empty_and_damaged_files_are_refused() {
        let p = Path::new("x.snap");
        assert!(matches!(
            decode_file(p, &[]),
            Err(RaftError::EmptySnapshot(_))
        ));
        let no_crc = snappb::Snapshot {
            crc: 0,
            data: Some(vec![1]),
        }
        .encode_to_vec();
        assert!(matches!(
            decode_file(p, &no_crc),
            Err(RaftError::EmptySnapshot(_))
        ));
        let mut good = encode_file(&snapshot(1, 5, b"data"));
        let n = good.len();
        good[n - 1] ^= 1;
        assert!(matches!(
            decode_file(p, &good),
            Err(RaftError::SnapshotCrcMismatch { .. })
        ));
    }

    #[test]
    fn a_leftover_tmp_file_is_removed_on_open() {
        let (fs, s) = snapper();
        let tmp = s.dir().join(format!("{}.tmp", snap_name(1, 1)));
        fs.set_contents(&tmp, b"half".to_vec());
        let s = Snapshotter::open(s.dir(), Arc::new(fs.clone())).unwrap();
        assert!(!fs.exists(&tmp));
        assert!(s.names().unwrap().is_empty());
    }
}
