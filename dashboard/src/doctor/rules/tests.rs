//! Every rule's firing and quiet side on synthetic snapshots, the windows' folding, severity
//! ordering, the headline and the exit codes.

#![allow(clippy::unwrap_used)]

use glassd::pb::glass::v1::{
    BackendStatus, CpuWindow, Disk, HostStatus, KernelSettings, LayerWindow, Memory, Network,
    Pressure, ProcessStatus, RaftStatus, SlowRequest, Snapshot,
};

use super::*;

const MS: u64 = 1_000_000;

/// A healthy, idle-ish host: 20 % busy on 2 cores, low pressure, no swap, good kernel settings.
fn host() -> HostStatus {
    HostStatus {
        hostname: "h".into(),
        cores: 2,
        cpu: Some(CpuWindow {
            name: "cpu".into(),
            user_percent: 15.0,
            system_percent: 5.0,
            iowait_percent: 0.0,
            steal_percent: 0.0,
            idle_percent: 80.0,
        }),
        load1: 0.5,
        psi_cpu: Some(Pressure {
            available: true,
            some_avg10: 1.0,
            ..Pressure::default()
        }),
        psi_io: Some(Pressure {
            available: true,
            ..Pressure::default()
        }),
        psi_memory: Some(Pressure {
            available: true,
            ..Pressure::default()
        }),
        memory: Some(Memory {
            total: 8 << 30,
            available: 4 << 30,
            ..Memory::default()
        }),
        disks: vec![Disk {
            device: "vda".into(),
            roles: vec!["data".into(), "wal".into()],
            util_percent: 10.0,
            write_await_ms: 1.0,
            write_iops: 100.0,
            ..Disk::default()
        }],
        network: Some(Network::default()),
        kernel: Some(KernelSettings {
            vm_swappiness: 1,
            transparent_hugepages: "madvise".into(),
            cpu_governor: "performance".into(),
            ..KernelSettings::default()
        }),
        ..HostStatus::default()
    }
}

fn snap(window_ms: u64) -> Snapshot {
    Snapshot {
        name: "m1".into(),
        window_ms,
        raft: Some(RaftStatus {
            term: 2,
            leader: 1,
            is_leader: true,
            ..RaftStatus::default()
        }),
        backend: Some(BackendStatus {
            freelist_type: "map".into(),
            free_pages: 10,
            free_runs: 2,
            longest_free_run: 8,
            ..BackendStatus::default()
        }),
        process: Some(ProcessStatus {
            cpu_percent: 10.0,
            ..ProcessStatus::default()
        }),
        host: Some(host()),
        ..Snapshot::default()
    }
}

fn layer(name: &str, count: u64, p99: u64) -> LayerWindow {
    LayerWindow {
        name: name.into(),
        unit: "ns".into(),
        count,
        p50: p99 / 2,
        p90: p99,
        p99,
        max: p99 * 2,
        sum: count * p99 / 2,
    }
}

/// A member with a since-start snapshot and `n` one-second windows, each changed by `f`.
fn member(n: usize, f: impl Fn(&mut Snapshot)) -> MemberSamples {
    let mut snaps = vec![snap(0)];
    for _ in 0..n {
        let mut s = snap(1000);
        f(&mut s);
        snaps.push(s);
    }
    psi_totals(&mut snaps);
    MemberSamples {
        name: "m1".into(),
        id: 1,
        endpoint: "http://127.0.0.1:2379".into(),
        snapshots: snaps,
        slow_requests: Vec::new(),
        up: true,
        down_reason: None,
    }
}

/// The kernel's stall totals that the snapshots' avg10 figures stand for (the rules read
/// the totals when a baseline exists).
fn psi_totals(snaps: &mut [Snapshot]) {
    let (mut cpu, mut io, mut mem_some, mut mem_full) = (0.0, 0.0, 0.0, 0.0);
    for s in snaps.iter_mut().skip(1) {
        let us = s.window_ms as f64 * 1000.0 / 100.0;
        let h = s.host.as_mut().unwrap();
        if let Some(p) = h.psi_cpu.as_mut() {
            cpu += p.some_avg10 * us;
            p.some_total_us = cpu as u64;
        }
        if let Some(p) = h.psi_io.as_mut() {
            io += p.some_avg10 * us;
            p.some_total_us = io as u64;
        }
        if let Some(p) = h.psi_memory.as_mut() {
            mem_some += p.some_avg10 * us;
            mem_full += p.full_avg10 * us;
            p.some_total_us = mem_some as u64;
            p.full_total_us = mem_full as u64;
        }
    }
}

