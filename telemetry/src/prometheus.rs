//! The Prometheus text exposition (format 0.0.4) of every Glass measurement.
//!
//! [`render`] writes one [`Metrics`] as a complete text page, to be served on `/metrics` with
//! [`CONTENT_TYPE`]. The text is written by hand (no client library): a page is a few hundred
//! lines rendered from atomic loads, and the format is small.
//!
//! # Two names: etcd's, and Glass's
//!
//! **Where etcd 3.4 measures the same thing, Glass uses etcd's name**, with etcd's type, help
//! text, labels and bucket boundaries (taken from etcd 3.4.23's `wal/metrics.go`,
//! `mvcc/backend/metrics.go`, `mvcc/metrics.go`, `etcdserver/metrics.go` and
//! go-grpc-prometheus), so dashboards and alerts written for etcd work unchanged:
//!
//! | etcd 3.4 family | type | from |
//! |---|---|---|
//! | `etcd_disk_wal_fsync_duration_seconds` | histogram | `wal.fsync` |
//! | `etcd_disk_backend_commit_duration_seconds` | histogram | `backend.commit` |
//! | `etcd_debugging_mvcc_index_compaction_pause_duration_milliseconds` | histogram | `mvcc.index_compaction` |
//! | `etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds` | histogram | `mvcc.compaction_pause` |
//! | `etcd_debugging_mvcc_db_compaction_total_duration_milliseconds` | histogram | `mvcc.compaction` |
//! | `etcd_mvcc_range_total`, `etcd_debugging_mvcc_range_total` | counter | count of `mvcc.range` |
//! | `etcd_mvcc_put_total`, `etcd_debugging_mvcc_put_total` | counter | count of `mvcc.put` |
//! | `etcd_mvcc_delete_total`, `etcd_debugging_mvcc_delete_total` | counter | count of `mvcc.delete` |
//! | `etcd_server_proposals_committed_total` | gauge | `raft_commit_index` (etcd sets it to the commit index) |
//! | `etcd_server_proposals_applied_total` | gauge | `raft_applied_index` (etcd: the applied index) |
//! | `etcd_server_proposals_pending` | gauge | `raft_proposals_pending` |
//! | `etcd_server_proposals_failed_total` | counter | `raft_proposals_failed` |
//! | `etcd_server_leader_changes_seen_total` | counter | `raft_leader_changes` |
//! | `etcd_server_has_leader`, `etcd_server_is_leader` | gauge | `raft_has_leader`, `raft_is_leader` |
//! | `etcd_server_quota_backend_bytes` | gauge | `server_quota_backend_bytes` |
//! | `etcd_server_read_indexes_failed_total` | counter | `server_read_indexes_failed` |
//! | `etcd_server_slow_apply_total` | counter | `server_slow_apply` |
//! | `etcd_mvcc_db_total_size_in_bytes`, `etcd_debugging_mvcc_db_total_size_in_bytes` | gauge | `backend_db_size` |
//! | `etcd_mvcc_db_total_size_in_use_in_bytes` | gauge | `backend_db_size_in_use` |
//! | `etcd_debugging_mvcc_keys_total` | gauge | `mvcc_keys` |
//! | `etcd_debugging_mvcc_current_revision`, `etcd_debugging_mvcc_compact_revision` | gauge | `mvcc_current_revision`, `mvcc_compact_revision` |
//! | `etcd_debugging_mvcc_db_compaction_keys_total` | counter | `mvcc_compaction_keys` |
//! | `grpc_server_handled_total{grpc_code,grpc_method,grpc_service,grpc_type="unary"}` | counter | `grpc_handled` |
//! | `grpc_server_handling_seconds{grpc_method,grpc_service,grpc_type="unary"}` | histogram | `kv_latency` (etcd's `--metrics=extensive`; the KV methods, Prometheus's default buckets) |
//!
//! (The `etcd_debugging_mvcc_*` duplicates of `etcd_mvcc_*` are there because etcd 3.4 exposes
//! both, and older etcd dashboards read the debugging ones.)
//!
//! Not exposed under an etcd name, because Glass does not measure the same thing:
//! `etcd_debugging_disk_backend_commit_{rebalance,spill,write}_duration_seconds` (bbolt's
//! per-phase tx stats; `write` is the page writes *and* their fdatasync, while
//! `backend.commit_fsync` is both fdatasyncs of a commit), `etcd_mvcc_txn_total` (etcd counts
//! only txns of more than one operation; `mvcc.txn` counts every write txn),
//! `grpc_server_started_total` and the message
//! counters, `etcd_disk_wal_write_bytes_total`, and the watch, lease, snapshot, hash, defrag
//! and network families, which have no Glass measurement yet.
//!
//! **Every measurement also has a Glass name.** Each histogram of [`names::ALL`] appears as
//! `glass_` + its name with `.` → `_` + its unit: `_seconds` for [`Unit::Nanoseconds`] (values
//! converted to seconds), `_pages` for [`Unit::Pages`] and `_bytes` for [`Unit::Bytes`] (unless
//! the name already ends so: `backend.commit_pages` → `glass_backend_commit_pages`), nothing for
//! [`Unit::Count`]; its HELP is the measurement's help text. Counters and gauges that no etcd
//! name covers are `glass_<field>` (counters with `_total`): `glass_backend_commits_total`,
//! `glass_backend_commit_bytes_total`, `glass_freelist_allocate_misses_total`,
//! `glass_freelist_free_pages`, `glass_raft_proposals_committed_total`,
//! `glass_raft_proposals_applied_total`, `glass_raft_term`.
//!
//! # Bucket boundaries of the `glass_` histograms
//!
//! Fixed, the same for every measurement of a unit, so families can be summed and compared:
//! - seconds: the 1–2.5–5 series from 1 µs to 25 s (`1e-06`, `2.5e-06`, `5e-06`, `1e-05`, …,
//!   `10`, `25`; 23 buckets), the series of Prometheus's own default buckets, extended down to
//!   the microseconds of lock waits and freelist allocations and up to the seconds of a slow
//!   fsync or a compaction (etcd's own names keep etcd's coarser buckets, from 1 ms);
//! - pages and counts: one less than each power of 2 from 2 to 2^20 (`1`, `3`, `7`, `15`, …,
//!   `1.048575e+06`: "fewer than 2^k", up to a commit of 4 GiB of 4 KiB pages). These bounds
//!   are tops of log-linear buckets, so their counts are exact (see below); a bound of `16`
//!   would not be, and would leave out a commit of exactly 16 pages;
//! - bytes: one less than each power of 4 from 64 B to 1 GiB (`63`, `255`, … `1.073741823e+09`),
//!   exact for the same reason.
//!
//! # Histogram buckets from the log-linear histogram
//!
//! A Prometheus bucket `le="B"` counts the recorded values `<= B`. [`Histogram`](crate::Histogram)
//! keeps finer buckets (8 per power of two) whose bounds do not line up with `B`, so each
//! `le` count is [`HistogramSnapshot::count_at_most`] of `B` in the measurement's own unit
//! (`B` seconds = `B`·10⁹ ns, an integer for every boundary above): the values of every
//! log-linear bucket whose *upper* bound is `<= B`. In other words **each value is counted as
//! if it were the top of its log-linear bucket**, which is less than 1/8 above it. So:
//! - a value above `B` is never counted in `le="B"`;
//! - a value `v <= B` is missing from `le="B"` (and counted from the next boundary up) only
//!   when `v <= B < v · 9/8`, i.e. only values in the last ninth below a boundary can be; e.g.
//!   `le="0.001"` of `etcd_disk_wal_fsync_duration_seconds` counts exactly the fsyncs of at most
//!   983 039 ns, and those of 983 040 ns to 1 ms move to `le="0.002"`;
//! - a boundary that is the top of a log-linear bucket is exact: any value below 16, and
//!   2^k − 1 (the `glass_` boundaries of pages, bytes and counts).
//!
//! Counts are cumulative and monotone, `le="+Inf"` is `_count`, and `_sum` is the exact sum
//! of the recorded values converted to the family's unit (`_count` is the sum of the buckets
//! read, so the two always agree; `_sum` may already include a value whose bucket a
//! concurrent snapshot missed).
//!
//! etcd's millisecond histograms observe *whole* milliseconds (it truncates
//! `time.Since(start) / time.Millisecond` before observing); Glass observes the exact value, so
//! a 0.7 ms index compaction pause is in etcd's `le="0.5"` bucket but in Glass's `le="1"`, and
//! Glass's `_sum` is the true total.
//!
//! # Order and format
//!
//! Families are sorted by name (byte order), and the samples of a family by their label values
//! in label-name order — the order Go's client_golang gathers them in; each family has one
//! `# HELP` and one `# TYPE` line, HELP first. Labels are written in name order; label values
//! escape `\`, `"` and newline, HELP text `\` and newline. Numbers are written as Go's
//! `strconv.FormatFloat(v, 'g', -1, 64)` writes them (`0.004`, `1e-06`, `2.147483648e+09`), so
//! the `le` labels are byte-identical to etcd's. `grpc_server_handled_total` has a sample per
//! (method, code) seen so far (etcd pre-registers a zero for every method and code), and is
//! left out until the first request, as client_golang leaves out a family with no sample.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::names::{self, Measurement, Unit};
use crate::{HistogramSnapshot, Metrics};

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders every measurement of `m` in the Prometheus text format: see the module doc for the
/// names, the buckets and the order.
pub fn render(m: &Metrics) -> String {
    let mut families = Vec::new();
    for (measurement, histogram) in m.histograms() {
        let snap = histogram.snapshot();
        families.push(Family::histogram(
            Cow::Owned(glass_name(measurement)),
            measurement.help,
            &snap,
            glass_buckets(measurement.unit),
        ));
        for e in ETCD_HISTOGRAMS
            .iter()
            .filter(|e| e.measurement == measurement.name)
        {
            families.push(Family::histogram(
                Cow::Borrowed(e.name),
                e.help,
                &snap,
                e.buckets,
            ));
        }
        for e in ETCD_EVENT_COUNTS
            .iter()
            .filter(|e| e.measurement == measurement.name)
        {
            families.push(Family::single(
                e.name,
                e.help,
                Kind::Counter,
                snap.count as f64,
            ));
        }
    }
    for s in SCALARS {
        families.push(Family::single(s.name, s.help, s.kind, (s.read)(m)));
    }
    if let Some(f) = grpc_handled(m) {
        families.push(f);
    }
    if let Some(f) = grpc_handling_seconds(m) {
        families.push(f);
    }
    families.sort_by(|a, b| a.name.cmp(&b.name));

    let mut out = String::with_capacity(families.iter().map(|f| f.samples.len() + 200).sum());
    for f in &families {
        f.write(&mut out);
    }
    out
}

