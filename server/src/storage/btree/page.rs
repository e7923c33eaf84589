//! bbolt's page format (file format version 2), little-endian as bbolt writes it on x86-64
//! and arm64.
//!
//! Every page starts with a 16-byte header:
//!
//! | offset | size | field    | meaning                                                         |
//! |-------:|-----:|----------|-----------------------------------------------------------------|
//! |      0 |    8 | id       | page id (`pgid`); the page sits at byte `id * page_size`         |
//! |      8 |    2 | flags    | 0x01 branch, 0x02 leaf, 0x04 meta, 0x10 freelist                |
//! |     10 |    2 | count    | elements (branch/leaf), ids (freelist; 0xFFFF: see below)       |
//! |     12 |    4 | overflow | pages that follow this one and belong to it (large nodes)       |
//!
//! **Branch page**: `count` elements of 16 bytes from offset 16, then the keys:
//!
//! | offset | size | field | meaning                                                   |
//! |-------:|-----:|-------|-----------------------------------------------------------|
//! |      0 |    4 | pos   | key offset, counted from this element's own first byte    |
//! |      4 |    4 | ksize | key length                                                |
//! |      8 |    8 | pgid  | child page holding keys >= this key                       |
//!
//! **Leaf page**: `count` elements of 16 bytes from offset 16, then key and value bytes:
//!
//! | offset | size | field | meaning                                                   |
//! |-------:|-----:|-------|-----------------------------------------------------------|
//! |      0 |    4 | flags | 0x01: the value is a nested bucket (a bucket header)      |
//! |      4 |    4 | pos   | key offset, counted from this element's own first byte    |
//! |      8 |    4 | ksize | key length                                                |
//! |     12 |    4 | vsize | value length; the value follows the key                   |
//!
//! **Bucket value** (a leaf value with flag 0x01): `root` (u64 page id, 0 = inline) and
//! `sequence` (u64); an inline bucket's value goes on with a whole leaf page (header with id 0,
//! then elements), at most `page_size / 4` bytes in all.
//!
//! **Freelist page**: `count` u64 page ids, sorted, from offset 16. When there are 0xFFFF or
//! more, `count` is 0xFFFF and the first u64 holds the real count; the ids follow it.
//!
//! **Meta page**: see `meta.rs`. No checksum covers branch, leaf or freelist pages (bbolt has
//! none): `check` finds damage there through structure (ids, flags, bounds, key order).

use super::error::{Error, Result};
use super::Pgid;

pub const PAGE_HEADER_SIZE: usize = 16;
pub const BRANCH_ELEMENT_SIZE: usize = 16;
pub const LEAF_ELEMENT_SIZE: usize = 16;
pub const BUCKET_HEADER_SIZE: usize = 16;

pub const BRANCH_PAGE: u16 = 0x01;
pub const LEAF_PAGE: u16 = 0x02;
pub const META_PAGE: u16 = 0x04;
pub const FREELIST_PAGE: u16 = 0x10;

/// Leaf element flag: the value is a nested bucket.
pub const BUCKET_LEAF_FLAG: u32 = 0x01;

/// Fewest keys a branch or leaf page keeps when a node is split.
pub const MIN_KEYS_PER_PAGE: usize = 2;
/// bbolt's limits on keys and values.
pub const MAX_KEY_SIZE: usize = 32768;
pub const MAX_VALUE_SIZE: usize = (1 << 31) - 2;
/// Largest element count a page header can state (16 bits).
pub const MAX_PAGE_COUNT: usize = 0xFFFF;

#[inline]
pub(crate) fn u16_at(b: &[u8], off: usize) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[off..off + 2]);
    u16::from_le_bytes(a)
}
#[inline]
pub(crate) fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}
#[inline]
pub(crate) fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}
#[inline]
pub(crate) fn put_u16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
#[inline]
pub(crate) fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
#[inline]
pub(crate) fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// A human name for page flags, as bbolt prints them.
pub fn type_name(flags: u16) -> String {
    match flags {
        BRANCH_PAGE => "branch".into(),
        LEAF_PAGE => "leaf".into(),
        META_PAGE => "meta".into(),
        FREELIST_PAGE => "freelist".into(),
        f => format!("unknown<{f:02x}>"),
    }
}

