//! The segregated free set of bbolt's `FreelistMapType` ("hashmap"): free ids kept as maximal
//! runs, indexed three ways.
//!
//! - `by_size`: run length → starts of the runs of that length. A `BTreeMap`, so "the smallest
//!   run of at least `n` pages" is one O(log sizes) range lookup, where bbolt walks its Go map of
//!   sizes. The starts are a `BTreeSet` so the lowest start is taken first: allocation is then a
//!   pure function of the free ids (tests and rollbacks are reproducible), and picking from a
//!   hash set that has shrunk would mean scanning its empty buckets.
//! - `by_start`: run start → length, and `by_end`: run's last id → length. A freed id looks up
//!   `by_end[id - 1]` and `by_start[id + 1]` to join its neighbours in O(1).
//!
//! Runs are always maximal (no two touch), so the structure is a canonical function of the set
//! of free ids, whatever sequence of operations produced it.
//!
//! Allocation is best fit: an exact-size run if one exists, else the smallest larger run, split
//! so the remainder stays free. bbolt takes an exact run too, else any larger one.

use std::collections::{BTreeMap, BTreeSet};

use super::{FreeSet, FreelistType, Pgid, PgidMap, RunStats};

/// Free ids as maximal runs (see the module doc).
#[derive(Default)]
pub(super) struct MapSet {
    by_size: BTreeMap<u64, BTreeSet<Pgid>>,
    by_start: PgidMap<u64>,
    by_end: PgidMap<u64>,
    /// Sum of all run lengths, so `free_count` is O(1).
    free_pages: u64,
}

impl std::fmt::Debug for MapSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A summary: the set may hold millions of ids.
        f.debug_struct("MapSet")
            .field("runs", &self.runs())
            .field("sizes", &self.by_size.len())
            .finish()
    }
}

impl MapSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Indexes the run `[start, start + size)`. Its neighbours must not be free.
    fn add_run(&mut self, start: Pgid, size: u64) {
        debug_assert!(size > 0 && start > 1);
        self.by_size.entry(size).or_default().insert(start);
        self.by_start.insert(start, size);
        self.by_end.insert(start + size - 1, size);
        self.free_pages += size;
    }

    /// Forgets the run `[start, start + size)`, which must be indexed.
    fn remove_run(&mut self, start: Pgid, size: u64) {
        if let Some(starts) = self.by_size.get_mut(&size) {
            starts.remove(&start);
            if starts.is_empty() {
                self.by_size.remove(&size);
            }
        }
        self.by_start.remove(&start);
        self.by_end.remove(&(start + size - 1));
        self.free_pages -= size;
    }

    /// Frees `[first, last]`, joining the runs that end just before and start just after it.
    fn merge_run(&mut self, first: Pgid, last: Pgid) {
        let mut start = first;
        let mut size = last - first + 1;
        if let Some(&left) = first.checked_sub(1).and_then(|e| self.by_end.get(&e)) {
            start = first - left;
            self.remove_run(start, left);
            size += left;
        }
        if let Some(&right) = self.by_start.get(&(last + 1)) {
            self.remove_run(last + 1, right);
            size += right;
        }
        self.add_run(start, size);
    }
}

/// Splits ascending ids into maximal runs of consecutive ids, as `(first, last)`.
fn consecutive_runs(ids: &[Pgid]) -> impl Iterator<Item = (Pgid, Pgid)> + '_ {
    ids.chunk_by(|a, b| a + 1 == *b)
        .filter_map(|run| Some((*run.first()?, *run.last()?)))
}

impl FreeSet for MapSet {
    fn kind(&self) -> FreelistType {
        FreelistType::Map
    }

    fn init(&mut self, ids: &[Pgid]) {
        *self = MapSet::new();
        for (first, last) in consecutive_runs(ids) {
            self.add_run(first, last - first + 1);
        }
    }