/// A metric family's type, as its `# TYPE` line says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Bucket boundaries: upper bounds in the measurement's own unit (nanoseconds, pages, bytes),
/// ascending, and how many of that unit make one of the family's unit (10⁹ ns per second).
/// Keeping the bounds as integers of the recorded unit makes `value <= bound` exact; the `le`
/// label is `bound / per_unit`, which for every boundary here is the closest `f64` to the
/// decimal etcd's Go code computes, so it prints the same.
#[derive(Debug, Clone, Copy)]
struct Buckets {
    bounds: &'static [u64],
    per_unit: f64,
}

const NS_PER_SECOND: f64 = 1e9;
const NS_PER_MILLISECOND: f64 = 1e6;

/// `N` boundaries `start`, `start·factor`, `start·factor²`, … (Go's `ExponentialBuckets`).
const fn exponential<const N: usize>(start: u64, factor: u64) -> [u64; N] {
    let mut out = [0; N];
    let mut i = 0;
    let mut v = start;
    while i < N {
        out[i] = v;
        if i + 1 < N {
            v *= factor;
        }
        i += 1;
    }
    out
}

/// etcd's `ExponentialBuckets(0.001, 2, 14)` seconds (1 ms … 8.192 s), in nanoseconds: the WAL
/// fsync and backend commit histograms.
const ETCD_DISK_SECONDS: [u64; 14] = exponential(1_000_000, 2);
/// etcd's `ExponentialBuckets(0.5, 2, 14)` milliseconds (0.5 ms … 4.096 s), in nanoseconds.
const ETCD_INDEX_COMPACTION_PAUSE_MS: [u64; 14] = exponential(500_000, 2);
/// etcd's `ExponentialBuckets(1, 2, 13)` milliseconds (1 ms … 4.096 s), in nanoseconds.
const ETCD_DB_COMPACTION_PAUSE_MS: [u64; 13] = exponential(1_000_000, 2);
/// etcd's `ExponentialBuckets(100, 2, 14)` milliseconds (100 ms … 819.2 s), in nanoseconds.
const ETCD_DB_COMPACTION_TOTAL_MS: [u64; 14] = exponential(100_000_000, 2);