fn with_layers(layers: Vec<LayerWindow>) -> MemberSamples {
    member(5, move |s| s.layers = layers.clone())
}

/// The findings of `rule` on `m`.
fn fired(m: &MemberSamples, rule: &str) -> Option<Finding> {
    diagnose(std::slice::from_ref(m))
        .findings
        .into_iter()
        .find(|f| f.rule == rule)
}

fn severity_of(m: &MemberSamples, rule: &str) -> Option<Severity> {
    fired(m, rule).map(|f| f.severity)
}

fn cpu(s: &mut Snapshot, busy: f64, psi: f64, load1: f64) {
    let h = s.host.as_mut().unwrap();
    let c = h.cpu.as_mut().unwrap();
    c.user_percent = busy;
    c.system_percent = 0.0;
    c.idle_percent = 100.0 - busy;
    h.psi_cpu.as_mut().unwrap().some_avg10 = psi;
    h.load1 = load1;
}

#[test]
fn a_healthy_member_is_healthy() {
    let m = with_layers(vec![
        layer("wal.fsync", 500, 2 * MS),
        layer("backend.commit", 50, 5 * MS),
        layer("etcdserver.apply", 500, MS / 10),
        layer("mvcc.range", 500, MS / 10),
        layer("mvcc.treeindex_lock_wait", 2000, 1000),
        layer("api.unary", 1000, 3 * MS),
    ]);
    let v = diagnose(&[m]);
    assert_eq!(v.severity, Severity::Healthy);
    assert_eq!(v.headline, "healthy");
    assert!(v.findings.is_empty(), "{:?}", v.findings);
    assert_eq!(v.exit_code(), 0);
}

#[test]
fn slow_wal_fsync() {
    let slow = with_layers(vec![layer("wal.fsync", 100, 20 * MS)]);
    let f = fired(&slow, "slow-wal-fsync").unwrap();
    assert_eq!(f.severity, Severity::Bottleneck);
    assert_eq!(f.layer, Some("wal.fsync"));
    assert!(f.evidence[0].contains("p99 20.0 ms"), "{:?}", f.evidence);
    // The host's view of the WAL disk is attached.
    assert!(f.evidence.iter().any(|e| e.starts_with("wal disk vda")));
    // Under the threshold, or too few samples: quiet.
    assert!(fired(
        &with_layers(vec![layer("wal.fsync", 100, 9 * MS)]),
        "slow-wal-fsync"
    )
    .is_none());
    assert!(fired(
        &with_layers(vec![layer("wal.fsync", 3, 50 * MS)]),
        "slow-wal-fsync"
    )
    .is_none());
}

#[test]
fn slow_backend_commit_names_the_disk_or_the_size() {
    let disk = with_layers(vec![
        layer("backend.commit", 20, 40 * MS),
        layer("backend.commit_fsync", 40, 30 * MS),
    ]);
    let f = fired(&disk, "slow-backend-commit").unwrap();
    assert_eq!(f.severity, Severity::Bottleneck);
    assert!(f.recommendation.contains("faster disk"));
    let size = with_layers(vec![
        layer("backend.commit", 20, 40 * MS),
        layer("backend.commit_fsync", 40, 2 * MS),
    ]);
    assert!(fired(&size, "slow-backend-commit")
        .unwrap()
        .recommendation
        .contains("large transactions"));
    assert!(fired(
        &with_layers(vec![layer("backend.commit", 20, 24 * MS)]),
        "slow-backend-commit"
    )
    .is_none());
}

#[test]
fn slow_apply() {
    let f = fired(
        &with_layers(vec![layer("etcdserver.apply", 100, 150 * MS)]),
        "slow-apply",
    )
    .unwrap();
    assert_eq!(f.severity, Severity::Bottleneck);
    assert!(fired(
        &with_layers(vec![layer("etcdserver.apply", 100, 90 * MS)]),
        "slow-apply"
    )
    .is_none());
}

