//! The backend layer (etcd's `server/storage/backend`) over real files in temp dirs: what a
//! read sees before and after commits, snapshot isolation, batching by size and by time (both
//! changeable while running), switching the freelist algorithm, durability across close and
//! reopen, defragmentation, the hash, concurrent readers against a writer, and the
//! measurements each step takes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use common::{bolt, s};
use glassd::storage::backend::{Backend, BackendConfig, BackendError, ReadTx};
use glassd::storage::btree::{check_path, FreelistType};
use telemetry::capture::Capture;
use telemetry::{names, Metrics};

/// Long enough that the commit loop never commits during a test that does not want it to.
const NEVER: Duration = Duration::from_secs(3600);

/// A config whose commits happen only when the test asks (or at the batch limit).
fn config(path: &Path) -> BackendConfig {
    BackendConfig {
        batch_interval: NEVER,
        ..BackendConfig::new(path, Arc::new(Metrics::new()))
    }
}

fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("backend.db")
}

/// Entries in key order, as `range` returns them.
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

fn kvs(pairs: &[(&str, &str)]) -> Entries {
    pairs
        .iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

/// Every entry of `buckets` as `tx` sees them, by bucket.
fn snapshot(tx: &ReadTx, buckets: &[&[u8]]) -> BTreeMap<Vec<u8>, Entries> {
    let mut all = BTreeMap::new();
    for b in buckets {
        let mut entries = Vec::new();
        tx.for_each(b, |k, v| entries.push((k.to_vec(), v.to_vec())))
            .unwrap();
        all.insert(b.to_vec(), entries);
    }
    all
}

/// Polls `cond` every few ms for up to 5 s (a bound, not a speed requirement).
fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn commits(b: &Backend) -> u64 {
    b.metrics().backend_commits.get()
}

/// Commits so far and the txid, once any commit under way has finished (it holds the batch
/// tx lock from start to end; the txid is published before the counter is incremented).
fn settled(b: &Backend) -> (u64, u64) {
    let lock = b.batch_tx();
    let now = (commits(b), b.stats().txid);
    drop(lock);
    now
}

/// Spawning a process (the bbolt check) forks this one, and until the child execs it holds a
/// copy of every open file descriptor — and with it the `flock` of any database open at that
/// moment: a file closed and reopened meanwhile reads as locked by another process. Tests that
/// close and reopen files (defrag does too) hold this shared; spawning holds it exclusively.
static FORKING: RwLock<()> = RwLock::new(());

fn no_fork() -> RwLockReadGuard<'static, ()> {
    FORKING.read().unwrap_or_else(|e| e.into_inner())
}

/// The reference bbolt's check of a closed file (call it without holding [`no_fork`]).
fn bbolt_check(path: &Path) {
    let _forking = FORKING.write().unwrap_or_else(|e| e.into_inner());
    let (ok, out) = bolt(&["check", s(path)]);
    assert!(ok && out.trim() == "ok", "bbolt check: {out}");
}

