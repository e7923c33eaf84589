//! The doctor's rules: pure functions over the snapshots the members streamed
//! (`glass.v1.Diagnostics/Watch`), shared by `glass doctor` and `glass top`'s Diagnosis view.
//!
//! [`diagnose`] first folds each member's snapshots into a [`Period`] (see "Windows" below),
//! then runs every rule of [`RULES`] over it. A rule is `fn(&Period) -> Option<Finding>`: it
//! fires with the numbers that made it fire (each beside its threshold) and a recommendation,
//! or stays quiet. A rule never fires on missing data: no measurement, too few samples, or a
//! host figure the kernel does not give (PSI) all mean "no opinion".
//!
//! # The rules
//!
//! | id | fires when (over the sampled period) | severity | source of the threshold |
//! |----|--------------------------------------|----------|-------------------------|
//! | `member-down` | the member did not answer | bottleneck | — |
//! | `no-leader` | the member's last snapshot knows no leader | bottleneck | — |
//! | `cpu-saturation` | host busy (user + system + …, steal and iowait excluded) ≥ 90 % and runnable pressure (PSI cpu some ≥ 20 % of the period or load1 ≥ 1.5 × cores) | bottleneck when other processes use the CPUs; warning when glassd itself uses ≥ 60 % of the busy time (its requests are the cause, which the request rules name), or at busy ≥ 75 % with pressure | Glass |
//! | `cpu-steal` | steal ≥ 10 % of the host's CPU time | bottleneck (warning ≥ 3 %) | Glass |
//! | `memory-pressure` | swapping ≥ 50 pages/s or PSI memory full ≥ 5 % | bottleneck; warning: PSI memory some ≥ 10 % or available < 10 % | etcd: no swap |
//! | `slow-wal-fsync` | `wal.fsync` p99 ≥ 10 ms (≥ 20 syncs) | bottleneck | etcd: WAL fsync p99 < 10 ms |
//! | `slow-backend-commit` | `backend.commit` p99 ≥ 25 ms (≥ 10 commits) | bottleneck | etcd: backend commit p99 < 25 ms |
//! | `freelist-fragmentation` | array freelist with ≥ 1 000 free runs and `freelist.allocate` p99 ≥ 20 µs (≥ 10 allocations), or an array freelist's p99 ≥ 1 ms (the map freelist is not judged) | bottleneck; warning: array freelist with ≥ 1 000 free runs | Glass (bbolt's array scan; measured p99: map 7–15 µs, fragmented array 40–80 µs) |
//! | `backend-tx-lock-contention` | `backend.tx_lock_wait` (or `bolt.rw_lock_wait`) p99 ≥ 10 ms (≥ 20 waits) | bottleneck (warning ≥ 5 ms) | Glass |
//! | `treeindex-lock-contention` | `mvcc.treeindex_lock_wait` p99 ≥ 1 ms (≥ 100 waits) and ≥ 10 % of the apply p99 (`etcdserver.apply`; `api.unary` without applies) | bottleneck (warning: max ≥ 10 ms and ≥ 10 % of it) | Glass |
//! | `expensive-requests` | `mvcc.range` p99 ≥ 100 ms (≥ 20 ranges) | bottleneck; warning: range p99 ≥ 20 ms, or ≥ 2 slow requests returning ≥ 1 000 keys or carrying values ≥ 128 KiB | etcd: apply > 100 ms is slow |
//! | `slow-apply` | `etcdserver.apply` p99 ≥ 100 ms (≥ 20 applies) | bottleneck | etcd: "apply request took too long" at 100 ms |
//! | `peer-network` | a cluster (≥ 2 members sampled) and TCP retransmits ≥ 1 % of segments sent, or leader changes during the period | warning | Glass |
//! | `too-many-leases`, `too-many-watchers` | never yet: Glass has no lease or watch layer to measure; they wait for those layers | — | — |
//! | `kernel-settings` | vm.swappiness > 10, transparent hugepages `always`, a `powersave` governor, a rotational WAL/data disk | info | etcd's tuning guide |
//!
//! The host's view of the disks (util, write await and IOPS of the device under the WAL or the
//! data dir, iowait, PSI io) is evidence attached to the slow-disk findings, not a rule of its
//! own: a device busy with fast fsyncs is not a fault.
//!
//! # Where Glass's own thresholds come from
//!
//! `dashboard/tests/doctor.rs` causes each bottleneck on a real glassd (2-core VM, rotational
//! virtio disk) and the thresholds sit well inside what it measured: WAL fsync slowed by 20 ms →
//! p99 21–22 ms; two busy processes per core → host busy 100 %, PSI cpu some 74–95 % of the
//! period, glassd 3 % of the busy time (a healthy run: busy 4–11 %, PSI 2–12 %); four clients
//! ranging over 40 000 keys beside four writers → treeIndex wait p99 6.6–8.8 ms against an apply
//! p99 of 10–13 ms (healthy: wait p99 under 1 µs); array freelist after fill, delete, compact →
//! 9 900 runs of 2 pages, allocation p99 47–55 µs (map freelist: 7–15 µs).
//!
//! # Severity
//!
//! [`Severity::Bottleneck`] names what limits the member now; [`Severity::Warning`] something
//! degraded that is not (yet) the limit; [`Severity::Info`] advice that holds on many healthy
//! machines (kernel settings). Info findings are listed but leave the verdict `healthy` and
//! the exit code 0: kernel defaults would otherwise make every laptop exit 1. Findings are
//! sorted worst first, and among equals in [`RULES`] order: causes (CPU, memory, disk, locks,
//! freelist, expensive requests) before symptoms (slow apply), so the headline names a cause.
//!
//! # Windows
//!
//! A stream's first snapshot (`window_ms == 0`) covers the time since the process started: it
//! is never a window (alone, it gives none: no latency or host rule judges lifetime figures),
//! wherever it sits (a reconnected stream starts with one in
//! the middle of the list), and serves only as the baseline of the process's counters, which
//! are read over the last stream (baseline to its last window). Over the remaining windows, per measurement: counts and sums add, `max` is the
//! largest, and the quantiles are the count-weighted mean of the windows' quantiles (a window
//! with many requests weighs more; an idle window none). That mean can sit below the true
//! period's p99 when the tail comes in bursts, so the largest window p99 is kept beside it
//! ([`LayerAgg::worst_p99`]) and shown as evidence. Host and process figures (CPU %, swap
//! rates, disk util/await) are means weighted by window length. PSI is the share of the period
//! stalled, from the kernel's stall totals (`some_total_us`) between the baseline and the last
//! snapshot — avg10 lags a change by seconds — and the windows' avg10 mean only when there is
//! no baseline; memory available, kernel
//! settings and raft state come from the last snapshot. Latency rules need a minimum number of
//! samples in the period (above) so that three slow requests do not make a verdict.

use std::collections::BTreeMap;

