//! The MVCC key-value store (etcd's `mvcc/kvstore.go`) over a real backend in a temp dir:
//! etcd's worked cases from `kv_test.go` and `kvstore_test.go` as tables, the on-disk schema
//! byte for byte, restart (index rebuilt, revisions and consistent index restored, an
//! unfinished compaction finished), compaction in batches and cut short, txn blocking rules,
//! and the measurements every operation takes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use glassd::pb::mvccpb::KeyValue;
use glassd::storage::backend::DEFAULT_BATCH_LIMIT;
use glassd::storage::mvcc::schema::{
    CONSISTENT_INDEX_KEY, FINISHED_COMPACT_KEY, KEY_BUCKET, META_BUCKET, SCHEDULED_COMPACT_KEY,
    TERM_KEY,
};
use glassd::storage::mvcc::{
    BucketKey, KvStore, KvStoreConfig, MvccError, RangeOptions, RangeResult, Revision,
};
use telemetry::capture::Capture;
use telemetry::names;

mod common;

use common::mvcc::{StoreEnv as Env, NEVER};

fn fast() -> KvStoreConfig {
    KvStoreConfig {
        compaction_pause: Duration::ZERO,
        ..KvStoreConfig::default()
    }
}

impl Env {
    fn new() -> Env {
        Env::with(fast())
    }

    fn with(config: KvStoreConfig) -> Env {
        Env::open(config, DEFAULT_BATCH_LIMIT)
    }

    /// Every entry of a bucket, as a fresh read sees it.
    fn bucket(&self, name: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.raw_bucket(name)
    }

    fn meta(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.backend().read_tx().get(META_BUCKET, key).unwrap()
    }

    fn put3(&self) -> Vec<KeyValue> {
        put3_test_kvs(self.s())
    }
}

