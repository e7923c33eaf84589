//! glassd: an etcd-compatible key-value server that shows where every millisecond goes.
//!
//! # Layout
//! The modules follow etcd's layers; calls only go down:
//!
//! ```text
//!   api                            etcd's gRPC services (KV, Maintenance, Cluster; the rest
//!    │                             UNIMPLEMENTED) and /metrics, /health, /version
//!    └ etcdserver                  the server: propose and wait, read index, the applier;
//!       │                          the raft node (Ready loop thread); alarms, quota, members
//!       ├ raft                     raft-rs storage over the WAL, .snap files, raftpb codec
//!       │  └ storage::wal          etcd's WAL format: segments, chained CRC, repair
//!       └ storage::mvcc, lease     the revisioned kv store: txns, treeIndex, compaction
//!          └ storage::backend      batch tx, concurrent reads, defrag, hash
//!             └ storage::btree     the bbolt-format file: pages, freelists, transactions
//! ```
//!
//! Beside the layers, `config` reads etcd's flags, `ETCD_*` variables and YAML config file into
//! a validated [`config::Config`] that `main` hands to [`run`]; `flags` ([`flags::RuntimeFlags`])
//! keeps the configuration in force while running — every setting with its source — changes
//! the `[runtime]` ones on the live member (api's `glass.v1.Diagnostics/SetFlag`) and persists
//! them on request to `<data-dir>/glass-flags.yaml`.
//!
//! Every layer records its measurements through the `telemetry` crate's vocabulary: an
//! always-on histogram and a `tracing` span per measurement.

pub mod api;
pub mod config;
pub mod etcdserver;
pub mod flags;
pub mod pb;
pub mod raft;
pub mod storage;

use std::future::Future;

use tokio::net::TcpListener;
use tracing::info;

use etcdserver::{EtcdServer, ServerConfig, ServerError};

/// How long stopping waits for the trace exporter to send what is queued.
const EXPORTER_SHUTDOWN: std::time::Duration = std::time::Duration::from_secs(2);

/// Why [`run`] stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("cannot listen on {url}: {source}")]
    Listen { url: String, source: std::io::Error },
    #[error("serving failed: {0}")]
    Serve(#[from] tonic::transport::Error),
    #[error("the member failed: {0}")]
    Failed(String),
}

async fn listen(urls: &[config::Url]) -> Result<Vec<TcpListener>, RunError> {
    let mut out = Vec::new();
    for u in urls {
        if u.scheme != "http" {
            return Err(RunError::Config(format!(
                "{u}: only http:// listeners are supported (TLS and unix sockets come later)"
            )));
        }
        let l = TcpListener::bind(u.host_port())
            .await
            .map_err(|source| RunError::Listen {
                url: u.to_string(),
                source,
            })?;
        out.push(l);
    }
    Ok(out)
}

/// Aborts a background task when dropped (also when `run` is cancelled).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Waits until the member knows a leader and has applied what was committed when it started.
async fn wait_ready(server: &EtcdServer, within: std::time::Duration) -> Result<(), RunError> {
    let deadline = tokio::time::Instant::now() + within;
    let target = server.raft().status().commit;
    loop {
        let st = server.raft().status();
        if st.leader != 0 && st.applied >= target {
            return Ok(());
        }
        if let Some(f) = server.failure() {
            return Err(RunError::Failed(f));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(RunError::Failed(format!(
                "not ready after {within:?}: leader {:x}, applied {} of {target}",
                st.leader, st.applied
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Runs one member as `cfg` says until `shutdown` completes: opens the data directory, starts
/// raft and the applier, serves the client URLs (gRPC and HTTP) and the metrics URLs, then
/// stops accepting, drains requests in flight and closes the member cleanly.
///
/// `log` and `trace` are the process's telemetry controls (from `main`'s `telemetry::init`):
/// runtime flag changes act on them. Runtime flags persisted in the data dir are applied over
/// `cfg` first.
pub async fn run(
    cfg: config::Config,
    metrics: std::sync::Arc<telemetry::Metrics>,
    log: telemetry::Guard,
    trace: std::sync::Arc<telemetry::TraceControl>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let (cfg, persisted) = flags::load_persisted(cfg);
    let scfg = ServerConfig::from_config(&cfg, metrics, trace.clone())?;
    let ready_within = 10 * scfg.election_timeout + std::time::Duration::from_secs(60);
    // Listen first: a taken port fails before the data directory is touched.
    let client = listen(&cfg.listen_client_urls).await?;
    let metrics_l = listen(&cfg.listen_metrics_urls).await?;
    let server = tokio::task::spawn_blocking(move || EtcdServer::start(scfg))
        .await
        .map_err(|e| RunError::Failed(e.to_string()))??;
    // etcd serves clients once the member is ready (a leader known and the log replayed):
    // before that every write would fail with "proposal dropped".
    if let Err(e) = wait_ready(&server, ready_within).await {
        let s2 = server.clone();
        let _ = tokio::task::spawn_blocking(move || s2.stop()).await;
        return Err(e);
    }
    info!(
        name = %cfg.name,
        client_urls = %cfg.listen_client_urls.iter().map(|u| u.to_string()).collect::<Vec<_>>().join(","),
        "ready to serve client requests"
    );
    // The compactor follows --auto-compaction-retention through a watch channel, so that a
    // runtime change restarts its schedule.
    let (compaction, compaction_rx) = tokio::sync::watch::channel(flags::auto_compaction(&cfg));
    let compactor = AbortOnDrop(tokio::spawn(etcdserver::compactor_run_watched(
        server.clone(),
        compaction_rx,
    )));
    let handles = flags::Handles {
        server: server.clone(),
        log,
        trace,
        compaction,
    };
    // Always running: the endpoint may be set (or changed) while running; without one the
    // exporter idles and nothing is queued.
    let exporter = telemetry::Exporter::start(
        server.tracer().clone(),
        telemetry::Resource {
            member_name: cfg.name.clone(),
            member_id: server.id(),
            cluster_id: server.cluster_id(),
        },
    );
    let flags = std::sync::Arc::new(flags::RuntimeFlags::new(cfg, persisted, handles));
    // Stop serving on the operator's signal, or when the member fails (a supervisor then
    // restarts the process, which replays the WAL), as etcd exits.
    let failed = {
        let server = server.clone();
        async move {
            loop {
                if let Some(why) = server.failure() {
                    tracing::error!(error = %why, "the member failed; shutting down");
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    };
    let stop = async move {
        tokio::select! {
            _ = shutdown => {}
            _ = failed => {}
        }
    };
    let served = api::serve(server.clone(), flags, client, metrics_l, stop).await;
    drop(compactor);
    if let Some(e) = exporter {
        // What the last requests left in the queue goes out, unless the collector is down.
        e.shutdown(EXPORTER_SHUTDOWN).await;
    }
    info!("stopping the member");
    let s2 = server.clone();
    let stopped = tokio::task::spawn_blocking(move || s2.stop())
        .await
        .map_err(|e| RunError::Failed(e.to_string()))?;
    served?;
    stopped?;
    if let Some(f) = server.failure() {
        return Err(RunError::Failed(f));
    }
    Ok(())
}