use glassd::pb::glass::v1::{HostStatus, Pressure, SlowRequest, Snapshot};
use serde::Serialize;

/// What one member streamed over the sampled period.
#[derive(Clone, Debug, Default)]
pub struct MemberSamples {
    /// The member's name (MemberList's), or its endpoint when it never answered.
    pub name: String,
    pub id: u64,
    /// The client URL the snapshots came from.
    pub endpoint: String,
    /// Oldest first. A stream's first snapshot (window_ms == 0) covers the time since the process
    /// started: rules never fold it in as a window (see "Windows").
    pub snapshots: Vec<Snapshot>,
    /// The member's recent slow requests (newest first), when they were read.
    pub slow_requests: Vec<SlowRequest>,
    /// False when the member gave no usable data for the period: its stream could not be
    /// opened, ended early (stopped or restarted), gave fewer than two snapshots, or the member
    /// could not be reached at the end. Lack of data is never "healthy".
    pub up: bool,
    /// Why it is not up, when known (shown as the `member-down` finding's evidence).
    pub down_reason: Option<String>,
}

/// Ordered: the verdict's severity is the worst finding's (Info excepted, see the module doc).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    #[default]
    Healthy,
    /// Advice (kernel settings): listed, but the verdict stays healthy and the exit code 0.
    Info,
    Warning,
    Bottleneck,
}

impl Severity {
    /// `glass doctor`'s exit code: 0 healthy (advice included), 1 warnings, 2 a bottleneck.
    pub fn exit_code(self) -> u8 {
        match self {
            Severity::Healthy | Severity::Info => 0,
            Severity::Warning => 1,
            Severity::Bottleneck => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Healthy => "healthy",
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Bottleneck => "bottleneck",
        }
    }
}

/// One rule that fired on one member.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// The rule's stable id ("slow-wal-fsync", "cpu-saturation", ...): what `--json` readers and
    /// tests match on.
    pub rule: &'static str,
    pub severity: Severity,
    /// The member's name.
    pub member: String,
    /// The measurement the rule is about, when there is one ("wal.fsync").
    pub layer: Option<&'static str>,
    /// One line, plain words: what is wrong.
    pub summary: String,
    /// The numbers that made the rule fire, each with its threshold.
    pub evidence: Vec<String>,
    /// What to do about it.
    pub recommendation: String,
}

/// The doctor's answer for a cluster.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Verdict {
    /// The worst finding's severity, Info findings excepted (they leave it `healthy`).
    pub severity: Severity,
    /// One line: "healthy", or the worst finding's summary with its member.
    pub headline: String,
    /// Worst first.
    pub findings: Vec<Finding>,
}

impl Verdict {
    /// `glass doctor`'s exit code for this verdict (see [`Severity::exit_code`]).
    pub fn exit_code(&self) -> u8 {
        self.severity.exit_code()
    }
}

// ---------------------------------------------------------------------------------------------
// Thresholds (the module doc's table)

/// etcd: "WAL fsync p99 should be below 10 ms".
pub const WAL_FSYNC_P99_NS: u64 = 10_000_000;
/// etcd: "backend commit p99 should be below 25 ms".
pub const BACKEND_COMMIT_P99_NS: u64 = 25_000_000;
/// etcd warns that an apply "took too long" from 100 ms.
pub const APPLY_P99_NS: u64 = 100_000_000;
/// Samples a latency rule needs in the period before it has an opinion.
pub const MIN_LATENCY_SAMPLES: u64 = 20;
/// Backend commits happen every batch interval (100 ms): fewer are needed.
pub const MIN_COMMIT_SAMPLES: u64 = 10;

pub const CPU_BUSY_BOTTLENECK_PCT: f64 = 90.0;
pub const CPU_BUSY_WARNING_PCT: f64 = 75.0;
/// PSI cpu "some": the share of time at least one runnable task waited for a CPU.
pub const PSI_CPU_SOME_PCT: f64 = 20.0;
/// Runnable (and uninterruptible) tasks per core, load1.
pub const LOAD_PER_CORE: f64 = 1.5;
/// glassd's share of the busy CPU time from which the saturation is its own work.
pub const GLASSD_OWN_CPU_SHARE: f64 = 0.6;
pub const STEAL_BOTTLENECK_PCT: f64 = 10.0;
pub const STEAL_WARNING_PCT: f64 = 3.0;

/// Pages swapped in plus out per second.
pub const SWAP_PAGES_PER_S: f64 = 50.0;
pub const PSI_MEMORY_FULL_PCT: f64 = 5.0;
pub const PSI_MEMORY_SOME_PCT: f64 = 10.0;
pub const MEMORY_AVAILABLE_MIN_PCT: f64 = 10.0;

/// An allocation this slow (p99) on the array freelist is a bottleneck whatever its free set
/// looks like. The rule judges the array freelist only: a map freelist's allocation is never
/// judged, however slow.
pub const FREELIST_ALLOCATE_SLOW_NS: u64 = 1_000_000;
/// An allocation this slow (p99) on a fragmented array freelist is the scan walking its holes
/// (measured here: map freelist p99 7–15 µs, fragmented array of 10 000 runs 40–80 µs).
pub const FREELIST_ALLOCATE_SCAN_NS: u64 = 20_000;
pub const MIN_FREELIST_SAMPLES: u64 = 10;
/// Free runs from which the array freelist is fragmented.
pub const FREELIST_MANY_RUNS: u64 = 1_000;

pub const TX_LOCK_WAIT_BOTTLENECK_NS: u64 = 10_000_000;
pub const TX_LOCK_WAIT_WARNING_NS: u64 = 5_000_000;

pub const TREEINDEX_WAIT_P99_NS: u64 = 1_000_000;
pub const TREEINDEX_WAIT_MAX_NS: u64 = 10_000_000;
pub const MIN_TREEINDEX_SAMPLES: u64 = 100;
/// The lock wait must be this share of the waiting path's p99 (apply, else request) to matter.
pub const TREEINDEX_SHARE_OF_PATH: f64 = 0.10;

pub const RANGE_P99_BOTTLENECK_NS: u64 = 100_000_000;
pub const RANGE_P99_WARNING_NS: u64 = 20_000_000;
/// A range returning this many keys is "large".
pub const LARGE_RANGE_KEYS: i64 = 1_000;
/// A value this big is "big" (etcd's request limit is 1.5 MiB; its guidance is small values).
pub const BIG_VALUE_BYTES: i64 = 128 * 1024;
/// Slow requests that are large before the rule has an opinion.
pub const MIN_LARGE_SLOW_REQUESTS: usize = 2;

pub const RETRANS_SHARE: f64 = 0.01;
pub const SWAPPINESS_MAX: i64 = 10;

// ---------------------------------------------------------------------------------------------
// The period: a member's windows folded together