/// A read-only view of one page (with its overflow pages when they are in `data`).
///
/// Every accessor checks bounds against `data` and reports damage as [`Error::Corrupt`]
/// naming the page: a damaged file must never make Glass panic or read out of bounds.
#[derive(Clone, Copy)]
pub struct PageRef<'a> {
    data: &'a [u8],
    /// The id the page was read at (used in error messages; the header id may disagree).
    at: Pgid,
}

impl<'a> PageRef<'a> {
    /// Wraps page bytes read at page id `at`. `data` must hold at least the header.
    pub fn new(data: &'a [u8], at: Pgid) -> Result<Self> {
        if data.len() < PAGE_HEADER_SIZE {
            return Err(Error::corrupt(at, "page shorter than its header"));
        }
        Ok(PageRef { data, at })
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.data
    }
    pub fn at(&self) -> Pgid {
        self.at
    }
    pub fn id(&self) -> Pgid {
        u64_at(self.data, 0)
    }
    pub fn flags(&self) -> u16 {
        u16_at(self.data, 8)
    }
    pub fn count(&self) -> usize {
        u16_at(self.data, 10) as usize
    }
    pub fn overflow(&self) -> u32 {
        u32_at(self.data, 12)
    }
    pub fn is_leaf(&self) -> bool {
        self.flags() & LEAF_PAGE != 0
    }
    /// bbolt decides by bits, not by equality: the leaf bit wins.
    pub fn is_branch(&self) -> bool {
        !self.is_leaf() && self.flags() & BRANCH_PAGE != 0
    }

    /// Checks that this is a branch or leaf page whose element table fits.
    pub fn check_node(&self) -> Result<()> {
        let f = self.flags();
        if f & (BRANCH_PAGE | LEAF_PAGE) == 0 {
            return Err(Error::corrupt(
                self.at,
                format!("expected a branch or leaf page, found {}", type_name(f)),
            ));
        }
        if PAGE_HEADER_SIZE + self.count() * LEAF_ELEMENT_SIZE > self.data.len() {
            return Err(Error::corrupt(self.at, "element table runs past the page"));
        }
        Ok(())
    }

    fn slice(&self, off: usize, len: usize, what: &str) -> Result<&'a [u8]> {
        off.checked_add(len)
            .and_then(|end| self.data.get(off..end))
            .ok_or_else(|| Error::corrupt(self.at, format!("{what} runs past the page")))
    }

    fn elem(&self, i: usize) -> Result<usize> {
        let off = PAGE_HEADER_SIZE + i * LEAF_ELEMENT_SIZE;
        if i >= self.count() || off + LEAF_ELEMENT_SIZE > self.data.len() {
            return Err(Error::corrupt(self.at, format!("element {i} out of range")));
        }
        Ok(off)
    }

    /// Where the key of element `i` (branch or leaf) lies in the page bytes.
    pub fn key_range(&self, i: usize) -> Result<std::ops::Range<usize>> {
        let e = self.elem(i)?;
        let (pos, ksize) = if self.is_leaf() {
            (u32_at(self.data, e + 4), u32_at(self.data, e + 8))
        } else {
            (u32_at(self.data, e), u32_at(self.data, e + 4))
        };
        self.range(e + pos as usize, ksize as usize, "key")
    }

    /// Where the value of leaf element `i` lies in the page bytes.
    pub fn value_range(&self, i: usize) -> Result<std::ops::Range<usize>> {
        let e = self.elem(i)?;
        let pos = u32_at(self.data, e + 4) as usize;
        let ksize = u32_at(self.data, e + 8) as usize;
        let vsize = u32_at(self.data, e + 12) as usize;
        self.range(e + pos + ksize, vsize, "value")
    }

    fn range(&self, off: usize, len: usize, what: &str) -> Result<std::ops::Range<usize>> {
        match off.checked_add(len) {
            Some(end) if end <= self.data.len() => Ok(off..end),
            _ => Err(Error::corrupt(
                self.at,
                format!("{what} runs past the page"),
            )),
        }
    }

    /// Key of element `i` (branch or leaf).
    pub fn key(&self, i: usize) -> Result<&'a [u8]> {
        let r = self.key_range(i)?;
        Ok(&self.data[r])
    }

    /// Value of leaf element `i`.
    pub fn value(&self, i: usize) -> Result<&'a [u8]> {
        let r = self.value_range(i)?;
        Ok(&self.data[r])
    }

    /// Flags of leaf element `i` (0 for branch pages).
    pub fn elem_flags(&self, i: usize) -> Result<u32> {
        let e = self.elem(i)?;
        Ok(if self.is_leaf() {
            u32_at(self.data, e)
        } else {
            0
        })
    }

    /// Child page of branch element `i`.
    pub fn child(&self, i: usize) -> Result<Pgid> {
        let e = self.elem(i)?;
        Ok(u64_at(self.data, e + 8))
    }

    /// Page ids stored on a freelist page.
    pub fn freelist_ids(&self) -> Result<Vec<Pgid>> {
        if self.flags() != FREELIST_PAGE {
            return Err(Error::corrupt(
                self.at,
                format!(
                    "expected a freelist page, found {}",
                    type_name(self.flags())
                ),
            ));
        }
        let mut start = PAGE_HEADER_SIZE;
        let mut count = self.count();
        if count == MAX_PAGE_COUNT {
            count = usize::try_from(u64_at(self.slice(start, 8, "freelist count")?, 0))
                .map_err(|_| Error::corrupt(self.at, "freelist count overflows"))?;
            start += 8;
        }
        let len = count
            .checked_mul(8)
            .ok_or_else(|| Error::corrupt(self.at, "freelist count overflows"))?;
        let ids = self.slice(start, len, "freelist ids")?;
        Ok(ids.chunks_exact(8).map(|c| u64_at(c, 0)).collect())
    }
}

