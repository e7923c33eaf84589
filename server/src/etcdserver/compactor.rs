//! Auto compaction (etcd's `v3compactor`): `--auto-compaction-mode=periodic|revision` with
//! `--auto-compaction-retention`, proposing `Compact` requests through raft like a client.
//!
//! - **periodic** (retention P): every P/10 (at most 6 minutes: P is capped at one hour for the
//!   intervals) the current revision is sampled, keeping the samples of the last P; once P has
//!   passed since the last successful compaction (then every min(P, 1 h)), the oldest sample —
//!   the revision of about P ago (P/10 less after the first) — is compacted. A failed compaction is retried at the next sample.
//! - **revision** (retention N): every 5 minutes, compact at current revision − N unless that
//!   is not positive or was compacted last time.
//!
//! `ErrCompacted` counts as success (someone compacted further already). Time is tokio's, so
//! tests run it with paused time.
//!
//! [`run_watched`] takes the setting from a `tokio::sync::watch` channel, so that
//! `--auto-compaction-retention` can change while running: each change drops the running
//! schedule and starts the new one from scratch (periodic mode samples again from the change,
//! so its first compaction comes one period after it; revision mode waits its 5 minutes).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::error::ServerError;
use super::server::EtcdServer;
use crate::pb::etcdserverpb::CompactionRequest;
use crate::storage::mvcc::MvccError;

/// etcd's `revInterval`.
pub const REVISION_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// etcd's `retryDivisor`.
const RETRY_DIVISOR: u32 = 10;
const HOUR: Duration = Duration::from_secs(3600);

/// Which auto compaction to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoCompaction {
    Periodic(Duration),
    Revision(i64),
}

/// What the compactor needs of the server.
pub trait Compactable: Send + Sync + 'static {
    /// The current revision.
    fn rev(&self) -> i64;
    fn compact(&self, rev: i64) -> impl Future<Output = Result<(), ServerError>> + Send;
}

impl Compactable for EtcdServer {
    fn rev(&self) -> i64 {
        self.kv().current_revision()
    }

    async fn compact(&self, rev: i64) -> Result<(), ServerError> {
        EtcdServer::compact(
            self,
            CompactionRequest {
                revision: rev,
                physical: false,
            },
        )
        .await
        .map(|_| ())
    }
}

fn ok_or_compacted(r: &Result<(), ServerError>) -> bool {
    matches!(r, Ok(()) | Err(ServerError::Mvcc(MvccError::Compacted)))
}

/// Runs the auto compaction until the task is dropped or aborted.
pub async fn run<C: Compactable>(c: Arc<C>, mode: AutoCompaction) {
    match mode {
        AutoCompaction::Periodic(p) if !p.is_zero() => periodic(c, p).await,
        AutoCompaction::Revision(n) if n > 0 => revision(c, n).await,
        _ => {}
    }
}

/// Runs the auto compaction `mode` says (`None`: none), starting over whenever it changes,
/// until the task is dropped or aborted. When the sender is gone the schedule in force goes on.
pub async fn run_watched<C: Compactable>(
    c: Arc<C>,
    mut mode: watch::Receiver<Option<AutoCompaction>>,
) {
    loop {
        let current = *mode.borrow_and_update();
        match current {
            Some(m) => info!(mode = ?m, "auto compaction enabled"),
            None => debug!("auto compaction disabled"),
        }
        let schedule = async {
            if let Some(m) = current {
                run(c.clone(), m).await;
            }
            // A disabled (or zero) setting has no schedule: wait for the next change.
            std::future::pending::<()>().await
        };
        tokio::pin!(schedule);
        tokio::select! {
            () = &mut schedule => {}
            changed = mode.changed() => {
                if changed.is_err() {
                    // No more changes can come: the schedule in force goes on.
                    schedule.await;
                    return;
                }
            }
        }
    }
}

async fn periodic<C: Compactable>(c: Arc<C>, period: Duration) {
    let compact_interval = period.min(HOUR);
    let retry = compact_interval / RETRY_DIVISOR;
    let retentions = (period.as_nanos() / retry.as_nanos().max(1)) as usize + 1;
    let mut revs: Vec<i64> = Vec::new();
    let mut last_success = Instant::now();
    let mut base = period;
    loop {
        revs.push(c.rev());
        if revs.len() > retentions {
            // revs[0] is always the revision of `period` ago.
            revs.remove(0);
        }
        tokio::time::sleep(retry).await;
        if Instant::now().duration_since(last_success) < base {
            continue;
        }
        base = compact_interval;
        let rev = revs[0];
        info!(revision = rev, period = ?period, "starting auto periodic compaction");
        let r = c.compact(rev).await;
        if ok_or_compacted(&r) {
            info!(revision = rev, "completed auto periodic compaction");
            last_success = Instant::now();
        } else if let Err(e) = r {
            warn!(revision = rev, error = %e, retry_in = ?retry, "failed auto periodic compaction");
        }
    }
}