/// One measurement over the period (see the module doc's "Windows").
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct LayerAgg {
    pub count: u64,
    pub sum: u64,
    /// Count-weighted mean of the windows' p50.
    pub p50: u64,
    /// Count-weighted mean of the windows' p99.
    pub p99: u64,
    /// The largest window p99.
    pub worst_p99: u64,
    pub max: u64,
}

/// A disk's figures over the period.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DiskAgg {
    pub device: String,
    pub roles: Vec<String>,
    pub util_percent: f64,
    pub write_await_ms: f64,
    pub write_iops: f64,
    pub rotational: bool,
}

/// A member's sampled period, ready for the rules.
#[derive(Clone, Debug, Default)]
pub struct Period<'a> {
    pub member: &'a str,
    pub up: bool,
    pub down_reason: Option<&'a str>,
    /// Snapshots received (the first included).
    pub snapshots: usize,
    /// The windows the aggregates cover, milliseconds.
    pub window_ms: u64,
    pub layers: BTreeMap<String, LayerAgg>,
    /// The last snapshot, for state (raft, backend, kernel settings, memory available).
    pub last: Option<&'a Snapshot>,
    /// Window-weighted means over the host's CPUs (all cores together), percent.
    pub cpu_busy: Option<f64>,
    pub cpu_iowait: Option<f64>,
    pub cpu_steal: Option<f64>,
    pub cores: u32,
    pub load1: Option<f64>,
    /// PSI over the period, percent (from the stall totals; see the module doc), `None` when
    /// the kernel has no PSI.
    pub psi_cpu_some: Option<f64>,
    pub psi_io_some: Option<f64>,
    pub psi_memory_some: Option<f64>,
    pub psi_memory_full: Option<f64>,
    pub swap_pages_per_s: Option<f64>,
    /// glassd's CPU use, percent of one core.
    pub process_cpu: Option<f64>,
    /// glassd's involuntary context switches per second (preempted: waited for a CPU). The
    /// server sums them over glassd's threads (`/proc/PID/task/*/status`; a thread that
    /// exits drops out of the sum, which the saturating difference hides).
    pub nonvoluntary_per_s: Option<f64>,
    pub disks: Vec<DiskAgg>,
    /// TCP segments retransmitted per segment sent over the period.
    pub retrans_share: Option<f64>,
    /// Leader changes seen during the period.
    pub leader_changes: u64,
    pub slow_requests: &'a [SlowRequest],
}

impl Period<'_> {
    /// The measurement's aggregate, when it exists and has at least `min` samples.
    pub fn layer(&self, name: &str, min: u64) -> Option<LayerAgg> {
        self.layers.get(name).copied().filter(|l| l.count >= min)
    }

    fn finding(&self, rule: &'static str, severity: Severity) -> Finding {
        Finding {
            rule,
            severity,
            member: self.member.to_string(),
            layer: None,
            summary: String::new(),
            evidence: Vec::new(),
            recommendation: String::new(),
        }
    }

    /// The disks holding `role` ("wal", "data").
    fn disks_for<'s>(&'s self, role: &'s str) -> impl Iterator<Item = &'s DiskAgg> + 's {
        self.disks
            .iter()
            .filter(move |d| d.roles.iter().any(|r| r == role))
    }

    /// The host's view of the disks behind `role`, as evidence for the slow-disk rules.
    fn disk_evidence(&self, role: &str) -> Vec<String> {
        let mut ev: Vec<String> = self
            .disks_for(role)
            .map(|d| {
                format!(
                    "{role} disk {}: util {:.0} %, write await {:.1} ms, {:.0} writes/s{}",
                    d.device,
                    d.util_percent,
                    d.write_await_ms,
                    d.write_iops,
                    if d.rotational { " (rotational)" } else { "" }
                )
            })
            .collect();
        if let Some(w) = self.cpu_iowait {
            ev.push(format!("host iowait {w:.1} %"));
        }
        if let Some(p) = self.psi_io_some {
            ev.push(format!("PSI io some {p:.1} %"));
        }
        ev
    }
}

/// Weighted mean helper: (sum of value × weight, sum of weights).
#[derive(Default)]
struct Mean(f64, f64);

impl Mean {
    fn add(&mut self, v: f64, w: f64) {
        if v.is_finite() && w > 0.0 {
            self.0 += v * w;
            self.1 += w;
        }
    }
    fn get(&self) -> Option<f64> {
        (self.1 > 0.0).then(|| self.0 / self.1)
    }
}

