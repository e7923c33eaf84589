//! [`RaftNode`]: raft-rs's `RawNode` driven by one Ready loop on a thread of its own, over
//! [`RaftStorage`] (etcd's WAL and snapshot files).
//!
//! # Threads and channels
//! - **The raft thread** (a dedicated OS thread, `raft-<id>`) owns the `RawNode`, its storage
//!   and so the WAL (which is `Send`, not `Sync`, and does blocking fdatasyncs: it does not
//!   belong on a tokio worker). Nothing else touches raft state, so there are no locks.
//! - **In**: one unbounded std `mpsc` channel of `Msg`s: proposals, read-index requests,
//!   ticks, messages from peers, applied-index reports, snapshot requests, stop. Unbounded
//!   because every sender is waiting for an answer (proposals and reads are bounded by the
//!   requests in flight) or is the ticker; the loop drains up to [`MAX_BATCH`] messages per
//!   turn, so proposals arriving together share one Ready and one fdatasync (group commit).
//! - **Out to the applier**: a *bounded* `sync_channel` of [`Apply`] batches (default 1024).
//!   When the applier falls behind, the raft thread blocks on it — back-pressure, as etcd's
//!   unbuffered `applyc` — instead of queueing committed entries without limit.
//! - **Back from the applier**: [`ApplyNotify::applied`] puts the applied index on the input
//!   channel; read-index waiters are answered from it, and it is what a snapshot may cover.
//! - **Ticks**: logical. [`Ticks::Interval`] starts a ticker thread sending one tick per
//!   heartbeat interval; [`Ticks::Manual`] leaves them to [`RaftNode::tick`] (tests). raft
//!   counts ticks only: election timeout = `election_timeout / heartbeat_interval` ticks.
//! - **Answers to callers**: tokio oneshots, awaited with a timeout by the async API layer
//!   (tokio's clock, paused in tests) or received blocking by a thread.
//!
//! # The Ready loop
//! `Node::on_ready` is one function, in raft-rs's documented order: messages, snapshot,
//! committed entries, append + hard state (one WAL save), persisted messages, advance, light
//! ready (commit index, messages, committed entries), advance_apply.
//!
//! etcd's `apply` struct carries a `notifyc` the raft loop closes once the Ready is on disk, so
//! that the applier does not run ahead of the WAL. raft-rs hands out only committed entries
//! that are already persisted, so Glass's [`Apply::notify`] goes the other way: the applier
//! reports what it has applied (etcd reads a shared `appliedi` for the same purpose).
//!
//! The commit index raft-rs reports in a light ready is written with the *next* Ready's save
//! (and at a clean stop), not in a save of its own: one save per Ready. A crash can so leave
//! the WAL's commit index behind what was committed — harmless, since restart takes the
//! applier's applied index as committed and a new leader commits the rest of its log.
//!
//! # Snapshots
//! The applier asks ([`RaftNode::snapshot_due`] after each batch: more than `snapshot_count`
//! entries since the last one), handing over the state machine's snapshot data; the raft
//! thread writes the `.snap` file, the WAL's snapshot record, compacts the in-memory log
//! (keeping the catch-up entries), releases WAL segments and purges old files. Stopping waits
//! for the applier to take a batch when the apply channel is full.
//!
//! # Single member
//! A new data directory gets etcd's bootstrap entries (one `ConfChangeAddNode` per initial
//! member); when this member is the only voter it campaigns as soon as raft has handed those
//! out — at start and at every restart — and is leader before the first tick, as etcd's
//! single-member clusters are. Proposals on a member that is not the leader are refused for
//! now (etcd forwards them to the leader; that comes with peers).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use ::raft::eraftpb::{Entry, EntryType, Message, Snapshot};
use ::raft::{Config, RawNode, ReadOnlyOption, StateRole, Storage};
use telemetry::request::{self, Layer, RequestTrace};
use telemetry::{names, Metrics, Timer};
use tokio::sync::oneshot;
use tracing::{debug, debug_span, error, info, warn, Span};

use crate::raft::codec::ConfChange;
use crate::raft::{
    self as raftlayer, Bootstrap, NoPeers, Peer, RaftError, RaftStorage, StorageOptions, Transport,
};

use super::error::{Result, ServerError};
use super::wait::Wait;

/// etcd's `maxSizePerMsg`: at most this many bytes of entries per append message (and per
/// batch of committed entries handed out in one Ready).
const MAX_SIZE_PER_MSG: u64 = 1024 * 1024;
/// etcd's `maxInflightMsgs`.
const MAX_INFLIGHT_MSGS: usize = 4096 / 8;
/// etcd's `MaxUncommittedEntriesSize`.
const MAX_UNCOMMITTED_SIZE: u64 = 1 << 30;
/// Messages taken off the input channel per turn of the loop.
pub const MAX_BATCH: usize = 4096;
/// Apply batches the channel to the applier holds.
pub const DEFAULT_APPLY_QUEUE: usize = 1024;
/// etcd 3.4's default `--snapshot-count`.
pub const DEFAULT_SNAPSHOT_COUNT: u64 = 100_000;

/// Where ticks come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ticks {
    /// A ticker thread, one tick per heartbeat interval.
    Interval,
    /// Only [`RaftNode::tick`].
    Manual,
}

