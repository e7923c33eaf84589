//! A lock-free log-linear histogram of `u64` values (nanoseconds, pages, bytes).
//!
//! Values are bucketed by their power of two and, inside it, into [`SUB_BUCKETS`] equal parts:
//! every bucket's width is at most 1/8 of its lower bound, so a quantile read back is within
//! 12.5 % of the true value. Values below [`SUB_BUCKETS`] get a bucket each. Recording is two
//! relaxed `fetch_add`s (bucket and sum) and a load of the maximum (a `fetch_max` only when it
//! grows): no allocation, no lock, safe from any thread. The total count is the buckets' sum.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// Sub-buckets per power of two (a power of two itself).
pub const SUB_BUCKETS: usize = 8;
const SUB_BITS: u32 = SUB_BUCKETS.trailing_zeros();
/// Exact buckets for 0..SUB_BUCKETS, then SUB_BUCKETS per power of two from 2^SUB_BITS to 2^63.
const BUCKETS: usize = SUB_BUCKETS + (64 - SUB_BITS as usize) * SUB_BUCKETS;

/// The always-on histogram.
pub struct Histogram {
    counts: [AtomicU64; BUCKETS],
    // No total count: it is the buckets' sum (one contended `fetch_add` less per record).
    sum: AtomicU64,
    max: AtomicU64,
    /// False only when measurements are off (`--glass-measurements=off`, for measuring what
    /// they cost): written once at start, read (relaxed) by every record.
    recording: AtomicBool,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.snapshot();
        f.debug_struct("Histogram")
            .field("count", &s.count)
            .field("p50", &s.quantile(0.5))
            .field("p99", &s.quantile(0.99))
            .field("max", &s.max)
            .finish()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

/// The bucket a value falls in.
#[inline]
fn bucket_of(v: u64) -> usize {
    if v < SUB_BUCKETS as u64 {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros(); // >= SUB_BITS
    let sub = ((v >> (exp - SUB_BITS)) as usize) & (SUB_BUCKETS - 1);
    SUB_BUCKETS + (exp - SUB_BITS) as usize * SUB_BUCKETS + sub
}

/// The smallest value that falls in bucket `i`.
fn lower_bound(i: usize) -> u64 {
    if i < SUB_BUCKETS {
        return i as u64;
    }
    let exp = (i - SUB_BUCKETS) / SUB_BUCKETS + SUB_BITS as usize;
    let sub = ((i - SUB_BUCKETS) % SUB_BUCKETS) as u64;
    (1u64 << exp) + (sub << (exp - SUB_BITS as usize))
}

/// The largest value that falls in bucket `i`.
fn upper_bound(i: usize) -> u64 {
    if i + 1 >= BUCKETS {
        u64::MAX
    } else {
        lower_bound(i + 1) - 1
    }
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Histogram {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
            recording: AtomicBool::new(true),
        }
    }

    /// Records one value.
    #[inline]
    pub fn record(&self, v: u64) {
        if !self.recording.load(Relaxed) {
            return;
        }
        self.counts[bucket_of(v)].fetch_add(1, Relaxed);
        self.sum.fetch_add(v, Relaxed);
        // A new maximum is rare: a plain load spares the locked read-modify-write (and the
        // cache line's ownership) on almost every record.
        if v > self.max.load(Relaxed) {
            self.max.fetch_max(v, Relaxed);
        }
    }

    /// Stops (or resumes) recording: [`Histogram::record`] then does nothing.
    pub fn set_recording(&self, on: bool) {
        self.recording.store(on, Relaxed);
    }

    /// Number of values recorded so far.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// A consistent-enough copy (each counter read once; concurrent records may straddle it).
    pub fn snapshot(&self) -> HistogramSnapshot {
        let counts: Vec<u64> = self.counts.iter().map(|c| c.load(Relaxed)).collect();
        HistogramSnapshot {
            count: counts.iter().sum(),
            counts,
            sum: self.sum.load(Relaxed),
            max: self.max.load(Relaxed),
        }
    }
}

/// A copy of a histogram's counters; subtract two to get a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    counts: Vec<u64>,
    pub count: u64,
    pub sum: u64,
    /// Largest value ever recorded (not windowed by [`HistogramSnapshot::since`]).
    pub max: u64,
}