/// Folds a member's snapshots into its period (see the module doc's "Windows").
pub fn period(m: &MemberSamples) -> Period<'_> {
    let all = &m.snapshots;
    // Every since-start snapshot (a stream's first: `window_ms == 0`, also after a reconnect in
    // the middle of the list) covers the process's whole life: it is never folded in as a
    // window, only used as a baseline. Alone, it gives no window: nothing is judged from
    // lifetime figures (state from the last snapshot — raft, memory, kernel — still is).
    let windows: Vec<&Snapshot> = all.iter().filter(|s| s.window_ms > 0).collect();
    // The counters' segment: the last since-start snapshot followed by windows, and those
    // windows (counters restart with a process, so they are read within one stream only).
    let (base, segment): (Option<&Snapshot>, &[Snapshot]) = {
        let starts: Vec<usize> = (0..all.len())
            .filter(|&i| all[i].window_ms == 0 && i + 1 < all.len())
            .collect();
        match starts.last() {
            Some(&i) => {
                let end = all[i + 1..]
                    .iter()
                    .position(|s| s.window_ms == 0)
                    .map_or(all.len(), |k| i + 1 + k);
                (Some(&all[i]), &all[i + 1..end])
            }
            None => (None, &all[..]),
        }
    };
    let mut p = Period {
        member: &m.name,
        up: m.up,
        down_reason: m.down_reason.as_deref(),
        snapshots: all.len(),
        last: all.last(),
        slow_requests: &m.slow_requests,
        ..Period::default()
    };
    p.window_ms = windows.iter().map(|s| s.window_ms).sum();

    struct Acc {
        count: u64,
        sum: u64,
        p50: u128,
        p99: u128,
        worst_p99: u64,
        max: u64,
    }
    let mut acc: BTreeMap<&str, Acc> = BTreeMap::new();
    let (mut busy, mut iowait, mut steal, mut load) = (
        Mean::default(),
        Mean::default(),
        Mean::default(),
        Mean::default(),
    );
    let (mut psi_cpu, mut psi_io, mut psi_mem_some, mut psi_mem_full, mut swap, mut pcpu) = (
        Mean::default(),
        Mean::default(),
        Mean::default(),
        Mean::default(),
        Mean::default(),
        Mean::default(),
    );
    let mut disks: BTreeMap<String, (DiskAgg, Mean, Mean, Mean)> = BTreeMap::new();
    for &s in &windows {
        for l in &s.layers {
            let a = acc.entry(l.name.as_str()).or_insert(Acc {
                count: 0,
                sum: 0,
                p50: 0,
                p99: 0,
                worst_p99: 0,
                max: 0,
            });
            a.count += l.count;
            a.sum = a.sum.saturating_add(l.sum);
            a.p50 += u128::from(l.p50) * u128::from(l.count);
            a.p99 += u128::from(l.p99) * u128::from(l.count);
            if l.count > 0 {
                a.worst_p99 = a.worst_p99.max(l.p99);
            }
            a.max = a.max.max(l.max);
        }
        let w = s.window_ms as f64;
        if let Some(h) = &s.host {
            host_means(h, w, &mut busy, &mut iowait, &mut steal, &mut load);
            p.cores = p.cores.max(h.cores);
            if let Some(x) = h.psi_cpu.as_ref().filter(|x| x.available) {
                psi_cpu.add(x.some_avg10, w);
            }
            if let Some(x) = h.psi_io.as_ref().filter(|x| x.available) {
                psi_io.add(x.some_avg10, w);
            }
            if let Some(x) = h.psi_memory.as_ref().filter(|x| x.available) {
                psi_mem_some.add(x.some_avg10, w);
                psi_mem_full.add(x.full_avg10, w);
            }
            if let Some(mem) = &h.memory {
                swap.add(mem.swap_in_per_s + mem.swap_out_per_s, w);
            }
            for d in &h.disks {
                let e = disks.entry(d.device.clone()).or_insert_with(|| {
                    (
                        DiskAgg {
                            device: d.device.clone(),
                            roles: d.roles.clone(),
                            rotational: d.rotational,
                            ..DiskAgg::default()
                        },
                        Mean::default(),
                        Mean::default(),
                        Mean::default(),
                    )
                });
                e.1.add(d.util_percent, w);
                e.2.add(d.write_await_ms, w);
                e.3.add(d.write_iops, w);
            }
        }
        if let Some(pr) = &s.process {
            pcpu.add(pr.cpu_percent, w);
        }
    }
    p.layers = acc
        .into_iter()
        .map(|(name, a)| {
            let mean = |x: u128| {
                if a.count == 0 {
                    0
                } else {
                    u64::try_from(x / u128::from(a.count)).unwrap_or(u64::MAX)
                }
            };
            (
                name.to_string(),
                LayerAgg {
                    count: a.count,
                    sum: a.sum,
                    p50: mean(a.p50),
                    p99: mean(a.p99),
                    worst_p99: a.worst_p99,
                    max: a.max,
                },
            )
        })
        .collect();
    p.cpu_busy = busy.get();
    p.cpu_iowait = iowait.get();
    p.cpu_steal = steal.get();
    p.load1 = load.get();
    p.psi_cpu_some = psi_cpu.get();
    p.psi_io_some = psi_io.get();
    p.psi_memory_some = psi_mem_some.get();
    p.psi_memory_full = psi_mem_full.get();
    p.swap_pages_per_s = swap.get();
    p.process_cpu = pcpu.get();
    p.disks = disks
        .into_values()
        .map(|(mut d, util, wait, iops)| {
            d.util_percent = util.get().unwrap_or(0.0);
            d.write_await_ms = wait.get().unwrap_or(0.0);
            d.write_iops = iops.get().unwrap_or(0.0);
            d
        })
        .collect();

    // Counters: the segment's last snapshot against its baseline (or its first window).
    let first = base.or(segment.first());
    let seg_ms: u64 = segment.iter().map(|s| s.window_ms).sum();
    if let (Some(a), Some(b)) = (first, segment.last().or(p.last)) {
        let secs = seg_ms as f64 / 1000.0;
        if let (Some(pa), Some(pb)) = (&a.process, &b.process) {
            if secs > 0.0 && base.is_some() {
                let d = pb
                    .nonvoluntary_ctxt_switches
                    .saturating_sub(pa.nonvoluntary_ctxt_switches);
                p.nonvoluntary_per_s = Some(d as f64 / secs);
            }
        }
        let net = |s: &Snapshot| s.host.as_ref().and_then(|h| h.network.as_ref()).cloned();
        if let (Some(na), Some(nb)) = (net(a), net(b)) {
            let out = nb.tcp_out_segs.saturating_sub(na.tcp_out_segs);
            let re = nb.tcp_retrans_segs.saturating_sub(na.tcp_retrans_segs);
            if out > 0 {
                p.retrans_share = Some(re as f64 / out as f64);
            }
        }
        if let (Some(ra), Some(rb)) = (&a.raft, &b.raft) {
            p.leader_changes = rb.leader_changes.saturating_sub(ra.leader_changes);
        }
        // PSI over exactly the period, from the stall totals (avg10 lags a change by seconds).
        if base.is_some() && seg_ms > 0 {
            let us = seg_ms as f64 * 1000.0;
            let totals = |s: &Snapshot, pick: fn(&HostStatus) -> Option<&Pressure>| {
                s.host
                    .as_ref()
                    .and_then(pick)
                    .filter(|x| x.available)
                    .map(|x| (x.some_total_us, x.full_total_us))
            };
            let share = |pick: fn(&HostStatus) -> Option<&Pressure>| {
                let (ta, tb) = (totals(a, pick)?, totals(b, pick)?);
                Some((
                    (tb.0.saturating_sub(ta.0) as f64 * 100.0 / us).min(100.0),
                    (tb.1.saturating_sub(ta.1) as f64 * 100.0 / us).min(100.0),
                ))
            };
            if let Some((some, _)) = share(|h| h.psi_cpu.as_ref()) {
                p.psi_cpu_some = Some(some);
            }
            if let Some((some, _)) = share(|h| h.psi_io.as_ref()) {
                p.psi_io_some = Some(some);
            }
            if let Some((some, full)) = share(|h| h.psi_memory.as_ref()) {
                p.psi_memory_some = Some(some);
                p.psi_memory_full = Some(full);
            }
        }
    }
    p
}

fn host_means(
    h: &HostStatus,
    w: f64,
    busy: &mut Mean,
    iowait: &mut Mean,
    steal: &mut Mean,
    load: &mut Mean,
) {
    if let Some(c) = &h.cpu {
        let total =
            c.user_percent + c.system_percent + c.iowait_percent + c.steal_percent + c.idle_percent;
        // An all-zero window (no ticks yet) says nothing.
        if total > 0.0 {
            // iowait is idle time with I/O outstanding: not CPU work. Steal is time the
            // hypervisor gave other guests: not this host's processes' work either (it has
            // its own rule, cpu-steal), so it must not make cpu-saturation blame them.
            busy.add(
                (100.0 - c.idle_percent - c.iowait_percent - c.steal_percent).max(0.0),
                w,
            );
            iowait.add(c.iowait_percent, w);
            steal.add(c.steal_percent, w);
        }
    }
    if h.cores > 0 {
        load.add(h.load1, w);
    }
}

// ---------------------------------------------------------------------------------------------
// Formatting