/// Reads see every write made through the batch tx at once, committed or not; deletes hide
/// committed keys; range/limit/end follow etcd's UnsafeRange (an empty end = the start key).
#[test]
fn reads_see_batch_writes_before_commit() {
    let dir = tempfile::tempdir().unwrap();
    let b = Backend::open(config(&db_path(&dir))).unwrap();
    {
        let mut tx = b.batch_tx();
        tx.create_bucket(b"key").unwrap();
        tx.create_bucket(b"meta").unwrap();
        for i in 1..=5 {
            tx.put(
                b"key",
                format!("k{i}").as_bytes(),
                format!("v{i}").as_bytes(),
            )
            .unwrap();
        }
        tx.put(b"meta", b"m1", b"x").unwrap();
    }
    b.force_commit().unwrap();
    let committed = commits(&b);
    let txid = b.stats().txid;

    {
        let mut tx = b.batch_tx();
        tx.put(b"key", b"k6", b"v6").unwrap();
        tx.delete(b"key", b"k2").unwrap();
        tx.put(b"key", b"k3", b"v3'").unwrap();
        tx.put(b"meta", b"m2", b"y").unwrap();
        // A bucket created in this batch: readers see it through the buffer alone.
        tx.create_bucket(b"lease").unwrap();
        tx.put(b"lease", b"l1", b"z").unwrap();
        // The batch tx sees its own writes.
        assert_eq!(
            tx.range(b"key", b"k1", b"k9", 0).unwrap(),
            kvs(&[
                ("k1", "v1"),
                ("k3", "v3'"),
                ("k4", "v4"),
                ("k5", "v5"),
                ("k6", "v6")
            ])
        );
        assert_eq!(tx.range(b"key", b"k2", b"", 0).unwrap(), kvs(&[]));
        assert_eq!(
            tx.range(b"key", b"k3", b"", 0).unwrap(),
            kvs(&[("k3", "v3'")])
        );
        assert_eq!(tx.pending(), 6);
        assert!(matches!(
            tx.put(b"nope", b"k", b"v"),
            Err(BackendError::NoBucket(_))
        ));
    }
    // Nothing was committed, yet readers see everything.
    assert_eq!(commits(&b), committed);
    assert_eq!(b.stats().txid, txid);
    let r = b.read_tx();
    assert_eq!(
        r.range(b"key", b"k1", b"k9", 0).unwrap(),
        kvs(&[
            ("k1", "v1"),
            ("k3", "v3'"),
            ("k4", "v4"),
            ("k5", "v5"),
            ("k6", "v6")
        ])
    );
    // limit counts visible entries (the deleted k2 is not one of them).
    assert_eq!(
        r.range(b"key", b"k1", b"k9", 2).unwrap(),
        kvs(&[("k1", "v1"), ("k3", "v3'")])
    );
    assert_eq!(
        r.range(b"key", b"k2", b"k5", 0).unwrap(),
        kvs(&[("k3", "v3'"), ("k4", "v4")])
    );
    // An empty end asks for the start key alone, present or not.
    assert_eq!(
        r.range(b"key", b"k4", b"", 0).unwrap(),
        kvs(&[("k4", "v4")])
    );
    assert_eq!(
        r.range(b"key", b"k6", b"", 0).unwrap(),
        kvs(&[("k6", "v6")])
    );
    assert_eq!(r.range(b"key", b"k2", b"", 0).unwrap(), kvs(&[]));
    assert_eq!(r.range(b"key", b"k", b"", 0).unwrap(), kvs(&[]));
    // end <= start is empty.
    assert_eq!(r.range(b"key", b"k4", b"k4", 0).unwrap(), kvs(&[]));
    assert_eq!(r.range(b"key", b"k5", b"k1", 0).unwrap(), kvs(&[]));
    assert_eq!(r.get(b"key", b"k2").unwrap(), None);
    assert_eq!(r.get(b"key", b"k1").unwrap(), Some(b"v1".to_vec()));
    assert_eq!(r.get(b"key", b"k3").unwrap(), Some(b"v3'".to_vec()));
    assert_eq!(
        r.range(b"meta", b"", b"\xff", 0).unwrap(),
        kvs(&[("m1", "x"), ("m2", "y")])
    );
    assert_eq!(
        r.range(b"lease", b"l", b"m", 0).unwrap(),
        kvs(&[("l1", "z")])
    );
    assert_eq!(r.range(b"nope", b"a", b"z", 0).unwrap(), kvs(&[]));
    let mut seen = Vec::new();
    r.for_each(b"key", |k, v| seen.push((k.to_vec(), v.to_vec())))
        .unwrap();
    assert_eq!(
        seen,
        kvs(&[
            ("k1", "v1"),
            ("k3", "v3'"),
            ("k4", "v4"),
            ("k5", "v5"),
            ("k6", "v6")
        ])
    );

    // After the commit, the same view comes from the file alone.
    b.force_commit().unwrap();
    assert_eq!(commits(&b), committed + 1);
    assert_eq!(b.stats().txid, txid + 1);
    let r2 = b.read_tx();
    assert_eq!(
        snapshot(&r2, &[b"key", b"meta", b"lease"]),
        snapshot(&r, &[b"key", b"meta", b"lease"])
    );

    // Deleting a bucket is visible at once (it commits before the lock is released).
    {
        let mut tx = b.batch_tx();
        tx.delete_bucket(b"lease").unwrap();
    }
    assert_eq!(commits(&b), committed + 2);
    assert_eq!(
        b.read_tx().range(b"lease", b"", b"\xff", 0).unwrap(),
        kvs(&[])
    );
    assert!(matches!(
        b.batch_tx().put(b"lease", b"l1", b"z"),
        Err(BackendError::NoBucket(_))
    ));
}

/// A read tx sees exactly the writes made before it began, whatever commits come later.
#[test]
fn read_tx_is_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let b = Backend::open(config(&db_path(&dir))).unwrap();
    {
        let mut tx = b.batch_tx();
        tx.create_bucket(b"key").unwrap();
        tx.put(b"key", b"a", b"1").unwrap();
        tx.put(b"key", b"gone", b"x").unwrap();
    }
    b.force_commit().unwrap();

    let before = b.read_tx();
    {
        let mut tx = b.batch_tx();
        tx.put(b"key", b"b", b"2").unwrap();
        tx.put(b"key", b"a", b"1'").unwrap();
        tx.delete(b"key", b"gone").unwrap();
    }
    let after = b.read_tx();
    let want_before = kvs(&[("a", "1"), ("gone", "x")]);
    let want_after = kvs(&[("a", "1'"), ("b", "2")]);
    assert_eq!(before.range(b"key", b"", b"\xff", 0).unwrap(), want_before);
    assert_eq!(after.range(b"key", b"", b"\xff", 0).unwrap(), want_after);

    b.force_commit().unwrap();
    // Another batch, uncommitted, on top of the new commit.
    {
        let mut tx = b.batch_tx();
        tx.put(b"key", b"c", b"3").unwrap();
    }
    let later = b.read_tx();
    assert_eq!(before.range(b"key", b"", b"\xff", 0).unwrap(), want_before);
    assert_eq!(before.get(b"key", b"b").unwrap(), None);
    assert_eq!(before.get(b"key", b"gone").unwrap(), Some(b"x".to_vec()));
    assert_eq!(after.range(b"key", b"", b"\xff", 0).unwrap(), want_after);
    assert_eq!(after.get(b"key", b"c").unwrap(), None);
    assert_eq!(
        later.range(b"key", b"", b"\xff", 0).unwrap(),
        kvs(&[("a", "1'"), ("b", "2"), ("c", "3")])
    );

    // Many commits later (pages of the old state freed and reusable), the old views hold.
    for i in 0..50 {
        let mut tx = b.batch_tx();
        for j in 0..20 {
            tx.put(b"key", format!("z{i:03}{j:02}").as_bytes(), &[i as u8; 300])
                .unwrap();
        }
        tx.put(b"key", b"a", format!("{i}").as_bytes()).unwrap();
        tx.commit().unwrap();
    }
    assert_eq!(before.range(b"key", b"", b"\xff", 0).unwrap(), want_before);
    assert_eq!(after.range(b"key", b"", b"\xff", 0).unwrap(), want_after);
    assert_eq!(b.read_tx().get(b"key", b"a").unwrap(), Some(b"49".to_vec()));
    assert_eq!(
        b.read_tx().range(b"key", b"z", b"\xff", 0).unwrap().len(),
        1000
    );
}