#[test]
fn cpu_saturation_needs_busy_cpus_and_waiting_tasks() {
    // Busy with PSI pressure: bottleneck.
    let m = member(5, |s| cpu(s, 97.0, 60.0, 1.0));
    let f = fired(&m, "cpu-saturation").unwrap();
    assert_eq!(f.severity, Severity::Bottleneck);
    assert!(f.recommendation.contains("Other processes"));
    // Busy with a long run queue (no PSI): bottleneck too.
    let m = member(5, |s| {
        cpu(s, 95.0, 0.0, 6.0);
        s.host.as_mut().unwrap().psi_cpu = None;
    });
    assert_eq!(
        severity_of(&m, "cpu-saturation"),
        Some(Severity::Bottleneck)
    );
    // Moderately busy with pressure: warning.
    let m = member(5, |s| cpu(s, 80.0, 30.0, 1.0));
    assert_eq!(severity_of(&m, "cpu-saturation"), Some(Severity::Warning));
    // Busy without anybody waiting: a well-used machine.
    let m = member(5, |s| cpu(s, 97.0, 5.0, 2.0));
    assert_eq!(severity_of(&m, "cpu-saturation"), None);
    // Pressure on an idle machine (a burst long gone from the window): quiet.
    let m = member(5, |s| cpu(s, 30.0, 50.0, 4.0));
    assert_eq!(severity_of(&m, "cpu-saturation"), None);
    // glassd itself using the CPUs: a warning, its requests are the cause.
    let m = member(5, |s| {
        cpu(s, 97.0, 60.0, 1.0);
        s.process.as_mut().unwrap().cpu_percent = 150.0;
    });
    let f = fired(&m, "cpu-saturation").unwrap();
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.recommendation.contains("glassd itself"));
}

#[test]
fn cpu_steal() {
    let steal = |pct: f64| {
        member(5, move |s| {
            let c = s.host.as_mut().unwrap().cpu.as_mut().unwrap();
            c.steal_percent = pct;
            c.idle_percent -= pct;
        })
    };
    assert_eq!(
        severity_of(&steal(15.0), "cpu-steal"),
        Some(Severity::Bottleneck)
    );
    assert_eq!(
        severity_of(&steal(5.0), "cpu-steal"),
        Some(Severity::Warning)
    );
    assert_eq!(severity_of(&steal(1.0), "cpu-steal"), None);
}

#[test]
fn steal_is_not_busy_time_of_other_processes() {
    // 65 % work + 30 % steal, with tasks waiting: the hypervisor is the cause, not the host's
    // processes, so the headline is cpu-steal and cpu-saturation does not fire.
    let m = member(5, |s| {
        cpu(s, 65.0, 50.0, 8.0);
        let c = s.host.as_mut().unwrap().cpu.as_mut().unwrap();
        c.steal_percent = 30.0;
        c.idle_percent = 5.0;
    });
    assert_eq!(period(&m).cpu_busy, Some(65.0));
    assert_eq!(severity_of(&m, "cpu-saturation"), None);
    let v = diagnose(std::slice::from_ref(&m));
    assert_eq!(v.findings[0].rule, "cpu-steal");
}

#[test]
fn memory_pressure_and_swapping() {
    let swapping = member(5, |s| {
        s.host
            .as_mut()
            .unwrap()
            .memory
            .as_mut()
            .unwrap()
            .swap_in_per_s = 400.0;
    });
    let f = fired(&swapping, "memory-pressure").unwrap();
    assert_eq!(f.severity, Severity::Bottleneck);
    assert_eq!(f.summary, "the host is swapping");
    let stalled = member(5, |s| {
        let p = s.host.as_mut().unwrap().psi_memory.as_mut().unwrap();
        p.some_avg10 = 20.0;
        p.full_avg10 = 8.0;
    });
    assert_eq!(
        severity_of(&stalled, "memory-pressure"),
        Some(Severity::Bottleneck)
    );
    let short = member(5, |s| {
        s.host.as_mut().unwrap().memory.as_mut().unwrap().available = 200 << 20;
    });
    assert_eq!(
        severity_of(&short, "memory-pressure"),
        Some(Severity::Warning)
    );
    let some = member(5, |s| {
        s.host
            .as_mut()
            .unwrap()
            .psi_memory
            .as_mut()
            .unwrap()
            .some_avg10 = 15.0;
    });
    assert_eq!(
        severity_of(&some, "memory-pressure"),
        Some(Severity::Warning)
    );
    assert_eq!(severity_of(&member(5, |_| {}), "memory-pressure"), None);
    // No PSI at all (old kernel): no opinion from it.
    let no_psi = member(5, |s| s.host.as_mut().unwrap().psi_memory = None);
    assert_eq!(severity_of(&no_psi, "memory-pressure"), None);
}

