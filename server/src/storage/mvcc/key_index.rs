//! [`KeyIndex`]: every revision of one key that the backend still holds, in generations.
//!
//! A key's life is a series of *generations*: a generation starts with the put that creates the
//! key and ends with the tombstone that deletes it; the last generation is the current one and
//! is empty while the key does not exist. Every revision points at a value in the backend's
//! `key` bucket (see `revision`).
//!
//! etcd's worked example (`server/storage/mvcc/key_index.go`), the fixture of the tests below:
//! `put(1.0); put(2.0); tombstone(3.0); put(4.0); tombstone(5.0)` on key "foo" gives
//!
//! ```text
//! modified: 5.0
//! generations:
//!     {empty}                   <- current: "foo" does not exist now
//!     {4.0, 5.0(t)}
//!     {1.0, 2.0, 3.0(t)}        <- oldest
//! ```
//!
//! Compacting at a revision drops every revision at or below it except the largest one (the
//! value a read at that revision still needs), drops that one too when it is a tombstone, and
//! drops generations left empty. When only the empty current generation is left, the key index
//! is empty and the tree removes it:
//!
//! ```text
//! compact(2):  {empty} {4.0, 5.0(t)} {2.0, 3.0(t)}
//! compact(4):  {empty} {4.0, 5.0(t)}
//! compact(5):  {empty}                               -> the key is removed
//! compact(6):  {empty}                               -> the key is removed
//! ```
//!
//! The key itself is not stored here: it is the tree's map key (see `index`), kept once.

use std::collections::HashSet;

use super::{MvccError, Revision};

/// The revisions a compaction keeps: for each key, the largest revision at or below the
/// compaction revision, unless that is a tombstone. The backend deletes every other revision at
/// or below it. (etcd's `available` / `keep` map.)
pub type Available = HashSet<Revision>;

/// The generations of one key; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyIndex {
    /// The last put or tombstone of the key.
    modified: Revision,
    /// Oldest first. Never empty: the last one is the current generation, empty while the key
    /// is deleted (or not yet created). Every other one ends with its tombstone.
    generations: Vec<Generation>,
}

/// One life of a key, from the put that created it to the tombstone that deleted it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Generation {
    /// The key's version at the last revision of this generation: the number of puts (and the
    /// tombstone) since creation — compaction drops revisions but never changes this.
    ver: i64,
    /// The put that started this generation (kept when compaction drops it from `revs`).
    created: Revision,
    /// Ascending; the last one is the tombstone in all but the current generation.
    revs: Vec<Revision>,
}

impl Generation {
    /// A generation as it is after `revs` (for tests and snapshots of the index).
    pub fn new(created: Revision, ver: i64, revs: Vec<Revision>) -> Self {
        Generation { ver, created, revs }
    }

    pub fn is_empty(&self) -> bool {
        self.revs.is_empty()
    }

    pub fn created(&self) -> Revision {
        self.created
    }

    pub fn version(&self) -> i64 {
        self.ver
    }

    pub fn revs(&self) -> &[Revision] {
        &self.revs
    }

    /// Walks the revisions newest first while `f` says go on; returns the index of the first
    /// revision `f` stopped at, or `None` when it walked them all.
    fn walk(&self, mut f: impl FnMut(&Revision) -> bool) -> Option<usize> {
        self.revs.iter().rposition(|rev| !f(rev))
    }
}

impl Default for KeyIndex {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyIndex {
    /// An empty key index: one empty (current) generation.
    pub fn new() -> Self {
        KeyIndex {
            modified: Revision::default(),
            generations: vec![Generation::default()],
        }
    }

    /// A key index as it is after `generations` (for tests and snapshots of the index).
    /// An empty `generations` is taken as one empty generation.
    pub fn from_parts(modified: Revision, mut generations: Vec<Generation>) -> Self {
        if generations.is_empty() {
            generations.push(Generation::default());
        }
        KeyIndex {
            modified,
            generations,
        }
    }

