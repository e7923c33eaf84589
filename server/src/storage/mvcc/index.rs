//! [`TreeIndex`]: etcd's `treeIndex`, every key's [`KeyIndex`] in key order behind one lock.
//!
//! Ranges take `(key, end)` as etcd's API does:
//! - `end` empty: the single key `key`;
//! - `end == b"\0"`: every key from `key` on (etcd's `range_end` `"\x00"`);
//! - otherwise: the keys in `[key, end)`; nothing when `end <= key`.
//!
//! Measurements: every acquisition of the lock is measured twice, as
//! `mvcc.treeindex_lock_wait` (from asking to getting) and `mvcc.treeindex_lock_hold` (from
//! getting to releasing), each a histogram in [`Metrics`] and a `debug` span with fields `op`
//! (the method: `get`, `range`, `put`, `compact`, …) and `mode` (`read` or `write`).

use std::collections::BTreeMap;
use std::ops::{Bound, Deref, DerefMut};
use std::sync::{Arc, PoisonError, RwLock};

use telemetry::{names, Histogram, Metrics, Timer};
use tracing::field::Empty;
use tracing::span::EnteredSpan;

use super::{Available, KeyIndex, MvccError, Revision};

/// Keys and their key indexes. A `BTreeMap` is the ordered map etcd's `google/btree` is; the
/// key lives here only, not again inside its `KeyIndex`.
type Tree = BTreeMap<Vec<u8>, KeyIndex>;

/// Key indexes compacted per acquisition of the write lock, so that a compaction of millions
/// of keys lets puts and reads in between. etcd takes the lock once per key; a batch still
/// bounds each pause (a thousand small key compactions) with a thousandth of the lock traffic
/// and of the measurements.
const COMPACT_BATCH: usize = 1000;

/// The in-memory index of the MVCC store: for each key, the revisions of its values in the
/// backend. Safe to share between threads.
pub struct TreeIndex {
    /// A std `RwLock`: reads (get, range) run side by side, writes (put, tombstone, compact)
    /// alone. On poisoning see [`TreeIndex::lock_read`].
    tree: RwLock<Tree>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for TreeIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = self
            .tree
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("TreeIndex").field("keys", &keys).finish()
    }
}

/// A range of keys as `BTreeMap::range` takes it.
type KeyBounds<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// The bounds of a `(key, end)` range (see the module documentation); `None` when it selects
/// nothing. `BTreeMap::range` panics on a start above the end: this is where that is ruled out.
fn bounds<'a>(key: &'a [u8], end: &'a [u8]) -> Option<KeyBounds<'a>> {
    match end {
        [] => Some((Bound::Included(key), Bound::Included(key))),
        [0] => Some((Bound::Included(key), Bound::Unbounded)),
        end if end > key => Some((Bound::Included(key), Bound::Excluded(end))),
        _ => None,
    }
}

/// The key indexes of a `(key, end)` range, in key order.
fn scan<'t>(
    tree: &'t Tree,
    key: &'t [u8],
    end: &'t [u8],
) -> impl Iterator<Item = (&'t Vec<u8>, &'t KeyIndex)> {
    bounds(key, end)
        .into_iter()
        .flat_map(move |b| tree.range::<[u8], _>(b))
}

