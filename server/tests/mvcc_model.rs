//! Model-based test of the MVCC store over a real backend: random write txns (puts, deletes
//! and ranges of a few keys, several per txn), compactions (valid or not, waited for or left
//! running in the background) and restarts (the store and backend closed and opened again from
//! the file, sometimes in the middle of a compaction) run against [`KvStore`] and against a
//! model that keeps every key's full history: (revision, value or tombstone, create revision,
//! version, lease).
//!
//! After every step, every revision from the compaction to the current one is read back in
//! full and must be exactly the model's view (values, create/mod revisions, versions, leases,
//! counts), a random range with a limit too; revisions outside those bounds must fail with
//! etcd's errors. Whenever the compactor is idle the `key` bucket itself must hold exactly the
//! model's history above the compaction and, at or below it, each key's value a read at the
//! compaction needs. Restarts must give the same answers (and the same `hash_kv`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use glassd::pb::mvccpb::KeyValue;
use glassd::storage::mvcc::schema::KEY_BUCKET;
use glassd::storage::mvcc::{
    BucketKey, KvStoreConfig, MvccError, RangeOptions, RangeResult, Revision,
};
use proptest::prelude::*;
use prost::Message;

const KEYS: [&[u8]; 5] = [b"a", b"b", b"ba", b"c", b"d"];

/// A range end: one key, every key from the start on, or up to (not including) a key.
#[derive(Debug, Clone, Copy)]
enum End {
    Single,
    Rest,
    Before(usize),
}

impl End {
    fn bytes(self) -> &'static [u8] {
        match self {
            End::Single => b"",
            End::Rest => b"\0",
            End::Before(i) => KEYS[i],
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Put { key: usize, value: u8, lease: i64 },
    Delete { key: usize, end: End },
    Range { key: usize, end: End, limit: i64 },
}

#[derive(Debug, Clone)]
enum Step {
    Txn(Vec<Op>),
    /// Compact at `sel % (current + 2)`: below, at or above the bounds.
    Compact {
        sel: u16,
        wait: bool,
    },
    /// Close and reopen; `wait` for the compactor first, or cut it short.
    Reopen {
        wait: bool,
    },
}

/// A range asked after each step: `rev_sel` picks a revision within the readable bounds.
#[derive(Debug, Clone)]
struct Probe {
    key: usize,
    end: End,
    limit: i64,
    rev_sel: u16,
}

fn end_strategy() -> impl Strategy<Value = End> {
    prop_oneof![
        2 => Just(End::Single),
        1 => Just(End::Rest),
        2 => (0..KEYS.len()).prop_map(End::Before),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..KEYS.len(), any::<u8>(), prop_oneof![3 => Just(0i64), 1 => 1..4i64])
            .prop_map(|(key, value, lease)| Op::Put { key, value, lease }),
        2 => (0..KEYS.len(), end_strategy()).prop_map(|(key, end)| Op::Delete { key, end }),
        1 => (0..KEYS.len(), end_strategy(), -1..3i64)
            .prop_map(|(key, end, limit)| Op::Range { key, end, limit }),
    ]
}

fn step_strategy() -> impl Strategy<Value = Step> {
    prop_oneof![
        12 => prop::collection::vec(op_strategy(), 0..5).prop_map(Step::Txn),
        3 => (any::<u16>(), any::<bool>()).prop_map(|(sel, wait)| Step::Compact { sel, wait }),
        1 => any::<bool>().prop_map(|wait| Step::Reopen { wait }),
    ]
}

fn probe_strategy() -> impl Strategy<Value = Probe> {
    (0..KEYS.len(), end_strategy(), -1..4i64, any::<u16>()).prop_map(
        |(key, end, limit, rev_sel)| Probe {
            key,
            end,
            limit,
            rev_sel,
        },
    )
}

/// One change to a key.
#[derive(Debug, Clone)]
struct Change {
    rev: Revision,
    /// `None`: a delete.
    value: Option<Vec<u8>>,
    create: i64,
    version: i64,
    lease: i64,
}

#[derive(Debug, Clone)]
struct Model {
    history: BTreeMap<Vec<u8>, Vec<Change>>,
    current: i64,
    compacted: i64,
}

impl Model {
    fn new() -> Self {
        Model {
            history: BTreeMap::new(),
            current: 1,
            compacted: -1,
        }
    }

    fn in_range(key: &[u8], end: &[u8], k: &[u8]) -> bool {
        match end {
            [] => k == key,
            [0] => k >= key,
            end => k >= key && k < end,
        }
    }

    /// The last change to `k` at or before `rev`.
    fn change_at(&self, k: &[u8], rev: i64) -> Option<&Change> {
        self.history
            .get(k)?
            .iter()
            .rev()
            .find(|c| c.rev.main <= rev)
    }

