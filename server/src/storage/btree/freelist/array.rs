//! bbolt's original free set: every free id in one sorted vector.
//!
//! Allocation scans from the lowest id for the first run of `n` consecutive ids, so it costs
//! O(free pages) in the worst case. That is the point: this is the baseline the segregated
//! [`MapSet`](super::hashmap::MapSet) is measured against, and the layout bbolt users get with
//! `FreelistArrayType`.
//!
//! The vector is kept in *descending* order. The scan starts at the lowest id, which then sits at
//! the end of the vector, so removing a run found after `k` ids moves only those `k` ids, and
//! handing back low ids (the usual case once the file has been compacted towards its start)
//! merges near the end. bbolt keeps ascending order and copies the whole tail instead; the
//! observable behaviour (which run is returned) is identical.

use super::{FreeSet, FreelistType, Pgid, RunStats};

/// Free ids in one vector, sorted descending (see the module doc for why descending).
#[derive(Default)]
pub(super) struct ArraySet {
    desc: Vec<Pgid>,
}

impl std::fmt::Debug for ArraySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A summary: the set may hold millions of ids.
        f.debug_struct("ArraySet")
            .field("runs", &self.runs())
            .finish()
    }
}

impl ArraySet {
    pub fn new() -> Self {
        Self::default()
    }
}

impl FreeSet for ArraySet {
    fn kind(&self) -> FreelistType {
        FreelistType::Array
    }

    fn init(&mut self, ids: &[Pgid]) {
        self.desc.clear();
        self.desc.extend(ids.iter().rev());
    }

    fn allocate(&mut self, n: usize) -> Option<Pgid> {
        if n == 0 {
            return None;
        }
        // Ids are unique and descending, so n adjacent entries are one run exactly when the
        // first exceeds the last by n - 1. Searching windows from the back visits runs from the
        // lowest id up: the first hit is bbolt's first fit.
        let gap = n as Pgid - 1;
        let idx = self.desc.windows(n).rposition(|w| w[0] == w[n - 1] + gap)?;
        let start = self.desc[idx + n - 1];
        debug_assert!(start > 1, "meta page {start} in the free set");
        // Moves only the ids below the run, the ones the search just walked past.
        self.desc.drain(idx..idx + n);
        Some(start)
    }

    fn free_count(&self) -> usize {
        self.desc.len()
    }

    fn merge(&mut self, ids: &[Pgid]) {
        if ids.is_empty() {
            return;
        }
        // In-place merge from the low end: grow the vector, then fill it from its last slot
        // backwards. For each new id (ascending), the old ids below it move down as one block
        // (found by binary search, moved by `copy_within`), then the new id goes above them.
        // The write position never overtakes the unread old ids, and once `ids` is exhausted
        // the old ids still unread are already in place: only ids below `max(ids)` move.
        let old_len = self.desc.len();
        self.desc.resize(old_len + ids.len(), 0);
        let mut old = old_len; // old ids not yet placed: desc[..old]
        let mut write = self.desc.len(); // desc[write..] is final
        for &id in ids {
            let above = self.desc[..old].partition_point(|&o| o > id);
            debug_assert!(
                above == old || self.desc[above] != id,
                "page {id} merged twice"
            );
            let below = old - above;
            self.desc.copy_within(above..old, write - below);
            write -= below + 1;
            old = above;
            self.desc[write] = id;
        }
        debug_assert_eq!(write, old);
    }

    fn ids(&self) -> Vec<Pgid> {
        self.desc.iter().rev().copied().collect()
    }

    fn runs(&self) -> RunStats {
        let mut stats = RunStats {
            free_pages: self.desc.len() as u64,
            ..RunStats::default()
        };
        let mut prev: Option<Pgid> = None;
        let mut run = 0u64;
        for &id in self.desc.iter().rev() {
            if prev.is_some_and(|p| p + 1 == id) {
                run += 1;
            } else {
                stats.runs += 1;
                run = 1;
            }
            stats.longest = stats.longest.max(run);
            prev = Some(id);
        }
        stats
    }

    fn check(&self) -> Result<(), String> {
        if let Some(w) = self.desc.windows(2).find(|w| w[0] <= w[1]) {
            return Err(format!(
                "array not strictly descending at {} {}",
                w[0], w[1]
            ));
        }
        match self.desc.last() {
            Some(&id) if id <= 1 => Err(format!("meta page {id} in the free set")),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_interleaves_in_place() {
        let mut a = ArraySet::new();
        a.init(&[3, 7, 9]);
        a.merge(&[2, 5, 8, 20]);
        assert_eq!(a.ids(), vec![2, 3, 5, 7, 8, 9, 20]);
        a.merge(&[4]);
        assert_eq!(a.ids(), vec![2, 3, 4, 5, 7, 8, 9, 20]);
        assert_eq!(a.check(), Ok(()));
    }

    #[test]
    fn allocate_takes_the_lowest_fitting_run() {
        let mut a = ArraySet::new();
        a.init(&[3, 5, 6, 8, 9, 10]);
        assert_eq!(a.allocate(2), Some(5));
        assert_eq!(a.ids(), vec![3, 8, 9, 10]);
        assert_eq!(a.allocate(1), Some(3));
        assert_eq!(a.allocate(3), Some(8));
        assert_eq!(a.ids(), Vec::<Pgid>::new());
    }
}
