//! OTLP export of finished requests: the record → span conversion ([`spans`]) and the
//! [`Exporter`] task that sends batches over OTLP/gRPC (port 4317) or OTLP/HTTP with protobuf
//! bodies (port 4318, `POST /v1/traces`) — both what Jaeger receives.
//!
//! # The span tree of a request
//! The root span is the RPC (`etcdserverpb.KV/Put`, kind SERVER; parent: the caller's span
//! when it sent a `traceparent`). Every layer the request crossed is a child span with the
//! layer's measurement name (`raft.propose_commit`, `wal.fsync`, `etcdserver.apply`,
//! `mvcc.put`, `backend.tx_lock_wait`, ...). Parents come from time containment: a layer's
//! parent is the shortest other layer whose interval holds it, else the root. The layers of
//! one request run one after another across threads (the API task, the raft thread, the
//! applier) and nest on each thread, so this gives the call structure:
//!
//! ```text
//! etcdserverpb.KV/Put
//! ├ raft.propose_commit            propose → commit, on the raft thread
//! │ ├ wal.append                   shared: the Ready that wrote this entry (glass.shared_by)
//! │ └ wal.fsync                    shared: its fdatasync
//! ├ raft.apply_queue               the batch's wait for the applier
//! └ etcdserver.apply
//!   ├ backend.tx_lock_wait
//!   └ mvcc.txn
//!     ├ mvcc.put
//!     │ ├ mvcc.treeindex_lock_wait / _hold
//!     ├ backend.write_buffer
//!     └ backend.commit             when this request's txn filled the batch (shared by the
//!       │                          batch's writes: backend.writes)
//!       └ freelist.allocate
//! ```
//!
//! Work shared by many requests (one WAL write and fdatasync per Ready, one backend commit
//! per batch) is a child span *in each request it served*, with an attribute saying how much
//! it served (`glass.shared_by`: the requests of the Ready; `backend.writes`: the writes of the
//! batch, of which a commit sees no requests) — rather than span links to one span of
//! its own: every trace then shows the whole time its request waited, in Jaeger's timeline,
//! without a second trace to open. A periodic backend commit (every 100 ms, on the backend's
//! own thread) happens after the requests of its batch have been answered: it is in no
//! request's trace (its histogram has it).
//!
//! # The exporter
//! One task on the server's runtime takes finished requests off the [`Tracer`]'s bounded
//! queue, batches them (up to [`MAX_BATCH`] requests or [`BATCH_DELAY`]), builds the spans and
//! sends them with a timeout. A failed export drops its spans and counts them
//! (`spans_dropped`), as does a full queue on the request side: requests never wait for the
//! collector. After a failure the exporter backs off (0.5 s, doubling up to 5 s) and requests
//! meanwhile only count their spans as dropped: a collector that is down costs the request
//! path almost nothing. The task follows [`crate::TraceControl`]'s endpoint and protocol (rebuilding its
//! client when they change) and shuts down within the time it is given.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource as ProtoResource;
use opentelemetry_proto::tonic::trace::v1::{
    span::{Link, SpanKind},
    status::StatusCode,
    ResourceSpans, ScopeSpans, Span, Status,
};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::otlp_wire;
use crate::slow::grpc_code_name;
use crate::tracer::{FinishedRequest, BACKING_OFF, EXPORTING, OFF};
use crate::{OtlpProtocol, Tracer};

/// Requests per export.
pub const MAX_BATCH: usize = 512;
/// How long a batch waits to fill up.
pub const BATCH_DELAY: Duration = Duration::from_millis(200);
/// One export's limit (connect included).
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often an idle exporter looks for a changed endpoint.
const REFRESH: Duration = Duration::from_millis(500);
/// After a failed export, the first pause before the next attempt (requests meanwhile are
/// counted as dropped without being queued); doubled after each failure up to
/// [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// At most one warning about failed exports per this long.
const WARN_EVERY: Duration = Duration::from_secs(30);

/// Who exports: the resource attributes of every span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// `service.instance.id`: the member's name.
    pub member_name: String,
    pub member_id: u64,
    pub cluster_id: u64,
}

impl Resource {
    /// `service.name=glassd`, `service.instance.id`, `service.version`, `glass.member_id` and
    /// `glass.cluster_id` (hex, as etcd prints them).
    pub fn attribute_pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("service.name", "glassd".to_string()),
            ("service.instance.id", self.member_name.clone()),
            ("service.version", env!("CARGO_PKG_VERSION").to_string()),
            ("glass.member_id", format!("{:x}", self.member_id)),
            ("glass.cluster_id", format!("{:x}", self.cluster_id)),
        ]
    }

    /// [`Resource::attribute_pairs`] as OTLP attributes.
    pub fn attributes(&self) -> Vec<KeyValue> {
        self.attribute_pairs()
            .iter()
            .map(|(k, v)| kv_str(k, v))
            .collect()
    }
}

