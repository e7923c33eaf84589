//! `etcdserverpb.KV` (etcd's `v3rpc/key.go`): request checks with etcd's errors, then the
//! server.

use std::collections::HashMap;

/// Keys put on some path through a txn, with whether any of those puts needs the key to exist.
type Puts = HashMap<Vec<u8>, bool>;
use std::sync::Arc;

use telemetry::request;
use tonic::{Request, Response, Status};

use super::status::EtcdError;
use super::{observe_traced, trace_parent, Headers};
use crate::etcdserver::EtcdServer;
use crate::pb::etcdserverpb::kv_server::Kv;
use crate::pb::etcdserverpb::request_op::Request as Op;
use crate::pb::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, RequestOp, TxnRequest, TxnResponse,
};

/// The KV service.
#[derive(Debug, Clone)]
pub struct KvService {
    server: Arc<EtcdServer>,
    headers: Headers,
}

impl KvService {
    pub fn new(server: Arc<EtcdServer>) -> Self {
        KvService {
            headers: Headers::new(server.clone()),
            server,
        }
    }
}

fn check_range(r: &RangeRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    Ok(())
}

fn check_put(r: &PutRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(EtcdError::ValueProvided);
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(EtcdError::LeaseProvided);
    }
    Ok(())
}

fn check_delete(r: &DeleteRangeRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    Ok(())
}

/// How deep txns may nest. etcd has no limit; Glass's protobuf decoder stops at 100 nested
/// messages, and a proposal wraps the txn in one more (`InternalRaftRequest`, `RequestOp`
/// levels), so a txn that decodes here must still decode in the applier: deeper ones are
/// refused as having too many operations.
pub const MAX_TXN_DEPTH: usize = 32;

/// etcd's `checkTxnRequest`: op counts (each level against what is left of the limit), keys;
/// and Glass's nesting depth.
fn check_txn(r: &TxnRequest, max_ops: i64) -> Result<(), EtcdError> {
    check_txn_at(r, max_ops, 1)
}

fn check_txn_at(r: &TxnRequest, max_ops: i64, depth: usize) -> Result<(), EtcdError> {
    let opc = r.compare.len().max(r.success.len()).max(r.failure.len()) as i64;
    if opc > max_ops || depth > MAX_TXN_DEPTH {
        return Err(EtcdError::TooManyOps);
    }
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(EtcdError::EmptyKey);
    }
    for op in r.success.iter().chain(&r.failure) {
        check_op(op, max_ops - opc, depth)?;
    }
    Ok(())
}

fn check_op(op: &RequestOp, max_ops: i64, depth: usize) -> Result<(), EtcdError> {
    match &op.request {
        Some(Op::RequestRange(r)) => check_range(r),
        Some(Op::RequestPut(r)) => check_put(r),
        Some(Op::RequestDeleteRange(r)) => check_delete(r),
        Some(Op::RequestTxn(t)) => check_txn_at(t, max_ops, depth + 1),
        // An empty op.
        None => Err(EtcdError::KeyNotFound),
    }
}

/// A delete's key range: `[key, end)`, one key when `end` is empty.
///
/// etcd's check takes `end` literally, so a delete to the end of the key space (`end` =
/// `"\0"`) is an empty interval to it and overlaps no put: Glass does the same for plain puts
/// ([`Interval::hides`] with `ignore` false). A put with `ignore_value`/`ignore_lease` after
/// such a delete would fail half way through the txn (etcd panics there), so for those the
/// interval is what the delete really removes.
#[derive(Debug, Clone)]
struct Interval {
    key: Vec<u8>,
    end: Vec<u8>,
}

impl Interval {
    /// Whether a put of `k` overlaps this delete (`ignore`: the put needs the key to exist).
    fn hides(&self, k: &[u8], ignore: bool) -> bool {
        if self.end.is_empty() {
            return k == self.key.as_slice();
        }
        let to_the_end = self.end.as_slice() == b"\0";
        k >= self.key.as_slice() && ((to_the_end && ignore) || k < self.end.as_slice())
    }
}

