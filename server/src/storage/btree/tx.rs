//! Transactions: any number of read-only txs, each on the snapshot it began with, and one
//! read-write tx at a time, whose changes are copy-on-write nodes until commit.
//!
//! Commit, in bbolt's order: merge underfilled nodes (rebalance), split and write every changed
//! node to newly allocated pages (spill; runs of pages are written as they are made), free the
//! pages they replace, write the freelist, fdatasync, then write the
//! meta page (`txid % 2`) and fdatasync again. A
//! crash before the second sync leaves the previous meta in charge: the tx never happened.
//!
//! Buckets are addressed by [`BucketId`], a handle valid for the tx that gave it out
//! ([`Tx::root`] is the top level). Opening a bucket takes `&mut self`; reading (`get`,
//! `cursor`) takes `&self` and returns slices that borrow the tx: in a read tx they point
//! straight into the mapped file.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use telemetry::Timer;

use super::cursor::{Cursor, Entry, PageNode};
use super::db::{DbInner, Writer};
use super::file::View;
use super::meta::{Meta, PGID_NO_FREELIST};
use super::node::{Node, NodeId};
use super::page::{
    self, BucketHeader, PageRef, BUCKET_HEADER_SIZE, BUCKET_LEAF_FLAG, LEAF_ELEMENT_SIZE,
    MAX_KEY_SIZE, MAX_VALUE_SIZE, MIN_KEYS_PER_PAGE, PAGE_HEADER_SIZE,
};
use super::{BucketId, Error, Pgid, Result, Txid};

/// bbolt's default fill percent: split nodes half full, leaving room for random inserts.
pub const DEFAULT_FILL_PERCENT: f64 = 0.5;

/// A page of a mapping, kept alive by the `Bytes` made over it.
struct ViewPage {
    view: Arc<dyn View>,
    start: usize,
    end: usize,
}

impl AsRef<[u8]> for ViewPage {
    fn as_ref(&self) -> &[u8] {
        &self.view.bytes()[self.start..self.end]
    }
}

/// What a commit did, for the backend's measurements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    pub txid: Txid,
    /// Pages written (data, freelist and meta).
    pub pages: u64,
    pub bytes: u64,
    /// Time spent in fdatasync, ns.
    pub fsync_ns: u64,
    /// Time spent writing pages (pwrite), ns.
    pub write_ns: u64,
    /// Time spent in rebalance and spill, ns.
    pub spill_ns: u64,
}

pub(crate) struct BucketState {
    pub header: BucketHeader,
    /// The inline page when `header.root == 0`.
    pub inline: Option<Vec<u8>>,
    pub root_node: Option<NodeId>,
    /// Materialized nodes by the page id they were read from (write txs only).
    pub nodes: HashMap<Pgid, NodeId>,
    /// Sub-buckets opened in this tx, by name.
    pub children: HashMap<Vec<u8>, BucketId>,
    pub fill_percent: f64,
    /// Deleted in this tx: the handle is dead.
    pub deleted: bool,
}

impl BucketState {
    fn new(header: BucketHeader, inline: Option<Vec<u8>>) -> BucketState {
        BucketState {
            header,
            inline,
            root_node: None,
            nodes: HashMap::new(),
            children: HashMap::new(),
            fill_percent: DEFAULT_FILL_PERCENT,
            deleted: false,
        }
    }
}

/// A transaction. Dropping an uncommitted tx rolls it back.
pub struct Tx {
    pub(crate) db: Arc<DbInner>,
    pub(crate) view: Arc<dyn View>,
    pub(crate) meta: Meta,
    /// The write lock and the freelist; `Some` exactly for a live write tx.
    pub(crate) writer: Option<Writer>,
    writable: bool,
    pub(crate) buckets: Vec<BucketState>,
    pub(crate) nodes: Vec<Node>,
    /// Consecutive pages spilled but not yet written: (first page id, bytes).
    run: Option<(Pgid, Vec<u8>)>,
    /// What this commit wrote so far.
    written: CommitStats,
    done: bool,
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx")
            .field("txid", &self.meta.txid)
            .field("writable", &self.writable)
            .finish()
    }
}

fn valid_fill(f: f64) -> f64 {
    f.clamp(0.1, 1.0)
}

impl Tx {
    pub(crate) fn new(
        db: Arc<DbInner>,
        view: Arc<dyn View>,
        meta: Meta,
        writer: Option<Writer>,
    ) -> Tx {
        let writable = writer.is_some();
        Tx {
            buckets: vec![BucketState::new(meta.root, None)],
            db,
            view,
            meta,
            writer,
            writable,
            nodes: Vec::new(),
            run: None,
            written: CommitStats::default(),
            done: false,
        }
    }

    /// The id of this tx: for a read tx the last committed tx it sees, for a write tx the one
    /// it will commit as.
    pub fn id(&self) -> Txid {
        self.meta.txid
    }