/// Polls `cond` every few ms for up to 5 s (a bound, not a speed requirement).
fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..1000 {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

fn kv(key: &str, value: &str, create: i64, modified: i64, version: i64, lease: i64) -> KeyValue {
    KeyValue {
        key: key.as_bytes().to_vec(),
        create_revision: create,
        mod_revision: modified,
        version,
        value: value.as_bytes().to_vec(),
        lease,
    }
}

/// etcd's `put3TestKVs`.
fn put3_test_kvs(s: &KvStore) -> Vec<KeyValue> {
    s.put(b"foo", b"bar", 1).unwrap();
    s.put(b"foo1", b"bar1", 2).unwrap();
    s.put(b"foo2", b"bar2", 3).unwrap();
    vec![
        kv("foo", "bar", 2, 2, 1, 1),
        kv("foo1", "bar1", 3, 3, 1, 2),
        kv("foo2", "bar2", 4, 4, 1, 3),
    ]
}

fn opts(rev: i64) -> RangeOptions {
    RangeOptions {
        rev,
        ..RangeOptions::default()
    }
}

/// The three ways a range is made, as etcd's `normalRangeFunc`, `txnRangeFunc` (and a range
/// inside a write txn that changed nothing, which reads the same).
type RangeFn = fn(&KvStore, &[u8], &[u8], RangeOptions) -> Result<RangeResult, MvccError>;
const RANGE_FNS: [(&str, RangeFn); 3] = [
    ("store", |s, k, e, o| s.range(k, e, o)),
    ("read txn", |s, k, e, o| {
        let txn = s.read();
        let r = txn.range(k, e, o);
        txn.end();
        r
    }),
    ("write txn", |s, k, e, o| s.write().range(k, e, o)),
];

/// etcd's TestKVRange: `end` empty is one key, `"\0"` the rest of the key space (etcd's
/// apply turns a `"\0"` range end into the empty non-nil end its mvcc takes).
#[test]
fn kv_range() {
    for (how, f) in RANGE_FNS {
        let env = Env::new();
        let kvs = env.put3();
        let table: &[(&str, &str, &[KeyValue])] = &[
            ("doo", "foo", &[]),
            ("foo", "foo", &[]),
            ("doo", "", &[]),
            ("foo", "foo3", &kvs),
            ("foo", "foo1", &kvs[..1]),
            ("foo", "", &kvs[..1]),
            ("", "\0", &kvs),
            ("foo1", "\0", &kvs[1..]),
        ];
        for (i, &(key, end, want)) in table.iter().enumerate() {
            let r = f(
                env.s(),
                key.as_bytes(),
                end.as_bytes(),
                RangeOptions::default(),
            )
            .unwrap();
            assert_eq!(r.rev, 4, "{how} #{i}");
            assert_eq!(r.kvs, want, "{how} #{i}");
            assert_eq!(r.count, want.len() as i64, "{how} #{i}");
        }
    }
}

/// etcd's TestKVRangeRev.
#[test]
fn kv_range_rev() {
    for (how, f) in RANGE_FNS {
        let env = Env::new();
        let kvs = env.put3();
        let table: &[(i64, i64, &[KeyValue])] = &[
            (-1, 4, &kvs),
            (0, 4, &kvs),
            (1, 4, &[]),
            (2, 4, &kvs[..1]),
            (3, 4, &kvs[..2]),
            (4, 4, &kvs),
        ];
        for &(rev, wrev, want) in table {
            let r = f(env.s(), b"foo", b"foo3", opts(rev)).unwrap();
            assert_eq!((r.rev, r.kvs.as_slice()), (wrev, want), "{how} rev {rev}");
        }
    }
}

/// etcd's TestKVRangeBadRev: after compact(4), 4 is still readable, below it not, above the
/// current revision never.
#[test]
fn kv_range_bad_rev() {
    for (how, f) in RANGE_FNS {
        let env = Env::new();
        env.put3();
        env.s().compact(4).unwrap().wait().unwrap();
        let table: &[(i64, Option<MvccError>)] = &[
            (-1, None),
            (0, None),
            (1, Some(MvccError::Compacted)),
            (2, Some(MvccError::Compacted)),
            (4, None),
            (5, Some(MvccError::FutureRev)),
            (100, Some(MvccError::FutureRev)),
        ];
        for (rev, werr) in table {
            let got = f(env.s(), b"foo", b"foo3", opts(*rev)).err();
            assert_eq!(&got, werr, "{how} rev {rev}");
        }
    }
}

/// etcd's TestKVRangeLimit; `count` is every key in range whatever the limit (etcd 3.4).
#[test]
fn kv_range_limit() {
    for (how, f) in RANGE_FNS {
        let env = Env::new();
        let kvs = env.put3();
        for (limit, want) in [
            (-1, &kvs[..]),
            (0, &kvs[..]),
            (1, &kvs[..1]),
            (2, &kvs[..2]),
            (3, &kvs[..]),
            (100, &kvs[..]),
        ] {
            let o = RangeOptions {
                limit,
                ..RangeOptions::default()
            };
            let r = f(env.s(), b"foo", b"foo3", o).unwrap();
            assert_eq!(r.kvs, want, "{how} limit {limit}");
            assert_eq!((r.rev, r.count), (4, 3), "{how} limit {limit}");
        }
        // Counting only: the same count, no key-values.
        let o = RangeOptions {
            count_only: true,
            limit: 1,
            ..RangeOptions::default()
        };
        let r = f(env.s(), b"foo", b"foo3", o).unwrap();
        assert_eq!((r.kvs.len(), r.count, r.rev), (0, 3, 4), "{how}");
    }
}

/// etcd's TestRangeLimitWhenKeyDeleted: a deleted key neither counts nor takes a place.
#[test]
fn range_limit_when_key_deleted() {
    let env = Env::new();
    let s = env.s();
    s.put(b"foo", b"bar", 0).unwrap();
    s.put(b"foo1", b"bar1", 0).unwrap();
    s.put(b"foo2", b"bar2", 0).unwrap();
    s.delete_range(b"foo1", b"").unwrap();
    let kvs = [kv("foo", "bar", 2, 2, 1, 0), kv("foo2", "bar2", 4, 4, 1, 0)];
    for (limit, want) in [(0, &kvs[..]), (1, &kvs[..1]), (2, &kvs[..]), (3, &kvs[..])] {
        let o = RangeOptions {
            limit,
            ..RangeOptions::default()
        };
        let r = s.range(b"foo", b"foo3", o).unwrap();
        assert_eq!((r.kvs.as_slice(), r.count), (want, 2), "limit {limit}");
    }
}

/// etcd's TestKVPutMultipleTimes, by a one-put txn and by an explicit write txn.
#[test]
fn kv_put_multiple_times() {
    for explicit in [false, true] {
        let env = Env::new();
        let s = env.s();
        for i in 0..10i64 {
            let base = i + 1;
            let rev = if explicit {
                let mut txn = s.write();
                let rev = txn.put(b"foo", b"bar", base).unwrap();
                assert_eq!(txn.end(), base + 1);
                rev
            } else {
                s.put(b"foo", b"bar", base).unwrap()
            };
            assert_eq!(rev, base + 1, "#{i}");
            let r = s.range(b"foo", b"", RangeOptions::default()).unwrap();
            assert_eq!(r.kvs, [kv("foo", "bar", 2, base + 1, base, base)], "#{i}");
        }
    }
}

/// etcd's TestKVDeleteRange: (key, end) → (deleted, revision) after put3.
#[test]
fn kv_delete_range() {
    let table: &[(&str, &str, i64, i64)] = &[
        ("foo", "", 1, 5),
        ("foo", "foo1", 1, 5),
        ("foo", "foo2", 2, 5),
        ("foo", "foo3", 3, 5),
        ("foo3", "foo8", 0, 4),
        ("foo3", "", 0, 4),
        ("", "\0", 3, 5),
    ];
    for explicit in [false, true] {
        for &(key, end, wn, wrev) in table {
            let env = Env::new();
            let s = env.s();
            s.put(b"foo", b"bar", 0).unwrap();
            s.put(b"foo1", b"bar1", 0).unwrap();
            s.put(b"foo2", b"bar2", 0).unwrap();
            let got = if explicit {
                let mut txn = s.write();
                let got = txn.delete_range(key.as_bytes(), end.as_bytes()).unwrap();
                txn.end();
                got
            } else {
                s.delete_range(key.as_bytes(), end.as_bytes()).unwrap()
            };
            assert_eq!(got, (wn, wrev), "delete_range({key:?}, {end:?})");
            assert_eq!(s.current_revision(), wrev);
        }
    }
}

/// etcd's TestKVDeleteMultipleTimes: deleting a deleted key changes nothing, not even the
/// revision.
#[test]
fn kv_delete_multiple_times() {
    let env = Env::new();
    let s = env.s();
    s.put(b"foo", b"bar", 0).unwrap();
    assert_eq!(s.delete_range(b"foo", b"").unwrap(), (1, 3));
    for i in 0..10 {
        assert_eq!(s.delete_range(b"foo", b"").unwrap(), (0, 3), "#{i}");
    }
    assert_eq!(s.current_revision(), 3);
}

/// etcd's TestKVOperationInSequence.
#[test]
fn kv_operation_in_sequence() {
    let env = Env::new();
    let s = env.s();
    for i in 0..10i64 {
        let base = i * 2 + 1;
        assert_eq!(s.put(b"foo", b"bar", 0).unwrap(), base + 1);
        let r = s.range(b"foo", b"", opts(base + 1)).unwrap();
        assert_eq!(r.kvs, [kv("foo", "bar", base + 1, base + 1, 1, 0)], "#{i}");
        assert_eq!(r.rev, base + 1);
        assert_eq!(s.delete_range(b"foo", b"").unwrap(), (1, base + 2), "#{i}");
        let r = s.range(b"foo", b"", opts(base + 2)).unwrap();
        assert_eq!((r.kvs.len(), r.rev), (0, base + 2), "#{i}");
    }
}

/// etcd's TestKVTxnOperationInSequence: inside one write txn, a range sees the txn's own put
/// and then its delete; everything shares one revision.
#[test]
fn kv_txn_operation_in_sequence() {
    let env = Env::new();
    let s = env.s();
    for i in 0..10i64 {
        let base = i + 1;
        let mut txn = s.write();
        assert_eq!(txn.put(b"foo", b"bar", 0).unwrap(), base + 1);
        let r = txn.range(b"foo", b"", opts(base + 1)).unwrap();
        assert_eq!(r.kvs, [kv("foo", "bar", base + 1, base + 1, 1, 0)], "#{i}");
        assert_eq!(r.rev, base + 1);
        assert_eq!(txn.delete_range(b"foo", b"").unwrap(), (1, base + 1));
        let r = txn.range(b"foo", b"", opts(base + 1)).unwrap();
        assert_eq!((r.kvs.len(), r.rev), (0, base + 1), "#{i}");
        // A revision above the txn's is in the future, even inside it.
        assert_eq!(
            txn.range(b"foo", b"", opts(base + 2)),
            Err(MvccError::FutureRev)
        );
        assert_eq!(txn.end(), base + 1);
    }
}

/// Several changes in one txn: one main revision, sub revisions 0, 1, 2… in the `key`
/// bucket; versions count every put, even inside one txn; a txn that changes nothing does
/// not move the revision.
#[test]
fn txn_changes_share_one_revision() {
    let env = Env::new();
    let s = env.s();
    let mut txn = s.write();
    assert_eq!(txn.rev(), 1);
    assert_eq!(txn.put(b"a", b"1", 0).unwrap(), 2);
    assert_eq!(txn.put(b"a", b"2", 7).unwrap(), 2);
    assert_eq!(txn.put(b"b", b"1", 0).unwrap(), 2);
    assert_eq!(txn.delete_range(b"b", b"").unwrap(), (1, 2));
    assert_eq!(txn.put(b"b", b"again", 0).unwrap(), 2);
    assert_eq!(txn.changes().len(), 5);
    assert_eq!(txn.changes()[3], kv("b", "", 0, 0, 0, 0));
    assert_eq!(txn.end(), 2);

    let keys: Vec<BucketKey> = env
        .bucket(KEY_BUCKET)
        .iter()
        .map(|(k, _)| BucketKey::from_bytes(k).unwrap())
        .collect();
    let want: Vec<BucketKey> = [false, false, false, true, false]
        .iter()
        .enumerate()
        .map(|(sub, &t)| BucketKey::new(Revision::new(2, sub as i64), t))
        .collect();
    assert_eq!(keys, want);
    let r = s.range(b"", b"\0", RangeOptions::default()).unwrap();
    assert_eq!(
        r.kvs,
        [kv("a", "2", 2, 2, 2, 7), kv("b", "again", 2, 2, 1, 0)]
    );

    // Nothing changed: no new revision, no delete counted.
    let mut txn = s.write();
    assert_eq!(txn.delete_range(b"zzz", b"").unwrap(), (0, 2));
    txn.range(b"a", b"", RangeOptions::default()).unwrap();
    assert_eq!(txn.end(), 2);
    assert_eq!(s.current_revision(), 2);
}

/// etcd's TestKVCompactReserveLastValue: a compaction keeps the value a read at the
/// compaction revision needs, and drops a key whose last change by then is a delete.
#[test]
fn kv_compact_reserve_last_value() {
    let env = Env::new();
    let s = env.s();
    s.put(b"foo", b"bar0", 1).unwrap();
    s.put(b"foo", b"bar1", 2).unwrap();
    s.delete_range(b"foo", b"").unwrap();
    s.put(b"foo", b"bar2", 3).unwrap();
    let table: &[(i64, &[KeyValue])] = &[
        (1, &[kv("foo", "bar0", 2, 2, 1, 1)]),
        (2, &[kv("foo", "bar1", 2, 3, 2, 2)]),
        (3, &[]),
        (4, &[kv("foo", "bar2", 5, 5, 1, 3)]),
    ];
    for &(rev, want) in table {
        s.compact(rev).unwrap().wait().unwrap();
        let r = s.range(b"foo", b"", opts(rev + 1)).unwrap();
        assert_eq!(r.kvs, want, "compact({rev})");
    }
    // Only the live value is left in the backend.
    let keys: Vec<_> = env.bucket(KEY_BUCKET).into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, [Revision::new(5, 0).to_bytes().to_vec()]);
}

