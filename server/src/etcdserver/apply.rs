//! The applier (etcd's `apply.go`, `applierV3backend`): committed raft entries → the MVCC
//! store, each in one write txn that also records the entry's index (the consistent index), so
//! that data and index reach the backend together and re-applying after a crash is skipped.
//!
//! The same request logic serves reads that do not go through raft (serializable and
//! linearizable ranges, read-only txns): [`range`] and [`txn`] work over any [`View`].
//!
//! etcd's semantics kept on purpose:
//! - a range sorted by anything but the key, or filtered by min/max revisions, reads every key
//!   in the range, sorts and filters, then applies the limit (`more` says keys were left out);
//!   `count` is the number of keys in the range before filtering;
//! - a txn's compares (nested ones included) are all evaluated against the state before any
//!   of its operations; every range and put in the chosen branches is checked (revision
//!   compacted or in the future, lease, `ignore_*` on a missing key) before anything is
//!   written, so a failing txn changes nothing;
//! - a put over the backend quota is applied and answered with `NoSpace` (etcd's
//!   `quotaApplierV3`: refusing it would make members' states depend on their file sizes);
//!   while the NOSPACE alarm is raised, puts and txns with puts are refused (etcd's
//!   `applierV3Capped`).

use std::cmp::Ordering as CmpOrdering;
use std::sync::Arc;

use prost::Message;
use raft::eraftpb::{Entry, EntryType};
use telemetry::request::{self, RequestTrace};
use telemetry::{names, Metrics, Timer};
use tracing::{debug_span, error, warn};

use super::alarm::Alarms;
use super::error::ServerError;
use super::quota::Quota;
use super::raft_node::{ApplyRx, RaftNode};
use super::wait::Wait;
use crate::pb::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::pb::etcdserverpb::range_request::{SortOrder, SortTarget};
use crate::pb::etcdserverpb::request_op::Request as Op;
use crate::pb::etcdserverpb::response_op::Response as OpResp;
use crate::pb::etcdserverpb::{
    alarm_request::AlarmAction, AlarmRequest, AlarmResponse, AlarmType, CompactionRequest,
    CompactionResponse, Compare, DeleteRangeRequest, DeleteRangeResponse, InternalRaftRequest,
    PutRequest, PutResponse, RangeRequest, RangeResponse, ResponseHeader, ResponseOp, TxnRequest,
    TxnResponse,
};
use crate::pb::mvccpb::KeyValue;
use crate::storage::mvcc::{
    CompactionHandle, KvStore, MvccError, RangeOptions, RangeResult, TxnRead, TxnWrite,
};

/// etcd's `warnApplyDuration`: an apply slower than this is logged and counted.
const SLOW_APPLY_NS: u64 = 100_000_000;

/// What applying one request produced, handed to the waiting caller.
#[derive(Debug)]
pub struct ApplyResult {
    pub resp: Result<Applied, ServerError>,
    /// A compaction's physical part, for callers that wait for it (`physical: true`).
    pub physical: Option<CompactionHandle>,
}

/// A request's response, header revision set (the API layer fills the rest of the header).
#[derive(Debug, Clone)]
pub enum Applied {
    Range(RangeResponse),
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compaction(CompactionResponse),
    Alarm(AlarmResponse),
}

/// A read view requests run over: a read txn, or the write txn applying them.
pub trait View {
    fn range(
        &mut self,
        key: &[u8],
        end: &[u8],
        opts: RangeOptions,
    ) -> Result<RangeResult, MvccError>;
    /// The store's revision when the txn began.
    fn rev(&self) -> i64;
    /// The compaction revision (-1 before the first compaction).
    fn first_rev(&self) -> i64;
    /// Whether the txn changed something (its revision is then `rev() + 1`).
    fn changed(&self) -> bool;
    fn put(&mut self, key: &[u8], value: &[u8], lease: i64) -> Result<i64, ServerError>;
    fn delete_range(&mut self, key: &[u8], end: &[u8]) -> Result<(i64, i64), ServerError>;
}

impl View for TxnRead {
    fn range(
        &mut self,
        key: &[u8],
        end: &[u8],
        opts: RangeOptions,
    ) -> Result<RangeResult, MvccError> {
        TxnRead::range(self, key, end, opts)
    }
    fn rev(&self) -> i64 {
        TxnRead::rev(self)
    }
    fn first_rev(&self) -> i64 {
        TxnRead::first_rev(self)
    }
    fn changed(&self) -> bool {
        false
    }
    fn put(&mut self, _: &[u8], _: &[u8], _: i64) -> Result<i64, ServerError> {
        Err(ServerError::Unimplemented("a write in a read-only txn"))
    }
    fn delete_range(&mut self, _: &[u8], _: &[u8]) -> Result<(i64, i64), ServerError> {
        Err(ServerError::Unimplemented("a write in a read-only txn"))
    }
}