/// The flags of a link to the caller's span: the W3C flags (not sampled: a link is made only
/// to a caller that did not sample) and "the context is known to be remote" (bits 8 and 9).
pub(crate) const REMOTE_LINK_FLAGS: u32 = 0x300;

/// The instrumentation scope of every span.
pub(crate) const SCOPE: &str = "glassd";

/// An attribute value of a span.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Attr<'a> {
    Str(&'a str),
    Bool(bool),
    Int(i64),
}

/// The root span's attributes, in order; `key` is the request's escaped key.
pub(crate) fn root_attributes<'a>(
    f: &'a FinishedRequest,
    key: Option<&'a str>,
) -> Vec<(&'a str, Attr<'a>)> {
    let (service, method) = f.method.split_once('/').unwrap_or(("", f.method));
    let mut a = Vec::with_capacity(8 + crate::request::ROOT_ATTRS);
    a.push(("rpc.system", Attr::Str("grpc")));
    a.push(("rpc.service", Attr::Str(service)));
    a.push(("rpc.method", Attr::Str(method)));
    a.push(("rpc.grpc.status_code", Attr::Int(i64::from(f.code))));
    if let Some(k) = key {
        a.push(("etcd.key", Attr::Str(k)));
    }
    a.extend(f.root.iter().map(|(k, v)| (k, Attr::Int(v))));
    a.push(("glass.sampled", Attr::Bool(f.sampled)));
    a.push(("glass.slow", Attr::Bool(f.slow)));
    a
}

/// Each layer's `(start, end)`, ns from the request's start.
pub(crate) fn layer_intervals(f: &FinishedRequest) -> Vec<(u64, u64)> {
    f.layers
        .iter()
        .map(|l| {
            let s = l.offset_ns(f.start);
            (s, s.saturating_add(l.duration_ns))
        })
        .collect()
}

/// The span id of the `i`th layer of `f`.
pub(crate) fn span_ids(f: &FinishedRequest) -> impl Fn(usize) -> u64 {
    let root = f.span_id;
    move |i| child_span_id(root, i)
}

fn attr_kv(key: &str, v: Attr<'_>) -> KeyValue {
    match v {
        Attr::Str(s) => kv_str(key, s),
        Attr::Bool(b) => kv_bool(key, b),
        Attr::Int(i) => kv_int(key, i),
    }
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

fn kv_str(key: &str, v: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(v.to_string()))
}

fn kv_int(key: &str, v: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(v))
}

fn kv_bool(key: &str, v: bool) -> KeyValue {
    kv(key, any_value::Value::BoolValue(v))
}

/// The id of the `i`th layer's span: a bijective mix of the root's id and `i` (unique within
/// the trace, never 0 or the root's).
fn child_span_id(root: u64, i: usize) -> u64 {
    let mut z = root.wrapping_add((i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    if z == 0 || z == root {
        z = root ^ 0x5555_5555_5555_5555 ^ (i as u64 + 1);
    }
    z
}

/// Each layer's parent: the index of the shortest other layer whose interval holds it
/// (ties: the one recorded earlier), or `None` for the root. `(start, end)` in ns; an end
/// before its start counts as an empty interval at its start.
///
/// O(n log n): the distinct intervals are swept by start (longer first at the same start); a
/// Fenwick tree over the ends keeps, for the intervals swept so far, the shortest (then
/// earliest) one ending at or after each end — every interval swept before `i` starts at or
/// before it, so that is its shortest container. Identical intervals form a group: the first
/// recorded takes the group's container, the others take the first (shorter than any
/// container, recorded earlier).
pub fn parents(intervals: &[(u64, u64)]) -> Vec<Option<usize>> {
    let n = intervals.len();
    let norm = |(s, e): (u64, u64)| (s, e.max(s));
    // Indices by (start, longer first, recorded first): identical intervals are adjacent.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| {
        let (s, e) = norm(intervals[i]);
        (s, std::cmp::Reverse(e), i)
    });
    // Ends, largest first: the tree's prefix `..=rank(e)` is "ends at or after e".
    let mut ends: Vec<u64> = intervals.iter().map(|&iv| norm(iv).1).collect();
    ends.sort_unstable_by(|a, b| b.cmp(a));
    ends.dedup();
    let rank = |e: u64| ends.partition_point(|&x| x > e);
    const NONE: (u64, usize) = (u64::MAX, usize::MAX);
    let mut tree = vec![NONE; ends.len() + 1];
    let mut out = vec![None; n];
    let mut k = 0;
    while k < n {
        let first = order[k];
        let (s, e) = norm(intervals[first]);
        // Query before inserting: only strictly longer intervals are in the tree.
        let mut best = NONE;
        let mut p = rank(e) + 1;
        while p > 0 {
            best = best.min(tree[p]);
            p &= p - 1;
        }
        out[first] = (best != NONE).then_some(best.1);
        let mut m = k + 1;
        while m < n && norm(intervals[order[m]]) == (s, e) {
            out[order[m]] = Some(first);
            m += 1;
        }
        let mut p = rank(e) + 1;
        while p < tree.len() {
            tree[p] = tree[p].min((e - s, first));
            p += p & p.wrapping_neg();
        }
        k = m;
    }
    out
}