/// The `glass_…_seconds` boundaries: 1, 2.5, 5 × 10ᵏ from 1 µs to 25 s, in nanoseconds.
const GLASS_SECONDS: [u64; 23] = [
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    25_000_000_000,
];
/// `N` boundaries 2^first − 1, 2^(first+step) − 1, …: each the top of a log-linear bucket
/// (2^k starts one), so `le` counts them exactly.
const fn below_powers_of_2<const N: usize>(first: u32, step: u32) -> [u64; N] {
    let mut out = [0; N];
    let mut i = 0;
    while i < N {
        out[i] = (1 << (first + step * i as u32)) - 1;
        i += 1;
    }
    out
}

/// The `glass_…_pages` and unit-less boundaries: 1, 3, 7, … 2^20 − 1.
const GLASS_BELOW_POWERS_OF_2: [u64; 20] = below_powers_of_2(1, 1);
/// The `glass_…_bytes` boundaries: 63, 255, 1023, … 2^30 − 1 (below 64 B, 256 B, … 1 GiB).
const GLASS_BYTES: [u64; 13] = below_powers_of_2(6, 2);

/// The boundaries of a `glass_` histogram of unit `unit`.
fn glass_buckets(unit: Unit) -> Buckets {
    match unit {
        Unit::Nanoseconds => Buckets {
            bounds: &GLASS_SECONDS,
            per_unit: NS_PER_SECOND,
        },
        Unit::Pages | Unit::Count => Buckets {
            bounds: &GLASS_BELOW_POWERS_OF_2,
            per_unit: 1.0,
        },
        Unit::Bytes => Buckets {
            bounds: &GLASS_BYTES,
            per_unit: 1.0,
        },
    }
}

/// The `glass_` family name of a histogram measurement: `glass_` + the name with `.` → `_` +
/// the unit's suffix (not repeated when the name already ends with it). Any character
/// Prometheus does not allow in a name becomes `_`.
fn glass_name(m: &Measurement) -> String {
    let mut name: String = "glass_"
        .chars()
        .chain(m.name.chars())
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let suffix = match m.unit {
        Unit::Nanoseconds => "_seconds",
        Unit::Pages => "_pages",
        Unit::Bytes => "_bytes",
        Unit::Count => "",
    };
    if !name.ends_with(suffix) {
        name.push_str(suffix);
    }
    name
}