/// How to start a raft node.
#[derive(Debug, Clone)]
pub struct RaftNodeConfig {
    /// This member's id.
    pub id: u64,
    pub cluster_id: u64,
    /// The initial cluster, written to a new data directory (etcd's `--initial-cluster`);
    /// ignored on restart.
    pub peers: Vec<Peer>,
    /// The applier's applied (consistent) index: raft re-delivers only what follows it.
    pub applied: u64,
    /// etcd's `--heartbeat-interval` (100 ms).
    pub heartbeat_interval: Duration,
    /// etcd's `--election-timeout` (1000 ms).
    pub election_timeout: Duration,
    pub ticks: Ticks,
    /// Capacity of the apply channel, in batches.
    pub apply_queue: usize,
    /// etcd's `--snapshot-count`: a snapshot is due once this many entries were applied since
    /// the last one ([`RaftNode::snapshot_due`]); 0 never.
    pub snapshot_count: u64,
    /// Files: WAL and snapshot directories, file system, segment size, files kept.
    pub storage: StorageOptions,
    /// Where measurements go (also used by the WAL: `storage.metrics` is replaced by it).
    pub metrics: Arc<Metrics>,
}

impl RaftNodeConfig {
    /// A single member `id` with etcd's defaults, its files under `member_dir`.
    pub fn single(id: u64, cluster_id: u64, member_dir: &std::path::Path) -> Self {
        RaftNodeConfig {
            id,
            cluster_id,
            peers: vec![Peer {
                id,
                context: Vec::new(),
            }],
            applied: 0,
            heartbeat_interval: Duration::from_millis(100),
            election_timeout: Duration::from_millis(1000),
            ticks: Ticks::Interval,
            apply_queue: DEFAULT_APPLY_QUEUE,
            snapshot_count: DEFAULT_SNAPSHOT_COUNT,
            storage: StorageOptions::new(member_dir),
            metrics: Arc::new(Metrics::new()),
        }
    }

    /// Election timeout in ticks (etcd's `ElectionTicks`).
    pub fn election_ticks(&self) -> usize {
        let hb = self.heartbeat_interval.as_millis().max(1);
        (self.election_timeout.as_millis() / hb) as usize
    }

    /// etcd's `ReqTimeout()`: 5 s plus twice the election timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(5) + 2 * self.election_timeout
    }
}

/// An entry's place in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    pub index: u64,
    pub term: u64,
}

/// A batch for the applier (etcd's `apply` struct): committed entries in log order, each
/// delivered once, or a snapshot to restore the state machine from (then `entries` follow it).
#[derive(Debug)]
pub struct Apply {
    /// Every committed entry, normal ones (a new leader's empty entry included) and conf
    /// changes (already applied to raft; the applier records membership).
    pub entries: Vec<Entry>,
    /// A snapshot the state machine must be restored from before `entries`.
    pub snapshot: Option<Snapshot>,
    /// Report back once applied.
    pub notify: ApplyNotify,
    /// The wait in the channel (measured when the applier takes the batch).
    queued: Timer,
    span: Span,
    /// The records of the requests whose entries these are, by index (see
    /// `telemetry::request`): the applier makes each one current while applying its entry.
    traces: Vec<(u64, Arc<RequestTrace>)>,
}

impl Apply {
    /// The index the batch brings the state machine to.
    pub fn last_index(&self) -> u64 {
        self.notify.index
    }

    /// The request records of the batch's entries, by index (ascending).
    pub fn take_traces(&mut self) -> Vec<(u64, Arc<RequestTrace>)> {
        std::mem::take(&mut self.traces)
    }
}

/// The applier's report that a batch is applied. Not calling it leaves the node believing the
/// entries unapplied: reads waiting for them wait, snapshots cannot cover them.
#[derive(Debug)]
pub struct ApplyNotify {
    index: u64,
    tx: Sender<Msg>,
}

impl ApplyNotify {
    pub fn applied(self) {
        // A stopped node needs no report.
        let _ = self.tx.send(Msg::Applied(self.index));
    }
}

/// The applier's end of the apply channel; taking a batch records how long it waited.
#[derive(Debug)]
pub struct ApplyRx {
    rx: Receiver<Apply>,
    metrics: Arc<Metrics>,
}

impl ApplyRx {
    fn taken(&self, mut a: Apply) -> Apply {
        let ns = a.queued.elapsed_ns();
        self.metrics.raft_apply_queue.record(ns);
        for (_, t) in &a.traces {
            t.push(Layer::new(names::RAFT_APPLY_QUEUE, &a.queued, ns));
        }
        // Closes the batch's `raft.apply_queue` span.
        drop(std::mem::replace(&mut a.span, Span::none()));
        a
    }

    /// The next batch; `None` once the node stopped and every batch was taken.
    pub fn recv(&self) -> Option<Apply> {
        self.rx.recv().ok().map(|a| self.taken(a))
    }

    /// The next batch within `timeout`; `Err(true)` when the node stopped.
    pub fn recv_timeout(&self, timeout: Duration) -> std::result::Result<Apply, bool> {
        match self.rx.recv_timeout(timeout) {
            Ok(a) => Ok(self.taken(a)),
            Err(RecvTimeoutError::Timeout) => Err(false),
            Err(RecvTimeoutError::Disconnected) => Err(true),
        }
    }

    pub fn try_recv(&self) -> Option<Apply> {
        self.rx.try_recv().ok().map(|a| self.taken(a))
    }
}

/// A proposal taken by the node; resolves when its entry is committed and queued for the
/// applier. The apply *result* comes through the [`Wait`] registry.
#[derive(Debug)]
pub struct ProposalHandle {
    rx: oneshot::Receiver<Result<Committed>>,
}