fn ms(ns: u64) -> String {
    let v = ns as f64 / 1e6;
    if v >= 100.0 {
        format!("{v:.0} ms")
    } else if v >= 1.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.3} ms")
    }
}

/// "wal.fsync p99 23.1 ms (worst window 30.2 ms, p50 20.4 ms, max 41.0 ms, 212 samples)".
fn latency(name: &str, l: &LayerAgg) -> String {
    format!(
        "{name} p99 {} (worst window {}, p50 {}, max {}, {} samples)",
        ms(l.p99),
        ms(l.worst_p99),
        ms(l.p50),
        ms(l.max),
        l.count
    )
}

// ---------------------------------------------------------------------------------------------
// The rules

/// A rule: quiet, or a finding with its evidence.
pub type Rule = fn(&Period) -> Option<Finding>;

/// Every per-member rule, in priority order (causes first; see the module doc).
pub const RULES: &[(&str, Rule)] = &[
    ("member-down", member_down),
    ("no-leader", no_leader),
    ("cpu-saturation", cpu_saturation),
    ("cpu-steal", cpu_steal),
    ("memory-pressure", memory_pressure),
    ("slow-wal-fsync", slow_wal_fsync),
    ("slow-backend-commit", slow_backend_commit),
    ("freelist-fragmentation", freelist_fragmentation),
    ("backend-tx-lock-contention", backend_tx_lock_contention),
    ("treeindex-lock-contention", treeindex_lock_contention),
    ("expensive-requests", expensive_requests),
    ("slow-apply", slow_apply),
    ("too-many-leases", too_many_leases),
    ("too-many-watchers", too_many_watchers),
    ("kernel-settings", kernel_settings),
];

/// The cluster rules' priority comes after the per-member ones.
const CLUSTER_RULES: &[&str] = &["peer-network"];

/// The member did not answer (its stream failed, or it could not be reached at the end).
pub fn member_down(p: &Period) -> Option<Finding> {
    if p.up {
        return None;
    }
    let mut f = p.finding("member-down", Severity::Bottleneck);
    f.summary = "the member does not answer (or gave no usable data)".to_string();
    if let Some(r) = p.down_reason {
        f.evidence.push(r.to_string());
    }
    f.evidence.push(format!(
        "{} snapshots received before it stopped",
        p.snapshots
    ));
    f.recommendation =
        "Check that glassd runs and its client URL is reachable; look at its logs.".to_string();
    Some(f)
}

/// Raft knows no leader at the end of the period: no write can commit.
pub fn no_leader(p: &Period) -> Option<Finding> {
    let raft = p.last?.raft.as_ref()?;
    if !p.up || raft.leader != 0 {
        return None;
    }
    let mut f = p.finding("no-leader", Severity::Bottleneck);
    f.summary = "the member has no raft leader".to_string();
    f.evidence.push(format!(
        "term {}, leader 0, commit index {}",
        raft.term, raft.commit_index
    ));
    f.recommendation =
        "Check that a quorum of members runs and that the peer network works.".to_string();
    Some(f)
}

/// CPU saturation: the host's CPUs are busy AND tasks wait for them (PSI cpu, load per core).
/// Busy alone is a well-used machine; waiting runnable tasks are what delays raft heartbeats
/// and requests. glassd's involuntary context switches and its own CPU share are evidence
/// (they tell whether glassd itself or other processes use the CPUs).
pub fn cpu_saturation(p: &Period) -> Option<Finding> {
    let busy = p.cpu_busy?;
    let cores = f64::from(p.cores.max(1));
    let psi = p.psi_cpu_some.filter(|v| *v >= PSI_CPU_SOME_PCT);
    let load = p.load1.filter(|v| *v >= LOAD_PER_CORE * cores);
    if psi.is_none() && load.is_none() {
        return None;
    }
    // glassd using most of the busy time: the load is glassd's own work.
    let glassd_share = p.process_cpu.map_or(0.0, |c| c / cores / busy.max(1.0));
    let own = glassd_share >= GLASSD_OWN_CPU_SHARE;
    let severity = if busy >= CPU_BUSY_BOTTLENECK_PCT && !own {
        Severity::Bottleneck
    } else if busy >= CPU_BUSY_WARNING_PCT {
        Severity::Warning
    } else {
        return None;
    };
    let mut f = p.finding("cpu-saturation", severity);
    f.summary = format!("the CPUs are saturated ({busy:.0} % busy, tasks waiting for a CPU)");
    f.evidence.push(format!(
        "host CPU busy {busy:.1} % over {} cores (≥ {CPU_BUSY_BOTTLENECK_PCT:.0} % bottleneck, ≥ {CPU_BUSY_WARNING_PCT:.0} % warning)",
        p.cores
    ));
    if let Some(v) = p.psi_cpu_some {
        f.evidence.push(format!(
            "PSI cpu some {v:.1} % of the period (≥ {PSI_CPU_SOME_PCT:.0} %)"
        ));
    }
    if let Some(v) = p.load1 {
        f.evidence.push(format!(
            "load1 {v:.2} = {:.2} per core (≥ {LOAD_PER_CORE})",
            v / cores
        ));
    }
    if let Some(c) = p.process_cpu {
        f.evidence.push(format!(
            "glassd CPU {c:.0} % of one core = {:.0} % of the busy time (≥ {:.0} %: its own work)",
            glassd_share * 100.0,
            GLASSD_OWN_CPU_SHARE * 100.0
        ));
    }
    // Summed over glassd's threads; zero (no baseline, or threads gone) says nothing.
    if let Some(n) = p.nonvoluntary_per_s.filter(|n| *n > 0.0) {
        f.evidence.push(format!(
            "glassd involuntary context switches {n:.0}/s (all threads)"
        ));
    }
    f.recommendation = if own {
        "glassd itself uses the CPUs: look at its expensive requests and request rate, or give \
         the member more cores."
            .to_string()
    } else {
        "Other processes compete with glassd for the CPUs: move them off the member's host, or \
         reserve cores for glassd (cgroup cpu weight/cpuset, nice)."
            .to_string()
    };
    Some(f)
}

/// CPU steal: the hypervisor runs other guests on this VM's CPUs.
pub fn cpu_steal(p: &Period) -> Option<Finding> {
    let steal = p.cpu_steal?;
    let severity = if steal >= STEAL_BOTTLENECK_PCT {
        Severity::Bottleneck
    } else if steal >= STEAL_WARNING_PCT {
        Severity::Warning
    } else {
        return None;
    };
    let mut f = p.finding("cpu-steal", severity);
    f.summary = format!("the hypervisor steals {steal:.0} % of the CPU time");
    f.evidence.push(format!(
        "host CPU steal {steal:.1} % (≥ {STEAL_BOTTLENECK_PCT:.0} % bottleneck, ≥ {STEAL_WARNING_PCT:.0} % warning)"
    ));
    f.recommendation =
        "Move the member to dedicated (not burstable or overcommitted) instances.".to_string();
    Some(f)
}

