//! Ordered iteration over a bucket: a stack of (page or node, index) from the root to a leaf.
//!
//! In a write tx the cursor reads materialized nodes where they exist and pages elsewhere, so it
//! sees the tx's own uncommitted changes.

use super::node::Node;
use super::page::{PageRef, BUCKET_LEAF_FLAG};
use super::tx::Tx;
use super::{BucketId, Error, Pgid, Result};

/// A page or the node materialized from it.
#[derive(Clone, Copy)]
pub(crate) enum PageNode<'t> {
    Page(PageRef<'t>),
    Node(&'t Node),
}

impl<'t> PageNode<'t> {
    pub fn is_leaf(&self) -> bool {
        match self {
            PageNode::Page(p) => p.is_leaf(),
            PageNode::Node(n) => n.is_leaf,
        }
    }
    pub fn count(&self) -> usize {
        match self {
            PageNode::Page(p) => p.count(),
            PageNode::Node(n) => n.inodes.len(),
        }
    }
    pub fn key(&self, i: usize) -> Result<&'t [u8]> {
        match self {
            PageNode::Page(p) => p.key(i),
            PageNode::Node(n) => Ok(n.inodes[i].key.as_ref()),
        }
    }
    pub fn value(&self, i: usize) -> Result<&'t [u8]> {
        match self {
            PageNode::Page(p) => p.value(i),
            PageNode::Node(n) => Ok(n.inodes[i].value.as_ref()),
        }
    }
    pub fn flags(&self, i: usize) -> Result<u32> {
        match self {
            PageNode::Page(p) => p.elem_flags(i),
            PageNode::Node(n) => Ok(n.inodes[i].flags),
        }
    }
    pub fn child(&self, i: usize) -> Result<Pgid> {
        match self {
            PageNode::Page(p) => p.child(i),
            PageNode::Node(n) => Ok(n.inodes[i].pgid),
        }
    }

    /// Index of the first element whose key is >= `key`, and whether it is equal.
    pub fn search(&self, key: &[u8]) -> Result<(usize, bool)> {
        let (mut lo, mut hi, mut exact) = (0usize, self.count(), false);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.key(mid)?.cmp(key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Equal => {
                    exact = true;
                    hi = mid;
                }
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        Ok((lo, exact))
    }

    /// In a branch, the child to descend into for a key whose [`search`](Self::search) gave
    /// `(lo, exact)`: the last element whose key is <= the key (the first one if none is).
    pub fn branch_index(&self, lo: usize, exact: bool, at: Pgid) -> Result<usize> {
        let count = self.count();
        if count == 0 {
            return Err(Error::corrupt(at, "empty branch page"));
        }
        Ok(if !exact && lo > 0 {
            lo - 1
        } else {
            lo.min(count - 1)
        })
    }
}

#[derive(Clone, Copy)]
pub(crate) struct Elem<'t> {
    pub pn: PageNode<'t>,
    pub index: usize,
}

/// An entry under the cursor: a key and its value, or `None` for a nested bucket.
pub type Entry<'t> = (&'t [u8], Option<&'t [u8]>);

/// Key, value and leaf flags (the value of a nested bucket is its header).
pub(crate) type RawEntry<'t> = (&'t [u8], &'t [u8], u32);

/// A cursor over one bucket. Keys and values borrow the transaction.
pub struct Cursor<'t> {
    tx: &'t Tx,
    bucket: BucketId,
    pub(crate) stack: Vec<Elem<'t>>,
}

impl<'t> Cursor<'t> {
    pub(crate) fn new(tx: &'t Tx, bucket: BucketId) -> Cursor<'t> {
        Cursor {
            tx,
            bucket,
            stack: Vec::with_capacity(8),
        }
    }

    fn push(&mut self, pgid: Pgid, index: usize) -> Result<()> {
        let pn = self.tx.page_node(self.bucket, pgid)?;
        if self.stack.len() > 64 {
            return Err(Error::corrupt(
                pgid,
                "tree deeper than 64 levels (a page cycle?)",
            ));
        }
        self.stack.push(Elem { pn, index });
        Ok(())
    }

    fn entry(&self) -> Result<Option<RawEntry<'t>>> {
        let Some(top) = self.stack.last() else {
            return Ok(None);
        };
        if top.index >= top.pn.count() || !top.pn.is_leaf() {
            return Ok(None);
        }
        Ok(Some((
            top.pn.key(top.index)?,
            top.pn.value(top.index)?,
            top.pn.flags(top.index)?,
        )))
    }

