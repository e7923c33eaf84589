//! [`EtcdServer`] (etcd's `etcdserver.EtcdServer`, `v3_server.go`): opens a member's data
//! directory, runs the raft node and the applier, and serves the KV requests — writes as
//! `InternalRaftRequest` proposals whose callers wait for the applier's result, reads locally
//! (serializable) or after raft's read index (linearizable).
//!
//! Files, as etcd lays them out:
//! ```text
//! <data-dir>/member/wal/%016x-%016x.wal   the WAL (or --wal-dir)
//! <data-dir>/member/snap/%016x-%016x.snap raft snapshots
//! <data-dir>/member/snap/db               the backend (bbolt format)
//! ```
//!
//! Threads: the raft thread (the Ready loop, WAL fsyncs), the applier thread (one write txn
//! per entry), the backend's commit thread, the store's compactor thread. The async callers
//! (the gRPC services) only wait on channels, never on a lock held across I/O.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message;
use telemetry::{names, Metrics, Timer, TraceControl, Tracer};
use tracing::{debug_span, error, info, Instrument};

use super::alarm::Alarms;
use super::apply::{self, Applied, Applier, ApplyResult};
use super::error::ServerError;
use super::member::{self, Member};
use super::quota::Quota;
use super::raft_node::{RaftNode, RaftNodeConfig, Ticks, DEFAULT_APPLY_QUEUE};
use super::wait::{RequestIds, Wait};
use crate::config::{Config, FreelistType, Measurements};
use crate::pb::etcdserverpb::{
    alarm_request::AlarmAction, AlarmMember, AlarmRequest, AlarmResponse, AlarmType,
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse,
    InternalRaftRequest, PutRequest, PutResponse, RangeRequest, RangeResponse, RequestHeader,
    TxnRequest, TxnResponse,
};
use crate::raft::{Peer, StorageOptions};
use crate::storage::backend::{Backend, BackendConfig};
use crate::storage::mvcc::{KvHash, KvStore, KvStoreConfig};

/// etcd's `maxGapBetweenApplyAndCommitIndex`.
const MAX_APPLY_GAP: u64 = 5000;

/// Runs a local read (a backend snapshot, the index, maybe a sort; or the diagnostics'
/// procfs reads) off the async workers' hot path: on the multi-threaded runtime the worker
/// hands its other tasks away while this one blocks (a compaction may hold new read txns for
/// a moment); elsewhere inline.
pub(crate) fn read_locally<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// The etcd version Glass speaks (what `Status` reports and clients check features against).
pub const ETCD_VERSION: &str = "3.4.23";
/// The cluster version a 3.4 cluster reports.
pub const CLUSTER_VERSION: &str = "3.4.0";

/// How to start a member.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub name: String,
    pub data_dir: PathBuf,
    pub wal_dir: Option<PathBuf>,
    /// The initial cluster (this member included, its client URLs set).
    pub members: Vec<Member>,
    /// This member's id (one of `members`).
    pub id: u64,
    pub cluster_id: u64,
    pub heartbeat_interval: Duration,
    pub election_timeout: Duration,
    pub ticks: Ticks,
    pub snapshot_count: u64,
    /// `None`: no quota.
    pub quota_bytes: Option<u64>,
    pub max_request_bytes: u64,
    pub max_txn_ops: u64,
    pub batch_limit: usize,
    pub batch_interval: Duration,
    pub freelist_type: FreelistType,
    /// TEST-ONLY ([`Config::test_fsync_delay`]): WAL and snapshot fdatasyncs last this much
    /// longer.
    pub test_fsync_delay: Option<Duration>,
    pub metrics: Arc<Metrics>,
    /// Per-request traces: sampling, slow requests, the export queue (its [`TraceControl`]
    /// holds the settings that change while running).
    pub tracer: Arc<Tracer>,
}

