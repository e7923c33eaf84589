//! [`SlowRing`]: the recent requests slower than `--slow-request-threshold`, each with its
//! per-layer breakdown, kept in process (what `glass.v1.Diagnostics/RecentSlowRequests`
//! serves) whether or not they were sampled or exported.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// How many slow requests are kept by default.
pub const DEFAULT_SLOW_RING: usize = 256;

/// One layer of a slow request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlowLayer {
    /// A measurement name (`raft.propose_commit`, `wal.fsync`, ...).
    pub name: &'static str,
    /// From the request's start.
    pub start_offset_ns: u64,
    pub duration_ns: u64,
}

/// A request slower than the threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlowRequest {
    /// `etcdserverpb.KV/Put`.
    pub method: &'static str,
    /// When it started, Unix milliseconds.
    pub unix_ms: i64,
    pub duration_ns: u64,
    /// The gRPC status code (0 = OK).
    pub code: i32,
    /// The W3C trace id it was exported under; `None` when it was not exported (no
    /// exporter, or the export queue was full).
    pub trace_id: Option<u128>,
    /// What was asked: key (escaped, truncated) and sizes, revision.
    pub summary: String,
    /// Every layer it crossed, by start.
    pub layers: Vec<SlowLayer>,
}

impl SlowRequest {
    /// The trace id as 32 hex digits, or "" when not exported.
    pub fn trace_id_hex(&self) -> String {
        self.trace_id
            .map(|t| format!("{t:032x}"))
            .unwrap_or_default()
    }

    /// The status code's name as gRPC spells it (`OK`, `DEADLINE_EXCEEDED`, ...).
    pub fn code_name(&self) -> &'static str {
        grpc_code_name(self.code)
    }
}

/// gRPC's canonical code names.
pub fn grpc_code_name(code: i32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i).copied())
        .unwrap_or("UNKNOWN")
}

/// A bounded ring of [`SlowRequest`]s, the oldest forgotten first. Only slow requests take
/// its lock, and hold it only to move an `Arc` in or out: the entry is built before, the
/// evicted one freed after, and readers ([`SlowRing::recent`]) copy `Arc`s, not requests.
#[derive(Debug)]
pub struct SlowRing {
    capacity: usize,
    ring: Mutex<VecDeque<Arc<SlowRequest>>>,
}

impl Default for SlowRing {
    fn default() -> Self {
        SlowRing::new(DEFAULT_SLOW_RING)
    }
}

impl SlowRing {
    pub fn new(capacity: usize) -> Self {
        SlowRing {
            capacity: capacity.max(1),
            ring: Mutex::new(VecDeque::with_capacity(capacity.clamp(1, 1024))),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn push(&self, r: SlowRequest) {
        let r = Arc::new(r);
        let evicted = {
            let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
            let evicted = if ring.len() == self.capacity {
                ring.pop_front()
            } else {
                None
            };
            ring.push_back(r);
            evicted
        };
        // Freed here, with the lock released (a reader may still hold it, then it goes later).
        drop(evicted);
    }

    /// The newest `limit` slow requests (all kept when `limit` is 0), newest first.
    pub fn recent(&self, limit: usize) -> Vec<Arc<SlowRequest>> {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let n = if limit == 0 {
            ring.len()
        } else {
            limit.min(ring.len())
        };
        ring.iter().rev().take(n).cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.ring.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(n: u64) -> SlowRequest {
        SlowRequest {
            method: "etcdserverpb.KV/Put",
            unix_ms: n as i64,
            duration_ns: n,
            code: 0,
            trace_id: None,
            summary: String::new(),
            layers: Vec::new(),
        }
    }

    #[test]
    fn keeps_the_newest_and_answers_newest_first() {
        let ring = SlowRing::new(3);
        assert!(ring.is_empty());
        for n in 1..=5 {
            ring.push(req(n));
        }
        let all: Vec<u64> = ring.recent(0).iter().map(|r| r.duration_ns).collect();
        assert_eq!(all, [5, 4, 3]);
        let two: Vec<u64> = ring.recent(2).iter().map(|r| r.duration_ns).collect();
        assert_eq!(two, [5, 4]);
        assert_eq!(ring.recent(10).len(), 3);
    }

    #[test]
    fn readers_share_entries_and_keep_evicted_ones_alive() {
        let ring = SlowRing::new(2);
        ring.push(req(1));
        ring.push(req(2));
        let held = ring.recent(0);
        // The ring and the reader share one allocation per entry: no deep copy.
        assert!(Arc::ptr_eq(&held[0], &ring.recent(1)[0]));
        assert_eq!(Arc::strong_count(&held[1]), 2);
        ring.push(req(3));
        // Evicted from the ring, still alive for the reader that holds it.
        assert_eq!(Arc::strong_count(&held[1]), 1);
        assert_eq!(held[1].duration_ns, 1);
    }

    #[test]
    fn code_names_and_trace_ids() {
        let mut r = req(1);
        assert_eq!(r.code_name(), "OK");
        assert_eq!(r.trace_id_hex(), "");
        r.code = 4;
        r.trace_id = Some(0xab);
        assert_eq!(r.code_name(), "DEADLINE_EXCEEDED");
        assert_eq!(r.trace_id_hex(), format!("{:032x}", 0xab));
        assert_eq!(grpc_code_name(99), "UNKNOWN");
    }
}