impl ProposalHandle {
    /// The committed entry's place, [`ServerError::ProposalDropped`], or etcd's
    /// [`ServerError::Timeout`] — also when the node stopped with the proposal in flight (its
    /// fate is then unknown to the caller, which is what that error says).
    pub async fn committed(self, timeout: Duration) -> Result<Committed> {
        match tokio::time::timeout(timeout, self.rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) | Err(_) => Err(ServerError::Timeout),
        }
    }

    /// [`ProposalHandle::committed`] for a thread, without a timeout.
    pub fn blocking_committed(self) -> Result<Committed> {
        self.rx.blocking_recv().unwrap_or(Err(ServerError::Timeout))
    }
}

/// A linearizable read: resolves with the read index once the applier has applied up to it.
#[derive(Debug)]
pub struct ReadIndexHandle {
    rx: oneshot::Receiver<u64>,
}

impl ReadIndexHandle {
    pub async fn wait(self, timeout: Duration) -> Result<u64> {
        match tokio::time::timeout(timeout, self.rx).await {
            Ok(Ok(i)) => Ok(i),
            Ok(Err(_)) | Err(_) => Err(ServerError::Timeout),
        }
    }

    pub fn blocking_wait(self) -> Result<u64> {
        self.rx.blocking_recv().map_err(|_| ServerError::Timeout)
    }

    /// The read index if it is ready now.
    pub fn try_get(&mut self) -> Option<Result<u64>> {
        match self.rx.try_recv() {
            Ok(i) => Some(Ok(i)),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(Err(ServerError::Timeout)),
        }
    }
}

/// A snapshot request's answer.
#[derive(Debug)]
pub struct SnapshotHandle {
    rx: oneshot::Receiver<Result<u64>>,
}

impl SnapshotHandle {
    /// The snapshot's index once it is saved, its log compacted and old files purged.
    pub fn blocking_wait(self) -> Result<u64> {
        self.rx.blocking_recv().unwrap_or(Err(ServerError::Stopped))
    }

    pub async fn wait(self) -> Result<u64> {
        self.rx.await.unwrap_or(Err(ServerError::Stopped))
    }
}

/// What the node tells about itself (etcd's `raft.Status` subset the API reports).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Status {
    pub id: u64,
    pub term: u64,
    /// 0 when there is none.
    pub leader: u64,
    pub commit: u64,
    /// As reported by the applier.
    pub applied: u64,
    pub snapshot_index: u64,
    /// The first index still in the in-memory log.
    pub first_index: u64,
    pub last_index: u64,
}

/// Status written by the raft thread, read by anyone.
#[derive(Debug, Default)]
struct Shared {
    id: u64,
    term: AtomicU64,
    leader: AtomicU64,
    commit: AtomicU64,
    applied: AtomicU64,
    snapshot_index: AtomicU64,
    /// The highest index a snapshot was asked for (so that one is not asked twice).
    snapshot_asked: AtomicU64,
    /// Changeable while running ([`RaftNode::set_snapshot_count`]); read by the applier.
    snapshot_count: AtomicU64,
    first_index: AtomicU64,
    last_index: AtomicU64,
    stopped: AtomicBool,
    /// Why the raft thread ended, when it failed.
    fatal: Mutex<Option<String>>,
}

/// What the raft thread is asked to do.
#[derive(Debug)]
enum Msg {
    Propose {
        data: Vec<u8>,
        reply: oneshot::Sender<Result<Committed>>,
        accepted: Timer,
        span: Span,
        /// The proposing request's record, if it has one.
        trace: Option<Arc<RequestTrace>>,
    },
    ReadIndex {
        reply: oneshot::Sender<u64>,
        ctx: Vec<u8>,
    },
    Applied(u64),
    Snapshot {
        index: u64,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<u64>>,
    },
    Step(Box<Message>),
    Tick,
    Stop,
}

/// The handle to a running raft node. Cloning shares it; the node stops with [`RaftNode::stop`]
/// or when the last handle is dropped.
#[derive(Debug, Clone)]
pub struct RaftNode {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    tx: Sender<Msg>,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    thread: Mutex<Option<JoinHandle<()>>>,
    ticker_stop: Arc<AtomicBool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
        let _ = self.tx.send(Msg::Stop);
    }
}

impl RaftNode {
    /// Opens (or bootstraps) the member's raft log and starts the raft thread. Returns the
    /// node and the applier's end of the apply channel.
    pub fn start(cfg: RaftNodeConfig) -> Result<(RaftNode, ApplyRx)> {
        Self::start_with(cfg, Box::new(NoPeers))
    }

