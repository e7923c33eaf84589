//! The measurement stopwatch.
//!
//! Measurements read the monotonic clock through [`Timer`] only. It measures how long something
//! took; it never drives behaviour (timeouts, expiry and batching use the server's injected
//! `Clock`), so tests stay deterministic whatever the timer reads.

use std::time::{Duration, Instant};

/// A started stopwatch.
#[derive(Debug, Clone, Copy)]
pub struct Timer(Instant);

impl Timer {
    /// Starts a stopwatch now.
    #[inline]
    pub fn start() -> Self {
        Timer(Instant::now())
    }

    /// Time since start.
    #[inline]
    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }

    /// When the stopwatch started (for per-request records, see [`crate::request`]).
    #[inline]
    pub fn started_at(&self) -> Instant {
        self.0
    }

    /// Nanoseconds since start, saturating at `u64::MAX`.
    #[inline]
    pub fn elapsed_ns(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}