/// The spans of one request: the root, then one per layer (as prost's types; the exporter
/// writes the same message directly, see `otlp_wire`).
pub fn spans(f: &FinishedRequest) -> Vec<Span> {
    let trace_id = f.trace_id.to_be_bytes().to_vec();
    let root_id = f.span_id.to_be_bytes().to_vec();
    let flags = 1; // recorded (and so sampled, as far as the collector is concerned)
    let key = (!f.key.is_empty()).then(|| f.key.escaped());
    let attributes = root_attributes(f, key.as_deref())
        .into_iter()
        .map(|(k, v)| attr_kv(k, v))
        .collect();
    let status = (f.code != 0).then(|| Status {
        code: StatusCode::Error as i32,
        message: grpc_code_name(f.code).to_string(),
    });
    let at = |offset_ns: u64| f.unix_start_ns.saturating_add(offset_ns);
    let mut out = Vec::with_capacity(1 + f.layers.len());
    out.push(Span {
        trace_id: trace_id.clone(),
        span_id: root_id.clone(),
        parent_span_id: f
            .parent_span_id
            .map(|p| p.to_be_bytes().to_vec())
            .unwrap_or_default(),
        flags,
        name: f.method.to_string(),
        kind: SpanKind::Server as i32,
        start_time_unix_nano: at(0),
        end_time_unix_nano: at(f.duration_ns),
        attributes,
        status,
        links: f
            .link
            .iter()
            .map(|l| Link {
                trace_id: l.trace_id.to_be_bytes().to_vec(),
                span_id: l.span_id.to_be_bytes().to_vec(),
                flags: REMOTE_LINK_FLAGS,
                ..Link::default()
            })
            .collect(),
        ..Span::default()
    });
    let intervals = layer_intervals(f);
    let parents = parents(&intervals);
    for (i, l) in f.layers.iter().enumerate() {
        let parent = match parents[i] {
            Some(j) => child_span_id(f.span_id, j).to_be_bytes().to_vec(),
            None => root_id.clone(),
        };
        let (s, e) = intervals[i];
        out.push(Span {
            trace_id: trace_id.clone(),
            span_id: child_span_id(f.span_id, i).to_be_bytes().to_vec(),
            parent_span_id: parent,
            flags,
            name: l.name.to_string(),
            kind: SpanKind::Internal as i32,
            start_time_unix_nano: at(s),
            end_time_unix_nano: at(e),
            attributes: l.attrs.iter().map(|(k, v)| kv_int(k, v)).collect(),
            ..Span::default()
        });
    }
    out
}

/// One OTLP export request holding `reqs`' spans.
pub fn export_request(
    resource: &[KeyValue],
    reqs: &[FinishedRequest],
) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(ProtoResource {
                attributes: resource.to_vec(),
                ..ProtoResource::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: SCOPE.into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..InstrumentationScope::default()
                }),
                spans: reqs.iter().flat_map(spans).collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// The running export task; see the module documentation. Dropping it aborts the task (the
/// spans it held are counted as dropped); [`Exporter::shutdown`] is the graceful way.
#[derive(Debug)]
pub struct Exporter {
    stop: watch::Sender<bool>,
    /// `None` once [`Exporter::shutdown`] took it.
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Exporter {
    /// Starts the export task on the current tokio runtime. `None` when the tracer already
    /// has one (its queue has one reader).
    pub fn start(tracer: Arc<Tracer>, resource: Resource) -> Option<Exporter> {
        let rx = tracer.take_receiver()?;
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run(tracer, resource, rx, stop_rx));
        Some(Exporter {
            stop,
            task: Some(task),
        })
    }

