//! The read side: a snapshot of the committed state plus the writes not yet committed.
//!
//! An [`Epoch`] lives from one commit to the next: the bolt read tx on the commit that opened
//! it, and a buffer of every write made through the batch tx since, each stamped with a write
//! sequence number. A [`ReadTx`] holds its epoch and the sequence number current when it began,
//! so it sees exactly the writes made before it, whatever commits or writes come after — and it
//! never waits for one: the buffer lock is only held to copy out the entries a read asks for.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Arc, RwLock};

use super::error::Result;
use crate::storage::btree::{BucketId, Tx};

/// One write in the buffer: its sequence number and the value (`None` = deleted).
type Version = (u64, Option<Vec<u8>>);

/// Writes since the epoch's commit, by bucket and key, oldest version first.
#[derive(Default)]
pub(crate) struct Buffer {
    pub seq: u64,
    pub buckets: HashMap<Vec<u8>, BTreeMap<Vec<u8>, Vec<Version>>>,
}

/// The upper end of a range.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Upper<'a> {
    /// Only the start key itself.
    Single,
    /// Keys below this one.
    Before(&'a [u8]),
    /// To the end of the bucket.
    End,
}

impl Upper<'_> {
    fn admits(&self, start: &[u8], k: &[u8]) -> bool {
        match self {
            Upper::Single => k == start,
            Upper::Before(e) => k < *e,
            Upper::End => true,
        }
    }
}

impl Buffer {
    /// Appends one write (called with the epoch's lock held for writing).
    pub fn record(&mut self, bucket: &[u8], key: &[u8], value: Option<Vec<u8>>) {
        let seq = self.seq;
        let b = match self.buckets.get_mut(bucket) {
            Some(b) => b,
            None => self.buckets.entry(bucket.to_vec()).or_default(),
        };
        match b.get_mut(key) {
            Some(vs) => vs.push((seq, value)),
            None => {
                b.insert(key.to_vec(), vec![(seq, value)]);
            }
        }
    }

    /// Entries of `bucket` from `start` up to `upper` visible at `seq` (the newest version
    /// written before it), at most `limit` of them.
    fn range(
        &self,
        bucket: &[u8],
        start: &[u8],
        upper: Upper<'_>,
        seq: u64,
        limit: usize,
    ) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let Some(b) = self.buckets.get(bucket) else {
            return Vec::new();
        };
        let hi = match upper {
            Upper::Single => Bound::Included(start),
            Upper::Before(e) if e <= start => return Vec::new(),
            Upper::Before(e) => Bound::Excluded(e),
            Upper::End => Bound::Unbounded,
        };
        b.range::<[u8], _>((Bound::Included(start), hi))
            .filter_map(|(k, vs)| {
                vs.iter()
                    .rev()
                    .find(|(s, _)| *s < seq)
                    .map(|(_, v)| (k.clone(), v.clone()))
            })
            .take(limit)
            .collect()
    }
}

/// The committed state between two commits, and the writes made on top of it.
pub(crate) struct Epoch {
    pub tx: Tx,
    /// Top-level buckets opened in `tx`, by name.
    pub buckets: HashMap<Vec<u8>, BucketId>,
    pub buf: RwLock<Buffer>,
}

impl Epoch {
    /// Wraps a fresh read tx, opening every top-level bucket.
    pub fn new(mut tx: Tx) -> Result<Epoch> {
        let root = tx.root();
        let mut names = Vec::new();
        tx.for_each(root, |k, v| {
            if v.is_none() {
                names.push(k.to_vec());
            }
            Ok::<(), crate::storage::btree::Error>(())
        })?;
        let mut buckets = HashMap::new();
        for name in names {
            if let Some(b) = tx.bucket(root, &name)? {
                buckets.insert(name, b);
            }
        }
        Ok(Epoch {
            tx,
            buckets,
            buf: RwLock::new(Buffer::default()),
        })
    }
}

/// A consistent read view: committed data plus the buffered writes made before it began.
#[derive(Clone)]
pub struct ReadTx {
    pub(crate) epoch: Arc<Epoch>,
    /// Buffered writes with a smaller sequence number are visible.
    pub(crate) seq: u64,
}

impl std::fmt::Debug for ReadTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadTx")
            .field("txid", &self.epoch.tx.id())
            .field("seq", &self.seq)
            .finish()
    }
}

impl ReadTx {
    /// Entries of `bucket` with keys in `[start, end)` in key order, at most `limit` (0 = no
    /// limit). An empty `end` asks for `start` alone (etcd's UnsafeRange).
    pub fn range(
        &self,
        bucket: &[u8],
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let upper = if end.is_empty() {
            Upper::Single
        } else {
            Upper::Before(end)
        };
        self.scan(bucket, start, upper, limit)
    }

    /// The value of `key` in `bucket`.
    pub fn get(&self, bucket: &[u8], key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self
            .scan(bucket, key, Upper::Single, 1)?
            .pop()
            .map(|(_, v)| v))
    }

    /// Calls `f` for every entry of `bucket` in key order.
    pub fn for_each(&self, bucket: &[u8], mut f: impl FnMut(&[u8], &[u8])) -> Result<()> {
        // In chunks, so that the buffer lock is never held for a whole bucket.
        let mut start: Vec<u8> = Vec::new();
        loop {
            let chunk = self.scan(bucket, &start, Upper::End, 1024)?;
            for (k, v) in &chunk {
                f(k, v);
            }
            match chunk.last() {
                Some((k, _)) if chunk.len() == 1024 => {
                    // The smallest key after k.
                    start = k.clone();
                    start.push(0);
                }
                _ => return Ok(()),
            }
        }
    }

    pub(crate) fn scan(
        &self,
        bucket: &[u8],
        start: &[u8],
        upper: Upper<'_>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let limit = if limit == 0 { usize::MAX } else { limit };
        // Copy out the buffered entries first; they can hide at most `limit` more committed
        // ones than asked, so take the same number.
        let buffered = {
            let buf = self.epoch.buf.read().unwrap_or_else(|e| e.into_inner());
            buf.range(bucket, start, upper, self.seq, usize::MAX)
        };
        let mut bi = buffered.into_iter().peekable();
        let tx = &self.epoch.tx;
        let mut c = self.epoch.buckets.get(bucket).map(|b| tx.cursor(*b));
        let mut cur = match &mut c {
            Some(c) => c.seek(start)?,
            None => None,
        };
        let mut out = Vec::new();
        while out.len() < limit {
            // The next committed entry in range, nested buckets skipped.
            loop {
                match cur {
                    Some((k, _)) if !upper.admits(start, k) => cur = None,
                    Some((_, None)) => cur = c.as_mut().map_or(Ok(None), |c| c.next())?,
                    _ => break,
                }
            }
            let ck = cur.map(|(k, _)| k);
            let bk = bi.peek().map(|(k, _)| k.as_slice());
            let take_buffer = match (ck, bk) {
                (None, None) => break,
                (Some(x), Some(y)) => y <= x,
                (None, Some(_)) => true,
                (Some(_), None) => false,
            };
            if take_buffer {
                // The buffer wins over (and hides) a committed entry with the same key.
                if ck.is_some() && ck == bk {
                    cur = c.as_mut().map_or(Ok(None), |c| c.next())?;
                }
                if let Some((k, Some(v))) = bi.next() {
                    out.push((k, v));
                }
            } else {
                if let Some((k, Some(v))) = cur {
                    out.push((k.to_vec(), v.to_vec()));
                }
                cur = c.as_mut().map_or(Ok(None), |c| c.next())?;
            }
        }
        Ok(out)
    }
}