impl View for TxnWrite<'_> {
    fn range(
        &mut self,
        key: &[u8],
        end: &[u8],
        opts: RangeOptions,
    ) -> Result<RangeResult, MvccError> {
        TxnWrite::range(self, key, end, opts)
    }
    fn rev(&self) -> i64 {
        TxnWrite::rev(self)
    }
    fn first_rev(&self) -> i64 {
        TxnWrite::first_rev(self)
    }
    fn changed(&self) -> bool {
        !self.changes().is_empty()
    }
    fn put(&mut self, key: &[u8], value: &[u8], lease: i64) -> Result<i64, ServerError> {
        Ok(TxnWrite::put(self, key, value, lease)?)
    }
    fn delete_range(&mut self, key: &[u8], end: &[u8]) -> Result<(i64, i64), ServerError> {
        Ok(TxnWrite::delete_range(self, key, end)?)
    }
}

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..ResponseHeader::default()
    })
}

/// etcd's `applierV3backend.Range`; see the module documentation.
pub fn range(v: &mut impl View, r: &RangeRequest) -> Result<RangeResponse, MvccError> {
    let filtered = r.min_mod_revision != 0
        || r.max_mod_revision != 0
        || r.min_create_revision != 0
        || r.max_create_revision != 0;
    let mut limit = r.limit;
    if r.sort_order != SortOrder::None as i32 || filtered {
        limit = 0;
    }
    if limit > 0 {
        // One more, to know whether there are more (a client may send i64::MAX).
        limit = limit.saturating_add(1);
    }
    let opts = RangeOptions {
        limit,
        rev: r.revision,
        count_only: r.count_only,
    };
    let rr = v.range(&r.key, &r.range_end, opts)?;
    let mut kvs = rr.kvs;
    if r.max_mod_revision != 0 {
        kvs.retain(|kv| kv.mod_revision <= r.max_mod_revision);
    }
    if r.min_mod_revision != 0 {
        kvs.retain(|kv| kv.mod_revision >= r.min_mod_revision);
    }
    if r.max_create_revision != 0 {
        kvs.retain(|kv| kv.create_revision <= r.max_create_revision);
    }
    if r.min_create_revision != 0 {
        kvs.retain(|kv| kv.create_revision >= r.min_create_revision);
    }
    let target = SortTarget::try_from(r.sort_target).unwrap_or(SortTarget::Key);
    let mut order = SortOrder::try_from(r.sort_order).unwrap_or(SortOrder::None);
    if target != SortTarget::Key && order == SortOrder::None {
        // The store returns key order: sort ascending by default only for other targets.
        order = SortOrder::Ascend;
    }
    if order != SortOrder::None {
        let cmp = |a: &KeyValue, b: &KeyValue| -> CmpOrdering {
            match target {
                SortTarget::Key => a.key.cmp(&b.key),
                SortTarget::Version => a.version.cmp(&b.version),
                SortTarget::Create => a.create_revision.cmp(&b.create_revision),
                SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
                SortTarget::Value => a.value.cmp(&b.value),
            }
        };
        // Stable: keys with equal targets stay in key order.
        match order {
            SortOrder::Descend => kvs.sort_by(|a, b| cmp(b, a)),
            _ => kvs.sort_by(cmp),
        }
    }
    let mut more = false;
    if r.limit > 0 && kvs.len() > r.limit as usize {
        kvs.truncate(r.limit as usize);
        more = true;
    }
    if r.keys_only {
        for kv in &mut kvs {
            kv.value = Vec::new();
        }
    }
    Ok(RangeResponse {
        header: header(rr.rev),
        kvs,
        more,
        count: rr.count,
    })
}

