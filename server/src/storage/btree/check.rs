//! Offline inspection: `check` (consistency), `dump` (every entry, in `boltcheck dump`'s line
//! format) and `stats`.
//!
//! `check` proves every page below the high-water mark is reachable (meta, freelist, or a
//! bucket's tree) or free, exactly once; that reachable pages have a valid type, the id they
//! are found at and keys in order, inside their parent's bounds; and that both metas are
//! valid. It never stops at the first problem: every problem is one line.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::meta::{Meta, PGID_NO_FREELIST};
use super::page::{type_name, BucketHeader, PageRef, BUCKET_HEADER_SIZE, BUCKET_LEAF_FLAG};
use super::tx::Tx;
use super::{BucketId, Error, Pgid, Result};

/// The outcome of [`check`]: problems make the file broken; warnings do not (a damaged meta
/// page while the other one is valid: bbolt opens such a file with the other meta).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    Meta,
    Freelist,
    Tree,
}

struct Checker<'t> {
    tx: &'t Tx,
    hw: Pgid,
    free: HashMap<Pgid, ()>,
    used: HashMap<Pgid, Use>,
    problems: Vec<String>,
}

/// Checks the state a read tx sees, with the file's two meta pages.
pub fn check(tx: &Tx, raw_metas: [Result<Meta>; 2]) -> CheckReport {
    let mut report = CheckReport::default();
    for (i, m) in raw_metas.iter().enumerate() {
        if let Err(e) = m {
            report.warnings.push(format!("meta page {i}: {e}"));
        }
    }
    let meta = *tx.meta();
    let mut c = Checker {
        tx,
        hw: meta.pgid,
        free: HashMap::new(),
        used: HashMap::new(),
        problems: Vec::new(),
    };
    c.mark(0, 0, Use::Meta);
    c.mark(1, 0, Use::Meta);
    let mut free_known = true;
    if meta.freelist == PGID_NO_FREELIST {
        // Not stored: free pages are by definition the unreachable ones.
        free_known = false;
    } else {
        match tx.page(meta.freelist) {
            Err(e) => c.problems.push(format!("freelist: {e}")),
            Ok(p) => {
                c.mark(meta.freelist, p.overflow(), Use::Freelist);
                match p.freelist_ids() {
                    Err(e) => c.problems.push(format!("freelist: {e}")),
                    Ok(ids) => {
                        for id in ids {
                            if id < 2 || id >= c.hw {
                                c.problems.push(format!(
                                    "page {id}: freed page out of bounds (high-water mark {})",
                                    c.hw
                                ));
                            } else if c.free.insert(id, ()).is_some() {
                                c.problems.push(format!("page {id}: already freed"));
                            }
                        }
                    }
                }
            }
        }
    }
    c.tree(meta.root.root, None, None, 0);
    for id in 0..c.hw {
        let used = c.used.contains_key(&id);
        let free = c.free.contains_key(&id);
        if used && free {
            if c.used.get(&id) != Some(&Use::Meta) {
                c.problems.push(format!("page {id}: reachable freed"));
            } else {
                c.problems
                    .push(format!("page {id}: meta page is on the freelist"));
            }
        } else if !used && !free && free_known {
            c.problems.push(format!("page {id}: unreachable unfreed"));
        }
    }
    report.problems = c.problems;
    report
}

