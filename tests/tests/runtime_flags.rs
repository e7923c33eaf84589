//! Runtime flags on a real `glassd` process: each `[runtime]` flag changed through
//! `glass.v1.Diagnostics/SetFlag` and its effect seen from outside — the commit rate for the
//! batch interval, the allocating algorithm for the freelist type, the member's log for the log
//! level, refused and accepted requests for the size limits, snapshot files for the snapshot
//! count, etcd's NOSPACE for the quota — and every flag read back through `GetFlags` with
//! source `runtime`. Bad values, start-only and unknown flags are refused with their codes;
//! persisted changes survive a restart (source `persisted`), others do not.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use etcd_client::{Client, Txn, TxnOp};
use glass_tests::member::{Kind, Member};
use glass_tests::{http_get, metric};
use glassd::pb::glass::v1::diagnostics_client::DiagnosticsClient;
use glassd::pb::glass::v1::{Flag, GetFlagsRequest, SetFlagRequest, SetFlagResponse};
use tonic::transport::Channel;
use tonic::Code;

async fn diagnostics(m: &Member) -> DiagnosticsClient<Channel> {
    DiagnosticsClient::connect(m.endpoint()).await.unwrap()
}

async fn client(m: &Member) -> Client {
    Client::connect([m.endpoint()], None).await.unwrap()
}

async fn try_set(
    d: &mut DiagnosticsClient<Channel>,
    name: &str,
    value: &str,
    persist: bool,
) -> Result<SetFlagResponse, tonic::Status> {
    d.set_flag(SetFlagRequest {
        name: name.into(),
        value: value.into(),
        persist,
    })
    .await
    .map(|r| r.into_inner())
}

/// Sets a flag; returns the flag as the server now has it.
async fn set(d: &mut DiagnosticsClient<Channel>, name: &str, value: &str) -> Flag {
    let r = try_set(d, name, value, false)
        .await
        .unwrap_or_else(|s| panic!("set {name}={value}: {s:?}"));
    r.flag.unwrap()
}

async fn get(d: &mut DiagnosticsClient<Channel>, name: &str) -> Flag {
    d.get_flags(GetFlagsRequest {})
        .await
        .unwrap()
        .into_inner()
        .flags
        .into_iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no flag {name} in GetFlags"))
}

fn counter(m: &Member, name: &str) -> f64 {
    let (code, body) = http_get(m.client_port(), "/metrics");
    assert_eq!(code, 200);
    metric(&body, name).unwrap_or_else(|| panic!("no {name} in /metrics"))
}

/// Puts `key-N` until `stop` is set; returns how many.
fn writer(
    m: &Member,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<u64> {
    let endpoint = m.endpoint();
    tokio::spawn(async move {
        let mut c = Client::connect([endpoint], None).await.unwrap();
        let mut n = 0u64;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            c.put(format!("key-{}", n % 1000), "v".repeat(100), None)
                .await
                .unwrap();
            n += 1;
        }
        n
    })
}