/// A histogram measurement etcd 3.4 also takes, under etcd's name and buckets.
struct EtcdHistogram {
    measurement: &'static str,
    name: &'static str,
    help: &'static str,
    buckets: Buckets,
}

const ETCD_HISTOGRAMS: &[EtcdHistogram] = &[
    EtcdHistogram {
        measurement: names::WAL_FSYNC,
        name: "etcd_disk_wal_fsync_duration_seconds",
        help: "The latency distributions of fsync called by WAL.",
        buckets: Buckets {
            bounds: &ETCD_DISK_SECONDS,
            per_unit: NS_PER_SECOND,
        },
    },
    EtcdHistogram {
        measurement: names::BACKEND_COMMIT,
        name: "etcd_disk_backend_commit_duration_seconds",
        help: "The latency distributions of commit called by backend.",
        buckets: Buckets {
            bounds: &ETCD_DISK_SECONDS,
            per_unit: NS_PER_SECOND,
        },
    },
    EtcdHistogram {
        measurement: names::MVCC_INDEX_COMPACTION,
        name: "etcd_debugging_mvcc_index_compaction_pause_duration_milliseconds",
        help: "Bucketed histogram of index compaction pause duration.",
        buckets: Buckets {
            bounds: &ETCD_INDEX_COMPACTION_PAUSE_MS,
            per_unit: NS_PER_MILLISECOND,
        },
    },
    EtcdHistogram {
        measurement: names::MVCC_COMPACTION_PAUSE,
        name: "etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds",
        help: "Bucketed histogram of db compaction pause duration.",
        buckets: Buckets {
            bounds: &ETCD_DB_COMPACTION_PAUSE_MS,
            per_unit: NS_PER_MILLISECOND,
        },
    },
    EtcdHistogram {
        measurement: names::MVCC_COMPACTION,
        name: "etcd_debugging_mvcc_db_compaction_total_duration_milliseconds",
        help: "Bucketed histogram of db compaction total duration.",
        buckets: Buckets {
            bounds: &ETCD_DB_COMPACTION_TOTAL_MS,
            per_unit: NS_PER_MILLISECOND,
        },
    },
];

/// An etcd counter of events Glass takes a histogram value for: the histogram's count. etcd
/// counts every `Range`, `Put` and `DeleteRange` call on an MVCC txn (`mvcc/metrics_txn.go`);
/// Glass records `mvcc.range`, `mvcc.put` and `mvcc.delete` once per call, failed or not.
struct EtcdEventCount {
    measurement: &'static str,
    name: &'static str,
    help: &'static str,
}

const ETCD_EVENT_COUNTS: &[EtcdEventCount] = &[
    EtcdEventCount {
        measurement: names::MVCC_RANGE,
        name: "etcd_mvcc_range_total",
        help: "Total number of ranges seen by this member.",
    },
    EtcdEventCount {
        measurement: names::MVCC_RANGE,
        name: "etcd_debugging_mvcc_range_total",
        help: "Total number of ranges seen by this member.",
    },
    EtcdEventCount {
        measurement: names::MVCC_PUT,
        name: "etcd_mvcc_put_total",
        help: "Total number of puts seen by this member.",
    },
    EtcdEventCount {
        measurement: names::MVCC_PUT,
        name: "etcd_debugging_mvcc_put_total",
        help: "Total number of puts seen by this member.",
    },
    EtcdEventCount {
        measurement: names::MVCC_DELETE,
        name: "etcd_mvcc_delete_total",
        help: "Total number of deletes seen by this member.",
    },
    EtcdEventCount {
        measurement: names::MVCC_DELETE,
        name: "etcd_debugging_mvcc_delete_total",
        help: "Total number of deletes seen by this member.",
    },
];

/// A counter or gauge of [`Metrics`] exposed as one sample. `field` names the `Metrics` field
/// it reads (a test checks that every counter and gauge field is exposed).
struct Scalar {
    #[cfg_attr(not(test), expect(dead_code, reason = "read by the coverage test"))]
    field: &'static str,
    name: &'static str,
    help: &'static str,
    kind: Kind,
    read: fn(&Metrics) -> f64,
}

macro_rules! scalar {
    ($field:ident, $kind:ident, $name:literal, $help:literal) => {
        Scalar {
            field: stringify!($field),
            name: $name,
            help: $help,
            kind: Kind::$kind,
            read: |m| m.$field.get() as f64,
        }
    };
}