    pub fn writable(&self) -> bool {
        self.writable
    }

    /// Bytes of the database as this tx sees it (high-water mark × page size).
    pub fn size(&self) -> u64 {
        self.meta.pgid * u64::from(self.meta.page_size)
    }

    pub fn page_size(&self) -> usize {
        self.meta.page_size as usize
    }

    pub(crate) fn meta(&self) -> &Meta {
        &self.meta
    }

    /// The top-level bucket: its keys are bucket names.
    pub fn root(&self) -> BucketId {
        0
    }

    // ---- pages ------------------------------------------------------------------------------

    /// The page at `id`, with its overflow pages, from the mapped file.
    pub(crate) fn page(&self, id: Pgid) -> Result<PageRef<'_>> {
        let ps = self.meta.page_size as u64;
        let bytes = self.view.bytes();
        if id >= self.meta.pgid {
            return Err(Error::corrupt(
                id,
                format!("page id beyond the high-water mark {}", self.meta.pgid),
            ));
        }
        let start = id
            .checked_mul(ps)
            .and_then(|s| usize::try_from(s).ok())
            .filter(|s| s + PAGE_HEADER_SIZE <= bytes.len())
            .ok_or_else(|| Error::corrupt(id, "page beyond the end of the file"))?;
        let overflow = u64::from(page::u32_at(bytes, start + 12));
        let len = (overflow + 1) * ps;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| start.checked_add(l))
            .filter(|e| *e <= bytes.len())
            .ok_or_else(|| {
                Error::corrupt(
                    id,
                    format!("overflow {overflow} runs past the end of the file"),
                )
            })?;
        PageRef::new(&bytes[start..end], id)
    }

    /// The bytes of page `p` (read through `self.page`) as a shared buffer over the mapping,
    /// without copying: nodes slice their keys and values out of it.
    fn page_bytes(&self, p: &PageRef<'_>) -> Bytes {
        let base = self.view.bytes().as_ptr() as usize;
        let start = p.bytes().as_ptr() as usize - base;
        Bytes::from_owner(ViewPage {
            view: self.view.clone(),
            start,
            end: start + p.bytes().len(),
        })
    }

    pub(crate) fn bucket_root(&self, b: BucketId) -> Pgid {
        self.buckets[b].header.root
    }

    /// The node for `pgid` if this tx materialized it, else the page.
    pub(crate) fn page_node(&self, b: BucketId, id: Pgid) -> Result<PageNode<'_>> {
        let bs = &self.buckets[b];
        if bs.header.root == 0 {
            if id != 0 {
                return Err(Error::corrupt(id, "inline bucket refers to another page"));
            }
            if let Some(n) = bs.root_node {
                return Ok(PageNode::Node(&self.nodes[n]));
            }
            let inline = bs.inline.as_deref().unwrap_or(&[]);
            let p = PageRef::new(inline, 0)?;
            p.check_node()?;
            return Ok(PageNode::Page(p));
        }
        if let Some(&n) = bs.nodes.get(&id) {
            return Ok(PageNode::Node(&self.nodes[n]));
        }
        let p = self.page(id)?;
        p.check_node()?;
        Ok(PageNode::Page(p))
    }

    fn check_live(&self, b: BucketId) -> Result<()> {
        if self.done {
            return Err(Error::Closed);
        }
        match self.buckets.get(b) {
            Some(bs) if !bs.deleted => Ok(()),
            _ => Err(Error::BucketNotFound),
        }
    }

    fn check_writable(&self, b: BucketId) -> Result<()> {
        self.check_live(b)?;
        if !self.writable {
            return Err(Error::TxNotWritable);
        }
        Ok(())
    }

    // ---- reading ----------------------------------------------------------------------------

    /// A cursor over bucket `b`.
    pub fn cursor(&self, b: BucketId) -> Cursor<'_> {
        Cursor::new(self, b)
    }

    /// The value of `key` in bucket `b`; `None` when absent or when `key` names a bucket.
    pub fn get(&self, b: BucketId, key: &[u8]) -> Result<Option<&[u8]>> {
        self.check_live(b)?;
        // A straight descent: no cursor stack to allocate.
        let mut pgid = self.bucket_root(b);
        for _ in 0..64 {
            let pn = self.page_node(b, pgid)?;
            let (lo, exact) = pn.search(key)?;
            if pn.is_leaf() {
                return Ok(if exact && pn.flags(lo)? & BUCKET_LEAF_FLAG == 0 {
                    Some(pn.value(lo)?)
                } else {
                    None
                });
            }
            let idx = pn.branch_index(lo, exact, pgid)?;
            pgid = pn.child(idx)?;
        }
        Err(Error::corrupt(
            pgid,
            "tree deeper than 64 levels (a page cycle?)",
        ))
    }

    /// Calls `f` for every entry of bucket `b` in key order (value `None` for a nested bucket).
    pub fn for_each<E>(
        &self,
        b: BucketId,
        mut f: impl FnMut(&[u8], Option<&[u8]>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E>
    where
        E: From<Error>,
    {
        self.check_live(b)?;
        let mut c = self.cursor(b);
        let mut e: Option<Entry<'_>> = c.first()?;
        while let Some((k, v)) = e {
            f(k, v)?;
            e = c.next()?;
        }
        Ok(())
    }

    /// The sequence number of bucket `b`.
    pub fn sequence(&self, b: BucketId) -> Result<u64> {
        self.check_live(b)?;
        Ok(self.buckets[b].header.sequence)
    }

    /// Opens the nested bucket `name` of `parent`.
    pub fn bucket(&mut self, parent: BucketId, name: &[u8]) -> Result<Option<BucketId>> {
        self.check_live(parent)?;
        if let Some(&id) = self.buckets[parent].children.get(name) {
            return Ok(Some(id));
        }
        let (header, inline) = {
            let mut c = self.cursor(parent);
            match c.seek_exact(name)? {
                Some((_, v, flags)) if flags & BUCKET_LEAF_FLAG != 0 => {
                    let header = BucketHeader::decode(v).ok_or_else(|| {
                        Error::corrupt(0, "bucket value shorter than a bucket header")
                    })?;
                    let inline = (header.root == 0).then(|| v[BUCKET_HEADER_SIZE..].to_vec());
                    (header, inline)
                }
                _ => return Ok(None),
            }
        };
        let id = self.buckets.len();
        self.buckets.push(BucketState::new(header, inline));
        self.buckets[parent].children.insert(name.to_vec(), id);
        Ok(Some(id))
    }

    /// Opens a bucket by its path of names from the top level.
    pub fn bucket_path(&mut self, path: &[&[u8]]) -> Result<Option<BucketId>> {
        let mut b = self.root();
        for name in path {
            match self.bucket(b, name)? {
                Some(c) => b = c,
                None => return Ok(None),
            }
        }
        Ok(Some(b))
    }

    // ---- writing ----------------------------------------------------------------------------

    /// Materializes the node for `pgid` in bucket `b` (bbolt's `Bucket.node`).
    fn node(&mut self, b: BucketId, pgid: Pgid, parent: Option<NodeId>) -> Result<NodeId> {
        if let Some(&n) = self.buckets[b].nodes.get(&pgid) {
            return Ok(n);
        }
        let node = {
            let bs = &self.buckets[b];
            if bs.header.root == 0 {
                let inline = Bytes::copy_from_slice(bs.inline.as_deref().unwrap_or(&[]));
                Node::read(b, parent, &PageRef::new(&inline, 0)?, &inline)?
            } else {
                let p = self.page(pgid)?;
                let backing = self.page_bytes(&p);
                Node::read(b, parent, &p, &backing)?
            }
        };
        let id = self.nodes.len();
        self.nodes.push(node);
        // The page header's id may differ from where we read it only in a damaged file; key
        // the node by where it was read so it is found again.
        self.nodes[id].pgid = pgid;
        match parent {
            None => self.buckets[b].root_node = Some(id),
            Some(p) => self.nodes[p].children.push(id),
        }
        self.buckets[b].nodes.insert(pgid, id);
        Ok(id)
    }

    fn child_at(&mut self, n: NodeId, index: usize) -> Result<NodeId> {
        let node = &self.nodes[n];
        if node.is_leaf {
            return Err(Error::corrupt(node.pgid, "child_at on a leaf"));
        }
        let (b, pgid) = (node.bucket, node.inodes[index].pgid);
        self.node(b, pgid, Some(n))
    }

    /// Materializes the leaf node for `key` in bucket `b` (bbolt's `Cursor.node`), and tells
    /// whether the key is there and with which flags.
    fn leaf_for(&mut self, b: BucketId, key: &[u8]) -> Result<(NodeId, Option<u32>)> {
        let (path, found) = {
            let mut c = self.cursor(b);
            c.search(key)?;
            let path: Vec<usize> = c.stack.iter().map(|e| e.index).collect();
            let found = match c.stack.last() {
                Some(top) if top.index < top.pn.count() && top.pn.key(top.index)? == key => {
                    Some(top.pn.flags(top.index)?)
                }
                _ => None,
            };
            (path, found)
        };
        let root = self.buckets[b].header.root;
        let mut n = self.node(b, root, None)?;
        for idx in &path[..path.len().saturating_sub(1)] {
            n = self.child_at(n, *idx)?;
        }
        Ok((n, found))
    }

    fn check_key(key: &[u8]) -> Result<()> {
        if key.is_empty() {
            return Err(Error::KeyRequired);
        }
        if key.len() > MAX_KEY_SIZE {
            return Err(Error::KeyTooLarge);
        }
        Ok(())
    }

    /// Sets `key` to `value` in bucket `b`.
    pub fn put(&mut self, b: BucketId, key: &[u8], value: &[u8]) -> Result<()> {
        self.check_writable(b)?;
        Self::check_key(key)?;
        if value.len() > MAX_VALUE_SIZE {
            return Err(Error::ValueTooLarge);
        }
        let (n, found) = self.leaf_for(b, key)?;
        if found.is_some_and(|f| f & BUCKET_LEAF_FLAG != 0) {
            return Err(Error::IncompatibleValue);
        }
        self.nodes[n].put(
            key,
            Bytes::copy_from_slice(key),
            Bytes::copy_from_slice(value),
            0,
            0,
        );
        Ok(())
    }

    /// Removes `key` from bucket `b` (nothing happens when it is absent).
    pub fn delete(&mut self, b: BucketId, key: &[u8]) -> Result<()> {
        self.check_writable(b)?;
        let (n, found) = self.leaf_for(b, key)?;
        match found {
            None => Ok(()),
            Some(f) if f & BUCKET_LEAF_FLAG != 0 => Err(Error::IncompatibleValue),
            Some(_) => {
                self.nodes[n].del(key);
                Ok(())
            }
        }
    }

    /// Sets the sequence of bucket `b`.
    pub fn set_sequence(&mut self, b: BucketId, v: u64) -> Result<()> {
        self.check_writable(b)?;
        // Materialize the root so the bucket is written back on commit.
        let root = self.buckets[b].header.root;
        self.node(b, root, None)?;
        self.buckets[b].header.sequence = v;
        Ok(())
    }

    /// Increments and returns the sequence of bucket `b`.
    pub fn next_sequence(&mut self, b: BucketId) -> Result<u64> {
        let v = self.sequence(b)?.wrapping_add(1);
        self.set_sequence(b, v)?;
        Ok(v)
    }

    /// Sets how full split pages are left in bucket `b` (0.1..=1.0; etcd uses 0.9 for
    /// append-only keys).
    pub fn set_fill_percent(&mut self, b: BucketId, f: f64) {
        if let Some(bs) = self.buckets.get_mut(b) {
            bs.fill_percent = valid_fill(f);
        }
    }

    /// Creates the nested bucket `name` in `parent`.
    pub fn create_bucket(&mut self, parent: BucketId, name: &[u8]) -> Result<BucketId> {
        self.check_writable(parent)?;
        if name.is_empty() {
            return Err(Error::BucketNameRequired);
        }
        Self::check_key(name)?;
        let (n, found) = self.leaf_for(parent, name)?;
        match found {
            Some(f) if f & BUCKET_LEAF_FLAG != 0 => return Err(Error::BucketExists),
            Some(_) => return Err(Error::IncompatibleValue),
            None => {}
        }
        // An empty inline bucket: a header with root 0, then an empty leaf page.
        let mut value = vec![0u8; BUCKET_HEADER_SIZE + PAGE_HEADER_SIZE];
        page::write_header(&mut value[BUCKET_HEADER_SIZE..], 0, page::LEAF_PAGE, 0, 0);
        self.nodes[n].put(
            name,
            Bytes::copy_from_slice(name),
            Bytes::from(value),
            0,
            BUCKET_LEAF_FLAG,
        );
        self.bucket(parent, name)?
            .ok_or_else(|| Error::corrupt(0, "created bucket not found"))
    }

    /// Opens `name` in `parent`, creating it when absent.
    pub fn create_bucket_if_not_exists(
        &mut self,
        parent: BucketId,
        name: &[u8],
    ) -> Result<BucketId> {
        self.check_writable(parent)?;
        match self.bucket(parent, name)? {
            Some(b) => Ok(b),
            None => self.create_bucket(parent, name),
        }
    }

    /// Deletes the nested bucket `name` of `parent` with everything in it.
    pub fn delete_bucket(&mut self, parent: BucketId, name: &[u8]) -> Result<()> {
        self.check_writable(parent)?;
        let (_, found) = self.leaf_for(parent, name)?;
        match found {
            None => return Err(Error::BucketNotFound),
            Some(f) if f & BUCKET_LEAF_FLAG == 0 => return Err(Error::IncompatibleValue),
            Some(_) => {}
        }
        let child = self.bucket(parent, name)?.ok_or(Error::BucketNotFound)?;
        // Delete nested buckets first.
        let mut names = Vec::new();
        self.for_each(child, |k, v| {
            if v.is_none() {
                names.push(k.to_vec());
            }
            Ok::<(), Error>(())
        })?;
        for sub in names {
            self.delete_bucket(child, &sub)?;
        }
        self.free_bucket(child)?;
        let bs = &mut self.buckets[child];
        bs.deleted = true;
        bs.nodes.clear();
        bs.root_node = None;
        self.buckets[parent].children.remove(name);
        let (n, _) = self.leaf_for(parent, name)?;
        self.nodes[n].del(name);
        Ok(())
    }

    /// Frees every page of bucket `b` (bbolt's `Bucket.free`).
    fn free_bucket(&mut self, b: BucketId) -> Result<()> {
        let root = self.buckets[b].header.root;
        if root == 0 {
            return Ok(());
        }
        let mut stack = vec![root];
        let txid = self.meta.txid;
        while let Some(pgid) = stack.pop() {
            if let Some(&n) = self.buckets[b].nodes.get(&pgid) {
                let node = &self.nodes[n];
                if !node.is_leaf {
                    stack.extend(node.inodes.iter().map(|i| i.pgid));
                }
                self.free_node(n)?;
            } else {
                let (overflow, children) = {
                    let p = self.page(pgid)?;
                    let children = if p.is_branch() {
                        (0..p.count())
                            .map(|i| p.child(i))
                            .collect::<Result<Vec<_>>>()?
                    } else {
                        Vec::new()
                    };
                    (p.overflow(), children)
                };
                self.freelist_free(txid, pgid, overflow, false)?;
                stack.extend(children);
            }
        }
        self.buckets[b].header.root = 0;
        Ok(())
    }

    fn freelist_free(&mut self, txid: Txid, id: Pgid, overflow: u32, fl: bool) -> Result<()> {
        let w = self.writer.as_mut().ok_or(Error::TxNotWritable)?;
        w.freelist.free(txid, id, overflow, fl)?;
        Ok(())
    }

    /// Frees the page a node was read from (once).
    fn free_node(&mut self, n: NodeId) -> Result<()> {
        let (pgid, overflow) = (self.nodes[n].pgid, self.nodes[n].overflow);
        if pgid != 0 {
            self.freelist_free(self.meta.txid, pgid, overflow, false)?;
            self.nodes[n].pgid = 0;
        }
        Ok(())
    }

    // ---- commit -----------------------------------------------------------------------------

    fn child_index(&self, parent: NodeId, child: NodeId) -> usize {
        let key = self.nodes[child].key.as_deref().unwrap_or(&[]);
        self.nodes[parent].search(key).0
    }

    fn remove_child(&mut self, parent: NodeId, child: NodeId) {
        self.nodes[parent].children.retain(|c| *c != child);
    }

    /// Merges an underfilled node into a sibling (bbolt's `node.rebalance`).
    fn rebalance_node(&mut self, n: NodeId) -> Result<()> {
        if !self.nodes[n].unbalanced || self.nodes[n].dead {
            return Ok(());
        }
        self.nodes[n].unbalanced = false;
        let threshold = self.page_size() / 4;
        if self.nodes[n].size() > threshold && self.nodes[n].inodes.len() > self.nodes[n].min_keys()
        {
            return Ok(());
        }
        let b = self.nodes[n].bucket;
        let Some(parent) = self.nodes[n].parent else {
            // The root: a branch with one child collapses into that child.
            if !self.nodes[n].is_leaf && self.nodes[n].inodes.len() == 1 {
                let child = self.child_at(n, 0)?;
                let inodes = std::mem::take(&mut self.nodes[child].inodes);
                let children = std::mem::take(&mut self.nodes[child].children);
                self.nodes[n].is_leaf = self.nodes[child].is_leaf;
                // Reparent the moved grandchildren.
                for inode in &inodes {
                    if let Some(&gc) = self.buckets[b].nodes.get(&inode.pgid) {
                        self.nodes[gc].parent = Some(n);
                    }
                }
                self.nodes[n].inodes = inodes;
                self.nodes[n].children = children;
                self.nodes[child].parent = None;
                self.nodes[child].dead = true;
                let cp = self.nodes[child].pgid;
                self.buckets[b].nodes.remove(&cp);
                self.free_node(child)?;
            }
            return Ok(());
        };
        // An empty node just goes.
        if self.nodes[n].inodes.is_empty() {
            let key = self.nodes[n].key.clone().unwrap_or_default();
            self.nodes[parent].del(&key);
            self.remove_child(parent, n);
            let pg = self.nodes[n].pgid;
            self.buckets[b].nodes.remove(&pg);
            self.nodes[n].dead = true;
            self.free_node(n)?;
            return self.rebalance_node(parent);
        }
        if self.nodes[parent].inodes.len() < 2 {
            return Err(Error::corrupt(
                self.nodes[parent].pgid,
                "rebalance: parent must have at least 2 children",
            ));
        }
        let idx = self.child_index(parent, n);
        if idx == 0 {
            // Merge the right sibling into this node.
            let target = self.child_at(parent, 1)?;
            let moved = std::mem::take(&mut self.nodes[target].inodes);
            for inode in &moved {
                if let Some(&gc) = self.buckets[b].nodes.get(&inode.pgid) {
                    if let Some(old) = self.nodes[gc].parent {
                        self.remove_child(old, gc);
                    }
                    self.nodes[gc].parent = Some(n);
                    self.nodes[n].children.push(gc);
                }
            }
            self.nodes[n].inodes.extend(moved);
            let tkey = self.nodes[target].key.clone().unwrap_or_default();
            self.nodes[parent].del(&tkey);
            self.remove_child(parent, target);
            let tp = self.nodes[target].pgid;
            self.buckets[b].nodes.remove(&tp);
            self.nodes[target].dead = true;
            self.free_node(target)?;
        } else {
            // Merge this node into its left sibling.
            let target = self.child_at(parent, idx - 1)?;
            let moved = std::mem::take(&mut self.nodes[n].inodes);
            for inode in &moved {
                if let Some(&gc) = self.buckets[b].nodes.get(&inode.pgid) {
                    if let Some(old) = self.nodes[gc].parent {
                        self.remove_child(old, gc);
                    }
                    self.nodes[gc].parent = Some(target);
                    self.nodes[target].children.push(gc);
                }
            }
            self.nodes[target].inodes.extend(moved);
            let key = self.nodes[n].key.clone().unwrap_or_default();
            self.nodes[parent].del(&key);
            self.remove_child(parent, n);
            let pg = self.nodes[n].pgid;
            self.buckets[b].nodes.remove(&pg);
            self.nodes[n].dead = true;
            self.free_node(n)?;
        }
        self.rebalance_node(parent)
    }

    fn rebalance_bucket(&mut self, b: BucketId) -> Result<()> {
        let mut ids: Vec<NodeId> = self.buckets[b].nodes.values().copied().collect();
        ids.sort_unstable();
        for n in ids {
            self.rebalance_node(n)?;
        }
        let mut children: Vec<BucketId> = self.buckets[b].children.values().copied().collect();
        children.sort_unstable();
        for c in children {
            self.rebalance_bucket(c)?;
        }
        Ok(())
    }

    /// Allocates `count` contiguous pages: from the freelist, else past the high-water mark.
    fn allocate(&mut self, count: usize) -> Result<Pgid> {
        let txid = self.meta.txid;
        let w = self.writer.as_mut().ok_or(Error::TxNotWritable)?;
        if let Some(id) = w.freelist.allocate(txid, count) {
            return Ok(id);
        }
        let id = self.meta.pgid;
        self.meta.pgid += count as u64;
        Ok(id)
    }

    /// Splits node `n` into page-sized nodes (bbolt's `node.split`); returns them in order,
    /// `n` first. Creates a parent when `n` was the root.
    fn split(&mut self, n: NodeId) -> Vec<NodeId> {
        let ps = self.page_size();
        let fill = self.buckets[self.nodes[n].bucket].fill_percent;
        let threshold = (ps as f64 * fill) as usize;
        let mut out = vec![n];
        let mut cur = n;
        loop {
            let node = &self.nodes[cur];
            if node.inodes.len() <= MIN_KEYS_PER_PAGE * 2 || node.size_less_than(ps) {
                break;
            }
            let at = node.split_index(threshold);
            let (b, is_leaf) = (node.bucket, node.is_leaf);
            let parent = match node.parent {
                Some(p) => p,
                None => {
                    let p = self.nodes.len();
                    let mut pn = Node::new(b, false, None);
                    pn.children.push(cur);
                    self.nodes.push(pn);
                    self.nodes[cur].parent = Some(p);
                    p
                }
            };
            let rest = self.nodes[cur].inodes.split_off(at);
            let next = self.nodes.len();
            let mut nn = Node::new(b, is_leaf, Some(parent));
            nn.inodes = rest;
            self.nodes.push(nn);
            self.nodes[parent].children.push(next);
            out.push(next);
            cur = next;
        }
        out
    }

    /// Writes node `n` and its materialized descendants to new pages (bbolt's `node.spill`).
    fn spill_node(&mut self, n: NodeId) -> Result<()> {
        if self.nodes[n].spilled {
            return Ok(());
        }
        // Children first, in key order. Spilling a child can add siblings (splits), so the
        // list is re-read on every step.
        let mut children = std::mem::take(&mut self.nodes[n].children);
        children.sort_by(|a, b| {
            let ka = self.nodes[*a].inodes.first().map(|i| i.key.as_ref());
            let kb = self.nodes[*b].inodes.first().map(|i| i.key.as_ref());
            ka.cmp(&kb)
        });
        self.nodes[n].children = children;
        let mut i = 0;
        while i < self.nodes[n].children.len() {
            let c = self.nodes[n].children[i];
            self.spill_node(c)?;
            i += 1;
        }
        self.nodes[n].children.clear();

        let ps = self.page_size();
        for node in self.split(n) {
            self.free_node(node)?;
            let size = self.nodes[node].size();
            let count = size.div_ceil(ps);
            let id = self.allocate(count)?;
            let mut buf = vec![0u8; count * ps];
            self.nodes[node].write(&mut buf, id, (count - 1) as u32);
            self.emit(id, buf)?;
            let nd = &mut self.nodes[node];
            nd.pgid = id;
            nd.spilled = true;
            if let Some(parent) = nd.parent {
                let first = nd.inodes.first().map(|i| i.key.clone()).unwrap_or_default();
                let old = nd.key.clone().unwrap_or_else(|| first.clone());
                nd.key = Some(first.clone());
                self.nodes[parent].put(&old, first, Bytes::new(), id, 0);
            }
        }
        // A split root made a new parent: spill it too.
        if let Some(p) = self.nodes[n].parent {
            if self.nodes[p].pgid == 0 && !self.nodes[p].spilled {
                self.nodes[n].children.clear();
                return self.spill_node(p);
            }
        }
        Ok(())
    }

    fn root_of(&self, mut n: NodeId) -> NodeId {
        while let Some(p) = self.nodes[n].parent {
            n = p;
        }
        n
    }

    /// Whether bucket `b` may be written inline into its parent's leaf.
    fn inlineable(&self, b: BucketId) -> bool {
        let bs = &self.buckets[b];
        let Some(rn) = bs.root_node else { return false };
        let n = &self.nodes[rn];
        if !n.is_leaf {
            return false;
        }
        let mut size = PAGE_HEADER_SIZE;
        for i in &n.inodes {
            size += LEAF_ELEMENT_SIZE + i.key.len() + i.value.len();
            if i.flags & BUCKET_LEAF_FLAG != 0 || size > self.page_size() / 4 {
                return false;
            }
        }
        true
    }

    /// Spills bucket `b` and its open sub-buckets (bbolt's `Bucket.spill`).
    fn spill_bucket(&mut self, b: BucketId) -> Result<()> {
        let mut children: Vec<(Vec<u8>, BucketId)> = self.buckets[b]
            .children
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        children.sort();
        for (name, child) in children {
            if self.buckets[child].deleted {
                continue;
            }
            let value = if self.inlineable(child) {
                self.free_bucket(child)?;
                let rn = self.buckets[child].root_node;
                let node = rn.map(|r| &self.nodes[r]);
                let size = node.map_or(PAGE_HEADER_SIZE, |n| n.size());
                let mut v = vec![0u8; BUCKET_HEADER_SIZE + size];
                let header = BucketHeader {
                    root: 0,
                    sequence: self.buckets[child].header.sequence,
                };
                header.encode(&mut v);
                match node {
                    Some(n) => n.write(&mut v[BUCKET_HEADER_SIZE..], 0, 0),
                    None => {
                        page::write_header(&mut v[BUCKET_HEADER_SIZE..], 0, page::LEAF_PAGE, 0, 0)
                    }
                }
                v
            } else {
                self.spill_bucket(child)?;
                let mut v = vec![0u8; BUCKET_HEADER_SIZE];
                self.buckets[child].header.encode(&mut v);
                v
            };
            if self.buckets[child].root_node.is_none() {
                continue;
            }
            let (n, found) = self.leaf_for(b, &name)?;
            if found.is_none_or(|f| f & BUCKET_LEAF_FLAG == 0) {
                return Err(Error::corrupt(
                    0,
                    "spill: bucket entry vanished from its parent",
                ));
            }
            self.nodes[n].put(
                &name,
                Bytes::copy_from_slice(&name),
                Bytes::from(value),
                0,
                BUCKET_LEAF_FLAG,
            );
        }
        let Some(rn) = self.buckets[b].root_node else {
            return Ok(());
        };
        self.spill_node(rn)?;
        let root = self.root_of(rn);
        self.buckets[b].root_node = Some(root);
        self.buckets[b].header.root = self.nodes[root].pgid;
        Ok(())
    }

    /// Commits the tx: after this returns Ok, the changes survive a crash.
    pub fn commit(mut self) -> Result<CommitStats> {
        if self.done {
            return Err(Error::Closed);
        }
        if !self.writable {
            return Err(Error::TxNotWritable);
        }
        match self.commit_inner() {
            Ok(stats) => {
                self.release_after_commit();
                Ok(stats)
            }
            Err(e) => {
                self.rollback_inner();
                Err(e)
            }
        }
    }

    fn commit_inner(&mut self) -> Result<CommitStats> {
        let spill_timer = Timer::start();
        let txid = self.meta.txid;
        self.rebalance_bucket(0)?;
        self.spill_bucket(0)?;
        self.meta.root = self.buckets[0].header;

        // Free the old freelist page, then write the new one (unless not persisted).
        if self.meta.freelist != PGID_NO_FREELIST {
            let overflow = self.page(self.meta.freelist)?.overflow();
            self.freelist_free(txid, self.meta.freelist, overflow, true)?;
        }
        if self.db.no_freelist_sync() {
            self.meta.freelist = PGID_NO_FREELIST;
        } else {
            let ps = self.page_size();
            let n = self.writer.as_ref().map_or(0, |w| w.freelist.count());
            let count = page::freelist_size(n) / ps + 1;
            let id = self.allocate(count)?;
            let ids = self
                .writer
                .as_ref()
                .map(|w| w.freelist.all_ids())
                .unwrap_or_default();
            let mut buf = vec![0u8; count * ps];
            page::write_freelist(&mut buf, id, (count - 1) as u32, &ids);
            self.emit(id, buf)?;
            self.meta.freelist = id;
        }
        self.flush_run()?;
        let spill_ns = spill_timer
            .elapsed_ns()
            .saturating_sub(self.written.write_ns);
        let stats = self.db.write_commit(&self.meta)?;
        Ok(CommitStats {
            spill_ns,
            pages: self.written.pages + stats.pages,
            bytes: self.written.bytes + stats.bytes,
            write_ns: self.written.write_ns + stats.write_ns,
            ..stats
        })
    }

    /// Queues a spilled page for writing. Pages go out as soon as a run of consecutive ones
    /// ends or grows large, so a commit never holds all its pages in memory at once.
    fn emit(&mut self, id: Pgid, buf: Vec<u8>) -> Result<()> {
        /// Write a run once it holds this many bytes.
        const RUN_BYTES: usize = 1 << 20;
        let ps = self.page_size() as u64;
        if let Some((start, run)) = &mut self.run {
            if *start + run.len() as u64 / ps == id {
                run.extend_from_slice(&buf);
                if run.len() >= RUN_BYTES {
                    self.flush_run()?;
                }
                return Ok(());
            }
            self.flush_run()?;
        }
        self.run = Some((id, buf));
        Ok(())
    }

    fn flush_run(&mut self) -> Result<()> {
        if let Some((start, run)) = self.run.take() {
            let t = Timer::start();
            self.db.write_pages(start, &run)?;
            self.written.write_ns += t.elapsed_ns();
            self.written.pages += run.len() as u64 / self.page_size() as u64;
            self.written.bytes += run.len() as u64;
        }
        Ok(())
    }

    /// Abandons the tx's changes.
    pub fn rollback(mut self) {
        self.rollback_inner();
    }

    fn rollback_inner(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        if let Some(mut w) = self.writer.take() {
            w.freelist.rollback(self.meta.txid);
            self.db.release_writer(w);
        } else {
            self.db.release_reader(self.meta.txid);
        }
    }

    /// Marks a tx that was never registered with the db (an internal scan) as done.
    pub(crate) fn set_unregistered(&mut self) {
        self.done = true;
    }

    /// Marks a committed tx done and hands the writer back (called by `DbInner`).
    pub(crate) fn finish_commit(&mut self) -> Option<Writer> {
        self.done = true;
        self.writer.take()
    }

    /// Every page reachable from the root, with its overflow (for `check` and the free scan).
    pub(crate) fn walk_pages(
        &self,
        mut f: impl FnMut(Pgid, &PageRef<'_>, usize) -> Result<()>,
    ) -> Result<()> {
        self.walk_bucket_pages(self.meta.root.root, None, &mut f, 0)
    }

    fn walk_bucket_pages(
        &self,
        root: Pgid,
        inline: Option<&[u8]>,
        f: &mut dyn FnMut(Pgid, &PageRef<'_>, usize) -> Result<()>,
        depth: usize,
    ) -> Result<()> {
        if depth > 64 {
            return Err(Error::corrupt(root, "buckets nested deeper than 64 levels"));
        }
        // Inline buckets have no pages and cannot hold nested buckets.
        if root == 0 {
            let _ = inline;
            return Ok(());
        }
        let mut stack = vec![(root, 0usize)];
        while let Some((id, d)) = stack.pop() {
            if d > 64 {
                return Err(Error::corrupt(
                    id,
                    "tree deeper than 64 levels (a page cycle?)",
                ));
            }
            let p = self.page(id)?;
            f(id, &p, d)?;
            p.check_node()?;
            if p.is_branch() {
                for i in (0..p.count()).rev() {
                    stack.push((p.child(i)?, d + 1));
                }
            } else {
                for i in 0..p.count() {
                    if p.elem_flags(i)? & BUCKET_LEAF_FLAG != 0 {
                        let v = p.value(i)?;
                        let h = BucketHeader::decode(v).ok_or_else(|| {
                            Error::corrupt(id, "bucket value shorter than a bucket header")
                        })?;
                        self.walk_bucket_pages(
                            h.root,
                            Some(&v[BUCKET_HEADER_SIZE..]),
                            f,
                            depth + 1,
                        )?;
                    }
                }
            }
        }
        Ok(())
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        self.rollback_inner();
    }
}