    /// The last put or tombstone of the key.
    pub fn modified(&self) -> Revision {
        self.modified
    }

    /// Oldest first; the last is the current generation.
    pub fn generations(&self) -> &[Generation] {
        &self.generations
    }

    /// True when the key index holds no revision at all (only the empty current generation):
    /// the tree removes such a key.
    pub fn is_empty(&self) -> bool {
        self.generations.len() == 1 && self.generations[0].is_empty()
    }

    fn current_mut(&mut self) -> &mut Generation {
        if self.generations.is_empty() {
            self.generations.push(Generation::default());
        }
        let last = self.generations.len() - 1;
        &mut self.generations[last]
    }

    /// Records a put at `rev`, creating the key (a new generation's first revision) when it
    /// does not exist. `rev` must be after the last modification.
    pub fn put(&mut self, rev: Revision) -> Result<(), MvccError> {
        if rev <= self.modified {
            return Err(MvccError::RevisionNotIncreasing {
                given: rev,
                modified: self.modified,
            });
        }
        let g = self.current_mut();
        if g.revs.is_empty() {
            g.created = rev;
        }
        g.revs.push(rev);
        g.ver += 1;
        self.modified = rev;
        Ok(())
    }

    /// Rebuilds the key index of a live key from the backend: one generation created at
    /// `created`, last modified at `modified`, at version `ver` (older revisions are not
    /// needed: the backend restores after a compaction left only these).
    pub fn restore(
        &mut self,
        created: Revision,
        modified: Revision,
        ver: i64,
    ) -> Result<(), MvccError> {
        if !self.is_empty() {
            return Err(MvccError::RestoreNonEmpty);
        }
        self.modified = modified;
        self.generations = vec![Generation::new(created, ver, vec![modified])];
        Ok(())
    }

    /// Records a tombstone (a delete) at `rev`: it ends the current generation and starts a
    /// new, empty one. [`MvccError::RevisionNotFound`] when the key does not exist (etcd
    /// panics instead when the whole key index is empty; it can only be a caller's bug).
    pub fn tombstone(&mut self, rev: Revision) -> Result<(), MvccError> {
        if self.current_mut().is_empty() {
            return Err(MvccError::RevisionNotFound);
        }
        self.put(rev)?;
        self.generations.push(Generation::default());
        Ok(())
    }

    /// The key as it was at `at_rev`: (modified, created, version) of the last put at or
    /// before `at_rev`; [`MvccError::RevisionNotFound`] when the key did not exist then.
    pub fn get(&self, at_rev: i64) -> Result<(Revision, Revision, i64), MvccError> {
        let g = self
            .find_generation(at_rev)
            .map(|i| &self.generations[i])
            .ok_or(MvccError::RevisionNotFound)?;
        let n = g
            .walk(|rev| rev.main > at_rev)
            .ok_or(MvccError::RevisionNotFound)?;
        // Each revision after n is one more version.
        let newer = (g.revs.len() - n - 1) as i64;
        Ok((g.revs[n], g.created, g.ver - newer))
    }

    /// The revisions at or after `rev` (main), oldest first. Of several revisions with the same
    /// main revision only the one with the largest sub is returned: the others were overwritten
    /// inside their txn and never seen from outside.
    pub fn since(&self, rev: i64) -> Vec<Revision> {
        let since = Revision::new(rev, 0);
        // The last generation created before `since`: nothing older can hold a revision after it.
        let mut start = self.generations.len().saturating_sub(1);
        while start > 0 {
            let g = &self.generations[start];
            if !g.is_empty() && since > g.created {
                break;
            }
            start -= 1;
        }
        let mut revs: Vec<Revision> = Vec::new();
        for r in self.generations[start..].iter().flat_map(|g| &g.revs) {
            if since > *r {
                continue;
            }
            match revs.last_mut() {
                Some(last) if last.main == r.main => *last = *r,
                _ => revs.push(*r),
            }
        }
        revs
    }