/// etcd's TestKVCompactBad.
#[test]
fn kv_compact_bad() {
    let env = Env::new();
    let s = env.s();
    for v in ["bar0", "bar1", "bar2"] {
        s.put(b"foo", v.as_bytes(), 0).unwrap();
    }
    let table: &[(i64, Option<MvccError>)] = &[
        (0, None),
        (1, None),
        (1, Some(MvccError::Compacted)),
        (4, None),
        (5, Some(MvccError::FutureRev)),
        (100, Some(MvccError::FutureRev)),
    ];
    for (i, (rev, werr)) in table.iter().enumerate() {
        let got = s.compact(*rev).map(|mut h| h.wait().unwrap()).err();
        assert_eq!(&got, werr, "#{i}: compact({rev})");
    }
    assert_eq!(s.compacted_revision(), 4);
}

/// etcd's TestKVHash: the same writes give the same hash; and the hash does not change when
/// the compaction it is taken across finishes.
#[test]
fn kv_hash() {
    let mut hashes = Vec::new();
    for _ in 0..3 {
        let env = Env::new();
        env.s().put(b"foo0", b"bar0", 0).unwrap();
        env.s().put(b"foo1", b"bar0", 0).unwrap();
        hashes.push(env.s().hash_kv(0).unwrap());
    }
    assert!(hashes.windows(2).all(|w| w[0] == w[1]), "{hashes:?}");
    assert_eq!(hashes[0].revision, 3);
    assert_eq!(hashes[0].compact_revision, -1);

    // A hash at a revision only covers the revisions up to it.
    let env = Env::new();
    let s = env.s();
    for i in 0..10 {
        s.put(format!("k{}", i % 3).as_bytes(), b"v", 0).unwrap();
    }
    let at6 = s.hash_kv(6).unwrap();
    s.put(b"k9", b"later", 0).unwrap();
    assert_eq!(s.hash_kv(6).unwrap().hash, at6.hash);
    assert_ne!(s.hash_kv(0).unwrap().hash, at6.hash);
    assert_eq!(s.hash_kv(13), Err(MvccError::FutureRev));

    // Compacting at 8 with a slow compactor: the hash at 10 is the same before and after the
    // physical deletes (revisions at or below 8 count only if a read at 10 needs them).
    let env = Env::with(KvStoreConfig {
        compaction_batch_limit: 1,
        compaction_pause: Duration::from_millis(20),
        ..KvStoreConfig::default()
    });
    let s = env.s();
    for i in 0..10 {
        s.put(format!("k{}", i % 3).as_bytes(), b"v", 0).unwrap();
    }
    let before = s.hash_kv(10).unwrap();
    let mut h = s.compact(8).unwrap();
    let during = s.hash_kv(10).unwrap();
    h.wait().unwrap();
    let after = s.hash_kv(10).unwrap();
    assert_eq!(during.hash, after.hash);
    assert_eq!(after.compact_revision, 8);
    assert_ne!(
        before.hash, after.hash,
        "compacted revisions no longer count"
    );
    assert_eq!(s.hash_kv(8), Err(MvccError::Compacted));
    assert_eq!(s.hash_kv(9).unwrap().compact_revision, 8);
}