fn array(s: &mut Snapshot, runs: u64) {
    let b = s.backend.as_mut().unwrap();
    b.freelist_type = "array".into();
    b.free_pages = runs * 3;
    b.free_runs = runs;
    b.longest_free_run = 3;
}

#[test]
fn freelist_fragmentation_is_the_array_freelists() {
    // Many runs, allocations walking them: bottleneck.
    let slow = member(5, |s| {
        array(s, 10_000);
        s.layers = vec![layer("freelist.allocate", 50, 40_000)];
    });
    let f = fired(&slow, "freelist-fragmentation").unwrap();
    assert_eq!(f.severity, Severity::Bottleneck);
    assert!(
        f.evidence.iter().any(|e| e.contains("in 10000 runs")),
        "{:?}",
        f.evidence
    );
    // Many runs, allocations still fast: warning.
    let runs = member(5, |s| {
        array(s, 10_000);
        s.layers = vec![layer("freelist.allocate", 50, 5_000)];
    });
    assert_eq!(
        severity_of(&runs, "freelist-fragmentation"),
        Some(Severity::Warning)
    );
    // Few runs: a 40 µs allocation is not a scan of holes; a 2 ms one is slow anyway.
    let fine = member(5, |s| {
        array(s, 10);
        s.layers = vec![layer("freelist.allocate", 50, 40_000)];
    });
    assert_eq!(severity_of(&fine, "freelist-fragmentation"), None);
    let slow_anyway = member(5, |s| {
        array(s, 10);
        s.layers = vec![layer("freelist.allocate", 50, 2 * MS)];
    });
    assert_eq!(
        severity_of(&slow_anyway, "freelist-fragmentation"),
        Some(Severity::Bottleneck)
    );
    // Too few allocations to judge their time: only the shape counts.
    let few = member(5, |s| {
        array(s, 10_000);
        s.layers = vec![layer("freelist.allocate", 1, 2 * MS)];
    });
    assert_eq!(
        severity_of(&few, "freelist-fragmentation"),
        Some(Severity::Warning)
    );
    // The map freelist does not scan: quiet whatever the numbers.
    let map = member(5, |s| {
        s.backend.as_mut().unwrap().free_runs = 50_000;
        s.layers = vec![layer("freelist.allocate", 50, 4 * MS)];
    });
    assert_eq!(severity_of(&map, "freelist-fragmentation"), None);
}

#[test]
fn backend_tx_lock_contention() {
    let m = with_layers(vec![
        layer("backend.tx_lock_wait", 100, 30 * MS),
        layer("mvcc.txn", 100, 20 * MS),
    ]);
    let f = fired(&m, "backend-tx-lock-contention").unwrap();
    assert_eq!(f.severity, Severity::Bottleneck);
    assert_eq!(f.layer, Some("backend.tx_lock_wait"));
    assert!(f.evidence.iter().any(|e| e.starts_with("holder mvcc.txn")));
    // bolt's own write lock counts too, and the worse of the two is named.
    let m = with_layers(vec![
        layer("backend.tx_lock_wait", 100, MS),
        layer("bolt.rw_lock_wait", 100, 6 * MS),
    ]);
    let f = fired(&m, "backend-tx-lock-contention").unwrap();
    assert_eq!(
        (f.severity, f.layer),
        (Severity::Warning, Some("bolt.rw_lock_wait"))
    );
    let m = with_layers(vec![layer("backend.tx_lock_wait", 100, MS)]);
    assert!(fired(&m, "backend-tx-lock-contention").is_none());
}