    /// Exports what is queued and stops, giving up after `within` (the collector may be down:
    /// shutdown must not wait on it).
    pub async fn shutdown(mut self, within: Duration) {
        let _ = self.stop.send(true);
        let Some(task) = self.task.take() else {
            return;
        };
        let abort = task.abort_handle();
        if tokio::time::timeout(within, task).await.is_err() {
            abort.abort();
            warn!("the OTLP exporter did not finish in time; queued spans are dropped");
        }
    }
}

impl Drop for Exporter {
    /// Aborts the task (STYLE: background tasks stop through drop guards); what it held is
    /// counted in `spans_dropped` by [`Pending`]'s drop.
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Where batches go: the client for the endpoint in force.
enum Client {
    Grpc(tonic::client::Grpc<tonic::transport::Channel>),
    /// Boxed: the client is large beside the gRPC one.
    Http(Box<HttpClient>),
}

struct HttpClient {
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
    /// `<endpoint>/v1/traces`.
    uri: http::Uri,
}

impl Client {
    fn new(endpoint: &str, protocol: OtlpProtocol) -> Result<Client, String> {
        if !endpoint.starts_with("http://") {
            return Err(format!(
                "{endpoint}: only http:// OTLP endpoints are supported (no TLS yet)"
            ));
        }
        match protocol {
            OtlpProtocol::Grpc => {
                let ep = tonic::transport::Endpoint::from_shared(endpoint.to_string())
                    .map_err(|e| format!("{endpoint}: {e}"))?
                    .connect_timeout(EXPORT_TIMEOUT)
                    .timeout(EXPORT_TIMEOUT);
                Ok(Client::Grpc(tonic::client::Grpc::new(ep.connect_lazy())))
            }
            OtlpProtocol::Http => {
                let base = endpoint.trim_end_matches('/');
                let url = if base.ends_with("/v1/traces") {
                    base.to_string()
                } else {
                    format!("{base}/v1/traces")
                };
                let uri = url
                    .parse::<http::Uri>()
                    .map_err(|e| format!("{endpoint}: {e}"))?;
                let client = hyper_util::client::legacy::Client::builder(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .build_http();
                Ok(Client::Http(Box::new(HttpClient { client, uri })))
            }
        }
    }

    /// Sends one encoded `ExportTraceServiceRequest`; `Ok(rejected spans)`.
    async fn send(&mut self, req: Bytes) -> Result<u64, String> {
        match self {
            Client::Grpc(c) => {
                let status = |s: tonic::Status| format!("{}: {}", s.code(), s.message());
                c.ready().await.map_err(|e| e.to_string())?;
                let resp = c
                    .unary(
                        tonic::Request::new(req),
                        http::uri::PathAndQuery::from_static(EXPORT_PATH),
                        EncodedCodec,
                    )
                    .await
                    .map_err(status)?;
                Ok(resp
                    .into_inner()
                    .partial_success
                    .map_or(0, |p| u64::try_from(p.rejected_spans).unwrap_or(0)))
            }
            Client::Http(h) => {
                let body = Full::new(req);
                let request = http::Request::post(h.uri.clone())
                    .header(http::header::CONTENT_TYPE, "application/x-protobuf")
                    .body(body)
                    .map_err(|e| e.to_string())?;
                let resp = h.client.request(request).await.map_err(|e| e.to_string())?;
                let status = resp.status();
                // Read the body (so the connection can be reused), but no more than a
                // response could reasonably hold: a hostile or broken collector cannot make
                // the exporter buffer without bound.
                let _ = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
                    .collect()
                    .await;
                if !status.is_success() {
                    return Err(format!("HTTP {status}"));
                }
                Ok(0)
            }
        }
    }
}

/// The most of an OTLP/HTTP response body the exporter reads.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The OTLP/gRPC method.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Sends an already encoded request (see `otlp_wire`), reads prost's response.
#[derive(Debug, Clone, Copy, Default)]
struct EncodedCodec;

impl tonic::codec::Codec for EncodedCodec {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = EncodedCodec;
    type Decoder = tonic_prost::ProstDecoder<ExportTraceServiceResponse>;

    fn encoder(&mut self) -> Self::Encoder {
        EncodedCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::default()
    }
}

impl tonic::codec::Encoder for EncodedCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put(dst, item);
        Ok(())
    }
}

/// A batch with at most this many spans is encoded on the exporter's task; a larger one on
/// tokio's blocking pool, so that encoding a full batch (up to [`MAX_BATCH`] ×
/// [`crate::request::MAX_LAYERS`] spans) never holds a runtime worker.
const ENCODE_INLINE_SPANS: u64 = 1024;