/// With batch limit N the Nth pending write commits (when the lock is released);
/// `set_batch_limit` changes N while running.
#[test]
fn batch_limit_commits_the_nth_write() {
    let dir = tempfile::tempdir().unwrap();
    let b = Backend::open(BackendConfig {
        batch_limit: 5,
        ..config(&db_path(&dir))
    })
    .unwrap();
    assert_eq!(b.batch_limit(), 5);
    {
        let mut tx = b.batch_tx();
        tx.create_bucket(b"key").unwrap();
        tx.commit().unwrap();
    }
    let (c0, t0) = (commits(&b), b.stats().txid);
    let put = |i: usize| {
        let mut tx = b.batch_tx();
        tx.put(b"key", format!("k{i:04}").as_bytes(), b"v").unwrap();
        tx.pending()
    };
    for i in 1..5 {
        assert_eq!(put(i), i);
        assert_eq!(commits(&b), c0, "write {i} of 5 must not commit");
        assert_eq!(b.stats().txid, t0);
    }
    put(5);
    assert_eq!(commits(&b), c0 + 1, "the 5th write commits");
    assert_eq!(b.stats().txid, t0 + 1);
    assert_eq!(b.batch_tx().pending(), 0);

    // Many writes under one lock commit once, when it is released.
    {
        let mut tx = b.batch_tx();
        for i in 100..112 {
            tx.put(b"key", format!("k{i:04}").as_bytes(), b"v").unwrap();
        }
        assert_eq!(commits(&b), c0 + 1);
    }
    assert_eq!(commits(&b), c0 + 2);
    assert_eq!(b.stats().txid, t0 + 2);

    // Changed while running: now every second write commits.
    b.set_batch_limit(2);
    assert_eq!(b.batch_limit(), 2);
    put(200);
    assert_eq!(commits(&b), c0 + 2);
    put(201);
    assert_eq!(commits(&b), c0 + 3);
    assert_eq!(b.stats().txid, t0 + 3);
    // 0 means 1: every write commits.
    b.set_batch_limit(0);
    assert_eq!(b.batch_limit(), 1);
    put(300);
    assert_eq!(commits(&b), c0 + 4);
    assert_eq!(b.stats().txid, t0 + 4);
    // Raised again: pending writes wait for the new limit.
    b.set_batch_limit(1000);
    for i in 400..450 {
        put(i);
    }
    assert_eq!(commits(&b), c0 + 4);
    assert_eq!(
        b.read_tx().range(b"key", b"k", b"l", 0).unwrap().len(),
        5 + 12 + 2 + 1 + 50
    );
}

/// Writes wait for the interval; with a short interval the commit loop commits them without
/// being asked; `set_batch_interval` takes effect while running (the loop wakes up at once).
#[test]
fn batch_interval_commits_in_the_background() {
    let _no_fork = no_fork();
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let b = Backend::open(config(&path)).unwrap();
    assert_eq!(b.batch_interval(), NEVER);
    {
        let mut tx = b.batch_tx();
        tx.create_bucket(b"key").unwrap();
        tx.put(b"key", b"a", b"1").unwrap();
    }
    let t0 = b.stats().txid;
    // With an interval of an hour nothing is committed in the meantime.
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(b.batch_tx().pending(), 2);
    assert_eq!(settled(&b), (0, t0));

    b.set_batch_interval(Duration::from_millis(10));
    assert_eq!(b.batch_interval(), Duration::from_millis(10));
    assert!(
        eventually(|| settled(&b).1 > t0),
        "no commit after shortening the interval: {:?}",
        b.stats()
    );
    assert_eq!(settled(&b), (1, t0 + 1));
    assert_eq!(b.batch_tx().pending(), 0);

    // The loop goes on committing at the new interval.
    for (i, k) in [b"b", b"c", b"d"].into_iter().enumerate() {
        let t = b.stats().txid;
        b.batch_tx()
            .put(b"key", k, format!("{}", i + 2).as_bytes())
            .unwrap();
        assert!(
            eventually(|| b.stats().txid > t && b.batch_tx().pending() == 0),
            "write {k:?} was never committed"
        );
    }
    // Below 1 ms is taken as 1 ms.
    b.set_batch_interval(Duration::from_micros(10));
    assert_eq!(b.batch_interval(), Duration::from_millis(1));
    let t = b.stats().txid;
    b.batch_tx().put(b"key", b"e", b"6").unwrap();
    assert!(eventually(|| b.stats().txid > t));
    // Nothing pending: the loop does not commit empty batches.
    let (c, t) = settled(&b);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(settled(&b), (c, t));
    drop(b);

    // A short interval from the config works the same, and what it committed is on disk.
    let b = Backend::open(BackendConfig {
        batch_interval: Duration::from_millis(5),
        ..config(&path)
    })
    .unwrap();
    let t = b.stats().txid;
    b.batch_tx().put(b"key", b"f", b"7").unwrap();
    assert!(eventually(|| b.stats().txid > t));
    assert_eq!(
        b.read_tx().range(b"key", b"", b"\xff", 0).unwrap(),
        kvs(&[
            ("a", "1"),
            ("b", "2"),
            ("c", "3"),
            ("d", "4"),
            ("e", "6"),
            ("f", "7")
        ])
    );
}