/// etcd's `applierV3backend.Put` inside a write txn (checks already made by [`check_put`]).
fn put(v: &mut impl View, p: &PutRequest) -> Result<PutResponse, ServerError> {
    let mut value = &p.value;
    let mut lease = p.lease;
    let mut prev = None;
    if p.ignore_value || p.ignore_lease || p.prev_kv {
        let rr = v.range(&p.key, &[], RangeOptions::default())?;
        prev = rr.kvs.into_iter().next();
    }
    if (p.ignore_value || p.ignore_lease) && prev.is_none() {
        return Err(ServerError::KeyNotFound);
    }
    if let Some(kv) = prev.as_ref() {
        if p.ignore_value {
            value = &kv.value;
        }
        if p.ignore_lease {
            lease = kv.lease;
        }
    }
    let value = value.clone();
    let rev = v.put(&p.key, &value, lease)?;
    Ok(PutResponse {
        header: header(rev),
        prev_kv: if p.prev_kv { prev } else { None },
    })
}

/// etcd's `applierV3backend.DeleteRange`.
fn delete_range(
    v: &mut impl View,
    d: &DeleteRangeRequest,
) -> Result<DeleteRangeResponse, ServerError> {
    let mut prev_kvs = Vec::new();
    if d.prev_kv {
        prev_kvs = v.range(&d.key, &d.range_end, RangeOptions::default())?.kvs;
    }
    let (deleted, rev) = v.delete_range(&d.key, &d.range_end)?;
    Ok(DeleteRangeResponse {
        header: header(rev),
        deleted,
        prev_kvs,
    })
}

/// etcd's `applyCompare`: every key in the compare's range must satisfy it; a value compare
/// on no key fails, other targets compare against zero.
fn apply_compare(v: &mut impl View, c: &Compare) -> bool {
    let Ok(rr) = v.range(&c.key, &c.range_end, RangeOptions::default()) else {
        return false;
    };
    if rr.kvs.is_empty() {
        if c.target == CompareTarget::Value as i32 {
            return false;
        }
        return compare_kv(c, &KeyValue::default());
    }
    rr.kvs.iter().all(|kv| compare_kv(c, kv))
}

fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    let ord = match CompareTarget::try_from(c.target) {
        Ok(CompareTarget::Value) => {
            let want: &[u8] = match &c.target_union {
                Some(TargetUnion::Value(v)) => v,
                _ => &[],
            };
            kv.value.as_slice().cmp(want)
        }
        Ok(t) => {
            let want = match (&c.target_union, t) {
                (Some(TargetUnion::CreateRevision(x)), CompareTarget::Create)
                | (Some(TargetUnion::ModRevision(x)), CompareTarget::Mod)
                | (Some(TargetUnion::Version(x)), CompareTarget::Version)
                | (Some(TargetUnion::Lease(x)), CompareTarget::Lease) => *x,
                _ => 0,
            };
            let have = match t {
                CompareTarget::Create => kv.create_revision,
                CompareTarget::Mod => kv.mod_revision,
                CompareTarget::Version => kv.version,
                CompareTarget::Lease => kv.lease,
                CompareTarget::Value => 0,
            };
            have.cmp(&want)
        }
        Err(_) => CmpOrdering::Equal,
    };
    match CompareResult::try_from(c.result) {
        Ok(CompareResult::Equal) => ord == CmpOrdering::Equal,
        Ok(CompareResult::NotEqual) => ord != CmpOrdering::Equal,
        Ok(CompareResult::Greater) => ord == CmpOrdering::Greater,
        Ok(CompareResult::Less) => ord == CmpOrdering::Less,
        Err(_) => true,
    }
}

/// etcd's `compareToPath`: the outcome of every txn on the path taken, depth first.
fn compare_to_path(v: &mut impl View, rt: &TxnRequest) -> Vec<bool> {
    let ok = rt.compare.iter().all(|c| apply_compare(v, c));
    let mut path = vec![ok];
    for op in if ok { &rt.success } else { &rt.failure } {
        if let Some(Op::RequestTxn(t)) = &op.request {
            path.extend(compare_to_path(v, t));
        }
    }
    path
}

/// etcd's `checkRequests` with `checkRange` and `checkPut`; returns the path entries used.
fn check_requests(v: &mut impl View, rt: &TxnRequest, path: &[bool]) -> Result<usize, ServerError> {
    let mut used = 1;
    for op in if path[0] { &rt.success } else { &rt.failure } {
        match &op.request {
            Some(Op::RequestTxn(t)) => used += check_requests(v, t, &path[used..])?,
            // etcd's checkRequestRange: compacted or future, before anything is written.
            Some(Op::RequestRange(r)) if r.revision != 0 && r.revision != v.rev() => {
                if r.revision > v.rev() {
                    return Err(MvccError::FutureRev.into());
                }
                if r.revision < v.first_rev() {
                    return Err(MvccError::Compacted.into());
                }
            }
            Some(Op::RequestPut(p)) => check_put(v, p, PutIn::Txn)?,
            _ => {}
        }
    }
    Ok(used)
}