async fn revision<C: Compactable>(c: Arc<C>, retention: i64) {
    let mut prev = 0;
    loop {
        tokio::time::sleep(REVISION_INTERVAL).await;
        let rev = c.rev() - retention;
        if rev <= 0 || rev == prev {
            continue;
        }
        info!(
            revision = rev,
            retention, "starting auto revision compaction"
        );
        let r = c.compact(rev).await;
        if ok_or_compacted(&r) {
            prev = rev;
            info!(revision = rev, "completed auto revision compaction");
        } else if let Err(e) = r {
            warn!(revision = rev, error = %e, "failed auto revision compaction");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Mutex;

    /// A store whose revision grows by one per simulated minute.
    #[derive(Default)]
    struct Fake {
        rev: AtomicI64,
        compacted: Mutex<Vec<(u64, i64)>>,
        start: Mutex<Option<Instant>>,
    }

    impl Fake {
        fn minutes(&self) -> u64 {
            let start = *self.start.lock().unwrap().get_or_insert_with(Instant::now);
            Instant::now().duration_since(start).as_secs() / 60
        }
    }

    impl Compactable for Fake {
        fn rev(&self) -> i64 {
            let m = self.minutes() as i64;
            self.rev.store(m + 1, Ordering::Relaxed);
            m + 1
        }
        async fn compact(&self, rev: i64) -> Result<(), ServerError> {
            let m = self.minutes();
            self.compacted.lock().unwrap().push((m, rev));
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn periodic_compacts_the_revision_of_one_period_ago() {
        let f = Arc::new(Fake::default());
        f.minutes();
        let task = tokio::spawn(run(f.clone(), AutoCompaction::Periodic(HOUR)));
        tokio::time::sleep(Duration::from_secs(3 * 3600 + 60)).await;
        task.abort();
        let got = f.compacted.lock().unwrap().clone();
        // First after one hour, at the revision sampled an hour before (minute 0 → rev 1);
        // then hourly, each at the oldest of the 11 samples kept (taken every 6 minutes, the
        // last one 6 minutes before the compaction): minute 54 → rev 55, as etcd does.
        assert_eq!(got, vec![(60, 1), (120, 55), (180, 115)]);
    }

    #[tokio::test(start_paused = true)]
    async fn periodic_short_period_retries_every_tenth() {
        let f = Arc::new(Fake::default());
        f.minutes();
        let task = tokio::spawn(run(
            f.clone(),
            AutoCompaction::Periodic(Duration::from_secs(600)),
        ));
        tokio::time::sleep(Duration::from_secs(1230)).await;
        task.abort();
        let got = f.compacted.lock().unwrap().clone();
        assert_eq!(got, vec![(10, 1), (20, 10)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_changed_setting_restarts_the_schedule() {
        let f = Arc::new(Fake::default());
        f.minutes();
        let (tx, rx) = watch::channel(None);
        let task = tokio::spawn(run_watched(f.clone(), rx));
        // Disabled: nothing in 20 minutes.
        tokio::time::sleep(Duration::from_secs(20 * 60)).await;
        assert!(f.compacted.lock().unwrap().is_empty());
        // Revision mode from minute 20: compactions at 25, 30, ...
        tx.send(Some(AutoCompaction::Revision(3))).unwrap();
        tokio::time::sleep(Duration::from_secs(11 * 60)).await;
        // Periodic 10 minutes from minute 31: sampling starts over, first compaction at 41.
        tx.send(Some(AutoCompaction::Periodic(Duration::from_secs(600))))
            .unwrap();
        tokio::time::sleep(Duration::from_secs(11 * 60)).await;
        tx.send(None).unwrap();
        tokio::time::sleep(Duration::from_secs(30 * 60)).await;
        task.abort();
        let got = f.compacted.lock().unwrap().clone();
        assert_eq!(got, vec![(25, 23), (30, 28), (41, 32)]);
    }

    #[tokio::test(start_paused = true)]
    async fn revision_mode_keeps_the_last_n() {
        let f = Arc::new(Fake::default());
        f.minutes();
        let task = tokio::spawn(run(f.clone(), AutoCompaction::Revision(3)));
        tokio::time::sleep(Duration::from_secs(16 * 60)).await;
        task.abort();
        let got = f.compacted.lock().unwrap().clone();
        // Every 5 minutes: revision (minute + 1) - 3.
        assert_eq!(got, vec![(5, 3), (10, 8), (15, 13)]);
    }
}