impl HistogramSnapshot {
    /// The value at quantile `q` (0.0..=1.0): the upper bound of the bucket holding it, capped
    /// at the maximum seen — but never below that bucket's lower bound: a snapshot taken
    /// between a record's bucket increment and its `max` update must not report a new outlier
    /// as the old maximum. 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper_bound(i).min(self.max.max(lower_bound(i)));
            }
        }
        self.max
    }

    /// Mean of the recorded values, 0 when empty.
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    /// The values recorded after `earlier` was taken.
    pub fn since(&self, earlier: &HistogramSnapshot) -> HistogramSnapshot {
        HistogramSnapshot {
            counts: self
                .counts
                .iter()
                .zip(&earlier.counts)
                .map(|(a, b)| a.saturating_sub(*b))
                .collect(),
            count: self.count.saturating_sub(earlier.count),
            sum: self.sum.saturating_sub(earlier.sum),
            max: self.max,
        }
    }

    /// How many recorded values are certainly at most `v`: the values in every bucket whose
    /// upper bound is `<= v`. That is exactly the number of values `<= v` when `v` is a
    /// bucket's upper bound (every value below 16 is one, and so is every 2^k − 1); otherwise
    /// the bucket straddling `v` is left out whole, so a value `x <= v` is missed only when `v`
    /// is below the top of `x`'s bucket, which is less than `x / 8` above `x`: only when
    /// `x <= v < x · 9/8`. Never counts a value above `v`.
    ///
    /// Never above [`HistogramSnapshot::count`], which is the sum of the buckets (the `min`
    /// below is a defensive no-op).
    pub fn count_at_most(&self, v: u64) -> u64 {
        let in_buckets: u64 = self
            .counts
            .iter()
            .enumerate()
            .take_while(|&(i, _)| upper_bound(i) <= v)
            .map(|(_, c)| c)
            .sum();
        in_buckets.min(self.count)
    }

    /// Non-empty buckets as (upper bound, cumulative count), for Prometheus `_bucket` lines.
    pub fn cumulative_buckets(&self) -> Vec<(u64, u64)> {
        let mut seen = 0;
        let mut out = Vec::new();
        for (i, c) in self.counts.iter().enumerate() {
            if *c > 0 {
                seen += c;
                out.push((upper_bound(i), seen));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_ordered() {
        for i in 0..BUCKETS - 1 {
            assert_eq!(upper_bound(i) + 1, lower_bound(i + 1), "bucket {i}");
            assert_eq!(bucket_of(lower_bound(i)), i);
            assert_eq!(bucket_of(upper_bound(i)), i);
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_are_within_an_eighth() {
        let h = Histogram::new();
        for v in 1..=10_000u64 {
            h.record(v * 1000);
        }
        let s = h.snapshot();
        assert_eq!(s.count, 10_000);
        for (q, want) in [(0.5, 5_000_000f64), (0.9, 9_000_000.0), (0.99, 9_900_000.0)] {
            let got = s.quantile(q) as f64;
            assert!((got - want).abs() / want <= 0.125, "q{q}: {got} vs {want}");
        }
        assert_eq!(s.quantile(1.0), 10_000_000);
        assert_eq!(s.max, 10_000_000);
    }

    #[test]
    fn a_lagging_max_does_not_hide_a_new_outlier() {
        let h = Histogram::new();
        h.record(5_000);
        let mut s = h.snapshot();
        // As a snapshot taken between a 40 ms record's bucket increment and its max update.
        s.counts[bucket_of(40_000_000)] += 1;
        s.count += 1;
        assert_eq!(s.max, 5_000);
        assert!(s.quantile(1.0) >= lower_bound(bucket_of(40_000_000)));
        assert!(s.quantile(1.0) <= 40_000_000 + 40_000_000 / 8);
    }

    #[test]
    fn windows_subtract() {
        let h = Histogram::new();
        h.record(5);
        let a = h.snapshot();
        h.record(100);
        h.record(100);
        let w = h.snapshot().since(&a);
        assert_eq!(w.count, 2);
        assert_eq!(w.sum, 200);
        assert!(w.quantile(0.5) >= 100);
    }

    #[test]
    fn count_at_most_is_exact_on_bucket_bounds_and_never_over() {
        let h = Histogram::new();
        for v in [0, 3, 7, 8, 15, 16, 17, 18, 1000, 1_000_000] {
            h.record(v);
        }
        let s = h.snapshot();
        assert_eq!(s.count_at_most(0), 1);
        assert_eq!(s.count_at_most(7), 3);
        assert_eq!(s.count_at_most(15), 5);
        // 16 and 17 share the bucket 16..=17: it counts at 17, not at 16.
        assert_eq!(s.count_at_most(16), 5);
        assert_eq!(s.count_at_most(17), 7);
        assert_eq!(s.count_at_most(18), 7);
        assert_eq!(s.count_at_most(19), 8);
        // 1_000_000 is in the bucket 983_040..=1_048_575.
        assert_eq!(s.count_at_most(1_000_000), 9);
        assert_eq!(s.count_at_most(1_048_575), 10);
        assert_eq!(s.count_at_most(u64::MAX), 10);
        for v in [0u64, 5, 16, 999, 1000, 1001, 999_999, 2_000_000] {
            let truth = [0u64, 3, 7, 8, 15, 16, 17, 18, 1000, 1_000_000]
                .iter()
                .filter(|&&x| x <= v)
                .count() as u64;
            assert!(s.count_at_most(v) <= truth, "at most {v}");
        }
    }

    #[test]
    fn empty_is_zero() {
        let s = Histogram::new().snapshot();
        assert_eq!(s.quantile(0.99), 0);
        assert_eq!(s.mean(), 0.0);
    }
}