/// Where a put is checked: etcd checks a plain put's lease first, a txn put's key first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PutIn {
    Request,
    Txn,
}

/// etcd's put checks (`Put` with no txn, `checkRequestPut` in a txn): the lease must exist,
/// `ignore_*` needs the key.
fn check_put(v: &mut impl View, p: &PutRequest, at: PutIn) -> Result<(), ServerError> {
    // No lessor yet: no lease exists.
    let lease = || {
        if p.lease != 0 {
            Err(ServerError::LeaseNotFound)
        } else {
            Ok(())
        }
    };
    if at == PutIn::Request {
        lease()?;
    }
    if p.ignore_value || p.ignore_lease {
        let rr = v.range(&p.key, &[], RangeOptions::default())?;
        if rr.kvs.is_empty() {
            return Err(ServerError::KeyNotFound);
        }
    }
    lease()
}

/// etcd's `applyTxn`: runs the ops of the branch `path[0]` chose; returns the response and the
/// path entries used.
fn apply_txn_ops(
    v: &mut impl View,
    rt: &TxnRequest,
    path: &[bool],
) -> Result<(TxnResponse, usize), ServerError> {
    let ok = path[0];
    let mut used = 1;
    let mut responses = Vec::new();
    for op in if ok { &rt.success } else { &rt.failure } {
        let resp = match &op.request {
            Some(Op::RequestRange(r)) => Some(OpResp::ResponseRange(range(v, r)?)),
            Some(Op::RequestPut(p)) => Some(OpResp::ResponsePut(put(v, p)?)),
            Some(Op::RequestDeleteRange(d)) => {
                Some(OpResp::ResponseDeleteRange(delete_range(v, d)?))
            }
            Some(Op::RequestTxn(t)) => {
                let (resp, n) = apply_txn_ops(v, t, &path[used..])?;
                used += n;
                Some(OpResp::ResponseTxn(resp))
            }
            None => None,
        };
        responses.push(ResponseOp { response: resp });
    }
    Ok((
        TxnResponse {
            header: Some(ResponseHeader::default()),
            succeeded: ok,
            responses,
        },
        used,
    ))
}

/// etcd's `applierV3backend.Txn` over `v` (a read txn for read-only txns).
pub fn txn(v: &mut impl View, rt: &TxnRequest) -> Result<TxnResponse, ServerError> {
    let path = compare_to_path(v, rt);
    check_requests(v, rt, &path)?;
    let (mut resp, _) = apply_txn_ops(v, rt, &path)?;
    let rev = if v.changed() { v.rev() + 1 } else { v.rev() };
    resp.header = header(rev);
    Ok(resp)
}

/// Whether a txn (nested ones included) only reads (etcd's `isTxnReadonly`).
pub fn is_txn_read_only(rt: &TxnRequest) -> bool {
    rt.success
        .iter()
        .chain(&rt.failure)
        .all(|op| match &op.request {
            Some(Op::RequestRange(_)) | None => true,
            Some(Op::RequestTxn(t)) => is_txn_read_only(t),
            Some(_) => false,
        })
}

/// Whether every range of a txn is serializable (etcd's `isTxnSerializable`).
pub fn is_txn_serializable(rt: &TxnRequest) -> bool {
    rt.success
        .iter()
        .chain(&rt.failure)
        .all(|op| match &op.request {
            Some(Op::RequestRange(r)) => r.serializable,
            Some(Op::RequestTxn(t)) => is_txn_serializable(t),
            _ => true,
        })
}

/// etcd's quota cost of a put.
pub fn cost_put(p: &PutRequest) -> u64 {
    const KV_OVERHEAD: u64 = 256;
    KV_OVERHEAD + p.key.len() as u64 + p.value.len() as u64
}

/// etcd's quota cost of a txn: the larger branch's top-level puts.
pub fn cost_txn(t: &TxnRequest) -> u64 {
    let branch = |ops: &[crate::pb::etcdserverpb::RequestOp]| -> u64 {
        ops.iter()
            .map(|op| match &op.request {
                Some(Op::RequestPut(p)) => cost_put(p),
                _ => 0,
            })
            .sum()
    };
    branch(&t.success).max(branch(&t.failure))
}

/// The applier thread's state.
pub(super) struct Applier {
    pub kv: Arc<KvStore>,
    pub raft: RaftNode,
    pub wait: Wait<ApplyResult>,
    pub alarms: Arc<Alarms>,
    pub quota: Arc<Quota>,
    pub metrics: Arc<Metrics>,
}