/// Memory pressure or swapping: etcd's guidance is no swap at all (a swapped-out page in the
/// apply path is a disk read).
pub fn memory_pressure(p: &Period) -> Option<Finding> {
    let swap = p.swap_pages_per_s.filter(|v| *v >= SWAP_PAGES_PER_S);
    let full = p.psi_memory_full.filter(|v| *v >= PSI_MEMORY_FULL_PCT);
    let some = p.psi_memory_some.filter(|v| *v >= PSI_MEMORY_SOME_PCT);
    let mem = p
        .last
        .and_then(|s| s.host.as_ref())
        .and_then(|h| h.memory.as_ref());
    let avail_pct = mem
        .filter(|m| m.total > 0)
        .map(|m| m.available as f64 * 100.0 / m.total as f64);
    let low = avail_pct.filter(|v| *v < MEMORY_AVAILABLE_MIN_PCT);
    let severity = if swap.is_some() || full.is_some() {
        Severity::Bottleneck
    } else if some.is_some() || low.is_some() {
        Severity::Warning
    } else {
        return None;
    };
    let mut f = p.finding("memory-pressure", severity);
    f.summary = if swap.is_some() {
        "the host is swapping".to_string()
    } else {
        "the host is short of memory".to_string()
    };
    if let Some(v) = p.swap_pages_per_s {
        f.evidence.push(format!(
            "swap in+out {v:.0} pages/s (≥ {SWAP_PAGES_PER_S:.0})"
        ));
    }
    if let (Some(s), Some(fu)) = (p.psi_memory_some, p.psi_memory_full) {
        f.evidence.push(format!(
            "PSI memory some {s:.1} % (≥ {PSI_MEMORY_SOME_PCT:.0} %), full {fu:.1} % (≥ {PSI_MEMORY_FULL_PCT:.0} %)"
        ));
    }
    if let Some(v) = avail_pct {
        f.evidence.push(format!(
            "memory available {v:.1} % (< {MEMORY_AVAILABLE_MIN_PCT:.0} %)"
        ));
    }
    if let Some(rss) = p.last.and_then(|s| s.process.as_ref()).map(|x| x.rss_bytes) {
        f.evidence
            .push(format!("glassd RSS {} MiB", rss / (1024 * 1024)));
    }
    f.recommendation = "Give the host more memory or move other processes away; disable swap \
                        (or set vm.swappiness low) on etcd members."
        .to_string();
    Some(f)
}

/// Slow WAL fsync (etcd: p99 < 10 ms): every write waits for it before it commits.
pub fn slow_wal_fsync(p: &Period) -> Option<Finding> {
    let l = p.layer("wal.fsync", MIN_LATENCY_SAMPLES)?;
    if l.p99 < WAL_FSYNC_P99_NS {
        return None;
    }
    let mut f = p.finding("slow-wal-fsync", Severity::Bottleneck);
    f.layer = Some("wal.fsync");
    f.summary = format!("WAL fsync is slow (p99 {})", ms(l.p99));
    f.evidence.push(format!(
        "{} ≥ {} (etcd's guidance)",
        latency("wal.fsync", &l),
        ms(WAL_FSYNC_P99_NS)
    ));
    f.evidence.extend(p.disk_evidence("wal"));
    f.recommendation = "Put the WAL on a faster, dedicated disk (SSD/NVMe, --wal-dir), keep \
                        other writers off it, and check the device's write cache."
        .to_string();
    Some(f)
}

/// Slow backend commit (etcd: p99 < 25 ms); the commit's own fsync share says whether the disk
/// or the amount written is to blame.
pub fn slow_backend_commit(p: &Period) -> Option<Finding> {
    let l = p.layer("backend.commit", MIN_COMMIT_SAMPLES)?;
    if l.p99 < BACKEND_COMMIT_P99_NS {
        return None;
    }
    let mut f = p.finding("slow-backend-commit", Severity::Bottleneck);
    f.layer = Some("backend.commit");
    f.summary = format!("backend commits are slow (p99 {})", ms(l.p99));
    f.evidence.push(format!(
        "{} ≥ {} (etcd's guidance)",
        latency("backend.commit", &l),
        ms(BACKEND_COMMIT_P99_NS)
    ));
    let fsync = p.layer("backend.commit_fsync", 1);
    if let Some(fs) = fsync {
        f.evidence.push(latency("backend.commit_fsync", &fs));
    }
    if let Some(pages) = p.layer("backend.commit_pages", 1) {
        f.evidence
            .push(format!("backend.commit_pages p99 {} pages", pages.p99));
    }
    f.evidence.extend(p.disk_evidence("data"));
    let disk_bound = fsync.is_some_and(|fs| fs.p99 * 2 >= l.p99);
    f.recommendation = if disk_bound {
        "The commit's fsync dominates: put the data dir on a faster disk (SSD/NVMe) and keep \
         other writers off it."
            .to_string()
    } else {
        "The commit writes a lot: look for large transactions or values, and check the \
         freelist (map freelist, defragment)."
            .to_string()
    };
    Some(f)
}

/// Array freelist fragmentation: bbolt's array freelist looks for a run by walking its sorted
/// free ids (O(free pages) per allocation, a miss walks them all); after deletes and a
/// compaction it holds thousands of small holes between live pages, and every allocation that
/// none fits (a multi-page leaf or value) walks them all in the commit path, then grows the
/// file. Judged on the shape of the free set (many runs) and on what allocations cost: on the
/// machine the thresholds were taken on, the map freelist's p99 was 7–15 µs, an array walking
/// 10 000 holes 40–80 µs.
pub fn freelist_fragmentation(p: &Period) -> Option<Finding> {
    let b = p.last?.backend.as_ref()?;
    if b.freelist_type != "array" {
        return None;
    }
    let fragmented = b.free_runs >= FREELIST_MANY_RUNS;
    let alloc = p.layer("freelist.allocate", MIN_FREELIST_SAMPLES);
    let slow = alloc.is_some_and(|l| {
        l.p99 >= FREELIST_ALLOCATE_SLOW_NS || (fragmented && l.p99 >= FREELIST_ALLOCATE_SCAN_NS)
    });
    let severity = if slow {
        Severity::Bottleneck
    } else if fragmented {
        Severity::Warning
    } else {
        return None;
    };
    let mut f = p.finding("freelist-fragmentation", severity);
    f.layer = Some("freelist.allocate");
    f.summary = format!(
        "the array freelist is fragmented ({} free pages in {} runs, longest {})",
        b.free_pages, b.free_runs, b.longest_free_run
    );
    if let Some(l) = p.layer("freelist.allocate", 1) {
        f.evidence.push(format!(
            "{} (≥ {} with ≥ {FREELIST_MANY_RUNS} runs, or ≥ {}: bottleneck)",
            latency("freelist.allocate", &l),
            ms(FREELIST_ALLOCATE_SCAN_NS),
            ms(FREELIST_ALLOCATE_SLOW_NS)
        ));
    }
    f.evidence.push(format!(
        "array freelist: {} free pages in {} runs (≥ {FREELIST_MANY_RUNS}: fragmented), {:.1} pages per run, longest run {} pages",
        b.free_pages,
        b.free_runs,
        b.free_pages as f64 / b.free_runs.max(1) as f64,
        b.longest_free_run
    ));
    if let Some(pages) = p.layer("backend.commit_pages", 1) {
        f.evidence
            .push(format!("commits write up to {} pages (p99)", pages.p99));
    }
    f.evidence.push(format!(
        "db size {} MiB, in use {} MiB",
        b.db_size / (1024 * 1024),
        b.db_size_in_use / (1024 * 1024)
    ));
    f.recommendation = "Switch to the map freelist (`glass flags set backend-bbolt-freelist-type map`, \
                        or the flag at start) and defragment the member to give the free pages back."
        .to_string();
    Some(f)
}