    fn allocate(&mut self, n: usize) -> Option<Pgid> {
        if n == 0 {
            return None;
        }
        let n = n as u64;
        let (&size, starts) = self.by_size.range(n..).next()?;
        // Every size key has a non-empty set: remove_run drops a key with its last start.
        let start = *starts.first()?;
        debug_assert!(start > 1, "meta page {start} in the free set");
        self.remove_run(start, size);
        if size > n {
            // The remainder's left neighbour is now allocated and its right one was not free
            // (runs are maximal), so it is a maximal run as it stands.
            self.add_run(start + n, size - n);
        }
        Some(start)
    }

    fn free_count(&self) -> usize {
        self.free_pages as usize
    }

    fn merge(&mut self, ids: &[Pgid]) {
        // One index update per consecutive stretch rather than per id: a released overflow page
        // of k ids costs the same as a single id.
        for (first, last) in consecutive_runs(ids) {
            debug_assert!(
                !self.by_start.contains_key(&first) && !self.by_end.contains_key(&last),
                "pages {first}..={last} merged while free"
            );
            self.merge_run(first, last);
        }
    }

    fn ids(&self) -> Vec<Pgid> {
        let mut runs: Vec<(Pgid, u64)> = self.by_start.iter().map(|(&s, &n)| (s, n)).collect();
        runs.sort_unstable();
        let mut ids = Vec::with_capacity(self.free_count());
        for (start, size) in runs {
            ids.extend(start..start + size);
        }
        ids
    }

    fn runs(&self) -> RunStats {
        RunStats {
            free_pages: self.free_pages,
            runs: self.by_start.len() as u64,
            longest: self.by_size.last_key_value().map_or(0, |(&size, _)| size),
        }
    }

    fn check(&self) -> Result<(), String> {
        let mut runs: Vec<(Pgid, u64)> = self.by_start.iter().map(|(&s, &n)| (s, n)).collect();
        runs.sort_unstable();
        let mut total = 0u64;
        let mut sized = 0usize;
        for (size, starts) in &self.by_size {
            if starts.is_empty() {
                return Err(format!("size {size} has no runs"));
            }
            sized += starts.len();
            for start in starts {
                if self.by_start.get(start) != Some(size) {
                    return Err(format!("run {start}+{size} missing from by_start"));
                }
            }
        }
        if sized != runs.len() || self.by_end.len() != runs.len() {
            return Err(format!(
                "index sizes differ: by_size {sized}, by_start {}, by_end {}",
                runs.len(),
                self.by_end.len()
            ));
        }
        let mut prev_end: Option<Pgid> = None;
        for &(start, size) in &runs {
            if start <= 1 || size == 0 {
                return Err(format!("bad run {start}+{size}"));
            }
            let end = start + size - 1;
            if self.by_end.get(&end) != Some(&size) {
                return Err(format!("run {start}+{size} missing from by_end"));
            }
            if prev_end.is_some_and(|p| p + 1 >= start) {
                return Err(format!(
                    "run {start}+{size} touches or overlaps the previous"
                ));
            }
            prev_end = Some(end);
            total += size;
        }
        if total != self.free_pages {
            return Err(format!(
                "free_pages {} but runs hold {total}",
                self.free_pages
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_fit_then_lowest_start() {
        let mut m = MapSet::new();
        m.init(&[3, 4, 5, 10, 11, 20, 21, 30, 31, 32, 33]);
        // Exact size 2 exists twice: the lower start wins.
        assert_eq!(m.allocate(2), Some(10));
        assert_eq!(m.allocate(3), Some(3));
        // No run of 1: the smallest larger run (2 pages at 20) is split, not the run of 4.
        assert_eq!(m.allocate(1), Some(20));
        assert_eq!(m.ids(), vec![21, 30, 31, 32, 33]);
        assert_eq!(m.allocate(3), Some(30));
        assert_eq!(m.ids(), vec![21, 33]);
        assert_eq!(m.check(), Ok(()));
    }

    #[test]
    fn merge_joins_both_neighbours_in_one_step() {
        let mut m = MapSet::new();
        m.init(&[2, 3, 7, 8]);
        m.merge(&[4, 5, 6]);
        assert_eq!(
            m.runs(),
            RunStats {
                free_pages: 7,
                runs: 1,
                longest: 7
            }
        );
        assert_eq!(m.check(), Ok(()));
    }
}
