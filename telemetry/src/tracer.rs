//! [`Tracer`]: the end of every request's record — decide, keep, hand over.
//!
//! When an RPC ends the API layer calls [`Tracer::finish`]:
//! - **head sampling**, parent-based: an incoming W3C trace context's sampled flag decides;
//!   without one, `--trace-sample-ratio` (read from [`TraceControl`] per request);
//! - **tail capture**: a request slower than `--slow-request-threshold` is kept whatever the
//!   sampling said: counted (`slow_requests`), put in the [`SlowRing`] with its per-layer
//!   breakdown, and exported;
//! - otherwise the record is dropped: no span was ever built for it.
//!
//! What is exported goes onto a bounded queue, as a [`FinishedRequest`] (the record, not
//! spans: the exporter task builds the spans, off the request path). A full queue drops the
//! request's spans and counts them (`spans_dropped`); the request never waits for the
//! exporter. While the collector is failing (the exporter backs off between attempts), the
//! request's spans are counted as dropped at once, without being queued.
//!
//! **Export limit.** Parent-based sampling lets any client ask for its requests to be traced
//! (a `traceparent` with the sampled flag). So exports — sampled and slow requests alike —
//! pass a token bucket of `--trace-max-exports-per-second` (GCRA on one atomic: a burst of
//! one second's worth, then the rate); the excess is not built or queued, counted in
//! `trace_exports_throttled` (requests) and `spans_dropped` (their spans). A throttled slow
//! request is still counted and kept in the slow ring, without a trace id.
//!
//! **An unsampled caller.** A request whose caller sent `traceparent` with the sampled flag
//! off, and that is exported only because it was slow, is exported as a trace of its own (a
//! new trace id, no parent) with a span *link* to the caller's span: the caller's trace was
//! not recorded, and a child under it would show in Jaeger as an orphan with a "missing
//! parent" warning. A sampled caller's context is the root span's parent, as W3C asks.
//!
//! **Clocks.** [`Tracer::finish`] reads the monotonic clock (the request's elapsed time) and
//! the wall clock (the spans' Unix times) itself, and the slow/export decision depends on
//! them: it is measurement, not the server's behaviour (no request waits or fails on it),
//! which is why telemetry may read clocks directly while the server's timeouts and expiry go
//! through its injected `Clock`. Likewise the current request is kept in thread-locals
//! ([`crate::request`]): process-wide state of the telemetry crate, like the `tracing`
//! registry, holding nothing between requests.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use crate::request::{Attrs, KeyPrefix, Layer, RequestTrace, TraceContext, ROOT_ATTRS};
use crate::slow::{SlowLayer, SlowRequest, SlowRing, DEFAULT_SLOW_RING};
use crate::{Metrics, TraceControl};

/// Requests the export queue holds (each becomes one trace of a dozen spans or so).
pub const EXPORT_QUEUE: usize = 4096;

/// A request to export: its record, its ids and how it ended.
#[derive(Debug, Clone)]
pub struct FinishedRequest {
    pub method: &'static str,
    pub trace_id: u128,
    /// The root span's id.
    pub span_id: u64,
    /// The caller's span (incoming trace context), the root span's parent.
    pub parent_span_id: Option<u64>,
    /// A caller's context that did not sample the request (exported because slow): linked
    /// to, not the parent (see the module documentation).
    pub link: Option<TraceContext>,
    /// Head-sampled (else exported because slow).
    pub sampled: bool,
    pub slow: bool,
    /// Unix time of the start, nanoseconds.
    pub unix_start_ns: u64,
    /// The start on the monotonic clock (the layers' times are relative to it).
    pub start: Instant,
    pub duration_ns: u64,
    /// gRPC status code.
    pub code: i32,
    pub root: Attrs<ROOT_ATTRS>,
    pub key: KeyPrefix,
    pub layers: Vec<Layer>,
}

impl FinishedRequest {
    /// Spans this request exports as: its root and one per layer.
    pub fn span_count(&self) -> u64 {
        1 + self.layers.len() as u64
    }