/// Backend batch tx lock contention: writers (applies, commits, compaction batches) wait for
/// the one write transaction; long write txns or commits hold it.
pub fn backend_tx_lock_contention(p: &Period) -> Option<Finding> {
    let (name, l) = ["backend.tx_lock_wait", "bolt.rw_lock_wait"]
        .into_iter()
        .filter_map(|n| p.layer(n, MIN_LATENCY_SAMPLES).map(|l| (n, l)))
        .max_by_key(|(_, l)| l.p99)?;
    let severity = if l.p99 >= TX_LOCK_WAIT_BOTTLENECK_NS {
        Severity::Bottleneck
    } else if l.p99 >= TX_LOCK_WAIT_WARNING_NS {
        Severity::Warning
    } else {
        return None;
    };
    let mut f = p.finding("backend-tx-lock-contention", severity);
    f.layer = Some(name);
    f.summary = format!(
        "writers wait for the backend transaction lock (p99 {})",
        ms(l.p99)
    );
    f.evidence.push(format!(
        "{} (≥ {} bottleneck, ≥ {} warning)",
        latency(name, &l),
        ms(TX_LOCK_WAIT_BOTTLENECK_NS),
        ms(TX_LOCK_WAIT_WARNING_NS)
    ));
    for holder in ["mvcc.txn", "backend.commit", "mvcc.compaction_pause"] {
        if let Some(h) = p.layer(holder, 1) {
            f.evidence.push(format!("holder {}", latency(holder, &h)));
        }
    }
    f.recommendation = "Shorten what holds the backend transaction: large txns and ranges \
                        inside txns, big compaction batches, slow commits (disk)."
        .to_string();
    Some(f)
}

/// treeIndex lock contention: the key index is one lock; a large range holds it (read) while
/// it walks the keys, and every put waits (write). Judged on the wait's p99 against an absolute
/// floor and against the time of the path that waits: the apply of an entry (the one applier
/// serializes every write, so its waits throttle them all), or the request (`api.unary`) when
/// nothing was applied. A microsecond wait on microsecond applies is not contention.
pub fn treeindex_lock_contention(p: &Period) -> Option<Finding> {
    let l = p.layer("mvcc.treeindex_lock_wait", MIN_TREEINDEX_SAMPLES)?;
    let (path, reference) = match p.layer("etcdserver.apply", MIN_LATENCY_SAMPLES) {
        Some(a) => ("etcdserver.apply", a.p99),
        None => ("api.unary", p.layer("api.unary", 1).map_or(0, |r| r.p99)),
    };
    let share = |w: u64| reference == 0 || w as f64 >= TREEINDEX_SHARE_OF_PATH * reference as f64;
    let severity = if l.p99 >= TREEINDEX_WAIT_P99_NS && share(l.p99) {
        Severity::Bottleneck
    } else if l.max >= TREEINDEX_WAIT_MAX_NS && share(l.max) {
        Severity::Warning
    } else {
        return None;
    };
    let mut f = p.finding("treeindex-lock-contention", severity);
    f.layer = Some("mvcc.treeindex_lock_wait");
    f.summary = format!(
        "writes wait for the key index (treeIndex) lock (p99 {}, max {})",
        ms(l.p99),
        ms(l.max)
    );
    f.evidence.push(format!(
        "{} (p99 ≥ {} bottleneck, max ≥ {} warning)",
        latency("mvcc.treeindex_lock_wait", &l),
        ms(TREEINDEX_WAIT_P99_NS),
        ms(TREEINDEX_WAIT_MAX_NS)
    ));
    if reference > 0 {
        f.evidence.push(format!(
            "{path} p99 {}: the wait is ≥ {:.0} % of it",
            ms(reference),
            TREEINDEX_SHARE_OF_PATH * 100.0
        ));
    }
    if let Some(h) = p.layer("mvcc.treeindex_lock_hold", 1) {
        f.evidence
            .push(format!("held: {}", latency("mvcc.treeindex_lock_hold", &h)));
    }
    if let Some(r) = p.layer("mvcc.range", 1) {
        f.evidence.push(latency("mvcc.range", &r));
    }
    f.recommendation = "Large ranges hold the key index while writes wait: paginate them \
                        (limit), use keys-only or count-only, or serve them from a follower."
        .to_string();
    Some(f)
}