/// What every range over "a".."z" at revisions 0..10 returns (errors as `None`), as etcd's
/// TestKVRestore compares before and after.
fn history(s: &KvStore) -> Vec<Option<Vec<KeyValue>>> {
    (0..10)
        .map(|rev| s.range(b"a", b"z", opts(rev)).ok().map(|r| r.kvs))
        .collect()
}

/// etcd's TestKVRestore: a store reopened from its file answers every read as before.
#[test]
fn kv_restore() {
    type Setup = fn(&KvStore);
    let cases: [Setup; 4] = [
        |s| {
            s.put(b"foo", b"bar0", 1).unwrap();
            s.put(b"foo", b"bar1", 2).unwrap();
            s.put(b"foo", b"bar2", 3).unwrap();
            s.put(b"foo2", b"bar0", 1).unwrap();
        },
        |s| {
            s.put(b"foo", b"bar0", 1).unwrap();
            s.delete_range(b"foo", b"").unwrap();
            s.put(b"foo", b"bar1", 2).unwrap();
        },
        |s| {
            s.put(b"foo", b"bar0", 1).unwrap();
            s.put(b"foo", b"bar1", 2).unwrap();
            s.compact(1).unwrap().wait().unwrap();
        },
        // Every revision up to the compaction deleted: the revision survives anyway.
        |s| {
            s.put(b"foo", b"bar0", 1).unwrap();
            s.delete_range(b"foo", b"").unwrap();
            s.compact(3).unwrap().wait().unwrap();
        },
    ];
    for (i, setup) in cases.iter().enumerate() {
        let mut env = Env::new();
        setup(env.s());
        let before = history(env.s());
        let revs = (env.s().current_revision(), env.s().compacted_revision());
        let keys = env.metrics.mvcc_keys.get();
        let hash = env.s().hash_kv(0).unwrap();
        env.reopen();
        env.s().compact_barrier().wait().unwrap();
        assert_eq!(history(env.s()), before, "#{i}");
        assert_eq!(
            (env.s().current_revision(), env.s().compacted_revision()),
            revs,
            "#{i}"
        );
        assert_eq!(env.metrics.mvcc_keys.get(), keys, "#{i}");
        assert_eq!(env.s().hash_kv(0).unwrap(), hash, "#{i}");
    }
}