    /// What was asked, for the slow-request ring.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        if !self.key.is_empty() {
            s.push_str(&format!("key=\"{}\"", self.key.escaped()));
        }
        for (k, v) in self.root.iter() {
            if !s.is_empty() {
                s.push(' ');
            }
            let k = k.strip_prefix("etcd.").unwrap_or(k);
            s.push_str(&format!("{k}={v}"));
        }
        s
    }

    /// The ring's entry; its trace id is set by the caller, once the export was queued.
    fn slow_request(&self) -> SlowRequest {
        let mut layers: Vec<SlowLayer> = self
            .layers
            .iter()
            .map(|l| SlowLayer {
                name: l.name,
                start_offset_ns: l.offset_ns(self.start),
                duration_ns: l.duration_ns,
            })
            .collect();
        layers.sort_by_key(|l| (l.start_offset_ns, std::cmp::Reverse(l.duration_ns)));
        SlowRequest {
            method: self.method,
            unix_ms: i64::try_from(self.unix_start_ns / 1_000_000).unwrap_or(i64::MAX),
            duration_ns: self.duration_ns,
            code: self.code,
            trace_id: None,
            summary: self.summary(),
            layers,
        }
    }
}

/// The per-process request tracer; see the module documentation. Shared as an `Arc`.
#[derive(Debug)]
pub struct Tracer {
    control: Arc<TraceControl>,
    metrics: Arc<Metrics>,
    slow: SlowRing,
    tx: mpsc::Sender<FinishedRequest>,
    /// Taken by the exporter when it starts.
    rx: Mutex<Option<mpsc::Receiver<FinishedRequest>>>,
    /// [`OFF`], [`EXPORTING`] (only then are requests queued) or [`BACKING_OFF`].
    state: AtomicU8,
    /// Whether requests keep per-layer records at all (`--glass-measurements`: off or
    /// histograms only turn them off, for measuring what they cost).
    records: AtomicBool,
    /// The export limiter's origin and its theoretical arrival time (GCRA), ns since
    /// `origin`: see [`Tracer::admit`].
    origin: Instant,
    tat_ns: AtomicU64,
}

/// No exporter, or no endpoint: nothing is exported (nor counted as dropped).
pub(crate) const OFF: u8 = 0;
/// Finished requests to export are queued.
pub(crate) const EXPORTING: u8 = 1;
/// The collector failed the last export: requests to export are dropped and counted until
/// the exporter tries again.
pub(crate) const BACKING_OFF: u8 = 2;

/// What [`Tracer::finish`] did with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub sampled: bool,
    pub slow: bool,
    /// Queued for export, under this trace id.
    pub exported: Option<u128>,
}

impl Tracer {
    pub fn new(control: Arc<TraceControl>, metrics: Arc<Metrics>) -> Self {
        Self::with_ring(control, metrics, DEFAULT_SLOW_RING)
    }

    pub fn with_ring(control: Arc<TraceControl>, metrics: Arc<Metrics>, ring: usize) -> Self {
        let (tx, rx) = mpsc::channel(EXPORT_QUEUE);
        Tracer {
            control,
            metrics,
            slow: SlowRing::new(ring),
            tx,
            rx: Mutex::new(Some(rx)),
            state: AtomicU8::new(OFF),
            records: AtomicBool::new(true),
            origin: Instant::now(),
            tat_ns: AtomicU64::new(0),
        }
    }

    /// Whether requests keep per-layer records (see [`Tracer::set_records`]).
    pub fn records(&self) -> bool {
        self.records.load(Ordering::Relaxed)
    }

    /// Turns per-request records on or off (the API layer asks [`Tracer::records`] before
    /// [`Tracer::begin`]): without them there is no tail capture, slow ring or export.
    pub fn set_records(&self, on: bool) {
        self.records.store(on, Ordering::Relaxed);
    }