/// etcd's `checkIntervals`: no key is put twice, or put and deleted, on any path through a txn
/// (the two branches of a nested txn exclude each other, so a key in both is fine). Returns the
/// keys put and the ranges deleted.
fn check_intervals(ops: &[RequestOp]) -> Result<(Puts, Vec<Interval>), EtcdError> {
    let mut dels: Vec<Interval> = ops
        .iter()
        .filter_map(|op| match &op.request {
            Some(Op::RequestDeleteRange(d)) => Some(Interval {
                key: d.key.clone(),
                end: d.range_end.clone(),
            }),
            _ => None,
        })
        .collect();
    let hit = |dels: &[Interval], k: &[u8], ignore: bool| dels.iter().any(|iv| iv.hides(k, ignore));
    let mut puts: Puts = HashMap::new();
    for op in ops {
        let Some(Op::RequestTxn(t)) = &op.request else {
            continue;
        };
        let (puts_then, dels_then) = check_intervals(&t.success)?;
        let (puts_else, dels_else) = check_intervals(&t.failure)?;
        for (k, &ignore) in &puts_then {
            if puts.contains_key(k) || hit(&dels, k, ignore) {
                return Err(EtcdError::DuplicateKey);
            }
            puts.insert(k.clone(), ignore);
        }
        for (k, ignore) in puts_else {
            if (puts.contains_key(&k) && !puts_then.contains_key(&k)) || hit(&dels, &k, ignore) {
                return Err(EtcdError::DuplicateKey);
            }
            let e = puts.entry(k).or_insert(false);
            *e |= ignore;
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for op in ops {
        let Some(Op::RequestPut(p)) = &op.request else {
            continue;
        };
        let ignore = p.ignore_value || p.ignore_lease;
        if puts.contains_key(&p.key) || hit(&dels, &p.key, ignore) {
            return Err(EtcdError::DuplicateKey);
        }
        puts.insert(p.key.clone(), ignore);
    }
    Ok((puts, dels))
}

/// The response's revision, on the request's root span.
fn set_revision(h: &Option<crate::pb::etcdserverpb::ResponseHeader>) {
    if let Some(h) = h {
        request::set_attr("etcd.revision", h.revision);
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, req: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        let parent = trace_parent(&req);
        let r = req.into_inner();
        observe_traced(&self.server, "etcdserverpb.KV/Range", parent, async {
            check_range(&r)?;
            request::set_key(&r.key);
            let mut resp = self.server.range(r).await?;
            self.headers.fill(&mut resp.header);
            request::set_attr("etcd.keys", resp.kvs.len() as i64);
            request::set_attr("etcd.count", resp.count);
            set_revision(&resp.header);
            Ok(resp)
        })
        .await
    }

    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let parent = trace_parent(&req);
        let r = req.into_inner();
        observe_traced(&self.server, "etcdserverpb.KV/Put", parent, async {
            // etcd's quotaKVServer checks (and raises the alarm) before the request is checked.
            self.server.check_quota(EtcdServer::put_cost(&r)).await?;
            check_put(&r)?;
            request::set_key(&r.key);
            request::set_attr("etcd.keys", 1);
            request::set_attr("etcd.key_bytes", r.key.len() as i64);
            request::set_attr("etcd.value_bytes", r.value.len() as i64);
            let mut resp = self.server.put(r).await?;
            self.headers.fill(&mut resp.header);
            set_revision(&resp.header);
            Ok(resp)
        })
        .await
    }

    async fn delete_range(
        &self,
        req: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let parent = trace_parent(&req);
        let r = req.into_inner();
        observe_traced(&self.server, "etcdserverpb.KV/DeleteRange", parent, async {
            check_delete(&r)?;
            request::set_key(&r.key);
            let mut resp = self.server.delete_range(r).await?;
            self.headers.fill(&mut resp.header);
            request::set_attr("etcd.keys", resp.deleted);
            set_revision(&resp.header);
            Ok(resp)
        })
        .await
    }

    async fn txn(&self, req: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let parent = trace_parent(&req);
        let r = req.into_inner();
        observe_traced(&self.server, "etcdserverpb.KV/Txn", parent, async {
            self.server.check_quota(EtcdServer::txn_cost(&r)).await?;
            let max = i64::try_from(self.server.max_txn_ops()).unwrap_or(i64::MAX);
            check_txn(&r, max)?;
            // After the request check, to avoid a quadratic blowup on huge txns.
            check_intervals(&r.success)?;
            check_intervals(&r.failure)?;
            request::set_attr("etcd.compares", r.compare.len() as i64);
            request::set_attr("etcd.ops", (r.success.len() + r.failure.len()) as i64);
            let mut resp = self.server.txn(r).await?;
            self.headers.fill(&mut resp.header);
            request::set_attr("etcd.succeeded", i64::from(resp.succeeded));
            set_revision(&resp.header);
            Ok(resp)
        })
        .await
    }

    async fn compact(
        &self,
        req: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        let parent = trace_parent(&req);
        let r = req.into_inner();
        observe_traced(&self.server, "etcdserverpb.KV/Compact", parent, async {
            request::set_attr("etcd.compact_revision", r.revision);
            let mut resp = self.server.compact(r).await?;
            self.headers.fill(&mut resp.header);
            set_revision(&resp.header);
            Ok(resp)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::etcdserverpb::TxnRequest;

    fn put(k: &str) -> RequestOp {
        RequestOp {
            request: Some(Op::RequestPut(PutRequest {
                key: k.into(),
                ..Default::default()
            })),
        }
    }

    fn put_ignoring(k: &str) -> RequestOp {
        RequestOp {
            request: Some(Op::RequestPut(PutRequest {
                key: k.into(),
                ignore_value: true,
                ..Default::default()
            })),
        }
    }

    fn del(k: &str, end: &str) -> RequestOp {
        RequestOp {
            request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
                key: k.into(),
                range_end: end.into(),
                ..Default::default()
            })),
        }
    }

    fn txn(success: Vec<RequestOp>, failure: Vec<RequestOp>) -> RequestOp {
        RequestOp {
            request: Some(Op::RequestTxn(TxnRequest {
                compare: vec![],
                success,
                failure,
            })),
        }
    }

    #[test]
    fn duplicate_keys_are_found_on_every_path() {
        let dup = Err(EtcdError::DuplicateKey);
        let ok = |ops: &[RequestOp]| check_intervals(ops).map(|_| ());
        assert_eq!(ok(&[put("a"), put("b")]), Ok(()));
        assert_eq!(ok(&[put("a"), put("a")]), dup);
        assert_eq!(ok(&[put("b"), del("a", "c")]), dup);
        assert_eq!(ok(&[put("c"), del("a", "c")]), Ok(()));
        // A delete to the end (`"\0"`) is taken literally, as etcd does, for plain puts...
        assert_eq!(ok(&[put("z"), del("a", "\0")]), Ok(()));
        // ...but not for a put that needs the key to exist.
        assert_eq!(ok(&[put_ignoring("z"), del("a", "\0")]), dup);
        // Both branches of a nested txn may put the same key...
        assert_eq!(ok(&[txn(vec![put("a")], vec![put("a")])]), Ok(()));
        // ...but not one the outer txn puts or deletes.
        assert_eq!(ok(&[put("a"), txn(vec![], vec![put("a")])]), dup);
        assert_eq!(ok(&[del("a", ""), txn(vec![put("a")], vec![])]), dup);
        assert_eq!(ok(&[txn(vec![del("a", "b")], vec![]), put("a")]), dup);
    }

    #[test]
    fn txn_op_limits_count_each_level() {
        let t = TxnRequest {
            compare: vec![],
            success: vec![put("a"), put("b")],
            failure: vec![],
        };
        assert_eq!(check_txn(&t, 2), Ok(()));
        assert_eq!(check_txn(&t, 1), Err(EtcdError::TooManyOps));
        let empty_op = TxnRequest {
            compare: vec![],
            success: vec![RequestOp { request: None }],
            failure: vec![],
        };
        assert_eq!(check_txn(&empty_op, 128), Err(EtcdError::KeyNotFound));
        // Nesting deeper than the applier can decode is refused here.
        let mut t = TxnRequest::default();
        for _ in 0..MAX_TXN_DEPTH {
            t = TxnRequest {
                compare: vec![],
                success: vec![RequestOp {
                    request: Some(Op::RequestTxn(t)),
                }],
                failure: vec![],
            };
        }
        assert_eq!(check_txn(&t, 128), Err(EtcdError::TooManyOps));
    }
}
