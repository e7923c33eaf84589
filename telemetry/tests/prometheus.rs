//! The Prometheus exposition read back by a small parser of the text format 0.0.4: structure
//! (HELP and TYPE once per family, valid names, sorted unique families, escaped labels),
//! histogram invariants, where known values land, unit conversions, etcd's names and gRPC
//! labels.

use std::collections::BTreeMap;

use telemetry::names::{self, Unit};
use telemetry::prometheus::{render, CONTENT_TYPE};
use telemetry::Metrics;

#[derive(Debug)]
struct Family {
    name: String,
    help: String,
    kind: String,
    samples: Vec<Sample>,
}

#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn valid_name(s: &str, colon: bool) -> bool {
    let mut chars = s.chars();
    let first_ok = |c: char| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':');
    matches!(chars.next(), Some(c) if first_ok(c))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
}

fn unescape(s: &str, label_value: bool) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if label_value => out.push('"'),
            other => panic!("bad escape \\{other:?} in {s:?}"),
        }
    }
    out
}

fn parse_value(s: &str) -> f64 {
    match s {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        _ => s.parse().unwrap_or_else(|e| panic!("value {s:?}: {e}")),
    }
}

/// Parses `{a="x",b="y"} 12` (the part after the metric name).
fn parse_labels_and_value(rest: &str, line: &str) -> (BTreeMap<String, String>, f64) {
    let mut labels = BTreeMap::new();
    let mut rest = rest;
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let (name, r) = rest.split_once("=\"").unwrap_or_else(|| panic!("{line}"));
            assert!(valid_name(name, false), "label name {name:?} in {line}");
            // The value runs to the first unescaped quote.
            let mut end = None;
            let mut escaped = false;
            for (i, c) in r.char_indices() {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            let end = end.unwrap_or_else(|| panic!("unterminated label value: {line}"));
            let value = unescape(&r[..end], true);
            assert!(
                labels.insert(name.to_owned(), value).is_none(),
                "label {name} twice: {line}"
            );
            rest = &r[end + 1..];
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
    }
    let value = rest
        .strip_prefix(' ')
        .unwrap_or_else(|| panic!("no value: {line}"));
    assert!(!value.contains(' '), "a timestamp or junk: {line}");
    (labels, parse_value(value))
}

/// Parses the exposition, asserting the structure rules as it goes.
fn parse(text: &str) -> Vec<Family> {
    assert!(text.ends_with('\n'));
    let mut families: Vec<Family> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            assert!(valid_name(name, true), "family name {name:?}");
            assert!(
                families.iter().all(|f| f.name != name),
                "family {name} twice"
            );
            families.push(Family {
                name: name.to_owned(),
                help: unescape(help, false),
                kind: String::new(),
                samples: Vec::new(),
            });
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or_else(|| panic!("{line}"));
            let f = families
                .last_mut()
                .unwrap_or_else(|| panic!("TYPE first: {line}"));
            assert_eq!(f.name, name, "TYPE right after its HELP");
            assert!(f.kind.is_empty(), "TYPE twice for {name}");
            assert!(f.samples.is_empty(), "TYPE after samples for {name}");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            f.kind = kind.to_owned();
        } else {
            assert!(!line.starts_with('#') && !line.is_empty(), "{line:?}");
            let end = line.find(['{', ' ']).unwrap_or_else(|| panic!("{line}"));
            let name = &line[..end];
            let (labels, value) = parse_labels_and_value(&line[end..], line);
            let f = families
                .last_mut()
                .unwrap_or_else(|| panic!("sample first: {line}"));
            assert!(!f.kind.is_empty(), "sample before TYPE: {line}");
            let ok = if f.kind == "histogram" {
                ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| name == format!("{}{s}", f.name))
            } else {
                name == f.name
            };
            assert!(ok, "sample {name} in family {}", f.name);
            f.samples.push(Sample {
                name: name.to_owned(),
                labels,
                value,
            });
        }
    }
    for f in &families {
        assert!(!f.kind.is_empty(), "{} has no TYPE", f.name);
        assert!(!f.help.is_empty(), "{} has no HELP text", f.name);
        assert!(!f.samples.is_empty(), "{} has no sample", f.name);
    }
    families
}

