//! Per-request traces of a real `glassd` process, exported over OTLP to a collector running in
//! this test: over gRPC (opentelemetry-proto's `TraceService`, what Jaeger receives on 4317)
//! and over HTTP/protobuf (`POST /v1/traces`, Jaeger's 4318).
//!
//! - a Put sampled at ratio 1 is one trace: the root span `etcdserverpb.KV/Put` (method,
//!   status code, key, sizes, revision) with a child span per layer it crossed, parents by
//!   the call structure, and the member's resource attributes;
//! - at ratio 0 with a slow threshold of 0 the Put is still exported (tail capture);
//! - an incoming `traceparent` decides (parent-based sampling) and its trace id is kept;
//! - with the collector unreachable, Puts go on and `glass_trace_spans_dropped_total` rises;
//! - an endpoint set while running (`SetFlag otlp-endpoint`) is followed by the exporter.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_client::Client;
use glass_tests::member::{Kind, Member, MEMBER_NAME};
use glass_tests::{http_get, metric};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

/// A span with its resource's attributes.
type Spanned = (Vec<KeyValue>, Span);

/// What the collector received: every span with its resource's attributes.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<Spanned>>>);

impl Received {
    fn store(&self, req: ExportTraceServiceRequest) {
        let mut all = self.0.lock().unwrap();
        for rs in req.resource_spans {
            let resource = rs.resource.map(|r| r.attributes).unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    all.push((resource.clone(), s));
                }
            }
        }
    }

    fn spans(&self) -> Vec<Spanned> {
        self.0.lock().unwrap().clone()
    }

    /// Waits until a root span named `name` (with `pred`) arrived and the rest of its trace
    /// with it; returns the trace's spans (and the resource of its root).
    async fn trace(&self, name: &str, pred: impl Fn(&Span) -> bool) -> (Vec<KeyValue>, Vec<Span>) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let all = self.spans();
            if let Some((resource, root)) = all
                .iter()
                .find(|(_, s)| s.name == name && is_root_of_request(s) && pred(s))
            {
                // A request's spans travel in one export: they are all here.
                let trace: Vec<Span> = all
                    .iter()
                    .filter(|(_, s)| s.trace_id == root.trace_id)
                    .map(|(_, s)| s.clone())
                    .collect();
                return (resource.clone(), trace);
            }
            assert!(
                Instant::now() < deadline,
                "no {name} trace arrived; got {:?}",
                all.iter().map(|(_, s)| &s.name).collect::<BTreeSet<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A request's root span: kind SERVER.
fn is_root_of_request(s: &Span) -> bool {
    s.kind == opentelemetry_proto::tonic::trace::v1::span::SpanKind::Server as i32
}

struct Grpc(Received);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.store(req.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// An OTLP collector on a free loopback port, until dropped.
struct Collector {
    addr: SocketAddr,
    received: Received,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Collector {
    /// OTLP/gRPC.
    async fn grpc() -> Collector {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Received::default();
        let svc = TraceServiceServer::new(Grpc(received.clone()));
        let task = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
                .unwrap();
        });
        Collector {
            addr,
            received,
            task,
        }
    }

    /// OTLP/HTTP: `POST /v1/traces` with a protobuf `ExportTraceServiceRequest`.
    async fn http() -> Collector {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Received::default();
        let r = received.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let r = r.clone();
                    async move {
                        let ct = headers
                            .get("content-type")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default();
                        if ct != "application/x-protobuf" {
                            return (axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE, Vec::new());
                        }
                        match ExportTraceServiceRequest::decode(body) {
                            Ok(req) => {
                                r.store(req);
                                let resp = ExportTraceServiceResponse {
                                    partial_success: None,
                                };
                                (axum::http::StatusCode::OK, resp.encode_to_vec())
                            }
                            Err(_) => (axum::http::StatusCode::BAD_REQUEST, Vec::new()),
                        }
                    }
                },
            ),
        );
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Collector {
            addr,
            received,
            task,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn start(dir: &std::path::Path, args: &[&str]) -> Member {
    let dir = dir.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Member::start(Kind::Glassd, &dir, &args)
    })
    .await
    .unwrap()
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attrs
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.as_ref())
}

fn int(attrs: &[KeyValue], key: &str) -> Option<i64> {
    match attr(attrs, key)? {
        any_value::Value::IntValue(v) => Some(*v),
        _ => None,
    }
}

fn string(attrs: &[KeyValue], key: &str) -> Option<String> {
    match attr(attrs, key)? {
        any_value::Value::StringValue(v) => Some(v.clone()),
        _ => None,
    }
}

fn boolean(attrs: &[KeyValue], key: &str) -> Option<bool> {
    match attr(attrs, key)? {
        any_value::Value::BoolValue(v) => Some(*v),
        _ => None,
    }
}

