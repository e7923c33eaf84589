//! Model-based test of the MVCC key index: random histories of txns (puts and deletes of a few
//! keys, several per revision), compactions and reads run against [`TreeIndex`] and against a
//! plain model — every key's full list of (revision, tombstone) — that answers each read by
//! scanning history. Reads are asked only where the index must still know the answer: at or
//! after the last compaction (`range_since`: after it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use glassd::storage::mvcc::{MvccError, Revision, TreeIndex};
use proptest::prelude::*;
use telemetry::Metrics;

type Key = Vec<u8>;

/// Every change ever made to each key, oldest first: (revision, is a tombstone).
#[derive(Default)]
struct Model {
    history: BTreeMap<Key, Vec<(Revision, bool)>>,
    /// Last main revision handed out.
    rev: i64,
    /// Last compaction revision.
    compacted: i64,
}

impl Model {
    fn live(&self, key: &[u8]) -> bool {
        self.history
            .get(key)
            .and_then(|h| h.last())
            .is_some_and(|(_, tomb)| !tomb)
    }

    /// (modified, created, version) of `key` at `at`, if it existed then.
    fn get(&self, key: &[u8], at: i64) -> Option<(Revision, Revision, i64)> {
        let h = self.history.get(key)?;
        let last = h.iter().rposition(|(r, _)| r.main <= at)?;
        if h[last].1 {
            return None;
        }
        // The generation starts after the previous tombstone.
        let start = h[..last]
            .iter()
            .rposition(|(_, tomb)| *tomb)
            .map_or(0, |t| t + 1);
        Some((h[last].0, h[start].0, (last - start + 1) as i64))
    }

    fn keys_in(&self, key: &[u8], end: &[u8]) -> Vec<&Key> {
        self.history
            .keys()
            .filter(|k| match end {
                [] => k.as_slice() == key,
                [0] => k.as_slice() >= key,
                end => k.as_slice() >= key && k.as_slice() < end,
            })
            .collect()
    }

    fn range(&self, key: &[u8], end: &[u8], at: i64) -> (Vec<Key>, Vec<Revision>) {
        self.keys_in(key, end)
            .into_iter()
            .filter_map(|k| self.get(k, at).map(|(m, _, _)| (k.clone(), m)))
            .unzip()
    }

    fn since(&self, key: &[u8], end: &[u8], rev: i64) -> Vec<Revision> {
        let mut out = Vec::new();
        for k in self.keys_in(key, end) {
            let mut mine: Vec<Revision> = Vec::new();
            for (r, _) in &self.history[k] {
                if r.main < rev {
                    continue;
                }
                // Of one main revision only the last sub is seen from outside.
                match mine.last_mut() {
                    Some(last) if last.main == r.main => *last = *r,
                    _ => mine.push(*r),
                }
            }
            out.extend(mine);
        }
        out.sort();
        out
    }

    /// What compaction at `at` keeps: per key, the last change at or before `at` if a put.
    fn available(&self, at: i64) -> HashSet<Revision> {
        self.history
            .values()
            .filter_map(|h| h.iter().rev().find(|(r, _)| r.main <= at))
            .filter(|(_, tomb)| !tomb)
            .map(|(r, _)| *r)
            .collect()
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// One change set: puts (false) and deletes (true), subs 0, 1, … in order.
    Txn(Vec<(Key, bool)>),
    /// Reads at a revision between the compaction and one past the current one, picked by
    /// `pick` (modulo the span).
    Get(Key, u16),
    Range(Key, Key, u16),
    Revisions(Key, Key, u16, usize),
    RangeSince(Key, Key, u16),
    Compact(u16),
}

fn key() -> impl Strategy<Value = Key> {
    prop::collection::vec(prop::sample::select(vec![b'a', b'b', b'c']), 1..=2)
}

/// A range start (may be empty) and end: empty (one key), "\0" (to the end), or any key —
/// including ones at or before the start.
fn range() -> impl Strategy<Value = (Key, Key)> {
    let start = prop::collection::vec(prop::sample::select(vec![b'a', b'b', b'c']), 0..=2);
    let end = prop_oneof![
        1 => Just(Vec::new()),
        1 => Just(vec![0u8]),
        3 => prop::collection::vec(prop::sample::select(vec![b'a', b'b', b'c', b'd']), 1..=2),
    ];
    (start, end)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => prop::collection::vec((key(), prop::bool::weighted(0.3)), 1..=3).prop_map(Op::Txn),
        2 => (key(), any::<u16>()).prop_map(|(k, p)| Op::Get(k, p)),
        2 => (range(), any::<u16>()).prop_map(|((k, e), p)| Op::Range(k, e, p)),
        2 => (range(), any::<u16>(), 0..4usize).prop_map(|((k, e), p, l)| Op::Revisions(k, e, p, l)),
        2 => (range(), any::<u16>()).prop_map(|((k, e), p)| Op::RangeSince(k, e, p)),
        1 => any::<u16>().prop_map(Op::Compact),
    ]
}

