//! Physical compaction (etcd's `kvstore_compaction.go`): deleting compacted revisions from the
//! backend's `key` bucket without stalling writers.
//!
//! [`KvStore::compact`](super::KvStore::compact) does the quick part itself (persist
//! `scheduledCompactRev`, compact the index) and hands the rest to the store's compactor
//! thread, which runs compactions one after another, in order: it walks the revisions at or
//! below the compaction revision `batch_limit` at a time, each batch under the batch tx lock
//! (deleting every revision not in the keep set, then committing), pausing between batches so
//! writers get the lock. The last batch writes `finishedCompactRev` in the same batch tx as its
//! deletes.
//!
//! The thread is the store's: dropping the store stops it at the next pause; a compaction cut
//! short is finished when the store opens again (its `scheduledCompactRev` is newer than its
//! `finishedCompactRev`). Its spans go to the subscriber of the thread that called `compact`
//! and *follow from* that caller's span.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use telemetry::{names, Timer};
use tracing::field::Empty;

use super::kv_store::Shared;
use super::schema::{self, FINISHED_COMPACT_KEY, KEY_BUCKET, META_BUCKET};
use super::{Available, MvccError, Revision};

/// Waits for a physical compaction (or a barrier) to finish.
#[derive(Debug)]
pub struct CompactionHandle {
    rx: Receiver<Result<(), MvccError>>,
    /// The outcome once received (the channel delivers it once).
    outcome: Option<Result<(), MvccError>>,
}

impl CompactionHandle {
    fn new(rx: Receiver<Result<(), MvccError>>) -> Self {
        CompactionHandle { rx, outcome: None }
    }

    /// Blocks until done: `Ok` once every compacted revision is deleted and
    /// `finishedCompactRev` written; [`MvccError::Closed`] when the store stopped first; the
    /// backend's error when a batch failed (the compaction resumes at the next open).
    pub fn wait(&mut self) -> Result<(), MvccError> {
        if self.outcome.is_none() {
            self.outcome = Some(self.rx.recv().unwrap_or(Err(MvccError::Closed)));
        }
        self.outcome.clone().unwrap_or(Err(MvccError::Closed))
    }

    /// [`wait`](Self::wait) for at most `timeout`; `None` when not done by then.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<Result<(), MvccError>> {
        if self.outcome.is_none() {
            self.outcome = match self.rx.recv_timeout(timeout) {
                Ok(r) => Some(r),
                Err(RecvTimeoutError::Timeout) => return None,
                Err(RecvTimeoutError::Disconnected) => Some(Err(MvccError::Closed)),
            };
        }
        self.outcome.clone()
    }
}

enum Job {
    Compact {
        rev: i64,
        keep: Available,
        done: Sender<Result<(), MvccError>>,
        /// The subscriber and span of the `compact` call, for this job's spans.
        dispatch: tracing::Dispatch,
        cause: tracing::Span,
    },
    Barrier(Sender<Result<(), MvccError>>),
}

/// The stop signal; a condvar so that a pause ends at once.
#[derive(Default)]
struct Stop {
    stopped: Mutex<bool>,
    cv: Condvar,
}

impl Stop {
    fn set(&self) {
        *self.stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.cv.notify_all();
    }

    fn is_set(&self) -> bool {
        *self.stopped.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits `d` unless stopped meanwhile; true to go on.
    fn pause(&self, d: Duration) -> bool {
        let stopped = self.stopped.lock().unwrap_or_else(PoisonError::into_inner);
        if d.is_zero() || *stopped {
            return !*stopped;
        }
        let (stopped, _) = self
            .cv
            .wait_timeout_while(stopped, d, |s| !*s)
            .unwrap_or_else(PoisonError::into_inner);
        !*stopped
    }
}

/// The compactor thread and the queue feeding it (etcd's FIFO scheduler).
pub(super) struct Compactor {
    /// `None` once stopping: the thread ends when the queue is closed.
    jobs: Option<Sender<Job>>,
    stop: Arc<Stop>,
    thread: Option<JoinHandle<()>>,
}

impl Compactor {
    pub fn start(shared: Arc<Shared>) -> Result<Compactor, MvccError> {
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(Stop::default());
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("mvcc-compactor".into())
            .spawn(move || run(&shared, &thread_stop, rx))
            .map_err(|e| MvccError::Thread(e.to_string()))?;
        Ok(Compactor {
            jobs: Some(tx),
            stop,
            thread: Some(thread),
        })
    }

