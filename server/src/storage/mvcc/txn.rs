//! Read and write txns (etcd's `kvstore_txn.go`).
//!
//! A [`TxnRead`] is a revision and a backend snapshot taken together: every range in it reads
//! at that revision (or an older one asked for, down to the compaction) and never waits for
//! writers; a compaction waits for it instead.
//!
//! A [`TxnWrite`] holds the backend's batch tx from begin to end — one etcd request is one
//! batch tx critical section. Every change it makes gets the revision `begin + 1` and its own
//! sub revision (0, 1, 2, … in order); its ranges see its own changes. At the end the store's
//! revision becomes `begin + 1` if anything changed, and stays otherwise.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use telemetry::{names, Timer};
use tracing::field::Empty;
use tracing::Span;

use super::kv_store::{snapshot_value, Revs, Shared};
use super::schema::{self, CONSISTENT_INDEX_KEY, KEY_BUCKET, META_BUCKET, TERM_KEY};
use super::{BucketKey, MvccError, Revision};
use crate::pb::mvccpb::KeyValue;
use crate::storage::backend::{BatchTx, ReadTx};

/// What a range asks besides its keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RangeOptions {
    /// At most this many key-values; 0 or less: all.
    pub limit: i64,
    /// The revision to read at; 0 or less: the txn's.
    pub rev: i64,
    /// Count the keys only, return no key-values.
    pub count_only: bool,
}

/// A range's answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RangeResult {
    /// The key-values in key order (at most `limit`; none when counting only). Sorting by
    /// anything else, and the min/max revision filters, are the server's (etcd's apply).
    pub kvs: Vec<KeyValue>,
    /// The txn's revision (not the one read at): the response header's revision.
    pub rev: i64,
    /// Keys in the range at the revision read, whatever the limit.
    pub count: i64,
}

/// A read-only view of the store at one revision. While it is open no compaction moves the
/// compaction revision (etcd's `mu`, held for reading): end it soon, and never call
/// [`KvStore::compact`](super::KvStore::compact) or open a second one on a thread that holds
/// one — a compaction waiting for this txn holds up new read txns.
pub struct TxnRead {
    shared: Arc<Shared>,
    pub(super) tx: ReadTx,
    pub(super) revs: Revs,
}

impl std::fmt::Debug for TxnRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxnRead")
            .field("rev", &self.revs.current)
            .field("first_rev", &self.revs.compacted)
            .finish()
    }
}

impl TxnRead {
    /// Wraps a snapshot taken after `shared.gate.enter()`; the txn leaves the gate on drop.
    pub(super) fn new(shared: Arc<Shared>, tx: ReadTx, revs: Revs) -> Self {
        TxnRead { shared, tx, revs }
    }

    /// The store's revision when this txn began.
    pub fn rev(&self) -> i64 {
        self.revs.current
    }

    /// The compaction revision when this txn began (-1 before the first compaction).
    pub fn first_rev(&self) -> i64 {
        self.revs.compacted
    }

    /// The keys in `[key, end)` at `opts.rev` (this txn's revision when 0). `end` empty: `key`
    /// alone; `end == b"\0"`: every key from `key` on.
    pub fn range(
        &self,
        key: &[u8],
        end: &[u8],
        opts: RangeOptions,
    ) -> Result<RangeResult, MvccError> {
        let span = tracing::Span::current();
        range_keys(
            &self.shared,
            "read",
            &span,
            self.revs.current,
            key,
            end,
            opts,
            |rev| snapshot_value(&self.tx, rev),
        )
    }

    /// Ends the txn (dropping it does the same).
    pub fn end(self) {}
}

impl Drop for TxnRead {
    fn drop(&mut self) {
        self.shared.gate.leave();
    }
}