/// The exporter's state between batches.
struct Sink {
    tracer: Arc<Tracer>,
    /// The encoded `Resource` message (shared with the blocking encoder).
    resource: Arc<[u8]>,
    /// The control version the client was built for.
    version: Option<u64>,
    client: Option<Client>,
    last_warning: Option<Instant>,
}

/// What the task holds that is not exported yet. If the task is aborted (the [`Exporter`]
/// dropped, or a shutdown that ran out of time), dropping this counts it all in
/// `spans_dropped`: the queue, the batch being filled and the batch in flight.
struct Pending {
    tracer: Arc<Tracer>,
    rx: mpsc::Receiver<FinishedRequest>,
    batch: Vec<FinishedRequest>,
    /// Spans of the batch being encoded or sent (0 between exports).
    in_flight: u64,
}

impl Pending {
    /// Drops what is queued, counting its spans.
    fn drain(&mut self) {
        let mut spans = 0;
        while let Ok(f) = self.rx.try_recv() {
            spans += f.span_count();
        }
        self.tracer.metrics().spans_dropped.add(spans);
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        // The task is gone (ended or aborted): nothing will take requests any more, so the
        // tracer stops queueing them (and counting them as dropped), as with no endpoint.
        self.tracer.set_state(OFF);
        let held: u64 = self.batch.iter().map(FinishedRequest::span_count).sum();
        self.tracer
            .metrics()
            .spans_dropped
            .add(held + std::mem::take(&mut self.in_flight));
        self.batch.clear();
        self.drain();
    }
}

impl Sink {
    /// Rebuilds the client when the endpoint or protocol changed.
    fn refresh(&mut self) {
        let control = self.tracer.control();
        let v = control.version();
        if self.version == Some(v) {
            return;
        }
        self.version = Some(v);
        let endpoint = control.otlp_endpoint().filter(|e| !e.is_empty());
        let protocol = control.otlp_protocol();
        self.client = match endpoint.as_deref().map(|e| (e, Client::new(e, protocol))) {
            None => None,
            Some((e, Ok(c))) => {
                info!(endpoint = e, ?protocol, "exporting traces over OTLP");
                Some(c)
            }
            Some((e, Err(err))) => {
                warn!(endpoint = e, error = %err, "cannot export traces");
                None
            }
        };
        self.tracer.set_state(if self.client.is_some() {
            EXPORTING
        } else {
            OFF
        });
    }

    /// Sends `p.batch` (emptied); false when the export failed.
    async fn export(&mut self, p: &mut Pending) -> bool {
        if p.batch.is_empty() {
            return true;
        }
        let spans: u64 = p.batch.iter().map(FinishedRequest::span_count).sum();
        let Some(client) = &mut self.client else {
            // The endpoint was cleared with requests queued: they have nowhere to go, and that
            // is no failure to back off from (the tracer is OFF now and queues nothing).
            p.batch.clear();
            self.tracer.metrics().spans_dropped.add(spans);
            return true;
        };
        p.in_flight = spans;
        let encoded = if spans <= ENCODE_INLINE_SPANS {
            let mut buf = Vec::with_capacity(p.batch.len() * 2048);
            otlp_wire::encode(&self.resource, &p.batch, &mut buf);
            p.batch.clear();
            Ok(buf)
        } else {
            let batch = std::mem::take(&mut p.batch);
            let resource = self.resource.clone();
            tokio::task::spawn_blocking(move || {
                let mut buf = Vec::with_capacity(batch.len() * 2048);
                otlp_wire::encode(&resource, &batch, &mut buf);
                buf
            })
            .await
            .map_err(|e| format!("encoding the batch failed: {e}"))
        };
        let result = match encoded {
            Ok(buf) => {
                match tokio::time::timeout(EXPORT_TIMEOUT, client.send(Bytes::from(buf))).await {
                    Ok(r) => r,
                    Err(_) => Err(format!("timed out after {EXPORT_TIMEOUT:?}")),
                }
            }
            Err(e) => Err(e),
        };
        p.in_flight = 0;
        let ok = result.is_ok();
        let dropped = match result {
            Ok(rejected) => rejected,
            Err(e) => {
                let now = Instant::now();
                if self
                    .last_warning
                    .is_none_or(|t| now.duration_since(t) >= WARN_EVERY)
                {
                    self.last_warning = Some(now);
                    warn!(error = %e, spans, "OTLP export failed; spans dropped");
                }
                spans
            }
        };
        self.tracer.metrics().spans_dropped.add(dropped);
        ok
    }
}