/// Leases of the live keys are handed to the lessor after a restart; a delete or a put
/// without lease detaches.
#[test]
fn restored_leases() {
    let mut env = Env::new();
    let s = env.s();
    s.put(b"a", b"1", 5).unwrap();
    s.put(b"b", b"1", 6).unwrap();
    s.put(b"b", b"2", 0).unwrap();
    s.put(b"c", b"1", 7).unwrap();
    s.delete_range(b"c", b"").unwrap();
    s.put(b"d", b"1", 8).unwrap();
    s.put(b"d", b"2", 9).unwrap();
    env.reopen();
    let want: BTreeMap<Vec<u8>, i64> = [(b"a".to_vec(), 5), (b"d".to_vec(), 9)].into();
    assert_eq!(env.s().take_restored_leases(), want);
    assert!(env.s().take_restored_leases().is_empty());
}

/// etcd's TestRestoreContinueUnfinishedCompaction: `scheduledCompactRev` newer than
/// `finishedCompactRev` means a compaction was cut short; opening finishes it.
#[test]
fn restore_continues_unfinished_compaction() {
    let mut env = Env::new();
    for v in ["bar", "bar1", "bar2"] {
        env.s().put(b"foo", v.as_bytes(), 0).unwrap();
    }
    // Schedule a compaction at 3 without doing it.
    env.backend()
        .batch_tx()
        .put(
            META_BUCKET,
            SCHEDULED_COMPACT_KEY,
            &Revision::new(3, 0).to_bytes(),
        )
        .unwrap();
    env.reopen();
    env.s().compact_barrier().wait().unwrap();
    assert_eq!(env.s().compacted_revision(), 3);
    assert_eq!(
        env.s().range(b"foo", b"", opts(2)),
        Err(MvccError::Compacted)
    );
    let keys: Vec<_> = env.bucket(KEY_BUCKET).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        [
            Revision::new(3, 0).to_bytes().to_vec(),
            Revision::new(4, 0).to_bytes().to_vec()
        ]
    );
    assert_eq!(
        env.meta(FINISHED_COMPACT_KEY),
        Some(Revision::new(3, 0).to_bytes().to_vec())
    );
}

/// A compaction runs in batches of `compaction_batch_limit`, committing each; a store dropped
/// in a pause stops it (the waiter hears `Closed`) and the next open finishes it.
#[test]
fn compaction_in_batches_resumes_after_stop() {
    let slow = KvStoreConfig {
        compaction_batch_limit: 2,
        compaction_pause: NEVER,
        ..KvStoreConfig::default()
    };
    let mut env = Env::with(slow);
    for i in 0..20 {
        env.s()
            .put(format!("k{}", i % 4).as_bytes(), b"v", 0)
            .unwrap();
    }
    // Revisions 2..=21; compacting at 21 keeps the last of each key: 18, 19, 20, 21.
    let at = |s: &KvStore| s.range(b"", b"\0", opts(21)).unwrap();
    let before = at(env.s());
    let mut h = env.s().compact(21).unwrap();
    assert_eq!(h.wait_timeout(Duration::from_millis(50)), None);
    // The first batch gets done and committed; the second waits for the pause to end.
    assert!(eventually(|| env.bucket(KEY_BUCKET).len() == 18));
    assert_eq!(
        env.meta(SCHEDULED_COMPACT_KEY),
        Some(Revision::new(21, 0).to_bytes().to_vec())
    );
    assert_eq!(env.meta(FINISHED_COMPACT_KEY), None);
    env.stop_store();
    assert_eq!(h.wait(), Err(MvccError::Closed));

    env.reopen_with(KvStoreConfig {
        compaction_batch_limit: 3,
        ..fast()
    });
    env.s().compact_barrier().wait().unwrap();
    let keys: Vec<_> = env.bucket(KEY_BUCKET).into_iter().map(|(k, _)| k).collect();
    let want: Vec<_> = (18..=21)
        .map(|m| Revision::new(m, 0).to_bytes().to_vec())
        .collect();
    assert_eq!(keys, want);
    assert_eq!(
        env.meta(FINISHED_COMPACT_KEY),
        Some(Revision::new(21, 0).to_bytes().to_vec())
    );
    assert_eq!(env.s().compacted_revision(), 21);
    assert_eq!(env.s().current_revision(), 21);
    // 16 revisions deleted in all, 2 before the stop and 14 after.
    assert_eq!(env.metrics.mvcc_compaction_keys.get(), 16);
    // Reads at the compaction revision are unchanged, below it gone.
    assert_eq!(at(env.s()), before);
    assert_eq!(before.count, 4);
    assert_eq!(
        env.s().range(b"", b"\0", opts(20)),
        Err(MvccError::Compacted)
    );
}