/// The layers a Put crosses on a single member, and the parent each one has in the trace
/// (`None`: the root).
const PUT_LAYERS: &[(&str, Option<&str>)] = &[
    ("raft.propose_commit", None),
    ("wal.append", Some("raft.propose_commit")),
    ("wal.fsync", Some("raft.propose_commit")),
    ("raft.apply_queue", None),
    ("etcdserver.apply", None),
    ("backend.tx_lock_wait", Some("etcdserver.apply")),
    ("mvcc.txn", Some("etcdserver.apply")),
    ("mvcc.put", Some("mvcc.txn")),
    ("mvcc.treeindex_lock_wait", Some("mvcc.put")),
    ("mvcc.treeindex_lock_hold", Some("mvcc.put")),
    ("backend.write_buffer", Some("mvcc.txn")),
];

/// Checks the trace of one Put of `key` = `value` that got `revision`, exported by `m`.
fn check_put_trace(m: &Member, resource: &[KeyValue], trace: &[Span], put: (&str, &str, i64)) {
    let (key, value, revision) = put;
    let names: Vec<&str> = trace.iter().map(|s| s.name.as_str()).collect();
    let roots: Vec<&Span> = trace.iter().filter(|s| is_root_of_request(s)).collect();
    assert_eq!(roots.len(), 1, "one request in the trace: {names:?}");
    let root = roots[0];
    assert_eq!(root.name, "etcdserverpb.KV/Put");
    assert!(root.parent_span_id.is_empty(), "no caller's context");

    // The root: method, code, key, sizes, revision.
    let a = &root.attributes;
    assert_eq!(string(a, "rpc.system").as_deref(), Some("grpc"));
    assert_eq!(string(a, "rpc.service").as_deref(), Some("etcdserverpb.KV"));
    assert_eq!(string(a, "rpc.method").as_deref(), Some("Put"));
    assert_eq!(int(a, "rpc.grpc.status_code"), Some(0));
    assert_eq!(string(a, "etcd.key").as_deref(), Some(key));
    assert_eq!(int(a, "etcd.keys"), Some(1));
    assert_eq!(int(a, "etcd.key_bytes"), Some(key.len() as i64));
    assert_eq!(int(a, "etcd.value_bytes"), Some(value.len() as i64));
    assert_eq!(int(a, "etcd.revision"), Some(revision));
    assert!(root.status.is_none(), "an OK request");

    // The resource: who exported.
    assert_eq!(string(resource, "service.name").as_deref(), Some("glassd"));
    assert_eq!(
        string(resource, "service.instance.id").as_deref(),
        Some(MEMBER_NAME)
    );
    let id = m.identity();
    assert_eq!(
        string(resource, "glass.member_id"),
        Some(format!("{:x}", id.member_id))
    );
    assert_eq!(
        string(resource, "glass.cluster_id"),
        Some(format!("{:x}", id.cluster_id))
    );

    // A child per layer, under the right parent, within its parent's time.
    let by_id: BTreeMap<&[u8], &Span> = trace.iter().map(|s| (s.span_id.as_slice(), s)).collect();
    assert_eq!(by_id.len(), trace.len(), "span ids are unique");
    for (layer, parent) in PUT_LAYERS {
        let spans: Vec<&&Span> = by_id.values().filter(|s| s.name == *layer).collect();
        assert!(!spans.is_empty(), "no {layer} span in {names:?}");
        for s in spans {
            assert_eq!(s.trace_id, root.trace_id);
            let p = by_id
                .get(s.parent_span_id.as_slice())
                .unwrap_or_else(|| panic!("{layer}'s parent is not in the trace"));
            assert_eq!(
                p.name,
                parent.unwrap_or("etcdserverpb.KV/Put"),
                "{layer}'s parent"
            );
            assert!(
                s.start_time_unix_nano >= p.start_time_unix_nano
                    && s.end_time_unix_nano <= p.end_time_unix_nano,
                "{layer} within {}",
                p.name
            );
        }
    }
    // Shared work says how many requests it served; the commit knows its entry.
    let fsync = trace.iter().find(|s| s.name == "wal.fsync").unwrap();
    assert!(int(&fsync.attributes, "glass.shared_by").unwrap() >= 1);
    let commit = trace
        .iter()
        .find(|s| s.name == "raft.propose_commit")
        .unwrap();
    assert!(int(&commit.attributes, "raft.index").unwrap() > 0);
    // Every span but the root is a layer's.
    for s in trace {
        assert!(
            is_root_of_request(s) || s.name.contains('.') && !s.name.contains('/'),
            "{}",
            s.name
        );
    }
}

/// One Put through etcd-client; its revision.
async fn put(m: &Member, key: &str, value: &str) -> i64 {
    let mut c = Client::connect([m.endpoint()], None).await.unwrap();
    let r = c.put(key, value, None).await.unwrap();
    r.header().unwrap().revision()
}

