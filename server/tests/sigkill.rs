//! A real SIGKILL of a writer process loses no acknowledged transaction.
//!
//! This test binary is its own victim: `sigkill_loses_no_acknowledged_tx` starts it again
//! filtered to `child_writer`, with `GLASS_SIGKILL_CHILD` telling that copy to write (without
//! the variable `child_writer` does nothing). The child commits transactions in a loop and
//! acknowledges each on stdout once `commit` has returned; the parent reads a random number of
//! acknowledgements, kills the child with SIGKILL (usually in the middle of its next commit)
//! and then checks the file: consistent for Glass (and, every 10th round, for the reference
//! bbolt), at a txid no older than the last acknowledged one, with every acknowledged
//! transaction's keys and values. The same file is reused round after round, so a file killed
//! mid-commit is reopened, recovered and written on again each time, with either freelist
//! algorithm and with the freelist page persisted or not.
//!
//! `GLASS_SIGKILL_ROUNDS` (default 50) and `GLASS_SIGKILL_SEED` change the run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{bolt, s};
use glassd::storage::btree::{check_path, Db, Error, FreelistType, Options, Tx};
use rand::rngs::{SmallRng, StdRng};
use rand::{Rng, SeedableRng};

/// `PATH,SEED,FREELIST,NO_FREELIST_SYNC`: what the child writes, and how.
const CHILD_ENV: &str = "GLASS_SIGKILL_CHILD";
/// Starts the child's acknowledgement line: `GLASS-COMMITTED <txid> <counter>`.
const ACK: &str = "GLASS-COMMITTED";
/// Buckets every transaction writes `KEYS` keys to.
const BUCKETS: [&[u8]; 3] = [b"key", b"meta", b"lease"];
const KEYS: u64 = 4;

fn key(counter: u64, j: u64) -> Vec<u8> {
    format!("c{counter:010}-{j}").into_bytes()
}

/// The value transaction `counter` of a child seeded `seed` writes at key `j` of bucket `b`:
/// random bytes, mostly short, one in twenty larger than a page (overflow pages).
fn value(seed: u64, counter: u64, b: usize, j: u64) -> Vec<u8> {
    let mut rng = SmallRng::seed_from_u64(
        seed ^ counter.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ((b as u64) << 56) ^ (j << 48),
    );
    let len = if rng.gen_ratio(1, 20) {
        rng.gen_range(5000..20_000)
    } else {
        rng.gen_range(0..300)
    };
    (0..len).map(|_| rng.gen()).collect()
}

fn stored_counter(tx: &mut Tx) -> Result<Option<u64>, Error> {
    let root = tx.root();
    let Some(meta) = tx.bucket(root, b"meta")? else {
        return Ok(None);
    };
    Ok(tx
        .get(meta, b"counter")?
        .map(|v| u64::from_be_bytes(v.try_into().expect("8-byte counter"))))
}

/// The victim. Does nothing unless started by the parent test.
#[test]
fn child_writer() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let parts: Vec<&str> = spec.split(',').collect();
    let [path, seed, freelist, no_freelist_sync] = parts[..] else {
        panic!("bad {CHILD_ENV}: {spec}");
    };
    let seed: u64 = seed.parse().unwrap();
    let db = Db::open(
        Path::new(path),
        Options {
            freelist_type: if freelist == "array" {
                FreelistType::Array
            } else {
                FreelistType::Map
            },
            no_freelist_sync: no_freelist_sync == "1",
            ..Options::default()
        },
    )
    .unwrap();
    // Go on from where the file is (it may hold commits that were never acknowledged).
    let mut counter = db.view(stored_counter).unwrap().unwrap_or(0);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = std::io::stdout().lock();
    // Bounded; the parent kills the child long before.
    for _ in 0..100_000 {
        counter += 1;
        let mut tx = db.begin_write().unwrap();
        let root = tx.root();
        for (bi, name) in BUCKETS.iter().enumerate() {
            let b = tx.create_bucket_if_not_exists(root, name).unwrap();
            for j in 0..KEYS {
                tx.put(b, &key(counter, j), &value(seed, counter, bi, j))
                    .unwrap();
            }
        }
        // Churn, so that commits free pages and later ones reuse them.
        let scratch = tx.create_bucket_if_not_exists(root, b"scratch").unwrap();
        for j in 0..8 {
            tx.delete(scratch, &key(counter - 1, j)).unwrap();
            let len = if rng.gen_ratio(1, 10) { 9000 } else { 500 };
            tx.put(scratch, &key(counter, j), &vec![j as u8; len])
                .unwrap();
        }
        if counter % 7 == 0 {
            match tx.delete_bucket(root, b"bulk") {
                Ok(()) | Err(Error::BucketNotFound) => {}
                Err(e) => panic!("delete bulk: {e}"),
            }
            let bulk = tx.create_bucket(root, b"bulk").unwrap();
            for j in 0..rng.gen_range(10..200u64) {
                tx.put(bulk, &key(counter, j), &[7u8; 200]).unwrap();
            }
        }
        let meta = tx.bucket(root, b"meta").unwrap().unwrap();
        tx.put(meta, b"counter", &counter.to_be_bytes()).unwrap();
        let stats = tx.commit().unwrap();
        writeln!(out, "{ACK} {} {counter}", stats.txid).unwrap();
        out.flush().unwrap();
    }
}

