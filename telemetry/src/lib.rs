//! Glass's measurement vocabulary, shared by every layer.
//!
//! Every measurement Glass makes has exactly one name here, and is taken twice from the same
//! code path:
//! - an **always-on histogram** ([`Histogram`]): a fixed array of atomic counters, so recording
//!   costs one `fetch_add` and never allocates or takes a lock — cheap enough for every request;
//! - a **`tracing` span** of the same name, which costs nothing unless a subscriber (the OTLP
//!   exporter, the test [`capture`] layer) is interested — that is how spans follow the sampling
//!   decision.
//!
//! Libraries never install subscribers; only binaries do (see [`init_logging`]). Layers receive
//! the shared [`Metrics`] as an injected `Arc`, never through a global.
//!
//! # Layout
//! - `names` — the measurement names (`backend.commit`, `freelist.allocate`, …) and their help text;
//! - `histogram` — the lock-free log-linear histogram and its snapshots (quantiles);
//! - `metrics` — [`Metrics`]: one histogram or counter per measurement, the handle layers record to;
//! - `timer` — [`Timer`], the measurement stopwatch;
//! - `prometheus` — [`prometheus::render`]: the Prometheus text exposition of [`Metrics`] for a
//!   `/metrics` endpoint, under etcd 3.4's metric names where etcd takes the same measurement
//!   and `glass_…` names for every measurement;
//! - `capture` — a `tracing` layer that records spans and their fields, for tests;
//! - `control` — [`init`] (the process's subscriber, its log filter reloadable through
//!   [`Guard`]) and [`TraceControl`] (sample ratio, slow threshold, OTLP endpoint, changeable
//!   while running; and the OTLP protocol);
//! - `request` — [`RequestTrace`]: every request's per-layer timing record, and the
//!   thread-local "current request" the layers record into ([`request::record`]);
//! - `tracer` — [`Tracer`]: at a request's end, head sampling (parent-based), tail capture of
//!   slow requests, the export queue;
//! - `slow` — [`SlowRing`]: the recent slow requests with their per-layer breakdown;
//! - `export` — the record → OTLP span conversion and the [`Exporter`] task (OTLP/gRPC and
//!   OTLP/HTTP, batched, off the request path);
//! - `host` — [`HostSampler`]: what the host (CPU, pressure, memory, the disks under the data and
//!   WAL dirs, network, kernel settings) is doing, sampled from procfs and sysfs, with windows
//!   between samples — the `HostStatus` of the diagnostics stream;
//! - `process` — the `ProcessStatus` half of a [`HostSample`]: this process's CPU, RSS, threads,
//!   descriptors and context switches from `/proc/self`.
//!
//! # Per-request traces
//! Besides the histograms, every request keeps a small record of the layers it crossed
//! ([`request`]); only when it is sampled or slow are spans built from it, by the exporter
//! task ([`export`] documents the span tree and how shared work appears in it).

pub mod capture;
mod control;
pub mod export;
mod histogram;
pub mod host;
mod metrics;
pub mod names;
mod otlp_wire;
mod process;
pub mod prometheus;
pub mod request;
pub mod slow;
mod timer;
mod tracer;

pub use control::{init, Guard, OtlpProtocol, TraceControl, DEFAULT_SLOW_REQUEST_THRESHOLD};
pub use export::{Exporter, Resource};
pub use histogram::{Histogram, HistogramSnapshot};
pub use host::{HostSample, HostSampler};
pub use metrics::{Counter, Gauge, GrpcCounts, KvLatency, Metrics, KV_METHODS};
pub use names::Measurement;
pub use request::{RequestTrace, TraceContext};
pub use slow::{SlowRequest, SlowRing};
pub use timer::Timer;
pub use tracer::{FinishedRequest, Outcome, Tracer};

/// Installs a plain `tracing` subscriber writing to stderr, filtered by `RUST_LOG` (default
/// `level`). Binaries only; calling it twice is harmless (the second call does nothing).
pub fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // A second init fails with "a global default subscriber has already been set": ignoring the
    // error keeps the first, which is what a caller wants.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}