fn family<'a>(families: &'a [Family], name: &str) -> &'a Family {
    families
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no family {name}"))
}

/// A histogram family's (le label, cumulative count) pairs, its `_sum` and `_count`; checks
/// that the buckets ascend, the counts are monotone, and `+Inf` comes last and equals `_count`.
fn histogram(families: &[Family], name: &str) -> (Vec<(String, f64)>, f64, f64) {
    let f = family(families, name);
    assert_eq!(f.kind, "histogram", "{name}");
    let mut buckets = Vec::new();
    let (mut sum, mut count) = (None, None);
    for s in &f.samples {
        if s.name.ends_with("_bucket") {
            assert_eq!(s.labels.len(), 1, "{name}: {:?}", s.labels);
            buckets.push((s.labels["le"].clone(), s.value));
        } else if s.name.ends_with("_sum") {
            assert!(sum.replace(s.value).is_none());
        } else {
            assert!(count.replace(s.value).is_none());
        }
    }
    let (sum, count) = (sum.expect("_sum"), count.expect("_count"));
    let les: Vec<f64> = buckets.iter().map(|(le, _)| parse_value(le)).collect();
    assert!(les.windows(2).all(|w| w[0] < w[1]), "{name}: le ascend");
    assert!(
        buckets.windows(2).all(|w| w[0].1 <= w[1].1),
        "{name}: counts monotone {buckets:?}"
    );
    assert_eq!(buckets.last().map(|b| b.0.as_str()), Some("+Inf"), "{name}");
    assert_eq!(
        buckets.last().map(|b| b.1),
        Some(count),
        "{name}: +Inf is _count"
    );
    (buckets, sum, count)
}

fn bucket(buckets: &[(String, f64)], le: &str) -> f64 {
    buckets
        .iter()
        .find(|b| b.0 == le)
        .unwrap_or_else(|| panic!("no le={le}: {buckets:?}"))
        .1
}

fn single(families: &[Family], name: &str, kind: &str) -> f64 {
    let f = family(families, name);
    assert_eq!(f.kind, kind, "{name}");
    assert_eq!(f.samples.len(), 1, "{name}");
    assert!(f.samples[0].labels.is_empty());
    f.samples[0].value
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0)
}

/// Metrics with a few values in every histogram and every counter and gauge set.
fn busy_metrics() -> Metrics {
    let m = Metrics::new();
    for (i, (_, h)) in m.histograms().into_iter().enumerate() {
        for v in [
            0,
            5,
            800,
            1_000,
            999_999,
            3_000_000,
            7_500_000_000,
            u64::MAX / 4,
        ] {
            h.record(v + i as u64);
        }
    }
    m.backend_commits.add(12);
    m.backend_commit_bytes.add(1_234_567);
    m.raft_commit_index.set(42);
    m.raft_applied_index.set(41);
    m.mvcc_compact_revision.set(-1);
    m.server_quota_backend_bytes.set(2 << 30);
    m.grpc_handled.inc("etcdserverpb.KV/Put", 0);
    m
}

