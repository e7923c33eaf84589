//! Whole-WAL tests: etcd's bytes (golden), round trips across segments, raft's overwrite
//! rule, a torn tail at every byte, a flipped bit at every bit of the log, crashes at every
//! write and sync, and a model-based run of random operation sequences.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use proptest::prelude::*;
use telemetry::Metrics;

use super::record::put_uvarint;
use super::*;

/// A realistic etcd member id: votes are these, not small numbers.
const MEMBER: u64 = 0x8e9e_05c5_2164_694d;

/// A `raftpb.Entry{Type: EntryNormal, Term, Index, Data}` as gogo encodes it.
fn entry_bytes(index: u64, term: u64, data: &[u8]) -> Vec<u8> {
    let mut b = vec![0x08, 0x00, 0x10];
    put_uvarint(&mut b, term);
    b.push(0x18);
    put_uvarint(&mut b, index);
    b.push(0x22);
    put_uvarint(&mut b, data.len() as u64);
    b.extend_from_slice(data);
    b
}

/// A `raftpb.HardState{Term, Vote, Commit}` as gogo encodes it.
fn hard_state(term: u64, vote: u64, commit: u64) -> Vec<u8> {
    let mut b = vec![0x08];
    put_uvarint(&mut b, term);
    b.push(0x10);
    put_uvarint(&mut b, vote);
    b.push(0x18);
    put_uvarint(&mut b, commit);
    b
}

fn ent(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: entry_bytes(
            index,
            term,
            format!("put key{index} = value at term {term}").as_bytes(),
        ),
    }
}

fn wal_dir() -> PathBuf {
    PathBuf::from("/data/member/wal")
}

fn mem_opts(fs: &MemFs, segment_size: u64) -> Options {
    Options {
        segment_size,
        fs: Arc::new(fs.clone()),
        metrics: Arc::new(Metrics::new()),
    }
}

fn save(w: &mut Wal, hs: Option<&[u8]>, ents: &[Entry]) -> Result<()> {
    let refs: Vec<_> = ents.iter().map(Entry::as_ref).collect();
    w.save(hs, &refs)
}

fn reopen(fs: &MemFs, segment_size: u64, snap: WalSnapshot) -> Result<(Wal, Recovered)> {
    let mut w = Wal::open_with(&wal_dir(), snap, mem_opts(fs, segment_size))?;
    let r = w.read_all()?;
    Ok((w, r))
}

fn segment_files(fs: &MemFs) -> Vec<(u64, u64)> {
    let mut v: Vec<_> = fs
        .read_dir(&wal_dir())
        .unwrap()
        .iter()
        .filter_map(|n| parse_segment_name(n))
        .collect();
    v.sort_unstable();
    v
}

/// Go's `crc32.Update(crc, crc32.MakeTable(crc32.Castagnoli), p)`, bit by bit: an independent
/// reference for the CRC the WAL chains.
fn go_crc32_update(crc: u32, data: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 == 1 {
                (c >> 1) ^ 0x82f6_3b78
            } else {
                c >> 1
            };
        }
    }
    !c
}

#[test]
fn crc32c_append_is_gos_castagnoli_update() {
    assert_eq!(go_crc32_update(0, b"123456789"), 0xe306_9283);
    assert_eq!(crc32c::crc32c_append(0, b"123456789"), 0xe306_9283);
    // Chaining: etcd's rolling crc over two records equals the crc of both payloads at once.
    let a = crc32c::crc32c_append(0, b"first");
    assert_eq!(
        crc32c::crc32c_append(a, b"second"),
        crc32c::crc32c(b"firstsecond")
    );
}

proptest! {
    #[test]
    fn crc32c_append_matches_go_for_any_input(prev: u32, data in proptest::collection::vec(any::<u8>(), 0..300)) {
        prop_assert_eq!(crc32c::crc32c_append(prev, &data), go_crc32_update(prev, &data));
    }
}

