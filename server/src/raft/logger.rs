//! raft-rs logs through `slog`; this drain forwards every record to `tracing` (target
//! `raft`), with its key-values appended to the message, so that raft's logs go where every
//! other log of Glass goes. raft-rs's `fatal!` logs at critical and then panics.

use std::fmt::{self, Write as _};

use slog::{Drain, Key, Level, OwnedKVList, Record, Serializer, KV};

/// A `slog` drain writing to `tracing`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingDrain;

/// Collects key-values as ` key=value`.
struct Kv(String);

impl Serializer for Kv {
    fn emit_arguments(&mut self, key: Key, val: &fmt::Arguments<'_>) -> slog::Result {
        // Writing to a String cannot fail.
        let _ = write!(self.0, " {key}={val}");
        Ok(())
    }
}

impl Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        let mut kv = Kv(String::new());
        let _ = record.kv().serialize(record, &mut kv);
        let _ = values.serialize(record, &mut kv);
        let msg = record.msg();
        let kv = kv.0;
        match record.level() {
            Level::Critical | Level::Error => tracing::error!(target: "raft", "{msg}{kv}"),
            Level::Warning => tracing::warn!(target: "raft", "{msg}{kv}"),
            Level::Info => tracing::info!(target: "raft", "{msg}{kv}"),
            Level::Debug => tracing::debug!(target: "raft", "{msg}{kv}"),
            Level::Trace => tracing::trace!(target: "raft", "{msg}{kv}"),
        }
        Ok(())
    }
}

/// The logger a raft node of member `id` is given.
pub fn logger(id: u64) -> slog::Logger {
    slog::Logger::root(TracingDrain, slog::o!("raft_id" => format!("{id:x}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_reach_tracing_with_their_values() {
        let (capture, _guard) = telemetry::capture::Capture::install();
        let log = logger(0xab);
        slog::info!(log, "became leader"; "term" => 2);
        let events = capture.events();
        assert!(
            events.iter().any(|e| e.contains("became leader")
                && e.contains("term=2")
                && e.contains("raft_id=ab")),
            "{events:?}"
        );
    }
}