impl ServerConfig {
    /// The member `cfg` describes: ids from `--initial-cluster` and `--initial-cluster-token`
    /// as etcd computes them; its tracer reads `trace` (the process's controls, which the
    /// runtime flags change).
    pub fn from_config(
        cfg: &Config,
        metrics: Arc<Metrics>,
        trace: Arc<TraceControl>,
    ) -> Result<ServerConfig, ServerError> {
        let initial = cfg
            .initial_cluster_members()
            .map_err(|e| ServerError::Config(e.to_string()))?;
        let mut members: Vec<Member> = initial
            .iter()
            .map(|(name, urls)| {
                Member::new(
                    name,
                    urls.iter().map(|u| u.to_string()).collect(),
                    &cfg.initial_cluster_token,
                )
            })
            .collect();
        let me = members
            .iter_mut()
            .find(|m| m.name == cfg.name)
            .ok_or_else(|| {
                ServerError::Config(format!(
                    "couldn't find local name {:?} in the initial cluster configuration",
                    cfg.name
                ))
            })?;
        me.client_urls = cfg
            .advertise_client_urls
            .iter()
            .map(|u| u.to_string())
            .collect();
        let id = me.id;
        let cluster_id = member::cluster_id(&members.iter().map(|m| m.id).collect::<Vec<_>>());
        let tracer = Arc::new(Tracer::new(trace, metrics.clone()));
        // --glass-measurements: what measuring costs is measured by turning it off.
        tracer.set_records(cfg.glass_measurements == Measurements::All);
        metrics.set_histograms_recording(cfg.glass_measurements != Measurements::Off);
        Ok(ServerConfig {
            name: cfg.name.clone(),
            data_dir: cfg.data_dir.clone(),
            wal_dir: cfg.wal_dir.clone(),
            members,
            id,
            cluster_id,
            heartbeat_interval: cfg.heartbeat_interval,
            election_timeout: cfg.election_timeout,
            ticks: Ticks::Interval,
            snapshot_count: cfg.snapshot_count(),
            quota_bytes: cfg.quota_bytes(),
            max_request_bytes: cfg.max_request_bytes,
            max_txn_ops: cfg.max_txn_ops,
            batch_limit: cfg.batch_limit(),
            batch_interval: cfg.batch_interval(),
            freelist_type: cfg.backend_freelist_type,
            test_fsync_delay: cfg.test_fsync_delay,
            metrics,
            tracer,
        })
    }

    pub fn member_dir(&self) -> PathBuf {
        self.data_dir.join("member")
    }
}

/// What `Maintenance.Status` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStatus {
    pub version: &'static str,
    pub db_size: u64,
    pub db_size_in_use: u64,
    pub leader: u64,
    pub raft_index: u64,
    pub raft_term: u64,
    pub raft_applied_index: u64,
    pub errors: Vec<String>,
}

/// A running member; see the module documentation.
pub struct EtcdServer {
    id: u64,
    cluster_id: u64,
    name: String,
    members: Vec<Member>,
    raft: RaftNode,
    kv: Arc<KvStore>,
    backend: Arc<Backend>,
    alarms: Arc<Alarms>,
    quota: Arc<Quota>,
    wait: Wait<ApplyResult>,
    reqids: RequestIds,
    max_request_bytes: AtomicU64,
    max_txn_ops: AtomicU64,
    request_timeout: Duration,
    metrics: Arc<Metrics>,
    tracer: Arc<Tracer>,
    applier: Mutex<Option<JoinHandle<()>>>,
    /// Where the backend file and the WAL are (for the host figures of their devices).
    snap_dir: PathBuf,
    wal_dir: PathBuf,
    /// Why the applier stopped the server, if it did.
    fatal: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for EtcdServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdServer")
            .field("id", &format_args!("{:x}", self.id))
            .field("cluster_id", &format_args!("{:x}", self.cluster_id))
            .field("name", &self.name)
            .finish()
    }
}

/// etcd's member JSON in the bootstrap conf change's context.
fn member_json(m: &Member) -> Vec<u8> {
    let q = member::json_string;
    let urls: Vec<String> = m.peer_urls.iter().map(|u| q(u)).collect();
    let mut s = format!("{{\"id\":{},\"peerURLs\":[{}]", m.id, urls.join(","));
    if !m.name.is_empty() {
        s.push_str(&format!(",\"name\":{}", q(&m.name)));
    }
    s.push('}');
    s.into_bytes()
}