/// The schema byte for byte: 17-byte revision keys (18 with `t` for a delete) mapping to
/// encoded KeyValues (the key alone for a delete), and the `meta` keys etcd writes.
#[test]
fn schema_is_etcds() {
    let env = Env::new();
    let s = env.s();
    let mut txn = s.write();
    txn.put(b"foo", b"bar", 0x42).unwrap();
    txn.set_consistent_index(7, 2).unwrap();
    txn.end();
    let mut txn = s.write();
    txn.delete_range(b"foo", b"").unwrap();
    txn.set_consistent_index(8, 2).unwrap();
    txn.end();
    s.compact(2).unwrap().wait().unwrap();

    let put_key = [0, 0, 0, 0, 0, 0, 0, 2, b'_', 0, 0, 0, 0, 0, 0, 0, 0].to_vec();
    let del_key = [0, 0, 0, 0, 0, 0, 0, 3, b'_', 0, 0, 0, 0, 0, 0, 0, 0, b't'].to_vec();
    let put_val = [
        0x0a, 3, b'f', b'o', b'o', 0x10, 2, 0x18, 2, 0x20, 1, 0x2a, 3, b'b', b'a', b'r', 0x30, 0x42,
    ]
    .to_vec();
    let del_val = [0x0a, 3, b'f', b'o', b'o'].to_vec();
    assert_eq!(
        env.bucket(KEY_BUCKET),
        [(put_key, put_val), (del_key, del_val)]
    );
    let rev2 = [0, 0, 0, 0, 0, 0, 0, 2, b'_', 0, 0, 0, 0, 0, 0, 0, 0].to_vec();
    let meta: BTreeMap<Vec<u8>, Vec<u8>> = env.bucket(META_BUCKET).into_iter().collect();
    let want: BTreeMap<Vec<u8>, Vec<u8>> = [
        (CONSISTENT_INDEX_KEY.to_vec(), 8u64.to_be_bytes().to_vec()),
        (FINISHED_COMPACT_KEY.to_vec(), rev2.clone()),
        (SCHEDULED_COMPACT_KEY.to_vec(), rev2),
        (TERM_KEY.to_vec(), 2u64.to_be_bytes().to_vec()),
    ]
    .into();
    assert_eq!(meta, want);
    assert_eq!(CONSISTENT_INDEX_KEY, b"consistent_index");
    assert_eq!(TERM_KEY, b"term");
    assert_eq!(SCHEDULED_COMPACT_KEY, b"scheduledCompactRev");
    assert_eq!(FINISHED_COMPACT_KEY, b"finishedCompactRev");
}

/// The consistent index is written in the write txn's own batch tx: committed with its data,
/// restored at open. Index 0 and term 0 never overwrite what is there; a txn that changes no
/// key still records its index.
#[test]
fn consistent_index_persists_with_the_data() {
    let mut env = Env::new();
    assert_eq!((env.s().consistent_index(), env.s().term()), (0, 0));
    let mut txn = env.s().write();
    txn.put(b"foo", b"bar", 0).unwrap();
    txn.set_consistent_index(10, 3).unwrap();
    // Not visible as applied until the txn ends.
    assert_eq!(env.s().consistent_index(), 0);
    txn.end();
    assert_eq!((env.s().consistent_index(), env.s().term()), (10, 3));
    env.backend().force_commit().unwrap();
    env.reopen();
    assert_eq!((env.s().consistent_index(), env.s().term()), (10, 3));
    let r = env.s().range(b"foo", b"", RangeOptions::default()).unwrap();
    assert_eq!(r.kvs, [kv("foo", "bar", 2, 2, 1, 0)]);

    let mut txn = env.s().write();
    txn.set_consistent_index(11, 0).unwrap();
    assert_eq!(txn.end(), 2, "no key changed: no new revision");
    let mut txn = env.s().write();
    txn.set_consistent_index(0, 9).unwrap();
    txn.end();
    assert_eq!((env.s().consistent_index(), env.s().term()), (11, 3));
    env.reopen();
    assert_eq!((env.s().consistent_index(), env.s().term()), (11, 3));
}

