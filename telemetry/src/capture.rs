//! A `tracing` layer that keeps every closed span with its fields, for tests that prove a
//! measurement is taken.
//!
//! ```ignore
//! let (capture, _guard) = telemetry::capture::Capture::install();
//! do_work();
//! let spans = capture.spans_named("freelist.allocate");
//! assert_eq!(spans[0].field("algorithm"), Some("map"));
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// A closed span: its name, the name of its parent (if any) and every field recorded on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedSpan {
    pub name: String,
    pub parent: Option<String>,
    pub fields: BTreeMap<String, String>,
}

impl CapturedSpan {
    /// A field's value as text (strings without quotes).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

/// Keeps the capturing subscriber installed on this thread while alive.
pub struct CaptureGuard {
    _guard: tracing::subscriber::DefaultGuard,
    _anchor: tracing::Dispatch,
}

/// The shared list of closed spans (and events, as text); clone it freely.
#[derive(Clone, Default)]
pub struct Capture {
    spans: Arc<Mutex<Vec<CapturedSpan>>>,
    events: Arc<Mutex<Vec<String>>>,
}

impl Capture {
    /// Installs a capturing subscriber (all levels) as this thread's default until the guard
    /// drops. Spans made on other threads are not seen: keep the work under test on this thread.
    ///
    /// `tracing` caches, per callsite and for the whole process, whether any subscriber is
    /// interested. A test thread running without a subscriber can cache "never" for a callsite
    /// that this thread then needs. An extra global-registered dispatcher kept alive with the
    /// guard makes that interest "sometimes" (asked per span), and the rebuild corrects what was
    /// cached before this call.
    pub fn install() -> (Capture, CaptureGuard) {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::registry().with(capture.clone());
        let anchor = tracing::Dispatch::new(tracing_subscriber::registry());
        let guard = tracing::subscriber::set_default(subscriber);
        tracing::callsite::rebuild_interest_cache();
        (
            capture,
            CaptureGuard {
                _guard: guard,
                _anchor: anchor,
            },
        )
    }

    /// Every closed span so far.
    pub fn spans(&self) -> Vec<CapturedSpan> {
        self.spans.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Every event so far, as `target: message field=value…`.
    pub fn events(&self) -> Vec<String> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Closed spans with this name.
    pub fn spans_named(&self, name: &str) -> Vec<CapturedSpan> {
        self.spans()
            .into_iter()
            .filter(|s| s.name == name)
            .collect()
    }
}

impl<S> Layer<S> for Capture
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(fields) = span.extensions_mut().get_mut::<Fields>() {
                values.record(fields);
            }
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut text = format!("{}:", event.metadata().target());
        for (k, v) in &fields.0 {
            if k == "message" {
                text = format!("{text} {v}");
            } else {
                text = format!("{text} {k}={v}");
            }
        }
        if let Ok(mut events) = self.events.lock() {
            events.push(text);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let fields = span
            .extensions_mut()
            .remove::<Fields>()
            .map(|f| f.0)
            .unwrap_or_default();
        let captured = CapturedSpan {
            name: span.name().to_string(),
            parent: span.parent().map(|p| p.name().to_string()),
            fields,
        };
        if let Ok(mut spans) = self.spans.lock() {
            spans.push(captured);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_fields_and_parents() {
        let (capture, _guard) = Capture::install();
        {
            let outer = tracing::info_span!("outer", a = 1u64);
            let _e = outer.enter();
            let inner = tracing::debug_span!("inner", b = "x", c = tracing::field::Empty);
            inner.record("c", 7u64);
        }
        let inner = &capture.spans_named("inner")[0];
        assert_eq!(inner.parent.as_deref(), Some("outer"));
        assert_eq!(inner.field("b"), Some("x"));
        assert_eq!(inner.field("c"), Some("7"));
        assert_eq!(capture.spans_named("outer")[0].field("a"), Some("1"));
    }
}