    pub fn schedule(&self, rev: i64, keep: Available) -> CompactionHandle {
        let (done, rx) = mpsc::channel();
        let job = Job::Compact {
            rev,
            keep,
            done,
            dispatch: tracing::dispatcher::get_default(Clone::clone),
            cause: tracing::Span::current(),
        };
        self.send(job);
        CompactionHandle::new(rx)
    }

    pub fn barrier(&self) -> CompactionHandle {
        let (done, rx) = mpsc::channel();
        self.send(Job::Barrier(done));
        CompactionHandle::new(rx)
    }

    fn send(&self, job: Job) {
        // A closed queue drops the job, and with it its sender: the handle reports `Closed`.
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(job);
        }
    }
}

impl Drop for Compactor {
    fn drop(&mut self) {
        self.stop.set();
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("mvcc: the compactor thread panicked");
            }
        }
    }
}

fn run(shared: &Shared, stop: &Stop, jobs: Receiver<Job>) {
    while let Ok(job) = jobs.recv() {
        if stop.is_set() {
            return;
        }
        match job {
            Job::Barrier(done) => {
                let _ = done.send(Ok(()));
            }
            Job::Compact {
                rev,
                keep,
                done,
                dispatch,
                cause,
            } => {
                let outcome = tracing::dispatcher::with_default(&dispatch, || {
                    compact_backend(shared, stop, rev, &keep, &cause)
                });
                match outcome {
                    Ok(true) => {
                        let _ = done.send(Ok(()));
                    }
                    // Stopped: dropping `done` tells the waiter.
                    Ok(false) => return,
                    Err(e) => {
                        tracing::error!(revision = rev, error = %e, "mvcc: compaction failed");
                        let _ = done.send(Err(e));
                    }
                }
            }
        }
    }
}

/// Deletes the revisions at or below `rev` not in `keep`, batch by batch; true when finished,
/// false when stopped in a pause.
fn compact_backend(
    sh: &Shared,
    stop: &Stop,
    rev: i64,
    keep: &Available,
    cause: &tracing::Span,
) -> Result<bool, MvccError> {
    let total = Timer::start();
    let span = tracing::debug_span!(
        parent: None,
        names::MVCC_COMPACTION,
        revision = rev,
        batches = Empty,
        deleted = Empty
    );
    span.follows_from(cause);
    let _entered = span.enter();
    let limit = sh.config.compaction_batch_limit.max(1);
    // Every revision with main <= rev sorts below these 8 bytes.
    let end = (rev.saturating_add(1) as u64).to_be_bytes();
    let mut from = Revision::new(0, 0).to_bytes();
    let mut batches = 0u64;
    let mut deleted = 0u64;
    loop {
        let batch_timer = Timer::start();
        let batch_span = tracing::debug_span!(
            names::MVCC_COMPACTION_PAUSE,
            revision = rev,
            batch = batches,
            scanned = Empty,
            deleted = Empty
        );
        let batch_entered = batch_span.enter();
        let mut tx = sh.backend.batch_tx();
        let entries = tx.range(KEY_BUCKET, &from, &end, limit)?;
        let mut n = 0u64;
        for (k, _) in &entries {
            if !keep.contains(&Revision::from_bytes(k)?) {
                tx.delete(KEY_BUCKET, k)?;
                n += 1;
            }
        }
        let finished = entries.len() < limit;
        if finished {
            tx.put(
                META_BUCKET,
                FINISHED_COMPACT_KEY,
                &schema::encode_compact_rev(rev),
            )?;
            drop(tx);
        } else {
            if let Some((k, _)) = entries.last() {
                let last = Revision::from_bytes(k)?;
                from = Revision::new(last.main, last.sub + 1).to_bytes();
            }
            drop(tx);
            // Commit the deletes now rather than let them pile up in the batch.
            sh.backend.force_commit()?;
        }
        batches += 1;
        deleted += n;
        sh.metrics.mvcc_compaction_keys.add(n);
        batch_span.record("scanned", entries.len());
        batch_span.record("deleted", n);
        sh.metrics
            .mvcc_compaction_pause
            .record(batch_timer.elapsed_ns());
        drop(batch_entered);
        if finished {
            span.record("batches", batches);
            span.record("deleted", deleted);
            sh.metrics.mvcc_compaction.record(total.elapsed_ns());
            tracing::info!(
                revision = rev,
                deleted,
                took_ms = total.elapsed().as_millis() as u64,
                "mvcc: finished scheduled compaction"
            );
            return Ok(true);
        }
        if !stop.pause(sh.config.compaction_pause) {
            return Ok(false);
        }
    }
}