    /// Drops every revision at or below `at_rev` except the largest one, which is added to
    /// `available` — unless it is a tombstone, which is dropped with its generation. Drops
    /// generations left empty; the key index [`is_empty`](Self::is_empty) once nothing is left.
    pub fn compact(&mut self, at_rev: i64, available: &mut Available) {
        if self.is_empty() {
            // etcd panics here; there is nothing to compact.
            return;
        }
        let (gen_idx, rev_idx) = self.do_compact(at_rev, available);
        // `generations` is never empty (every constructor and change keeps one).
        let last = self.generations.len() - 1;
        let mut first_kept = gen_idx;
        let g = &mut self.generations[gen_idx];
        if !g.is_empty() {
            if let Some(i) = rev_idx {
                g.revs.drain(..i);
            }
            // Only the tombstone is left of a finished generation: it goes too.
            if g.revs.len() == 1 && gen_idx != last {
                available.remove(&g.revs[0]);
                first_kept += 1;
            }
        }
        self.generations.drain(..first_kept);
    }

    /// Adds to `available` what [`compact`](Self::compact) at `at_rev` would keep, changing
    /// nothing.
    pub fn keep(&self, at_rev: i64, available: &mut Available) {
        if self.is_empty() {
            return;
        }
        let (gen_idx, rev_idx) = self.do_compact(at_rev, available);
        let g = &self.generations[gen_idx];
        let last = self.generations.len() - 1;
        if let Some(i) = rev_idx {
            // The largest revision at or below at_rev is its generation's tombstone.
            if i + 1 == g.revs.len() && gen_idx != last {
                available.remove(&g.revs[i]);
            }
        }
    }

    /// Finds the first generation still alive after `at_rev` (its tombstone above `at_rev`, or
    /// the current one) and, in it, the largest revision at or below `at_rev`, which is added to
    /// `available`.
    fn do_compact(&self, at_rev: i64, available: &mut Available) -> (usize, Option<usize>) {
        let last = self.generations.len().saturating_sub(1);
        let mut gen_idx = 0;
        while gen_idx < last {
            match self.generations[gen_idx].revs.last() {
                Some(tomb) if tomb.main > at_rev => break,
                _ => gen_idx += 1,
            }
        }
        let rev_idx = self.generations[gen_idx].walk(|rev| {
            if rev.main <= at_rev {
                available.insert(*rev);
                false
            } else {
                true
            }
        });
        (gen_idx, rev_idx)
    }

    /// The generation the key was in at `rev`, or `None` when it did not exist then (before its
    /// creation, or in the gap between a tombstone and the next put).
    fn find_generation(&self, rev: i64) -> Option<usize> {
        let last = self.generations.len().saturating_sub(1);
        for (i, g) in self.generations.iter().enumerate().rev() {
            let (Some(first), Some(tomb)) = (g.revs.first(), g.revs.last()) else {
                continue;
            };
            if i != last && tomb.main <= rev {
                return None;
            }
            if first.main <= rev {
                return Some(i);
            }
        }
        None
    }