#[test]
fn content_type() {
    assert_eq!(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
}

#[test]
fn structure_and_histogram_invariants() {
    let text = render(&busy_metrics());
    let families = parse(&text);
    let names: Vec<&str> = families.iter().map(|f| f.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(names, sorted, "families sorted by name, no duplicates");
    for f in &families {
        for s in &f.samples {
            assert!(valid_name(&s.name, true), "{}", s.name);
        }
        if f.kind == "histogram" {
            let (_, _, count) = histogram(&families, &f.name);
            assert_eq!(count, 8.0, "{}", f.name);
        }
    }
    // A histogram's _bucket, _sum and _count names are no other family's.
    for h in families.iter().filter(|f| f.kind == "histogram") {
        for suffix in ["_bucket", "_sum", "_count"] {
            let taken = format!("{}{suffix}", h.name);
            assert!(families.iter().all(|f| f.name != taken), "{taken}");
        }
    }
    // 26 glass histograms, 5 of etcd's, and the counters and gauges.
    assert!(families.len() >= 26 + 5 + 20, "{}", families.len());
}

#[test]
fn empty_metrics_render_zeros_and_no_grpc_family() {
    let families = parse(&render(&Metrics::new()));
    assert!(families
        .iter()
        .all(|f| f.name != "grpc_server_handled_total"));
    let (buckets, sum, count) = histogram(&families, "etcd_disk_wal_fsync_duration_seconds");
    assert!(buckets.iter().all(|b| b.1 == 0.0));
    assert_eq!((sum, count), (0.0, 0.0));
}

#[test]
fn wal_fsync_of_3ms_lands_in_le_4ms_under_both_names() {
    let m = Metrics::new();
    m.wal_fsync.record(3_000_000);
    let text = render(&m);
    let families = parse(&text);

    let (buckets, sum, count) = histogram(&families, "etcd_disk_wal_fsync_duration_seconds");
    let les: Vec<&str> = buckets.iter().map(|b| b.0.as_str()).collect();
    assert_eq!(
        les,
        [
            "0.001", "0.002", "0.004", "0.008", "0.016", "0.032", "0.064", "0.128", "0.256",
            "0.512", "1.024", "2.048", "4.096", "8.192", "+Inf"
        ],
        "etcd's ExponentialBuckets(0.001, 2, 14)"
    );
    assert_eq!(bucket(&buckets, "0.001"), 0.0);
    assert_eq!(bucket(&buckets, "0.002"), 0.0);
    for le in &les[2..] {
        assert_eq!(bucket(&buckets, le), 1.0, "le={le}");
    }
    assert!(close(sum, 0.003), "{sum}");
    assert_eq!(count, 1.0);
    assert!(text.contains("etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.004\"} 1\n"));
    assert_eq!(
        family(&families, "etcd_disk_wal_fsync_duration_seconds").help,
        "The latency distributions of fsync called by WAL."
    );

    let (buckets, sum, _) = histogram(&families, "glass_wal_fsync_seconds");
    assert_eq!(bucket(&buckets, "0.0025"), 0.0);
    assert_eq!(bucket(&buckets, "0.005"), 1.0);
    assert_eq!(bucket(&buckets, "25"), 1.0);
    assert_eq!(buckets.first().map(|b| b.0.as_str()), Some("1e-06"));
    assert!(close(sum, 0.003), "{sum}");
    // The other histograms saw nothing.
    let (_, _, count) = histogram(&families, "etcd_disk_backend_commit_duration_seconds");
    assert_eq!(count, 0.0);
}

#[test]
fn boundary_error_is_the_documented_one() {
    let m = Metrics::new();
    // 983_039 ns tops a log-linear bucket; 983_040 ..= 1_048_575 is the bucket straddling 1 ms.
    m.wal_fsync.record(983_039);
    m.wal_fsync.record(1_000_000);
    m.wal_fsync.record(1_000_001);
    let families = parse(&render(&m));
    let (buckets, sum, _) = histogram(&families, "etcd_disk_wal_fsync_duration_seconds");
    assert_eq!(
        bucket(&buckets, "0.001"),
        1.0,
        "1 ms itself is counted from 2 ms"
    );
    assert_eq!(bucket(&buckets, "0.002"), 3.0);
    assert!(close(sum, 0.002983040), "{sum}");
}

#[test]
fn sums_and_buckets_are_converted_to_each_unit() {
    let m = Metrics::new();
    m.mvcc_compaction_pause.record(2_500_000); // 2.5 ms
    m.mvcc_compaction_pause.record(700_000); // 0.7 ms
    m.mvcc_index_compaction.record(400_000); // 0.4 ms
    m.mvcc_compaction.record(150_000_000); // 150 ms
    m.backend_commit_pages.record(3);
    m.backend_commit_pages.record(5);
    m.backend_commit_pages.record(16);
    m.freelist_allocate.record(1_500); // 1.5 µs
    let families = parse(&render(&m));

    let (b, sum, _) = histogram(
        &families,
        "etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds",
    );
    assert!(close(sum, 3.2), "{sum}");
    assert_eq!(bucket(&b, "1"), 1.0);
    assert_eq!(bucket(&b, "2"), 1.0);
    assert_eq!(bucket(&b, "4"), 2.0);
    assert_eq!(b.len(), 13 + 1);
    let (_, sum, _) = histogram(&families, "glass_mvcc_compaction_pause_seconds");
    assert!(close(sum, 0.0032), "{sum}");

    let (b, sum, _) = histogram(
        &families,
        "etcd_debugging_mvcc_index_compaction_pause_duration_milliseconds",
    );
    assert_eq!(bucket(&b, "0.5"), 1.0);
    assert!(close(sum, 0.4), "{sum}");

    let (b, sum, _) = histogram(
        &families,
        "etcd_debugging_mvcc_db_compaction_total_duration_milliseconds",
    );
    assert_eq!(bucket(&b, "100"), 0.0);
    assert_eq!(bucket(&b, "200"), 1.0);
    assert_eq!(b.last().map(|x| x.0.as_str()), Some("+Inf"));
    assert_eq!(b[b.len() - 2].0, "819200");
    assert!(close(sum, 150.0), "{sum}");

    let (b, sum, _) = histogram(&families, "glass_backend_commit_pages");
    assert_eq!(sum, 24.0);
    assert_eq!(bucket(&b, "1"), 0.0);
    assert_eq!(bucket(&b, "3"), 1.0);
    assert_eq!(bucket(&b, "7"), 2.0);
    assert_eq!(bucket(&b, "15"), 2.0);
    assert_eq!(bucket(&b, "31"), 3.0);
    assert_eq!(bucket(&b, "1.048575e+06"), 3.0);

    let (b, sum, _) = histogram(&families, "glass_freelist_allocate_seconds");
    assert_eq!(bucket(&b, "1e-06"), 0.0);
    assert_eq!(bucket(&b, "2.5e-06"), 1.0);
    assert!(close(sum, 1.5e-6), "{sum}");
}

#[test]
fn every_measurement_has_its_glass_family() {
    let families = parse(&render(&Metrics::new()));
    for m in names::ALL {
        let suffix = match m.unit {
            Unit::Nanoseconds => "_seconds",
            Unit::Pages => "_pages",
            Unit::Bytes => "_bytes",
            Unit::Count => "",
        };
        let mut name = format!("glass_{}", m.name.replace('.', "_"));
        if !name.ends_with(suffix) {
            name.push_str(suffix);
        }
        let f = family(&families, &name);
        assert_eq!(f.kind, "histogram", "{name}");
        assert_eq!(f.help, m.help, "{name}");
        histogram(&families, &name);
    }
    for name in [
        "glass_mvcc_treeindex_lock_wait_seconds",
        "glass_freelist_allocate_seconds",
        "glass_backend_tx_lock_wait_seconds",
    ] {
        family(&families, name);
    }
}

#[test]
fn etcd_names_and_types() {
    let m = busy_metrics();
    m.raft_proposals_pending.set(3);
    m.raft_proposals_failed.add(2);
    m.raft_leader_changes.inc();
    m.raft_has_leader.set(1);
    m.raft_is_leader.set(1);
    m.server_read_indexes_failed.inc();
    m.server_slow_apply.add(4);
    m.backend_db_size.set(20_480);
    m.backend_db_size_in_use.set(16_384);
    m.mvcc_keys.set(10);
    m.mvcc_current_revision.set(1_234_567);
    m.mvcc_compaction_keys.add(5);
    m.freelist_free_pages.set(9);
    m.raft_term.set(2);
    let text = render(&m);
    let families = parse(&text);
    for (name, kind, value) in [
        ("etcd_server_proposals_committed_total", "gauge", 42.0),
        ("etcd_server_proposals_applied_total", "gauge", 41.0),
        ("etcd_server_proposals_pending", "gauge", 3.0),
        ("etcd_server_proposals_failed_total", "counter", 2.0),
        ("etcd_server_leader_changes_seen_total", "counter", 1.0),
        ("etcd_server_has_leader", "gauge", 1.0),
        ("etcd_server_is_leader", "gauge", 1.0),
        ("etcd_server_quota_backend_bytes", "gauge", 2147483648.0),
        ("etcd_server_read_indexes_failed_total", "counter", 1.0),
        ("etcd_server_slow_apply_total", "counter", 4.0),
        ("etcd_mvcc_db_total_size_in_bytes", "gauge", 20480.0),
        (
            "etcd_debugging_mvcc_db_total_size_in_bytes",
            "gauge",
            20480.0,
        ),
        ("etcd_mvcc_db_total_size_in_use_in_bytes", "gauge", 16384.0),
        ("etcd_debugging_mvcc_keys_total", "gauge", 10.0),
        ("etcd_debugging_mvcc_current_revision", "gauge", 1234567.0),
        ("etcd_debugging_mvcc_compact_revision", "gauge", -1.0),
        (
            "etcd_debugging_mvcc_db_compaction_keys_total",
            "counter",
            5.0,
        ),
        ("etcd_mvcc_put_total", "counter", 8.0),
        ("etcd_debugging_mvcc_put_total", "counter", 8.0),
        ("etcd_mvcc_range_total", "counter", 8.0),
        ("etcd_mvcc_delete_total", "counter", 8.0),
        ("glass_backend_commits_total", "counter", 12.0),
        ("glass_backend_commit_bytes_total", "counter", 1234567.0),
        ("glass_freelist_allocate_misses_total", "counter", 0.0),
        ("glass_freelist_free_pages", "gauge", 9.0),
        ("glass_raft_proposals_committed_total", "counter", 0.0),
        ("glass_raft_proposals_applied_total", "counter", 0.0),
        ("glass_raft_term", "gauge", 2.0),
    ] {
        assert_eq!(single(&families, name, kind), value, "{name}");
    }
    // Numbers as Go writes them.
    assert!(text.contains("\netcd_server_quota_backend_bytes 2.147483648e+09\n"));
    assert!(text.contains("\netcd_debugging_mvcc_current_revision 1.234567e+06\n"));
    assert!(text.contains("\netcd_mvcc_db_total_size_in_bytes 20480\n"));
    for name in [
        "etcd_disk_wal_fsync_duration_seconds",
        "etcd_disk_backend_commit_duration_seconds",
        "etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds",
        "etcd_debugging_mvcc_db_compaction_total_duration_milliseconds",
        "etcd_debugging_mvcc_index_compaction_pause_duration_milliseconds",
    ] {
        histogram(&families, name);
    }
}

#[test]
fn grpc_handled_labels() {
    let m = Metrics::new();
    m.grpc_handled.inc("etcdserverpb.KV/Put", 0);
    m.grpc_handled.inc("etcdserverpb.KV/Put", 0);
    m.grpc_handled.inc("etcdserverpb.KV/Range", 14);
    m.grpc_handled.inc("etcdserverpb.Lease/LeaseGrant", 4);
    m.grpc_handled.inc("etcdserverpb.KV/Txn", 99);
    m.grpc_handled.inc("no-slash", 2);
    m.grpc_handled.inc("odd\"svc\\x\n/M", 16);
    let text = render(&m);
    assert!(text.contains(
        "grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Put\",\
         grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 2\n"
    ));
    let families = parse(&text);
    let f = family(&families, "grpc_server_handled_total");
    assert_eq!(f.kind, "counter");
    assert_eq!(
        f.help,
        "Total number of RPCs completed on the server, regardless of success or failure."
    );
    let got: Vec<(String, String, String, f64)> = f
        .samples
        .iter()
        .map(|s| {
            assert_eq!(s.labels["grpc_type"], "unary");
            assert_eq!(s.labels.len(), 4);
            (
                s.labels["grpc_service"].clone(),
                s.labels["grpc_method"].clone(),
                s.labels["grpc_code"].clone(),
                s.value,
            )
        })
        .collect();
    let want = [
        ("etcdserverpb.KV", "Txn", "Code(99)", 1.0),
        ("etcdserverpb.Lease", "LeaseGrant", "DeadlineExceeded", 1.0),
        ("etcdserverpb.KV", "Put", "OK", 2.0),
        ("odd\"svc\\x\n", "M", "Unauthenticated", 1.0),
        ("etcdserverpb.KV", "Range", "Unavailable", 1.0),
        ("unknown", "unknown", "Unknown", 1.0),
    ];
    let want: Vec<(String, String, String, f64)> = want
        .iter()
        .map(|(s, m, c, n)| (s.to_string(), m.to_string(), c.to_string(), *n))
        .collect();
    assert_eq!(got, want, "sorted by code, then method, then service");
}