/// etcd's `TouchDirAll`: creates what is missing as private (0700) directories; an existing
/// directory keeps its mode, with a warning when others can read it.
fn create_dir(path: &Path) -> Result<(), ServerError> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        if let Ok(m) = std::fs::metadata(path) {
            if m.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = %format!("{:o}", m.permissions().mode() & 0o777),
                    "the directory is readable by others; etcd recommends 0700"
                );
            }
        }
        b.mode(0o700);
    }
    b.create(path).map_err(|source| ServerError::Io {
        what: "cannot create directory",
        path: path.to_path_buf(),
        source,
    })
}

impl EtcdServer {
    /// Opens (or creates) the member's data directory and starts raft and the applier. The
    /// single member is leader before this returns its first request's answer.
    pub fn start(cfg: ServerConfig) -> Result<Arc<EtcdServer>, ServerError> {
        let timer = Timer::start();
        let member_dir = cfg.member_dir();
        let snap_dir = member_dir.join("snap");
        create_dir(&cfg.data_dir)?;
        create_dir(&snap_dir)?;
        let metrics = cfg.metrics.clone();
        let mut bcfg = BackendConfig::new(snap_dir.join("db"), metrics.clone());
        bcfg.batch_interval = cfg.batch_interval;
        bcfg.batch_limit = cfg.batch_limit;
        bcfg.freelist_type = cfg.freelist_type;
        let backend = Arc::new(Backend::open(bcfg)?);
        let kv = Arc::new(KvStore::open(
            backend.clone(),
            metrics.clone(),
            KvStoreConfig::default(),
        )?);
        let alarms = Arc::new(Alarms::open(backend.clone())?);
        let quota = Arc::new(Quota::new(cfg.quota_bytes));
        metrics
            .server_quota_backend_bytes
            .set(cfg.quota_bytes.map_or(0, |q| q as i64));

        let mut storage = StorageOptions::new(&member_dir);
        if let Some(w) = &cfg.wal_dir {
            storage.wal_dir = w.clone();
        }
        if let Some(d) = cfg.test_fsync_delay {
            storage.fs = Arc::new(crate::storage::wal::SlowSyncFs::new(storage.fs.clone(), d));
        }
        let wal_dir = storage.wal_dir.clone();
        let rcfg = RaftNodeConfig {
            id: cfg.id,
            cluster_id: cfg.cluster_id,
            peers: cfg
                .members
                .iter()
                .map(|m| Peer {
                    id: m.id,
                    context: member_json(m),
                })
                .collect(),
            applied: kv.consistent_index(),
            heartbeat_interval: cfg.heartbeat_interval,
            election_timeout: cfg.election_timeout,
            ticks: cfg.ticks,
            apply_queue: DEFAULT_APPLY_QUEUE,
            snapshot_count: cfg.snapshot_count,
            storage,
            metrics: metrics.clone(),
        };
        let request_timeout = rcfg.request_timeout();
        let (raft, apply_rx) = RaftNode::start(rcfg)?;
        let wait = Wait::new();
        let fatal = Arc::new(Mutex::new(None));
        let applier = Applier {
            kv: kv.clone(),
            raft: raft.clone(),
            wait: wait.clone(),
            alarms: alarms.clone(),
            quota: quota.clone(),
            metrics: metrics.clone(),
        };
        let (raft2, fatal2) = (raft.clone(), fatal.clone());
        let handle = std::thread::Builder::new()
            .name("applier".into())
            .spawn(move || {
                if let Err(e) = applier.run(apply_rx) {
                    error!(error = %e, "the applier failed; stopping the member");
                    *fatal2.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                    let _ = raft2.stop();
                }
            })
            .map_err(|source| ServerError::Io {
                what: "cannot start the applier thread for",
                path: member_dir.clone(),
                source,
            })?;
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        info!(
            name = %cfg.name,
            id = %format!("{:x}", cfg.id),
            cluster_id = %format!("{:x}", cfg.cluster_id),
            revision = kv.current_revision(),
            consistent_index = kv.consistent_index(),
            took_ms = timer.elapsed_ns() / 1_000_000,
            "member started"
        );
        Ok(Arc::new(EtcdServer {
            id: cfg.id,
            cluster_id: cfg.cluster_id,
            name: cfg.name,
            members: cfg.members,
            raft,
            kv,
            backend,
            alarms,
            quota,
            wait,
            reqids: RequestIds::new(cfg.id, unix_ms),
            max_request_bytes: AtomicU64::new(cfg.max_request_bytes),
            max_txn_ops: AtomicU64::new(cfg.max_txn_ops),
            request_timeout,
            metrics,
            tracer: cfg.tracer,
            applier: Mutex::new(Some(handle)),
            snap_dir,
            wal_dir,
            fatal,
        }))
    }

