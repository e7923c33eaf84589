//! In-memory nodes: a page decoded for change inside a write transaction.
//!
//! A write tx materializes the nodes on the path to every key it changes (copy on write: the
//! page on disk is never touched). On commit, underfilled nodes are merged (rebalance), then
//! every node is split to fit pages and written to newly allocated pages (spill); the pages they
//! came from are freed, to be reused once no reader can see them. Nodes live in an arena owned by
//! the tx and refer to each other by [`NodeId`].

use bytes::Bytes;

use super::page::{
    put_u32, put_u64, write_header, PageRef, BRANCH_ELEMENT_SIZE, BRANCH_PAGE, LEAF_ELEMENT_SIZE,
    LEAF_PAGE, PAGE_HEADER_SIZE,
};
use super::{BucketId, Pgid, Result};

pub(crate) type NodeId = usize;

/// One element of a node: a key with either a value (leaf) or a child page (branch).
///
/// Keys and values read from a page are slices of that page's bytes (no copy, no allocation
/// per element): the mapping they point into stays alive and unchanged for the whole write tx,
/// since a write tx never overwrites a page it can still reach.
#[derive(Debug, Clone, Default)]
pub(crate) struct Inode {
    pub flags: u32,
    pub pgid: Pgid,
    pub key: Bytes,
    pub value: Bytes,
}

#[derive(Debug)]
pub(crate) struct Node {
    pub bucket: BucketId,
    pub is_leaf: bool,
    /// Set by a delete: the node may have to be merged with a sibling on commit.
    pub unbalanced: bool,
    /// Written to a page during this commit already.
    pub spilled: bool,
    /// Removed from the tree by a merge; kept in the arena so ids stay valid.
    pub dead: bool,
    /// The first key when the node was read or last written: how its parent knows it.
    pub key: Option<Bytes>,
    /// The page this node was read from (0 = new, or its page was already freed).
    pub pgid: Pgid,
    /// Overflow count of that page, to free all of it.
    pub overflow: u32,
    pub parent: Option<NodeId>,
    /// Materialized children only (spill needs them; the rest stay as pages).
    pub children: Vec<NodeId>,
    pub inodes: Vec<Inode>,
}

impl Node {
    pub fn new(bucket: BucketId, is_leaf: bool, parent: Option<NodeId>) -> Node {
        Node {
            bucket,
            is_leaf,
            unbalanced: false,
            spilled: false,
            dead: false,
            key: None,
            pgid: 0,
            overflow: 0,
            parent,
            children: Vec::new(),
            inodes: Vec::new(),
        }
    }

    /// Decodes a branch or leaf page; `backing` holds the same bytes as `p`.
    pub fn read(
        bucket: BucketId,
        parent: Option<NodeId>,
        p: &PageRef<'_>,
        backing: &Bytes,
    ) -> Result<Node> {
        p.check_node()?;
        let mut n = Node::new(bucket, p.is_leaf(), parent);
        n.pgid = p.id();
        n.overflow = p.overflow();
        let count = p.count();
        n.inodes.reserve_exact(count);
        for i in 0..count {
            let key = backing.slice(p.key_range(i)?);
            n.inodes.push(if n.is_leaf {
                Inode {
                    flags: p.elem_flags(i)?,
                    pgid: 0,
                    key,
                    value: backing.slice(p.value_range(i)?),
                }
            } else {
                Inode {
                    flags: 0,
                    pgid: p.child(i)?,
                    key,
                    value: Bytes::new(),
                }
            });
        }
        n.key = n.inodes.first().map(|i| i.key.clone());
        Ok(n)
    }

    pub fn element_size(&self) -> usize {
        if self.is_leaf {
            LEAF_ELEMENT_SIZE
        } else {
            BRANCH_ELEMENT_SIZE
        }
    }

    /// Bytes this node takes on a page.
    pub fn size(&self) -> usize {
        let el = self.element_size();
        PAGE_HEADER_SIZE
            + self
                .inodes
                .iter()
                .map(|i| el + i.key.len() + i.value.len())
                .sum::<usize>()
    }

    /// Whether the node is smaller than `v` bytes (stops counting early).
    pub fn size_less_than(&self, v: usize) -> bool {
        let el = self.element_size();
        let mut sz = PAGE_HEADER_SIZE;
        for i in &self.inodes {
            sz += el + i.key.len() + i.value.len();
            if sz >= v {
                return false;
            }
        }
        true
    }