    /// etcd's `keyIndex.equal`: same last modification and generations with the same versions
    /// and revisions. `created` is not compared: a key index restored from the backend has a
    /// `created` with sub 0 where the live one may have another sub.
    pub fn equivalent(&self, other: &KeyIndex) -> bool {
        self.modified == other.modified
            && self.generations.len() == other.generations.len()
            && self
                .generations
                .iter()
                .zip(&other.generations)
                .all(|(a, b)| a.ver == b.ver && a.revs == b.revs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(main: i64, sub: i64) -> Revision {
        Revision::new(main, sub)
    }

    fn g(created: (i64, i64), ver: i64, revs: &[(i64, i64)]) -> Generation {
        Generation::new(
            r(created.0, created.1),
            ver,
            revs.iter().map(|&(m, s)| r(m, s)).collect(),
        )
    }

    fn empty() -> Generation {
        Generation::default()
    }

    fn ki(modified: (i64, i64), generations: Vec<Generation>) -> KeyIndex {
        KeyIndex::from_parts(r(modified.0, modified.1), generations)
    }

    fn set(revs: &[(i64, i64)]) -> Available {
        revs.iter().map(|&(m, s)| r(m, s)).collect()
    }

    /// etcd's `newTestKeyIndex`:
    ///
    /// ```text
    /// key: "foo"   modified: 16
    /// generations:
    ///    {empty}
    ///    {14.0[1], 14.1[2], 16.0(t)[3]}
    ///    {8.0[1], 10.0[2], 12.0(t)[3]}
    ///    {2.0[1], 4.0[2], 6.0(t)[3]}
    /// ```
    fn new_test_key_index() -> KeyIndex {
        let mut k = KeyIndex::new();
        k.put(r(2, 0)).unwrap();
        k.put(r(4, 0)).unwrap();
        k.tombstone(r(6, 0)).unwrap();
        k.put(r(8, 0)).unwrap();
        k.put(r(10, 0)).unwrap();
        k.tombstone(r(12, 0)).unwrap();
        k.put(r(14, 0)).unwrap();
        k.put(r(14, 1)).unwrap();
        k.tombstone(r(16, 0)).unwrap();
        k
    }

    #[test]
    fn worked_example_of_the_module_doc() {
        let mut k = KeyIndex::new();
        k.put(r(1, 0)).unwrap();
        k.put(r(2, 0)).unwrap();
        k.tombstone(r(3, 0)).unwrap();
        k.put(r(4, 0)).unwrap();
        k.tombstone(r(5, 0)).unwrap();
        assert_eq!(
            k,
            ki(
                (5, 0),
                vec![
                    g((1, 0), 3, &[(1, 0), (2, 0), (3, 0)]),
                    g((4, 0), 2, &[(4, 0), (5, 0)]),
                    empty(),
                ]
            )
        );
        let table: &[(i64, KeyIndex, bool)] = &[
            (
                2,
                ki(
                    (5, 0),
                    vec![
                        g((1, 0), 3, &[(2, 0), (3, 0)]),
                        g((4, 0), 2, &[(4, 0), (5, 0)]),
                        empty(),
                    ],
                ),
                false,
            ),
            (
                4,
                ki((5, 0), vec![g((4, 0), 2, &[(4, 0), (5, 0)]), empty()]),
                false,
            ),
            (5, ki((5, 0), vec![empty()]), true),
            (6, ki((5, 0), vec![empty()]), true),
        ];
        for (at, want, removed) in table {
            k.compact(*at, &mut Available::new());
            assert_eq!(&k, want, "compact({at})");
            assert_eq!(k.is_empty(), *removed, "compact({at})");
        }
    }

    /// TestKeyIndexGet: reads on the fixture compacted at 4.
    #[test]
    fn key_index_get() {
        let mut k = new_test_key_index();
        k.compact(4, &mut Available::new());
        /// (at_rev, Some((modified, created, version)) or None for RevisionNotFound)
        type Row = (i64, Option<((i64, i64), (i64, i64), i64)>);
        let table: &[Row] = &[
            (17, None),
            (16, None),
            // generation 3
            (15, Some(((14, 1), (14, 0), 2))),
            (14, Some(((14, 1), (14, 0), 2))),
            (13, None),
            (12, None),
            // generation 2
            (11, Some(((10, 0), (8, 0), 2))),
            (10, Some(((10, 0), (8, 0), 2))),
            (9, Some(((8, 0), (8, 0), 1))),
            (8, Some(((8, 0), (8, 0), 1))),
            (7, None),
            (6, None),
            // generation 1 (compacted at 4: 2.0 is gone)
            (5, Some(((4, 0), (2, 0), 2))),
            (4, Some(((4, 0), (2, 0), 2))),
            (3, None),
            (2, None),
            (1, None),
            (0, None),
        ];
        for &(at, want) in table {
            let want = want
                .map(|(m, c, v)| (r(m.0, m.1), r(c.0, c.1), v))
                .ok_or(MvccError::RevisionNotFound);
            assert_eq!(k.get(at), want, "get({at})");
        }
    }

    /// TestKeyIndexSince: revisions since `rev` on the fixture compacted at 4.
    #[test]
    fn key_index_since() {
        let mut k = new_test_key_index();
        k.compact(4, &mut Available::new());
        let all = [
            r(4, 0),
            r(6, 0),
            r(8, 0),
            r(10, 0),
            r(12, 0),
            r(14, 1),
            r(16, 0),
        ];
        // (rev, index into `all` the answer starts at; 7 = nothing)
        let table: &[(i64, usize)] = &[
            (17, 7),
            (16, 6),
            (15, 6),
            (14, 5),
            (13, 5),
            (12, 4),
            (11, 4),
            (10, 3),
            (9, 3),
            (8, 2),
            (7, 2),
            (6, 1),
            (5, 1),
            (4, 0),
            (3, 0),
            (2, 0),
            (1, 0),
            (0, 0),
        ];
        for &(rev, from) in table {
            assert_eq!(k.since(rev), all[from..].to_vec(), "since({rev})");
        }
    }

    /// TestKeyIndexPut.
    #[test]
    fn key_index_put() {
        let table: &[((i64, i64), KeyIndex)] = &[
            ((5, 0), ki((5, 0), vec![g((5, 0), 1, &[(5, 0)])])),
            ((7, 0), ki((7, 0), vec![g((5, 0), 2, &[(5, 0), (7, 0)])])),
        ];
        let mut k = KeyIndex::new();
        for (rev, want) in table {
            k.put(r(rev.0, rev.1)).unwrap();
            assert_eq!(&k, want, "put({rev:?})");
        }
        // Not after the last modification: refused, nothing changed (etcd panics).
        let before = k.clone();
        for stale in [r(7, 0), r(6, 9), r(0, 0)] {
            assert_eq!(
                k.put(stale),
                Err(MvccError::RevisionNotIncreasing {
                    given: stale,
                    modified: r(7, 0)
                })
            );
            assert_eq!(k, before);
        }
    }

    /// TestKeyIndexRestore.
    #[test]
    fn key_index_restore() {
        let mut k = KeyIndex::new();
        k.restore(r(5, 0), r(7, 0), 2).unwrap();
        assert_eq!(k, ki((7, 0), vec![g((5, 0), 2, &[(7, 0)])]));
        // Only into an empty key index (etcd panics).
        assert_eq!(
            k.restore(r(8, 0), r(9, 0), 1),
            Err(MvccError::RestoreNonEmpty)
        );
        // The restored key reads like the original at its last revision, and goes on from it.
        assert_eq!(k.get(7), Ok((r(7, 0), r(5, 0), 2)));
        k.put(r(8, 0)).unwrap();
        assert_eq!(k.get(8), Ok((r(8, 0), r(5, 0), 3)));
    }

    /// TestKeyIndexTombstone.
    #[test]
    fn key_index_tombstone() {
        enum Op {
            Put(i64),
            Tombstone(i64),
        }
        use Op::*;
        // (operation, its result, the key index after it when it succeeded)
        let table: Vec<(Op, Result<(), MvccError>, Option<KeyIndex>)> = vec![
            (Put(5), Ok(()), None),
            (
                Tombstone(7),
                Ok(()),
                Some(ki((7, 0), vec![g((5, 0), 2, &[(5, 0), (7, 0)]), empty()])),
            ),
            (Put(8), Ok(()), None),
            (Put(9), Ok(()), None),
            (
                Tombstone(15),
                Ok(()),
                Some(ki(
                    (15, 0),
                    vec![
                        g((5, 0), 2, &[(5, 0), (7, 0)]),
                        g((8, 0), 3, &[(8, 0), (9, 0), (15, 0)]),
                        empty(),
                    ],
                )),
            ),
            // A tombstone on a deleted key.
            (Tombstone(16), Err(MvccError::RevisionNotFound), None),
        ];
        let mut k = KeyIndex::new();
        for (i, (op, want, after)) in table.into_iter().enumerate() {
            let before = k.clone();
            let got = match op {
                Put(main) => k.put(r(main, 0)),
                Tombstone(main) => k.tombstone(r(main, 0)),
            };
            assert_eq!(got, want, "#{i}");
            if got.is_err() {
                assert_eq!(k, before, "#{i}: a refused op changes nothing");
            }
            if let Some(after) = after {
                assert_eq!(k, after, "#{i}");
            }
        }
        // A tombstone on a key index that never had a revision (etcd panics).
        assert_eq!(
            KeyIndex::new().tombstone(r(1, 0)),
            Err(MvccError::RevisionNotFound)
        );
    }

    /// TestKeyIndexCompactAndKeep's table: the fixture after compact(at), and the revisions
    /// the compaction keeps.
    fn compact_table() -> Vec<(i64, KeyIndex, Available)> {
        let g1 = || g((2, 0), 3, &[(2, 0), (4, 0), (6, 0)]);
        let g1_from_4 = || g((2, 0), 3, &[(4, 0), (6, 0)]);
        let g2 = || g((8, 0), 3, &[(8, 0), (10, 0), (12, 0)]);
        let g2_from_10 = || g((8, 0), 3, &[(10, 0), (12, 0)]);
        let g3 = || g((14, 0), 3, &[(14, 0), (14, 1), (16, 0)]);
        let g3_from_14_1 = || g((14, 0), 3, &[(14, 1), (16, 0)]);
        let m = (16, 0);
        vec![
            (1, ki(m, vec![g1(), g2(), g3(), empty()]), set(&[])),
            (2, ki(m, vec![g1(), g2(), g3(), empty()]), set(&[(2, 0)])),
            (3, ki(m, vec![g1(), g2(), g3(), empty()]), set(&[(2, 0)])),
            (
                4,
                ki(m, vec![g1_from_4(), g2(), g3(), empty()]),
                set(&[(4, 0)]),
            ),
            (
                5,
                ki(m, vec![g1_from_4(), g2(), g3(), empty()]),
                set(&[(4, 0)]),
            ),
            (6, ki(m, vec![g2(), g3(), empty()]), set(&[])),
            (7, ki(m, vec![g2(), g3(), empty()]), set(&[])),
            (8, ki(m, vec![g2(), g3(), empty()]), set(&[(8, 0)])),
            (9, ki(m, vec![g2(), g3(), empty()]), set(&[(8, 0)])),
            (
                10,
                ki(m, vec![g2_from_10(), g3(), empty()]),
                set(&[(10, 0)]),
            ),
            (
                11,
                ki(m, vec![g2_from_10(), g3(), empty()]),
                set(&[(10, 0)]),
            ),
            (12, ki(m, vec![g3(), empty()]), set(&[])),
            (13, ki(m, vec![g3(), empty()]), set(&[])),
            (14, ki(m, vec![g3_from_14_1(), empty()]), set(&[(14, 1)])),
            (15, ki(m, vec![g3_from_14_1(), empty()]), set(&[(14, 1)])),
            (16, ki(m, vec![empty()]), set(&[])),
        ]
    }

    /// Keep on `k` finds `want_available` and changes nothing; compact then gives `want`.
    fn check_keep_then_compact(
        k: &mut KeyIndex,
        at: i64,
        want: &KeyIndex,
        want_available: &Available,
        drive: &str,
    ) {
        let before = k.clone();
        let mut kept = Available::new();
        k.keep(at, &mut kept);
        assert_eq!(*k, before, "{drive}: keep({at}) changed the key index");
        assert_eq!(&kept, want_available, "{drive}: keep({at})");
        let mut available = Available::new();
        k.compact(at, &mut available);
        assert_eq!(k, want, "{drive}: compact({at})");
        assert_eq!(
            &available, want_available,
            "{drive}: compact({at}) available"
        );
    }

    /// TestKeyIndexCompactAndKeep, driven three ways as etcd does: every row in turn on one key
    /// index, a jump through some rows, and each row on a fresh fixture.
    #[test]
    fn key_index_compact_and_keep() {
        let table = compact_table();

        let mut k = new_test_key_index();
        for (at, want, available) in &table {
            check_keep_then_compact(&mut k, *at, want, available, "continuous");
        }

        let mut k = new_test_key_index();
        for (i, (at, want, available)) in table.iter().enumerate() {
            if (i % 2 == 0 && i < 6) || (i % 2 == 1 && i > 6) {
                check_keep_then_compact(&mut k, *at, want, available, "jump");
            }
        }

        for (at, want, available) in &table {
            let mut k = new_test_key_index();
            check_keep_then_compact(&mut k, *at, want, available, "once");
        }
    }

    /// TestKeyIndexCompactOnFurtherRev: compacting above the last revision of a live key keeps
    /// that revision.
    #[test]
    fn key_index_compact_on_further_rev() {
        let mut k = KeyIndex::new();
        k.put(r(1, 0)).unwrap();
        k.put(r(2, 0)).unwrap();
        let mut available = Available::new();
        k.compact(3, &mut available);
        assert_eq!(k, ki((2, 0), vec![g((1, 0), 2, &[(2, 0)])]));
        assert_eq!(available, set(&[(2, 0)]));
    }

    /// TestKeyIndexIsEmpty.
    #[test]
    fn key_index_is_empty() {
        let table = [
            (ki((0, 0), vec![empty()]), true),
            (KeyIndex::new(), true),
            (ki((2, 0), vec![g((1, 0), 2, &[(2, 0)])]), false),
        ];
        for (i, (k, want)) in table.iter().enumerate() {
            assert_eq!(k.is_empty(), *want, "#{i}");
        }
    }

    /// TestKeyIndexFindGeneration: on the (uncompacted) fixture.
    #[test]
    fn key_index_find_generation() {
        let k = new_test_key_index();
        let table: &[(i64, Option<usize>)] = &[
            (0, None),
            (1, None),
            (2, Some(0)),
            (3, Some(0)),
            (4, Some(0)),
            (5, Some(0)),
            (6, None),
            (7, None),
            (8, Some(1)),
            (9, Some(1)),
            (10, Some(1)),
            (11, Some(1)),
            (12, None),
            (13, None),
        ];
        for &(rev, want) in table {
            assert_eq!(k.find_generation(rev), want, "find_generation({rev})");
        }
    }

    /// TestGenerationIsEmpty (etcd's nil generation is `None` here: `find_generation`'s "no
    /// generation").
    #[test]
    fn generation_is_empty() {
        let table = [
            (None, true),
            (Some(empty()), true),
            (Some(g((0, 0), 0, &[(1, 0)])), false),
        ];
        for (i, (gen, want)) in table.iter().enumerate() {
            assert_eq!(gen.as_ref().is_none_or(Generation::is_empty), *want, "#{i}");
        }
    }

    /// TestGenerationWalk: walk newest first while `rev.main >= n`.
    #[test]
    fn generation_walk() {
        let gen = g((2, 0), 3, &[(2, 0), (4, 0), (6, 0)]);
        let table: &[(i64, Option<usize>)] = &[
            (7, Some(2)),
            (6, Some(1)),
            (5, Some(1)),
            (4, Some(0)),
            (3, Some(0)),
            (2, None),
        ];
        for &(n, want) in table {
            assert_eq!(gen.walk(|rev| rev.main >= n), want, "main >= {n}");
        }
    }

    #[test]
    fn equivalent_ignores_created() {
        let a = ki((7, 0), vec![g((5, 1), 2, &[(7, 0)])]);
        let b = ki((7, 0), vec![g((5, 0), 2, &[(7, 0)])]);
        assert!(a.equivalent(&b));
        assert_ne!(a, b);
        let c = ki((7, 0), vec![g((5, 1), 3, &[(7, 0)])]);
        assert!(!a.equivalent(&c));
    }
}
