//! Crash safety of a real `glassd`: 16 concurrent writers, the process SIGKILLed at a random
//! moment, restarted on the same data directory — every acknowledged put is there with the
//! revision it was acknowledged with, revisions never go backwards, and the reference bbolt
//! (`boltcheck check`) accepts `member/snap/db` after every kill. 20 rounds.
//!
//! And the WAL at server level: a torn tail (the last record cut at every offset) is repaired
//! at start; a flipped bit in the middle of the WAL stops the start with the file and offset.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{Client, GetOptions};
use glass_tests::member::{Kind, Member};
use rand::{Rng, SeedableRng};

const WRITERS: usize = 16;
const ROUNDS: usize = 20;

/// key → (value, revision it was acknowledged at).
type Acked = Arc<Mutex<BTreeMap<String, (String, i64)>>>;

fn db_path(dir: &Path) -> PathBuf {
    dir.join("member/snap/db")
}

fn boltcheck_ok(db: &Path) {
    let (ok, out) = glass_tests::bolt(&["check", glass_tests::s(db)]);
    assert!(ok, "boltcheck check {}: {out}", db.display());
}

async fn writer(endpoint: String, id: usize, round: usize, acked: Acked) {
    let Ok(mut c) = Client::connect([endpoint], None).await else {
        return;
    };
    for seq in 0.. {
        let key = format!("r{round:02}/w{id:02}/{seq:06}");
        let value = format!("{round}-{id}-{seq}");
        match c.put(key.clone(), value.clone(), None).await {
            Ok(r) => {
                let rev = r.header().unwrap().revision();
                acked.lock().unwrap().insert(key, (value, rev));
            }
            // The server is gone: nothing after this was acknowledged.
            Err(_) => return,
        }
    }
}

async fn verify(endpoint: &str, acked: &Acked, last_rev: &mut i64) {
    let mut c = Client::connect([endpoint.to_string()], None).await.unwrap();
    let all = c
        .get("", Some(GetOptions::new().with_all_keys()))
        .await
        .unwrap();
    let rev = all.header().unwrap().revision();
    assert!(
        rev >= *last_rev,
        "revision went back from {last_rev} to {rev}"
    );
    *last_rev = rev;
    let have: BTreeMap<String, (String, i64)> = all
        .kvs()
        .iter()
        .map(|kv| {
            (
                kv.key_str().unwrap().to_string(),
                (kv.value_str().unwrap().to_string(), kv.mod_revision()),
            )
        })
        .collect();
    let acked = acked.lock().unwrap();
    for (k, (v, r)) in acked.iter() {
        match have.get(k) {
            Some((hv, hr)) => assert_eq!((hv, hr), (v, r), "key {k}"),
            None => panic!("acknowledged put {k} at revision {r} is lost"),
        }
    }
    // Every revision up to the current one is taken by exactly one put (one key per put).
    let mut revs: Vec<i64> = have.values().map(|(_, r)| *r).collect();
    revs.sort_unstable();
    revs.dedup();
    assert_eq!(revs.len(), have.len(), "two keys share a revision");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_concurrent_writes_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Member::start(Kind::Glassd, dir.path(), &[]);
    let seed = std::env::var("GLASS_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let acked: Acked = Arc::default();
    let mut last_rev = 1;
    for round in 0..ROUNDS {
        let tasks: Vec<_> = (0..WRITERS)
            .map(|id| tokio::spawn(writer(m.endpoint(), id, round, acked.clone())))
            .collect();
        let ms = rng.gen_range(20..300);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        m.kill();
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .expect("a writer hangs after the kill")
                .unwrap();
        }
        boltcheck_ok(&db_path(&m.data_dir()));
        m.restart();
        verify(&m.endpoint(), &acked, &mut last_rev).await;
    }
    let n = acked.lock().unwrap().len();
    assert!(
        n > ROUNDS * WRITERS,
        "only {n} puts acknowledged in {ROUNDS} rounds"
    );
    eprintln!("{ROUNDS} rounds, {n} acknowledged puts, final revision {last_rev}, seed {seed:#x}");
}

/// The WAL segment files of a member, in order.
fn wal_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("member/wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    v.sort();
    v
}