/// Every counter and gauge of [`Metrics`]: etcd's name and help text where etcd 3.4 has the
/// measurement, a `glass_` name and the field's doc otherwise. A field may appear twice (etcd
/// 3.4 exposes `db_total_size_in_bytes` under two names).
const SCALARS: &[Scalar] = &[
    // etcd's etcdserver/metrics.go
    scalar!(
        raft_commit_index,
        Gauge,
        "etcd_server_proposals_committed_total",
        "The total number of consensus proposals committed."
    ),
    scalar!(
        raft_applied_index,
        Gauge,
        "etcd_server_proposals_applied_total",
        "The total number of consensus proposals applied."
    ),
    scalar!(
        raft_proposals_pending,
        Gauge,
        "etcd_server_proposals_pending",
        "The current number of pending proposals to commit."
    ),
    scalar!(
        raft_proposals_failed,
        Counter,
        "etcd_server_proposals_failed_total",
        "The total number of failed proposals seen."
    ),
    scalar!(
        raft_leader_changes,
        Counter,
        "etcd_server_leader_changes_seen_total",
        "The number of leader changes seen."
    ),
    scalar!(
        raft_has_leader,
        Gauge,
        "etcd_server_has_leader",
        "Whether or not a leader exists. 1 is existence, 0 is not."
    ),
    scalar!(
        raft_is_leader,
        Gauge,
        "etcd_server_is_leader",
        "Whether or not this member is a leader. 1 if is, 0 otherwise."
    ),
    scalar!(
        server_quota_backend_bytes,
        Gauge,
        "etcd_server_quota_backend_bytes",
        "Current backend storage quota size in bytes."
    ),
    scalar!(
        server_read_indexes_failed,
        Counter,
        "etcd_server_read_indexes_failed_total",
        "The total number of failed read indexes seen."
    ),
    scalar!(
        server_slow_apply,
        Counter,
        "etcd_server_slow_apply_total",
        "The total number of slow apply requests (likely overloaded from slow disk)."
    ),
    // etcd's mvcc/metrics.go
    scalar!(
        backend_db_size,
        Gauge,
        "etcd_mvcc_db_total_size_in_bytes",
        "Total size of the underlying database physically allocated in bytes."
    ),
    scalar!(
        backend_db_size,
        Gauge,
        "etcd_debugging_mvcc_db_total_size_in_bytes",
        "Total size of the underlying database physically allocated in bytes."
    ),
    scalar!(
        backend_db_size_in_use,
        Gauge,
        "etcd_mvcc_db_total_size_in_use_in_bytes",
        "Total size of the underlying database logically in use in bytes."
    ),
    scalar!(
        mvcc_keys,
        Gauge,
        "etcd_debugging_mvcc_keys_total",
        "Total number of keys."
    ),
    scalar!(
        mvcc_current_revision,
        Gauge,
        "etcd_debugging_mvcc_current_revision",
        "The current revision of store."
    ),
    scalar!(
        mvcc_compact_revision,
        Gauge,
        "etcd_debugging_mvcc_compact_revision",
        "The revision of the last compaction in store."
    ),
    scalar!(
        mvcc_compaction_keys,
        Counter,
        "etcd_debugging_mvcc_db_compaction_keys_total",
        "Total number of db keys compacted."
    ),
    // Glass's own
    scalar!(
        backend_commits,
        Counter,
        "glass_backend_commits_total",
        "Backend commits done."
    ),
    scalar!(
        backend_commit_bytes,
        Counter,
        "glass_backend_commit_bytes_total",
        "Bytes of pages written by backend commits."
    ),
    scalar!(
        freelist_allocate_misses,
        Counter,
        "glass_freelist_allocate_misses_total",
        "Allocations the freelist could not serve (the file grew instead)."
    ),
    scalar!(
        freelist_allocate_array,
        Counter,
        "glass_freelist_allocate_array_total",
        "Freelist allocations served by the array algorithm (hits and misses)."
    ),
    scalar!(
        freelist_allocate_map,
        Counter,
        "glass_freelist_allocate_map_total",
        "Freelist allocations served by the hashmap algorithm (hits and misses)."
    ),
    scalar!(
        freelist_free_pages,
        Gauge,
        "glass_freelist_free_pages",
        "Free pages in the freelist at the last commit."
    ),
    scalar!(
        backend_pending_writes,
        Gauge,
        "glass_backend_pending_writes",
        "Writes in the open backend batch, not committed yet."
    ),
    scalar!(
        raft_proposals_committed,
        Counter,
        "glass_raft_proposals_committed_total",
        "Raft entries committed while this process ran (etcd_server_proposals_committed_total is the commit index)."
    ),
    scalar!(
        raft_proposals_applied,
        Counter,
        "glass_raft_proposals_applied_total",
        "Raft entries applied while this process ran (etcd_server_proposals_applied_total is the applied index)."
    ),
    scalar!(raft_term, Gauge, "glass_raft_term", "The current raft term."),
    scalar!(
        spans_dropped,
        Counter,
        "glass_trace_spans_dropped_total",
        "Spans the OTLP exporter dropped (queue full, collector down, too slow or rejecting)."
    ),
    scalar!(
        trace_exports_throttled,
        Counter,
        "glass_trace_exports_throttled_total",
        "Requests not exported because --trace-max-exports-per-second was reached (their spans are also counted in glass_trace_spans_dropped_total)."
    ),
    scalar!(
        slow_requests,
        Counter,
        "glass_slow_requests_total",
        "Requests slower than --slow-request-threshold."
    ),
];

