//! [`Wait`]: etcd's `pkg/wait` — callers register a request id and wait; whoever produces the
//! result (the applier, for proposals) triggers the id with it. And [`RequestIds`], etcd's
//! `pkg/idutil` generator of those ids.
//!
//! The waiting side is a `tokio` oneshot: awaited by the (async) API layer with a timeout, or
//! `blocking_recv`ed by a thread. The registry is a mutex-guarded map: a register and a
//! trigger per request, each a hash-map operation; etcd shards it 64 ways, which Glass can do
//! when the lock shows up in measurements.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;

use super::error::{Result, ServerError};

/// A registry of waiters keyed by request id. Cloning shares it.
#[derive(Debug)]
pub struct Wait<T> {
    map: Arc<Mutex<HashMap<u64, oneshot::Sender<T>>>>,
}

impl<T> Clone for Wait<T> {
    fn clone(&self) -> Self {
        Wait {
            map: self.map.clone(),
        }
    }
}

impl<T> Default for Wait<T> {
    fn default() -> Self {
        Wait {
            map: Arc::default(),
        }
    }
}

impl<T> Wait<T> {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, oneshot::Sender<T>>> {
        // Nothing panics while holding the lock; recover the map if something did.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers `id`; the returned waiter gets what [`Wait::trigger`] is given for it.
    pub fn register(&self, id: u64) -> Result<Waiter<T>> {
        let (tx, rx) = oneshot::channel();
        let mut map = self.lock();
        if map.contains_key(&id) {
            return Err(ServerError::DuplicateRequestId(id));
        }
        map.insert(id, tx);
        Ok(Waiter {
            id,
            rx,
            wait: self.clone(),
        })
    }

    /// Hands `value` to the waiter of `id`; false when nobody waits (it timed out, or the id
    /// was proposed by another member).
    pub fn trigger(&self, id: u64, value: T) -> bool {
        let tx = self.lock().remove(&id);
        match tx {
            Some(tx) => tx.send(value).is_ok(),
            None => false,
        }
    }

    /// Forgets `id` without a value (etcd: `Trigger(id, nil)` after a timeout).
    pub fn cancel(&self, id: u64) -> bool {
        self.lock().remove(&id).is_some()
    }

    pub fn is_registered(&self, id: u64) -> bool {
        self.lock().contains_key(&id)
    }

    /// Waiters registered and not yet triggered.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One registered request. Dropping it unregisters the id.
#[derive(Debug)]
pub struct Waiter<T> {
    id: u64,
    rx: oneshot::Receiver<T>,
    wait: Wait<T>,
}

impl<T> Waiter<T> {
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The value, or etcd's [`ServerError::Timeout`] when none comes within `timeout`
    /// (tokio's clock: paused in tests).
    pub async fn wait(mut self, timeout: Duration) -> Result<T> {
        match tokio::time::timeout(timeout, &mut self.rx).await {
            Ok(Ok(v)) => Ok(v),
            // The registry entry was cancelled: nobody will answer.
            Ok(Err(_)) | Err(_) => Err(ServerError::Timeout),
        }
    }

    /// The value, with no timeout of its own; [`ServerError::Timeout`] when the id was
    /// cancelled (nobody will answer).
    pub async fn recv(mut self) -> Result<T> {
        (&mut self.rx).await.map_err(|_| ServerError::Timeout)
    }

    /// [`Waiter::wait`] for a thread outside a runtime, with no timeout.
    pub fn blocking_wait(mut self) -> Result<T> {
        // `Drop` keeps the receiver from being moved out: swap in a closed one.
        let (_, closed) = oneshot::channel();
        std::mem::replace(&mut self.rx, closed)
            .blocking_recv()
            .map_err(|_| ServerError::Timeout)
    }
}

impl<T> Drop for Waiter<T> {
    fn drop(&mut self) {
        self.wait.cancel(self.id);
    }
}

/// etcd's `idutil.Generator`: ids unique across members and restarts — the member id's low
/// 16 bits, then 40 bits of the start time in milliseconds, then an 8-bit counter; the
/// counter carries into the time bits, so ids keep increasing.
#[derive(Debug)]
pub struct RequestIds {
    prefix: u64,
    suffix: AtomicU64,
}

const TS_BITS: u32 = 40;
const COUNT_BITS: u32 = 8;
const SUFFIX_BITS: u32 = TS_BITS + COUNT_BITS;

fn low_bits(x: u64, n: u32) -> u64 {
    x & ((1u64 << n) - 1)
}

impl RequestIds {
    /// `unix_ms`: the start time, read by the caller from its clock.
    pub fn new(member_id: u64, unix_ms: u64) -> Self {
        RequestIds {
            prefix: member_id << SUFFIX_BITS,
            suffix: AtomicU64::new(low_bits(unix_ms, TS_BITS) << COUNT_BITS),
        }
    }

    pub fn next(&self) -> u64 {
        let suffix = self.suffix.fetch_add(1, Ordering::Relaxed) + 1;
        self.prefix | low_bits(suffix, SUFFIX_BITS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_trigger_cancel() {
        let w: Wait<&str> = Wait::new();
        let a = w.register(1).unwrap();
        assert!(matches!(
            w.register(1),
            Err(ServerError::DuplicateRequestId(1))
        ));
        assert!(w.is_registered(1));
        assert!(w.trigger(1, "done"));
        assert!(!w.is_registered(1));
        assert!(!w.trigger(1, "again"), "a trigger reaches one waiter once");
        assert_eq!(a.blocking_wait().unwrap(), "done");
        // Dropping a waiter unregisters it.
        let b = w.register(2).unwrap();
        drop(b);
        assert!(w.is_empty());
        assert!(!w.trigger(2, "late"));
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_times_out_with_etcds_message() {
        let w: Wait<u64> = Wait::new();
        let waiter = w.register(7).unwrap();
        let err = waiter.wait(Duration::from_secs(7)).await.unwrap_err();
        assert!(matches!(err, ServerError::Timeout));
        assert_eq!(err.to_string(), "etcdserver: request timed out");
        assert!(!w.is_registered(7), "a timed-out waiter is forgotten");
    }

    #[test]
    fn request_ids_are_etcds() {
        // etcd's TestNewGenerator: member 0x12, time 0x3456 ms.
        let g = RequestIds::new(0x12, 0x3456);
        let first = g.next();
        assert_eq!(first, 0x0012_0000_0034_5601);
        assert_eq!(g.next(), first + 1);
        // The counter carries into the time bits.
        let g = RequestIds::new(0xffff, 0);
        for _ in 0..255 {
            g.next();
        }
        assert_eq!(g.next(), 0xffff_0000_0000_0100);
    }
}