/// Bytes a freelist page needs for `n` ids.
pub fn freelist_size(n: usize) -> usize {
    let extra = usize::from(n >= MAX_PAGE_COUNT);
    PAGE_HEADER_SIZE + 8 * (n + extra)
}

/// Writes a freelist page for `ids` (sorted) into `buf`, which is page-sized and zeroed.
pub fn write_freelist(buf: &mut [u8], id: Pgid, overflow: u32, ids: &[Pgid]) {
    write_header(buf, id, FREELIST_PAGE, 0, overflow);
    let mut off = PAGE_HEADER_SIZE;
    if ids.len() >= MAX_PAGE_COUNT {
        put_u16(buf, 10, MAX_PAGE_COUNT as u16);
        put_u64(buf, off, ids.len() as u64);
        off += 8;
    } else {
        // ids.len() < 0xFFFF here, so the cast is exact.
        put_u16(buf, 10, ids.len() as u16);
    }
    for id in ids {
        put_u64(buf, off, *id);
        off += 8;
    }
}

/// Writes a page header.
pub fn write_header(buf: &mut [u8], id: Pgid, flags: u16, count: u16, overflow: u32) {
    put_u64(buf, 0, id);
    put_u16(buf, 8, flags);
    put_u16(buf, 10, count);
    put_u32(buf, 12, overflow);
}

/// A bucket header: the root page of a bucket (0 when inline) and its sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BucketHeader {
    pub root: Pgid,
    pub sequence: u64,
}

impl BucketHeader {
    pub fn decode(v: &[u8]) -> Option<BucketHeader> {
        if v.len() < BUCKET_HEADER_SIZE {
            return None;
        }
        Some(BucketHeader {
            root: u64_at(v, 0),
            sequence: u64_at(v, 8),
        })
    }
    pub fn encode(&self, out: &mut [u8]) {
        put_u64(out, 0, self.root);
        put_u64(out, 8, self.sequence);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freelist_page_round_trips_small_and_large() {
        for n in [0usize, 3, 0xFFFE, 0xFFFF, 70_000] {
            let ids: Vec<Pgid> = (2..2 + n as u64).collect();
            let size = freelist_size(n);
            let mut buf = vec![0u8; size.max(4096)];
            write_freelist(&mut buf, 7, 0, &ids);
            let p = PageRef::new(&buf, 7).unwrap();
            assert_eq!(p.freelist_ids().unwrap(), ids, "n={n}");
            assert_eq!(p.count() == MAX_PAGE_COUNT, n >= MAX_PAGE_COUNT);
        }
    }

    #[test]
    fn damaged_elements_are_errors_not_panics() {
        let mut buf = vec![0u8; 64];
        write_header(&mut buf, 3, LEAF_PAGE, 1, 0);
        put_u32(&mut buf, 16 + 4, 1_000_000); // pos far past the page
        put_u32(&mut buf, 16 + 8, 4);
        let p = PageRef::new(&buf, 3).unwrap();
        assert!(p.key(0).is_err());
        assert!(p.key(5).is_err());
        write_header(&mut buf, 3, LEAF_PAGE, 100, 0);
        assert!(PageRef::new(&buf, 3).unwrap().check_node().is_err());
    }
}