impl Checker<'_> {
    fn mark(&mut self, id: Pgid, overflow: u32, how: Use) {
        for i in 0..=u64::from(overflow) {
            let p = id + i;
            if p >= self.hw {
                self.problems
                    .push(format!("page {p}: out of bounds: {}", self.hw));
                continue;
            }
            if self.used.insert(p, how).is_some() {
                self.problems.push(format!("page {p}: multiple references"));
            }
        }
    }

    /// Checks the tree at `id` whose keys must lie in `[lo, hi)`.
    fn tree(&mut self, id: Pgid, lo: Option<&[u8]>, hi: Option<&[u8]>, depth: usize) {
        if depth > 64 {
            self.problems
                .push(format!("page {id}: tree deeper than 64 levels"));
            return;
        }
        if self.used.contains_key(&id) {
            self.problems
                .push(format!("page {id}: multiple references"));
            return;
        }
        let p = match self.tx.page(id) {
            Ok(p) => p,
            Err(e) => {
                self.problems.push(e.to_string());
                return;
            }
        };
        self.mark(id, p.overflow(), Use::Tree);
        if p.id() != id {
            self.problems
                .push(format!("page {id}: header says it is page {}", p.id()));
        }
        if let Err(e) = p.check_node() {
            self.problems.push(format!(
                "page {id}: invalid type: {} ({e})",
                type_name(p.flags())
            ));
            return;
        }
        if let Err(e) = self.node(&p, lo, hi, depth) {
            self.problems.push(e.to_string());
        }
    }

    fn node(
        &mut self,
        p: &PageRef<'_>,
        lo: Option<&[u8]>,
        hi: Option<&[u8]>,
        depth: usize,
    ) -> Result<()> {
        let id = p.at();
        let n = p.count();
        if p.is_branch() && n == 0 {
            self.problems.push(format!("page {id}: empty branch page"));
        }
        let mut prev: Option<&[u8]> = None;
        for i in 0..n {
            let k = p.key(i)?;
            if let Some(pk) = prev {
                if pk >= k {
                    self.problems
                        .push(format!("page {id}: keys out of order at element {i}"));
                }
            }
            // A branch's first key may be below the parent's separator only if equal; leaves
            // must hold keys within the range their parent gives them.
            if lo.is_some_and(|l| k < l) || hi.is_some_and(|h| k >= h) {
                self.problems.push(format!(
                    "page {id}: key at element {i} outside the range its parent gives"
                ));
            }
            prev = Some(k);
        }
        if p.is_branch() {
            for i in 0..n {
                let child = p.child(i)?;
                let clo = Some(p.key(i)?);
                let chi = if i + 1 < n { Some(p.key(i + 1)?) } else { hi };
                self.tree(child, clo, chi, depth + 1);
            }
        } else {
            for i in 0..n {
                if p.elem_flags(i)? & BUCKET_LEAF_FLAG == 0 {
                    continue;
                }
                let v = p.value(i)?;
                let Some(h) = BucketHeader::decode(v) else {
                    self.problems
                        .push(format!("page {id}: bucket value at element {i} too short"));
                    continue;
                };
                if h.root == 0 {
                    self.inline(id, i, &v[BUCKET_HEADER_SIZE..]);
                } else {
                    self.tree(h.root, None, None, depth + 1);
                }
            }
        }
        Ok(())
    }

    fn inline(&mut self, id: Pgid, i: usize, bytes: &[u8]) {
        let r = PageRef::new(bytes, 0).and_then(|p| {
            p.check_node()?;
            if !p.is_leaf() {
                return Err(Error::corrupt(id, "inline bucket is not a leaf"));
            }
            let mut prev: Option<&[u8]> = None;
            for j in 0..p.count() {
                let k = p.key(j)?;
                p.value(j)?;
                if prev.is_some_and(|pk| pk >= k) {
                    return Err(Error::corrupt(id, "inline bucket keys out of order"));
                }
                if p.elem_flags(j)? & BUCKET_LEAF_FLAG != 0 {
                    return Err(Error::corrupt(id, "inline bucket holds a nested bucket"));
                }
                prev = Some(k);
            }
            Ok(())
        });
        if let Err(e) = r {
            self.problems
                .push(format!("page {id}: inline bucket at element {i}: {e}"));
        }
    }
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

/// Every entry as `boltcheck dump` prints it: `BUCKET_HEX[/NESTED_HEX…] KEY_HEX VALUE_HEX`,
/// depth first in key order.
pub fn dump(tx: &mut Tx, out: &mut dyn FnMut(&str) -> std::io::Result<()>) -> Result<()> {
    let root = tx.root();
    let mut names = Vec::new();
    tx.for_each(root, |k, v| {
        if v.is_none() {
            names.push(k.to_vec());
        }
        Ok::<(), Error>(())
    })?;
    for name in names {
        if let Some(b) = tx.bucket(root, &name)? {
            dump_bucket(tx, b, &hex(&name), out, 0)?;
        }
    }
    Ok(())
}

fn dump_bucket(
    tx: &mut Tx,
    b: BucketId,
    prefix: &str,
    out: &mut dyn FnMut(&str) -> std::io::Result<()>,
    depth: usize,
) -> Result<()> {
    // A damaged bucket header can make a bucket contain itself.
    if depth > 64 {
        return Err(Error::corrupt(
            tx.bucket_root(b),
            "buckets nested deeper than 64 levels (a page cycle?)",
        ));
    }
    // Walk with a cursor; nested buckets are opened (needs &mut) between cursor steps, so
    // remember the last key and seek past it.
    let mut after: Option<Vec<u8>> = None;
    loop {
        let next = {
            let mut c = tx.cursor(b);
            let mut e = match &after {
                None => c.first()?,
                Some(k) => c.seek(k)?,
            };
            if let (Some(k), Some((ek, _))) = (&after, e) {
                if ek == k.as_slice() {
                    e = c.next()?;
                }
            }
            let mut nested = None;
            // Plain entries go out straight away, until a nested bucket is met.
            while let Some((k, v)) = e {
                match v {
                    Some(v) => {
                        out(&format!("{prefix} {} {}", hex(k), hex(v))).map_err(|source| {
                            Error::Io {
                                op: "write",
                                path: "<stdout>".into(),
                                source,
                            }
                        })?;
                        e = c.next()?;
                    }
                    None => {
                        nested = Some(k.to_vec());
                        break;
                    }
                }
            }
            nested
        };
        match next {
            None => return Ok(()),
            Some(name) => {
                if let Some(child) = tx.bucket(b, &name)? {
                    dump_bucket(
                        tx,
                        child,
                        &format!("{prefix}/{}", hex(&name)),
                        out,
                        depth + 1,
                    )?;
                }
                after = Some(name);
            }
        }
    }
}