#[test]
fn treeindex_lock_contention_is_judged_against_the_waiting_path() {
    // Against the applies (long ranges make the request p99 large: not the reference).
    let m = with_layers(vec![
        layer("mvcc.treeindex_lock_wait", 5000, 4 * MS),
        layer("etcdserver.apply", 1000, 8 * MS),
        layer("api.unary", 1000, 90 * MS),
    ]);
    let f = fired(&m, "treeindex-lock-contention").unwrap();
    assert_eq!(f.severity, Severity::Bottleneck);
    assert!(f.evidence[1].starts_with("etcdserver.apply p99 8.0 ms"));
    // No applies: against the requests.
    let m = with_layers(vec![
        layer("mvcc.treeindex_lock_wait", 5000, 4 * MS),
        layer("api.unary", 1000, 20 * MS),
    ]);
    assert_eq!(
        severity_of(&m, "treeindex-lock-contention"),
        Some(Severity::Bottleneck)
    );
    // The same wait on applies that take 100 times longer is noise.
    let m = with_layers(vec![
        layer("mvcc.treeindex_lock_wait", 5000, 4 * MS),
        layer("etcdserver.apply", 1000, 400 * MS),
    ]);
    assert_eq!(severity_of(&m, "treeindex-lock-contention"), None);
    // p99 low, a long worst wait: warning.
    let mut w = layer("mvcc.treeindex_lock_wait", 5000, 100_000);
    w.max = 30 * MS;
    let m = with_layers(vec![w, layer("api.unary", 1000, 20 * MS)]);
    assert_eq!(
        severity_of(&m, "treeindex-lock-contention"),
        Some(Severity::Warning)
    );
    // Microseconds: quiet. Too few samples: quiet.
    let m = with_layers(vec![layer("mvcc.treeindex_lock_wait", 5000, 2000)]);
    assert_eq!(severity_of(&m, "treeindex-lock-contention"), None);
    let m = with_layers(vec![layer("mvcc.treeindex_lock_wait", 10, 40 * MS)]);
    assert_eq!(severity_of(&m, "treeindex-lock-contention"), None);
}

fn slow(method: &str, summary: &str) -> SlowRequest {
    SlowRequest {
        method: method.into(),
        duration_ns: 300 * MS,
        code: "OK".into(),
        summary: summary.into(),
        ..SlowRequest::default()
    }
}

#[test]
fn expensive_requests() {
    let m = with_layers(vec![layer("mvcc.range", 100, 150 * MS)]);
    assert_eq!(
        severity_of(&m, "expensive-requests"),
        Some(Severity::Bottleneck)
    );
    let m = with_layers(vec![layer("mvcc.range", 100, 30 * MS)]);
    assert_eq!(
        severity_of(&m, "expensive-requests"),
        Some(Severity::Warning)
    );
    let m = with_layers(vec![layer("mvcc.range", 100, 5 * MS)]);
    assert_eq!(severity_of(&m, "expensive-requests"), None);
    // Slow requests that are large: warning with them as evidence.
    let mut m = with_layers(vec![layer("mvcc.range", 100, 5 * MS)]);
    m.slow_requests = vec![
        slow("etcdserverpb.KV/Range", "key=\"a\" keys=20000 count=20000"),
        slow(
            "etcdserverpb.KV/Put",
            "key=\"b\" keys=1 value_bytes=1048576",
        ),
        slow("etcdserverpb.KV/Range", "key=\"c\" keys=3 count=3"),
    ];
    let f = fired(&m, "expensive-requests").unwrap();
    assert_eq!(f.severity, Severity::Warning);
    assert_eq!(
        f.summary,
        "2 slow requests read many keys or write big values"
    );
    assert!(f.evidence.iter().any(|e| e.contains("keys=20000")));
    // One large slow request is not a pattern.
    m.slow_requests.truncate(1);
    assert_eq!(severity_of(&m, "expensive-requests"), None);
}

#[test]
fn leases_and_watchers_wait_for_their_layers() {
    let m = with_layers(vec![layer("wal.fsync", 100, 50 * MS)]);
    let p = period(&m);
    assert!(too_many_leases(&p).is_none());
    assert!(too_many_watchers(&p).is_none());
}