impl Applier {
    /// Applies batches until the raft node stops; returns the error that stopped it early.
    pub fn run(self, rx: ApplyRx) -> Result<(), ServerError> {
        while let Some(mut batch) = rx.recv() {
            if let Some(snap) = &batch.snapshot {
                let index = snap.get_metadata().index;
                let ci = self.kv.consistent_index();
                if index > ci {
                    return Err(ServerError::BackendBehindSnapshot {
                        backend: ci,
                        snapshot: index,
                    });
                }
            }
            let last = batch.last_index();
            // The requests' records, by index like the entries.
            let mut traces = batch.take_traces().into_iter().peekable();
            for e in &batch.entries {
                while traces.next_if(|(i, _)| *i < e.index).is_some() {}
                let trace = traces.next_if(|(i, _)| *i == e.index).map(|(_, t)| t);
                self.apply_entry(e, trace)?;
            }
            if let Some(why) = self.kv.backend().failure() {
                // A commit failed: what was applied since the last good one is not durable.
                return Err(ServerError::BackendFailed(why));
            }
            batch.notify.applied();
            if self.raft.snapshot_due(last) {
                // etcd commits the backend first: the snapshot may only cover what is on disk,
                // since the WAL before it goes away.
                self.kv.backend().force_commit()?;
                // Membership lives in the WAL's conf changes and the config for now; the
                // snapshot's data (etcd's v2 store) comes with clustering.
                if let Err(e) = self.raft.snapshot(last, Vec::new()) {
                    warn!(error = %e, index = last, "cannot ask for a raft snapshot");
                }
            }
        }
        Ok(())
    }

    /// Applies one entry; with `trace`, the layers below record into the request's record
    /// (`telemetry::request`) while it is applied.
    fn apply_entry(&self, e: &Entry, trace: Option<Arc<RequestTrace>>) -> Result<(), ServerError> {
        if e.index <= self.kv.consistent_index() {
            // Already in the backend (a restart replays the WAL after the last snapshot).
            return Ok(());
        }
        let current = trace.map(|t| request::enter(Some(t)));
        let timer = Timer::start();
        let span = debug_span!(
            names::ETCDSERVER_APPLY,
            index = e.index,
            term = e.term,
            op = tracing::field::Empty,
            error = tracing::field::Empty
        );
        let _entered = span.enter();
        let req = match e.get_entry_type() {
            EntryType::EntryNormal if !e.data.is_empty() => {
                match InternalRaftRequest::decode(e.data.as_ref()) {
                    Ok(r) => Some(r),
                    Err(err) => {
                        // The WAL's CRC vouches for the bytes, so every member fails the same
                        // way on this entry: skip it (recording its index) rather than stop
                        // for good on every restart. The API refuses what could not decode
                        // here (txns nested too deep), so this is a proposal from elsewhere.
                        error!(index = e.index, error = %err, "skipping a raft entry that does not decode");
                        span.record("op", "undecodable");
                        None
                    }
                }
            }
            _ => None,
        };
        let (id, result) = match req {
            None => {
                span.record(
                    "op",
                    if e.get_entry_type() == EntryType::EntryNormal {
                        "empty"
                    } else {
                        "conf_change"
                    },
                );
                self.index_only(e)?;
                (0, None)
            }
            Some(r) => {
                let id = r.header.as_ref().map_or(r.id, |h| h.id);
                let res = self.apply_request(e, r, &span)?;
                if let Err(err) = &res.resp {
                    span.record("error", tracing::field::display(err));
                }
                (id, Some(res))
            }
        };
        let ns = timer.elapsed_ns();
        self.metrics.etcdserver_apply.record(ns);
        request::record_with(
            names::ETCDSERVER_APPLY,
            &timer,
            ns,
            &[("raft.index", i64::try_from(e.index).unwrap_or(i64::MAX))],
        );
        // The request's record is complete before its caller can hear the result.
        drop(current);
        if let Some(res) = result {
            // No waiter: proposed by an earlier run, or the caller gave up.
            self.wait.trigger(id, res);
        }
        if ns > SLOW_APPLY_NS {
            self.metrics.server_slow_apply.inc();
            warn!(
                index = e.index,
                took_ms = ns / 1_000_000,
                "apply request took too long"
            );
        }
        Ok(())
    }