/// A root span of a Put of `key`.
fn put_of(key: &'static str) -> impl Fn(&Span) -> bool {
    move |s| string(&s.attributes, "etcd.key").as_deref() == Some(key)
}

/// Sampled at ratio 1, then (another member) unsampled at ratio 0 but slower than a threshold
/// of 0: both Puts arrive as full traces.
async fn sampled_and_slow_puts(collector: Collector, protocol: &str) {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = collector.endpoint();
    let base = [
        "--otlp-endpoint",
        endpoint.as_str(),
        "--otlp-protocol",
        protocol,
    ];

    let mut m = start(
        &dir.path().join("sampled"),
        &[&base[..], &["--trace-sample-ratio", "1"]].concat(),
    )
    .await;
    let rev = put(&m, "foo", "bar").await;
    let (resource, trace) = collector
        .received
        .trace("etcdserverpb.KV/Put", put_of("foo"))
        .await;
    check_put_trace(&m, &resource, &trace, ("foo", "bar", rev));
    let root = trace.iter().find(|s| is_root_of_request(s)).unwrap();
    assert_eq!(boolean(&root.attributes, "glass.sampled"), Some(true));
    // Exactly one trace for the Put.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let puts: BTreeSet<Vec<u8>> = collector
        .received
        .spans()
        .into_iter()
        .filter(|(_, s)| s.name == "etcdserverpb.KV/Put")
        .map(|(_, s)| s.trace_id)
        .collect();
    assert_eq!(puts.len(), 1, "one trace per Put");
    m.stop();

    let m = start(
        &dir.path().join("slow"),
        &[
            &base[..],
            &[
                "--trace-sample-ratio",
                "0",
                "--slow-request-threshold",
                "0s",
            ],
        ]
        .concat(),
    )
    .await;
    let rev = put(&m, "slow", "value").await;
    let (resource, trace) = collector
        .received
        .trace("etcdserverpb.KV/Put", put_of("slow"))
        .await;
    check_put_trace(&m, &resource, &trace, ("slow", "value", rev));
    let root = trace.iter().find(|s| is_root_of_request(s)).unwrap();
    assert_eq!(boolean(&root.attributes, "glass.sampled"), Some(false));
    assert_eq!(boolean(&root.attributes, "glass.slow"), Some(true));
    let (_, metrics) = http_get(m.client_port(), "/metrics");
    assert!(
        metric(&metrics, "glass_slow_requests_total").unwrap_or(0.0) >= 1.0,
        "slow requests are counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_grpc_export() {
    sampled_and_slow_puts(Collector::grpc().await, "grpc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_http_export() {
    sampled_and_slow_puts(Collector::http().await, "http").await;
}

/// etcd's PutRequest/PutResponse, the fields this test uses (glassd's generated types are not
/// a dependency of the tests: they drive the binary as a client would).
#[derive(Clone, PartialEq, prost::Message)]
struct PutRequest {
    #[prost(bytes = "vec", tag = "1")]
    key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PutResponse {
    #[prost(message, optional, tag = "1")]
    header: Option<ResponseHeader>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ResponseHeader {
    #[prost(uint64, tag = "1")]
    cluster_id: u64,
    #[prost(uint64, tag = "2")]
    member_id: u64,
    #[prost(int64, tag = "3")]
    revision: i64,
    #[prost(uint64, tag = "4")]
    raft_term: u64,
}

/// A Put carrying `traceparent` as gRPC metadata.
async fn put_with_traceparent(m: &Member, key: &str, traceparent: &str) -> i64 {
    let channel = tonic::transport::Endpoint::from_shared(m.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let mut req = tonic::Request::new(PutRequest {
        key: key.into(),
        value: b"v".to_vec(),
    });
    req.metadata_mut()
        .insert("traceparent", traceparent.parse().unwrap());
    let codec = tonic_prost::ProstCodec::<PutRequest, PutResponse>::default();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/etcdserverpb.KV/Put");
    let resp = grpc.unary(req, path, codec).await.unwrap().into_inner();
    resp.header.unwrap().revision
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incoming_trace_context_decides() {
    let collector = Collector::grpc().await;
    let dir = tempfile::tempdir().unwrap();
    let endpoint = collector.endpoint();
    let m = start(
        dir.path(),
        &[
            "--otlp-endpoint",
            &endpoint,
            "--trace-sample-ratio",
            "0",
            // No request is slow: only the callers' flags decide.
            "--slow-request-threshold",
            "1h",
        ],
    )
    .await;
    let unsampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    put_with_traceparent(&m, "unsampled", unsampled).await;
    let sampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let rev = put_with_traceparent(&m, "sampled", sampled).await;
    let (resource, trace) = collector
        .received
        .trace("etcdserverpb.KV/Put", put_of("sampled"))
        .await;
    let root = trace.iter().find(|s| is_root_of_request(s)).unwrap();
    assert_eq!(
        root.trace_id,
        0x4bf92f3577b34da6a3ce929d0e0e4736u128.to_be_bytes(),
        "the caller's trace id"
    );
    assert_eq!(
        root.parent_span_id,
        0x00f067aa0ba902b7u64.to_be_bytes(),
        "the caller's span is the parent"
    );
    assert_eq!(boolean(&root.attributes, "glass.sampled"), Some(true));
    check_put_trace_parented(&m, &resource, &trace, rev);
    // The unsampled caller's Put (fast, ratio 0) was not exported; it was queued before the
    // sampled one, so it would have arrived by now.
    let unsampled_id = 0x0af7651916cd43dd8448eb211c80319cu128.to_be_bytes();
    assert!(
        collector
            .received
            .spans()
            .iter()
            .all(|(_, s)| s.trace_id != unsampled_id),
        "an unsampled caller's request is not exported"
    );
}

/// [`check_put_trace`] for a root whose parent is the caller's span (not in the trace).
fn check_put_trace_parented(m: &Member, resource: &[KeyValue], trace: &[Span], rev: i64) {
    let mut t = trace.to_vec();
    for s in &mut t {
        if is_root_of_request(s) {
            s.parent_span_id.clear();
        }
    }
    check_put_trace(m, resource, &t, ("sampled", "v", rev));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_collector_drops_and_counts() {
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let dir = tempfile::tempdir().unwrap();
    let m = start(
        dir.path(),
        &["--otlp-endpoint", &endpoint, "--trace-sample-ratio", "1"],
    )
    .await;
    let c = Client::connect([m.endpoint()], None).await.unwrap();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let mut c = c.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                c.put(format!("k{w}/{i}"), "v", None).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(30), "400 puts took {took:?}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (code, body) = http_get(m.client_port(), "/metrics");
        assert_eq!(code, 200);
        let dropped = metric(&body, "glass_trace_spans_dropped_total").unwrap_or(0.0);
        // Every Put is a dozen spans or so.
        if dropped >= 400.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "glass_trace_spans_dropped_total stays at {dropped}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exporter_follows_an_endpoint_set_while_running() {
    use glassd::pb::glass::v1::diagnostics_client::DiagnosticsClient;
    use glassd::pb::glass::v1::SetFlagRequest;

    let collector = Collector::grpc().await;
    let dir = tempfile::tempdir().unwrap();
    // No endpoint at start: nothing is exported.
    let m = start(dir.path(), &["--trace-sample-ratio", "1"]).await;
    put(&m, "before", "v").await;
    let mut d = DiagnosticsClient::connect(m.endpoint()).await.unwrap();
    d.set_flag(SetFlagRequest {
        name: "otlp-endpoint".into(),
        value: collector.endpoint(),
        persist: false,
    })
    .await
    .unwrap();
    // The exporter picks the endpoint up within a second; Puts until one arrives.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut i = 0;
    loop {
        put(&m, &format!("after{i}"), "v").await;
        let arrived = collector
            .received
            .spans()
            .iter()
            .any(|(_, s)| s.name == "etcdserverpb.KV/Put");
        if arrived {
            break;
        }
        assert!(Instant::now() < deadline, "no Put exported after SetFlag");
        i += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, trace) = collector
        .received
        .trace("etcdserverpb.KV/Put", |_| true)
        .await;
    let root = trace.iter().find(|s| is_root_of_request(s)).unwrap();
    let key = string(&root.attributes, "etcd.key").unwrap();
    assert!(
        key.starts_with("after"),
        "{key}: a Put from before the endpoint was set"
    );
}

/// `--glass-measurements`: `histograms` keeps the histograms but no per-request records (no
/// tail capture even at a slow threshold of 0), `off` records no histogram either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measurements_can_be_turned_off_for_measuring_their_cost() {
    for (mode, histograms) in [("histograms", true), ("off", false)] {
        let dir = tempfile::tempdir().unwrap();
        let m = start(
            dir.path(),
            &[
                "--glass-measurements",
                mode,
                "--slow-request-threshold",
                "0s",
            ],
        )
        .await;
        put(&m, "k", "v").await;
        let (_, metrics) = http_get(m.client_port(), "/metrics");
        let puts = metric(&metrics, "glass_mvcc_put_seconds_count").unwrap_or(0.0);
        assert_eq!(puts > 0.0, histograms, "{mode}: mvcc.put histogram {puts}");
        assert_eq!(
            metric(&metrics, "glass_slow_requests_total"),
            Some(0.0),
            "{mode}: no records, no tail capture"
        );
        // Counters still count.
        assert!(metrics.contains("grpc_server_handled_total"), "{mode}");
    }
}