    /// Stops raft and the applier, then commits and closes the backend. Acknowledged writes
    /// are in the WAL already; this only spares the next start the replay.
    pub fn stop(&self) -> Result<(), ServerError> {
        let r = self.raft.stop();
        let applier = self
            .applier
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(h) = applier {
            let _ = h.join();
        }
        if let Some(why) = self.backend.failure() {
            // Nothing more may reach the file; the WAL replays the rest at the next start.
            return Err(ServerError::BackendFailed(why));
        }
        self.backend.force_commit()?;
        r
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn cluster_id(&self) -> u64 {
        self.cluster_id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The directories whose disks matter, with their role: the backend's (`data`) and the
    /// WAL's (`wal`).
    pub fn dirs(&self) -> [(&'static str, PathBuf); 2] {
        [
            ("data", self.snap_dir.clone()),
            ("wal", self.wal_dir.clone()),
        ]
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Per-request traces: [`Tracer::control`] (sample ratio, slow threshold, OTLP endpoint
    /// and protocol, changeable while running) and [`Tracer::slow`] (the recent slow
    /// requests).
    pub fn tracer(&self) -> &Arc<Tracer> {
        &self.tracer
    }

    pub fn kv(&self) -> &Arc<KvStore> {
        &self.kv
    }

    pub fn raft(&self) -> &RaftNode {
        &self.raft
    }

    /// The raft term, for response headers.
    pub fn term(&self) -> u64 {
        self.raft.status().term
    }

    pub fn max_txn_ops(&self) -> u64 {
        self.max_txn_ops.load(Ordering::Relaxed)
    }

    pub fn set_max_txn_ops(&self, n: u64) {
        self.max_txn_ops.store(n, Ordering::Relaxed);
    }

    pub fn max_request_bytes(&self) -> u64 {
        self.max_request_bytes.load(Ordering::Relaxed)
    }

    pub fn set_max_request_bytes(&self, n: u64) {
        self.max_request_bytes.store(n, Ordering::Relaxed);
    }

    pub fn quota(&self) -> &Quota {
        &self.quota
    }

    /// Why the member stopped on its own, if it did.
    pub fn failure(&self) -> Option<String> {
        self.fatal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .or_else(|| self.raft.failure())
    }

    /// Proposes `r` and waits for its apply result (etcd's `processInternalRaftRequestOnce`).
    async fn propose(&self, mut r: InternalRaftRequest) -> Result<ApplyResult, ServerError> {
        if let Some(f) = self.failure() {
            error!(error = %f, "refusing a request: the member has failed");
            return Err(ServerError::Stopped);
        }
        // etcd's maxGapBetweenApplyAndCommitIndex: refuse new work while the applier is far
        // behind, instead of queueing it without limit.
        let st = self.raft.status();
        if st.commit > st.applied.saturating_add(MAX_APPLY_GAP) {
            return Err(ServerError::TooManyRequests);
        }
        let id = self.reqids.next();
        r.header = Some(RequestHeader {
            id,
            ..RequestHeader::default()
        });
        let data = r.encode_to_vec();
        if data.len() as u64 > self.max_request_bytes() {
            return Err(ServerError::RequestTooLarge);
        }
        self.raft
            .propose_and_wait(&self.wait, id, data, self.request_timeout)
            .await
    }

    /// Waits until this member has applied everything committed when the read began (etcd's
    /// `linearizableReadNotify`).
    async fn linearizable_read(&self) -> Result<(), ServerError> {
        let timer = Timer::start();
        let span = debug_span!(
            names::ETCDSERVER_READ_INDEX,
            read_index = tracing::field::Empty
        );
        let id = self.reqids.next();
        let r = async {
            let index = self
                .raft
                .read_index(id.to_be_bytes().to_vec())?
                .wait(self.request_timeout)
                .await?;
            tracing::Span::current().record("read_index", index);
            Ok(())
        }
        .instrument(span)
        .await;
        let ns = timer.elapsed_ns();
        self.metrics.etcdserver_read_index.record(ns);
        telemetry::request::record(names::ETCDSERVER_READ_INDEX, &timer, ns);
        if r.is_err() {
            self.metrics.server_read_indexes_failed.inc();
        }
        r
    }

    /// etcd's `Range`: serializable reads are local, others wait for the read index first.
    pub async fn range(&self, r: RangeRequest) -> Result<RangeResponse, ServerError> {
        if !r.serializable {
            self.linearizable_read().await?;
        }
        read_locally(|| {
            let mut txn = self.kv.read();
            Ok(apply::range(&mut txn, &r)?)
        })
    }

    /// etcd's `quotaKVServer` check, made by the API before it checks the request: a write
    /// over quota raises the NOSPACE alarm and is refused.
    pub async fn check_quota(&self, cost: u64) -> Result<(), ServerError> {
        if cost == 0 || self.quota.available(&self.backend, cost) {
            return Ok(());
        }
        self.raise_nospace().await;
        Err(ServerError::NoSpace)
    }

    /// Quota cost of a put, as etcd counts it.
    pub fn put_cost(r: &PutRequest) -> u64 {
        apply::cost_put(r)
    }

    /// Quota cost of a txn, as etcd counts it.
    pub fn txn_cost(r: &TxnRequest) -> u64 {
        apply::cost_txn(r)
    }

    async fn raise_nospace(&self) {
        if self.alarms.has(AlarmType::Nospace) {
            return;
        }
        let r = self
            .alarm(AlarmRequest {
                action: AlarmAction::Activate as i32,
                member_id: self.id,
                alarm: AlarmType::Nospace as i32,
            })
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "cannot raise the NOSPACE alarm");
        }
    }

    /// A write the applier found over quota (it was applied, as etcd does): raise the alarm
    /// before answering, as etcd's `applyEntryNormal` does.
    async fn nospace_after<T>(&self, r: Result<T, ServerError>) -> Result<T, ServerError> {
        if let Err(ServerError::NoSpace) = &r {
            self.raise_nospace().await;
        }
        r
    }

    pub async fn put(&self, r: PutRequest) -> Result<PutResponse, ServerError> {
        let res = self
            .propose_one(InternalRaftRequest {
                put: Some(r),
                ..Default::default()
            })
            .await;
        match self.nospace_after(res).await? {
            Applied::Put(p) => Ok(p),
            other => Err(unexpected(other)),
        }
    }

    pub async fn delete_range(
        &self,
        r: DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, ServerError> {
        match self
            .propose_one(InternalRaftRequest {
                delete_range: Some(r),
                ..Default::default()
            })
            .await?
        {
            Applied::DeleteRange(d) => Ok(d),
            other => Err(unexpected(other)),
        }
    }

    /// etcd's `Txn`: read-only txns are served locally (after the read index unless every
    /// range in them is serializable); others go through raft.
    pub async fn txn(&self, r: TxnRequest) -> Result<TxnResponse, ServerError> {
        if apply::is_txn_read_only(&r) {
            if !apply::is_txn_serializable(&r) {
                self.linearizable_read().await?;
            }
            return read_locally(|| {
                let mut txn = self.kv.read();
                apply::txn(&mut txn, &r)
            });
        }
        let res = self
            .propose_one(InternalRaftRequest {
                txn: Some(r),
                ..Default::default()
            })
            .await;
        match self.nospace_after(res).await? {
            Applied::Txn(t) => Ok(t),
            other => Err(unexpected(other)),
        }
    }

    /// etcd's `Compact`: with `physical`, waits until the compacted revisions are gone from
    /// the backend and committed.
    pub async fn compact(&self, r: CompactionRequest) -> Result<CompactionResponse, ServerError> {
        let physical = r.physical;
        let res = self
            .propose(InternalRaftRequest {
                compaction: Some(r),
                ..Default::default()
            })
            .await?;
        let mut resp = match res.resp? {
            Applied::Compaction(c) => c,
            other => return Err(unexpected(other)),
        };
        if physical {
            if let Some(mut h) = res.physical {
                let backend = self.backend.clone();
                tokio::task::spawn_blocking(move || -> Result<(), ServerError> {
                    h.wait()?;
                    backend.force_commit()?;
                    Ok(())
                })
                .await
                .map_err(|_| ServerError::Stopped)??;
            }
        }
        if let Some(h) = resp.header.as_mut() {
            h.revision = self.kv.current_revision();
        }
        Ok(resp)
    }

    /// etcd's `Alarm`: every action goes through raft.
    pub async fn alarm(&self, r: AlarmRequest) -> Result<AlarmResponse, ServerError> {
        match self
            .propose_one(InternalRaftRequest {
                alarm: Some(r),
                ..Default::default()
            })
            .await?
        {
            Applied::Alarm(a) => Ok(a),
            other => Err(unexpected(other)),
        }
    }

    async fn propose_one(&self, r: InternalRaftRequest) -> Result<Applied, ServerError> {
        self.propose(r).await?.resp
    }

    /// The raised alarms (read locally).
    pub fn alarms(&self) -> Vec<AlarmMember> {
        self.alarms.get(AlarmType::None as i32)
    }

    /// What `Maintenance.Status` reports about this member.
    pub fn status(&self) -> ServerStatus {
        let st = self.raft.status();
        let mut errors = Vec::new();
        if st.leader == 0 {
            errors.push(ServerError::NoLeader.to_string());
        }
        for a in self.alarms() {
            let name = AlarmType::try_from(a.alarm).map_or("UNKNOWN", |t| t.as_str_name());
            errors.push(format!("memberID:{} alarm:{} ", a.member_id, name));
        }
        ServerStatus {
            version: ETCD_VERSION,
            db_size: self.backend.size(),
            db_size_in_use: self.backend.size_in_use(),
            leader: st.leader,
            raft_index: st.commit,
            raft_term: st.term,
            raft_applied_index: st.applied,
            errors,
        }
    }

    /// The cluster's members.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// etcd's `HashKV` at `rev` (0: current).
    pub async fn hash_kv(&self, rev: i64) -> Result<KvHash, ServerError> {
        let kv = self.kv.clone();
        tokio::task::spawn_blocking(move || kv.hash_kv(rev))
            .await
            .map_err(|_| ServerError::Stopped)?
            .map_err(ServerError::from)
    }

    /// etcd's `Hash`: CRC-32C of the whole backend (consistent index and term left out).
    pub async fn hash(&self) -> Result<u32, ServerError> {
        let be = self.backend.clone();
        tokio::task::spawn_blocking(move || be.hash(crate::storage::mvcc::schema::hash_ignores))
            .await
            .map_err(|_| ServerError::Stopped)?
            .map_err(ServerError::from)
    }

    /// etcd's `Defragment`: rewrites the backend file compactly.
    pub async fn defragment(&self) -> Result<(), ServerError> {
        let be = self.backend.clone();
        tokio::task::spawn_blocking(move || be.defrag())
            .await
            .map_err(|_| ServerError::Stopped)?
            .map_err(ServerError::from)
    }
}

fn unexpected(a: Applied) -> ServerError {
    error!(response = ?a, "the applier answered with another request's response");
    ServerError::Internal("the applier answered with another kind of response".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_json_is_etcds() {
        let m = Member::new(
            "default",
            vec!["http://localhost:2380".into()],
            "etcd-cluster",
        );
        assert_eq!(
            String::from_utf8(member_json(&m)).unwrap(),
            "{\"id\":10276657743932975437,\"peerURLs\":[\"http://localhost:2380\"],\"name\":\"default\"}"
        );
    }
}