#[test]
fn peer_network_needs_a_cluster() {
    let lossy = |name: &str| {
        let mut m = member(5, |_| {});
        m.name = name.into();
        for (i, s) in m.snapshots.iter_mut().enumerate() {
            let n = s.host.as_mut().unwrap().network.as_mut().unwrap();
            n.tcp_out_segs = 1000 * i as u64;
            n.tcp_retrans_segs = 50 * i as u64;
        }
        m
    };
    assert!(fired(&lossy("m1"), "peer-network").is_none());
    let v = diagnose(&[lossy("m1"), lossy("m2")]);
    let f: Vec<&Finding> = v
        .findings
        .iter()
        .filter(|f| f.rule == "peer-network")
        .collect();
    assert_eq!(f.len(), 2);
    assert_eq!(f[0].severity, Severity::Warning);
    assert!(f[0].evidence[0].contains("5.00 %"), "{:?}", f[0].evidence);
    let v = diagnose(&[member(5, |_| {}), member(5, |_| {})]);
    assert!(v.findings.is_empty());
}

#[test]
fn kernel_settings_are_advice() {
    let m = member(5, |s| {
        let h = s.host.as_mut().unwrap();
        let k = h.kernel.as_mut().unwrap();
        k.vm_swappiness = 60;
        k.transparent_hugepages = "always".into();
        h.disks[0].rotational = true;
    });
    let v = diagnose(std::slice::from_ref(&m));
    assert_eq!(v.findings.len(), 1);
    let f = &v.findings[0];
    assert_eq!((f.rule, f.severity), ("kernel-settings", Severity::Info));
    assert_eq!(f.evidence.len(), 3);
    // Advice leaves the verdict healthy and the exit code 0.
    assert_eq!(v.severity, Severity::Healthy);
    assert_eq!(v.headline, "healthy");
    assert_eq!(v.exit_code(), 0);
}

#[test]
fn a_member_down_and_a_member_without_leader() {
    let mut down = member(0, |_| {});
    down.up = false;
    down.down_reason = Some("the diagnostics stream ended early".into());
    let v = diagnose(&[down]);
    assert_eq!(v.findings.len(), 1);
    assert_eq!(v.findings[0].rule, "member-down");
    assert_eq!(
        v.findings[0].evidence[0],
        "the diagnostics stream ended early"
    );
    // Windows that look healthy do not make a member up that gave no usable period.
    let mut m = member(3, |_| {});
    m.up = false;
    assert_eq!(diagnose(&[m]).exit_code(), 2);
    assert_eq!(v.exit_code(), 2);
    let m = member(3, |s| s.raft.as_mut().unwrap().leader = 0);
    assert_eq!(severity_of(&m, "no-leader"), Some(Severity::Bottleneck));
}

#[test]
fn the_since_start_window_is_skipped() {
    let mut m = member(3, |s| s.layers = vec![layer("wal.fsync", 100, MS)]);
    m.snapshots[0].layers = vec![layer("wal.fsync", 10_000, 500 * MS)];
    assert!(fired(&m, "slow-wal-fsync").is_none());
    // Alone, it is no window: lifetime figures are never judged as now.
    m.snapshots.truncate(1);
    assert!(fired(&m, "slow-wal-fsync").is_none());
    assert_eq!(period(&m).window_ms, 0);
}

#[test]
fn every_since_start_snapshot_is_a_baseline_not_a_window() {
    // [w0, w1000, w1000, w0 (a reconnect: the process's whole life), w1000].
    let mut m = member(2, |s| s.layers = vec![layer("wal.fsync", 100, MS)]);
    let mut again = snap(0);
    again.layers = vec![layer("wal.fsync", 10_000_000, 500 * MS)];
    again.process.as_mut().unwrap().nonvoluntary_ctxt_switches = 50;
    m.snapshots.push(again);
    let mut last = snap(1000);
    last.layers = vec![layer("wal.fsync", 100, MS)];
    last.process.as_mut().unwrap().nonvoluntary_ctxt_switches = 550;
    m.snapshots.push(last);
    let p = period(&m);
    let l = p.layers["wal.fsync"];
    assert_eq!(l.count, 300);
    assert_eq!(l.p99, MS);
    assert_eq!(l.worst_p99, MS);
    assert_eq!(l.max, 2 * MS);
    assert_eq!(p.window_ms, 3000);
    // Counters are read within the last stream: 500 switches over its one second.
    assert_eq!(p.nonvoluntary_per_s, Some(500.0));
    assert!(fired(&m, "slow-wal-fsync").is_none());
    // A reconnect whose first window has not come yet: still not a window.
    m.snapshots.pop();
    assert_eq!(period(&m).layers["wal.fsync"].count, 200);
    assert!(fired(&m, "slow-wal-fsync").is_none());
}