    /// [`RaftNode::start`] with a transport to peers.
    pub fn start_with(
        mut cfg: RaftNodeConfig,
        transport: Box<dyn Transport>,
    ) -> Result<(RaftNode, ApplyRx)> {
        cfg.storage.metrics = cfg.metrics.clone();
        let opened = RaftStorage::open(
            &Bootstrap {
                id: cfg.id,
                cluster_id: cfg.cluster_id,
                peers: cfg.peers.clone(),
                applied: cfg.applied,
            },
            cfg.storage.clone(),
        )?;
        let raft_cfg = Config {
            id: cfg.id,
            election_tick: cfg.election_ticks(),
            heartbeat_tick: 1,
            applied: opened.applied,
            max_size_per_msg: MAX_SIZE_PER_MSG,
            max_inflight_msgs: MAX_INFLIGHT_MSGS,
            check_quorum: true,
            pre_vote: false,
            read_only_option: ReadOnlyOption::Safe,
            max_uncommitted_size: MAX_UNCOMMITTED_SIZE,
            max_committed_size_per_ready: MAX_SIZE_PER_MSG,
            ..Config::default()
        };
        raft_cfg.validate().map_err(RaftError::from)?;
        let single = {
            let cs = opened.storage.conf_state();
            cs.voters == [cfg.id] && cs.learners.is_empty()
        };
        let raw = RawNode::new(&raft_cfg, opened.storage, &raftlayer::logger(cfg.id))
            .map_err(RaftError::from)?;

        let (tx, rx) = mpsc::channel();
        let (apply_tx, apply_rx) = mpsc::sync_channel(cfg.apply_queue.max(1));
        let shared = Arc::new(Shared {
            id: cfg.id,
            snapshot_count: AtomicU64::new(cfg.snapshot_count),
            ..Shared::default()
        });
        // What the applier has applied; a snapshot to restore (below) moves it when applied.
        let applied = cfg.applied.min(opened.applied);
        shared.applied.store(applied, Ordering::Relaxed);
        cfg.metrics.raft_applied_index.set(applied as i64);
        let mut node = Node {
            raw,
            rx,
            tx: tx.clone(),
            apply_tx,
            transport,
            metrics: cfg.metrics.clone(),
            shared: shared.clone(),
            proposals: BTreeMap::new(),
            reads_unsent: Vec::new(),
            reads_sent: HashMap::new(),
            reads_waiting: Vec::new(),
            applied,
            leader: 0,
            campaign: single,
            stopping: false,
            saved: Vec::new(),
        };
        if let Some(snap) = opened.restore {
            // The applier is behind the snapshot: it restores from it first.
            node.send_apply(Vec::new(), Some(snap), Vec::new())?;
        }
        node.publish_status();
        info!(
            id = %format!("{:x}", cfg.id),
            bootstrapped = opened.bootstrapped,
            applied = opened.applied,
            single,
            "raft node starting"
        );
        let id = cfg.id;
        let thread = std::thread::Builder::new()
            .name(format!("raft-{id:x}"))
            .spawn(move || node.run())
            .map_err(|e| RaftError::io("spawn", "raft thread", e))?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        if cfg.ticks == Ticks::Interval {
            let (tx, stop, period) = (tx.clone(), ticker_stop.clone(), cfg.heartbeat_interval);
            std::thread::Builder::new()
                .name(format!("raft-tick-{id:x}"))
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(period);
                        if tx.send(Msg::Tick).is_err() {
                            break;
                        }
                    }
                })
                .map_err(|e| RaftError::io("spawn", "raft ticker thread", e))?;
        }
        let node_metrics = cfg.metrics.clone();
        let node = RaftNode {
            inner: Arc::new(Inner {
                tx,
                shared,
                metrics: cfg.metrics,
                thread: Mutex::new(Some(thread)),
                ticker_stop,
            }),
        };
        Ok((
            node,
            ApplyRx {
                rx: apply_rx,
                metrics: node_metrics,
            },
        ))
    }

    fn send(&self, m: Msg) -> Result<()> {
        self.inner.tx.send(m).map_err(|_| ServerError::Stopped)
    }

    /// Proposes `data` (the layer above puts its request id inside: etcd's
    /// `InternalRaftRequest.header.ID`). [`ServerError::Stopped`] when the node is not running.
    pub fn propose(&self, data: Vec<u8>) -> Result<ProposalHandle> {
        if self.inner.shared.stopped.load(Ordering::Relaxed) {
            return Err(ServerError::Stopped);
        }
        let (reply, rx) = oneshot::channel();
        // Made here, under the caller's span, and closed by the raft thread at commit.
        let span = debug_span!(
            names::RAFT_PROPOSE_COMMIT,
            index = tracing::field::Empty,
            term = tracing::field::Empty
        );
        self.send(Msg::Propose {
            data,
            reply,
            accepted: Timer::start(),
            span,
            // The request being served on this thread (the API layer's task), if any.
            trace: request::current(),
        })?;
        Ok(ProposalHandle { rx })
    }

    /// Proposes `data` and waits for the applier's result for request `id` (etcd's
    /// `processInternalRaftRequestOnce`): registered before proposing, so the result cannot
    /// come before the waiter; a proposal raft drops fails at once with
    /// [`ServerError::ProposalDropped`]; otherwise [`ServerError::Timeout`] after `timeout`.
    /// Counts pending and failed proposals.
    pub async fn propose_and_wait<T>(
        &self,
        wait: &Wait<T>,
        id: u64,
        data: Vec<u8>,
        timeout: Duration,
    ) -> Result<T> {
        let m = &self.inner.metrics;
        let waiter = wait.register(id)?;
        m.raft_proposals_pending.add(1);
        let r = match self.propose(data) {
            Ok(commit) => {
                let both = async {
                    // Committed, or the node is gone (then only the timeout can end this).
                    if let Ok(Err(e)) = commit.rx.await {
                        return Err(e);
                    }
                    waiter.recv().await
                };
                tokio::time::timeout(timeout, both)
                    .await
                    .unwrap_or(Err(ServerError::Timeout))
            }
            Err(e) => Err(e),
        };
        m.raft_proposals_pending.add(-1);
        if r.is_err() {
            m.raft_proposals_failed.inc();
        }
        r
    }

    /// Asks for a linearizable read index (etcd's `ReadIndex` with the request id as `ctx`);
    /// the handle resolves once the applier has applied up to it.
    pub fn read_index(&self, ctx: Vec<u8>) -> Result<ReadIndexHandle> {
        if self.inner.shared.stopped.load(Ordering::Relaxed) {
            return Err(ServerError::Stopped);
        }
        let (reply, rx) = oneshot::channel();
        self.send(Msg::ReadIndex { reply, ctx })?;
        Ok(ReadIndexHandle { rx })
    }

    /// Asks for a snapshot at `index` (applied by the applier) holding `data`; the log before
    /// it is compacted and old WAL segments and snapshot files purged. Never blocks: call it
    /// from the applier (which the raft thread may be waiting on).
    pub fn snapshot(&self, index: u64, data: Vec<u8>) -> Result<SnapshotHandle> {
        self.inner
            .shared
            .snapshot_asked
            .fetch_max(index, Ordering::Relaxed);
        let (reply, rx) = oneshot::channel();
        self.send(Msg::Snapshot { index, data, reply })?;
        Ok(SnapshotHandle { rx })
    }

    /// Whether the applier, having applied up to `applied`, should ask for a snapshot: more
    /// than `snapshot_count` entries since the last one taken or asked for (etcd's
    /// `triggerSnapshot`).
    pub fn snapshot_due(&self, applied: u64) -> bool {
        let s = &self.inner.shared;
        let last = s
            .snapshot_index
            .load(Ordering::Relaxed)
            .max(s.snapshot_asked.load(Ordering::Relaxed));
        let count = s.snapshot_count.load(Ordering::Relaxed);
        count > 0 && applied.saturating_sub(last) > count
    }

    /// Changes `snapshot_count` at once: the applier's next [`snapshot_due`] uses it.
    ///
    /// [`snapshot_due`]: RaftNode::snapshot_due
    pub fn set_snapshot_count(&self, n: u64) {
        self.inner.shared.snapshot_count.store(n, Ordering::Relaxed);
    }

    pub fn snapshot_count(&self) -> u64 {
        self.inner.shared.snapshot_count.load(Ordering::Relaxed)
    }

    /// A message from a peer.
    pub fn step(&self, m: Message) -> Result<()> {
        self.send(Msg::Step(Box::new(m)))
    }

    /// One logical tick (with [`Ticks::Manual`]).
    pub fn tick(&self) -> Result<()> {
        self.send(Msg::Tick)
    }

    pub fn status(&self) -> Status {
        let s = &self.inner.shared;
        Status {
            id: s.id,
            term: s.term.load(Ordering::Relaxed),
            leader: s.leader.load(Ordering::Relaxed),
            commit: s.commit.load(Ordering::Relaxed),
            applied: s.applied.load(Ordering::Relaxed),
            snapshot_index: s.snapshot_index.load(Ordering::Relaxed),
            first_index: s.first_index.load(Ordering::Relaxed),
            last_index: s.last_index.load(Ordering::Relaxed),
        }
    }

    pub fn is_leader(&self) -> bool {
        let s = self.status();
        s.leader == s.id
    }

    /// Whether the raft thread has ended.
    pub fn is_stopped(&self) -> bool {
        self.inner.shared.stopped.load(Ordering::Relaxed)
    }

    /// Stops the node: the raft thread finishes its turn, syncs and closes the WAL, and ends;
    /// the apply channel closes once drained. Returns why the thread ended early, if it did.
    pub fn stop(&self) -> Result<()> {
        self.inner.ticker_stop.store(true, Ordering::Relaxed);
        let _ = self.inner.tx.send(Msg::Stop);
        let thread = self
            .inner
            .thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(t) = thread {
            if t.join().is_err() {
                return Err(ServerError::Stopped);
            }
        }
        let fatal = self
            .inner
            .shared
            .fatal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match fatal {
            Some(msg) => {
                error!(error = %msg, "raft node had failed");
                Err(ServerError::Stopped)
            }
            None => Ok(()),
        }
    }

    /// Why the raft thread failed, if it did.
    pub fn failure(&self) -> Option<String> {
        self.inner
            .shared
            .fatal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A proposal whose entry is in the log, not yet committed.
#[derive(Debug)]
struct Pending {
    term: u64,
    reply: oneshot::Sender<Result<Committed>>,
    accepted: Timer,
    span: Span,
    trace: Option<Arc<RequestTrace>>,
}

/// Whether `entries` (consecutive, as a Ready appends them) hold the proposal made at `index`
/// in `term`: an entry there of another term is someone else's.
fn persists(entries: &[Entry], index: u64, term: u64) -> bool {
    entries.first().is_some_and(|first| {
        index
            .checked_sub(first.index)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| entries.get(i))
            .is_some_and(|e| e.term == term)
    })
}