/// A revision in `from..=to`, picked by `pick`.
fn pick_in(pick: u16, from: i64, to: i64) -> i64 {
    from + i64::from(pick) % (to - from + 1)
}

fn run(ops: &[Op]) {
    let ti = TreeIndex::new(Arc::new(Metrics::new()));
    let mut m = Model::default();
    for op in ops {
        match op {
            Op::Txn(changes) => {
                m.rev += 1;
                let mut sub = 0;
                for (k, delete) in changes {
                    let rev = Revision::new(m.rev, sub);
                    if *delete {
                        let got = ti.tombstone(k, rev);
                        if m.live(k) {
                            assert_eq!(got, Ok(()), "tombstone {k:?} at {rev}");
                        } else {
                            assert_eq!(got, Err(MvccError::RevisionNotFound), "{k:?} at {rev}");
                            continue;
                        }
                    } else {
                        assert_eq!(ti.put(k, rev), Ok(()), "put {k:?} at {rev}");
                    }
                    m.history.entry(k.clone()).or_default().push((rev, *delete));
                    sub += 1;
                }
            }
            Op::Get(k, pick) => {
                let at = pick_in(*pick, m.compacted, m.rev + 1);
                let want = m.get(k, at).ok_or(MvccError::RevisionNotFound);
                assert_eq!(ti.get(k, at), want, "get {k:?} at {at}");
            }
            Op::Range(k, e, pick) => {
                let at = pick_in(*pick, m.compacted, m.rev + 1);
                assert_eq!(
                    ti.range(k, e, at),
                    m.range(k, e, at),
                    "range {k:?}..{e:?} at {at}"
                );
            }
            Op::Revisions(k, e, pick, limit) => {
                let at = pick_in(*pick, m.compacted, m.rev + 1);
                let (_, mut want) = m.range(k, e, at);
                let total = want.len();
                if *limit > 0 {
                    want.truncate(*limit);
                }
                let what = format!("{k:?}..{e:?} at {at} limit {limit}");
                assert_eq!(
                    ti.revisions(k, e, at, *limit),
                    (want, total),
                    "revisions {what}"
                );
                assert_eq!(ti.count_revisions(k, e, at), total, "count {what}");
            }
            Op::RangeSince(k, e, pick) => {
                let since = pick_in(*pick, m.compacted + 1, m.rev + 2);
                assert_eq!(
                    ti.range_since(k, e, since),
                    m.since(k, e, since),
                    "range_since {k:?}..{e:?} from {since}"
                );
            }
            Op::Compact(pick) => {
                let at = pick_in(*pick, m.compacted, m.rev);
                let want = m.available(at);
                assert_eq!(ti.keep(at), want, "keep({at})");
                assert_eq!(ti.compact(at), want, "compact({at})");
                m.compacted = at;
                // Keys with nothing left to read are gone from the index.
                let readable = m
                    .history
                    .keys()
                    .filter(|k| m.history[*k].iter().any(|(r, _)| r.main > at) || m.live(k))
                    .count();
                assert_eq!(ti.len(), readable, "keys left after compact({at})");
            }
        }
    }
    // Every revision still readable answers like the model.
    for at in m.compacted..=m.rev + 1 {
        assert_eq!(
            ti.range(b"", b"\0", at),
            m.range(b"", b"\0", at),
            "final, at {at}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn treeindex_matches_model(ops in prop::collection::vec(op(), 1..200)) {
        run(&ops);
    }
}

/// The etcd fixture history, compacted at each of its revisions, as a fixed case.
#[test]
fn fixed_history_with_compactions() {
    let k = |s: &str| s.as_bytes().to_vec();
    let mut ops = vec![
        Op::Txn(vec![(k("foo"), false)]),
        Op::Txn(vec![(k("foo1"), false)]),
        Op::Txn(vec![(k("foo2"), false)]),
        Op::Txn(vec![(k("foo2"), false)]),
        Op::Txn(vec![(k("foo"), false)]),
        Op::Txn(vec![(k("foo1"), false)]),
        Op::Txn(vec![(k("foo1"), true)]),
        Op::Txn(vec![(k("foo2"), true)]),
        Op::Txn(vec![(k("foo"), true)]),
        Op::Txn(vec![(k("foo"), false), (k("foo1"), false)]),
    ];
    for pick in 0..12 {
        ops.push(Op::RangeSince(k("f"), vec![0], pick));
        ops.push(Op::Range(k("f"), k("g"), pick));
        ops.push(Op::Compact(1));
    }
    run(&ops);
}
