//! [`Wal`]: the log as a directory of segments, shaped like etcd's `wal.WAL`.
//!
//! Segments are named `{seq:016x}-{index:016x}.wal`: `seq` counts segments from 0 and `index`
//! is the raft index the segment's first entry is expected to have. Each is preallocated to
//! the segment size and starts with a crc record (the previous segment's last CRC), the
//! metadata record and, after a cut, the last hard state. A segment is cut when an append
//! leaves the tail past the segment size.
//!
//! A WAL is either being read or being appended to: [`Wal::create`] gives one ready to append;
//! [`Wal::open`] gives one ready to read, and [`Wal::read_all`] turns it into one ready to
//! append. Every segment from the one holding the opening snapshot on is kept open and locked
//! until [`Wal::release_lock_to`] lets it go (after a snapshot made it unnecessary).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use telemetry::{names, Metrics, Timer};
use tracing::{debug_span, info, warn};

use super::decoder::{SegmentDecoder, Step};
use super::error::{Result, WalError};
use super::fs::{OsFs, WalFile, WalFs};
use super::record::{
    encode_frame, parse_entry, EntryPosition, HardState, ProtoError, Record, RecordType,
    WalSnapshot,
};

/// etcd's `SegmentSizeBytes`: each segment is preallocated to this size (64 MB, decimal).
pub const SEGMENT_SIZE_BYTES: u64 = 64 * 1000 * 1000;

/// An fdatasync slower than this is logged (etcd's `warnSyncDuration`).
const WARN_SYNC: Duration = Duration::from_secs(1);

/// How a WAL is opened.
#[derive(Debug, Clone)]
pub struct Options {
    /// Size segments are preallocated to and cut at; tests use small ones.
    pub segment_size: u64,
    /// The file system; [`OsFs`] outside tests.
    pub fs: Arc<dyn WalFs>,
    /// Where `wal.append` and `wal.fsync` are recorded.
    pub metrics: Arc<Metrics>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            segment_size: SEGMENT_SIZE_BYTES,
            fs: Arc::new(OsFs),
            metrics: Arc::new(Metrics::new()),
        }
    }
}

/// An entry read back from the WAL: its place in the log and the `raftpb.Entry` bytes as
/// they were saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub index: u64,
    pub term: u64,
    pub data: Vec<u8>,
}

/// An entry to save. `data` is an encoded `raftpb.Entry`; `index` and `term` must be the ones
/// encoded in it (checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRef<'a> {
    pub index: u64,
    pub term: u64,
    pub data: &'a [u8],
}

impl Entry {
    pub fn as_ref(&self) -> EntryRef<'_> {
        EntryRef {
            index: self.index,
            term: self.term,
            data: &self.data,
        }
    }
}

/// What [`Wal::read_all`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The metadata given to [`Wal::create`].
    pub metadata: Vec<u8>,
    /// The last `raftpb.HardState` saved, as saved; `None` when none was.
    pub hard_state: Option<Vec<u8>>,
    /// The entries after the opening snapshot, with overwritten ones dropped.
    pub entries: Vec<Entry>,
}

/// The name of segment `seq` whose first entry is `index`.
pub fn segment_name(seq: u64, index: u64) -> String {
    format!("{seq:016x}-{index:016x}.wal")
}

/// `(seq, index)` from a segment name; `None` for anything else (`.tmp`, `.broken`, …).
pub fn parse_segment_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".wal")?;
    let (seq, index) = stem.split_once('-')?;
    let hex = |s: &str| {
        (s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u64::from_str_radix(s, 16).ok())
            .flatten()
    };
    Some((hex(seq)?, hex(index)?))
}

/// An open, locked segment.
#[derive(Debug)]
struct Segment {
    seq: u64,
    index: u64,
    file: Box<dyn WalFile>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Opened at a snapshot; waiting for `read_all`.
    Reading(WalSnapshot),
    Appending,
}