/// The byte ranges of the WAL records in a segment: each frame is an 8-byte little-endian
/// length word (low 56 bits: record bytes; top bit set: the low 3 bits of the top byte are
/// padding bytes) then the record and its padding. Zeros (the preallocated rest) end it.
fn wal_frames(file: &Path) -> Vec<(usize, usize)> {
    let b = std::fs::read(file).unwrap();
    let mut frames = Vec::new();
    let mut off = 0;
    while off + 8 <= b.len() {
        let word = u64::from_le_bytes(b[off..off + 8].try_into().unwrap());
        let len = (word & 0x00ff_ffff_ffff_ffff) as usize;
        if len == 0 {
            break;
        }
        let pad = if word >> 63 == 1 {
            ((word >> 56) & 0x7) as usize
        } else {
            0
        };
        let end = off + 8 + len + pad;
        frames.push((off, end));
        off = end;
    }
    frames
}

async fn write_keys(m: &Member, n: usize) {
    let mut c = Client::connect([m.endpoint()], None).await.unwrap();
    for i in 0..n {
        c.put(format!("k{i:03}"), format!("v{i}"), None)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_wal_tail_is_repaired_and_a_flipped_bit_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    // No backend commit while writing: the WAL alone holds the puts, as when a crash comes
    // between the WAL's fsync and the backend's next commit.
    let extra = ["--backend-batch-interval", "1h"];
    let mut m = Member::start(Kind::Glassd, dir.path(), &extra);
    write_keys(&m, 20).await;
    m.kill();
    let data = m.data_dir();
    let wal = wal_files(&data).pop().unwrap();
    let frames = wal_frames(&wal);
    let (last_start, end) = *frames.last().unwrap();
    let pristine = std::fs::read(&wal).unwrap();
    let db = std::fs::read(db_path(&data)).unwrap();
    // The last record cut at every offset inside it, as a crash in its write leaves it.
    for cut in last_start + 1..end {
        let mut torn = pristine.clone();
        for b in &mut torn[cut..end] {
            *b = 0;
        }
        std::fs::write(&wal, &torn).unwrap();
        std::fs::write(db_path(&data), &db).unwrap();
        m.restart();
        let mut c = Client::connect([m.endpoint()], None).await.unwrap();
        let r = c
            .get("k", Some(GetOptions::new().with_prefix()))
            .await
            .unwrap();
        // The torn record is lost (the last put, or a hard state after it); nothing else.
        assert!(r.count() >= 19, "cut at {cut}: {} keys", r.count());
        let rev = r.header().unwrap().revision();
        assert_eq!(rev, r.count() + 1, "cut at {cut}: revisions not contiguous");
        let p = c.put("after", "x", None).await.unwrap();
        assert_eq!(p.header().unwrap().revision(), rev + 1);
        m.kill();
    }
    // A flipped bit in the middle: glassd refuses to start and names the file and offset.
    std::fs::write(&wal, &pristine).unwrap();
    let mut bad = pristine.clone();
    let mid = frames[frames.len() / 2].0 + 12;
    bad[mid] ^= 0x10;
    std::fs::write(&wal, &bad).unwrap();
    let (ok, _, stderr) = glass_tests::glassd(&[
        "--name",
        glass_tests::member::MEMBER_NAME,
        "--data-dir",
        glass_tests::s(&data),
        "--listen-client-urls",
        "http://127.0.0.1:0",
        "--advertise-client-urls",
        "http://127.0.0.1:2379",
        "--listen-peer-urls",
        "http://127.0.0.1:0",
        "--initial-advertise-peer-urls",
        &m.peer_url(),
        "--initial-cluster",
        &format!("{}={}", glass_tests::member::MEMBER_NAME, m.peer_url()),
    ]);
    assert!(!ok, "glassd started on a WAL with a flipped bit");
    let name = wal.file_name().unwrap().to_str().unwrap();
    assert!(
        stderr.contains(name),
        "the error does not name the file: {stderr}"
    );
    assert!(
        stderr.to_lowercase().contains("crc") || stderr.contains("offset"),
        "the error does not say what is wrong: {stderr}"
    );
}