/// gRPC status code names as grpc-go's `codes.Code.String()` prints them.
const GRPC_CODE_NAMES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// The name of gRPC code `code`; `Code(N)` for a code grpc-go does not know, as grpc-go
/// prints it (the code as an unsigned 32-bit number).
fn grpc_code_name(code: i32) -> Cow<'static, str> {
    match usize::try_from(code)
        .ok()
        .and_then(|i| GRPC_CODE_NAMES.get(i))
    {
        Some(name) => Cow::Borrowed(name),
        None => Cow::Owned(format!("Code({})", code as u32)),
    }
}

/// Splits `etcdserverpb.KV/Put` (or `/etcdserverpb.KV/Put`) into service and method at the
/// first `/`, as go-grpc-prometheus does; `unknown`, `unknown` when there is none.
fn split_method(full: &str) -> (&str, &str) {
    let full = full.strip_prefix('/').unwrap_or(full);
    full.split_once('/').unwrap_or(("unknown", "unknown"))
}

/// go-grpc-prometheus's `grpc_server_handled_total` from [`Metrics::grpc_handled`] (every
/// method counted there is unary); `None` before the first request.
fn grpc_handled(m: &Metrics) -> Option<Family> {
    // Keyed by the label values in label-name order (code, method, service), which is the
    // sample order; two spellings of one method ("/a/b", "a/b") add up.
    let mut samples: BTreeMap<(Cow<'static, str>, &str, &str), u64> = BTreeMap::new();
    for (full, code, n) in m.grpc_handled.snapshot() {
        let (service, method) = split_method(full);
        *samples
            .entry((grpc_code_name(code), method, service))
            .or_insert(0) += n;
    }
    if samples.is_empty() {
        return None;
    }
    let mut f = Family::new(
        Cow::Borrowed("grpc_server_handled_total"),
        "Total number of RPCs completed on the server, regardless of success or failure.",
        Kind::Counter,
    );
    for ((code, method, service), n) in &samples {
        f.sample(
            "",
            &[
                ("grpc_code", code),
                ("grpc_method", method),
                ("grpc_service", service),
                ("grpc_type", "unary"),
            ],
            *n as f64,
        );
    }
    Some(f)
}

/// Prometheus's `DefBuckets` (what go-grpc-prometheus's handling-time histogram uses), in ns.
const GRPC_HANDLING_SECONDS: [u64; 11] = [
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// go-grpc-prometheus's `grpc_server_handling_seconds` (etcd's `--metrics=extensive`) for the
/// KV methods ([`Metrics::kv_latency`]) that handled a request; `None` before the first.
fn grpc_handling_seconds(m: &Metrics) -> Option<Family> {
    let mut f = Family::new(
        Cow::Borrowed("grpc_server_handling_seconds"),
        "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
        Kind::Histogram,
    );
    for (full, h) in m.kv_latency.iter() {
        let snap = h.snapshot();
        if snap.count == 0 {
            continue;
        }
        let (service, method) = split_method(full);
        let buckets = Buckets {
            bounds: &GRPC_HANDLING_SECONDS,
            per_unit: NS_PER_SECOND,
        };
        f.histogram_samples(
            &[
                ("grpc_method", method),
                ("grpc_service", service),
                ("grpc_type", "unary"),
            ],
            &snap,
            buckets,
        );
    }
    (!f.samples.is_empty()).then_some(f)
}

/// One metric family: its HELP and TYPE, and its sample lines already written.
struct Family {
    name: Cow<'static, str>,
    help: &'static str,
    kind: Kind,
    samples: String,
}

impl Family {
    fn new(name: Cow<'static, str>, help: &'static str, kind: Kind) -> Self {
        Family {
            name,
            help,
            kind,
            samples: String::new(),
        }
    }

    /// A counter or gauge with one unlabelled sample.
    fn single(name: &'static str, help: &'static str, kind: Kind, value: f64) -> Self {
        let mut f = Family::new(Cow::Borrowed(name), help, kind);
        f.sample("", &[], value);
        f
    }

    /// A histogram of `snap` with boundaries `buckets` (see the module doc for the counts).
    fn histogram(
        name: Cow<'static, str>,
        help: &'static str,
        snap: &HistogramSnapshot,
        buckets: Buckets,
    ) -> Self {
        let mut f = Family::new(name, help, Kind::Histogram);
        f.histogram_samples(&[], snap, buckets);
        f
    }

    /// The `_bucket`, `_sum` and `_count` samples of one histogram with `labels` (in name
    /// order, all sorting before `le`).
    fn histogram_samples(
        &mut self,
        labels: &[(&str, &str)],
        snap: &HistogramSnapshot,
        buckets: Buckets,
    ) {
        let mut bucket = |le: &str, v: u64| {
            let mut with_le: Vec<(&str, &str)> = labels.to_vec();
            with_le.push(("le", le));
            self.sample("_bucket", &with_le, v as f64);
        };
        for &bound in buckets.bounds {
            let le = format_float(bound as f64 / buckets.per_unit);
            bucket(&le, snap.count_at_most(bound));
        }
        bucket("+Inf", snap.count);
        self.sample("_sum", labels, snap.sum as f64 / buckets.per_unit);
        self.sample("_count", labels, snap.count as f64);
    }

    /// Appends the line `<name><suffix>{<labels>} <value>`; `labels` in name order.
    fn sample(&mut self, suffix: &str, labels: &[(&str, &str)], value: f64) {
        let out = &mut self.samples;
        out.push_str(&self.name);
        out.push_str(suffix);
        if !labels.is_empty() {
            out.push('{');
            for (i, (label, v)) in labels.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(label);
                out.push_str("=\"");
                escape_into(out, v, true);
                out.push('"');
            }
            out.push('}');
        }
        out.push(' ');
        out.push_str(&format_float(value));
        out.push('\n');
    }

    fn write(&self, out: &mut String) {
        out.push_str("# HELP ");
        out.push_str(&self.name);
        out.push(' ');
        escape_into(out, self.help, false);
        out.push_str("\n# TYPE ");
        out.push_str(&self.name);
        out.push(' ');
        out.push_str(self.kind.as_str());
        out.push('\n');
        out.push_str(&self.samples);
    }
}

/// Appends `s` escaped for the text format: `\` and newline always, `"` in label values.
fn escape_into(out: &mut String, s: &str, label_value: bool) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if label_value => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// `v` as Go's `strconv.FormatFloat(v, 'g', -1, 64)` (client_golang's number format) writes
/// it: the shortest digits that read back as `v`, in exponent form (`1e-06`,
/// `2.147483648e+09`: at least two exponent digits) when the decimal exponent is below -4 or at
/// least 6, plain decimals otherwise; `+Inf`, `-Inf`, `NaN`.
fn format_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_owned();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    if v == 0.0 {
        return "0".to_owned();
    }
    // Rust's `{:e}` is the shortest round-trip form too: "1e-6", "2.147483648e9".
    let sci = format!("{v:e}");
    let Some((mantissa, exp)) = sci.split_once('e') else {
        return sci;
    };
    let Ok(exp) = exp.parse::<i32>() else {
        return sci;
    };
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn floats_print_as_go_prints_them() {
        // Each expected string is what Go 1.19's strconv.FormatFloat(v, 'g', -1, 64) printed.
        for (v, go) in [
            (1e6, "1e+06"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (2.5e-5, "2.5e-05"),
            (1e-6, "1e-06"),
            (8.192, "8.192"),
            (2147483648.0, "2.147483648e+09"),
            (0.5, "0.5"),
            (100.0, "100"),
            (409.6, "409.6"),
            (1e21, "1e+21"),
            (5e-324, "5e-324"),
            (-3.5, "-3.5"),
            (-0.0, "0"),
            (1.0, "1"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(format_float(v), go, "{v:?}");
        }
    }

    #[test]
    fn etcd_boundaries_print_as_etcd_prints_them() {
        let le = |b: &[u64], per: f64| -> Vec<String> {
            b.iter().map(|&x| format_float(x as f64 / per)).collect()
        };
        assert_eq!(
            le(&ETCD_DISK_SECONDS, NS_PER_SECOND),
            [
                "0.001", "0.002", "0.004", "0.008", "0.016", "0.032", "0.064", "0.128", "0.256",
                "0.512", "1.024", "2.048", "4.096", "8.192"
            ]
        );
        assert_eq!(
            le(&ETCD_INDEX_COMPACTION_PAUSE_MS, NS_PER_MILLISECOND),
            [
                "0.5", "1", "2", "4", "8", "16", "32", "64", "128", "256", "512", "1024", "2048",
                "4096"
            ]
        );
        assert_eq!(
            le(&ETCD_DB_COMPACTION_PAUSE_MS, NS_PER_MILLISECOND).last(),
            Some(&"4096".to_owned())
        );
        assert_eq!(
            le(&ETCD_DB_COMPACTION_TOTAL_MS, NS_PER_MILLISECOND).last(),
            Some(&"819200".to_owned())
        );
        assert_eq!(
            le(&GLASS_SECONDS, NS_PER_SECOND)[..4],
            ["1e-06", "2.5e-06", "5e-06", "1e-05"]
        );
    }

    #[test]
    fn integer_boundaries_are_exact() {
        assert_eq!(GLASS_BELOW_POWERS_OF_2[..4], [1, 3, 7, 15]);
        assert_eq!(GLASS_BELOW_POWERS_OF_2.last(), Some(&((1 << 20) - 1)));
        assert_eq!(GLASS_BYTES[..3], [63, 255, 1023]);
        assert_eq!(GLASS_BYTES.last(), Some(&((1 << 30) - 1)));
        let h = crate::Histogram::new();
        let bounds = GLASS_BELOW_POWERS_OF_2.iter().chain(&GLASS_BYTES);
        for &b in bounds.clone() {
            h.record(b);
            h.record(b + 1);
        }
        let snap = h.snapshot();
        for &b in bounds {
            let truth = GLASS_BELOW_POWERS_OF_2
                .iter()
                .chain(&GLASS_BYTES)
                .flat_map(|&x| [x, x + 1])
                .filter(|&x| x <= b)
                .count() as u64;
            assert_eq!(snap.count_at_most(b), truth, "le={b}");
        }
    }

    #[test]
    fn grpc_codes_and_methods() {
        assert_eq!(grpc_code_name(0), "OK");
        assert_eq!(grpc_code_name(14), "Unavailable");
        assert_eq!(grpc_code_name(16), "Unauthenticated");
        assert_eq!(grpc_code_name(17), "Code(17)");
        assert_eq!(grpc_code_name(-1), "Code(4294967295)");
        assert_eq!(
            split_method("etcdserverpb.KV/Put"),
            ("etcdserverpb.KV", "Put")
        );
        assert_eq!(
            split_method("/etcdserverpb.KV/Put"),
            ("etcdserverpb.KV", "Put")
        );
        assert_eq!(split_method("Put"), ("unknown", "unknown"));
    }

    #[test]
    fn handling_seconds_per_kv_method() {
        let m = Metrics::new();
        assert!(!render(&m).contains("grpc_server_handling_seconds"));
        let put = m.kv_latency.get("etcdserverpb.KV/Put").unwrap();
        put.record(3_000_000);
        put.record(40_000_000);
        assert!(m
            .kv_latency
            .get("etcdserverpb.Maintenance/Status")
            .is_none());
        let out = render(&m);
        let labels = r#"grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary""#;
        for want in [
            "# TYPE grpc_server_handling_seconds histogram".to_string(),
            format!("grpc_server_handling_seconds_bucket{{{labels},le=\"0.005\"}} 1"),
            format!("grpc_server_handling_seconds_bucket{{{labels},le=\"0.025\"}} 1"),
            format!("grpc_server_handling_seconds_bucket{{{labels},le=\"0.05\"}} 2"),
            format!("grpc_server_handling_seconds_bucket{{{labels},le=\"+Inf\"}} 2"),
            format!("grpc_server_handling_seconds_sum{{{labels}}} 0.043"),
            format!("grpc_server_handling_seconds_count{{{labels}}} 2"),
        ] {
            assert!(out.contains(&want), "{want} missing from\n{out}");
        }
        // Only methods that handled a request have samples.
        assert!(!out.contains(r#"grpc_method="Range""#));
    }

    #[test]
    fn glass_names_carry_their_unit_once() {
        let m = |name, unit| Measurement {
            name,
            unit,
            help: "",
        };
        assert_eq!(
            glass_name(&m("freelist.allocate", Unit::Nanoseconds)),
            "glass_freelist_allocate_seconds"
        );
        assert_eq!(
            glass_name(&m("backend.commit_pages", Unit::Pages)),
            "glass_backend_commit_pages"
        );
        assert_eq!(glass_name(&m("a.size", Unit::Bytes)), "glass_a_size_bytes");
        assert_eq!(glass_name(&m("a.b-c", Unit::Count)), "glass_a_b_c");
    }

    /// Every counter and gauge field of `Metrics` is exposed: the fields are read off the
    /// derived `Debug` output, so a field added to `Metrics` without a line in `SCALARS` fails
    /// here.
    #[test]
    fn every_counter_and_gauge_is_exposed() {
        let debug = format!("{:#?}", Metrics::new());
        let mut fields = BTreeMap::new();
        for line in debug.lines() {
            let Some(rest) = line.strip_prefix("    ") else {
                continue;
            };
            if rest.starts_with(' ') {
                continue;
            }
            let Some((field, ty)) = rest.split_once(": ") else {
                continue;
            };
            let ty: String = ty.chars().take_while(|c| c.is_alphanumeric()).collect();
            match ty.as_str() {
                "Counter" => {
                    fields.insert(field.to_owned(), Kind::Counter);
                }
                "Gauge" => {
                    fields.insert(field.to_owned(), Kind::Gauge);
                }
                // Exposed by their own families (grpc_server_handled_total,
                // grpc_server_handling_seconds) and the histogram loop.
                "Histogram" | "GrpcCounts" | "KvLatency" => {}
                other => panic!("field {field} of type {other}: expose it in prometheus.rs"),
            }
        }
        assert!(fields.len() > 20, "{debug}");
        let exposed: BTreeSet<&str> = SCALARS.iter().map(|s| s.field).collect();
        assert_eq!(
            fields.keys().map(String::as_str).collect::<BTreeSet<_>>(),
            exposed
        );
        // A Counter field is exposed as a counter, a Gauge field as a gauge.
        for s in SCALARS {
            assert_eq!(fields.get(s.field), Some(&s.kind), "{}", s.name);
        }
    }

    #[test]
    fn scalars_read_their_field_with_the_kind_of_its_type() {
        let m = Metrics::new();
        m.raft_term.set(7);
        m.backend_commits.add(3);
        let read = |name| {
            let s = SCALARS.iter().find(|s| s.name == name).unwrap();
            (s.read)(&m)
        };
        assert_eq!(read("glass_raft_term"), 7.0);
        assert_eq!(read("glass_backend_commits_total"), 3.0);
        // A counter's name ends in _total; etcd's gauges named _total are etcd's choice.
        for s in SCALARS {
            if s.kind == Kind::Counter {
                assert!(s.name.ends_with("_total"), "{}", s.name);
            }
        }
    }
}