/// What etcd 3.4 writes for `wal.Create(dir, metadata)` followed by
/// `w.Save(HardState{Term: 1, Vote: 1, Commit: 1}, []Entry{{Term: 1, Index: 1, Data: "hi"}})`,
/// built by hand from `wal/encoder.go` and the gogo-generated `Marshal`s (CRCs from an
/// independent bitwise CRC-32C, which reproduces etcd's own `record_test.go` vector).
#[rustfmt::skip]
const GOLDEN: [u8; 120] = [
    // crc record: len 4 | pad 4 (0x84); type 4, crc 0, no data; 4 zero bytes
    0x04, 0, 0, 0, 0, 0, 0, 0x84,  0x08, 0x04, 0x10, 0x00, 0, 0, 0, 0,
    // metadata `08 01 10 02` (NodeID 1, ClusterID 2): len 14 | pad 2; crc 0xc59c3b29
    0x0e, 0, 0, 0, 0, 0, 0, 0x82,  0x08, 0x01, 0x10, 0xa9, 0xf6, 0xf0, 0xac, 0x0c,
    0x1a, 0x04, 0x08, 0x01, 0x10, 0x02, 0, 0,
    // snapshot walpb.Snapshot{} = `08 00 10 00`: len 14 | pad 2; crc 0xdfbfe799
    0x0e, 0, 0, 0, 0, 0, 0, 0x82,  0x08, 0x05, 0x10, 0x99, 0xcf, 0xff, 0xfd, 0x0d,
    0x1a, 0x04, 0x08, 0x00, 0x10, 0x00, 0, 0,
    // entry `08 00 10 01 18 01 22 02 'h' 'i'`: len 20 | pad 4; crc 0x971c0fb7
    0x14, 0, 0, 0, 0, 0, 0, 0x84,  0x08, 0x02, 0x10, 0xb7, 0x9f, 0xf0, 0xb8, 0x09,
    0x1a, 0x0a, 0x08, 0x00, 0x10, 0x01, 0x18, 0x01,  0x22, 0x02, b'h', b'i', 0, 0, 0, 0,
    // state `08 01 10 01 18 01`: len 16, no padding (top byte 0); crc 0x4a7d7cd5
    0x10, 0, 0, 0, 0, 0, 0, 0x00,  0x08, 0x03, 0x10, 0xd5, 0xf9, 0xf5, 0xd3, 0x04,
    0x1a, 0x06, 0x08, 0x01, 0x10, 0x01, 0x18, 0x01,
];

#[test]
fn golden_bytes_match_etcd() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("member").join("wal");
    let mut w = Wal::create(&dir, &[0x08, 0x01, 0x10, 0x02]).unwrap();
    let e = entry_bytes(1, 1, b"hi");
    assert_eq!(
        e,
        [0x08, 0x00, 0x10, 0x01, 0x18, 0x01, 0x22, 0x02, b'h', b'i']
    );
    w.save(
        Some(&hard_state(1, 1, 1)),
        &[EntryRef {
            index: 1,
            term: 1,
            data: &e,
        }],
    )
    .unwrap();
    w.close().unwrap();

    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["0000000000000000-0000000000000000.wal"]);
    assert!(!tmp.path().join("member").join("wal.tmp").exists());
    let bytes = std::fs::read(dir.join(&names[0])).unwrap();
    assert_eq!(bytes.len() as u64, SEGMENT_SIZE_BYTES, "preallocated");
    assert_eq!(&bytes[..GOLDEN.len()], &GOLDEN[..]);
    assert!(bytes[GOLDEN.len()..].iter().all(|&b| b == 0));

    // And what etcd wrote reads back.
    let mut w = Wal::open(&dir, WalSnapshot::default()).unwrap();
    let r = w.read_all().unwrap();
    assert_eq!(r.metadata, [0x08, 0x01, 0x10, 0x02]);
    assert_eq!(r.hard_state, Some(hard_state(1, 1, 1)));
    assert_eq!(
        r.entries,
        [Entry {
            index: 1,
            term: 1,
            data: e
        }]
    );
}