    /// Takes one export from the token bucket at `now`: false when
    /// `--trace-max-exports-per-second` is used up. GCRA: each export moves the theoretical
    /// arrival time one interval (1 s / rate) on from `max(itself, now)`; one is refused when
    /// that would put it more than a second (the burst) ahead of now.
    fn admit(&self, now: Instant) -> bool {
        const BURST_NS: u64 = 1_000_000_000;
        let rate = self.control.max_exports_per_second();
        if rate == 0 {
            return true;
        }
        let interval = (BURST_NS / rate).max(1);
        let now_ns = u64::try_from(now.saturating_duration_since(self.origin).as_nanos())
            .unwrap_or(u64::MAX);
        let mut tat = self.tat_ns.load(Ordering::Relaxed);
        loop {
            let next = tat.max(now_ns).saturating_add(interval);
            if next - now_ns > BURST_NS {
                return false;
            }
            match self
                .tat_ns
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(t) => tat = t,
            }
        }
    }

    /// The settings the request path reads per request (and the runtime flags change).
    pub fn control(&self) -> &Arc<TraceControl> {
        &self.control
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The recent slow requests.
    pub fn slow(&self) -> &SlowRing {
        &self.slow
    }

    /// Whether finished requests are queued for an exporter.
    pub fn is_exporting(&self) -> bool {
        self.state.load(Ordering::Relaxed) == EXPORTING
    }

    pub(crate) fn set_state(&self, state: u8) {
        self.state.store(state, Ordering::Relaxed);
    }

    pub(crate) fn take_receiver(&self) -> Option<mpsc::Receiver<FinishedRequest>> {
        self.rx.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// A record for an RPC that started at `start`.
    pub fn begin(
        &self,
        method: &'static str,
        start: Instant,
        parent: Option<TraceContext>,
    ) -> Arc<RequestTrace> {
        Arc::new(RequestTrace::new(method, start, parent))
    }

    /// Ends `trace` with gRPC status `code`: samples, keeps slow requests, queues exports.
    pub fn finish(&self, trace: &RequestTrace, code: i32) -> Outcome {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(trace.start());
        let sampled = match trace.parent() {
            Some(p) => p.sampled,
            None => sample(self.control.sample_ratio()),
        };
        let slow = elapsed > self.control.slow_threshold();
        if !sampled && !slow {
            // Closed, so that work still running for it (a proposal applied after its caller
            // gave up) records nothing more.
            trace.take();
            return Outcome {
                sampled,
                slow,
                exported: None,
            };
        }
        let state = self.state.load(Ordering::Relaxed);
        let throttled = state == EXPORTING && !self.admit(now);
        // The collector is down, or the export limit is reached: count, build nothing (a
        // slow request is still built for the slow ring).
        let drop_spans = state == BACKING_OFF || throttled;
        if throttled {
            self.metrics.trace_exports_throttled.inc();
        }
        if !slow && drop_spans {
            let taken = trace.take();
            self.metrics
                .spans_dropped
                .add(1 + taken.layers.len() as u64);
            return Outcome {
                sampled,
                slow,
                exported: None,
            };
        }
        let taken = trace.take();
        let unix_now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let duration_ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        // A caller that did not sample this request is linked to, not its parent.
        let (parent, link) = match trace.parent() {
            Some(p) if p.sampled => (Some(p), None),
            other => (None, other),
        };
        let finished = FinishedRequest {
            method: trace.method(),
            trace_id: parent.map_or_else(random_trace_id, |p| p.trace_id),
            span_id: random_span_id(),
            parent_span_id: parent.map(|p| p.span_id),
            link,
            sampled,
            slow,
            unix_start_ns: u64::try_from(unix_now.saturating_sub(elapsed.as_nanos())).unwrap_or(0),
            start: trace.start(),
            duration_ns,
            code,
            root: taken.root,
            key: taken.key,
            layers: taken.layers,
        };
        // Built before the request moves to the queue; names a trace id only once the export
        // was really queued.
        let mut kept = slow.then(|| finished.slow_request());
        let mut exported = None;
        if drop_spans {
            self.metrics.spans_dropped.add(finished.span_count());
        } else if state == EXPORTING {
            let (id, spans) = (finished.trace_id, finished.span_count());
            match self.tx.try_send(finished) {
                Ok(()) => exported = Some(id),
                Err(_) => self.metrics.spans_dropped.add(spans),
            }
        }
        if let Some(mut k) = kept.take() {
            k.trace_id = exported;
            self.metrics.slow_requests.inc();
            self.slow.push(k);
        }
        Outcome {
            sampled,
            slow,
            exported,
        }
    }
}

/// Head sampling at `ratio`.
fn sample(ratio: f64) -> bool {
    if ratio >= 1.0 {
        true
    } else if ratio <= 0.0 {
        false
    } else {
        rand::random::<f64>() < ratio
    }
}

pub(crate) fn random_trace_id() -> u128 {
    loop {
        let id = rand::random::<u128>();
        if id != 0 {
            return id;
        }
    }
}

pub(crate) fn random_span_id() -> u64 {
    loop {
        let id = rand::random::<u64>();
        if id != 0 {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{names, Timer};
    use std::time::Duration;

    fn tracer(ratio: f64, slow: Duration) -> Tracer {
        Tracer::new(
            Arc::new(TraceControl::new(ratio, slow, None)),
            Arc::new(Metrics::new()),
        )
    }

    #[test]
    fn unsampled_fast_requests_leave_nothing() {
        let t = tracer(0.0, Duration::from_secs(10));
        let r = t.begin("etcdserverpb.KV/Put", Instant::now(), None);
        r.push(Layer::new(names::MVCC_PUT, &Timer::start(), 5));
        let o = t.finish(&r, 0);
        assert_eq!((o.sampled, o.slow, o.exported), (false, false, None));
        assert!(t.slow().is_empty());
        // Closed: work still running for the request (a proposal applied after its caller
        // gave up) records nothing more into it.
        r.push(Layer::new(names::MVCC_PUT, &Timer::start(), 5));
        assert!(r.layers().is_empty());
    }

    #[test]
    fn slow_requests_are_kept_and_counted_even_unsampled() {
        let t = tracer(0.0, Duration::ZERO);
        let start = Instant::now();
        let r = t.begin("etcdserverpb.KV/Put", start, None);
        r.set_key(b"foo");
        r.set_attr("etcd.value_bytes", 3);
        let timer = Timer::start();
        std::thread::sleep(Duration::from_millis(1));
        r.push(Layer::new(names::ETCDSERVER_APPLY, &timer, 10));
        let o = t.finish(&r, 4);
        assert!(o.slow && !o.sampled);
        assert_eq!(o.exported, None, "no exporter running");
        assert_eq!(t.metrics().slow_requests.get(), 1);
        let kept = t.slow().recent(0);
        assert_eq!(kept.len(), 1);
        let k = &kept[0];
        assert_eq!(k.method, "etcdserverpb.KV/Put");
        assert_eq!(k.code_name(), "DEADLINE_EXCEEDED");
        assert_eq!(k.summary, "key=\"foo\" value_bytes=3");
        assert_eq!(k.layers.len(), 1);
        assert_eq!(k.layers[0].name, names::ETCDSERVER_APPLY);
        assert!(k.duration_ns >= 1_000_000);
        assert_eq!(k.trace_id, None);
    }

    #[test]
    fn parent_based_sampling_and_queueing() {
        let t = tracer(0.0, Duration::from_secs(10));
        let mut rx = t.take_receiver().unwrap();
        t.set_state(EXPORTING);
        let parent = TraceContext {
            trace_id: 42,
            span_id: 7,
            sampled: true,
        };
        let r = t.begin("etcdserverpb.KV/Range", Instant::now(), Some(parent));
        let o = t.finish(&r, 0);
        assert!(o.sampled);
        assert_eq!(o.exported, Some(42));
        let f = rx.try_recv().unwrap();
        assert_eq!((f.trace_id, f.parent_span_id), (42, Some(7)));
        // An unsampled parent wins over a ratio of 1.
        t.control().set_sample_ratio(1.0);
        let r = t.begin(
            "etcdserverpb.KV/Range",
            Instant::now(),
            Some(TraceContext {
                sampled: false,
                ..parent
            }),
        );
        assert!(!t.finish(&r, 0).sampled);
        // Without a parent, the ratio decides.
        let r = t.begin("etcdserverpb.KV/Range", Instant::now(), None);
        assert!(t.finish(&r, 0).sampled);
    }

    #[test]
    fn a_full_queue_drops_and_counts_spans() {
        let t = tracer(1.0, Duration::from_secs(10));
        let _rx = t.take_receiver().unwrap();
        t.set_state(EXPORTING);
        for _ in 0..EXPORT_QUEUE {
            let r = t.begin("m", Instant::now(), None);
            assert!(t.finish(&r, 0).exported.is_some());
        }
        let r = t.begin("m", Instant::now(), None);
        r.push(Layer::new(names::MVCC_PUT, &Timer::start(), 1));
        assert_eq!(t.finish(&r, 0).exported, None);
        assert_eq!(t.metrics().spans_dropped.get(), 2);
    }

    #[test]
    fn exports_are_capped_per_second() {
        let t = tracer(1.0, Duration::from_secs(10));
        t.control().set_max_exports_per_second(100);
        let mut rx = t.take_receiver().unwrap();
        t.set_state(EXPORTING);
        let mut exported = 0;
        for _ in 0..1000 {
            let r = t.begin("m", Instant::now(), None);
            r.push(Layer::new(names::MVCC_PUT, &Timer::start(), 1));
            exported += usize::from(t.finish(&r, 0).exported.is_some());
        }
        // A burst of one second's worth (and whatever the rate added while the loop ran).
        assert!((100..=110).contains(&exported), "{exported}");
        let throttled = t.metrics().trace_exports_throttled.get();
        assert_eq!(throttled, 1000 - exported as u64);
        assert_eq!(t.metrics().spans_dropped.get(), 2 * throttled);
        let mut queued = 0;
        while rx.try_recv().is_ok() {
            queued += 1;
        }
        assert_eq!(queued, exported);
        // A slow request over the limit is still kept in the ring, without a trace id.
        t.control().set_slow_threshold(Duration::ZERO);
        let r = t.begin("m", Instant::now(), None);
        std::thread::sleep(Duration::from_millis(1));
        let o = t.finish(&r, 0);
        assert!(o.slow && o.exported.is_none());
        assert_eq!(t.slow().recent(1)[0].trace_id, None);
        // 0: no limit.
        t.control().set_max_exports_per_second(0);
        let r = t.begin("m", Instant::now(), None);
        assert!(t.finish(&r, 0).exported.is_some());
    }

    #[test]
    fn a_slow_request_of_an_unsampled_caller_is_its_own_trace_linked_to_the_caller() {
        let t = tracer(1.0, Duration::ZERO);
        let mut rx = t.take_receiver().unwrap();
        t.set_state(EXPORTING);
        let caller = TraceContext {
            trace_id: 42,
            span_id: 7,
            sampled: false,
        };
        let r = t.begin("etcdserverpb.KV/Put", Instant::now(), Some(caller));
        std::thread::sleep(Duration::from_millis(1));
        let o = t.finish(&r, 0);
        assert!(o.slow && !o.sampled);
        let f = rx.try_recv().unwrap();
        assert_ne!(f.trace_id, 42);
        assert_eq!(o.exported, Some(f.trace_id));
        assert_eq!((f.parent_span_id, f.link), (None, Some(caller)));
        let spans = crate::export::spans(&f);
        assert!(spans[0].parent_span_id.is_empty());
        assert_eq!(spans[0].links.len(), 1);
        assert_eq!(spans[0].links[0].span_id, 7u64.to_be_bytes());
    }

    #[test]
    fn backing_off_counts_without_queueing() {
        let t = tracer(1.0, Duration::from_secs(10));
        let mut rx = t.take_receiver().unwrap();
        t.set_state(BACKING_OFF);
        let r = t.begin("m", Instant::now(), None);
        r.push(Layer::new(names::MVCC_PUT, &Timer::start(), 1));
        r.push(Layer::new(names::MVCC_TXN, &Timer::start(), 1));
        assert_eq!(t.finish(&r, 0).exported, None);
        assert_eq!(t.metrics().spans_dropped.get(), 3);
        assert!(rx.try_recv().is_err());
    }
}