    fn public(e: Option<RawEntry<'t>>) -> Option<Entry<'t>> {
        e.map(|(k, v, f)| (k, (f & BUCKET_LEAF_FLAG == 0).then_some(v)))
    }

    /// Descends from the top of the stack to the first leaf element.
    fn go_first(&mut self) -> Result<()> {
        loop {
            let Some(top) = self.stack.last() else {
                return Ok(());
            };
            if top.pn.is_leaf() {
                return Ok(());
            }
            if top.index >= top.pn.count() {
                return Err(Error::corrupt(0, "empty branch page"));
            }
            let child = top.pn.child(top.index)?;
            self.push(child, 0)?;
        }
    }

    /// Descends from the top of the stack to the last leaf element.
    fn go_last(&mut self) -> Result<()> {
        loop {
            let Some(top) = self.stack.last() else {
                return Ok(());
            };
            if top.pn.is_leaf() {
                return Ok(());
            }
            if top.pn.count() == 0 {
                return Err(Error::corrupt(0, "empty branch page"));
            }
            let child = top.pn.child(top.index)?;
            self.push(child, 0)?;
            if let Some(top) = self.stack.last_mut() {
                top.index = top.pn.count().saturating_sub(1);
            }
        }
    }

    fn root(&self) -> Pgid {
        self.tx.bucket_root(self.bucket)
    }

    pub(crate) fn first_raw(&mut self) -> Result<Option<RawEntry<'t>>> {
        self.stack.clear();
        self.push(self.root(), 0)?;
        self.go_first()?;
        if self.stack.last().is_some_and(|e| e.pn.count() == 0) {
            return self.next_raw();
        }
        self.entry()
    }

    /// Moves to the first entry.
    pub fn first(&mut self) -> Result<Option<Entry<'t>>> {
        self.first_raw().map(Self::public)
    }

    /// Moves to the last entry.
    pub fn last(&mut self) -> Result<Option<Entry<'t>>> {
        self.stack.clear();
        self.push(self.root(), 0)?;
        if let Some(top) = self.stack.last_mut() {
            top.index = top.pn.count().saturating_sub(1);
        }
        self.go_last()?;
        if self.stack.last().is_some_and(|e| e.pn.count() == 0) {
            return self.prev();
        }
        self.entry().map(Self::public)
    }

    pub(crate) fn next_raw(&mut self) -> Result<Option<RawEntry<'t>>> {
        loop {
            // Move up the stack until a level has a next element.
            let mut level = None;
            for i in (0..self.stack.len()).rev() {
                let e = &mut self.stack[i];
                if e.index + 1 < e.pn.count() {
                    e.index += 1;
                    level = Some(i);
                    break;
                }
            }
            let Some(i) = level else {
                // Past the end: leave the cursor after the last element.
                if let Some(top) = self.stack.last_mut() {
                    top.index = top.pn.count();
                }
                return Ok(None);
            };
            self.stack.truncate(i + 1);
            self.go_first()?;
            // An empty leaf (possible mid-tx) is skipped.
            if self.stack.last().is_some_and(|e| e.pn.count() == 0) {
                continue;
            }
            return self.entry();
        }
    }

    /// Moves to the next entry.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Entry<'t>>> {
        self.next_raw().map(Self::public)
    }

    /// Moves to the previous entry.
    pub fn prev(&mut self) -> Result<Option<Entry<'t>>> {
        loop {
            let mut level = None;
            for i in (0..self.stack.len()).rev() {
                let e = &mut self.stack[i];
                if e.index > 0 && e.index <= e.pn.count() {
                    e.index -= 1;
                    level = Some(i);
                    break;
                }
            }
            let Some(i) = level else {
                self.stack.clear();
                return Ok(None);
            };
            self.stack.truncate(i + 1);
            self.go_last()?;
            if self.stack.last().is_some_and(|e| e.pn.count() == 0) {
                continue;
            }
            return self.entry().map(Self::public);
        }
    }

    /// Positions the stack at the first leaf element >= `key` (possibly one past the end of a
    /// leaf) without moving on to the next leaf.
    pub(crate) fn search(&mut self, key: &[u8]) -> Result<()> {
        self.stack.clear();
        let mut pgid = self.root();
        loop {
            self.push(pgid, 0)?;
            let Some(top) = self.stack.last_mut() else {
                return Ok(());
            };
            let pn = top.pn;
            let (lo, exact) = pn.search(key)?;
            if pn.is_leaf() {
                top.index = lo;
                return Ok(());
            }
            let idx = pn.branch_index(lo, exact, pgid)?;
            top.index = idx;
            pgid = pn.child(idx)?;
        }
    }

    /// The exact entry for `key`, if present: (key, value, flags).
    pub(crate) fn seek_exact(&mut self, key: &[u8]) -> Result<Option<RawEntry<'t>>> {
        self.search(key)?;
        match self.entry()? {
            Some(e) if e.0 == key => Ok(Some(e)),
            _ => Ok(None),
        }
    }

    pub(crate) fn seek_raw(&mut self, key: &[u8]) -> Result<Option<RawEntry<'t>>> {
        self.search(key)?;
        if let Some(top) = self.stack.last() {
            if top.index >= top.pn.count() {
                return self.next_raw();
            }
        }
        self.entry()
    }

    /// Moves to the first entry >= `key`.
    pub fn seek(&mut self, key: &[u8]) -> Result<Option<Entry<'t>>> {
        self.seek_raw(key).map(Self::public)
    }
}
