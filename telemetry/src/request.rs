//! Per-request timing records: what each layer a request crossed took, kept for every request
//! (cheaply), turned into spans only when the request is exported (see [`crate::Tracer`]).
//!
//! A [`RequestTrace`] is made by the API layer when an RPC starts and shared (an `Arc`) with
//! whatever works for that request:
//! - **on the request's own task**: [`scope`] makes it the thread's *current* request while
//!   the RPC's future is polled, so that synchronous work under it (a serializable range, the
//!   read index wait) records into it;
//! - **on the raft thread**: the proposal carries it (`Msg::Propose`); the raft node records
//!   the proposal's commit wait, and the WAL append and fdatasync of the Ready that persisted
//!   the entry (collected once with [`collect`] and copied into every request whose entry
//!   that Ready wrote — shared work becomes one child span *per request it served*, with an
//!   attribute [`SHARED_BY`] saying how many requests shared it);
//! - **on the applier thread**: the committed batch carries the traces of its entries; the
//!   applier [`enter`]s each entry's trace while applying it, and the MVCC, backend and B+tree
//!   layers record into the current request with [`record`].
//!
//! [`record`] costs a thread-local check when no request is current, and a push onto a
//! thread-local buffer when one is; the buffer goes into the request's record (one
//! uncontended per-request lock) when the thread leaves the request. Nothing is shared between
//! requests on this path and nothing is allocated per measurement.
//!
//! The current request and the buffer are thread-locals: process-wide state of the telemetry
//! crate (as the `tracing` registry is), which holds nothing between requests — every
//! [`enter`] and [`collect`] guard puts back what it found. Guards nest: each owns the tail of
//! the buffer from where it started, so an [`enter`] inside a [`collect`] (or the reverse)
//! moves only its own layers, and the buffer keeps at most [`MAX_LAYERS`] per guard.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::Timer;

/// Attribute of a layer of shared work (one WAL fdatasync, one backend commit): how many
/// requests it served. The same work appears once in each of them.
pub const SHARED_BY: &str = "glass.shared_by";

/// Attributes a layer carries (beyond its name and timing).
pub const LAYER_ATTRS: usize = 3;
/// Attributes the request itself (the root span) carries besides method and code.
pub const ROOT_ATTRS: usize = 6;
/// Bytes of the request's key kept for the slow-request summary and the root span.
pub const KEY_PREFIX: usize = 48;