/// Installs the capture layer as this thread's subscriber. `tracing` caches each callsite's
/// interest for the whole process, and while a single dispatcher exists it asks only the
/// default of the thread that reaches the callsite first: a sibling test thread without a
/// subscriber would cache "never" and the spans taken here would be lost. A second dispatcher,
/// kept alive alongside, makes the interest the union over all of them; the rebuild corrects
/// what was cached before.
fn install_capture() -> (Capture, impl Sized) {
    let anchor = tracing::Dispatch::new(tracing_subscriber::registry());
    let (capture, guard) = Capture::install();
    tracing::callsite::rebuild_interest_cache();
    (capture, (guard, anchor))
}

/// The algorithms of the `freelist.allocate` spans of one commit (made on this thread).
fn allocate_algorithms(capture: &Capture, from: usize) -> Vec<String> {
    capture.spans_named(names::FREELIST_ALLOCATE)[from..]
        .iter()
        .map(|s| s.field("algorithm").unwrap().to_string())
        .collect()
}

/// `set_freelist_type` while open switches the algorithm from the next write tx on; the
/// file stays consistent for both Glass and bbolt.
#[test]
fn set_freelist_type_switches_from_the_next_write_tx() {
    let no_fork_guard = no_fork();
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let b = Backend::open(BackendConfig {
        freelist_type: FreelistType::Array,
        ..config(&path)
    })
    .unwrap();
    assert_eq!(b.freelist_type(), FreelistType::Array);
    assert_eq!(b.stats().freelist_type, FreelistType::Array);
    let (capture, _guard) = install_capture();
    let write_commit = |round: usize| {
        let mut tx = b.batch_tx();
        tx.create_bucket(b"key").unwrap();
        for i in 0..200 {
            tx.put(b"key", format!("k{round:03}{i:04}").as_bytes(), &[7u8; 100])
                .unwrap();
        }
        // Churn, so that later commits reuse freed pages.
        for i in 0..100 {
            tx.delete(
                b"key",
                format!("k{:03}{i:04}", round.saturating_sub(1)).as_bytes(),
            )
            .unwrap();
        }
        tx.commit().unwrap();
    };
    write_commit(0);
    let n = capture.spans_named(names::FREELIST_ALLOCATE).len();
    assert!(n > 0);
    assert!(allocate_algorithms(&capture, 0)
        .iter()
        .all(|a| a == "array"));

    b.set_freelist_type(FreelistType::Map);
    assert_eq!(b.freelist_type(), FreelistType::Map);
    assert_eq!(b.stats().freelist_type, FreelistType::Map);
    // The write tx already open (begun at the last commit) keeps its algorithm ...
    write_commit(1);
    let m = capture.spans_named(names::FREELIST_ALLOCATE).len();
    assert!(m > n);
    assert!(
        allocate_algorithms(&capture, n)
            .iter()
            .all(|a| a == "array"),
        "{:?}",
        allocate_algorithms(&capture, n)
    );
    // ... and the next one uses the new one.
    write_commit(2);
    let algos = allocate_algorithms(&capture, m);
    assert!(!algos.is_empty());
    assert!(algos.iter().all(|a| a == "map"), "{algos:?}");
    let m = capture.spans_named(names::FREELIST_ALLOCATE).len();

    // And back.
    b.set_freelist_type(FreelistType::Array);
    write_commit(3);
    let k = capture.spans_named(names::FREELIST_ALLOCATE).len();
    assert!(allocate_algorithms(&capture, m).iter().all(|a| a == "map"));
    write_commit(4);
    let algos = allocate_algorithms(&capture, k);
    assert!(!algos.is_empty());
    assert!(algos.iter().all(|a| a == "array"), "{algos:?}");
    // Some allocations were served from freed pages along the way.
    assert!(capture
        .spans_named(names::FREELIST_ALLOCATE)
        .iter()
        .any(|s| s.field("outcome") == Some("reused")));

    let want = snapshot(&b.read_tx(), &[b"key"]);
    b.close().unwrap();
    drop(b);
    let report = check_path(&path);
    assert!(report.ok(), "{report:?}");
    drop(no_fork_guard);
    bbolt_check(&path);
    let _no_fork = no_fork();
    let b = Backend::open(config(&path)).unwrap();
    assert_eq!(snapshot(&b.read_tx(), &[b"key"]), want);
}