/// etcd's TestKVTxnNonBlockRange and TestKVTxnBlockWriteOperations: an open write txn holds
/// up other writers, never readers; readers see the txn's changes only after it ends.
#[test]
fn write_txn_blocks_writers_not_readers() {
    let env = Env::new();
    let s = env.s();
    s.put(b"foo", b"old", 0).unwrap();
    let mut txn = s.write();
    txn.put(b"foo", b"new", 0).unwrap();
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| s.range(b"foo", b"", RangeOptions::default()).unwrap());
        let r = reader.join().unwrap();
        assert_eq!((r.rev, r.kvs[0].value.as_slice()), (2, &b"old"[..]));

        let (started, waiting) = std::sync::mpsc::channel();
        let writer = scope.spawn(move || {
            started.send(()).unwrap();
            s.put(b"foo", b"other", 0).unwrap()
        });
        waiting.recv().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(!writer.is_finished(), "a put went past an open write txn");
        assert_eq!(txn.end(), 3);
        assert_eq!(writer.join().unwrap(), 4);
    });
    let r = s.range(b"foo", b"", opts(3)).unwrap();
    assert_eq!(r.kvs[0].value, b"new");
}

/// A read txn keeps its revision and its snapshot while writes go on.
#[test]
fn read_txn_is_a_snapshot() {
    let env = Env::new();
    let s = env.s();
    s.put(b"a", b"1", 0).unwrap();
    let txn = s.read();
    s.put(b"a", b"2", 0).unwrap();
    s.delete_range(b"a", b"").unwrap();
    env.backend().force_commit().unwrap();
    let r = txn.range(b"a", b"", RangeOptions::default()).unwrap();
    assert_eq!(
        (r.rev, r.kvs.as_slice()),
        (2, &[kv("a", "1", 2, 2, 1, 0)][..])
    );
    assert_eq!(
        txn.range(b"a", b"", opts(3)),
        Err(MvccError::FutureRev),
        "the txn's revision bounds it"
    );
    assert_eq!((txn.rev(), txn.first_rev()), (2, -1));

    // A compaction waits for the open read txn (etcd's `mu`), which reads on at its revision;
    // new read txns wait for the compaction meanwhile.
    std::thread::scope(|scope| {
        let compactor = scope.spawn(|| s.compact(4).unwrap().wait().unwrap());
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !compactor.is_finished(),
            "compaction passed an open read txn"
        );
        let r = txn.range(b"a", b"", RangeOptions::default()).unwrap();
        assert_eq!(r.kvs, [kv("a", "1", 2, 2, 1, 0)]);
        txn.end();
        compactor.join().unwrap();
    });
    assert_eq!(
        s.range(b"a", b"", opts(3)),
        Err(MvccError::Compacted),
        "a read txn begun after it sees the compaction"
    );
}

/// Every measurement of the store is taken: the histograms, and the spans with their
/// fields — the compactor thread's spans included (they follow the `compact` caller's
/// subscriber).
#[test]
fn measurements_are_recorded() {
    let (capture, _guard) = Capture::install();
    let mut env = Env::with(KvStoreConfig {
        compaction_batch_limit: 2,
        ..fast()
    });
    let s = env.s();
    let mut txn = s.write();
    txn.put(b"foo", b"bar", 0).unwrap();
    txn.put(b"foo1", b"bar1", 0).unwrap();
    txn.range(b"foo", b"\0", RangeOptions::default()).unwrap();
    txn.delete_range(b"foo1", b"").unwrap();
    txn.end();
    s.put(b"foo", b"baz", 0).unwrap();
    s.range(b"foo", b"", RangeOptions::default()).unwrap();
    s.compact(3).unwrap().wait().unwrap();
    env.reopen();

    let m = &env.metrics;
    for (name, at_least) in [
        (names::MVCC_PUT, 3),
        (names::MVCC_RANGE, 2),
        (names::MVCC_DELETE, 1),
        (names::MVCC_TXN, 2),
        (names::MVCC_INDEX_COMPACTION, 1),
        (names::MVCC_COMPACTION, 1),
        (names::MVCC_COMPACTION_PAUSE, 2),
        (names::MVCC_RESTORE, 2),
    ] {
        let h = m.histogram(name).unwrap();
        assert!(h.count() >= at_least, "{name}: {} recorded", h.count());
        assert!(
            capture.spans_named(name).len() as u64 >= at_least,
            "{name}: spans"
        );
    }
    let txn = &capture.spans_named(names::MVCC_TXN)[0];
    assert_eq!(txn.field("puts"), Some("2"));
    assert_eq!(txn.field("deletes"), Some("1"));
    assert_eq!(txn.field("ranges"), Some("1"));
    assert_eq!(txn.field("changes"), Some("3"));
    assert_eq!(txn.field("revision"), Some("2"));
    let puts = capture.spans_named(names::MVCC_PUT);
    assert_eq!(puts[1].parent.as_deref(), Some(names::MVCC_TXN));
    assert_eq!(puts[1].field("sub"), Some("1"));
    assert_eq!(puts[1].field("key_bytes"), Some("4"));
    assert_eq!(puts[2].field("version"), Some("2"));
    let del = &capture.spans_named(names::MVCC_DELETE)[0];
    assert_eq!(
        (del.field("deleted"), del.field("revision")),
        (Some("1"), Some("2"))
    );
    let range = capture.spans_named(names::MVCC_RANGE);
    assert_eq!(range[0].field("txn"), Some("write"));
    assert_eq!(range[0].field("keys"), Some("2"));
    assert_eq!(range[1].field("txn"), Some("read"));
    let comp = &capture.spans_named(names::MVCC_COMPACTION)[0];
    assert_eq!(comp.field("revision"), Some("3"));
    // Revisions 2.0 (foo), 2.1 (foo1), 2.2t (foo1) and 3.0 (foo): compacting at 3 keeps
    // 3.0 and deletes the rest. Batches of 2: two full ones, then an empty one that finds
    // nothing more (as etcd's loop does).
    assert_eq!(comp.field("deleted"), Some("3"));
    assert_eq!(comp.field("batches"), Some("3"));
    let pauses = capture.spans_named(names::MVCC_COMPACTION_PAUSE);
    assert_eq!(pauses[0].field("scanned"), Some("2"));
    let restore = capture.spans_named(names::MVCC_RESTORE);
    assert_eq!(restore.last().unwrap().field("keys"), Some("1"));
    assert_eq!(restore.last().unwrap().field("revision"), Some("3"));

    assert_eq!(m.mvcc_current_revision.get(), 3);
    assert_eq!(m.mvcc_compact_revision.get(), 3);
    assert_eq!(m.mvcc_keys.get(), 1);
    assert_eq!(m.mvcc_compaction_keys.get(), 3);
}