/// The range shared by both txns: the index says which revisions, `fetch` reads their values.
#[allow(clippy::too_many_arguments)]
fn range_keys(
    sh: &Shared,
    txn: &'static str,
    parent: &Span,
    cur_rev: i64,
    key: &[u8],
    end: &[u8],
    opts: RangeOptions,
    mut fetch: impl FnMut(Revision) -> Result<Option<Vec<u8>>, MvccError>,
) -> Result<RangeResult, MvccError> {
    let timer = Timer::start();
    let span = tracing::debug_span!(
        parent: parent,
        names::MVCC_RANGE,
        txn,
        rev = opts.rev,
        limit = opts.limit,
        count_only = opts.count_only,
        key_bytes = key.len(),
        keys = Empty,
        count = Empty
    );
    let _entered = span.enter();
    let result = (|| {
        if opts.rev > cur_rev {
            return Err(MvccError::FutureRev);
        }
        let rev = if opts.rev <= 0 { cur_rev } else { opts.rev };
        // The compaction revision cannot move while a txn is open (see `kv_store`).
        if rev < sh.revs().compacted {
            return Err(MvccError::Compacted);
        }
        if opts.count_only {
            let count = sh.index.count_revisions(key, end, rev);
            return Ok(RangeResult {
                kvs: Vec::new(),
                rev: cur_rev,
                count: count as i64,
            });
        }
        let limit = if opts.limit > 0 {
            usize::try_from(opts.limit).unwrap_or(usize::MAX)
        } else {
            0
        };
        let (revs, count) = sh.index.revisions(key, end, rev, limit);
        let mut kvs = Vec::with_capacity(revs.len());
        for r in revs {
            let v = fetch(r)?.ok_or(MvccError::MissingRevision(r))?;
            kvs.push(schema::decode_kv(r, &v)?);
        }
        Ok(RangeResult {
            kvs,
            rev: cur_rev,
            count: count as i64,
        })
    })();
    if let Ok(r) = &result {
        span.record("keys", r.kvs.len());
        span.record("count", r.count);
    }
    let ns = timer.elapsed_ns();
    sh.metrics.mvcc_range.record(ns);
    telemetry::request::record(names::MVCC_RANGE, &timer, ns);
    result
}

/// A write txn; see the module documentation. Dropping it ends it.
pub struct TxnWrite<'a> {
    shared: &'a Shared,
    /// The batch tx lock; `None` once ended.
    tx: Option<BatchTx<'a>>,
    /// The store's revision when the txn began; changes get `begin_rev + 1`.
    begin_rev: i64,
    /// Every change so far, in order: a put's full key-value, a delete's key alone (etcd's
    /// `changes`, what the watchable store sends to watchers).
    changes: Vec<KeyValue>,
    /// Set by [`set_consistent_index`](Self::set_consistent_index); cached at the end.
    consistent_index: Option<(u64, u64)>,
    puts: u64,
    deletes: u64,
    ranges: u64,
    /// Started once the batch tx is held.
    held: Timer,
    /// `mvcc.txn`: the parent of this txn's put, delete and range spans.
    span: Span,
}

impl std::fmt::Debug for TxnWrite<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxnWrite")
            .field("begin_rev", &self.begin_rev)
            .field("changes", &self.changes.len())
            .finish()
    }
}

impl<'a> TxnWrite<'a> {
    pub(super) fn begin(shared: &'a Shared) -> Self {
        let span = tracing::debug_span!(
            names::MVCC_TXN,
            puts = Empty,
            deletes = Empty,
            ranges = Empty,
            changes = Empty,
            revision = Empty
        );
        // The wait for the batch tx (`backend.tx_lock_wait`) shows inside the txn.
        let tx = span.in_scope(|| shared.backend.batch_tx());
        // Only write txns move the current revision, and they hold the batch tx to do it.
        let begin_rev = shared.revs().current;
        TxnWrite {
            shared,
            tx: Some(tx),
            begin_rev,
            changes: Vec::new(),
            consistent_index: None,
            puts: 0,
            deletes: 0,
            ranges: 0,
            held: Timer::start(),
            span,
        }
    }

    /// The store's revision when this txn began.
    pub fn rev(&self) -> i64 {
        self.begin_rev
    }

    /// The compaction revision now (-1 before the first compaction); a compaction cannot move
    /// it while this txn holds the batch tx.
    pub fn first_rev(&self) -> i64 {
        self.shared.revs().compacted
    }