/// The write-ahead log.
pub struct Wal {
    dir: PathBuf,
    opts: Options,
    mode: Mode,
    /// Locked segments, oldest first; the last is the tail, where records are appended.
    segments: Vec<Segment>,
    /// Where the next frame goes in the tail.
    tail_off: u64,
    /// Bytes appended to the tail since its last fdatasync.
    unsynced: u64,
    /// The running CRC after the last record written.
    crc: u32,
    /// Index of the last entry saved (or snapshot, when ahead): names the next segment.
    enti: u64,
    /// Written at the head of every segment.
    metadata: Vec<u8>,
    /// The last hard state saved, written again at the head of every new segment.
    state: Option<(Vec<u8>, HardState)>,
    /// Counts cuts, naming the temporary segment (`0.tmp`, `1.tmp`) as etcd's pipeline does.
    cuts: u64,
    /// Set when a write or sync failed part way: nothing more may be appended.
    poisoned: bool,
    /// Frames of the batch being appended.
    buf: Vec<u8>,
}

impl fmt::Debug for Wal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .field("mode", &self.mode)
            .field("segments", &self.segments())
            .field("tail_off", &self.tail_off)
            .field("enti", &self.enti)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

/// Appends a frame to `buf`, advancing the running CRC by its data.
fn encode(buf: &mut Vec<u8>, crc: &mut u32, kind: RecordType, data: Option<&[u8]>) {
    if let Some(d) = data {
        *crc = crc32c::crc32c_append(*crc, d);
    }
    encode_frame(buf, kind, *crc, data);
}

fn open_error(path: &Path, e: std::io::Error) -> WalError {
    if e.kind() == std::io::ErrorKind::WouldBlock {
        WalError::Locked(path.to_path_buf())
    } else {
        WalError::io("open", path, e)
    }
}