async fn run(
    tracer: Arc<Tracer>,
    resource: Resource,
    rx: mpsc::Receiver<FinishedRequest>,
    mut stop: watch::Receiver<bool>,
) {
    let mut sink = Sink {
        resource: otlp_wire::resource(&resource.attribute_pairs()).into(),
        tracer: tracer.clone(),
        version: None,
        client: None,
        last_warning: None,
    };
    let mut p = Pending {
        tracer,
        rx,
        batch: Vec::with_capacity(MAX_BATCH),
        in_flight: 0,
    };
    let mut backoff = FIRST_BACKOFF;
    'run: loop {
        sink.refresh();
        if *stop.borrow() {
            break;
        }
        tokio::select! {
            biased;
            r = stop.changed() => {
                if r.is_err() || *stop.borrow() {
                    break 'run;
                }
                continue;
            }
            r = p.rx.recv() => match r {
                Some(f) => p.batch.push(f),
                None => break 'run,
            },
            _ = tokio::time::sleep(REFRESH) => continue,
        }
        let deadline = tokio::time::Instant::now() + BATCH_DELAY;
        while p.batch.len() < MAX_BATCH && !*stop.borrow() {
            tokio::select! {
                biased;
                _ = stop.changed() => break,
                r = tokio::time::timeout_at(deadline, p.rx.recv()) => match r {
                    Ok(Some(f)) => p.batch.push(f),
                    _ => break,
                },
            }
        }
        if sink.export(&mut p).await {
            backoff = FIRST_BACKOFF;
            continue;
        }
        // The collector failed: stop queueing (requests count their spans as dropped and
        // build nothing) until the next attempt.
        sink.tracer.set_state(BACKING_OFF);
        let stopped = tokio::select! {
            _ = stop.changed() => true,
            _ = tokio::time::sleep(backoff) => false,
        };
        p.drain();
        backoff = (backoff * 2).min(MAX_BACKOFF);
        if stopped || *stop.borrow() {
            break;
        }
        // Try again with what comes next (or stay off: the endpoint may be gone).
        sink.tracer.set_state(if sink.client.is_some() {
            EXPORTING
        } else {
            OFF
        });
    }
    // Stopping: what is queued now goes out (the caller bounds how long this may take).
    p.rx.close();
    loop {
        while p.batch.len() < MAX_BATCH {
            match p.rx.try_recv() {
                Ok(f) => p.batch.push(f),
                Err(_) => break,
            }
        }
        if p.batch.is_empty() {
            break;
        }
        sink.export(&mut p).await;
    }
    sink.tracer.set_state(OFF);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{Attrs, KeyPrefix, Layer, SHARED_BY};
    use crate::{names, Timer};

    fn layer(name: &'static str, origin: Instant, start_us: u64, dur_us: u64) -> Layer {
        Layer {
            name,
            start: origin + Duration::from_micros(start_us),
            duration_ns: dur_us * 1000,
            attrs: Attrs::default(),
        }
    }

    fn finished(layers: Vec<Layer>, start: Instant) -> FinishedRequest {
        FinishedRequest {
            method: "etcdserverpb.KV/Put",
            trace_id: 0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10,
            span_id: 0xabcd,
            parent_span_id: None,
            link: None,
            sampled: true,
            slow: false,
            unix_start_ns: 1_000_000_000,
            start,
            duration_ns: 1_000_000,
            code: 0,
            root: Attrs::from_slice(&[("etcd.revision", 5), ("etcd.value_bytes", 3)]),
            key: KeyPrefix::new(b"foo"),
            layers,
        }
    }

    #[test]
    fn parents_by_containment() {
        // root ⊃ a ⊃ b; c after a; d equal to c (the earlier one is the parent).
        let p = parents(&[(10, 100), (20, 30), (100, 200), (100, 200), (0, 1000)]);
        assert_eq!(p, [Some(4), Some(0), Some(4), Some(2), None]);
        // Overlapping but not contained: siblings.
        assert_eq!(parents(&[(0, 10), (5, 15)]), [None, None]);
    }

    /// The quadratic definition `parents` replaced (for well-formed intervals).
    fn parents_quadratic(intervals: &[(u64, u64)]) -> Vec<Option<usize>> {
        intervals
            .iter()
            .enumerate()
            .map(|(i, &(s, e))| {
                let len = e - s;
                intervals
                    .iter()
                    .enumerate()
                    .filter(|&(j, &(sj, ej))| {
                        let lj = ej - sj;
                        j != i && sj <= s && ej >= e && (lj > len || (lj == len && j < i))
                    })
                    .min_by_key(|&(j, &(sj, ej))| (ej - sj, j))
                    .map(|(j, _)| j)
            })
            .collect()
    }

    #[test]
    fn parents_agree_with_the_quadratic_definition() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        for round in 0..3000 {
            let n = rng.gen_range(0..40);
            // Small coordinates: many shared starts, shared ends and identical intervals.
            let span = if round % 2 == 0 { 12 } else { 1000 };
            let intervals: Vec<(u64, u64)> = (0..n)
                .map(|_| {
                    let s = rng.gen_range(0..span);
                    (s, s + rng.gen_range(0..span))
                })
                .collect();
            assert_eq!(
                parents(&intervals),
                parents_quadratic(&intervals),
                "{intervals:?}"
            );
        }
        // An end before its start is an empty interval at its start.
        assert_eq!(parents(&[(0, 20), (10, 5)]), [None, Some(0)]);
        assert_eq!(parents(&[(0, 6), (10, 5)]), [None, None]);
    }

    #[test]
    fn parents_of_a_large_record_are_fast() {
        // 100k nested and sibling layers: quadratic would be 10^10 comparisons.
        let intervals: Vec<(u64, u64)> = (0..100_000u64)
            .map(|i| (i * 10, i * 10 + 5 + (i % 3)))
            .chain(std::iter::once((0, u64::MAX)))
            .collect();
        let p = parents(&intervals);
        assert_eq!(p[100_000], None);
        assert!(p[..100_000].iter().all(|&x| x == Some(100_000)));
    }

    #[test]
    fn a_put_becomes_a_tree_of_spans() {
        let o = Instant::now();
        let layers = vec![
            layer(names::WAL_APPEND, o, 20, 10).with(&[(SHARED_BY, 3)]),
            layer(names::WAL_FSYNC, o, 30, 100),
            layer(names::RAFT_PROPOSE_COMMIT, o, 10, 200).with(&[("raft.index", 9)]),
            layer(names::MVCC_PUT, o, 300, 50),
            layer(names::MVCC_TXN, o, 290, 100),
            layer(names::ETCDSERVER_APPLY, o, 250, 200),
        ];
        let f = finished(layers, o);
        let spans = spans(&f);
        assert_eq!(spans.len(), 7);
        let by_name = |n: &str| spans.iter().find(|s| s.name == n).unwrap();
        let root = by_name("etcdserverpb.KV/Put");
        assert_eq!(root.kind, SpanKind::Server as i32);
        assert!(root.parent_span_id.is_empty());
        assert_eq!(root.trace_id, f.trace_id.to_be_bytes());
        assert_eq!(root.start_time_unix_nano, 1_000_000_000);
        assert_eq!(root.end_time_unix_nano, 1_001_000_000);
        let int = |s: &Span, k: &str| {
            s.attributes.iter().find(|a| a.key == k).and_then(|a| {
                match a.value.as_ref()?.value.as_ref()? {
                    any_value::Value::IntValue(v) => Some(*v),
                    _ => None,
                }
            })
        };
        let string = |s: &Span, k: &str| {
            s.attributes.iter().find(|a| a.key == k).and_then(|a| {
                match a.value.as_ref()?.value.as_ref()? {
                    any_value::Value::StringValue(v) => Some(v.clone()),
                    _ => None,
                }
            })
        };
        assert_eq!(string(root, "rpc.method").as_deref(), Some("Put"));
        assert_eq!(
            string(root, "rpc.service").as_deref(),
            Some("etcdserverpb.KV")
        );
        assert_eq!(string(root, "etcd.key").as_deref(), Some("foo"));
        assert_eq!(int(root, "rpc.grpc.status_code"), Some(0));
        assert_eq!(int(root, "etcd.revision"), Some(5));
        assert!(root.status.is_none());
        let commit = by_name(names::RAFT_PROPOSE_COMMIT);
        assert_eq!(commit.parent_span_id, root.span_id);
        assert_eq!(int(commit, "raft.index"), Some(9));
        assert_eq!(by_name(names::WAL_APPEND).parent_span_id, commit.span_id);
        assert_eq!(int(by_name(names::WAL_APPEND), SHARED_BY), Some(3));
        assert_eq!(by_name(names::WAL_FSYNC).parent_span_id, commit.span_id);
        let apply = by_name(names::ETCDSERVER_APPLY);
        assert_eq!(apply.parent_span_id, root.span_id);
        let txn = by_name(names::MVCC_TXN);
        assert_eq!(txn.parent_span_id, apply.span_id);
        assert_eq!(by_name(names::MVCC_PUT).parent_span_id, txn.span_id);
        assert_eq!(by_name(names::MVCC_PUT).start_time_unix_nano, 1_000_300_000);
        assert_eq!(by_name(names::MVCC_PUT).end_time_unix_nano, 1_000_350_000);
        // Every span id is distinct and non-zero.
        let mut ids: Vec<&Vec<u8>> = spans.iter().map(|s| &s.span_id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), spans.len());
        assert!(spans.iter().all(|s| s.span_id != [0; 8]));
    }

    #[test]
    fn errors_and_remote_parents() {
        let mut f = finished(Vec::new(), Instant::now());
        f.code = 4;
        f.parent_span_id = Some(0x77);
        let root = &spans(&f)[0];
        assert_eq!(root.parent_span_id, 0x77u64.to_be_bytes());
        let st = root.status.as_ref().unwrap();
        assert_eq!(st.code, StatusCode::Error as i32);
        assert_eq!(st.message, "DEADLINE_EXCEEDED");
    }

    #[test]
    fn resource_and_request() {
        let r = Resource {
            member_name: "m1".into(),
            member_id: 0x8e9e05c52164694d,
            cluster_id: 0xcdf818194e3a8c32,
        };
        let t = Timer::start();
        let f = finished(vec![Layer::new(names::WAL_FSYNC, &t, 1)], Instant::now());
        let req = export_request(&r.attributes(), &[f.clone(), f]);
        let rs = &req.resource_spans[0];
        let attrs: Vec<(String, String)> = rs
            .resource
            .as_ref()
            .unwrap()
            .attributes
            .iter()
            .filter_map(|a| match a.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(v) => Some((a.key.clone(), v.clone())),
                _ => None,
            })
            .collect();
        assert!(attrs.contains(&("service.name".into(), "glassd".into())));
        assert!(attrs.contains(&("service.instance.id".into(), "m1".into())));
        assert!(attrs.contains(&("glass.member_id".into(), "8e9e05c52164694d".into())));
        assert!(attrs.contains(&("glass.cluster_id".into(), "cdf818194e3a8c32".into())));
        assert_eq!(rs.scope_spans[0].spans.len(), 4);
    }

    #[tokio::test]
    async fn a_dropped_exporter_counts_what_it_held_as_dropped() {
        // A collector that accepts connections (the kernel's backlog) and never answers.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", silent.local_addr().unwrap());
        let control = Arc::new(crate::TraceControl::new(
            1.0,
            Duration::from_secs(10),
            Some(endpoint),
        ));
        control.set_otlp_protocol(OtlpProtocol::Http);
        let tracer = Arc::new(Tracer::new(control, Arc::new(crate::Metrics::new())));
        let r = Resource {
            member_name: "m".into(),
            member_id: 1,
            cluster_id: 2,
        };
        let exporter = Exporter::start(tracer.clone(), r).unwrap();
        let finish = |n: usize| {
            let mut spans = 0;
            for _ in 0..n {
                let req = tracer.begin("m", Instant::now(), None);
                req.push(Layer::new(names::MVCC_PUT, &Timer::start(), 1));
                assert!(tracer.finish(&req, 0).exported.is_some());
                spans += 2;
            }
            spans
        };
        while !tracer.is_exporting() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // A batch goes out (and hangs), then more is queued behind it.
        let mut spans = finish(10);
        tokio::time::sleep(BATCH_DELAY + Duration::from_millis(200)).await;
        spans += finish(5);
        assert_eq!(tracer.metrics().spans_dropped.get(), 0);
        drop(exporter);
        let until = Instant::now() + Duration::from_secs(2);
        while tracer.metrics().spans_dropped.get() < spans && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(tracer.metrics().spans_dropped.get(), spans);
        // With its exporter gone the tracer stops exporting: later sampled requests are
        // neither queued nor counted as dropped.
        assert!(!tracer.is_exporting());
        let req = tracer.begin("m", Instant::now(), None);
        assert!(tracer.finish(&req, 0).exported.is_none());
        assert_eq!(tracer.metrics().spans_dropped.get(), spans);
    }

    #[test]
    fn child_ids_are_distinct() {
        for root in [1u64, 0xabcd, u64::MAX] {
            let mut ids: Vec<u64> = (0..1000).map(|i| child_span_id(root, i)).collect();
            ids.push(root);
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(ids.len(), 1001);
            assert!(!ids.contains(&0));
        }
    }
}