#[test]
fn round_trip_across_segments() {
    let fs = MemFs::new();
    let seg = 1024;
    let mut w = Wal::create_with(&wal_dir(), b"meta", mem_opts(&fs, seg)).unwrap();
    let mut all = Vec::new();
    let mut last_hs = Vec::new();
    for i in 1..=150u64 {
        let term = 1 + i / 50;
        let e = ent(i, term);
        last_hs = hard_state(term, MEMBER, i - 1);
        save(&mut w, Some(&last_hs), std::slice::from_ref(&e)).unwrap();
        all.push(e);
        if i == 60 {
            w.save_snapshot(WalSnapshot { index: 60, term: 2 }).unwrap();
        }
    }
    w.close().unwrap();

    let files = segment_files(&fs);
    assert!(files.len() >= 5, "{files:?}");
    for (i, pair) in files.windows(2).enumerate() {
        assert_eq!(pair[1].0, pair[0].0 + 1, "sequence at {i}");
        assert!(pair[1].1 > pair[0].1, "first indexes increase: {files:?}");
    }
    // Every cut segment was truncated to its records (no preallocated space left behind).
    // A cut segment is truncated to its records: just past the segment size, where the save
    // that crossed it ended.
    let first = fs
        .contents(&wal_dir().join(segment_name(files[0].0, files[0].1)))
        .unwrap();
    let len = first.len() as u64;
    assert!((seg..seg + 200).contains(&len), "{len}");

    let (w, r) = reopen(&fs, seg, WalSnapshot::default()).unwrap();
    assert_eq!(r.metadata, b"meta");
    assert_eq!(r.hard_state.as_deref(), Some(&last_hs[..]));
    assert_eq!(r.entries, all);
    assert_eq!(w.segments(), files);
    drop(w);

    // From the snapshot: only the segments from the one holding index 60 are opened.
    let (mut w, r) = reopen(&fs, seg, WalSnapshot { index: 60, term: 2 }).unwrap();
    assert_eq!(r.entries, all[60..]);
    let held = w.segments();
    assert!(held[0].1 <= 60 && held.len() < files.len(), "{held:?}");
    // Appending after a reopen continues the chain.
    let more = [ent(151, 4), ent(152, 4)];
    save(&mut w, Some(&hard_state(4, MEMBER, 150)), &more).unwrap();
    w.close().unwrap();
    let (_, r) = reopen(&fs, seg, WalSnapshot::default()).unwrap();
    all.extend(more);
    assert_eq!(r.entries, all);
    assert_eq!(r.hard_state, Some(hard_state(4, MEMBER, 150)));
}

#[test]
fn snapshot_must_be_in_the_wal() {
    let fs = MemFs::new();
    let mut w = Wal::create_with(&wal_dir(), b"m", mem_opts(&fs, 4096)).unwrap();
    save(&mut w, None, &[ent(1, 1), ent(2, 1)]).unwrap();
    w.save_snapshot(WalSnapshot { index: 2, term: 1 }).unwrap();
    w.close().unwrap();
    let err = reopen(&fs, 4096, WalSnapshot { index: 2, term: 3 }).unwrap_err();
    assert!(matches!(err, WalError::SnapshotMismatch { .. }), "{err}");
    let err = reopen(&fs, 4096, WalSnapshot { index: 1, term: 1 }).unwrap_err();
    assert!(matches!(err, WalError::SnapshotNotFound { .. }), "{err}");
    let (_, r) = reopen(&fs, 4096, WalSnapshot { index: 2, term: 1 }).unwrap();
    assert!(r.entries.is_empty());
}

#[test]
fn later_entries_overwrite_from_their_index_on() {
    let fs = MemFs::new();
    let mut w = Wal::create_with(&wal_dir(), b"m", mem_opts(&fs, 4096)).unwrap();
    let first: Vec<_> = (1..=10).map(|i| ent(i, 1)).collect();
    save(&mut w, Some(&hard_state(1, MEMBER, 3)), &first).unwrap();
    // A new leader at term 2 replaces 6..=10 with 6..=8.
    let second: Vec<_> = (6..=8).map(|i| ent(i, 2)).collect();
    save(&mut w, Some(&hard_state(2, MEMBER, 5)), &second).unwrap();
    w.close().unwrap();
    let (mut w, r) = reopen(&fs, 4096, WalSnapshot::default()).unwrap();
    let want: Vec<_> = first[..5].iter().chain(&second).cloned().collect();
    assert_eq!(r.entries, want);

    // After a reopen too, and from a snapshot start.
    save(&mut w, None, &[ent(4, 3)]).unwrap();
    w.save_snapshot(WalSnapshot { index: 2, term: 1 }).unwrap();
    w.close().unwrap();
    let (_, r) = reopen(&fs, 4096, WalSnapshot { index: 2, term: 1 }).unwrap();
    assert_eq!(r.entries, [ent(3, 1), ent(4, 3)]);
}