/// Everything acknowledged by a commit (force_commit, the batch limit, close, or the drop of
/// the last handle) is there after reopening; writes after close fail.
#[test]
fn close_and_reopen_keep_committed_writes() {
    let no_fork_guard = no_fork();
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let buckets: [&[u8]; 3] = [b"key", b"meta", b"lease"];
    let want;
    {
        let b = Backend::open(BackendConfig {
            batch_limit: 97,
            ..config(&path)
        })
        .unwrap();
        {
            let mut tx = b.batch_tx();
            for name in buckets {
                tx.create_bucket(name).unwrap();
            }
        }
        for i in 0..3000u32 {
            let mut tx = b.batch_tx();
            let bucket = buckets[i as usize % 3];
            tx.put(bucket, &i.to_be_bytes(), &vec![i as u8; (i % 700) as usize])
                .unwrap();
            if i % 5 == 0 && i > 0 {
                tx.delete(buckets[(i as usize - 1) % 3], &(i - 1).to_be_bytes())
                    .unwrap();
            }
            drop(tx);
            if i == 1000 {
                b.force_commit().unwrap();
            }
        }
        // A tail below the batch limit is committed by close.
        b.set_batch_limit(1_000_000);
        b.batch_tx().put(b"key", b"tail", b"t").unwrap();
        assert!(b.batch_tx().pending() > 0);
        want = snapshot(&b.read_tx(), &buckets);
        b.close().unwrap();
        assert!(matches!(
            b.batch_tx().put(b"key", b"late", b"x"),
            Err(BackendError::Closed)
        ));
        assert!(matches!(b.force_commit(), Err(BackendError::Closed)));
        // Closing twice is harmless.
        b.close().unwrap();
    }
    let report = check_path(&path);
    assert!(report.ok(), "{report:?}");
    drop(no_fork_guard);
    bbolt_check(&path);
    let _no_fork = no_fork();

    // Reopen, write more, and let the drop of the handle commit it.
    let more;
    {
        let b = Backend::open(config(&path)).unwrap();
        assert_eq!(snapshot(&b.read_tx(), &buckets), want);
        {
            let mut tx = b.batch_tx();
            tx.put(b"key", b"after-reopen", b"1").unwrap();
            tx.delete(b"meta", &1u32.to_be_bytes()).unwrap();
        }
        more = snapshot(&b.read_tx(), &buckets);
        assert_ne!(more, want);
    }
    let b = Backend::open(config(&path)).unwrap();
    assert_eq!(snapshot(&b.read_tx(), &buckets), more);
    assert_eq!(
        b.read_tx().get(b"key", b"after-reopen").unwrap(),
        Some(b"1".to_vec())
    );
    assert_eq!(b.read_tx().get(b"meta", &1u32.to_be_bytes()).unwrap(), None);
}