/// Kills the child if the parent gives up early (a failed assertion).
struct Victim(Child);

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Everything acknowledged so far, checked against the file.
fn verify(path: &Path, acked: &[(u64, u64)], last_txid: u64, round: usize) {
    let report = check_path(path);
    assert!(report.ok(), "round {round}: check: {report:?}");
    let db = Db::open(
        path,
        Options {
            read_only: true,
            ..Options::default()
        },
    )
    .unwrap();
    let mut tx = db.begin_read().unwrap();
    assert!(
        tx.id() >= last_txid,
        "round {round}: the file is at txid {} but {last_txid} was acknowledged",
        tx.id()
    );
    let last_counter = acked.last().map_or(0, |a| a.0);
    let counter = stored_counter(&mut tx).unwrap().unwrap_or(0);
    assert!(
        counter >= last_counter,
        "round {round}: counter {counter} < acknowledged {last_counter}"
    );
    let root = tx.root();
    let buckets: Vec<_> = BUCKETS
        .iter()
        .map(|name| tx.bucket(root, name).unwrap().expect("bucket"))
        .collect();
    for &(counter, seed) in acked {
        for (bi, &b) in buckets.iter().enumerate() {
            for j in 0..KEYS {
                let got = tx.get(b, &key(counter, j)).unwrap();
                assert!(
                    got == Some(value(seed, counter, bi, j).as_slice()),
                    "round {round}: tx {counter} lost key {j} of bucket {bi}"
                );
            }
        }
    }
}

#[test]
fn sigkill_loses_no_acknowledged_tx() {
    let rounds: usize = env_or("GLASS_SIGKILL_ROUNDS", 50);
    let seed: u64 = env_or("GLASS_SIGKILL_SEED", 0x5EED_0FC0_FFEE);
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("killed.db");
    let exe = std::env::current_exe().unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    // (counter, child seed) of every acknowledged transaction, in order.
    let mut acked: Vec<(u64, u64)> = Vec::new();
    let mut last_txid = 0u64;
    for round in 0..rounds {
        let child_seed: u64 = rng.gen();
        let freelist = if rng.gen_bool(0.5) { "array" } else { "map" };
        let no_freelist_sync = u8::from(rng.gen_ratio(1, 4));
        // The first round must create the file before it can be killed.
        let target = rng.gen_range(usize::from(round == 0)..30);
        let mut child = Victim(
            Command::new(&exe)
                .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
                .env(
                    CHILD_ENV,
                    format!(
                        "{},{child_seed},{freelist},{no_freelist_sync}",
                        path.display()
                    ),
                )
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
        let mut got = 0;
        while got < target {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.0.wait();
                let mut err = String::new();
                let _ = child.0.stderr.take().unwrap().read_to_string(&mut err);
                panic!("round {round}: the child died after {got} commits: {err}");
            };
            // libtest may print its own text before ours on the same line.
            let Some(at) = line.find(ACK) else { continue };
            let mut f = line[at + ACK.len()..].split_whitespace();
            let txid: u64 = f.next().unwrap().parse().unwrap();
            let counter: u64 = f.next().unwrap().parse().unwrap();
            assert!(
                txid > last_txid,
                "round {round}: txid {txid} after {last_txid}"
            );
            assert!(acked.last().is_none_or(|a| counter > a.0));
            acked.push((counter, child_seed));
            last_txid = txid;
            got += 1;
        }
        // Vary where the kill lands: at once (most likely inside the next commit) or a little
        // later (a kill point, not a measurement).
        if rng.gen_bool(0.5) {
            std::thread::sleep(Duration::from_micros(rng.gen_range(0..3000)));
        }
        child.0.kill().unwrap();
        let status = child.0.wait().unwrap();
        // Killed, not exited on its own (which would mean it failed).
        assert_eq!(status.code(), None, "round {round}: child exited: {status}");
        drop(child);

        verify(&path, &acked, last_txid, round);
        if round % 10 == 9 {
            let (ok, out) = bolt(&["check", s(&path)]);
            assert!(
                ok && out.trim() == "ok",
                "round {round}: bbolt check: {out}"
            );
        }
    }
    assert!(acked.len() > rounds, "too few commits to mean anything");
}
