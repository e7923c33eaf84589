//! The gRPC API layer: etcd's v3 services (KV, Watch, Lease, Cluster, Maintenance, Auth, and
//! v3election/v3lock), wire-identical to etcd 3.4, and the HTTP endpoints etcd serves beside
//! them on the client port (`/metrics`, `/health`, `/version`).
//!
//! Contract: this is the only layer that speaks `tonic::Status`; the layers below return their
//! own error enums and `status.rs` maps them to etcd's codes and messages. Requests are checked
//! here as etcd's `v3rpc` checks them (empty keys, txn op counts, duplicate keys) before they
//! reach the server; every response header carries the cluster id, this member's id, the raft
//! term and (when the request did not set one) the store's revision. Every unary RPC is
//! measured (`api.unary`, and counted per method and code in `grpc_handled`) and keeps a
//! per-request record of the layers it crossed (`telemetry::request`), which the server's
//! [`telemetry::Tracer`] samples (honouring an incoming W3C `traceparent`), keeps when slow,
//! and exports.
//!
//! # Layout
//! - `authority` — the connection wrapper that repairs the `:authority` etcd's clients send
//!   (`http://host:port`), which h2 would refuse;
//! - `kv`, `maintenance`, `cluster` — etcd's services built so far;
//! - `diagnostics` — Glass's `glass.v1.Diagnostics`: snapshots, slow requests, runtime flags;
//! - `unimplemented` — the services registered but not built yet: every RPC `UNIMPLEMENTED`;
//! - `http` — `/metrics`, `/health`, `/version`;
//! - `status` — etcd's gRPC errors (codes and messages, character for character) and the
//!   mapping of the lower layers' errors onto them;
//! - this file — [`serve`], headers, the per-RPC measurement.

mod authority;
mod cluster;
mod diagnostics;
mod http;
mod kv;
mod maintenance;
pub mod status;
mod unimplemented;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use telemetry::{names, request, Timer, TraceContext};
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;
use tonic::{Response, Status};
use tracing::{debug_span, warn};

pub use authority::AuthorityFix;
pub use cluster::ClusterService;
pub use diagnostics::DiagnosticsService;
pub use kv::KvService;
pub use maintenance::MaintenanceService;
pub use unimplemented::NotBuilt;

use crate::etcdserver::EtcdServer;
use crate::flags::RuntimeFlags;
use crate::pb::etcdserverpb::auth_server::AuthServer;
use crate::pb::etcdserverpb::cluster_server::ClusterServer;
use crate::pb::etcdserverpb::kv_server::KvServer;
use crate::pb::etcdserverpb::lease_server::LeaseServer;
use crate::pb::etcdserverpb::maintenance_server::MaintenanceServer;
use crate::pb::etcdserverpb::watch_server::WatchServer;
use crate::pb::etcdserverpb::ResponseHeader;
use crate::pb::glass::v1::diagnostics_server::DiagnosticsServer;
use crate::pb::v3electionpb::election_server::ElectionServer;
use crate::pb::v3lockpb::lock_server::LockServer;

/// etcd's `grpcOverheadBytes`: the gRPC message limit is `--max-request-bytes` (here: the
/// most it may be raised to while running) plus this, so that a request just over the limit
/// reaches the server and gets etcd's own error.
pub const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// Fills response headers (etcd's `v3rpc/header.go`).
#[derive(Debug, Clone)]
pub struct Headers {
    server: Arc<EtcdServer>,
}

impl Headers {
    pub fn new(server: Arc<EtcdServer>) -> Self {
        Headers { server }
    }

    pub fn fill(&self, h: &mut Option<ResponseHeader>) {
        let h = self.fill_ids(h);
        if h.revision == 0 {
            h.revision = self.server.kv().current_revision();
        }
    }

    /// Ids and term only: the Cluster service's headers carry no revision in etcd.
    pub fn fill_ids<'h>(&self, h: &'h mut Option<ResponseHeader>) -> &'h mut ResponseHeader {
        let h = h.get_or_insert_with(ResponseHeader::default);
        h.cluster_id = self.server.cluster_id();
        h.member_id = self.server.id();
        h.raft_term = self.server.term();
        h
    }
}

/// Runs one unary RPC under its span, measures it, counts it by status code; see
/// [`observe_traced`] (this is it without a caller's trace context).
pub(crate) async fn observe<T>(
    server: &EtcdServer,
    method: &'static str,
    f: impl Future<Output = Result<T, Status>>,
) -> Result<Response<T>, Status> {
    observe_traced(server, method, None, f).await
}

/// The caller's W3C trace context (`traceparent` metadata), if it sent a valid one.
pub(crate) fn trace_parent<R>(req: &tonic::Request<R>) -> Option<TraceContext> {
    req.metadata()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(TraceContext::from_traceparent)
}