    pub fn min_keys(&self) -> usize {
        if self.is_leaf {
            1
        } else {
            2
        }
    }

    /// Index of the first inode whose key is >= `key`, and whether it is equal.
    pub fn search(&self, key: &[u8]) -> (usize, bool) {
        match self.inodes.binary_search_by(|i| i.key.as_ref().cmp(key)) {
            Ok(i) => (i, true),
            Err(i) => (i, false),
        }
    }

    /// Inserts or replaces the inode known by `old_key`.
    pub fn put(&mut self, old_key: &[u8], new_key: Bytes, value: Bytes, pgid: Pgid, flags: u32) {
        let (idx, exact) = self.search(old_key);
        if !exact {
            self.inodes.insert(idx, Inode::default());
        }
        let inode = &mut self.inodes[idx];
        inode.flags = flags;
        inode.key = new_key;
        inode.value = value;
        inode.pgid = pgid;
    }

    /// Removes the inode with `key`, if there is one.
    pub fn del(&mut self, key: &[u8]) {
        let (idx, exact) = self.search(key);
        if exact {
            self.inodes.remove(idx);
            self.unbalanced = true;
        }
    }

    /// Writes the node into `buf` (zeroed, whole pages) as page `id`, bbolt's layout:
    /// element table first, then each element's key and value in order.
    pub fn write(&self, buf: &mut [u8], id: Pgid, overflow: u32) {
        let flags = if self.is_leaf { LEAF_PAGE } else { BRANCH_PAGE };
        // Nodes are split so that a page holds far fewer than 0xFFFF elements (each element
        // takes at least 16 bytes and a node is split near the page size); a single huge
        // page could in theory exceed it, which bbolt also treats as a bug.
        debug_assert!(self.inodes.len() < 0xFFFF);
        write_header(buf, id, flags, self.inodes.len() as u16, overflow);
        let el = self.element_size();
        let mut data = PAGE_HEADER_SIZE + el * self.inodes.len();
        for (i, inode) in self.inodes.iter().enumerate() {
            let e = PAGE_HEADER_SIZE + i * el;
            let pos = (data - e) as u32;
            if self.is_leaf {
                put_u32(buf, e, inode.flags);
                put_u32(buf, e + 4, pos);
                put_u32(buf, e + 8, inode.key.len() as u32);
                put_u32(buf, e + 12, inode.value.len() as u32);
            } else {
                put_u32(buf, e, pos);
                put_u32(buf, e + 4, inode.key.len() as u32);
                put_u64(buf, e + 8, inode.pgid);
            }
            buf[data..data + inode.key.len()].copy_from_slice(&inode.key);
            data += inode.key.len();
            buf[data..data + inode.value.len()].copy_from_slice(&inode.value);
            data += inode.value.len();
        }
    }

    /// Where to split so the first part fills about `threshold` bytes (bbolt's splitIndex).
    pub fn split_index(&self, threshold: usize) -> usize {
        let el = self.element_size();
        let mut sz = PAGE_HEADER_SIZE;
        let mut index = 0;
        let min = super::page::MIN_KEYS_PER_PAGE;
        for i in 0..self.inodes.len().saturating_sub(min) {
            index = i;
            let inode = &self.inodes[i];
            let elsize = el + inode.key.len() + inode.value.len();
            if i >= min && sz + elsize > threshold {
                break;
            }
            sz += elsize;
        }
        index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_round_trips() {
        let mut n = Node::new(0, true, None);
        let b = |s: &'static [u8]| Bytes::from_static(s);
        n.put(b"b", b(b"b"), b(b"2"), 0, 0);
        n.put(b"a", b(b"a"), b(b"1"), 0, 0);
        n.put(b"c", b(b"c"), Bytes::new(), 0, 1);
        let mut buf = vec![0u8; 4096];
        n.write(&mut buf, 9, 0);
        let p = PageRef::new(&buf, 9).unwrap();
        let m = Node::read(0, None, &p, &Bytes::from(buf.clone())).unwrap();
        let keys: Vec<_> = m.inodes.iter().map(|i| i.key.to_vec()).collect();
        assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(m.inodes[1].value.as_ref(), b"2");
        assert_eq!(m.inodes[2].flags, 1);
        assert_eq!(m.pgid, 9);
    }
}