/// Per-bucket key counts and page counts, for `stats`.
#[derive(Debug, Default, Clone)]
pub struct BucketStats {
    pub name: String,
    pub keys: u64,
    pub depth: u64,
    pub branch_pages: u64,
    pub leaf_pages: u64,
    pub overflow_pages: u64,
    pub inline: bool,
}

/// Page counts by type over the pages below the high-water mark, as the tree and freelist
/// account for them.
#[derive(Debug, Default, Clone)]
pub struct FileStats {
    pub meta: u64,
    pub freelist: u64,
    pub branch: u64,
    pub leaf: u64,
    pub free: u64,
    pub buckets: Vec<BucketStats>,
}

/// Walks the top-level buckets counting keys and pages.
pub fn file_stats(tx: &mut Tx) -> Result<FileStats> {
    let meta = *tx.meta();
    let mut st = FileStats {
        meta: 2,
        ..FileStats::default()
    };
    if meta.freelist != PGID_NO_FREELIST {
        let p = tx.page(meta.freelist)?;
        st.freelist = 1 + u64::from(p.overflow());
        st.free = p.freelist_ids()?.len() as u64;
    }
    let root = tx.root();
    let mut names = Vec::new();
    tx.for_each(root, |k, v| {
        if v.is_none() {
            names.push(k.to_vec());
        }
        Ok::<(), Error>(())
    })?;
    // Page types over every tree, nested buckets included.
    tx.walk_pages(|_, p, _| {
        let n = 1 + u64::from(p.overflow());
        if p.is_leaf() {
            st.leaf += n;
        } else {
            st.branch += n;
        }
        Ok(())
    })?;
    for name in names {
        let mut bs = BucketStats {
            name: String::from_utf8_lossy(&name).into_owned(),
            ..BucketStats::default()
        };
        let value_root = {
            let mut c = tx.cursor(root);
            c.seek_exact(&name)?
                .and_then(|(_, v, _)| BucketHeader::decode(v))
                .map(|h| h.root)
                .unwrap_or(0)
        };
        if value_root == 0 {
            bs.inline = true;
        } else {
            tree_stats(tx, value_root, 1, &mut bs)?;
        }
        if let Some(b) = tx.bucket(root, &name)? {
            let mut keys = 0u64;
            tx.for_each(b, |_, v| {
                if v.is_some() {
                    keys += 1;
                }
                Ok::<(), Error>(())
            })?;
            bs.keys = keys;
        }
        st.buckets.push(bs);
    }
    Ok(st)
}

fn tree_stats(tx: &Tx, id: Pgid, depth: u64, bs: &mut BucketStats) -> Result<()> {
    if depth > 64 {
        return Err(Error::corrupt(
            id,
            "tree deeper than 64 levels (a page cycle?)",
        ));
    }
    let p = tx.page(id)?;
    bs.depth = bs.depth.max(depth);
    if p.is_branch() {
        bs.branch_pages += 1 + u64::from(p.overflow());
        for i in 0..p.count() {
            tree_stats(tx, p.child(i)?, depth + 1, bs)?;
        }
    } else {
        bs.leaf_pages += 1;
        bs.overflow_pages += u64::from(p.overflow());
    }
    Ok(())
}

/// Opens `path` read-only and checks it; an unopenable file is one problem line.
pub fn check_path(path: &std::path::Path) -> CheckReport {
    let db = match super::Db::open(
        path,
        super::Options {
            read_only: true,
            ..super::Options::default()
        },
    ) {
        Ok(db) => db,
        Err(e) => {
            return CheckReport {
                problems: vec![e.to_string()],
                warnings: Vec::new(),
            }
        }
    };
    let metas = db.raw_metas();
    match db.begin_read() {
        Ok(tx) => check(&tx, metas),
        Err(e) => CheckReport {
            problems: vec![e.to_string()],
            warnings: Vec::new(),
        },
    }
}
