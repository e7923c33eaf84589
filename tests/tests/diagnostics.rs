//! `glass.v1.Diagnostics/Watch` on a real glassd: each snapshot's windows cover exactly the
//! work done since the previous one (a known number of puts shows up as that many applies,
//! WAL appends and Put requests), and the raft, backend and MVCC figures agree with what
//! etcd's own APIs say.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use etcd_client::Client;
use glass_tests::member::{Kind, Member};
use glassd::pb::glass::v1::diagnostics_client::DiagnosticsClient;
use glassd::pb::glass::v1::{Snapshot, WatchRequest};
use tokio_stream::StreamExt;

fn layer<'a>(s: &'a Snapshot, name: &str) -> &'a glassd::pb::glass::v1::LayerWindow {
    s.layers
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no layer {name} in the snapshot"))
}

fn method_count(s: &Snapshot, method: &str) -> u64 {
    s.methods
        .iter()
        .find(|m| m.method == method)
        .map_or(0, |m| m.count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_windows_follow_a_known_workload() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(Kind::Glassd, dir.path(), &[]);
    let mut c = Client::connect([m.endpoint()], None).await.unwrap();
    for i in 0..100 {
        c.put(format!("k{i:03}"), "v", None).await.unwrap();
    }
    let mut d = DiagnosticsClient::connect(m.endpoint()).await.unwrap();
    let mut stream = d
        .watch(WatchRequest { interval_ms: 300 })
        .await
        .unwrap()
        .into_inner();

    // The first snapshot's windows are since the start: the 100 puts are in them.
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.member_id, m.identity().member_id);
    assert_eq!(first.cluster_id, m.identity().cluster_id);
    assert_eq!(first.window_ms, 0);
    assert_eq!(method_count(&first, "etcdserverpb.KV/Put"), 100);
    // Latency per KV method: the puts' own, nothing for methods that are not KV operations.
    let put = first
        .methods
        .iter()
        .find(|w| w.method == "etcdserverpb.KV/Put")
        .unwrap();
    assert!(put.latency_measured && put.p50 > 0 && put.p50 <= put.p99 && put.p99 <= put.max);
    assert!(put.max <= layer(&first, "api.unary").max);
    for w in first.methods.iter().filter(|w| !w.method.contains(".KV/")) {
        assert!(!w.latency_measured && w.p99 == 0, "{w:?}");
    }
    assert!(layer(&first, "etcdserver.apply").count >= 100);
    assert!(layer(&first, "wal.fsync").count >= 1);
    assert!(layer(&first, "mvcc.put").count == 100);
    let fsync = layer(&first, "wal.fsync");
    assert!(
        fsync.unit == "ns" && fsync.p50 > 0 && fsync.p50 <= fsync.p99 && fsync.p99 <= fsync.max
    );
    let raft = first.raft.as_ref().unwrap();
    assert!(raft.is_leader && raft.leader == first.member_id);
    assert!(raft.applied_index >= 100 && raft.commit_index >= raft.applied_index);
    let mvcc = first.mvcc.as_ref().unwrap();
    assert_eq!(
        (mvcc.keys, mvcc.current_revision, mvcc.compact_revision),
        (100, 101, -1)
    );
    assert_eq!(mvcc.index_keys, 100);
    let be = first.backend.as_ref().unwrap();
    assert!(be.db_size >= be.db_size_in_use && be.db_size_in_use > 0);
    assert_eq!(be.freelist_type, "map");
    assert!(be.alarms.is_empty());

    // Quiet: the next window is empty of puts (the stream reads nothing by itself).
    let quiet = stream.next().await.unwrap().unwrap();
    assert!(quiet.window_ms >= 250, "window {} ms", quiet.window_ms);
    assert_eq!(method_count(&quiet, "etcdserverpb.KV/Put"), 0);
    assert_eq!(layer(&quiet, "mvcc.put").count, 0);

    // Exactly 37 puts and 5 deletes in the next window.
    for i in 0..37 {
        c.put(format!("n{i:03}"), "v", None).await.unwrap();
    }
    for i in 0..5 {
        c.delete(format!("k{i:03}"), None).await.unwrap();
    }
    // The window that holds them may be the next one or the one after (a tick can fall in the
    // middle of the writes): add windows up until the store says all are in.
    let (mut puts, mut applies, mut deletes) = (0, 0, 0);
    for _ in 0..10 {
        let s = stream.next().await.unwrap().unwrap();
        puts += method_count(&s, "etcdserverpb.KV/Put");
        deletes += layer(&s, "mvcc.delete").count;
        applies += layer(&s, "etcdserver.apply").count;
        if s.mvcc.as_ref().unwrap().current_revision == 101 + 42 {
            break;
        }
    }
    assert_eq!((puts, deletes), (37, 5));
    assert_eq!(applies, 42);

    // A runtime flag change shows in the next snapshot, once.
    d.set_flag(glassd::pb::glass::v1::SetFlagRequest {
        name: "backend-batch-limit".into(),
        value: "5000".into(),
        persist: false,
    })
    .await
    .unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let s = stream.next().await.unwrap().unwrap();
        seen.extend(s.flag_changes);
    }
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        (
            seen[0].name.as_str(),
            seen[0].old_value.as_str(),
            seen[0].new_value.as_str()
        ),
        ("backend-batch-limit", "0", "5000")
    );
    drop(stream);
    tokio::time::sleep(Duration::from_millis(100)).await;
}