/// The raft thread's state.
struct Node {
    raw: RawNode<RaftStorage>,
    rx: Receiver<Msg>,
    /// For [`ApplyNotify`]s.
    tx: Sender<Msg>,
    apply_tx: SyncSender<Apply>,
    transport: Box<dyn Transport>,
    metrics: Arc<Metrics>,
    shared: Arc<Shared>,
    /// Proposals in the log by index (leader only).
    proposals: BTreeMap<u64, Pending>,
    /// Reads not yet given to raft (the leader has not committed an entry of its term yet:
    /// raft-rs would drop them).
    reads_unsent: Vec<(Vec<u8>, oneshot::Sender<u64>)>,
    /// Reads given to raft, by context.
    reads_sent: HashMap<Vec<u8>, Vec<oneshot::Sender<u64>>>,
    /// Reads with a read index, waiting for the applier to reach it.
    reads_waiting: Vec<(u64, oneshot::Sender<u64>)>,
    /// The applier's applied index.
    applied: u64,
    leader: u64,
    /// This member is the only voter and has yet to campaign.
    campaign: bool,
    stopping: bool,
    /// The WAL save's layers (append, fdatasync), copied into every traced proposal the save
    /// persisted (reused between Readies).
    saved: Vec<Layer>,
}

impl Node {
    /// The raft thread: the loop, then the WAL closed (synced). Dropping the node closes the
    /// apply channel and every waiter's channel.
    fn run(mut self) {
        let shared = self.shared.clone();
        // raft-rs panics (`fatal!`) when its invariants break: record it as the node's failure
        // instead of losing it with the thread. The WAL is then left as it is (no more writes).
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run_loop()));
        shared.stopped.store(true, Ordering::Relaxed);
        let r = match r {
            Ok(r) => r,
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                error!(panic = %msg, "the raft thread panicked");
                *shared.fatal.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(format!("raft panicked: {msg}"));
                return;
            }
        };
        // Proposals in flight: their handles see the node gone.
        self.proposals.clear();
        let mut store = self.raw.raft.r.raft_log.store;
        // A clean stop writes the commit index of the last light ready, which would otherwise
        // wait for the next Ready's save; close syncs it.
        let r = r.and_then(|()| {
            store.save(None, &[])?;
            store.close().map_err(ServerError::from)
        });
        match r {
            Ok(()) => info!("raft node stopped"),
            Err(e) => {
                error!(error = %e, "raft node stopped on an error");
                *shared.fatal.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
            }
        }
    }

    fn run_loop(&mut self) -> Result<()> {
        loop {
            if self.raw.has_ready() {
                self.on_ready()?;
                self.flush_reads();
                self.publish_status();
            }
            self.maybe_campaign()?;
            // Wait for work unless raft has more (a Ready made possible by the last one).
            let first = if self.raw.has_ready() {
                match self.rx.try_recv() {
                    Ok(m) => Some(m),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => return Ok(()),
                }
            } else {
                match self.rx.recv() {
                    Ok(m) => Some(m),
                    Err(_) => return Ok(()),
                }
            };
            if let Some(m) = first {
                self.handle(m)?;
                // Take what else is waiting: proposals arriving together share a Ready, and
                // so one WAL write and one fdatasync.
                for _ in 1..MAX_BATCH {
                    match self.rx.try_recv() {
                        Ok(m) => self.handle(m)?,
                        Err(_) => break,
                    }
                }
            }
            if self.stopping {
                return Ok(());
            }
        }
    }

    fn handle(&mut self, m: Msg) -> Result<()> {
        match m {
            Msg::Propose {
                data,
                reply,
                accepted,
                span,
                trace,
            } => self.propose(data, reply, accepted, span, trace),
            Msg::ReadIndex { reply, ctx } => {
                self.reads_unsent.push((ctx, reply));
                self.flush_reads();
            }
            Msg::Applied(index) => self.on_applied(index),
            Msg::Snapshot { index, data, reply } => match self.snapshot(index, data) {
                Ok(i) => {
                    let _ = reply.send(Ok(i));
                }
                // The request was wrong: answer it and go on.
                Err(e @ ServerError::Raft(RaftError::BadSnapshotIndex { .. })) => {
                    warn!(error = %e, "snapshot refused");
                    let _ = reply.send(Err(e));
                }
                // Files failed: the node cannot go on (etcd panics here).
                Err(e) => {
                    let _ = reply.send(Err(ServerError::Stopped));
                    return Err(e);
                }
            },
            Msg::Step(m) => {
                if let Err(e) = self.raw.step(*m) {
                    debug!(error = %e, "raft refused a peer message");
                }
            }
            Msg::Tick => {
                self.raw.tick();
            }
            Msg::Stop => self.stopping = true,
        }
        Ok(())
    }

    /// etcd's single-member clusters elect at once: the only voter campaigns as soon as raft
    /// has handed out every committed entry (raft refuses to campaign while committed conf
    /// changes, like the bootstrap ones, are not applied).
    fn maybe_campaign(&mut self) -> Result<()> {
        if !self.campaign {
            return Ok(());
        }
        let log = &self.raw.raft.raft_log;
        if log.applied < log.committed {
            return Ok(());
        }
        self.campaign = false;
        if self.raw.raft.state != StateRole::Leader {
            self.raw.campaign().map_err(RaftError::from)?;
        }
        Ok(())
    }

    fn propose(
        &mut self,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<Committed>>,
        accepted: Timer,
        span: Span,
        trace: Option<Arc<RequestTrace>>,
    ) {
        if self.raw.raft.state != StateRole::Leader {
            let _ = reply.send(Err(ServerError::ProposalDropped));
            return;
        }
        match self.raw.propose(Vec::new(), data) {
            Ok(()) => {
                let index = self.raw.raft.raft_log.last_index();
                let term = self.raw.raft.term;
                span.record("index", index);
                span.record("term", term);
                self.proposals.insert(
                    index,
                    Pending {
                        term,
                        reply,
                        accepted,
                        span,
                        trace,
                    },
                );
            }
            Err(e) => {
                debug!(error = %e, "raft dropped a proposal");
                let _ = reply.send(Err(ServerError::ProposalDropped));
            }
        }
    }

    /// Gives raft the reads it can answer: once the leader has committed an entry of its
    /// term (before that raft-rs drops them); a follower passes them to the leader.
    fn flush_reads(&mut self) {
        if self.reads_unsent.is_empty() {
            return;
        }
        let r = &self.raw.raft;
        let ready = match r.state {
            StateRole::Leader => r.commit_to_current_term(),
            _ => r.leader_id != 0,
        };
        if !ready {
            return;
        }
        for (ctx, reply) in std::mem::take(&mut self.reads_unsent) {
            self.raw.read_index(ctx.clone());
            self.reads_sent.entry(ctx).or_default().push(reply);
        }
    }

    fn on_applied(&mut self, index: u64) {
        if index <= self.applied {
            return;
        }
        self.metrics
            .raft_proposals_applied
            .add(index - self.applied);
        self.applied = index;
        self.metrics.raft_applied_index.set(index as i64);
        self.shared.applied.store(index, Ordering::Relaxed);
        let applied = self.applied;
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.reads_waiting)
            .into_iter()
            .partition(|(i, _)| *i <= applied);
        self.reads_waiting = waiting;
        for (i, reply) in done {
            let _ = reply.send(i);
        }
    }

    fn snapshot(&mut self, index: u64, data: Vec<u8>) -> Result<u64> {
        if index > self.applied || index > self.raw.raft.raft_log.applied {
            return Err(RaftError::BadSnapshotIndex {
                index,
                reason: "not applied yet",
            }
            .into());
        }
        let meta = self.raw.mut_store().create_snapshot(index, data)?;
        info!(
            index = meta.index,
            term = meta.term,
            "snapshot taken, raft log compacted"
        );
        self.publish_status();
        Ok(meta.index)
    }

    /// Handles one Ready, in raft-rs's documented order.
    fn on_ready(&mut self) -> Result<()> {
        let t = Timer::start();
        let span = debug_span!(
            names::RAFT_READY,
            entries = tracing::field::Empty,
            committed = tracing::field::Empty,
            messages = tracing::field::Empty
        );
        let _enter = span.enter();
        let mut rd = self.raw.ready();
        let mut committed = 0usize;
        let mut messages = 0usize;

        if let Some(ss) = rd.ss() {
            self.on_soft_state(ss.leader_id, ss.raft_state);
        }
        if !rd.read_states().is_empty() {
            for rs in rd.take_read_states() {
                self.on_read_state(rs.request_ctx, rs.index);
            }
        }
        // 1. Messages: a leader sends before persisting (raft thesis 10.2.1).
        let msgs = rd.take_messages();
        messages += msgs.len();
        if !msgs.is_empty() {
            self.transport.send(msgs);
        }
        // 2. A snapshot from the leader: saved (file, WAL record) and the log replaced by it,
        //    then handed to the applier.
        if !rd.snapshot().is_empty() {
            let snap = rd.snapshot().clone();
            self.raw.mut_store().apply_snapshot(snap.clone())?;
            self.send_apply(Vec::new(), Some(snap), Vec::new())?;
        }
        // 3. Committed entries (all already persisted: raft-rs hands out no others).
        let ents = rd.take_committed_entries();
        committed += ents.len();
        self.handle_committed(ents)?;
        // 4. Append entries and the hard state: one WAL save, one fdatasync.
        let entries = rd.take_entries();
        span.record("entries", entries.len());
        let hs = rd.hs().cloned();
        // One save serves every proposal it persists: its layers go into each traced one.
        // A proposal is persisted by this save only if the entry at its index is its own (same
        // term): a deposed leader appending the new leader's entries over its proposals'
        // indexes persists none of them.
        let proposed = match (entries.first(), entries.last()) {
            (Some(a), Some(b)) => Some(a.index..=b.index),
            _ => None,
        };
        let persisted = |idx: u64, p: &Pending| persists(&entries, idx, p.term);
        let collecting = proposed
            .filter(|r| {
                self.proposals
                    .range(r.clone())
                    .any(|(&i, p)| p.trace.is_some() && persisted(i, p))
            })
            .map(|r| (r, request::collect()));
        self.raw.mut_store().save(hs.as_ref(), &entries)?;
        if let Some((proposed, c)) = collecting {
            c.finish(&mut self.saved);
            let served = self
                .proposals
                .range(proposed.clone())
                .filter(|&(&i, p)| persisted(i, p))
                .count() as i64;
            for l in &mut self.saved {
                l.attrs.set(request::SHARED_BY, served);
            }
            for (&i, p) in self.proposals.range(proposed) {
                if let (Some(t), true) = (&p.trace, persisted(i, p)) {
                    t.extend(&self.saved);
                }
            }
        }
        // 5. Messages that had to wait for the persistence (a follower's votes and acks).
        let msgs = rd.take_persisted_messages();
        messages += msgs.len();
        if !msgs.is_empty() {
            self.transport.send(msgs);
        }
        // 6. Advance.
        let mut light = self.raw.advance(rd);
        // 7. The light ready: commit index, messages, entries committed by what was saved.
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().set_commit(commit);
        }
        let msgs = light.take_messages();
        messages += msgs.len();
        if !msgs.is_empty() {
            self.transport.send(msgs);
        }
        let ents = light.take_committed_entries();
        committed += ents.len();
        self.handle_committed(ents)?;
        // 8. Everything committed so far is with the applier.
        self.raw.advance_apply();

        span.record("committed", committed);
        span.record("messages", messages);
        self.metrics.raft_ready.record(t.elapsed_ns());
        Ok(())
    }

    fn on_soft_state(&mut self, leader: u64, role: StateRole) {
        if leader != self.leader {
            info!(
                from = %format!("{:x}", self.leader),
                to = %format!("{:x}", leader),
                term = self.raw.raft.term,
                "raft leader changed"
            );
            self.metrics.raft_leader_changes.inc();
            self.leader = leader;
        }
        let is_leader = role == StateRole::Leader;
        self.metrics.raft_is_leader.set(i64::from(is_leader));
        self.metrics.raft_has_leader.set(i64::from(leader != 0));
        if !is_leader && !self.proposals.is_empty() {
            // Entries of a deposed leader may never commit; their proposers learn it when a
            // later entry takes the index (or by timing out).
            debug!(
                pending = self.proposals.len(),
                "lost leadership with proposals in flight"
            );
        }
    }

    fn on_read_state(&mut self, ctx: Vec<u8>, index: u64) {
        let Some(replies) = self.reads_sent.remove(&ctx) else {
            return;
        };
        for reply in replies {
            if index <= self.applied {
                let _ = reply.send(index);
            } else {
                self.reads_waiting.push((index, reply));
            }
        }
    }

    /// Applies conf changes to raft, answers the proposers of these entries and hands the
    /// batch to the applier.
    fn handle_committed(&mut self, entries: Vec<Entry>) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut decided = Vec::new();
        for e in &entries {
            match e.get_entry_type() {
                EntryType::EntryConfChange => {
                    let cc = ConfChange::decode(&e.data)
                        .map_err(|err| RaftError::codec(format!("conf change {}", e.index), err))?;
                    if let Some(rcc) = cc.to_raft() {
                        let cs = self.raw.apply_conf_change(&rcc).map_err(RaftError::from)?;
                        self.raw.mut_store().set_conf_state(e.index, cs);
                    }
                }
                EntryType::EntryConfChangeV2 => {
                    return Err(RaftError::ConfChangeV2 { index: e.index }.into())
                }
                EntryType::EntryNormal => {}
            }
            // Proposals at or below this index are decided: committed if the term matches,
            // replaced by another leader's entry otherwise.
            while let Some(entry) = self.proposals.first_entry() {
                if *entry.key() > e.index {
                    break;
                }
                let (index, p) = entry.remove_entry();
                let ok = index == e.index && p.term == e.term;
                decided.push((index, e.term, ok, p));
            }
        }
        self.metrics
            .raft_proposals_committed
            .add(entries.len() as u64);
        // Committed now: measured before the batch is queued (the wait for room in the apply
        // queue is `raft.apply_queue`'s), so that in a request's trace the commit ends before
        // its apply begins.
        let mut traces = Vec::new();
        for (index, term, ok, p) in &decided {
            if !ok {
                continue;
            }
            let ns = p.accepted.elapsed_ns();
            self.metrics.raft_propose_commit.record(ns);
            if let Some(t) = &p.trace {
                t.push(
                    Layer::new(names::RAFT_PROPOSE_COMMIT, &p.accepted, ns).with(&[
                        ("raft.index", i64::try_from(*index).unwrap_or(i64::MAX)),
                        ("raft.term", i64::try_from(*term).unwrap_or(i64::MAX)),
                    ]),
                );
                traces.push((*index, t.clone()));
            }
        }
        self.send_apply(entries, None, traces)?;
        self.publish_status();
        // Answered once the batch is queued: what a proposer hears committed is on its way to
        // the applier.
        for (index, term, ok, p) in decided {
            if ok {
                drop(p.span);
                let _ = p.reply.send(Ok(Committed { index, term }));
            } else {
                let _ = p.reply.send(Err(ServerError::ProposalDropped));
            }
        }
        Ok(())
    }

    /// Queues a batch for the applier, blocking while the queue is full; `traces` are the
    /// records of the requests whose entries these are.
    fn send_apply(
        &mut self,
        entries: Vec<Entry>,
        snapshot: Option<Snapshot>,
        traces: Vec<(u64, Arc<RequestTrace>)>,
    ) -> Result<()> {
        let index = entries
            .last()
            .map(|e| e.index)
            .or_else(|| snapshot.as_ref().map(|s| s.get_metadata().index))
            .unwrap_or(self.applied);
        let span = debug_span!(names::RAFT_APPLY_QUEUE, entries = entries.len());
        let batch = Apply {
            entries,
            snapshot,
            notify: ApplyNotify {
                index,
                tx: self.tx.clone(),
            },
            queued: Timer::start(),
            span,
            traces,
        };
        self.apply_tx.send(batch).map_err(|_| {
            warn!("the applier is gone");
            ServerError::Stopped
        })
    }

    fn publish_status(&self) {
        let r = &self.raw.raft;
        let s = &self.shared;
        let store = self.raw.store();
        let commit = r.raft_log.committed;
        s.term.store(r.term, Ordering::Relaxed);
        s.leader.store(r.leader_id, Ordering::Relaxed);
        s.commit.store(commit, Ordering::Relaxed);
        s.snapshot_index
            .store(store.snapshot_index(), Ordering::Relaxed);
        s.first_index
            .store(store.first_index().unwrap_or(0), Ordering::Relaxed);
        s.last_index
            .store(store.last_index().unwrap_or(0), Ordering::Relaxed);
        self.metrics.raft_term.set(r.term as i64);
        self.metrics.raft_commit_index.set(commit as i64);
        self.metrics
            .raft_is_leader
            .set(i64::from(r.state == StateRole::Leader));
    }
}

#[cfg(test)]
mod tests;
