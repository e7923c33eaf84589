//! The write side: one batch tx shared by every writer, committed by size or by time.
//!
//! A [`BatchTx`] is the batch tx lock (etcd's `batchTx.Lock()`): while it is held, writes go
//! into the open bolt write tx and into a small write buffer. Dropping it (etcd's `Unlock`)
//! publishes the buffered writes to readers and commits once `batch_limit` writes are pending.

use std::sync::MutexGuard;

use telemetry::{names, Timer};

use super::backend::{BackendInner, BatchState};
use super::error::{BackendError, Result};
use crate::storage::btree::BucketId;

/// Fill percent for buckets written in key order (etcd's UnsafeSeqPut): pages are split nearly
/// full since nothing will be inserted between their keys.
const SEQ_FILL_PERCENT: f64 = 0.9;

/// The batch tx lock and what can be done while holding it.
pub struct BatchTx<'a> {
    pub(crate) state: MutexGuard<'a, BatchState>,
    pub(crate) inner: &'a BackendInner,
}

impl std::fmt::Debug for BatchTx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchTx")
            .field("pending", &self.state.pending)
            .finish()
    }
}

impl BatchTx<'_> {
    fn bucket(&mut self, name: &[u8]) -> Result<BucketId> {
        let tx = self.state.tx.as_mut().ok_or(BackendError::Closed)?;
        let root = tx.root();
        tx.bucket(root, name)?
            .ok_or_else(|| BackendError::NoBucket(String::from_utf8_lossy(name).into_owned()))
    }

    /// Creates a top-level bucket if it does not exist yet.
    pub fn create_bucket(&mut self, name: &[u8]) -> Result<()> {
        let tx = self.state.tx.as_mut().ok_or(BackendError::Closed)?;
        let root = tx.root();
        tx.create_bucket_if_not_exists(root, name)?;
        // Readers see writes to a bucket that is not committed yet through the buffer alone.
        self.state.pending += 1;
        Ok(())
    }

    /// Deletes a top-level bucket and everything in it.
    pub fn delete_bucket(&mut self, name: &[u8]) -> Result<()> {
        let tx = self.state.tx.as_mut().ok_or(BackendError::Closed)?;
        let root = tx.root();
        tx.delete_bucket(root, name)?;
        self.state.pending += 1;
        // Readers must stop seeing it at once: commit before the lock is released.
        self.state.force_commit = true;
        Ok(())
    }

    /// Sets `key` in `bucket`.
    pub fn put(&mut self, bucket: &[u8], key: &[u8], value: &[u8]) -> Result<()> {
        self.put_inner(bucket, key, value, false)
    }

    /// Sets `key` in `bucket`, where keys are written in increasing order (etcd's key
    /// bucket): pages are split 90 % full instead of half.
    pub fn seq_put(&mut self, bucket: &[u8], key: &[u8], value: &[u8]) -> Result<()> {
        self.put_inner(bucket, key, value, true)
    }

    fn put_inner(&mut self, bucket: &[u8], key: &[u8], value: &[u8], seq: bool) -> Result<()> {
        let b = self.bucket(bucket)?;
        let tx = self.state.tx.as_mut().ok_or(BackendError::Closed)?;
        if seq {
            tx.set_fill_percent(b, SEQ_FILL_PERCENT);
        }
        tx.put(b, key, value)?;
        self.state
            .wbuf
            .push((bucket.to_vec(), key.to_vec(), Some(value.to_vec())));
        self.state.pending += 1;
        Ok(())
    }

    /// Removes `key` from `bucket`.
    pub fn delete(&mut self, bucket: &[u8], key: &[u8]) -> Result<()> {
        let b = self.bucket(bucket)?;
        let tx = self.state.tx.as_mut().ok_or(BackendError::Closed)?;
        tx.delete(b, key)?;
        self.state.wbuf.push((bucket.to_vec(), key.to_vec(), None));
        self.state.pending += 1;
        Ok(())
    }

    /// Entries of `bucket` in `[start, end)` as this tx sees them (its own writes included),
    /// at most `limit` (0 = all); an empty `end` asks for `start` alone.
    pub fn range(
        &mut self,
        bucket: &[u8],
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let b = self.bucket(bucket)?;
        let tx = self.state.tx.as_ref().ok_or(BackendError::Closed)?;
        let limit = if limit == 0 { usize::MAX } else { limit };
        let mut out = Vec::new();
        let mut c = tx.cursor(b);
        let mut e = c.seek(start)?;
        while let Some((k, v)) = e {
            let in_range = if end.is_empty() { k == start } else { k < end };
            if !in_range || out.len() >= limit {
                break;
            }
            if let Some(v) = v {
                out.push((k.to_vec(), v.to_vec()));
            }
            e = c.next()?;
        }
        Ok(out)
    }

    /// Writes pending in this batch.
    pub fn pending(&self) -> usize {
        self.state.pending
    }

    /// Commits now, whatever is pending.
    pub fn commit(&mut self) -> Result<()> {
        self.publish();
        self.inner.commit_locked(&mut self.state, false)
    }

    /// Makes the writes done under this lock visible to readers.
    fn publish(&mut self) {
        if self.state.wbuf.is_empty() {
            return;
        }
        let t = Timer::start();
        let writes = self.state.wbuf.len();
        let _span = tracing::debug_span!(names::BACKEND_WRITE_BUFFER, writes).entered();
        self.publish_inner();
        let ns = t.elapsed_ns();
        self.inner.config.metrics.backend_write_buffer.record(ns);
        telemetry::request::record_with(
            names::BACKEND_WRITE_BUFFER,
            &t,
            ns,
            &[("backend.writes", writes as i64)],
        );
    }

    fn publish_inner(&mut self) {
        let epoch = self.inner.epoch();
        let mut buf = epoch.buf.write().unwrap_or_else(|e| e.into_inner());
        for (bucket, key, value) in self.state.wbuf.drain(..) {
            buf.record(&bucket, &key, value);
        }
        buf.seq += 1;
    }
}

impl Drop for BatchTx<'_> {
    fn drop(&mut self) {
        self.publish();
        self.inner
            .metrics()
            .backend_pending_writes
            .set(i64::try_from(self.state.pending).unwrap_or(i64::MAX));
        let limit = self.inner.batch_limit();
        if self.state.force_commit || self.state.pending >= limit {
            if let Err(e) = self.inner.commit_locked(&mut self.state, false) {
                tracing::error!(error = %e, "backend: batch commit failed");
            }
        }
    }
}