fn proc_value(file: &str, key: &str) -> u64 {
    let text = std::fs::read_to_string(file).unwrap();
    let line = text.lines().find(|l| l.starts_with(key)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn sysctl(path: &str) -> i64 {
    std::fs::read_to_string(path).map_or(-1, |s| s.trim().parse().unwrap_or(-1))
}

/// The host and process figures of the stream agree with /proc read directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_host_figures_match_proc() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(Kind::Glassd, dir.path(), &[]);
    let mut d = DiagnosticsClient::connect(m.endpoint()).await.unwrap();
    let mut stream = d
        .watch(WatchRequest { interval_ms: 200 })
        .await
        .unwrap()
        .into_inner();
    let _first = stream.next().await.unwrap().unwrap();
    let s = stream.next().await.unwrap().unwrap();
    let host = s.host.unwrap();
    let mem = host.memory.unwrap();
    assert_eq!(mem.total, proc_value("/proc/meminfo", "MemTotal:") * 1024);
    let cores = std::fs::read_to_string("/proc/stat")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count();
    assert_eq!(host.cores as usize, cores);
    assert_eq!(host.per_core.len(), cores);
    let cpu = host.cpu.unwrap();
    let sum = cpu.user_percent
        + cpu.system_percent
        + cpu.iowait_percent
        + cpu.steal_percent
        + cpu.idle_percent;
    assert!((sum - 100.0).abs() < 0.5, "cpu percentages sum to {sum}");
    let k = host.kernel.unwrap();
    assert_eq!(k.vm_dirty_ratio, sysctl("/proc/sys/vm/dirty_ratio"));
    assert_eq!(
        k.vm_dirty_background_ratio,
        sysctl("/proc/sys/vm/dirty_background_ratio")
    );
    assert_eq!(k.vm_swappiness, sysctl("/proc/sys/vm/swappiness"));
    assert_eq!(k.net_core_somaxconn, sysctl("/proc/sys/net/core/somaxconn"));
    // The data and WAL dirs are on one device here: one disk with both roles (none when the
    // temp dir is on a file system without a block device, e.g. tmpfs).
    if let Some(disk) = host.disks.first() {
        assert_eq!(disk.roles, ["data", "wal"]);
        assert!(!disk.device.is_empty());
    }
    let p = s.process.unwrap();
    assert!(p.pid > 0 && p.threads >= 2 && p.open_fds > 3);
    assert!(p.rss_bytes > 1 << 20, "rss {}", p.rss_bytes);
}

/// With a slow-request threshold of 0 every request is kept in the ring, with its layers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recent_slow_requests_keep_the_layers() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(
        Kind::Glassd,
        dir.path(),
        &["--slow-request-threshold", "0s"],
    );
    let mut c = Client::connect([m.endpoint()], None).await.unwrap();
    c.put("slow-key", "v", None).await.unwrap();
    let mut d = DiagnosticsClient::connect(m.endpoint()).await.unwrap();
    let r = d
        .recent_slow_requests(glassd::pb::glass::v1::RecentSlowRequestsRequest { limit: 0 })
        .await
        .unwrap()
        .into_inner();
    let put = r
        .requests
        .iter()
        .find(|q| q.method == "etcdserverpb.KV/Put")
        .expect("the put is in the ring");
    assert_eq!(put.code, "OK");
    assert!(put.summary.contains("slow-key"), "{}", put.summary);
    assert!(put.duration_ns > 0);
    let layers: Vec<&str> = put.layers.iter().map(|l| l.layer.as_str()).collect();
    for want in [
        "raft.propose_commit",
        "wal.fsync",
        "etcdserver.apply",
        "mvcc.put",
    ] {
        assert!(layers.contains(&want), "{want} missing from {layers:?}");
    }
    assert!(put
        .layers
        .iter()
        .all(|l| l.start_offset_ns + l.duration_ns <= put.duration_ns + 1_000_000));
    // Newest first, and limited.
    let one = d
        .recent_slow_requests(glassd::pb::glass::v1::RecentSlowRequestsRequest { limit: 1 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.requests.len(), 1);
    let mut stream = d
        .watch(WatchRequest { interval_ms: 200 })
        .await
        .unwrap()
        .into_inner();
    let s = stream.next().await.unwrap().unwrap();
    assert!(s.slow_requests >= 1);
}

/// A member stops on SIGTERM while a client holds a Watch stream open (the stream ends OK), as
/// it does with none: an open stream used to keep graceful shutdown waiting until the client
/// left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_open_watch_streams() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Member::start(Kind::Glassd, dir.path(), &[]);
    let mut d = DiagnosticsClient::connect(m.endpoint()).await.unwrap();
    let mut stream = d
        .watch(WatchRequest { interval_ms: 100 })
        .await
        .unwrap()
        .into_inner();
    stream.next().await.unwrap().unwrap();
    let stopped = tokio::task::spawn_blocking(move || {
        let status = m.stop();
        (status, m)
    });
    // The stream ends (cleanly or with the connection) once the member stops.
    let until = tokio::time::Instant::now() + Duration::from_secs(20);
    while let Ok(Some(Ok(_))) = tokio::time::timeout_at(until, stream.next()).await {}
    let (status, m) = stopped.await.unwrap();
    let status = status.unwrap_or_else(|| {
        panic!(
            "glassd did not exit on SIGTERM within the harness's timeout:\n{}",
            m.logs()
        )
    });
    assert!(status.success(), "{status:?}\n{}", m.logs());
}