/// Backend commits per second over `window`.
async fn commit_rate(m: &Member, window: Duration) -> f64 {
    let (c0, t0) = (counter(m, "glass_backend_commits_total"), Instant::now());
    tokio::time::sleep(window).await;
    let c1 = counter(m, "glass_backend_commits_total");
    (c1 - c0) / t0.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_interval_sets_the_commit_rate() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(
        Kind::Glassd,
        dir.path(),
        &["--backend-batch-interval=100ms"],
    );
    let mut d = diagnostics(&m).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let w = writer(&m, stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fast = commit_rate(&m, Duration::from_secs(3)).await;

    let f = set(&mut d, "backend-batch-interval", "2s").await;
    assert_eq!((f.value.as_str(), f.source.as_str()), ("2s", "runtime"));
    // The commit the change wakes, then one every 2 s.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let slow = commit_rate(&m, Duration::from_secs(5)).await;

    set(&mut d, "backend-batch-interval", "100ms").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fast_again = commit_rate(&m, Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let puts = w.await.unwrap();
    eprintln!(
        "commits/s: 100ms {fast:.1}, 2s {slow:.2}, 100ms again {fast_again:.1} ({puts} puts)"
    );
    // About 10/s, then about 0.5/s, then about 10/s.
    assert!(fast >= 5.0, "100ms interval: {fast:.1} commits/s");
    assert!(slow <= 1.0, "2s interval: {slow:.2} commits/s");
    assert!(
        fast_again >= 5.0,
        "back to 100ms: {fast_again:.1} commits/s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freelist_type_switches_the_allocating_algorithm() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(
        Kind::Glassd,
        dir.path(),
        &[
            "--backend-bbolt-freelist-type=map",
            "--backend-batch-interval=10ms",
        ],
    );
    let mut d = diagnostics(&m).await;
    let mut c = client(&m).await;
    let put_some = |c: &mut Client, tag: &'static str| {
        let mut c = c.clone();
        async move {
            for i in 0..50 {
                c.put(format!("{tag}-{}", i % 10), "x".repeat(2000), None)
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    };
    put_some(&mut c, "a").await;
    let (map0, array0) = (
        counter(&m, "glass_freelist_allocate_map_total"),
        counter(&m, "glass_freelist_allocate_array_total"),
    );
    assert!(map0 > 0.0, "the map freelist allocated nothing");
    assert_eq!(array0, 0.0);

    // The alias names the same flag.
    let f = set(&mut d, "experimental-backend-bbolt-freelist-type", "array").await;
    assert_eq!(
        (f.name.as_str(), f.value.as_str(), f.source.as_str()),
        ("backend-bbolt-freelist-type", "array", "runtime")
    );
    // From the next write tx on: the open batch (begun before the change) still allocates
    // with the map when it commits. One write and its commit (10 ms) end it.
    c.put("switch", "x", None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let map1 = counter(&m, "glass_freelist_allocate_map_total");
    put_some(&mut c, "b").await;
    let (map2, array2) = (
        counter(&m, "glass_freelist_allocate_map_total"),
        counter(&m, "glass_freelist_allocate_array_total"),
    );
    assert_eq!(
        map2, map1,
        "the map freelist still allocates after the switch"
    );
    assert!(array2 > 0.0, "the array freelist allocated nothing");

    set(&mut d, "backend-bbolt-freelist-type", "map").await;
    c.put("switch", "y", None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let array3 = counter(&m, "glass_freelist_allocate_array_total");
    put_some(&mut c, "c").await;
    assert_eq!(counter(&m, "glass_freelist_allocate_array_total"), array3);
    assert!(counter(&m, "glass_freelist_allocate_map_total") > map2);
}

fn debug_lines(text: &str) -> usize {
    text.lines().filter(|l| l.contains(" DEBUG ")).count()
}

/// The member's stderr from byte `from` on.
fn log_since(m: &Member, from: usize) -> String {
    let all = std::fs::read(m.data_dir().parent().unwrap().join("stderr.log")).unwrap();
    String::from_utf8_lossy(&all[from.min(all.len())..]).into_owned()
}

fn log_len(m: &Member) -> usize {
    std::fs::metadata(m.data_dir().parent().unwrap().join("stderr.log"))
        .map_or(0, |md| md.len() as usize)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_level_changes_what_the_member_logs() {
    let dir = tempfile::tempdir().unwrap();
    // The harness starts members with --log-level=warn.
    let m = Member::start(Kind::Glassd, dir.path(), &[]);
    let mut d = diagnostics(&m).await;
    let mut c = client(&m).await;
    assert_eq!(get(&mut d, "log-level").await.value, "warn");
    for i in 0..10 {
        c.put(format!("k{i}"), "v", None).await.unwrap();
    }
    assert_eq!(
        debug_lines(&m.logs()),
        0,
        "debug lines at warn:\n{}",
        m.logs()
    );

    let before = log_len(&m);
    set(&mut d, "log-level", "debug").await;
    for i in 0..10 {
        c.put(format!("k{i}"), "v", None).await.unwrap();
    }
    let at_debug = log_since(&m, before);
    assert!(
        debug_lines(&at_debug) > 0,
        "no debug lines at debug:\n{at_debug}"
    );
    // The change itself is logged (at info, shown at debug).
    assert!(
        at_debug.contains("runtime flag changed name=log-level old=warn new=debug persisted=false"),
        "{at_debug}"
    );

    set(&mut d, "log-level", "warn").await;
    let after = log_len(&m);
    for i in 0..10 {
        c.put(format!("k{i}"), "v", None).await.unwrap();
    }
    c.get("k1", None).await.unwrap();
    let at_warn = log_since(&m, after);
    assert_eq!(
        debug_lines(&at_warn),
        0,
        "debug lines back at warn:\n{at_warn}"
    );
}

fn message(e: etcd_client::Error) -> String {
    match e {
        etcd_client::Error::GRpcStatus(s) => s.message().to_string(),
        other => panic!("not a gRPC status: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_limits_refuse_then_accept() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(Kind::Glassd, dir.path(), &[]);
    let mut d = diagnostics(&m).await;
    let mut c = client(&m).await;
    let big = "x".repeat(2000);
    c.put("big", big.as_str(), None).await.unwrap();

    set(&mut d, "max-request-bytes", "1024").await;
    let e = c.put("big", big.as_str(), None).await.unwrap_err();
    assert_eq!(message(e), "etcdserver: request is too large");
    c.put("small", "v", None).await.unwrap();

    set(&mut d, "max-request-bytes", "4096").await;
    c.put("big", big.as_str(), None).await.unwrap();

    // Raised above the default, up to the gRPC limit set at start (10 MiB here).
    set(&mut d, "max-request-bytes", "3000000").await;
    c.put("bigger", "y".repeat(2_000_000), None).await.unwrap();
    let s = try_set(&mut d, "max-request-bytes", "20000000", false)
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument);
    assert!(
        s.message()
            .contains("restart with --max-request-bytes=20000000"),
        "{}",
        s.message()
    );

    set(&mut d, "max-txn-ops", "2").await;
    let txn = || {
        Txn::new().and_then([
            TxnOp::put("t1", "1", None),
            TxnOp::put("t2", "2", None),
            TxnOp::put("t3", "3", None),
        ])
    };
    let e = c.txn(txn()).await.unwrap_err();
    assert_eq!(message(e), "etcdserver: too many operations in txn request");
    set(&mut d, "max-txn-ops", "3").await;
    c.txn(txn()).await.unwrap();
}

fn snap_files(data_dir: &Path) -> usize {
    std::fs::read_dir(data_dir.join("member/snap"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".snap")
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_runtime_flag_reads_back_with_source_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(Kind::Glassd, dir.path(), &[]);
    let mut d = diagnostics(&m).await;
    let mut c = client(&m).await;
    for (name, value, shown) in [
        ("backend-batch-limit", "500", "500"),
        ("backend-batch-interval", "50ms", "50ms"),
        ("backend-bbolt-freelist-type", "array", "array"),
        ("snapshot-count", "20", "20"),
        ("auto-compaction-retention", "90m", "1h30m0s"),
        ("quota-backend-bytes", "0x10000000", "268435456"),
        ("max-request-bytes", "65536", "65536"),
        ("max-txn-ops", "64", "64"),
        ("log-level", "error", "error"),
        ("trace-sample-ratio", "0.5", "0.5"),
        ("slow-request-threshold", "250ms", "250ms"),
        ("trace-max-exports-per-second", "50", "50"),
        (
            "otlp-endpoint",
            "http://127.0.0.1:4317",
            "http://127.0.0.1:4317",
        ),
    ] {
        let before = get(&mut d, name).await;
        let r = try_set(&mut d, name, value, false).await.unwrap();
        assert_eq!(r.old_value, before.value, "{name}");
        let f = get(&mut d, name).await;
        assert!(f.runtime, "{name}");
        assert_eq!(
            (f.value.as_str(), f.source.as_str()),
            (shown, "runtime"),
            "{name}"
        );
    }
    let otlp = try_set(&mut d, "otlp-endpoint", "", false).await.unwrap();
    assert_eq!(otlp.old_value, "http://127.0.0.1:4317");
    assert_eq!(get(&mut d, "otlp-endpoint").await.value, "");

    // snapshot-count 20: a snapshot after 20 more entries.
    assert_eq!(snap_files(&m.data_dir()), 0);
    for i in 0..30 {
        c.put(format!("s{i}"), "v", None).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while snap_files(&m.data_dir()) == 0 {
        assert!(
            Instant::now() < deadline,
            "no snapshot after snapshot-count=20 and 30 puts"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A quota below the file's size: the next write raises NOSPACE, as etcd.
    set(&mut d, "quota-backend-bytes", "4096").await;
    let e = c.put("q", "v", None).await.unwrap_err();
    assert_eq!(message(e), "etcdserver: mvcc: database space exceeded");
    let (_, body) = http_get(m.client_port(), "/metrics");
    assert_eq!(
        metric(&body, "etcd_server_quota_backend_bytes"),
        Some(4096.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_values_start_only_and_unknown_flags_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(Kind::Glassd, dir.path(), &[]);
    let mut d = diagnostics(&m).await;
    for (name, value, code, text) in [
        (
            "backend-batch-interval",
            "banana",
            Code::InvalidArgument,
            r#"invalid value "banana" for --backend-batch-interval: time: invalid duration "banana""#,
        ),
        (
            "trace-sample-ratio",
            "2",
            Code::InvalidArgument,
            r#"invalid value "2" for --trace-sample-ratio: must be a number from 0.0 to 1.0"#,
        ),
        (
            "backend-bbolt-freelist-type",
            "tree",
            Code::InvalidArgument,
            r#"invalid value "tree" for --backend-bbolt-freelist-type: unknown freelist type (want "map" or "array")"#,
        ),
        (
            "data-dir",
            "/tmp/elsewhere",
            Code::FailedPrecondition,
            "flag data-dir cannot change while glassd runs; restart with --data-dir",
        ),
        (
            "listen-client-urls",
            "http://127.0.0.1:1",
            Code::FailedPrecondition,
            "flag listen-client-urls cannot change while glassd runs; restart with --listen-client-urls",
        ),
        ("no-such-flag", "1", Code::NotFound, r#"unknown flag "no-such-flag""#),
    ] {
        let s = try_set(&mut d, name, value, false).await.unwrap_err();
        assert_eq!((s.code(), s.message()), (code, text), "{name}={value}");
    }
    // Nothing changed.
    let f = get(&mut d, "backend-batch-interval").await;
    assert_eq!((f.value.as_str(), f.source.as_str()), ("0s", "default"));
    assert_eq!(get(&mut d, "data-dir").await.source, "flag");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persisted_changes_survive_a_restart_others_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Member::start(
        Kind::Glassd,
        dir.path(),
        &["--max-txn-ops=100", "--snapshot-count=5000"],
    );
    let mut d = diagnostics(&m).await;
    let r = try_set(&mut d, "max-txn-ops", "77", true).await.unwrap();
    assert_eq!(r.old_value, "100");
    assert_eq!(r.flag.unwrap().source, "runtime");
    set(&mut d, "snapshot-count", "1234").await;
    let file = std::fs::read_to_string(m.data_dir().join("glass-flags.yaml")).unwrap();
    assert!(file.contains("max-txn-ops: '77'"), "{file}");
    assert!(!file.contains("snapshot-count"), "{file}");

    m.restart();
    let mut d = diagnostics(&m).await;
    let f = get(&mut d, "max-txn-ops").await;
    assert_eq!((f.value.as_str(), f.source.as_str()), ("77", "persisted"));
    let f = get(&mut d, "snapshot-count").await;
    assert_eq!((f.value.as_str(), f.source.as_str()), ("5000", "flag"));
    // In force, not only shown: 78 ops are too many.
    let mut c = client(&m).await;
    let ops: Vec<TxnOp> = (0..78)
        .map(|i| TxnOp::put(format!("k{i}"), "v", None))
        .collect();
    let e = c.txn(Txn::new().and_then(ops)).await.unwrap_err();
    assert_eq!(message(e), "etcdserver: too many operations in txn request");

    // A later change without persist lasts until the restart; the file keeps 77.
    set(&mut d, "max-txn-ops", "5").await;
    m.restart();
    let mut d = diagnostics(&m).await;
    let f = get(&mut d, "max-txn-ops").await;
    assert_eq!((f.value.as_str(), f.source.as_str()), ("77", "persisted"));
}