#[test]
fn windows_fold_count_weighted() {
    let mut m = member(0, |_| {});
    for (count, p99) in [(300, 2 * MS), (100, 30 * MS), (0, 0)] {
        let mut s = snap(1000);
        s.layers = vec![layer("wal.fsync", count, p99)];
        m.snapshots.push(s);
    }
    let p = period(&m);
    let l = p.layers["wal.fsync"];
    assert_eq!(l.count, 400);
    // (300 × 2 + 100 × 30) / 400 = 9 ms: under etcd's 10 ms.
    assert_eq!(l.p99, 9 * MS);
    assert_eq!(l.worst_p99, 30 * MS);
    assert_eq!(l.max, 60 * MS);
    assert_eq!(p.window_ms, 3000);
    assert!(fired(&m, "slow-wal-fsync").is_none());
}

#[test]
fn host_figures_are_window_weighted_means() {
    let mut m = member(0, |_| {});
    for (ms, busy) in [(3000, 100.0), (1000, 20.0)] {
        let mut s = snap(ms);
        cpu(&mut s, busy, 0.0, 0.0);
        m.snapshots.push(s);
    }
    let p = period(&m);
    assert_eq!(p.cpu_busy, Some(80.0));
}

#[test]
fn counters_are_rated_against_the_baseline() {
    let mut m = member(2, |_| {});
    for (i, s) in m.snapshots.iter_mut().enumerate() {
        s.process.as_mut().unwrap().nonvoluntary_ctxt_switches = 1000 + 500 * i as u64;
        s.raft.as_mut().unwrap().leader_changes = 1 + i as u64;
    }
    let p = period(&m);
    assert_eq!(p.nonvoluntary_per_s, Some(500.0));
    assert_eq!(p.leader_changes, 2);
}

#[test]
fn severities_are_ordered_and_map_to_exit_codes() {
    assert!(Severity::Healthy < Severity::Info);
    assert!(Severity::Info < Severity::Warning);
    assert!(Severity::Warning < Severity::Bottleneck);
    let codes: Vec<u8> = [
        Severity::Healthy,
        Severity::Info,
        Severity::Warning,
        Severity::Bottleneck,
    ]
    .iter()
    .map(|s| s.exit_code())
    .collect();
    assert_eq!(codes, [0, 0, 1, 2]);
}

#[test]
fn findings_are_worst_first_causes_before_symptoms() {
    let m = member(5, |s| {
        cpu(s, 80.0, 30.0, 1.0); // warning
        s.layers = vec![
            layer("etcdserver.apply", 100, 200 * MS), // bottleneck, a symptom
            layer("wal.fsync", 100, 30 * MS),         // bottleneck, a cause
        ];
    });
    let v = diagnose(&[m]);
    let rules: Vec<&str> = v.findings.iter().map(|f| f.rule).collect();
    assert_eq!(rules, ["slow-wal-fsync", "slow-apply", "cpu-saturation"]);
    assert_eq!(v.severity, Severity::Bottleneck);
    assert_eq!(
        v.headline,
        "bottleneck: WAL fsync is slow (p99 30.0 ms) on m1"
    );
    assert_eq!(v.exit_code(), 2);
    // Warnings only: exit 1, the headline names the warning.
    let v = diagnose(&[member(5, |s| cpu(s, 80.0, 30.0, 1.0))]);
    assert_eq!(v.exit_code(), 1);
    assert!(v.headline.starts_with("warning: the CPUs are saturated"));
}

#[test]
fn the_verdict_serializes_for_json_readers() {
    let v = diagnose(&[with_layers(vec![layer("wal.fsync", 100, 20 * MS)])]);
    let j = serde_json::to_value(&v).unwrap();
    assert_eq!(j["severity"], "bottleneck");
    assert_eq!(j["findings"][0]["rule"], "slow-wal-fsync");
    assert_eq!(j["findings"][0]["layer"], "wal.fsync");
}
