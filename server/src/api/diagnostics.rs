//! `glass.v1.Diagnostics` (Glass's own service, `proto/glass/v1/diagnostics.proto`): the
//! measurement snapshots stream, the slow-request ring, and the runtime flags.
//!
//! `Watch`: each stream has its own [`Collector`], which keeps the previous snapshot's
//! histogram copies and counters, so every stream's windows are its own (two dashboards with
//! different intervals do not disturb each other). A task per stream sends a snapshot every
//! interval (at least [`MIN_INTERVAL`]) into a channel of one: a client that does not read
//! holds up only its own task, which ends when the client goes away.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use telemetry::{HistogramSnapshot, Metrics};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::observe;
use crate::config::FlagInfo;
use crate::etcdserver::EtcdServer;
use crate::flags::RuntimeFlags;
use crate::pb::glass::v1::diagnostics_server::Diagnostics;
use crate::pb::glass::v1::{
    BackendStatus, CpuWindow, Disk, Flag, FlagChange, GetFlagsRequest, GetFlagsResponse,
    HostStatus, KernelSettings, LayerTiming, LayerWindow, Memory, MethodWindow, MvccStatus,
    Network, Pressure, ProcessStatus, RaftStatus, RecentSlowRequestsRequest,
    RecentSlowRequestsResponse, SetFlagRequest, SetFlagResponse, SlowRequest, Snapshot,
    WatchRequest,
};

/// The shortest interval a stream may ask for.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// The interval when a stream asks for 0.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// Each histogram's window since `prev` (since the start when `prev` is empty); `prev` becomes
/// the histograms' state now.
fn windows<'a>(
    hs: impl Iterator<Item = &'a telemetry::Histogram>,
    prev: &mut Vec<HistogramSnapshot>,
) -> Vec<HistogramSnapshot> {
    let now: Vec<HistogramSnapshot> = hs.map(|h| h.snapshot()).collect();
    let windows = now
        .iter()
        .enumerate()
        .map(|(i, snap)| match prev.get(i) {
            Some(p) => snap.since(p),
            None => snap.clone(),
        })
        .collect();
    *prev = now;
    windows
}

/// One stream's memory of its previous snapshot.
pub struct Collector {
    server: Arc<EtcdServer>,
    flags: Arc<RuntimeFlags>,
    /// The last runtime flag change this stream has shown.
    flag_seq: u64,
    host: telemetry::HostSampler,
    histograms: Vec<HistogramSnapshot>,
    grpc: BTreeMap<(&'static str, i32), u64>,
    /// The per-KV-method latency histograms at the previous snapshot.
    kv_latency: Vec<HistogramSnapshot>,
    at: Option<Instant>,
}

impl Collector {
    pub fn new(server: Arc<EtcdServer>, flags: Arc<RuntimeFlags>) -> Self {
        Collector {
            host: telemetry::HostSampler::new(&server.dirs()),
            server,
            flags,
            flag_seq: 0,
            histograms: Vec::new(),
            grpc: BTreeMap::new(),
            kv_latency: Vec::new(),
            at: None,
        }
    }