/// A value of `key=` in a slow request's summary ("keys=5000 count=5000").
fn summary_value(summary: &str, key: &str) -> Option<i64> {
    summary
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

/// Expensive requests: ranges that take long (mvcc.range), and slow requests that return many
/// keys or carry big values.
pub fn expensive_requests(p: &Period) -> Option<Finding> {
    let range = p.layer("mvcc.range", MIN_LATENCY_SAMPLES);
    let large: Vec<&SlowRequest> = p
        .slow_requests
        .iter()
        .filter(|r| {
            summary_value(&r.summary, "keys").is_some_and(|k| k >= LARGE_RANGE_KEYS)
                || summary_value(&r.summary, "value_bytes").is_some_and(|v| v >= BIG_VALUE_BYTES)
        })
        .collect();
    let p99 = range.map_or(0, |r| r.p99);
    let severity = if p99 >= RANGE_P99_BOTTLENECK_NS {
        Severity::Bottleneck
    } else if p99 >= RANGE_P99_WARNING_NS || large.len() >= MIN_LARGE_SLOW_REQUESTS {
        Severity::Warning
    } else {
        return None;
    };
    let mut f = p.finding("expensive-requests", severity);
    f.layer = Some("mvcc.range");
    f.summary = if large.len() >= MIN_LARGE_SLOW_REQUESTS {
        format!(
            "{} slow requests read many keys or write big values",
            large.len()
        )
    } else {
        format!("range reads are expensive (p99 {})", ms(p99))
    };
    if let Some(r) = range {
        f.evidence.push(format!(
            "{} (≥ {} bottleneck, ≥ {} warning)",
            latency("mvcc.range", &r),
            ms(RANGE_P99_BOTTLENECK_NS),
            ms(RANGE_P99_WARNING_NS)
        ));
    }
    for r in large.iter().take(3) {
        f.evidence.push(format!(
            "slow {} {} took {} (≥ {LARGE_RANGE_KEYS} keys or ≥ {} KiB values is large)",
            r.method,
            r.summary,
            ms(r.duration_ns),
            BIG_VALUE_BYTES / 1024
        ));
    }
    f.recommendation = "Paginate large ranges (limit), ask for keys-only or count-only where \
                        values are not needed, keep values small (etcd: well under 1.5 MiB)."
        .to_string();
    Some(f)
}

/// Slow apply (etcd warns from 100 ms): the state machine falls behind raft. A symptom: the
/// rules above name its usual causes.
pub fn slow_apply(p: &Period) -> Option<Finding> {
    let l = p.layer("etcdserver.apply", MIN_LATENCY_SAMPLES)?;
    if l.p99 < APPLY_P99_NS {
        return None;
    }
    let mut f = p.finding("slow-apply", Severity::Bottleneck);
    f.layer = Some("etcdserver.apply");
    f.summary = format!("applying entries is slow (p99 {})", ms(l.p99));
    f.evidence.push(format!(
        "{} ≥ {} (etcd: \"apply request took too long\")",
        latency("etcdserver.apply", &l),
        ms(APPLY_P99_NS)
    ));
    for sub in ["mvcc.txn", "backend.tx_lock_wait", "mvcc.put", "mvcc.range"] {
        if let Some(s) = p.layer(sub, 1) {
            f.evidence.push(latency(sub, &s));
        }
    }
    f.recommendation = "Look at what the applies do: expensive txns and ranges, lock waits, slow \
                        commits (the findings above name the cause when one is measured)."
        .to_string();
    Some(f)
}

/// Too many leases. Waits for the lease layer: Glass does not serve leases yet, so there is no
/// measurement to judge and the rule never fires (no invented data).
pub fn too_many_leases(_p: &Period) -> Option<Finding> {
    None
}

/// Too many watchers. Waits for the watch layer (same as [`too_many_leases`]).
pub fn too_many_watchers(_p: &Period) -> Option<Finding> {
    None
}

/// Kernel settings that differ from etcd's tuning guidance. Advice only ([`Severity::Info`]):
/// most machines run the defaults and are fine.
pub fn kernel_settings(p: &Period) -> Option<Finding> {
    let h = p.last?.host.as_ref()?;
    let mut ev = Vec::new();
    if let Some(k) = &h.kernel {
        if k.vm_swappiness > SWAPPINESS_MAX {
            ev.push(format!(
                "vm.swappiness {} (> {SWAPPINESS_MAX}: the kernel swaps etcd's pages early)",
                k.vm_swappiness
            ));
        }
        if k.transparent_hugepages == "always" {
            ev.push(
                "transparent hugepages: always (madvise or never avoids compaction stalls)"
                    .to_string(),
            );
        }
        if k.cpu_governor == "powersave" {
            ev.push("CPU governor: powersave (performance keeps latency low)".to_string());
        }
    }
    for d in &h.disks {
        if d.rotational && d.roles.iter().any(|r| r == "wal" || r == "data") {
            ev.push(format!(
                "{} ({}) is a rotational disk (etcd recommends SSDs)",
                d.device,
                d.roles.join("+")
            ));
        }
    }
    if ev.is_empty() {
        return None;
    }
    let mut f = p.finding("kernel-settings", Severity::Info);
    f.summary = format!("{} host settings differ from etcd's tuning guide", ev.len());
    f.evidence = ev;
    f.recommendation = "Advice, not a fault: tune these on dedicated etcd hosts.".to_string();
    Some(f)
}

/// Peer network, across members: only a cluster has peers. Retransmits are the host's (every
/// connection), so they are evidence, judged with leader changes.
pub fn peer_network(members: &[Period]) -> Vec<Finding> {
    if members.len() < 2 {
        return Vec::new();
    }
    members
        .iter()
        .filter(|p| p.up)
        .filter_map(|p| {
            let re = p.retrans_share.filter(|r| *r >= RETRANS_SHARE);
            if re.is_none() && p.leader_changes == 0 {
                return None;
            }
            let mut f = p.finding("peer-network", Severity::Warning);
            f.summary = "the peer network loses packets or leaders change".to_string();
            if let Some(r) = p.retrans_share {
                f.evidence.push(format!(
                    "TCP retransmits {:.2} % of segments sent (≥ {:.0} %)",
                    r * 100.0,
                    RETRANS_SHARE * 100.0
                ));
            }
            f.evidence.push(format!(
                "{} leader changes during the period",
                p.leader_changes
            ));
            f.recommendation = "Check the network between members (latency, loss), and raise \
                                --heartbeat-interval/--election-timeout for slow links."
                .to_string();
            Some(f)
        })
        .collect()
}

/// The position of a rule in priority order.
fn priority(rule: &str) -> usize {
    RULES
        .iter()
        .map(|(id, _)| *id)
        .chain(CLUSTER_RULES.iter().copied())
        .position(|id| id == rule)
        .unwrap_or(usize::MAX)
}

/// Whether `r` started within the period `snapshots` cover (on the member's own clock, so no
/// skew with ours): the slow requests the rules read, in `glass doctor` and `glass top` alike.
pub fn started_in_period(snapshots: &[Snapshot], r: &SlowRequest) -> bool {
    snapshots.first().is_some_and(|s| r.unix_ms >= s.unix_ms)
}

/// Runs every rule over every member.
pub fn diagnose(members: &[MemberSamples]) -> Verdict {
    let periods: Vec<Period> = members.iter().map(period).collect();
    let mut findings: Vec<Finding> = Vec::new();
    for p in &periods {
        if !p.up {
            // A member that did not answer: nothing else can be judged about it.
            findings.extend(member_down(p));
            continue;
        }
        findings.extend(RULES.iter().filter_map(|(_, rule)| rule(p)));
    }
    findings.extend(peer_network(&periods));
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| priority(a.rule).cmp(&priority(b.rule)))
    });
    let severity = findings
        .iter()
        .map(|f| f.severity)
        .filter(|s| *s > Severity::Info)
        .max()
        .unwrap_or(Severity::Healthy);
    let headline = match findings.first().filter(|f| f.severity > Severity::Info) {
        Some(f) => format!("{}: {} on {}", f.severity.as_str(), f.summary, f.member),
        None if members.is_empty() => "no member sampled".to_string(),
        None => "healthy".to_string(),
    };
    Verdict {
        severity,
        headline,
        findings,
    }
}

#[cfg(test)]
mod tests;