impl TreeIndex {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        TreeIndex {
            tree: RwLock::new(Tree::new()),
            metrics,
        }
    }

    /// Takes the read lock for `op`, measured. A poisoned lock is taken all the same: nothing
    /// that runs under this lock panics between two changes that must go together (each
    /// `KeyIndex` method checks before it changes anything, and the map's own operations are
    /// complete or not done), so the tree is consistent whatever panicked; refusing it would
    /// turn one failed request into a server that can no longer read or write a key.
    fn lock_read(&self, op: &'static str) -> Held<'_, std::sync::RwLockReadGuard<'_, Tree>> {
        self.acquire(op, "read", || {
            self.tree.read().unwrap_or_else(PoisonError::into_inner)
        })
    }

    /// Takes the write lock for `op`, measured; poisoning as in [`TreeIndex::lock_read`].
    fn lock_write(&self, op: &'static str) -> Held<'_, std::sync::RwLockWriteGuard<'_, Tree>> {
        self.acquire(op, "write", || {
            self.tree.write().unwrap_or_else(PoisonError::into_inner)
        })
    }

    fn acquire<G>(
        &self,
        op: &'static str,
        mode: &'static str,
        lock: impl FnOnce() -> G,
    ) -> Held<'_, G> {
        let wait = Timer::start();
        let guard = {
            let span =
                tracing::debug_span!(names::MVCC_TREEINDEX_LOCK_WAIT, op, mode, wait_ns = Empty);
            let _entered = span.enter();
            let guard = lock();
            let ns = wait.elapsed_ns();
            span.record("wait_ns", ns);
            self.metrics.mvcc_treeindex_lock_wait.record(ns);
            telemetry::request::record(names::MVCC_TREEINDEX_LOCK_WAIT, &wait, ns);
            guard
        };
        let span = tracing::debug_span!(names::MVCC_TREEINDEX_LOCK_HOLD, op, mode, hold_ns = Empty)
            .entered();
        Held {
            guard,
            held: Timer::start(),
            span,
            histogram: &self.metrics.mvcc_treeindex_lock_hold,
        }
    }

    /// Number of keys indexed (live or with history not yet compacted).
    pub fn len(&self) -> usize {
        self.lock_read("len").len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock_read("len").is_empty()
    }

    /// `key` at `at_rev`: (modified, created, version) of its last put at or before `at_rev`;
    /// [`MvccError::RevisionNotFound`] when it did not exist then.
    pub fn get(&self, key: &[u8], at_rev: i64) -> Result<(Revision, Revision, i64), MvccError> {
        let tree = self.lock_read("get");
        tree.get(key)
            .ok_or(MvccError::RevisionNotFound)?
            .get(at_rev)
    }

    /// The keys of `(key, end)` that existed at `at_rev`, with the revision of each one's value
    /// then, in key order.
    pub fn range(&self, key: &[u8], end: &[u8], at_rev: i64) -> (Vec<Vec<u8>>, Vec<Revision>) {
        let tree = self.lock_read("range");
        let mut keys = Vec::new();
        let mut revs = Vec::new();
        for (k, ki) in scan(&tree, key, end) {
            if let Ok((rev, _, _)) = ki.get(at_rev) {
                keys.push(k.clone());
                revs.push(rev);
            }
        }
        (keys, revs)
    }

    /// The revisions of the values of `(key, end)` at `at_rev`, in key order, at most `limit`
    /// of them (0: no limit), and how many there are without the limit.
    pub fn revisions(
        &self,
        key: &[u8],
        end: &[u8],
        at_rev: i64,
        limit: usize,
    ) -> (Vec<Revision>, usize) {
        let tree = self.lock_read("revisions");
        let mut revs = Vec::new();
        let mut total = 0;
        for (_, ki) in scan(&tree, key, end) {
            if let Ok((rev, _, _)) = ki.get(at_rev) {
                if limit == 0 || revs.len() < limit {
                    revs.push(rev);
                }
                total += 1;
            }
        }
        (revs, total)
    }

    /// How many keys of `(key, end)` existed at `at_rev`.
    pub fn count_revisions(&self, key: &[u8], end: &[u8], at_rev: i64) -> usize {
        let tree = self.lock_read("count_revisions");
        scan(&tree, key, end)
            .filter(|(_, ki)| ki.get(at_rev).is_ok())
            .count()
    }

    /// Every revision of `(key, end)` at or after `rev` (see [`KeyIndex::since`]), in revision
    /// order: what a watcher catching up from `rev` must replay.
    pub fn range_since(&self, key: &[u8], end: &[u8], rev: i64) -> Vec<Revision> {
        let tree = self.lock_read("range_since");
        let mut revs: Vec<Revision> = scan(&tree, key, end)
            .flat_map(|(_, ki)| ki.since(rev))
            .collect();
        // Revisions are unique across keys: an unstable sort gives the one order.
        revs.sort_unstable();
        revs
    }

    /// Records a put of `key` at `rev`.
    pub fn put(&self, key: &[u8], rev: Revision) -> Result<(), MvccError> {
        let mut tree = self.lock_write("put");
        if let Some(ki) = tree.get_mut(key) {
            return ki.put(rev);
        }
        let mut ki = KeyIndex::new();
        ki.put(rev)?;
        tree.insert(key.to_vec(), ki);
        Ok(())
    }

    /// Records a delete of `key` at `rev`; [`MvccError::RevisionNotFound`] when the key does
    /// not exist.
    pub fn tombstone(&self, key: &[u8], rev: Revision) -> Result<(), MvccError> {
        let mut tree = self.lock_write("tombstone");
        tree.get_mut(key)
            .ok_or(MvccError::RevisionNotFound)?
            .tombstone(rev)
    }

    /// Rebuilds `key` from a value found in the backend at start-up, as etcd's
    /// `restoreIntoIndex` does: the first value seen of a key restores it (created at
    /// `created`, version `ver`), later ones are puts.
    pub fn restore(
        &self,
        key: &[u8],
        created: Revision,
        modified: Revision,
        ver: i64,
    ) -> Result<(), MvccError> {
        let mut tree = self.lock_write("restore");
        if let Some(ki) = tree.get_mut(key) {
            return ki.put(modified);
        }
        let mut ki = KeyIndex::new();
        ki.restore(created, modified, ver)?;
        tree.insert(key.to_vec(), ki);
        Ok(())
    }

    /// Puts a whole key index in place of whatever `key` had.
    pub fn insert(&self, key: Vec<u8>, ki: KeyIndex) {
        self.lock_write("insert").insert(key, ki);
    }

    /// A copy of `key`'s key index.
    pub fn key_index(&self, key: &[u8]) -> Option<KeyIndex> {
        self.lock_read("key_index").get(key).cloned()
    }

    /// Compacts every key index at `rev` (see [`KeyIndex::compact`]), removes the keys left
    /// empty, and returns the revisions the backend must keep. The write lock is taken once
    /// per batch of keys (1000), not for the whole tree.
    pub fn compact(&self, rev: i64) -> Available {
        tracing::info!(revision = rev, "compact tree index");
        let mut available = Available::new();
        // The last key compacted: the next batch starts after it.
        let mut resume: Option<Vec<u8>> = None;
        loop {
            let mut tree = self.lock_write("compact");
            let lower = match &resume {
                Some(k) => Bound::Excluded(k.as_slice()),
                None => Bound::Unbounded,
            };
            let mut emptied = Vec::new();
            let mut last = None;
            let mut done = 0;
            for (k, ki) in tree
                .range_mut::<[u8], _>((lower, Bound::Unbounded))
                .take(COMPACT_BATCH)
            {
                ki.compact(rev, &mut available);
                if ki.is_empty() {
                    emptied.push(k.clone());
                }
                last = Some(k);
                done += 1;
            }
            resume = last.cloned();
            for k in &emptied {
                tree.remove(k);
            }
            if done < COMPACT_BATCH {
                return available;
            }
        }
    }

    /// The revisions [`compact`](Self::compact) at `rev` would keep, changing nothing.
    pub fn keep(&self, rev: i64) -> Available {
        let tree = self.lock_read("keep");
        let mut available = Available::new();
        for ki in tree.values() {
            ki.keep(rev, &mut available);
        }
        available
    }

    /// etcd's `treeIndex.Equal`: the same keys, each with an equivalent key index
    /// ([`KeyIndex::equivalent`]).
    pub fn equal(&self, other: &TreeIndex) -> bool {
        if std::ptr::eq(self, other) {
            return true;
        }
        // A copy of one side, so that the two locks are never held together (two threads
        // comparing a with b and b with a would otherwise be able to deadlock behind writers).
        let mine = self.lock_read("equal").clone();
        let theirs = other.lock_read("equal");
        mine.len() == theirs.len()
            && mine
                .iter()
                .zip(theirs.iter())
                .all(|((ka, a), (kb, b))| ka == kb && a.equivalent(b))
    }
}