/// A few integer attributes, inline (no allocation).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Attrs<const N: usize> {
    kv: [(&'static str, i64); N],
    len: u8,
}

impl<const N: usize> Default for Attrs<N> {
    fn default() -> Self {
        Attrs {
            kv: [("", 0); N],
            len: 0,
        }
    }
}

impl<const N: usize> fmt::Debug for Attrs<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<const N: usize> Attrs<N> {
    /// The first `N` of `kv`.
    pub fn from_slice(kv: &[(&'static str, i64)]) -> Self {
        let mut a = Self::default();
        for &(k, v) in kv {
            a.set(k, v);
        }
        a
    }

    /// Sets `key` (replacing its value); ignored when all `N` places are taken.
    pub fn set(&mut self, key: &'static str, value: i64) {
        let len = usize::from(self.len);
        if let Some(slot) = self.kv[..len].iter_mut().find(|(k, _)| *k == key) {
            slot.1 = value;
        } else if len < N {
            self.kv[len] = (key, value);
            self.len += 1;
        }
    }

    pub fn get(&self, key: &str) -> Option<i64> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, i64)> + '_ {
        self.kv[..usize::from(self.len)].iter().copied()
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// One layer a request crossed: a measurement name from [`crate::names`], when it started,
/// how long it took.
#[derive(Debug, Clone, Copy)]
pub struct Layer {
    pub name: &'static str,
    pub start: Instant,
    pub duration_ns: u64,
    pub attrs: Attrs<LAYER_ATTRS>,
}

impl Layer {
    pub fn new(name: &'static str, t: &Timer, duration_ns: u64) -> Self {
        Layer {
            name,
            start: t.started_at(),
            duration_ns,
            attrs: Attrs::default(),
        }
    }

    pub fn with(mut self, attrs: &[(&'static str, i64)]) -> Self {
        for &(k, v) in attrs {
            self.attrs.set(k, v);
        }
        self
    }

    /// Nanoseconds from `origin` to this layer's start (0 if it started before).
    pub fn offset_ns(&self, origin: Instant) -> u64 {
        u64::try_from(self.start.saturating_duration_since(origin).as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A W3C trace context (the `traceparent` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: u128,
    /// The caller's span: the parent of the request's root span.
    pub span_id: u64,
    pub sampled: bool,
}

impl TraceContext {
    /// Parses a `traceparent` value: `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`.
    /// Versions above 00 are read as 00 is (their extra fields ignored), as the W3C
    /// recommendation asks; version `ff`, all-zero ids, uppercase hex and a version-00 value
    /// of any other length are refused.
    pub fn from_traceparent(value: &str) -> Option<TraceContext> {
        let v = value.trim();
        let b = v.as_bytes();
        if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        let version = hex_field(&v[0..2])?;
        if version == 0xff || (version == 0 && b.len() != 55) || (b.len() > 55 && b[55] != b'-') {
            return None;
        }
        let trace_id = hex_field(&v[3..35])?;
        let span_id = u64::try_from(hex_field(&v[36..52])?).ok()?;
        let flags = hex_field(&v[53..55])?;
        if trace_id == 0 || span_id == 0 {
            return None;
        }
        Some(TraceContext {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }

    /// The `traceparent` value (version 00).
    pub fn traceparent(&self) -> String {
        format!(
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        )
    }
}

/// Lowercase hex only (the W3C format); at most 32 digits.
fn hex_field(s: &str) -> Option<u128> {
    if s.is_empty() || s.len() > 32 || !s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u128::from_str_radix(s, 16).ok()
}

/// The start of a request's key, kept inline.
#[derive(Clone, Copy)]
pub struct KeyPrefix {
    bytes: [u8; KEY_PREFIX],
    len: u8,
    /// The whole key's length.
    total: usize,
}

impl Default for KeyPrefix {
    fn default() -> Self {
        KeyPrefix {
            bytes: [0; KEY_PREFIX],
            len: 0,
            total: 0,
        }
    }
}

impl fmt::Debug for KeyPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.escaped())
    }
}

impl KeyPrefix {
    pub fn new(key: &[u8]) -> Self {
        let n = key.len().min(KEY_PREFIX);
        let mut k = KeyPrefix {
            len: n as u8,
            total: key.len(),
            ..KeyPrefix::default()
        };
        k.bytes[..n].copy_from_slice(&key[..n]);
        k
    }

    /// The kept bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The kept bytes, printable ASCII as is and the rest `\xNN`, with `…` when the key was
    /// longer.
    pub fn escaped(&self) -> String {
        let mut s = String::with_capacity(usize::from(self.len) + 4);
        for &c in self.bytes() {
            if c.is_ascii_graphic() || c == b' ' {
                if c == b'\\' || c == b'"' {
                    s.push('\\');
                }
                s.push(char::from(c));
            } else {
                s.push_str(&format!("\\x{c:02x}"));
            }
        }
        if self.total > usize::from(self.len) {
            s.push('…');
        }
        s
    }
}

/// What a request's record holds, behind its lock.
#[derive(Debug, Default)]
struct Record {
    layers: Vec<Layer>,
    root: Attrs<ROOT_ATTRS>,
    key: KeyPrefix,
    /// Taken by [`RequestTrace::take`]: later records (a thread still holding the trace) are
    /// ignored.
    taken: bool,
}

/// One request's timing record; see the module documentation.
#[derive(Debug)]
pub struct RequestTrace {
    method: &'static str,
    start: Instant,
    parent: Option<TraceContext>,
    record: Mutex<Record>,
}

/// A request's record once it ended, taken out of its [`RequestTrace`].
#[derive(Debug, Clone)]
pub struct Taken {
    pub layers: Vec<Layer>,
    pub root: Attrs<ROOT_ATTRS>,
    pub key: KeyPrefix,
}

impl RequestTrace {
    /// A record for an RPC `method` (`etcdserverpb.KV/Put`) that started at `start`, under
    /// the caller's trace context if it sent one.
    pub fn new(method: &'static str, start: Instant, parent: Option<TraceContext>) -> Self {
        RequestTrace {
            method,
            start,
            parent,
            record: Mutex::new(Record {
                // A read crosses a few layers, a write a dozen or so (one regrowth).
                layers: Vec::with_capacity(8),
                ..Record::default()
            }),
        }
    }

    pub fn method(&self) -> &'static str {
        self.method
    }

    pub fn start(&self) -> Instant {
        self.start
    }

    pub fn parent(&self) -> Option<TraceContext> {
        self.parent
    }

    fn lock(&self) -> MutexGuard<'_, Record> {
        // Nothing panics under this lock; a poisoned record is still a valid record.
        self.record.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds one layer (at most [`MAX_LAYERS`] are kept; later ones are dropped, so a trace of a
    /// very large txn shows its first 256 layers).
    pub fn push(&self, layer: Layer) {
        let mut r = self.lock();
        if !r.taken && r.layers.len() < MAX_LAYERS {
            r.layers.push(layer);
        }
    }

    /// Adds layers (shared work: the same layers go into every request they served).
    pub fn extend(&self, layers: &[Layer]) {
        if layers.is_empty() {
            return;
        }
        let mut r = self.lock();
        if !r.taken {
            let room = MAX_LAYERS.saturating_sub(r.layers.len());
            r.layers
                .extend_from_slice(&layers[..layers.len().min(room)]);
        }
    }

    /// Sets an attribute of the request itself (the root span).
    pub fn set_attr(&self, key: &'static str, value: i64) {
        self.lock().root.set(key, value);
    }

    /// Keeps the start of the request's key (for the slow-request summary).
    pub fn set_key(&self, key: &[u8]) {
        self.lock().key = KeyPrefix::new(key);
    }

    /// How many layers so far.
    pub fn layer_count(&self) -> usize {
        self.lock().layers.len()
    }

    /// The layers so far (a copy).
    pub fn layers(&self) -> Vec<Layer> {
        self.lock().layers.clone()
    }

    /// Takes the record out, once; later records into this trace are dropped.
    pub fn take(&self) -> Taken {
        let mut r = self.lock();
        r.taken = true;
        Taken {
            layers: std::mem::take(&mut r.layers),
            root: r.root,
            key: r.key,
        }
    }
}

/// The most layers one request keeps: a txn of many ops records a layer per op and per lock
/// taken; past this the record stays bounded (and so does the exporter's work on it).
pub const MAX_LAYERS: usize = 256;

/// Where [`record`] puts a measurement on this thread.
enum Sink {
    None,
    Request(Arc<RequestTrace>),
    Collect,
}

thread_local! {
    static SINK: RefCell<Sink> = const { RefCell::new(Sink::None) };
    /// Layers recorded on this thread since the sink was set (reused: no allocation once
    /// grown).
    static BUF: RefCell<Vec<Layer>> = const { RefCell::new(Vec::new()) };
    /// Where the current sink's layers start in `BUF` (those before belong to an enclosing
    /// guard: a [`collect`] around an [`enter`], or the reverse).
    static BASE: Cell<usize> = const { Cell::new(0) };
}

/// Records a measurement into the request this thread works for, if any: `t` is the
/// measurement's timer, `ns` what it measured.
#[inline]
pub fn record(name: &'static str, t: &Timer, ns: u64) {
    record_layer(|| Layer::new(name, t, ns));
}

/// [`record`] with attributes (at most [`LAYER_ATTRS`] are kept).
#[inline]
pub fn record_with(name: &'static str, t: &Timer, ns: u64, attrs: &[(&'static str, i64)]) {
    record_layer(|| Layer::new(name, t, ns).with(attrs));
}

#[inline]
fn record_layer(layer: impl FnOnce() -> Layer) {
    let active = SINK.with(|s| !matches!(*s.borrow(), Sink::None));
    if active {
        BUF.with(|b| {
            let mut b = b.borrow_mut();
            // The record keeps no more than this anyway: the buffer stays bounded too.
            if b.len().saturating_sub(BASE.get()) < MAX_LAYERS {
                b.push(layer());
            }
        });
    }
}

/// Moves the thread's buffered layers (from the current guard's start) into the current
/// request.
fn flush() {
    SINK.with(|s| {
        if let Sink::Request(t) = &*s.borrow() {
            BUF.with(|b| {
                let mut b = b.borrow_mut();
                let base = BASE.get().min(b.len());
                t.extend(&b[base..]);
                b.truncate(base);
                // A huge txn once grew it: give the memory back rather than keep it per thread.
                if b.is_empty() && b.capacity() > 4 * MAX_LAYERS {
                    b.shrink_to(MAX_LAYERS);
                }
            });
        }
    });
}

/// The buffer's length: where a new guard's layers start.
fn buf_len() -> usize {
    BUF.with(|b| b.borrow().len())
}

/// The request this thread works for now.
pub fn current() -> Option<Arc<RequestTrace>> {
    SINK.with(|s| match &*s.borrow() {
        Sink::Request(t) => Some(t.clone()),
        _ => None,
    })
}

/// Sets an attribute of the current request's root span (nothing without a current request).
pub fn set_attr(key: &'static str, value: i64) {
    SINK.with(|s| {
        if let Sink::Request(t) = &*s.borrow() {
            t.set_attr(key, value);
        }
    });
}

/// Keeps the start of the current request's key.
pub fn set_key(key: &[u8]) {
    SINK.with(|s| {
        if let Sink::Request(t) = &*s.borrow() {
            t.set_key(key);
        }
    });
}

/// Makes `trace` (or no request, with `None`) this thread's current request until the guard
/// drops; then what was recorded goes into it and the previous current request is back.
pub fn enter(trace: Option<Arc<RequestTrace>>) -> Entered {
    flush();
    let new = match trace {
        Some(t) => Sink::Request(t),
        None => Sink::None,
    };
    let prev = SINK.with(|s| std::mem::replace(&mut *s.borrow_mut(), new));
    // After the flush the buffer is empty unless a `collect` is active around this: its
    // layers stay where they are, this request's go after them.
    let prev_base = BASE.replace(buf_len());
    Entered {
        prev: Some(prev),
        prev_base,
        _thread: PhantomData,
    }
}

/// The guard of [`enter`].
#[must_use = "the request stays current only while the guard lives"]
pub struct Entered {
    prev: Option<Sink>,
    prev_base: usize,
    /// Not `Send`: the guard restores this thread's sink and buffer base, so it must end on the
    /// thread it began on.
    _thread: PhantomData<*const ()>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        flush();
        if let Some(prev) = self.prev.take() {
            SINK.with(|s| *s.borrow_mut() = prev);
            BASE.set(self.prev_base);
        }
    }
}

/// Collects what is recorded on this thread (for work shared by many requests: one WAL save
/// serves every proposal of a Ready) until [`Collecting::finish`].
pub fn collect() -> Collecting {
    flush();
    let prev = SINK.with(|s| std::mem::replace(&mut *s.borrow_mut(), Sink::Collect));
    let prev_base = BASE.replace(buf_len());
    Collecting {
        prev: Some(prev),
        prev_base,
        _thread: PhantomData,
    }
}

/// The guard of [`collect`].
#[must_use = "collecting stops when the guard drops"]
pub struct Collecting {
    prev: Option<Sink>,
    prev_base: usize,
    /// Not `Send`, as [`Entered`].
    _thread: PhantomData<*const ()>,
}

impl Collecting {
    /// Moves the collected layers into `out` (cleared first) and stops collecting.
    pub fn finish(mut self, out: &mut Vec<Layer>) {
        out.clear();
        BUF.with(|b| {
            let mut b = b.borrow_mut();
            let base = BASE.get().min(b.len());
            out.extend(b.drain(base..));
        });
        self.restore();
    }

    fn restore(&mut self) {
        if let Some(prev) = self.prev.take() {
            BUF.with(|b| b.borrow_mut().truncate(BASE.get()));
            SINK.with(|s| *s.borrow_mut() = prev);
            BASE.set(self.prev_base);
        }
    }
}

impl Drop for Collecting {
    fn drop(&mut self) {
        self.restore();
    }
}

/// Runs `fut` with `trace` as the current request of whichever thread polls it, inside the
/// `tracing` span `span` (one wrapper for both, as `tracing`'s `Instrumented` would be: an RPC's
/// future is large, and every wrapper moves it once more).
pub fn scope<F: Future>(trace: Arc<RequestTrace>, span: tracing::Span, fut: F) -> Scoped<F> {
    Scoped { fut, trace, span }
}

pin_project_lite::pin_project! {
    /// The future of [`scope`].
    pub struct Scoped<F> {
        #[pin]
        fut: F,
        trace: Arc<RequestTrace>,
        span: tracing::Span,
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let this = self.project();
        let _span = this.span.enter();
        let _entered = enter(Some(this.trace.clone()));
        this.fut.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trip_and_refusals() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let c = TraceContext::from_traceparent(tp).unwrap();
        assert_eq!(c.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(c.span_id, 0x00f067aa0ba902b7);
        assert!(c.sampled);
        assert_eq!(c.traceparent(), tp);
        let unsampled = TraceContext::from_traceparent(&tp.replace("-01", "-00")).unwrap();
        assert!(!unsampled.sampled);
        // A later version with more fields is read as 00.
        assert!(
            TraceContext::from_traceparent(&format!("{}-xyz", tp.replacen("00", "01", 1)))
                .is_some()
        );
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
        ] {
            assert_eq!(TraceContext::from_traceparent(bad), None, "{bad}");
        }
    }

    #[test]
    fn records_go_to_the_current_request_only() {
        let t = Timer::start();
        record(crate::names::MVCC_PUT, &t, 1); // no request: dropped
        let a = Arc::new(RequestTrace::new("a", Instant::now(), None));
        let b = Arc::new(RequestTrace::new("b", Instant::now(), None));
        {
            let _e = enter(Some(a.clone()));
            record(crate::names::MVCC_PUT, &t, 2);
            set_attr("etcd.revision", 7);
            {
                let _e = enter(Some(b.clone()));
                record_with(crate::names::MVCC_TXN, &t, 3, &[("x", 1)]);
            }
            record(crate::names::BACKEND_COMMIT, &t, 4);
        }
        record(crate::names::MVCC_PUT, &t, 5);
        let names = |r: &RequestTrace| r.layers().iter().map(|l| l.name).collect::<Vec<_>>();
        assert_eq!(names(&a), ["mvcc.put", "backend.commit"]);
        assert_eq!(names(&b), ["mvcc.txn"]);
        assert_eq!(b.layers()[0].attrs.get("x"), Some(1));
        let taken = a.take();
        assert_eq!(taken.root.get("etcd.revision"), Some(7));
        // After take, the record is closed.
        a.push(Layer::new("late", &t, 1));
        assert!(a.layers().is_empty());
    }

    #[test]
    fn collect_gathers_shared_work() {
        let t = Timer::start();
        let a = Arc::new(RequestTrace::new("a", Instant::now(), None));
        let _e = enter(Some(a.clone()));
        let c = collect();
        record(crate::names::WAL_APPEND, &t, 1);
        record(crate::names::WAL_FSYNC, &t, 2);
        let mut out = Vec::new();
        c.finish(&mut out);
        assert_eq!(out.len(), 2);
        record(crate::names::MVCC_PUT, &t, 3);
        drop(_e);
        // The collected layers did not go to the request that was current around them.
        assert_eq!(a.layers().len(), 1);
    }

    #[test]
    fn a_request_entered_while_collecting_takes_only_its_own_layers() {
        let t = Timer::start();
        let a = Arc::new(RequestTrace::new("a", Instant::now(), None));
        let c = collect();
        record(crate::names::WAL_APPEND, &t, 1);
        {
            let _e = enter(Some(a.clone()));
            record(crate::names::MVCC_PUT, &t, 2);
            {
                // And a collect inside that request: its layers go to neither.
                let inner = collect();
                record(crate::names::BACKEND_COMMIT, &t, 3);
                let mut out = Vec::new();
                inner.finish(&mut out);
                assert_eq!(
                    out.iter().map(|l| l.name).collect::<Vec<_>>(),
                    ["backend.commit"]
                );
            }
            record(crate::names::MVCC_TXN, &t, 4);
        }
        record(crate::names::WAL_FSYNC, &t, 5);
        let mut out = Vec::new();
        c.finish(&mut out);
        let names = |v: &[Layer]| v.iter().map(|l| l.name).collect::<Vec<_>>();
        assert_eq!(names(&out), ["wal.append", "wal.fsync"]);
        assert_eq!(names(&a.layers()), ["mvcc.put", "mvcc.txn"]);
        assert_eq!(buf_len(), 0);
    }

    #[test]
    fn the_buffer_keeps_at_most_max_layers_per_request() {
        let t = Timer::start();
        let a = Arc::new(RequestTrace::new("a", Instant::now(), None));
        {
            let _e = enter(Some(a.clone()));
            for _ in 0..3 * MAX_LAYERS {
                record(crate::names::MVCC_PUT, &t, 1);
            }
            assert_eq!(buf_len(), MAX_LAYERS);
        }
        assert_eq!(a.layer_count(), MAX_LAYERS);
    }

    #[test]
    fn scope_sets_the_current_request_while_polled() {
        let a = Arc::new(RequestTrace::new("a", Instant::now(), None));
        let fut = scope(a.clone(), tracing::Span::none(), async {
            assert!(current().is_some());
            record(crate::names::MVCC_RANGE, &Timer::start(), 1);
        });
        // A minimal executor: the future never waits.
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut fut = std::pin::pin!(fut);
        assert!(fut.as_mut().poll(&mut cx).is_ready());
        assert!(current().is_none());
        assert_eq!(a.layers().len(), 1);
    }

    #[test]
    fn attrs_keep_n_and_replace() {
        let mut a = Attrs::<2>::default();
        a.set("a", 1);
        a.set("b", 2);
        a.set("c", 3);
        a.set("a", 4);
        assert_eq!(a.iter().collect::<Vec<_>>(), [("a", 4), ("b", 2)]);
    }

    #[test]
    fn key_prefix_escapes_and_truncates() {
        assert_eq!(KeyPrefix::new(b"foo/\x00\"").escaped(), "foo/\\x00\\\"");
        let long = vec![b'k'; 100];
        let k = KeyPrefix::new(&long);
        assert_eq!(k.bytes().len(), KEY_PREFIX);
        assert!(k.escaped().ends_with('…'));
    }
}
