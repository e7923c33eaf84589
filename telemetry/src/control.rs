//! Process-wide telemetry controls that change while running: the log filter, the trace sample
//! ratio, the slow-request threshold and the OTLP endpoint.
//!
//! [`init`] installs the one `tracing` subscriber of a process (binaries only) and returns its
//! [`Guard`]; the guard changes the log filter at once (a `tracing-subscriber` reload layer).
//! [`TraceControl`] holds the tracing settings as atomics: the request path reads them per
//! request without a lock; the runtime-flags code writes them.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// etcd's warning-apply-duration: requests slower than this are kept and exported.
pub const DEFAULT_SLOW_REQUEST_THRESHOLD: Duration = Duration::from_millis(100);

/// How traces reach the OTLP collector (`--otlp-protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OtlpProtocol {
    /// OTLP/gRPC (port 4317).
    #[default]
    Grpc,
    /// OTLP/HTTP with protobuf bodies (port 4318, `POST /v1/traces`).
    Http,
}

/// The tracing settings that can change while running.
#[derive(Debug)]
pub struct TraceControl {
    /// f64 bits of the head sampling ratio, 0.0..=1.0.
    sample_ratio: AtomicU64,
    slow_threshold_ns: AtomicU64,
    /// `None`: no exporter. Changes are picked up by the exporter task ([`TraceControl::version`]).
    otlp_endpoint: Mutex<Option<String>>,
    /// 0: gRPC, 1: HTTP.
    otlp_protocol: AtomicU8,
    /// `--trace-max-exports-per-second`: the most requests exported per second (0: no limit).
    max_exports_per_second: AtomicU64,
    /// Bumped on every endpoint or protocol change.
    version: AtomicU64,
}

impl TraceControl {
    pub fn new(sample_ratio: f64, slow_threshold: Duration, otlp_endpoint: Option<String>) -> Self {
        TraceControl {
            sample_ratio: AtomicU64::new(sample_ratio.clamp(0.0, 1.0).to_bits()),
            slow_threshold_ns: AtomicU64::new(duration_ns(slow_threshold)),
            otlp_endpoint: Mutex::new(otlp_endpoint),
            otlp_protocol: AtomicU8::new(0),
            max_exports_per_second: AtomicU64::new(0),
            version: AtomicU64::new(0),
        }
    }

    pub fn sample_ratio(&self) -> f64 {
        f64::from_bits(self.sample_ratio.load(Ordering::Relaxed))
    }

    pub fn set_sample_ratio(&self, r: f64) {
        self.sample_ratio
            .store(r.clamp(0.0, 1.0).to_bits(), Ordering::Relaxed);
    }

    pub fn slow_threshold(&self) -> Duration {
        Duration::from_nanos(self.slow_threshold_ns.load(Ordering::Relaxed))
    }

    pub fn set_slow_threshold(&self, d: Duration) {
        self.slow_threshold_ns
            .store(duration_ns(d), Ordering::Relaxed);
    }

    pub fn otlp_endpoint(&self) -> Option<String> {
        self.otlp_endpoint
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_otlp_endpoint(&self, e: Option<String>) {
        *self.otlp_endpoint.lock().unwrap_or_else(|e| e.into_inner()) = e;
        self.version.fetch_add(1, Ordering::Release);
    }

    pub fn otlp_protocol(&self) -> OtlpProtocol {
        match self.otlp_protocol.load(Ordering::Relaxed) {
            0 => OtlpProtocol::Grpc,
            _ => OtlpProtocol::Http,
        }
    }

    pub fn set_otlp_protocol(&self, p: OtlpProtocol) {
        let v = match p {
            OtlpProtocol::Grpc => 0,
            OtlpProtocol::Http => 1,
        };
        self.otlp_protocol.store(v, Ordering::Relaxed);
        self.version.fetch_add(1, Ordering::Release);
    }

    /// The most requests exported per second, sampled and slow alike (0: no limit, what
    /// [`TraceControl::new`] starts with; glassd's flag defaults to 1000). The excess is
    /// counted (`trace_exports_throttled`, and their spans in `spans_dropped`), not exported.
    pub fn max_exports_per_second(&self) -> u64 {
        self.max_exports_per_second.load(Ordering::Relaxed)
    }

    pub fn set_max_exports_per_second(&self, n: u64) {
        self.max_exports_per_second.store(n, Ordering::Relaxed);
    }

    /// Changes with every [`set_otlp_endpoint`](Self::set_otlp_endpoint) and
    /// [`set_otlp_protocol`](Self::set_otlp_protocol).
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }
}

impl Default for TraceControl {
    fn default() -> Self {
        TraceControl::new(0.0, DEFAULT_SLOW_REQUEST_THRESHOLD, None)
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The installed subscriber's handle: keep it for the life of the process.
#[derive(Clone)]
pub struct Guard {
    filter: Option<reload::Handle<EnvFilter, Registry>>,
    /// The filter in force, as given.
    current: Arc<Mutex<String>>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("filter", &self.log_filter())
            .finish()
    }
}

impl Guard {
    /// Replaces the log filter (`info`, `warn`, `glassd=debug,raft=warn`, ...) at once.
    pub fn set_log_filter(&self, filter: &str) -> Result<(), String> {
        let f =
            EnvFilter::try_new(filter).map_err(|e| format!("bad log filter {filter:?}: {e}"))?;
        let Some(h) = &self.filter else {
            return Err("no subscriber was installed by this process".into());
        };
        h.reload(f).map_err(|e| e.to_string())?;
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = filter.to_string();
        Ok(())
    }

    pub fn log_filter(&self) -> String {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Installs the process's subscriber: logs to stderr filtered by `RUST_LOG` or `level`, with
/// the filter reloadable through the returned [`Guard`]. Binaries only; a second call installs
/// nothing and returns a guard that cannot change the filter.
pub fn init(level: &str) -> Guard {
    let (initial, text) = match EnvFilter::try_from_default_env() {
        Ok(f) => (f, std::env::var("RUST_LOG").unwrap_or_default()),
        Err(_) => (EnvFilter::new(level), level.to_string()),
    };
    let (filter, handle) = reload::Layer::new(initial);
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init()
        .is_ok();
    Guard {
        filter: installed.then_some(handle),
        current: Arc::new(Mutex::new(text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_control_clamps_and_versions() {
        let t = TraceControl::new(2.0, Duration::from_millis(5), None);
        assert_eq!(t.sample_ratio(), 1.0);
        t.set_sample_ratio(0.25);
        assert_eq!(t.sample_ratio(), 0.25);
        assert_eq!(t.slow_threshold(), Duration::from_millis(5));
        let v = t.version();
        t.set_otlp_endpoint(Some("http://127.0.0.1:4317".into()));
        assert_eq!(t.version(), v + 1);
        assert_eq!(t.otlp_endpoint().as_deref(), Some("http://127.0.0.1:4317"));
        assert_eq!(t.otlp_protocol(), OtlpProtocol::Grpc);
        t.set_otlp_protocol(OtlpProtocol::Http);
        assert_eq!(t.otlp_protocol(), OtlpProtocol::Http);
        assert_eq!(t.version(), v + 2);
    }

    #[test]
    fn a_bad_filter_is_refused() {
        let g = Guard {
            filter: None,
            current: Arc::new(Mutex::new("info".into())),
        };
        assert!(g.set_log_filter("=[").is_err());
        assert!(g.set_log_filter("debug").is_err(), "no subscriber here");
    }
}
