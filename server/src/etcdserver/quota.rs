//! The backend quota (etcd's `backendQuota`): a write is within quota while the backend file
//! plus the write's cost stays under `--quota-backend-bytes`. Changeable while running.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::storage::backend::Backend;

/// The quota in bytes; 0 = no quota (etcd's negative `--quota-backend-bytes`).
#[derive(Debug, Default)]
pub struct Quota(AtomicU64);

impl Quota {
    pub fn new(bytes: Option<u64>) -> Quota {
        Quota(AtomicU64::new(bytes.unwrap_or(0)))
    }

    pub fn set(&self, bytes: Option<u64>) {
        self.0.store(bytes.unwrap_or(0), Ordering::Relaxed);
    }

    /// The quota, if there is one.
    pub fn bytes(&self) -> Option<u64> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            b => Some(b),
        }
    }

    /// etcd's `Available`: `size + cost < quota`.
    pub fn available(&self, backend: &Backend, cost: u64) -> bool {
        match self.bytes() {
            None => true,
            Some(q) => backend.size().saturating_add(cost) < q,
        }
    }
}