/// Defrag rewrites the file compactly: smaller, same entries, same hash; a read tx from
/// before it still reads the old state; the result passes bbolt's check.
#[test]
fn defrag_shrinks_and_keeps_everything() {
    let no_fork_guard = no_fork();
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let buckets: [&[u8]; 2] = [b"key", b"meta"];
    let b = Backend::open(config(&path)).unwrap();
    {
        let mut tx = b.batch_tx();
        tx.create_bucket(b"key").unwrap();
        tx.create_bucket(b"meta").unwrap();
        tx.put(b"meta", b"consistent_index", b"42").unwrap();
    }
    for chunk in 0..20u32 {
        let mut tx = b.batch_tx();
        for i in 0..1000u32 {
            let k = (chunk * 1000 + i).to_be_bytes();
            tx.seq_put(b"key", &k, &[(i % 251) as u8; 200]).unwrap();
        }
        tx.commit().unwrap();
    }
    let full = b.read_tx();
    let full_snapshot = snapshot(&full, &buckets);
    assert_eq!(full_snapshot[b"key".as_slice()].len(), 20_000);
    // Delete nine in ten.
    for chunk in 0..20u32 {
        let mut tx = b.batch_tx();
        for i in 0..1000u32 {
            if i % 10 != 0 {
                tx.delete(b"key", &(chunk * 1000 + i).to_be_bytes())
                    .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    // A few writes left uncommitted: defrag commits them first.
    b.batch_tx().put(b"meta", b"pending", b"yes").unwrap();

    let before_defrag = b.read_tx();
    let want = snapshot(&before_defrag, &buckets);
    assert_eq!(want[b"key".as_slice()].len(), 2_000);
    let hash = b.hash(|_, _| false).unwrap();
    let size = b.size();
    let in_use = b.size_in_use();
    assert!(
        in_use < size,
        "most pages are free after the deletes: size_in_use {in_use} vs size {size} ({:?})",
        b.stats()
    );

    let file_len = std::fs::metadata(&path).unwrap().len();

    b.defrag().unwrap();

    let after = b.size();
    assert!(
        after * 2 < size,
        "defrag should at least halve the file: {size} -> {after}"
    );
    assert!(b.size_in_use() <= after);
    assert_eq!(snapshot(&b.read_tx(), &buckets), want);
    assert_eq!(b.hash(|_, _| false).unwrap(), hash);
    // Readers from before the defrag go on with the old file.
    assert_eq!(snapshot(&before_defrag, &buckets), want);
    assert_eq!(snapshot(&full, &buckets), full_snapshot);
    assert_eq!(
        full.range(b"key", &5u32.to_be_bytes(), b"", 0).unwrap(),
        vec![(5u32.to_be_bytes().to_vec(), vec![5u8; 200])]
    );

    // Writing goes on in the new file.
    {
        let mut tx = b.batch_tx();
        tx.put(b"key", b"after-defrag", b"1").unwrap();
        tx.commit().unwrap();
    }
    assert_ne!(b.hash(|_, _| false).unwrap(), hash);
    let want = snapshot(&b.read_tx(), &buckets);
    drop((full, before_defrag));
    b.close().unwrap();
    drop(b);
    assert!(!path.with_extension("defrag.tmp").exists());
    let report = check_path(&path);
    assert!(report.ok(), "{report:?}");
    drop(no_fork_guard);
    bbolt_check(&path);
    let _no_fork = no_fork();
    assert!(std::fs::metadata(&path).unwrap().len() * 2 < file_len);
    let b = Backend::open(config(&path)).unwrap();
    assert_eq!(snapshot(&b.read_tx(), &buckets), want);
}

/// The hash covers bucket names, keys and values; it changes with the data, comes back when
/// the data does, survives reopening, and skips what `ignore` selects.
#[test]
fn hash_follows_data_and_ignores_what_it_is_told() {
    let _no_fork = no_fork();
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let b = Backend::open(config(&path)).unwrap();
    {
        let mut tx = b.batch_tx();
        tx.create_bucket(b"key").unwrap();
        tx.create_bucket(b"meta").unwrap();
        for i in 0..100u32 {
            tx.put(b"key", &i.to_be_bytes(), b"v").unwrap();
        }
        tx.put(b"meta", b"consistent_index", b"1").unwrap();
    }
    let none = |_: &[u8], _: &[u8]| false;
    let skip_ci = |bucket: &[u8], key: &[u8]| bucket == b"meta" && key == b"consistent_index";
    // Uncommitted writes count (hash commits first), and the hash is stable.
    let h0 = b.hash(none).unwrap();
    assert_eq!(b.hash(none).unwrap(), h0);
    let i0 = b.hash(skip_ci).unwrap();
    assert_ne!(h0, i0);

    // A changed value, an added key, a deleted key: all change the hash.
    b.batch_tx().put(b"key", &7u32.to_be_bytes(), b"w").unwrap();
    let h1 = b.hash(none).unwrap();
    assert_ne!(h1, h0);
    b.batch_tx().put(b"key", &7u32.to_be_bytes(), b"v").unwrap();
    assert_eq!(b.hash(none).unwrap(), h0, "same data, same hash");
    b.batch_tx().delete(b"key", &8u32.to_be_bytes()).unwrap();
    assert_ne!(b.hash(none).unwrap(), h0);
    b.batch_tx().put(b"key", &8u32.to_be_bytes(), b"v").unwrap();
    assert_eq!(b.hash(none).unwrap(), h0);
    b.batch_tx().put(b"key", b"extra", b"").unwrap();
    assert_ne!(b.hash(none).unwrap(), h0);
    b.batch_tx().delete(b"key", b"extra").unwrap();
    assert_eq!(b.hash(none).unwrap(), h0);
    // A new empty bucket counts too (its name is hashed).
    b.batch_tx().create_bucket(b"lease").unwrap();
    let h_lease = b.hash(none).unwrap();
    assert_ne!(h_lease, h0);
    b.batch_tx().delete_bucket(b"lease").unwrap();
    assert_eq!(b.hash(none).unwrap(), h0);

    // What `ignore` selects does not count.
    b.batch_tx()
        .put(b"meta", b"consistent_index", b"2")
        .unwrap();
    assert_ne!(b.hash(none).unwrap(), h0);
    assert_eq!(b.hash(skip_ci).unwrap(), i0);
    // ignore is given the bucket name: the same key elsewhere still counts.
    b.batch_tx().put(b"key", b"consistent_index", b"2").unwrap();
    assert_ne!(b.hash(skip_ci).unwrap(), i0);
    b.batch_tx().delete(b"key", b"consistent_index").unwrap();
    assert_eq!(b.hash(skip_ci).unwrap(), i0);
    let h2 = b.hash(none).unwrap();

    b.close().unwrap();
    drop(b);
    let b = Backend::open(config(&path)).unwrap();
    assert_eq!(b.hash(none).unwrap(), h2, "the hash survives reopening");
    assert_eq!(b.hash(skip_ci).unwrap(), i0);
}

fn key(i: u64) -> Vec<u8> {
    format!("k{i:08}").into_bytes()
}

/// Readers on several threads while a writer writes, commits (by limit, by interval, by
/// force), hashes and defrags: every read tx is a consistent snapshot. The writer writes key
/// i, releases the lock, then sets the counter to i + 1; a reader that sees counter c must
/// see exactly keys 0..c (or 0..=c, the next key written before its counter), with the
/// pair values equal, and counters never go back on one thread.
#[test]
fn concurrent_readers_see_consistent_snapshots() {
    const WRITES: u64 = 5000;
    const READERS: usize = 3;
    // The writer defrags (closes and reopens the file).
    let _no_fork = no_fork();
    let dir = tempfile::tempdir().unwrap();
    let b = Arc::new(
        Backend::open(BackendConfig {
            batch_interval: Duration::from_millis(2),
            batch_limit: 37,
            ..config(&db_path(&dir))
        })
        .unwrap(),
    );
    {
        let mut tx = b.batch_tx();
        tx.create_bucket(b"key").unwrap();
        tx.create_bucket(b"meta").unwrap();
        tx.create_bucket(b"lease").unwrap();
        tx.put(b"meta", b"counter", &0u64.to_be_bytes()).unwrap();
    }
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let b = b.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            for i in 0..WRITES {
                {
                    let mut tx = b.batch_tx();
                    tx.put(b"key", &key(i), &i.to_be_bytes()).unwrap();
                    // Overwrite a pair under one lock: readers must never see them differ.
                    tx.put(b"meta", b"pair-a", &i.to_be_bytes()).unwrap();
                    tx.put(b"meta", b"pair-b", &i.to_be_bytes()).unwrap();
                }
                b.batch_tx()
                    .put(b"meta", b"counter", &(i + 1).to_be_bytes())
                    .unwrap();
                // Churn elsewhere: keys that come and go.
                if i % 3 == 0 {
                    b.batch_tx().put(b"lease", &key(i), &[1u8; 64]).unwrap();
                    b.batch_tx().delete(b"lease", &key(i / 2)).unwrap();
                }
                if i % 97 == 0 {
                    b.force_commit().unwrap();
                }
                if i % 500 == 250 {
                    b.hash(|_, _| false).unwrap();
                }
                if i == WRITES / 2 {
                    b.defrag().unwrap();
                }
            }
            done.store(true, Ordering::Release);
        })
    };
    let readers: Vec<_> = (0..READERS)
        .map(|r| {
            let b = b.clone();
            let done = done.clone();
            std::thread::spawn(move || {
                let mut last = 0u64;
                let mut reads = 0u64;
                // Bounded: stops when the writer is done, or after this many reads.
                for n in 0..200_000u64 {
                    if done.load(Ordering::Acquire) {
                        break;
                    }
                    let tx = b.read_tx();
                    let c = u64::from_be_bytes(
                        tx.get(b"meta", b"counter")
                            .unwrap()
                            .unwrap()
                            .try_into()
                            .unwrap(),
                    );
                    assert!(c >= last, "reader {r}: counter went back {last} -> {c}");
                    last = c;
                    let a = tx.get(b"meta", b"pair-a").unwrap();
                    assert_eq!(a, tx.get(b"meta", b"pair-b").unwrap(), "reader {r}");
                    // Alternate between a bounded range and a full for_each (in chunks).
                    let keys: Vec<u64> = if n % 2 == 0 {
                        tx.range(b"key", &key(0), &key(c + 1), 0)
                            .unwrap()
                            .into_iter()
                            .map(|(k, v)| {
                                let i = u64::from_be_bytes(v.try_into().unwrap());
                                assert_eq!(k, key(i));
                                i
                            })
                            .collect()
                    } else {
                        let mut ks = Vec::new();
                        tx.for_each(b"key", |k, v| {
                            let i = u64::from_be_bytes(v.try_into().unwrap());
                            assert_eq!(k, key(i).as_slice());
                            if i <= c {
                                ks.push(i);
                            }
                        })
                        .unwrap();
                        ks
                    };
                    let seen = keys.len() as u64;
                    assert!(
                        seen == c || seen == c + 1,
                        "reader {r}: counter {c} but {seen} keys"
                    );
                    assert!(
                        keys.iter().copied().eq(0..seen),
                        "reader {r}: keys are not 0..{seen}"
                    );
                    // A pair value is the last key whose lock was released before the read.
                    match a {
                        Some(a) => {
                            let a = u64::from_be_bytes(a.try_into().unwrap());
                            assert!(a + 1 == seen, "reader {r}: pair {a} but {seen} keys");
                        }
                        None => assert_eq!(seen, 0, "reader {r}: keys without a pair"),
                    }
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    writer.join().unwrap();
    let reads: u64 = readers.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(reads > 0);
    let tx = b.read_tx();
    assert_eq!(
        tx.get(b"meta", b"counter").unwrap(),
        Some(WRITES.to_be_bytes().to_vec())
    );
    assert_eq!(
        tx.range(b"key", &key(0), &key(WRITES), 0).unwrap().len() as u64,
        WRITES
    );
}

/// Every measurement the backend and the engine take on the way: spans with their fields
/// (captured on this thread; commits are forced from here, since the commit loop's thread is
/// not captured) and the always-on histograms.
#[test]
fn measurements_are_taken() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let (capture, _guard) = install_capture();
    // Opening begins the first write tx: the bolt write lock.
    let b = Backend::open(config(&path)).unwrap();
    let m = b.metrics().clone();
    assert!(!capture.spans_named(names::BOLT_RW_LOCK_WAIT).is_empty());

    let mut tx = b.batch_tx();
    let waits = capture.spans_named(names::BACKEND_TX_LOCK_WAIT);
    assert_eq!(waits.len(), 1);
    assert!(waits[0].field("wait_ns").unwrap().parse::<u64>().is_ok());
    tx.create_bucket(b"key").unwrap();
    for i in 0..10u32 {
        tx.put(b"key", &i.to_be_bytes(), b"small").unwrap();
    }
    tx.commit().unwrap();
    drop(tx);

    let commits = capture.spans_named(names::BACKEND_COMMIT);
    assert_eq!(commits.len(), 1);
    let c = &commits[0];
    let field = |name: &str| -> u64 {
        c.field(name)
            .unwrap_or_else(|| panic!("backend.commit has no {name}: {c:?}"))
            .parse()
            .unwrap()
    };
    assert_eq!(field("txid"), b.stats().txid);
    assert_eq!(field("writes"), 11);
    assert!(
        field("pages") >= 3,
        "root leaf, bucket leaf/inline, freelist, meta: {c:?}"
    );
    assert_eq!(
        field("bytes"),
        field("pages") * u64::from(b.stats().page_size)
    );
    let _ = field("fsync_ns");

    // A fresh file has no free pages: the first allocations miss (the file grows).
    let allocs = capture.spans_named(names::FREELIST_ALLOCATE);
    assert!(!allocs.is_empty());
    let a = &allocs[0];
    assert!(a.field("run").unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(a.field("free_pages"), Some("0"));
    assert_eq!(a.field("algorithm"), Some(FreelistType::default().as_str()));
    assert_eq!(a.field("outcome"), Some("miss"));
    // The next commit's write tx took the bolt write lock again.
    assert!(capture.spans_named(names::BOLT_RW_LOCK_WAIT).len() >= 2);

    // Grow the file well past its first size: the mapping is redone.
    let size0 = std::fs::metadata(&path).unwrap().len();
    for round in 0..4u32 {
        let mut tx = b.batch_tx();
        for i in 0..500u32 {
            tx.put(b"key", &(round * 1000 + i).to_be_bytes(), &[1u8; 1000])
                .unwrap();
        }
        tx.commit().unwrap();
    }
    assert!(std::fs::metadata(&path).unwrap().len() > size0);
    assert!(!capture.spans_named(names::BOLT_MMAP_REMAP).is_empty());
    assert_eq!(capture.spans_named(names::BACKEND_COMMIT).len(), 5);
    assert!(capture.spans_named(names::BACKEND_TX_LOCK_WAIT).len() >= 5);

    for (name, h) in [
        (names::BACKEND_COMMIT, &m.backend_commit),
        (names::BACKEND_COMMIT_FSYNC, &m.backend_commit_fsync),
        (names::BACKEND_COMMIT_PAGES, &m.backend_commit_pages),
        (names::BACKEND_TX_LOCK_WAIT, &m.backend_tx_lock_wait),
        (names::FREELIST_ALLOCATE, &m.freelist_allocate),
        (names::BOLT_RW_LOCK_WAIT, &m.bolt_rw_lock_wait),
        (names::BOLT_MMAP_REMAP, &m.bolt_mmap_remap),
    ] {
        assert!(h.count() > 0, "histogram {name} is empty");
        assert!(std::ptr::eq(m.histogram(name).unwrap(), h));
    }
    assert_eq!(m.backend_commit.count(), 5);
    assert_eq!(m.backend_commits.get(), 5);
    assert!(m.backend_commit_bytes.get() >= 2_000_000);
    assert!(m.freelist_allocate_misses.get() > 0);
    assert!(m.backend_db_size.get() > 0);
}

/// After `poison` (the layer above found the open batch half written) nothing commits: not
/// the batch limit, not the interval, not a forced commit, not close; the file reopens at the
/// last good commit.
#[test]
fn a_poisoned_backend_commits_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    {
        let b = Backend::open(config(&path)).unwrap();
        {
            let mut tx = b.batch_tx();
            tx.create_bucket(b"key").unwrap();
            tx.put(b"key", b"good", b"1").unwrap();
        }
        b.force_commit().unwrap();
        {
            let mut tx = b.batch_tx();
            tx.put(b"key", b"half", b"2").unwrap();
        }
        b.poison("a request failed half way");
        assert_eq!(b.failure().as_deref(), Some("a request failed half way"));
        assert!(matches!(b.force_commit(), Err(BackendError::Failed(_))));
        b.set_batch_limit(1);
        {
            let mut tx = b.batch_tx();
            tx.put(b"key", b"later", b"3").unwrap();
        }
        assert!(matches!(b.close(), Err(BackendError::Failed(_))));
    }
    let b = Backend::open(config(&path)).unwrap();
    let tx = b.read_tx();
    assert_eq!(tx.get(b"key", b"good").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(tx.get(b"key", b"half").unwrap(), None);
    assert_eq!(tx.get(b"key", b"later").unwrap(), None);
    drop(tx);
    drop(b);
    bbolt_check(&path);
}
