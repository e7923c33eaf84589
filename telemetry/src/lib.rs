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
//!   while running);
//! - `host` — [`HostSampler`]: what the host (CPU, pressure, memory, the disks under the data and
//!   WAL dirs, network, kernel settings) is doing, sampled from procfs and sysfs, with windows
//!   between samples — the `HostStatus` of the diagnostics stream;
//! - `process` — the `ProcessStatus` half of a [`HostSample`]: this process's CPU, RSS, threads,
//!   descriptors and context switches from `/proc/self`.

pub mod capture;
mod control;
mod histogram;
pub mod host;
mod metrics;
pub mod names;
mod process;
pub mod prometheus;
mod timer;

pub use control::{init, Guard, TraceControl, DEFAULT_SLOW_REQUEST_THRESHOLD};
pub use histogram::{Histogram, HistogramSnapshot};
pub use host::{HostSample, HostSampler};
pub use metrics::{Counter, Gauge, GrpcCounts, Metrics};
pub use names::Measurement;
pub use timer::Timer;

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