    fn get(&self, k: &[u8], rev: i64) -> Option<KeyValue> {
        let c = self.change_at(k, rev)?;
        Some(KeyValue {
            key: k.to_vec(),
            create_revision: c.create,
            mod_revision: c.rev.main,
            version: c.version,
            value: c.value.clone()?,
            lease: c.lease,
        })
    }

    fn range(&self, key: &[u8], end: &[u8], rev: i64) -> Vec<KeyValue> {
        self.history
            .keys()
            .filter(|k| Self::in_range(key, end, k))
            .filter_map(|k| self.get(k, rev))
            .collect()
    }

    fn live_keys(&self) -> i64 {
        self.history
            .keys()
            .filter(|k| self.get(k, self.current).is_some())
            .count() as i64
    }

    /// What the `key` bucket holds once every compaction is done: each key's changes above
    /// the compaction, and the one change at or below it that a read at the compaction
    /// needs (unless a delete).
    fn bucket(&self) -> Vec<(BucketKey, KeyValue)> {
        let mut out = Vec::new();
        for (k, changes) in &self.history {
            let kept = changes
                .iter()
                .rposition(|c| c.rev.main <= self.compacted)
                .filter(|&i| changes[i].value.is_some());
            for (i, c) in changes.iter().enumerate() {
                if c.rev.main <= self.compacted && Some(i) != kept {
                    continue;
                }
                let kv = match &c.value {
                    Some(v) => KeyValue {
                        key: k.clone(),
                        create_revision: c.create,
                        mod_revision: c.rev.main,
                        version: c.version,
                        value: v.clone(),
                        lease: c.lease,
                    },
                    None => KeyValue {
                        key: k.clone(),
                        ..KeyValue::default()
                    },
                };
                out.push((BucketKey::new(c.rev, c.value.is_none()), kv));
            }
        }
        out.sort_by_key(|(bk, _)| *bk);
        out
    }
}

mod common;

use common::mvcc::StoreEnv as Harness;

impl Harness {
    /// A store whose backend commits every 7 writes, so that commits fall inside txns.
    fn new(config: KvStoreConfig) -> Harness {
        Harness::open(config, 7)
    }

    fn bucket(&self) -> Vec<(BucketKey, KeyValue)> {
        self.raw_bucket(KEY_BUCKET)
            .into_iter()
            .map(|(k, v)| {
                (
                    BucketKey::from_bytes(&k).unwrap(),
                    KeyValue::decode(v.as_slice()).unwrap(),
                )
            })
            .collect()
    }
}

/// Runs one txn against the store and the model, checking every answer inside it.
fn run_txn(h: &Harness, model: &mut Model, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut txn = h.s().write();
    let rev = model.current + 1;
    let mut sub = 0i64;
    for op in ops {
        match *op {
            Op::Put { key, value, lease } => {
                let k = KEYS[key];
                let prev = model.get(k, rev);
                let (create, version) = match prev {
                    Some(kv) => (kv.create_revision, kv.version + 1),
                    None => (rev, 1),
                };
                prop_assert_eq!(txn.put(k, &[value], lease).unwrap(), rev);
                model.history.entry(k.to_vec()).or_default().push(Change {
                    rev: Revision::new(rev, sub),
                    value: Some(vec![value]),
                    create,
                    version,
                    lease,
                });
                sub += 1;
            }
            Op::Delete { key, end } => {
                let live: Vec<Vec<u8>> = model
                    .range(KEYS[key], end.bytes(), rev)
                    .into_iter()
                    .map(|kv| kv.key)
                    .collect();
                for k in &live {
                    model.history.get_mut(k).unwrap().push(Change {
                        rev: Revision::new(rev, sub),
                        value: None,
                        create: 0,
                        version: 0,
                        lease: 0,
                    });
                    sub += 1;
                }
                let want_rev = if sub > 0 { rev } else { model.current };
                prop_assert_eq!(
                    txn.delete_range(KEYS[key], end.bytes()).unwrap(),
                    (live.len() as i64, want_rev)
                );
            }
            Op::Range { key, end, limit } => {
                let read_rev = if sub > 0 { rev } else { model.current };
                let all = model.range(KEYS[key], end.bytes(), read_rev);
                let o = RangeOptions {
                    limit,
                    ..RangeOptions::default()
                };
                let got = txn.range(KEYS[key], end.bytes(), o).unwrap();
                prop_assert_eq!(got, expected(all, limit, read_rev));
            }
        }
    }
    let want = if sub > 0 { rev } else { model.current };
    prop_assert_eq!(txn.end(), want);
    model.current = want;
    Ok(())
}