/// A compaction cut short after deleting every revision up to its revision (all overwritten
/// or deleted) but before writing `finishedCompactRev`: the `key` bucket no longer shows the
/// current revision, the scheduled compaction does — revisions are never handed out twice.
#[test]
fn restore_after_compaction_deleted_everything() {
    let mut env = Env::new();
    env.s().put(b"foo", b"bar", 0).unwrap();
    env.s().delete_range(b"foo", b"").unwrap();
    assert_eq!(env.s().current_revision(), 3);
    {
        let mut tx = env.backend().batch_tx();
        tx.put(
            META_BUCKET,
            SCHEDULED_COMPACT_KEY,
            &Revision::new(3, 0).to_bytes(),
        )
        .unwrap();
        for (k, _) in tx.range(KEY_BUCKET, &[0], &[0xff], 0).unwrap() {
            tx.delete(KEY_BUCKET, &k).unwrap();
        }
    }
    env.reopen();
    env.s().compact_barrier().wait().unwrap();
    assert_eq!(env.s().current_revision(), 3);
    assert_eq!(env.s().compacted_revision(), 3);
    assert_eq!(env.s().put(b"foo", b"again", 0).unwrap(), 4);
    let r = env.s().range(b"foo", b"", RangeOptions::default()).unwrap();
    assert_eq!(r.kvs, [kv("foo", "again", 4, 4, 1, 0)]);
}

/// Readers racing a writer and compactions: a reader that sees revision R sees R's writes
/// (the writer's key holds its own revision as value, so every read checks itself), and a
/// read at an older revision is either right or `Compacted` — never a wrong or missing value.
#[test]
fn readers_see_whole_revisions_while_writes_and_compactions_run() {
    let env = Env::with(KvStoreConfig {
        compaction_batch_limit: 7,
        ..fast()
    });
    let s = env.s();
    s.put(b"k", b"2", 0).unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                let mut reads = 0u64;
                while !done.load(std::sync::atomic::Ordering::Relaxed) || reads < 100 {
                    let txn = s.read();
                    let r = txn.range(b"k", b"", RangeOptions::default()).unwrap();
                    let v = &r.kvs[0];
                    assert_eq!(v.mod_revision, r.rev);
                    assert_eq!(v.value, r.rev.to_string().as_bytes());
                    let old = r.rev - 1 - (reads as i64 % 20);
                    match txn.range(b"k", b"", opts(old.max(1))) {
                        Ok(r) if !r.kvs.is_empty() => {
                            assert_eq!(
                                r.kvs[0].value,
                                r.kvs[0].mod_revision.to_string().as_bytes()
                            );
                            assert!(r.kvs[0].mod_revision <= old.max(1));
                        }
                        Ok(_) => assert!(old < 2),
                        Err(e) => assert_eq!(e, MvccError::Compacted),
                    }
                    reads += 1;
                }
            });
        }
        for _ in 0..400 {
            let next = s.current_revision() + 1;
            let mut txn = s.write();
            txn.put(b"other", b"x", 0).unwrap();
            txn.put(b"k", next.to_string().as_bytes(), 0).unwrap();
            txn.end();
            if next % 50 == 0 {
                s.compact(next - 10).unwrap();
            }
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    s.compact_barrier().wait().unwrap();
}