    /// Records the entry's index alone (an empty entry, a conf change, a compaction).
    fn index_only(&self, e: &Entry) -> Result<(), ServerError> {
        let mut w = self.kv.write();
        w.set_consistent_index(e.index, e.term)?;
        w.end();
        Ok(())
    }

    /// One request; `Err` only for failures that must stop the server (the backend).
    fn apply_request(
        &self,
        e: &Entry,
        r: InternalRaftRequest,
        span: &tracing::Span,
    ) -> Result<ApplyResult, ServerError> {
        let capped = self.alarms.has(AlarmType::Nospace);
        let done = |resp| ApplyResult {
            resp,
            physical: None,
        };
        if let Some(c) = r.compaction {
            span.record("op", "compaction");
            let res = self.compact(&c);
            self.index_only(e)?;
            return Ok(res);
        }
        if let Some(a) = r.alarm {
            span.record("op", "alarm");
            let res = self.alarm(&a);
            self.index_only(e)?;
            return Ok(done(res));
        }
        let mut w = self.kv.write();
        let res = if let Some(p) = r.put {
            span.record("op", "put");
            if capped {
                Err(ServerError::NoSpace)
            } else {
                let over = !self.quota.available(self.kv.backend(), cost_put(&p));
                (|| {
                    check_put(&mut w, &p, PutIn::Request)?;
                    let resp = put(&mut w, &p)?;
                    if over {
                        return Err(ServerError::NoSpace);
                    }
                    Ok(Applied::Put(resp))
                })()
            }
        } else if let Some(d) = r.delete_range {
            span.record("op", "delete_range");
            delete_range(&mut w, &d).map(Applied::DeleteRange)
        } else if let Some(t) = r.txn {
            span.record("op", "txn");
            let cost = cost_txn(&t);
            if capped && cost > 0 {
                Err(ServerError::NoSpace)
            } else {
                let over = cost > 0 && !self.quota.available(self.kv.backend(), cost);
                match txn(&mut w, &t) {
                    Ok(_) if over => Err(ServerError::NoSpace),
                    other => other.map(Applied::Txn),
                }
            }
        } else if let Some(rr) = r.range {
            span.record("op", "range");
            range(&mut w, &rr)
                .map(Applied::Range)
                .map_err(ServerError::from)
        } else {
            span.record("op", "unimplemented");
            Err(ServerError::Unimplemented("this request"))
        };
        // A request error leaves no writes behind: every op that can fail is checked before the
        // first write. A backend error can come half way: then nothing of this batch may
        // reach the file (with or without this index), so the backend stops committing and
        // the member stops; a restart replays the WAL from the last good commit.
        if let Err(ServerError::Mvcc(MvccError::Backend(be))) = &res {
            self.kv
                .backend()
                .poison(&format!("applying entry {}: {be}", e.index));
            return Err(ServerError::Mvcc(MvccError::Backend(be.clone())));
        }
        w.set_consistent_index(e.index, e.term)?;
        w.end();
        Ok(done(res))
    }

    fn compact(&self, c: &CompactionRequest) -> ApplyResult {
        match self.kv.compact(c.revision) {
            Ok(h) => ApplyResult {
                resp: Ok(Applied::Compaction(CompactionResponse {
                    header: header(self.kv.current_revision()),
                })),
                physical: Some(h),
            },
            Err(e) => ApplyResult {
                resp: Err(e.into()),
                physical: None,
            },
        }
    }

    /// etcd's `applierV3backend.Alarm`.
    fn alarm(&self, a: &AlarmRequest) -> Result<Applied, ServerError> {
        // etcd answers alarms without a header.
        let mut resp = AlarmResponse {
            header: None,
            alarms: Vec::new(),
        };
        match AlarmAction::try_from(a.action) {
            Ok(AlarmAction::Get) => resp.alarms = self.alarms.get(a.alarm),
            Ok(AlarmAction::Activate) => {
                if a.alarm != AlarmType::None as i32 {
                    let m = self.alarms.activate(a.member_id, a.alarm)?;
                    warn!(member = %format!("{:x}", a.member_id), alarm = a.alarm, "alarm raised");
                    resp.alarms.push(m);
                }
            }
            Ok(AlarmAction::Deactivate) => {
                if let Some(m) = self.alarms.deactivate(a.member_id, a.alarm)? {
                    warn!(member = %format!("{:x}", a.member_id), alarm = a.alarm, "alarm disarmed");
                    resp.alarms.push(m);
                }
            }
            Err(_) => {}
        }
        Ok(Applied::Alarm(resp))
    }
}