fn expected(all: Vec<KeyValue>, limit: i64, rev: i64) -> RangeResult {
    let count = all.len() as i64;
    let kvs = if limit > 0 {
        all.into_iter().take(limit as usize).collect()
    } else {
        all
    };
    RangeResult { kvs, rev, count }
}

/// Every readable revision against the model, the bounds, a random range, the gauges.
fn check(h: &Harness, model: &Model, probe: &Probe) -> Result<(), TestCaseError> {
    let s = h.s();
    prop_assert_eq!(s.current_revision(), model.current);
    prop_assert_eq!(s.compacted_revision(), model.compacted);
    let lo = model.compacted.max(1);
    for rev in lo..=model.current {
        let got = s.range(
            b"",
            b"\0",
            RangeOptions {
                rev,
                ..RangeOptions::default()
            },
        );
        let want = expected(model.range(b"", b"\0", rev), 0, model.current);
        prop_assert_eq!(got, Ok(want), "full range at {}", rev);
    }
    if model.compacted >= 2 {
        let rev = model.compacted - 1;
        let got = s.range(
            b"a",
            b"",
            RangeOptions {
                rev,
                ..RangeOptions::default()
            },
        );
        prop_assert_eq!(got, Err(MvccError::Compacted));
    }
    let rev = model.current + 1;
    let got = s.range(
        b"a",
        b"\0",
        RangeOptions {
            rev,
            ..RangeOptions::default()
        },
    );
    prop_assert_eq!(got, Err(MvccError::FutureRev));

    let span = (model.current - lo + 1) as u64;
    let rev = lo + (u64::from(probe.rev_sel) % span) as i64;
    let (key, end) = (KEYS[probe.key], probe.end.bytes());
    let o = RangeOptions {
        limit: probe.limit,
        rev,
        count_only: false,
    };
    let got = s.read().range(key, end, o).unwrap();
    prop_assert_eq!(
        got,
        expected(model.range(key, end, rev), probe.limit, model.current)
    );
    let counted = s
        .range(
            key,
            end,
            RangeOptions {
                count_only: true,
                ..o
            },
        )
        .unwrap();
    prop_assert_eq!(counted.count, model.range(key, end, rev).len() as i64);

    prop_assert_eq!(h.metrics.mvcc_keys.get(), model.live_keys());
    prop_assert_eq!(h.metrics.mvcc_current_revision.get(), model.current);
    Ok(())
}

/// Waits for the compactor, then checks the `key` bucket byte for byte against the model.
fn check_bucket(h: &Harness, model: &Model) -> Result<(), TestCaseError> {
    h.s().compact_barrier().wait().unwrap();
    prop_assert_eq!(h.bucket(), model.bucket());
    Ok(())
}

fn run(batch_limit: usize, chunk: usize, steps: Vec<(Step, Probe)>) -> Result<(), TestCaseError> {
    let config = KvStoreConfig {
        compaction_batch_limit: batch_limit,
        compaction_pause: Duration::ZERO,
        restore_chunk_keys: chunk,
    };
    let mut h = Harness::new(config);
    let mut model = Model::new();
    for (step, probe) in &steps {
        match step {
            Step::Txn(ops) => run_txn(&h, &mut model, ops)?,
            Step::Compact { sel, wait } => {
                let rev = i64::from(*sel) % (model.current + 2);
                let got = h.s().compact(rev);
                if rev <= model.compacted {
                    prop_assert_eq!(got.err(), Some(MvccError::Compacted));
                } else if rev > model.current {
                    prop_assert_eq!(got.err(), Some(MvccError::FutureRev));
                } else {
                    let mut handle = got.unwrap();
                    model.compacted = rev;
                    if *wait {
                        handle.wait().unwrap();
                        check_bucket(&h, &model)?;
                    }
                }
            }
            Step::Reopen { wait } => {
                let hash = if *wait {
                    check_bucket(&h, &model)?;
                    Some(h.s().hash_kv(0).unwrap())
                } else {
                    None
                };
                h.reopen();
                // A compaction cut short resumes at open.
                check_bucket(&h, &model)?;
                if let Some(hash) = hash {
                    prop_assert_eq!(h.s().hash_kv(0).unwrap(), hash);
                }
            }
        }
        check(&h, &model, probe)?;
    }
    // A last restart rebuilds the same state.
    h.reopen();
    check_bucket(&h, &model)?;
    for (_, probe) in &steps {
        check(&h, &model, probe)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_model(
        batch_limit in 1usize..5,
        chunk in 1usize..6,
        steps in prop::collection::vec((step_strategy(), probe_strategy()), 1..40),
    ) {
        run(batch_limit, chunk, steps)?;
    }
}