/// A lock guard that, on release, records how long it was held (histogram and span field).
struct Held<'a, G> {
    /// Declared first: released first, before the span closes.
    guard: G,
    held: Timer,
    span: EnteredSpan,
    histogram: &'a Histogram,
}

impl<G: Deref> Deref for Held<'_, G> {
    type Target = G::Target;
    fn deref(&self) -> &G::Target {
        &self.guard
    }
}

impl<G: DerefMut> DerefMut for Held<'_, G> {
    fn deref_mut(&mut self) -> &mut G::Target {
        &mut self.guard
    }
}

impl<G> Drop for Held<'_, G> {
    fn drop(&mut self) {
        let ns = self.held.elapsed_ns();
        self.span.record("hold_ns", ns);
        self.histogram.record(ns);
        telemetry::request::record(names::MVCC_TREEINDEX_LOCK_HOLD, &self.held, ns);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::mpsc;
    use std::time::Duration;

    use telemetry::capture::{Capture, CapturedSpan};

    use super::*;

    fn r(main: i64, sub: i64) -> Revision {
        Revision::new(main, sub)
    }

    fn new_index() -> TreeIndex {
        TreeIndex::new(Arc::new(Metrics::new()))
    }

    fn keys(ks: &[&str]) -> Vec<Vec<u8>> {
        ks.iter().map(|k| k.as_bytes().to_vec()).collect()
    }

    fn revs(mains: &[i64]) -> Vec<Revision> {
        mains.iter().map(|&m| r(m, 0)).collect()
    }

    /// TestIndexGet.
    #[test]
    fn index_get() {
        let ti = new_index();
        ti.put(b"foo", r(2, 0)).unwrap();
        ti.put(b"foo", r(4, 0)).unwrap();
        ti.tombstone(b"foo", r(6, 0)).unwrap();
        /// (at_rev, Some((modified, created, version)) or None for RevisionNotFound)
        type Row = (i64, Option<(i64, i64, i64)>);
        let table: &[Row] = &[
            (0, None),
            (1, None),
            (2, Some((2, 2, 1))),
            (3, Some((2, 2, 1))),
            (4, Some((4, 2, 2))),
            (5, Some((4, 2, 2))),
            (6, None),
        ];
        for &(at, want) in table {
            let want = want
                .map(|(m, c, v)| (r(m, 0), r(c, 0), v))
                .ok_or(MvccError::RevisionNotFound);
            assert_eq!(ti.get(b"foo", at), want, "get(foo, {at})");
        }
        assert_eq!(ti.get(b"bar", 5), Err(MvccError::RevisionNotFound));
    }

    /// TestIndexRange, plus the `"\0"` end and ends at or before the key.
    #[test]
    fn index_range() {
        let ti = new_index();
        for (k, main) in [("foo", 1), ("foo1", 2), ("foo2", 3)] {
            ti.put(k.as_bytes(), r(main, 0)).unwrap();
        }
        let at_rev = 3;
        let table: &[(&str, &str, &[&str], &[i64])] = &[
            // single key that is not found
            ("bar", "", &[], &[]),
            // single key that is found
            ("foo", "", &["foo"], &[1]),
            // range keys, return first member
            ("foo", "foo1", &["foo"], &[1]),
            // range keys, return first two members
            ("foo", "foo2", &["foo", "foo1"], &[1, 2]),
            // range keys, return all members
            ("foo", "fop", &["foo", "foo1", "foo2"], &[1, 2, 3]),
            // range keys, return last two members
            ("foo1", "fop", &["foo1", "foo2"], &[2, 3]),
            // range keys, return last member
            ("foo2", "fop", &["foo2"], &[3]),
            // range keys, return nothing
            ("foo3", "fop", &[], &[]),
            // Glass: "\0" is every key from `key` on
            ("foo1", "\0", &["foo1", "foo2"], &[2, 3]),
            ("", "\0", &["foo", "foo1", "foo2"], &[1, 2, 3]),
            ("fop", "\0", &[], &[]),
            // Glass: an end at or before the key selects nothing
            ("foo1", "foo1", &[], &[]),
            ("foo2", "foo1", &[], &[]),
        ];
        for &(key, end, want_keys, want_revs) in table {
            let got = ti.range(key.as_bytes(), end.as_bytes(), at_rev);
            assert_eq!(
                got,
                (keys(want_keys), revs(want_revs)),
                "range({key:?}, {end:?})"
            );
        }
    }

    /// TestIndexTombstone.
    #[test]
    fn index_tombstone() {
        let ti = new_index();
        ti.put(b"foo", r(1, 0)).unwrap();
        assert_eq!(ti.tombstone(b"foo", r(2, 0)), Ok(()));
        assert_eq!(ti.get(b"foo", 2), Err(MvccError::RevisionNotFound));
        assert_eq!(
            ti.tombstone(b"foo", r(3, 0)),
            Err(MvccError::RevisionNotFound)
        );
        assert_eq!(
            ti.tombstone(b"bar", r(3, 0)),
            Err(MvccError::RevisionNotFound)
        );
    }

    /// Puts of TestIndexRangeSince and TestIndexRevision.
    fn six_puts() -> TreeIndex {
        let ti = new_index();
        for (i, k) in ["foo", "foo1", "foo2", "foo2", "foo1", "foo"]
            .iter()
            .enumerate()
        {
            ti.put(k.as_bytes(), r(i as i64 + 1, 0)).unwrap();
        }
        ti
    }

    /// TestIndexRangeSince.
    #[test]
    fn index_range_since() {
        let ti = six_puts();
        let table: &[(&str, &str, &[i64])] = &[
            // single key that is not found
            ("bar", "", &[]),
            // single key that is found
            ("foo", "", &[1, 6]),
            // range keys, return first member
            ("foo", "foo1", &[1, 6]),
            // range keys, return first two members
            ("foo", "foo2", &[1, 2, 5, 6]),
            // range keys, return all members
            ("foo", "fop", &[1, 2, 3, 4, 5, 6]),
            // range keys, return last two members
            ("foo1", "fop", &[2, 3, 4, 5]),
            // range keys, return last member
            ("foo2", "fop", &[3, 4]),
            // range keys, return nothing
            ("foo3", "fop", &[]),
        ];
        for &(key, end, want) in table {
            assert_eq!(
                ti.range_since(key.as_bytes(), end.as_bytes(), 1),
                revs(want),
                "range_since({key:?}, {end:?}, 1)"
            );
        }
    }

    /// TestIndexRevision (etcd 3.5+, where `Revisions` takes a limit and returns the total,
    /// and `CountRevisions` exists).
    #[test]
    fn index_revisions() {
        let ti = six_puts();
        /// (key, end, at_rev, limit, revisions, count)
        type Row<'a> = (&'a str, &'a str, i64, usize, &'a [i64], usize);
        let table: &[Row] = &[
            // single key that is not found
            ("bar", "", 6, 0, &[], 0),
            // single key that is found
            ("foo", "", 6, 0, &[6], 1),
            // various range keys, fixed at_rev, unlimited
            ("foo", "foo1", 6, 0, &[6], 1),
            ("foo", "foo2", 6, 0, &[6, 5], 2),
            ("foo", "fop", 6, 0, &[6, 5, 4], 3),
            ("foo1", "fop", 6, 0, &[5, 4], 2),
            ("foo2", "fop", 6, 0, &[4], 1),
            ("foo3", "fop", 6, 0, &[], 0),
            // fixed range keys, various at_rev, unlimited
            ("foo1", "fop", 1, 0, &[], 0),
            ("foo1", "fop", 2, 0, &[2], 1),
            ("foo1", "fop", 3, 0, &[2, 3], 2),
            ("foo1", "fop", 4, 0, &[2, 4], 2),
            ("foo1", "fop", 5, 0, &[5, 4], 2),
            ("foo1", "fop", 6, 0, &[5, 4], 2),
            // fixed range keys, fixed at_rev, various limit
            ("foo", "fop", 6, 1, &[6], 3),
            ("foo", "fop", 6, 2, &[6, 5], 3),
            ("foo", "fop", 6, 3, &[6, 5, 4], 3),
            ("foo", "fop", 3, 1, &[1], 3),
            ("foo", "fop", 3, 2, &[1, 2], 3),
            ("foo", "fop", 3, 3, &[1, 2, 3], 3),
        ];
        for &(key, end, at, limit, want, count) in table {
            let what = format!("({key:?}, {end:?}, at {at}, limit {limit})");
            let (got, total) = ti.revisions(key.as_bytes(), end.as_bytes(), at, limit);
            assert_eq!(got, revs(want), "revisions{what}");
            assert_eq!(total, count, "revisions{what} total");
            assert_eq!(
                ti.count_revisions(key.as_bytes(), end.as_bytes(), at),
                count,
                "count_revisions{what}"
            );
        }
    }

    /// TestIndexCompactAndKeep (etcd 3.4): after compact(i), the index equals one rebuilt from
    /// only the revisions compact kept plus everything after i; keep(i) finds the same set.
    #[test]
    fn index_compact_and_keep() {
        struct Step {
            key: &'static str,
            remove: bool,
            rev: Revision,
            created: Revision,
            ver: i64,
        }
        let step = |key, remove, rev: (i64, i64), created: (i64, i64), ver| Step {
            key,
            remove,
            rev: r(rev.0, rev.1),
            created: r(created.0, created.1),
            ver,
        };
        let table = [
            step("foo", false, (1, 0), (1, 0), 1),
            step("foo1", false, (2, 0), (2, 0), 1),
            step("foo2", false, (3, 0), (3, 0), 1),
            step("foo2", false, (4, 0), (3, 0), 2),
            step("foo", false, (5, 0), (1, 0), 2),
            step("foo1", false, (6, 0), (2, 0), 2),
            step("foo1", true, (7, 0), (0, 0), 0),
            step("foo2", true, (8, 0), (0, 0), 0),
            step("foo", true, (9, 0), (0, 0), 0),
            step("foo", false, (10, 0), (10, 0), 1),
            step("foo1", false, (10, 1), (10, 1), 1),
        ];
        let build = || {
            let ti = new_index();
            for s in &table {
                if s.remove {
                    ti.tombstone(s.key.as_bytes(), s.rev).unwrap();
                } else {
                    ti.put(s.key.as_bytes(), s.rev).unwrap();
                }
            }
            ti
        };
        let check = |ti: &TreeIndex, i: i64, drive: &str| {
            let am = ti.compact(i);
            assert_eq!(am, ti.keep(i), "{drive} #{i}: compact and keep disagree");
            let want = new_index();
            for s in &table {
                if am.contains(&s.rev) || s.rev > r(i, 0) {
                    if s.remove {
                        // A tombstone of a key that was compacted away: etcd ignores the error.
                        let _ = want.tombstone(s.key.as_bytes(), s.rev);
                    } else {
                        want.restore(s.key.as_bytes(), s.created, s.rev, s.ver)
                            .unwrap();
                    }
                }
            }
            assert!(ti.equal(&want), "{drive} #{i}: {ti:?} vs {want:?}");
        };

        let ti = build();
        for i in 1..20 {
            check(&ti, i, "continuous");
        }
        for i in 1..20 {
            check(&build(), i, "once");
        }
    }

    /// TestKeyIndexLess: the tree orders key indexes by the bytes of their keys.
    #[test]
    fn key_index_less() {
        // (other key, whether "foo" sorts before it)
        let table = [("doo", false), ("foo", false), ("goo", true)];
        for (other, want) in table {
            let ti = new_index();
            ti.put(b"foo", r(1, 0)).unwrap();
            ti.put(other.as_bytes(), r(2, 0)).unwrap();
            let (got, _) = ti.range(b"", b"\0", 2);
            let foo_first = got.first().map(Vec::as_slice) == Some(b"foo".as_slice());
            let less = foo_first && got.len() == 2;
            assert_eq!(less, want, "foo < {other}");
        }
    }

    #[test]
    fn restore_then_puts_and_insert() {
        let ti = new_index();
        ti.restore(b"k", r(5, 0), r(7, 0), 2).unwrap();
        ti.restore(b"k", r(5, 0), r(9, 0), 3).unwrap();
        assert_eq!(ti.get(b"k", 9), Ok((r(9, 0), r(5, 0), 3)));
        assert_eq!(ti.get(b"k", 8), Ok((r(7, 0), r(5, 0), 2)));
        // A restore behind the key's last revision is refused like a put.
        assert!(matches!(
            ti.restore(b"k", r(5, 0), r(8, 0), 3),
            Err(MvccError::RevisionNotIncreasing { .. })
        ));

        let ki = ti.key_index(b"k").unwrap();
        let other = new_index();
        assert!(!other.equal(&ti));
        other.insert(b"k".to_vec(), ki);
        assert!(other.equal(&ti));
        assert!(ti.equal(&ti));
        assert_eq!(other.key_index(b"nope"), None);
        assert_eq!((other.len(), other.is_empty()), (1, false));
    }

    #[test]
    fn compact_goes_through_many_batches_and_removes_deleted_keys() {
        let ti = new_index();
        let n = 2 * COMPACT_BATCH as i64 + 7;
        for i in 0..n {
            let key = format!("k{i:06}");
            ti.put(key.as_bytes(), r(2 * i + 1, 0)).unwrap();
            if i % 2 == 0 {
                ti.tombstone(key.as_bytes(), r(2 * i + 2, 0)).unwrap();
            }
        }
        let available = ti.compact(2 * n);
        // Deleted keys are gone; each live key keeps its one put.
        assert_eq!(ti.len() as i64, n / 2);
        assert_eq!(available.len() as i64, n / 2);
        assert_eq!(ti.count_revisions(b"", b"\0", 2 * n), (n / 2) as usize);
    }

    #[test]
    fn a_poisoned_lock_is_recovered() {
        let ti = Arc::new(new_index());
        ti.put(b"a", r(1, 0)).unwrap();
        let t = Arc::clone(&ti);
        let panicked = std::thread::spawn(move || {
            let _guard = t.tree.write().unwrap();
            panic!("poison the lock");
        })
        .join();
        assert!(panicked.is_err());
        assert!(ti.tree.is_poisoned());
        assert_eq!(ti.get(b"a", 1), Ok((r(1, 0), r(1, 0), 1)));
        ti.put(b"a", r(2, 0)).unwrap();
        assert_eq!(ti.count_revisions(b"a", b"", 2), 1);
    }

    /// Installs the capture layer as this thread's subscriber. `tracing` caches each callsite's
    /// interest for the whole process and, while a single dispatcher exists, asks only the
    /// default of the thread that reaches the callsite first: a sibling test thread without a
    /// subscriber would cache "never" and the spans taken here would be lost. A second
    /// dispatcher kept alive alongside makes the interest the union over all of them; the
    /// rebuild corrects what was cached before.
    fn install_capture() -> (Capture, impl Sized) {
        let anchor = tracing::Dispatch::new(tracing_subscriber::registry());
        let (capture, guard) = Capture::install();
        tracing::callsite::rebuild_interest_cache();
        (capture, (guard, anchor))
    }

    fn op_mode(s: &CapturedSpan) -> (String, String) {
        (
            s.field("op").unwrap_or("?").to_string(),
            s.field("mode").unwrap_or("?").to_string(),
        )
    }

    /// Every operation takes the lock once (compact: once per batch), and each acquisition is
    /// one wait span, one hold span, and one value in each histogram.
    #[test]
    fn every_lock_acquisition_is_measured() {
        let metrics = Arc::new(Metrics::new());
        let ti = TreeIndex::new(Arc::clone(&metrics));
        let (capture, _guard) = install_capture();

        ti.put(b"a", r(1, 0)).unwrap();
        ti.put(b"b", r(2, 0)).unwrap();
        ti.tombstone(b"a", r(3, 0)).unwrap();
        ti.restore(b"c", r(4, 0), r(4, 0), 1).unwrap();
        ti.get(b"b", 3).unwrap();
        ti.range(b"a", b"\0", 3);
        ti.range_since(b"a", b"\0", 1);
        ti.revisions(b"a", b"\0", 3, 1);
        ti.count_revisions(b"a", b"\0", 3);
        ti.keep(3);
        ti.compact(3);
        ti.key_index(b"b");
        ti.insert(b"d".to_vec(), KeyIndex::new());
        ti.equal(&TreeIndex::new(Arc::clone(&metrics)));

        let want: Vec<(String, String)> = [
            ("put", "write"),
            ("put", "write"),
            ("tombstone", "write"),
            ("restore", "write"),
            ("get", "read"),
            ("range", "read"),
            ("range_since", "read"),
            ("revisions", "read"),
            ("count_revisions", "read"),
            ("keep", "read"),
            ("compact", "write"),
            ("key_index", "read"),
            ("insert", "write"),
            ("equal", "read"),
            ("equal", "read"),
        ]
        .iter()
        .map(|(o, m)| (o.to_string(), m.to_string()))
        .collect();
        let waits = capture.spans_named(names::MVCC_TREEINDEX_LOCK_WAIT);
        let holds = capture.spans_named(names::MVCC_TREEINDEX_LOCK_HOLD);
        assert_eq!(waits.iter().map(op_mode).collect::<Vec<_>>(), want);
        assert_eq!(holds.iter().map(op_mode).collect::<Vec<_>>(), want);
        for s in &waits {
            assert!(
                s.field("wait_ns").is_some_and(|v| v.parse::<u64>().is_ok()),
                "{s:?}"
            );
        }
        for s in &holds {
            assert!(
                s.field("hold_ns").is_some_and(|v| v.parse::<u64>().is_ok()),
                "{s:?}"
            );
        }
        let n = want.len() as u64;
        assert_eq!(metrics.mvcc_treeindex_lock_wait.count(), n);
        assert_eq!(metrics.mvcc_treeindex_lock_hold.count(), n);
        // The histograms are the ones the names resolve to (what exporters read).
        assert_eq!(
            metrics
                .histogram(names::MVCC_TREEINDEX_LOCK_WAIT)
                .map(Histogram::count),
            Some(n)
        );
        assert_eq!(
            metrics
                .histogram(names::MVCC_TREEINDEX_LOCK_HOLD)
                .map(Histogram::count),
            Some(n)
        );
    }

    /// A reader blocked behind a writer has the blocked time measured as its wait; the
    /// writer's time is measured as its hold.
    #[test]
    fn contention_shows_as_wait_and_hold() {
        const HOLD: Duration = Duration::from_millis(60);
        let metrics = Arc::new(Metrics::new());
        let ti = Arc::new(TreeIndex::new(Arc::clone(&metrics)));
        ti.put(b"a", r(1, 0)).unwrap();
        let (capture, _guard) = install_capture();

        let (locked_tx, locked_rx) = mpsc::channel();
        let writer = {
            let ti = Arc::clone(&ti);
            std::thread::spawn(move || {
                let guard = ti.lock_write("put");
                locked_tx.send(()).unwrap();
                std::thread::sleep(HOLD);
                drop(guard);
            })
        };
        locked_rx.recv().unwrap();
        assert_eq!(ti.get(b"a", 1), Ok((r(1, 0), r(1, 0), 1)));
        writer.join().unwrap();

        let at_least = HOLD.as_nanos() as u64 / 2;
        // Spans are per thread: this thread's wait span is the blocked get.
        let gets: Vec<CapturedSpan> = capture
            .spans_named(names::MVCC_TREEINDEX_LOCK_WAIT)
            .into_iter()
            .filter(|s| s.field("op") == Some("get"))
            .collect();
        assert_eq!(gets.len(), 1);
        let waited: u64 = gets[0].field("wait_ns").unwrap().parse().unwrap();
        assert!(waited >= at_least, "waited {waited} ns");
        assert!(metrics.mvcc_treeindex_lock_wait.snapshot().max >= at_least);
        assert!(metrics.mvcc_treeindex_lock_hold.snapshot().max >= HOLD.as_nanos() as u64);
        let by_op: HashMap<_, _> = capture
            .spans_named(names::MVCC_TREEINDEX_LOCK_HOLD)
            .iter()
            .map(op_mode)
            .collect();
        assert_eq!(by_op.get("get").map(String::as_str), Some("read"));
    }
}