/// `dir` with `.tmp` appended to its last component (etcd: `filepath.Clean(dir) + ".tmp"`).
fn tmp_dir(dir: &Path) -> PathBuf {
    let mut s = dir.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

fn parent_dir(dir: &Path) -> PathBuf {
    match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The segments in `dir`, sorted by sequence.
fn segment_names(fs: &dyn WalFs, dir: &Path) -> Result<Vec<(u64, u64)>> {
    let names = fs
        .read_dir(dir)
        .map_err(|e| WalError::io("read directory", dir, e))?;
    let mut segs: Vec<_> = names.iter().filter_map(|n| parse_segment_name(n)).collect();
    segs.sort_unstable();
    Ok(segs)
}

/// What replaying the records after the opening snapshot gathers (etcd's `ReadAll` loop).
struct Replay {
    start: WalSnapshot,
    metadata: Option<Vec<u8>>,
    state: Option<(Vec<u8>, HardState)>,
    entries: Vec<Entry>,
    /// Whether the opening snapshot's record was seen.
    matched: bool,
    /// Index of the last entry record seen.
    enti: u64,
}

impl Replay {
    /// Applies the `nth` record of a segment, whose frame starts at byte `off`.
    fn apply(&mut self, path: &Path, off: u64, nth: usize, rec: Record<'_>) -> Result<()> {
        let data = rec.data();
        let bad = |what: &str, e: ProtoError| WalError::corrupt(path, off, format!("{what}: {e}"));
        let kind = RecordType::from_i64(rec.kind);
        // Every segment etcd writes opens with a crc record and the metadata. The type is
        // outside the CRC: this is what catches a flipped bit there.
        let head = [RecordType::Crc, RecordType::Metadata];
        if let (Some(&want), Some(k)) = (head.get(nth), kind) {
            if k != want {
                return Err(WalError::corrupt(
                    path,
                    off,
                    format!("record {nth} of the segment is {k:?}, expected {want:?}"),
                ));
            }
        }
        match kind {
            Some(RecordType::Entry) => {
                let pos = parse_entry(data).map_err(|e| bad("not a raftpb.Entry", e))?;
                self.entry(path, off, pos, data)?;
            }
            Some(RecordType::State) => {
                let h = HardState::parse(data).map_err(|e| bad("not a raftpb.HardState", e))?;
                if h.term == 0 && !h.is_empty() {
                    return Err(WalError::corrupt(
                        path,
                        off,
                        "hard state with a vote or commit index but term 0",
                    ));
                }
                self.state = Some((data.to_vec(), h));
            }
            Some(RecordType::Metadata) => {
                if self.metadata.as_deref().is_some_and(|m| m != data) {
                    return Err(WalError::MetadataConflict {
                        path: path.to_path_buf(),
                        offset: off,
                    });
                }
                self.metadata = Some(data.to_vec());
            }
            // The decoder checked it against the chain.
            Some(RecordType::Crc) => {}
            Some(RecordType::Snapshot) => {
                let s = WalSnapshot::parse(data).map_err(|e| bad("not a walpb.Snapshot", e))?;
                if s.index == self.start.index {
                    if s.term != self.start.term {
                        return Err(WalError::SnapshotMismatch {
                            path: path.to_path_buf(),
                            offset: off,
                            index: s.index,
                            found: s.term,
                            expected: self.start.term,
                        });
                    }
                    self.matched = true;
                }
            }
            None => {
                return Err(WalError::UnexpectedRecordType {
                    path: path.to_path_buf(),
                    offset: off,
                    kind: rec.kind,
                })
            }
        }
        Ok(())
    }

    /// An entry at `pos` replaces every entry from its index on (etcd:
    /// `ents = append(ents[:e.Index-start.Index-1], e)`).
    fn entry(&mut self, path: &Path, off: u64, pos: EntryPosition, data: &[u8]) -> Result<()> {
        let start = self.start.index;
        self.enti = pos.index;
        if pos.index <= start {
            // Raft rewrote its log from an index the snapshot covers: every entry after it
            // read so far is stale. (etcd skips the entry and keeps them, returning entries
            // raft had discarded.)
            self.entries.clear();
            return Ok(());
        }
        let keep = pos.index - start - 1;
        if keep > self.entries.len() as u64 {
            return Err(WalError::EntryGap {
                path: path.to_path_buf(),
                offset: off,
                index: pos.index,
                max: start + self.entries.len() as u64 + 1,
            });
        }
        self.entries.truncate(keep as usize);
        // A raft log's terms never decrease: an entry with a lower term than the one before it
        // is damage.
        let floor = self.entries.last().map_or(0, |e| e.term);
        if pos.term < floor {
            return Err(WalError::corrupt(
                path,
                off,
                format!(
                    "entry {} has term {} below the term {floor} before it",
                    pos.index, pos.term
                ),
            ));
        }
        self.entries.push(Entry {
            index: pos.index,
            term: pos.term,
            data: data.to_vec(),
        });
        Ok(())
    }
}

impl Wal {
    /// Creates a WAL in `dir` (which must not exist or be empty), ready to append.
    pub fn create(dir: &Path, metadata: &[u8]) -> Result<Wal> {
        Wal::create_with(dir, metadata, Options::default())
    }

    /// [`Wal::create`] with options. As etcd does, the first segment is written in `dir.tmp`,
    /// which is then renamed to `dir`, so that a WAL directory is never seen half made.
    pub fn create_with(dir: &Path, metadata: &[u8], opts: Options) -> Result<Wal> {
        let fs = opts.fs.clone();
        if fs.read_dir(dir).is_ok_and(|names| !names.is_empty()) {
            return Err(WalError::Exists(dir.to_path_buf()));
        }
        let tmp = tmp_dir(dir);
        if fs.exists(&tmp) {
            fs.remove_dir_all(&tmp)
                .map_err(|e| WalError::io("remove", &tmp, e))?;
        }
        fs.create_dir_all(&tmp)
            .map_err(|e| WalError::io("create directory", &tmp, e))?;
        let path = tmp.join(segment_name(0, 0));
        let mut file = fs.open(&path, true).map_err(|e| open_error(&path, e))?;
        file.preallocate(opts.segment_size)
            .map_err(|e| WalError::io("preallocate", &path, e))?;

        let mut w = Wal::new(dir, opts, Mode::Appending);
        w.metadata = metadata.to_vec();
        w.segments.push(Segment {
            seq: 0,
            index: 0,
            file,
        });
        encode(&mut w.buf, &mut w.crc, RecordType::Crc, None);
        encode(&mut w.buf, &mut w.crc, RecordType::Metadata, Some(metadata));
        let snap = WalSnapshot::default().encode();
        encode(&mut w.buf, &mut w.crc, RecordType::Snapshot, Some(&snap));
        w.append(3)?;
        w.sync()?;

        fs.remove_dir_all(dir)
            .map_err(|e| WalError::io("remove", dir, e))?;
        // The segment stays open and locked across the rename.
        fs.rename(&tmp, dir)
            .map_err(|e| WalError::io("rename", &tmp, e))?;
        let parent = parent_dir(dir);
        fs.sync_dir(&parent)
            .map_err(|e| WalError::io("sync directory", &parent, e))?;
        Ok(w)
    }

    /// Opens the WAL in `dir` for reading from `snap` on: the segment that holds `snap.index`
    /// and every later one are opened and locked. Call [`Wal::read_all`] next.
    pub fn open(dir: &Path, snap: WalSnapshot) -> Result<Wal> {
        Wal::open_with(dir, snap, Options::default())
    }

    /// [`Wal::open`] with options.
    pub fn open_with(dir: &Path, snap: WalSnapshot, opts: Options) -> Result<Wal> {
        let fs = opts.fs.clone();
        let names = segment_names(fs.as_ref(), dir)?;
        // The last segment whose first index is at or before the snapshot (etcd's searchIndex).
        let first = names
            .iter()
            .rposition(|&(_, index)| index <= snap.index)
            .ok_or(WalError::FileNotFound {
                dir: dir.to_path_buf(),
                index: snap.index,
            })?;
        let names = &names[first..];
        for pair in names.windows(2) {
            if pair[1].0 != pair[0].0 + 1 {
                return Err(WalError::BadSequence {
                    dir: dir.to_path_buf(),
                    reason: format!(
                        "{} is followed by {}",
                        segment_name(pair[0].0, pair[0].1),
                        segment_name(pair[1].0, pair[1].1)
                    ),
                });
            }
        }
        let mut w = Wal::new(dir, opts, Mode::Reading(snap));
        for &(seq, index) in names {
            let path = dir.join(segment_name(seq, index));
            let file = fs.open(&path, false).map_err(|e| open_error(&path, e))?;
            w.segments.push(Segment { seq, index, file });
        }
        Ok(w)
    }

    fn new(dir: &Path, opts: Options, mode: Mode) -> Wal {
        Wal {
            dir: dir.to_path_buf(),
            opts,
            mode,
            segments: Vec::new(),
            tail_off: 0,
            unsynced: 0,
            crc: 0,
            enti: 0,
            metadata: Vec::new(),
            state: None,
            cuts: 0,
            poisoned: false,
            buf: Vec::new(),
        }
    }

    fn segment_path(&self, seg: &Segment) -> PathBuf {
        self.dir.join(segment_name(seg.seq, seg.index))
    }

    /// Reads every record after the opening snapshot: the metadata, the last hard state, and
    /// the entries after the snapshot (a later entry at an index drops every entry from that
    /// index on, as raft overwrote them). A torn write at the tail is cut away (the segment as
    /// it was is kept beside it as `<name>.broken`, as etcd's `Repair` does); damage anywhere
    /// else is an error. Afterwards the WAL appends after the last whole record.
    pub fn read_all(&mut self) -> Result<Recovered> {
        let Mode::Reading(start) = self.mode else {
            return Err(WalError::AlreadyRead);
        };
        let mut replay = Replay {
            start,
            metadata: None,
            state: None,
            entries: Vec::new(),
            matched: false,
            enti: 0,
        };
        let mut crc = 0u32;
        let mut tail_end = 0u64;
        let mut torn = None;
        let last = self.segments.len().saturating_sub(1);

        for (i, seg) in self.segments.iter().enumerate() {
            let path = self.segment_path(seg);
            let bytes = seg
                .file
                .read_all()
                .map_err(|e| WalError::io("read", &path, e))?;
            let mut d = SegmentDecoder::new(&bytes, &path, i == last, crc);
            for nth in 0.. {
                match d.next_step()? {
                    Step::Record { off, rec } => replay.apply(&path, off, nth, rec)?,
                    Step::End { off } => {
                        tail_end = off;
                        break;
                    }
                    Step::Torn { off, reason } => {
                        tail_end = off;
                        torn = Some(reason);
                        break;
                    }
                }
            }
            crc = d.crc();
        }
        if !replay.matched {
            return Err(WalError::SnapshotNotFound {
                index: start.index,
                term: start.term,
            });
        }
        if let Some(reason) = torn {
            self.repair(tail_end, &reason)?;
        }

        self.mode = Mode::Appending;
        self.tail_off = tail_end;
        self.crc = crc;
        self.enti = replay.enti;
        let metadata = replay.metadata.unwrap_or_default();
        self.metadata = metadata.clone();
        // etcd leaves its `state` empty here; keeping the one read makes the next cut write it
        // at the head of the new segment, and `save` skip a sync it does not need.
        self.state = replay.state.clone();
        Ok(Recovered {
            metadata,
            hard_state: replay.state.map(|(b, _)| b),
            entries: replay.entries,
        })
    }

    /// Cuts the tail segment back to `off`, keeping a copy of it as `<name>.broken`, and
    /// preallocates it again.
    fn repair(&mut self, off: u64, reason: &str) -> Result<()> {
        let fs = self.opts.fs.clone();
        let Some(tail) = self.segments.last() else {
            return Ok(());
        };
        let path = self.segment_path(tail);
        warn!(path = %path.display(), offset = off, reason, "cutting a torn write off the WAL tail");
        let bytes = tail
            .file
            .read_all()
            .map_err(|e| WalError::io("read", &path, e))?;
        let mut broken = path.clone().into_os_string();
        broken.push(".broken");
        let broken = PathBuf::from(broken);
        let mut bf = fs.open(&broken, true).map_err(|e| open_error(&broken, e))?;
        bf.truncate(0)
            .and_then(|()| bf.write_all_at(&bytes, 0))
            .and_then(|()| bf.sync())
            .map_err(|e| WalError::io("write", &broken, e))?;
        drop(bf);

        let len = bytes.len() as u64;
        let Some(tail) = self.segments.last_mut() else {
            return Ok(());
        };
        tail.file
            .truncate(off)
            .and_then(|()| tail.file.preallocate(len))
            .map_err(|e| WalError::io("truncate", &path, e))?;
        self.unsynced = len - off;
        self.sync()
    }

    fn check_appending(&self) -> Result<()> {
        if self.poisoned {
            return Err(WalError::Poisoned);
        }
        if self.mode != Mode::Appending || self.segments.is_empty() {
            return Err(WalError::NotAppending);
        }
        Ok(())
    }

    /// Appends a hard state (an encoded `raftpb.HardState`; `None` or an all-zero one is not
    /// written) and entries, then syncs once — unless nothing must be synced (no entries, and
    /// term and vote unchanged: raft's `MustSync`). Cuts a new segment when the tail has grown
    /// past the segment size.
    pub fn save(&mut self, hard_state: Option<&[u8]>, entries: &[EntryRef<'_>]) -> Result<()> {
        self.check_appending()?;
        let hs = match hard_state {
            Some(b) => {
                let h = HardState::parse(b)
                    .map_err(|e| WalError::InvalidInput(format!("hard state: {e}")))?;
                (!h.is_empty()).then_some((b, h))
            }
            None => None,
        };
        if hs.is_none() && entries.is_empty() {
            return Ok(());
        }
        for e in entries {
            let pos = parse_entry(e.data)
                .map_err(|err| WalError::InvalidInput(format!("entry {}: {err}", e.index)))?;
            if (pos.index, pos.term) != (e.index, e.term) {
                return Err(WalError::InvalidInput(format!(
                    "entry claims index {} term {}, its bytes say index {} term {}",
                    e.index, e.term, pos.index, pos.term
                )));
            }
        }
        let prev = self.state.as_ref().map(|s| s.1).unwrap_or_default();
        let must_sync = !entries.is_empty()
            || hs.is_some_and(|(_, h)| h.term != prev.term || h.vote != prev.vote);

        self.buf.clear();
        for e in entries {
            encode(
                &mut self.buf,
                &mut self.crc,
                RecordType::Entry,
                Some(e.data),
            );
        }
        if let Some((b, _)) = hs {
            encode(&mut self.buf, &mut self.crc, RecordType::State, Some(b));
        }
        self.append(entries.len() + usize::from(hs.is_some()))?;
        if let Some(e) = entries.last() {
            self.enti = e.index;
        }
        if let Some((b, h)) = hs {
            self.state = Some((b.to_vec(), h));
        }
        if self.tail_off < self.opts.segment_size {
            return if must_sync { self.sync() } else { Ok(()) };
        }
        self.cut()
    }

    /// Records that a snapshot was taken at `snap`, and syncs.
    pub fn save_snapshot(&mut self, snap: WalSnapshot) -> Result<()> {
        self.check_appending()?;
        self.buf.clear();
        let data = snap.encode();
        encode(
            &mut self.buf,
            &mut self.crc,
            RecordType::Snapshot,
            Some(&data),
        );
        self.append(1)?;
        self.enti = self.enti.max(snap.index);
        self.sync()
    }

    /// Closes the tail segment (cut back to its records, synced) and starts the next one,
    /// written in full as `N.tmp` and renamed into place once synced.
    pub fn cut(&mut self) -> Result<()> {
        self.check_appending()?;
        let r = self.cut_inner();
        if r.is_err() {
            self.poisoned = true;
        }
        r
    }

    fn cut_inner(&mut self) -> Result<()> {
        let fs = self.opts.fs.clone();
        let tail_path = self.tail_path();
        let (seq, off) = match self.segments.last_mut() {
            // Give back the preallocated space the segment did not use.
            Some(tail) => {
                tail.file
                    .truncate(self.tail_off)
                    .map_err(|e| WalError::io("truncate", tail_path, e))?;
                (tail.seq, self.tail_off)
            }
            None => return Err(WalError::NotAppending),
        };
        self.sync()?;

        let (seq, index) = (seq + 1, self.enti + 1);
        let path = self.dir.join(segment_name(seq, index));
        let tmp = self.dir.join(format!("{}.tmp", self.cuts % 2));
        self.cuts += 1;
        let mut file = fs.open(&tmp, true).map_err(|e| open_error(&tmp, e))?;
        file.truncate(0)
            .and_then(|()| file.preallocate(self.opts.segment_size))
            .map_err(|e| WalError::io("preallocate", &tmp, e))?;
        self.segments.push(Segment { seq, index, file });
        self.tail_off = 0;
        self.unsynced = 0;

        self.buf.clear();
        encode(&mut self.buf, &mut self.crc, RecordType::Crc, None);
        encode(
            &mut self.buf,
            &mut self.crc,
            RecordType::Metadata,
            Some(&self.metadata),
        );
        let mut records = 2;
        if let Some((b, _)) = &self.state {
            encode(&mut self.buf, &mut self.crc, RecordType::State, Some(b));
            records += 1;
        }
        self.append(records)?;
        self.sync()?;
        fs.rename(&tmp, &path)
            .map_err(|e| WalError::io("rename", &tmp, e))?;
        fs.sync_dir(&self.dir)
            .map_err(|e| WalError::io("sync directory", &self.dir, e))?;
        info!(path = %path.display(), prev_end = off, "created a new WAL segment");
        Ok(())
    }

    /// Releases the locks (and closes) the segments no longer needed once everything before
    /// `index` is in a snapshot: every segment before the last one whose first index is below
    /// `index`. E.g. holding segments that start at 1..=6, `release_lock_to(4)` releases 1 and
    /// 2 and keeps 3 (it may hold entries just before 4).
    pub fn release_lock_to(&mut self, index: u64) -> Result<()> {
        let n = self.segments.len();
        let smaller = match self.segments.iter().position(|s| s.index >= index) {
            Some(i) => i.saturating_sub(1),
            None => n.saturating_sub(1),
        };
        if smaller > 0 {
            self.segments.drain(..smaller);
        }
        Ok(())
    }

    /// Syncs the tail and closes every segment.
    pub fn close(mut self) -> Result<()> {
        if self.mode == Mode::Appending && !self.poisoned && !self.segments.is_empty() {
            self.sync()?;
        }
        self.segments.clear();
        Ok(())
    }

    /// Where the next frame goes in the tail segment.
    #[cfg(test)]
    pub(crate) fn tail_offset(&self) -> u64 {
        self.tail_off
    }

    /// The directory the WAL is in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The segments held open and locked, as `(seq, first index)`, oldest first.
    pub fn segments(&self) -> Vec<(u64, u64)> {
        self.segments.iter().map(|s| (s.seq, s.index)).collect()
    }

    /// Writes the frames in `buf` at the end of the tail.
    fn append(&mut self, records: usize) -> Result<()> {
        let bytes = self.buf.len();
        let t = Timer::start();
        let r = {
            let _span = debug_span!(names::WAL_APPEND, records, bytes).entered();
            match self.segments.last_mut() {
                Some(tail) => tail.file.write_all_at(&self.buf, self.tail_off),
                None => return Err(WalError::NotAppending),
            }
        };
        let ns = t.elapsed_ns();
        self.opts.metrics.wal_append.record(ns);
        telemetry::request::record_with(
            names::WAL_APPEND,
            &t,
            ns,
            &[("wal.records", records as i64), ("wal.bytes", bytes as i64)],
        );
        if let Err(e) = r {
            self.poisoned = true;
            let path = self.tail_path();
            return Err(WalError::io("write", path, e));
        }
        self.tail_off += bytes as u64;
        self.unsynced += bytes as u64;
        Ok(())
    }

    /// fdatasync of the tail.
    fn sync(&mut self) -> Result<()> {
        let t = Timer::start();
        let r = {
            let _span = debug_span!(names::WAL_FSYNC, bytes = self.unsynced).entered();
            match self.segments.last_mut() {
                Some(tail) => tail.file.sync(),
                None => return Err(WalError::NotAppending),
            }
        };
        let ns = t.elapsed_ns();
        self.opts.metrics.wal_fsync.record(ns);
        telemetry::request::record_with(
            names::WAL_FSYNC,
            &t,
            ns,
            &[(
                "wal.bytes",
                i64::try_from(self.unsynced).unwrap_or(i64::MAX),
            )],
        );
        if let Err(e) = r {
            // After a failed fdatasync the kernel may have dropped the dirty pages: nothing
            // written since the last good sync can be trusted.
            self.poisoned = true;
            let path = self.tail_path();
            return Err(WalError::io("fdatasync", path, e));
        }
        let took = t.elapsed();
        if took > WARN_SYNC {
            warn!(took_ms = took.as_millis() as u64, "slow WAL fdatasync");
        }
        self.unsynced = 0;
        Ok(())
    }

    fn tail_path(&self) -> PathBuf {
        match self.segments.last() {
            Some(s) => self.segment_path(s),
            None => self.dir.clone(),
        }
    }
}