/// [`observe`] under the caller's trace context: the request's record (the current request
/// of whichever thread polls `f`, carried by its proposal to the raft thread and the applier)
/// goes to the server's tracer when the RPC ends.
pub(crate) async fn observe_traced<T>(
    server: &EtcdServer,
    method: &'static str,
    parent: Option<TraceContext>,
    f: impl Future<Output = Result<T, Status>>,
) -> Result<Response<T>, Status> {
    let timer = Timer::start();
    let tracer = server.tracer();
    // No record at all with --glass-measurements=histograms|off (measuring what they cost).
    let trace = tracer
        .records()
        .then(|| tracer.begin(method, timer.started_at(), parent));
    // A client that cancels or times out drops this future: the guard still ends the request
    // (as CANCELLED), so the slowest requests reach the slow ring and the counters too.
    let mut guard = Finish {
        server,
        method,
        timer: &timer,
        trace: trace.clone(),
        done: false,
    };
    let span = debug_span!(names::API_UNARY, method, code = tracing::field::Empty);
    let r = match trace {
        Some(trace) => request::scope(trace, span.clone(), f).await,
        None => tracing::Instrument::instrument(f, span.clone()).await,
    };
    let code = match &r {
        Ok(_) => tonic::Code::Ok,
        Err(s) => s.code(),
    };
    span.record("code", code as i32);
    guard.finish(code);
    r.map(Response::new)
}

/// Ends an RPC's measurement and record once, when it answers or when it is dropped.
struct Finish<'a> {
    server: &'a EtcdServer,
    method: &'static str,
    timer: &'a Timer,
    trace: Option<Arc<telemetry::request::RequestTrace>>,
    done: bool,
}

impl Finish<'_> {
    fn finish(&mut self, code: tonic::Code) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let m = self.server.metrics();
        let ns = self.timer.elapsed_ns();
        m.api_unary.record(ns);
        if let Some(h) = m.kv_latency.get(self.method) {
            h.record(ns);
        }
        m.grpc_handled.inc(self.method, code as i32);
        if let Some(trace) = &self.trace {
            self.server.tracer().finish(trace, code as i32);
        }
    }
}

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        self.finish(tonic::Code::Cancelled);
    }
}

/// Every gRPC service and the HTTP endpoints, as one router.
fn routes(
    server: &Arc<EtcdServer>,
    flags: &Arc<RuntimeFlags>,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Routes {
    // The message limit is fixed here, so it admits the largest `--max-request-bytes` a
    // runtime change may set (`flags::request_bytes_ceiling`: at least etcd's recommended
    // 10 MiB); the server refuses proposals over the limit in force with etcd's error.
    let max_recv = usize::try_from(flags.request_bytes_ceiling())
        .unwrap_or(usize::MAX)
        .saturating_add(GRPC_OVERHEAD_BYTES);
    let grpc = Routes::new(
        KvServer::new(KvService::new(server.clone()))
            .max_decoding_message_size(max_recv)
            .max_encoding_message_size(usize::MAX),
    )
    .add_service(
        MaintenanceServer::new(MaintenanceService::new(server.clone()))
            .max_decoding_message_size(max_recv)
            .max_encoding_message_size(usize::MAX),
    )
    .add_service(ClusterServer::new(ClusterService::new(server.clone())))
    .add_service(WatchServer::new(NotBuilt))
    .add_service(LeaseServer::new(NotBuilt))
    .add_service(AuthServer::new(NotBuilt))
    .add_service(LockServer::new(NotBuilt))
    .add_service(ElectionServer::new(NotBuilt))
    .add_service(DiagnosticsServer::new(DiagnosticsService::new(
        server.clone(),
        flags.clone(),
        stop.clone(),
    )));
    let router = http::routes(server.clone()).merge(grpc.into_axum_router());
    Routes::from(router)
}

/// Serves the client API (gRPC and HTTP) on every `client` listener and the HTTP endpoints
/// alone on every `metrics` listener (`--listen-metrics-urls`) until `shutdown` completes;
/// then stops accepting and drains the connections in flight.
pub async fn serve(
    server: Arc<EtcdServer>,
    flags: Arc<RuntimeFlags>,
    client: Vec<TcpListener>,
    metrics: Vec<TcpListener>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let both = client
        .into_iter()
        .map(|l| (l, routes(&server, &flags, &stop_rx)))
        .chain(
            metrics
                .into_iter()
                .map(|l| (l, Routes::from(http::routes(server.clone())))),
        );
    for (listener, routes) in both {
        let mut stop = stop_rx.clone();
        // Every connection is read through AuthorityFix: etcdctl's `:authority` would make h2
        // reset its Maintenance calls.
        let incoming = TcpIncoming::from(listener)
            .with_nodelay(Some(true))
            .map(|conn| conn.map(AuthorityFix::new));
        tasks.spawn(async move {
            Server::builder()
                .accept_http1(true)
                .add_routes(routes)
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
        });
    }
    shutdown.await;
    let _ = stop_tx.send(true);
    let mut result = Ok(());
    let drain = async {
        while let Some(r) = tasks.join_next().await {
            if let Ok(Err(e)) = r {
                result = Err(e);
            }
        }
    };
    // As etcd's GracefulStop with a deadline: a response that never ends (a client stuck on
    // a stream) must not keep the member from stopping.
    if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
        warn!(
            timeout = ?DRAIN_TIMEOUT,
            "connections still open after the drain timeout; closing them"
        );
        tasks.abort_all();
    }
    result
}

/// How long [`serve`] waits, once stopping, for the responses in flight.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