    /// The next snapshot; its windows cover the time since the previous one (since the
    /// process started for the first).
    pub fn next(&mut self) -> Snapshot {
        let now = Instant::now();
        let window_ms = self.at.map_or(0, |t| {
            u64::try_from(now.duration_since(t).as_millis()).unwrap_or(u64::MAX)
        });
        self.at = Some(now);
        let s = &self.server;
        let m: &Metrics = s.metrics();
        let unix_ms = crate::flags::unix_ms();

        let hs = m.histograms();
        let layer_windows = windows(hs.iter().map(|(_, h)| *h), &mut self.histograms);
        let mut layers = Vec::with_capacity(hs.len());
        for ((measurement, _), w) in hs.iter().zip(layer_windows) {
            layers.push(LayerWindow {
                name: measurement.name.to_string(),
                unit: measurement.unit.as_str().to_string(),
                count: w.count,
                p50: w.quantile(0.5),
                p90: w.quantile(0.9),
                p99: w.quantile(0.99),
                // The top of the window's highest bucket, capped at the largest value seen.
                max: w.quantile(1.0),
                sum: w.sum,
            });
        }

        let grpc: BTreeMap<(&'static str, i32), u64> = m
            .grpc_handled
            .snapshot()
            .into_iter()
            .map(|(meth, code, n)| ((meth, code), n))
            .collect();
        let mut methods: BTreeMap<&'static str, MethodWindow> = BTreeMap::new();
        for (&(meth, code), &n) in &grpc {
            let d = n.saturating_sub(self.grpc.get(&(meth, code)).copied().unwrap_or(0));
            let w = methods.entry(meth).or_insert_with(|| MethodWindow {
                method: meth.to_string(),
                ..MethodWindow::default()
            });
            w.count += d;
            if code != 0 {
                w.errors += d;
            }
        }
        self.grpc = grpc;
        let kv = windows(m.kv_latency.iter().map(|(_, h)| h), &mut self.kv_latency);
        for ((meth, _), w) in m.kv_latency.iter().zip(kv) {
            // Measured in this window (a request counted here may have its latency recorded
            // in the next one, and `--glass-measurements=off` records none).
            if let (Some(mw), true) = (methods.get_mut(meth), w.count > 0) {
                mw.latency_measured = true;
                mw.p50 = w.quantile(0.5);
                mw.p99 = w.quantile(0.99);
                mw.max = w.quantile(1.0);
            }
        }

        let hs = self.host.sample_at(now);
        // The first snapshot shows every change still kept (the last 256).
        let (changes, seq) = self.flags.changes_since(self.flag_seq);
        self.flag_seq = seq;
        let flag_changes = changes
            .into_iter()
            .map(|c| FlagChange {
                name: c.name.to_string(),
                old_value: c.old_value,
                new_value: c.new_value,
                unix_ms: c.unix_ms,
                persisted: c.persisted,
            })
            .collect();
        let st = s.raft().status();
        let kv = s.kv();
        let be = kv.backend();
        let db = be.stats();
        Snapshot {
            member_id: s.id(),
            cluster_id: s.cluster_id(),
            name: s.name().to_string(),
            unix_ms,
            window_ms,
            layers,
            raft: Some(RaftStatus {
                term: st.term,
                leader: st.leader,
                is_leader: st.leader != 0 && st.leader == st.id,
                commit_index: st.commit,
                applied_index: st.applied,
                proposals_pending: m.raft_proposals_pending.get(),
                proposals_failed: m.raft_proposals_failed.get(),
                leader_changes: m.raft_leader_changes.get(),
                snapshot_index: st.snapshot_index,
            }),
            backend: Some(BackendStatus {
                db_size: be.size(),
                db_size_in_use: be.size_in_use(),
                page_size: u64::from(db.page_size),
                free_pages: db.free_pages,
                free_runs: db.free_runs,
                longest_free_run: db.longest_free_run,
                freelist_type: db.freelist_type.to_string(),
                commits: m.backend_commits.get(),
                commit_bytes: m.backend_commit_bytes.get(),
                pending_writes: u64::try_from(m.backend_pending_writes.get()).unwrap_or(0),
                quota_bytes: s.quota().bytes().unwrap_or(0),
                alarms: s
                    .alarms()
                    .iter()
                    .map(|a| {
                        crate::pb::etcdserverpb::AlarmType::try_from(a.alarm)
                            .map_or("UNKNOWN", |t| t.as_str_name())
                            .to_string()
                    })
                    .collect(),
            }),
            mvcc: Some(MvccStatus {
                keys: m.mvcc_keys.get(),
                current_revision: kv.current_revision(),
                compact_revision: kv.compacted_revision(),
                index_keys: kv.index_len() as u64,
            }),
            process: Some(process(&hs.process)),
            host: Some(host(&hs.host)),
            flag_changes,
            methods: methods.into_values().collect(),
            spans_dropped: m.spans_dropped.get(),
            slow_requests: m.slow_requests.get(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DiagnosticsService {
    server: Arc<EtcdServer>,
    /// The settings in force; GetFlags and SetFlag delegate to it.
    flags: Arc<RuntimeFlags>,
    /// True once the member is stopping: every Watch stream ends, so that the server's
    /// graceful shutdown (which waits for the responses in flight) can finish.
    stop: tokio::sync::watch::Receiver<bool>,
}

impl DiagnosticsService {
    pub fn new(
        server: Arc<EtcdServer>,
        flags: Arc<RuntimeFlags>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        DiagnosticsService {
            server,
            flags,
            stop,
        }
    }
}

/// A registry entry on the wire (source: "default", "flag", "env", "file", "runtime",
/// "persisted").
fn flag_pb(f: FlagInfo) -> Flag {
    Flag {
        name: f.name.to_string(),
        value: f.value,
        default_value: f.default.to_string(),
        source: f.source.as_str().to_string(),
        runtime: f.runtime,
        description: f.description.to_string(),
        aliases: f.aliases.iter().map(|a| a.to_string()).collect(),
    }
}

fn process(p: &telemetry::host::Process) -> ProcessStatus {
    ProcessStatus {
        pid: p.pid,
        cpu_percent: p.cpu_percent,
        cpu_user_seconds: p.cpu_user_seconds,
        cpu_system_seconds: p.cpu_system_seconds,
        rss_bytes: p.rss_bytes,
        threads: p.threads,
        open_fds: p.open_fds,
        voluntary_ctxt_switches: p.voluntary_ctxt_switches,
        nonvoluntary_ctxt_switches: p.nonvoluntary_ctxt_switches,
        uptime_seconds: p.uptime_seconds,
    }
}

fn cpu(c: &telemetry::host::CpuWindow) -> CpuWindow {
    CpuWindow {
        name: c.name.clone(),
        user_percent: c.user_percent,
        system_percent: c.system_percent,
        iowait_percent: c.iowait_percent,
        steal_percent: c.steal_percent,
        idle_percent: c.idle_percent,
    }
}

fn pressure(p: &telemetry::host::Pressure) -> Pressure {
    Pressure {
        available: p.available,
        some_avg10: p.some_avg10,
        some_avg60: p.some_avg60,
        full_avg10: p.full_avg10,
        full_avg60: p.full_avg60,
        some_total_us: p.some_total_us,
        full_total_us: p.full_total_us,
    }
}

fn host(h: &telemetry::host::Host) -> HostStatus {
    let m = &h.memory;
    let n = &h.network;
    let k = &h.kernel;
    HostStatus {
        hostname: h.hostname.clone(),
        cores: h.cores,
        cpu: Some(cpu(&h.cpu)),
        per_core: h.per_core.iter().map(cpu).collect(),
        load1: h.load1,
        load5: h.load5,
        load15: h.load15,
        psi_cpu: Some(pressure(&h.psi_cpu)),
        psi_io: Some(pressure(&h.psi_io)),
        psi_memory: Some(pressure(&h.psi_memory)),
        memory: Some(Memory {
            total: m.total,
            available: m.available,
            dirty: m.dirty,
            writeback: m.writeback,
            swap_total: m.swap_total,
            swap_free: m.swap_free,
            swap_in_per_s: m.swap_in_per_s,
            swap_out_per_s: m.swap_out_per_s,
        }),
        disks: h
            .disks
            .iter()
            .map(|d| Disk {
                device: d.device.clone(),
                roles: d.roles.clone(),
                read_iops: d.read_iops,
                write_iops: d.write_iops,
                read_bytes_per_s: d.read_bytes_per_s,
                write_bytes_per_s: d.write_bytes_per_s,
                read_await_ms: d.read_await_ms,
                write_await_ms: d.write_await_ms,
                util_percent: d.util_percent,
                in_flight: d.in_flight,
                scheduler: d.scheduler.clone(),
                rotational: d.rotational,
                write_cache: d.write_cache.clone(),
            })
            .collect(),
        network: Some(Network {
            tcp_retrans_segs: n.tcp_retrans_segs,
            tcp_out_segs: n.tcp_out_segs,
            retrans_per_s: n.retrans_per_s,
            rx_errors: n.rx_errors,
            tx_errors: n.tx_errors,
            rx_drops: n.rx_drops,
            tx_drops: n.tx_drops,
        }),
        kernel: Some(KernelSettings {
            vm_dirty_ratio: k.vm_dirty_ratio,
            vm_dirty_background_ratio: k.vm_dirty_background_ratio,
            vm_dirty_expire_centisecs: k.vm_dirty_expire_centisecs,
            vm_dirty_writeback_centisecs: k.vm_dirty_writeback_centisecs,
            vm_swappiness: k.vm_swappiness,
            transparent_hugepages: k.transparent_hugepages.clone(),
            cpu_governor: k.cpu_governor.clone(),
            net_core_somaxconn: k.net_core_somaxconn,
        }),
    }
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<Snapshot, Status>> + Send>>;

#[tonic::async_trait]
impl Diagnostics for DiagnosticsService {
    type WatchStream = SnapshotStream;

    async fn watch(
        &self,
        req: Request<WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let interval = match req.into_inner().interval_ms {
            0 => DEFAULT_INTERVAL,
            ms => Duration::from_millis(ms).max(MIN_INTERVAL),
        };
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let mut collector = Collector::new(self.server.clone(), self.flags.clone());
        let mut stop = self.stop.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    // The member is stopping (or gone): the stream ends (OK) with the task.
                    _ = stop.wait_for(|s| *s) => return,
                }
                // ~20 procfs/sysfs reads per snapshot: a blocking section, as local reads are.
                let snapshot = crate::etcdserver::read_locally(|| collector.next());
                if tx.send(Ok(snapshot)).await.is_err() {
                    // The client went away.
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn recent_slow_requests(
        &self,
        req: Request<RecentSlowRequestsRequest>,
    ) -> Result<Response<RecentSlowRequestsResponse>, Status> {
        let limit = usize::try_from(req.into_inner().limit).unwrap_or(usize::MAX);
        let requests = self
            .server
            .tracer()
            .slow()
            .recent(limit)
            .into_iter()
            .map(|r| SlowRequest {
                method: r.method.to_string(),
                unix_ms: r.unix_ms,
                duration_ns: r.duration_ns,
                code: r.code_name().to_string(),
                trace_id: r.trace_id_hex(),
                summary: r.summary.clone(),
                layers: r
                    .layers
                    .iter()
                    .map(|l| LayerTiming {
                        layer: l.name.to_string(),
                        start_offset_ns: l.start_offset_ns,
                        duration_ns: l.duration_ns,
                    })
                    .collect(),
            })
            .collect();
        Ok(Response::new(RecentSlowRequestsResponse { requests }))
    }

    async fn get_flags(
        &self,
        _: Request<GetFlagsRequest>,
    ) -> Result<Response<GetFlagsResponse>, Status> {
        observe(&self.server, "glass.v1.Diagnostics/GetFlags", async {
            Ok(GetFlagsResponse {
                flags: self.flags.get_all().into_iter().map(flag_pb).collect(),
            })
        })
        .await
    }

    async fn set_flag(
        &self,
        req: Request<SetFlagRequest>,
    ) -> Result<Response<SetFlagResponse>, Status> {
        let r = req.into_inner();
        let flags = self.flags.clone();
        observe(&self.server, "glass.v1.Diagnostics/SetFlag", async move {
            // Persisting fsyncs a file: off the async workers.
            let (flag, old_value) =
                tokio::task::spawn_blocking(move || flags.set(&r.name, &r.value, r.persist))
                    .await
                    .map_err(|e| Status::internal(e.to_string()))??;
            Ok(SetFlagResponse {
                flag: Some(flag_pb(flag)),
                old_value,
            })
        })
        .await
    }
}
