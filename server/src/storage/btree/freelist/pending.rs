//! Pages freed by a transaction that readers may still see: the *pending* half of the freelist.
//!
//! A page freed by tx `T` cannot be reused while a reader that started before `T` committed is
//! open, so it waits here, keyed by `T`, until [`Pending::take_upto`] (no reader older than `T`
//! remains) or [`Pending::take_range`] (no reader saw the page at all) hands it to the free set.
//! Each page keeps the txid that allocated it: that is what lets `take_range` prove a page was
//! never visible to any open reader.

use std::collections::BTreeMap;

use super::{Pgid, Txid};

/// Where the allocating txid of a pending page came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AllocOrigin {
    /// Taken from the freelist's `allocs` map (and removed there): a rollback puts it back.
    Recorded,
    /// Nothing to put back on rollback: the txid was guessed (the freelist page is always
    /// written by the tx before the one freeing it), is unknown (`alloc_txid == 0`), or is an
    /// overflow page sharing its first page's record.
    Inferred,
}

/// One pending page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PendingPage {
    pub id: Pgid,
    /// The tx that allocated the page; 0 when unknown (bbolt's convention, kept so that
    /// `take_range` compares exactly as bbolt's `releaseRange` does).
    pub alloc_txid: Txid,
    pub origin: AllocOrigin,
}

/// The pages one tx freed.
#[derive(Debug, Default)]
pub(super) struct TxPending {
    pub pages: Vec<PendingPage>,
    /// `begin` of the last `take_range` that examined this list. Another range with the same
    /// `begin` would find nothing new, because a page is always allocated by a tx no later than
    /// the one freeing it, so every alloc txid is already `<=` the previous `end`. Reset when
    /// pages are added, so the shortcut never hides a newcomer.
    last_range_begin: Option<Txid>,
}

/// Pending pages per freeing txid. A `BTreeMap` so that "every tx `<= txid`" and "every tx in
/// `[begin, end]`" are range operations rather than scans of every pending tx.
#[derive(Debug, Default)]
pub(super) struct Pending {
    txs: BTreeMap<Txid, TxPending>,
    /// Total pages over all txs, kept so `count` is O(1) (the engine asks on every commit).
    count: usize,
}

impl Pending {
    /// Number of pending pages.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Appends pages freed by `txid`.
    pub fn push(&mut self, txid: Txid, pages: impl IntoIterator<Item = PendingPage>) {
        let tx = self.txs.entry(txid).or_default();
        let before = tx.pages.len();
        tx.pages.extend(pages);
        self.count += tx.pages.len() - before;
        tx.last_range_begin = None;
    }

    /// Removes and returns the pages freed by exactly `txid`.
    pub fn take_tx(&mut self, txid: Txid) -> Vec<PendingPage> {
        match self.txs.remove(&txid) {
            Some(tx) => {
                self.count -= tx.pages.len();
                tx.pages
            }
            None => Vec::new(),
        }
    }

    /// Removes and returns the ids of every page freed by a tx `<= txid`, in no order.
    pub fn take_upto(&mut self, txid: Txid) -> Vec<Pgid> {
        let taken = match txid.checked_add(1) {
            Some(next) => {
                let rest = self.txs.split_off(&next);
                std::mem::replace(&mut self.txs, rest)
            }
            None => std::mem::take(&mut self.txs),
        };
        let ids: Vec<Pgid> = taken
            .into_values()
            .flat_map(|tx| tx.pages.into_iter().map(|p| p.id))
            .collect();
        self.count -= ids.len();
        ids
    }

    /// Removes and returns the ids of pages freed by a tx in `[begin, end]` and allocated by a
    /// tx in `[begin, end]`: no reader outside the range saw them, and none is inside it.
    pub fn take_range(&mut self, begin: Txid, end: Txid) -> Vec<Pgid> {
        let mut ids = Vec::new();
        if begin > end {
            return ids;
        }
        let mut emptied = Vec::new();
        for (&txid, tx) in self.txs.range_mut(begin..=end) {
            if tx.last_range_begin == Some(begin) {
                continue;
            }
            tx.pages.retain(|p| {
                let in_range = (begin..=end).contains(&p.alloc_txid);
                if in_range {
                    ids.push(p.id);
                }
                !in_range
            });
            tx.last_range_begin = Some(begin);
            if tx.pages.is_empty() {
                emptied.push(txid);
            }
        }
        for txid in emptied {
            self.txs.remove(&txid);
        }
        self.count -= ids.len();
        ids
    }

    /// Every pending id, sorted ascending.
    pub fn ids(&self) -> Vec<Pgid> {
        let mut ids: Vec<Pgid> = self.pages().map(|p| p.id).collect();
        ids.sort_unstable();
        ids
    }

    /// Every pending page, grouped by freeing txid in ascending txid order.
    pub fn pages(&self) -> impl Iterator<Item = &PendingPage> + '_ {
        self.txs.values().flat_map(|tx| tx.pages.iter())
    }

    /// The pending ids of one tx, in the order they were freed.
    pub fn tx_ids(&self, txid: Txid) -> Vec<Pgid> {
        self.txs
            .get(&txid)
            .map(|tx| tx.pages.iter().map(|p| p.id).collect())
            .unwrap_or_default()
    }

    /// Drops everything.
    pub fn clear(&mut self) {
        self.txs.clear();
        self.count = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(id: Pgid, alloc_txid: Txid) -> PendingPage {
        PendingPage {
            id,
            alloc_txid,
            origin: AllocOrigin::Recorded,
        }
    }

    #[test]
    fn take_upto_splits_by_txid() {
        let mut p = Pending::default();
        p.push(5, [page(10, 1), page(11, 1)]);
        p.push(6, [page(20, 2)]);
        p.push(7, [page(30, 3)]);
        let mut got = p.take_upto(6);
        got.sort_unstable();
        assert_eq!(got, vec![10, 11, 20]);
        assert_eq!(p.count(), 1);
        assert_eq!(p.ids(), vec![30]);
        assert_eq!(p.take_upto(Txid::MAX), vec![30]);
        assert_eq!(p.count(), 0);
    }

    #[test]
    fn take_range_skips_a_repeated_begin_until_new_pages_arrive() {
        let mut p = Pending::default();
        p.push(10, [page(3, 1)]);
        assert!(p.take_range(5, 20).is_empty());
        // Same begin: skipped, even though the page now would not qualify anyway.
        assert!(p.take_range(5, 30).is_empty());
        // A new page for the tx resets the shortcut.
        p.push(10, [page(4, 6)]);
        assert_eq!(p.take_range(5, 30), vec![4]);
        assert_eq!(p.count(), 1);
        assert_eq!(p.tx_ids(10), vec![3]);
    }
}