    /// The changes so far (see the field).
    pub fn changes(&self) -> &[KeyValue] {
        &self.changes
    }

    /// The revision this txn reads at: its own once it changed something.
    fn read_rev(&self) -> i64 {
        if self.changes.is_empty() {
            self.begin_rev
        } else {
            self.begin_rev + 1
        }
    }

    fn tx(&mut self) -> Result<&mut BatchTx<'a>, MvccError> {
        // `tx` is only taken by `finish`, which consumes or drops the txn.
        self.tx.as_mut().ok_or(MvccError::Closed)
    }

    /// Ranges as [`TxnRead::range`] does, at this txn's revision (seeing its own changes).
    pub fn range(
        &mut self,
        key: &[u8],
        end: &[u8],
        opts: RangeOptions,
    ) -> Result<RangeResult, MvccError> {
        self.ranges += 1;
        let cur = self.read_rev();
        let sh = self.shared;
        let span = self.span.clone();
        let tx = self.tx()?;
        range_keys(sh, "write", &span, cur, key, end, opts, |rev| {
            Ok(tx
                .range(KEY_BUCKET, &rev.to_bytes(), &[], 1)?
                .pop()
                .map(|(_, v)| v))
        })
    }

    /// Puts `key` = `value` with `lease` (0: none); returns the txn's revision. The lessor
    /// attaches the lease (etcd's mvcc does it here; Glass's server does it from
    /// [`changes`](Self::changes)).
    pub fn put(&mut self, key: &[u8], value: &[u8], lease: i64) -> Result<i64, MvccError> {
        let timer = Timer::start();
        let rev = self.begin_rev + 1;
        let sub = self.changes.len() as i64;
        let span = tracing::debug_span!(
            parent: &self.span,
            names::MVCC_PUT,
            key_bytes = key.len(),
            value_bytes = value.len(),
            revision = rev,
            sub,
            version = Empty
        );
        let _entered = span.enter();
        self.puts += 1;
        let result = self.put_inner(key, value, lease, Revision::new(rev, sub));
        if let Ok(version) = result {
            span.record("version", version);
        }
        let ns = timer.elapsed_ns();
        self.shared.metrics.mvcc_put.record(ns);
        telemetry::request::record_with(
            names::MVCC_PUT,
            &timer,
            ns,
            &[
                ("etcd.key_bytes", key.len() as i64),
                ("etcd.value_bytes", value.len() as i64),
            ],
        );
        result.map(|_| rev)
    }

    /// Returns the key's version after the put.
    fn put_inner(
        &mut self,
        key: &[u8],
        value: &[u8],
        lease: i64,
        idx: Revision,
    ) -> Result<i64, MvccError> {
        // The key's creation and version as of this txn (its own earlier changes included).
        let (create_revision, version) = match self.shared.index.get(key, idx.main) {
            Ok((_, created, ver)) => (created.main, ver + 1),
            Err(MvccError::RevisionNotFound) => (idx.main, 1),
            Err(e) => return Err(e),
        };
        let kv = KeyValue {
            key: key.to_vec(),
            create_revision,
            mod_revision: idx.main,
            version,
            value: value.to_vec(),
            lease,
        };
        self.tx()?
            .seq_put(KEY_BUCKET, &idx.to_bytes(), &schema::encode_kv(&kv))?;
        self.shared.index.put(key, idx)?;
        if version == 1 {
            self.shared.live_keys.fetch_add(1, Ordering::Relaxed);
        }
        self.changes.push(kv);
        Ok(version)
    }

    /// Deletes the keys in `[key, end)` (same `end` conventions as a range) that exist at this
    /// txn's revision; returns (keys deleted, revision) — the revision is the txn's new one if
    /// the txn changed anything so far, its begin revision otherwise.
    pub fn delete_range(&mut self, key: &[u8], end: &[u8]) -> Result<(i64, i64), MvccError> {
        let timer = Timer::start();
        let span = tracing::debug_span!(
            parent: &self.span,
            names::MVCC_DELETE,
            key_bytes = key.len(),
            deleted = Empty,
            revision = Empty
        );
        let _entered = span.enter();
        self.deletes += 1;
        let result = self.delete_range_inner(key, end);
        if let Ok((n, rev)) = result {
            span.record("deleted", n);
            span.record("revision", rev);
        }
        let ns = timer.elapsed_ns();
        self.shared.metrics.mvcc_delete.record(ns);
        telemetry::request::record(names::MVCC_DELETE, &timer, ns);
        result
    }

    fn delete_range_inner(&mut self, key: &[u8], end: &[u8]) -> Result<(i64, i64), MvccError> {
        let (keys, _) = self.shared.index.range(key, end, self.read_rev());
        for k in &keys {
            self.tombstone(k)?;
        }
        let rev = if self.changes.is_empty() {
            self.begin_rev
        } else {
            self.begin_rev + 1
        };
        Ok((keys.len() as i64, rev))
    }

    fn tombstone(&mut self, key: &[u8]) -> Result<(), MvccError> {
        let idx = Revision::new(self.begin_rev + 1, self.changes.len() as i64);
        // etcd stores a tombstone's KeyValue with the key alone.
        let kv = KeyValue {
            key: key.to_vec(),
            ..KeyValue::default()
        };
        self.tx()?.seq_put(
            KEY_BUCKET,
            &BucketKey::new(idx, true).to_bytes(),
            &schema::encode_kv(&kv),
        )?;
        self.shared.index.tombstone(key, idx)?;
        self.shared.live_keys.fetch_sub(1, Ordering::Relaxed);
        self.changes.push(kv);
        Ok(())
    }

    /// Records that this txn applies raft entry `index` of `term`: written to `meta` in this
    /// batch tx, so it reaches the file in the same commit as the txn's changes — after a
    /// crash, either both are there (the entry is not applied again) or neither. Index 0 is
    /// never written, nor term 0 (etcd's rules).
    pub fn set_consistent_index(&mut self, index: u64, term: u64) -> Result<(), MvccError> {
        if index == 0 {
            return Ok(());
        }
        let tx = self.tx()?;
        tx.put(
            META_BUCKET,
            CONSISTENT_INDEX_KEY,
            &schema::encode_u64(index),
        )?;
        if term > 0 {
            tx.put(META_BUCKET, TERM_KEY, &schema::encode_u64(term))?;
        }
        self.consistent_index = Some((index, term));
        Ok(())
    }

    /// Ends the txn: the store's revision moves to this txn's if it changed anything, its
    /// writes become visible to readers and the batch tx is released. Returns the store's
    /// revision after it.
    pub fn end(mut self) -> i64 {
        self.finish()
    }

    fn finish(&mut self) -> i64 {
        let Some(tx) = self.tx.take() else {
            return self.begin_rev;
        };
        let sh = self.shared;
        let revs = if self.changes.is_empty() {
            self.span.in_scope(|| drop(tx));
            sh.revs()
        } else {
            // Readers that see the new revision must see its writes: publish them (drop the
            // batch tx) before letting readers read the revision.
            let mut revs = sh.revs_mut();
            revs.current = self.begin_rev + 1;
            let now = *revs;
            self.span.in_scope(|| drop(tx));
            drop(revs);
            now
        };
        if let Some((index, term)) = self.consistent_index {
            sh.consistent_index.store(index, Ordering::Release);
            if term > 0 {
                sh.term.store(term, Ordering::Release);
            }
        }
        sh.publish_gauges(revs);
        let span = &self.span;
        span.record("puts", self.puts);
        span.record("deletes", self.deletes);
        span.record("ranges", self.ranges);
        span.record("changes", self.changes.len());
        span.record("revision", revs.current);
        let ns = self.held.elapsed_ns();
        sh.metrics.mvcc_txn.record(ns);
        telemetry::request::record_with(
            names::MVCC_TXN,
            &self.held,
            ns,
            &[("etcd.changes", self.changes.len() as i64)],
        );
        revs.current
    }
}

impl Drop for TxnWrite<'_> {
    fn drop(&mut self) {
        self.finish();
    }
}