#[test]
fn an_entry_leaving_a_gap_is_an_error() {
    let fs = MemFs::new();
    let mut w = Wal::create_with(&wal_dir(), b"m", mem_opts(&fs, 4096)).unwrap();
    save(&mut w, None, &[ent(1, 1), ent(2, 1)]).unwrap();
    save(&mut w, None, &[ent(5, 1)]).unwrap();
    w.close().unwrap();
    let err = reopen(&fs, 4096, WalSnapshot::default()).unwrap_err();
    assert!(
        matches!(
            err,
            WalError::EntryGap {
                index: 5,
                max: 3,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn save_checks_its_input_and_skips_what_etcd_skips() {
    let fs = MemFs::new();
    let mut w = Wal::create_with(&wal_dir(), b"m", mem_opts(&fs, 4096)).unwrap();
    let e = ent(1, 1);
    let lie = EntryRef {
        index: 2,
        ..e.as_ref()
    };
    assert!(matches!(
        w.save(None, &[lie]),
        Err(WalError::InvalidInput(_))
    ));
    let ops = fs.ops();
    // Nothing to write: no write, no sync (etcd's short cut).
    w.save(None, &[]).unwrap();
    w.save(Some(&hard_state(0, 0, 0)), &[]).unwrap();
    assert_eq!(fs.ops(), ops);
    // A new term must be synced; a commit-only change need not be.
    w.save(Some(&hard_state(1, MEMBER, 0)), &[]).unwrap();
    assert_eq!(fs.ops(), ops + 2, "write + sync");
    w.save(Some(&hard_state(1, MEMBER, 1)), &[]).unwrap();
    assert_eq!(fs.ops(), ops + 3, "write only");
    w.close().unwrap();
    let (_, r) = reopen(&fs, 4096, WalSnapshot::default()).unwrap();
    assert_eq!(r.hard_state, Some(hard_state(1, MEMBER, 1)));
}

#[test]
fn segments_are_locked_while_in_use() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let opts = Options {
        segment_size: 1024,
        ..Options::default()
    };
    let mut w = Wal::create_with(&dir, b"m", opts.clone()).unwrap();
    for i in 1..=60 {
        save(&mut w, None, &[ent(i, 1)]).unwrap();
    }
    w.save_snapshot(WalSnapshot { index: 40, term: 1 }).unwrap();
    let held = w.segments();
    assert!(held.len() >= 3, "{held:?}");
    let err = Wal::open_with(&dir, WalSnapshot::default(), opts.clone()).unwrap_err();
    assert!(matches!(err, WalError::Locked(_)), "{err}");
    // Segments wholly before the snapshot are released: etcd's rule keeps the last segment
    // starting below the index.
    w.release_lock_to(40).unwrap();
    let kept = w.segments();
    let smaller = match held.iter().position(|s| s.1 >= 40) {
        Some(i) => i.saturating_sub(1),
        None => held.len() - 1,
    };
    assert_eq!(kept, held[smaller..]);
    assert!(kept[0].1 < 40);
    let r = Wal::open_with(&dir, WalSnapshot::default(), opts.clone());
    assert!(
        matches!(r, Err(WalError::Locked(_))),
        "the tail is still held"
    );
    w.close().unwrap();
    let mut w = Wal::open_with(&dir, WalSnapshot { index: 40, term: 1 }, opts).unwrap();
    let r = w.read_all().unwrap();
    assert_eq!(r.entries, (41..=60).map(|i| ent(i, 1)).collect::<Vec<_>>());
}

#[test]
fn create_refuses_an_existing_wal_and_replaces_a_stale_tmp_dir() {
    let fs = MemFs::new();
    let tmp = PathBuf::from("/data/member/wal.tmp");
    fs.create_dir_all(&tmp).unwrap();
    fs.set_contents(&tmp.join("junk"), b"junk".to_vec());
    let w = Wal::create_with(&wal_dir(), b"m", mem_opts(&fs, 4096)).unwrap();
    assert!(!fs.exists(&tmp));
    w.close().unwrap();
    let err = Wal::create_with(&wal_dir(), b"m", mem_opts(&fs, 4096)).unwrap_err();
    assert!(matches!(err, WalError::Exists(_)), "{err}");
}

/// A WAL of single-record saves; returns the segment path, its bytes, and the frame range of
/// every record saved after creation.
fn single_record_log(fs: &MemFs, n: u64) -> (PathBuf, Vec<u8>, Vec<(usize, usize)>) {
    let mut w = Wal::create_with(&wal_dir(), b"\x08\x01\x10\x02", mem_opts(fs, 8192)).unwrap();
    let mut frames = Vec::new();
    let mut index = 0;
    for i in 1..=n {
        let start = w.tail_offset() as usize;
        if i % 3 == 0 {
            save(&mut w, Some(&hard_state(1, MEMBER, index)), &[]).unwrap();
        } else {
            index += 1;
            save(&mut w, None, &[ent(index, 1)]).unwrap();
        }
        frames.push((start, w.tail_offset() as usize));
    }
    w.close().unwrap();
    let path = wal_dir().join(segment_name(0, 0));
    let bytes = fs.contents(&path).unwrap();
    (path, bytes, frames)
}

fn entries_of(r: &Recovered) -> Vec<u64> {
    r.entries.iter().map(|e| e.index).collect()
}

#[test]
fn torn_tail_at_every_byte_of_the_last_record_is_cut_back() {
    let fs = MemFs::new();
    let (path, full, frames) = single_record_log(&fs, 8);
    let (start, end) = *frames.last().unwrap();
    let pad = usize::from(full[start + 7] & 0x07);
    let before: Vec<u64> = (1..=5).collect();
    let all: Vec<u64> = (1..=6).collect();
    for b in start..end {
        for truncated in [false, true] {
            let img = fs.crash_image(Crash::LoseUnsynced);
            let mut bytes = full.clone();
            if truncated {
                bytes.truncate(b);
            } else {
                bytes[b..end].fill(0);
            }
            img.set_contents(&path, bytes);
            let what = format!("torn at byte {b} (record {start}..{end}), truncated: {truncated}");
            let (mut w, r) = reopen(&img, 8192, WalSnapshot::default())
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            // Zeroing only the padding leaves the record whole.
            let whole = !truncated && b >= end - pad;
            assert_eq!(
                &entries_of(&r),
                if whole { &all } else { &before },
                "{what}"
            );
            let mut broken = path.clone().into_os_string();
            broken.push(".broken");
            assert_eq!(
                img.exists(Path::new(&broken)),
                b > start && !whole,
                "{what}"
            );
            // The log goes on from the cut, and what is appended reads back.
            let next = if whole { 7 } else { 6 };
            save(&mut w, None, &[ent(next, 2)]).unwrap();
            w.close().unwrap();
            let (_, r) = reopen(&img, 8192, WalSnapshot::default()).unwrap();
            assert_eq!(
                r.entries.last().map(|e| (e.index, e.term)),
                Some((next, 2)),
                "{what}"
            );
        }
    }
}

#[test]
fn a_flipped_bit_anywhere_before_the_tail_is_reported() {
    let fs = MemFs::new();
    let (path, full, frames) = single_record_log(&fs, 9);
    let name = segment_name(0, 0);
    // Every bit of every record but the last (the tail, where damage can be a torn write).
    let tail_start = frames.last().unwrap().0;
    let mut accepted = Vec::new();
    for byte in 0..tail_start {
        for bit in 0..8 {
            let img = fs.crash_image(Crash::LoseUnsynced);
            let mut bytes = full.clone();
            bytes[byte] ^= 1 << bit;
            img.set_contents(&path, bytes);
            match reopen(&img, 8192, WalSnapshot::default()) {
                Ok((_, r)) => accepted.push((byte, bit, entries_of(&r))),
                Err(e) => {
                    let msg = e.to_string();
                    assert!(msg.contains(&name), "byte {byte} bit {bit}: {msg}");
                    assert!(e.offset().is_some(), "byte {byte} bit {bit}: {msg}");
                }
            }
        }
    }
    assert!(
        accepted.is_empty(),
        "flips read back without an error: {accepted:?}"
    );
}

#[test]
fn a_flipped_bit_in_a_middle_record_names_its_offset() {
    let fs = MemFs::new();
    let (path, full, frames) = single_record_log(&fs, 9);
    let (start, end) = frames[3]; // entry 3, between entries and hard states
    for byte in start..end {
        for bit in 0..8 {
            let img = fs.crash_image(Crash::LoseUnsynced);
            let mut bytes = full.clone();
            bytes[byte] ^= 1 << bit;
            img.set_contents(&path, bytes);
            let err = reopen(&img, 8192, WalSnapshot::default())
                .map(|(_, r)| entries_of(&r))
                .expect_err("a flipped bit must not be read back");
            assert_eq!(
                err.offset(),
                Some(start as u64),
                "byte {byte} bit {bit}: {err}"
            );
        }
    }
}

#[test]
fn damage_in_an_earlier_segment_is_never_taken_for_a_torn_tail() {
    let fs = MemFs::new();
    let seg = 512;
    let mut w = Wal::create_with(&wal_dir(), b"meta", mem_opts(&fs, seg)).unwrap();
    for i in 1..=40 {
        save(&mut w, None, &[ent(i, 1)]).unwrap();
    }
    w.close().unwrap();
    let files = segment_files(&fs);
    assert!(files.len() >= 3, "{files:?}");
    let (s, i) = files[1];
    let name = segment_name(s, i);
    let path = wal_dir().join(&name);
    let full = fs.contents(&path).unwrap();
    // Cut short, or its tail zeroed: in the last segment both would be torn writes.
    let mut zeroed = full.clone();
    let n = zeroed.len();
    zeroed[n - 20..].fill(0);
    for bytes in [full[..full.len() - 5].to_vec(), zeroed] {
        let img = fs.crash_image(Crash::LoseUnsynced);
        img.set_contents(&path, bytes);
        let err = reopen(&img, seg, WalSnapshot::default()).unwrap_err();
        assert!(err.to_string().contains(&name), "{err}");
        assert!(err.offset().is_some(), "{err}");
    }
}

/// Crashes at every write and sync of a workload: what reopens is every save that returned
/// `Ok` after a sync, possibly followed by what was in flight; the hard state is the last
/// synced one or one written after it.
#[test]
fn crash_at_every_step_keeps_every_synced_save() {
    let seg = 700;
    let crashes = [
        Crash::LoseUnsynced,
        Crash::TornLastWrite { keep: 0 },
        Crash::TornLastWrite { keep: 5 },
        Crash::TornLastWrite { keep: 8 },
        Crash::TornLastWrite { keep: 13 },
        Crash::TornLastWrite { keep: 60 },
    ];
    for crash in crashes {
        let mut step = 0;
        loop {
            let fs = MemFs::new();
            fs.crash_after(step);
            let mut acked: Vec<Entry> = Vec::new();
            let mut attempted: Vec<Entry> = Vec::new();
            let mut created = false;
            // Hard states that may be the last one on disk: the last synced and any after it.
            let mut maybe: Vec<Vec<u8>> = Vec::new();
            let result = (|| -> Result<()> {
                let mut w = Wal::create_with(&wal_dir(), b"meta", mem_opts(&fs, seg))?;
                created = true;
                for i in 1..=24u64 {
                    let term = 1 + i / 10;
                    if i % 4 == 0 {
                        // Commit-only: written, not synced.
                        let hs = hard_state(term, MEMBER, i - 2);
                        maybe.push(hs.clone());
                        save(&mut w, Some(&hs), &[])?;
                    }
                    let e = ent(i, term);
                    attempted.push(e.clone());
                    let hs = hard_state(term, MEMBER, i - 1);
                    maybe.push(hs.clone());
                    save(&mut w, Some(&hs), std::slice::from_ref(&e))?;
                    acked.push(e);
                    maybe = vec![hs];
                    if i == 12 {
                        w.save_snapshot(WalSnapshot { index: 12, term })?;
                    }
                }
                w.close()
            })();
            let done = result.is_ok();
            let img = fs.crash_image(crash);
            match reopen(&img, seg, WalSnapshot::default()) {
                Ok((_, r)) => {
                    let n = r.entries.len();
                    assert!(
                        n >= acked.len(),
                        "step {step} {crash:?}: lost acked entries"
                    );
                    assert_eq!(r.entries, attempted[..n], "step {step} {crash:?}");
                    match &r.hard_state {
                        Some(hs) => assert!(maybe.contains(hs), "step {step} {crash:?}"),
                        None => assert!(acked.is_empty(), "step {step} {crash:?}"),
                    }
                    if done {
                        assert_eq!(n, acked.len());
                    }
                }
                Err(e) => assert!(!created, "step {step} {crash:?}: created, then: {e}"),
            }
            if done {
                break;
            }
            step += 1;
        }
        assert!(
            step > 50,
            "the workload should take many steps, took {step}"
        );
    }
}

#[test]
fn measurements_are_recorded() {
    let fs = MemFs::new();
    let metrics = Arc::new(Metrics::new());
    let opts = Options {
        metrics: metrics.clone(),
        ..mem_opts(&fs, 4096)
    };
    let (capture, _guard) = telemetry::capture::Capture::install();
    let mut w = Wal::create_with(&wal_dir(), b"m", opts).unwrap();
    save(&mut w, Some(&hard_state(1, MEMBER, 0)), &[ent(1, 1)]).unwrap();
    w.close().unwrap();
    assert!(metrics.wal_append.count() >= 2);
    assert!(metrics.wal_fsync.count() >= 2);
    let fsyncs = capture.spans_named(telemetry::names::WAL_FSYNC);
    assert!(fsyncs
        .iter()
        .any(|s| s.field("bytes").is_some_and(|b| b != "0")));
    let appends = capture.spans_named(telemetry::names::WAL_APPEND);
    assert!(appends.iter().any(|s| s.field("records") == Some("2")));
}

#[derive(Debug, Clone)]
enum Op {
    /// Append `n` entries starting `back` entries before the end (an overwrite when > 0).
    Save {
        back: u64,
        n: u64,
        commit_only: bool,
    },
    Snapshot,
    Cut,
    Reopen,
    Release,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u64..4, 1u64..6, any::<bool>()).prop_map(|(back, n, commit_only)| Op::Save { back, n, commit_only }),
        1 => Just(Op::Snapshot),
        1 => Just(Op::Cut),
        2 => Just(Op::Reopen),
        1 => Just(Op::Release),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Random operation sequences against a model log (a `Vec` with raft's overwrite rule).
    #[test]
    fn model_based(ops in proptest::collection::vec(op(), 1..40)) {
        let fs = MemFs::new();
        let seg = 512;
        let mut w = Wal::create_with(&wal_dir(), b"meta", mem_opts(&fs, seg)).unwrap();
        let mut model: Vec<Entry> = Vec::new();
        let mut term = 1;
        let mut snap = WalSnapshot::default();
        let mut commit = 0;
        for op in ops {
            match op {
                Op::Save { back, n, commit_only } => {
                    if commit_only {
                        commit = commit.max(model.len() as u64 / 2);
                        save(&mut w, Some(&hard_state(term, MEMBER, commit)), &[]).unwrap();
                        continue;
                    }
                    // Never overwrite what a snapshot holds.
                    let last = model.len() as u64;
                    let from = last.saturating_sub(back).max(snap.index) + 1;
                    if back > 0 { term += 1; }
                    model.truncate((from - 1) as usize);
                    let new: Vec<_> = (from..from + n).map(|i| ent(i, term)).collect();
                    model.extend(new.iter().cloned());
                    save(&mut w, Some(&hard_state(term, MEMBER, commit)), &new).unwrap();
                }
                Op::Snapshot => {
                    if let Some(e) = model.get(commit as usize) {
                        snap = WalSnapshot { index: e.index, term: e.term };
                        w.save_snapshot(snap).unwrap();
                    }
                }
                Op::Cut => w.cut().unwrap(),
                Op::Release => w.release_lock_to(snap.index).unwrap(),
                Op::Reopen => {
                    w.close().unwrap();
                    let (w2, r) = reopen(&fs, seg, snap).unwrap();
                    prop_assert_eq!(&r.entries[..], &model[snap.index as usize..]);
                    w = w2;
                }
            }
        }
        w.close().unwrap();
        let (_, r) = reopen(&fs, seg, snap).unwrap();
        prop_assert_eq!(&r.entries[..], &model[snap.index as usize..]);
        let (_, r) = reopen(&fs, seg, WalSnapshot::default()).unwrap();
        prop_assert_eq!(r.entries, model);
    }
}
