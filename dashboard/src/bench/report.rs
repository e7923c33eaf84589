//! The result of one run, printed in the layout of etcd 3.4's `pkg/report` (Summary, Response
//! time histogram, Latency distribution, Error distribution), with the numbers taken from an HDR
//! histogram of successful requests' latencies and a count of the failed ones per error.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Percentiles printed under "Latency distribution", as etcd prints them.
pub const PERCENTILES: [f64; 8] = [10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9];

pub struct Report {
    /// Wall time of the whole run.
    pub total_time: Duration,
    /// Latencies of the successful requests, in nanoseconds.
    pub latencies: hdrhistogram::Histogram<u64>,
    /// `rpc error: code = … desc = …` → count.
    pub errors: BTreeMap<String, u64>,
}

impl Report {
    pub fn empty() -> Self {
        Report {
            total_time: Duration::ZERO,
            latencies: super::new_histogram(),
            errors: BTreeMap::new(),
        }
    }

    pub fn record(&mut self, latency: Duration, error: Option<tonic::Status>) {
        match error {
            None => {
                let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX).max(1);
                // An auto-resizing histogram only refuses values beyond u64 range.
                let _ = self.latencies.record(ns);
            }
            Some(s) => {
                let key = format!("rpc error: code = {:?} desc = {}", s.code(), s.message());
                *self.errors.entry(key).or_insert(0) += 1;
            }
        }
    }

    pub fn merge(&mut self, other: Report) {
        let _ = self.latencies.add(&other.latencies);
        for (e, n) in other.errors {
            *self.errors.entry(e).or_insert(0) += n;
        }
    }

    pub fn ok(&self) -> u64 {
        self.latencies.len()
    }

    pub fn failed(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Successful requests per second of wall time (etcd divides the same way).
    pub fn rps(&self) -> f64 {
        let secs = self.total_time.as_secs_f64();
        if secs > 0.0 {
            self.ok() as f64 / secs
        } else {
            0.0
        }
    }

    /// Latency at percentile `p` (0–100), in seconds.
    pub fn percentile(&self, p: f64) -> f64 {
        secs(self.latencies.value_at_percentile(p))
    }
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// etcd's "Response time histogram": 10 equal buckets from fastest to slowest (plus the slowest
/// itself), each with its count and a bar of up to 40 `∎`.
fn histogram_lines(h: &Histogram<u64>) -> Vec<(f64, u64)> {
    const BUCKETS: usize = 10;
    let (lo, hi) = (h.min() as f64, h.max() as f64);
    let step = (hi - lo) / BUCKETS as f64;
    let mut marks: Vec<f64> = (0..BUCKETS).map(|i| lo + step * i as f64).collect();
    marks.push(hi);
    let mut counts = vec![0u64; marks.len()];
    for v in h.iter_recorded() {
        let value = h.lowest_equivalent(v.value_iterated_to()) as f64;
        let idx = marks
            .iter()
            .position(|m| value <= *m)
            .unwrap_or(marks.len() - 1);
        counts[idx] += v.count_at_value();
    }
    marks.into_iter().map(|m| m / 1e9).zip(counts).collect()
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = &self.latencies;
        writeln!(f)?;
        writeln!(f, "Summary:")?;
        writeln!(f, "  Total:\t{:.4} secs.", self.total_time.as_secs_f64())?;
        if self.ok() > 0 {
            writeln!(f, "  Slowest:\t{:.4} secs.", secs(h.max()))?;
            writeln!(f, "  Fastest:\t{:.4} secs.", secs(h.min()))?;
            writeln!(f, "  Average:\t{:.4} secs.", h.mean() / 1e9)?;
            writeln!(f, "  Stddev:\t{:.4} secs.", h.stdev() / 1e9)?;
            writeln!(f, "  Requests/sec:\t{:.4}", self.rps())?;
            writeln!(f)?;
            writeln!(f, "Response time histogram:")?;
            let lines = histogram_lines(h);
            let max = lines.iter().map(|(_, c)| *c).max().unwrap_or(0).max(1);
            for (mark, count) in lines {
                let bar = "∎".repeat((count * 40 / max) as usize);
                writeln!(f, "  {mark:.4} [{count}]\t|{bar}")?;
            }
            writeln!(f)?;
            writeln!(f, "Latency distribution:")?;
            for p in PERCENTILES {
                writeln!(f, "  {p}% in {:.4} secs.", self.percentile(p))?;
            }
        }
        writeln!(f)?;
        writeln!(
            f,
            "Requests: {} ({} ok, {} failed)",
            self.ok() + self.failed(),
            self.ok(),
            self.failed()
        )?;
        if !self.errors.is_empty() {
            writeln!(f)?;
            writeln!(f, "Error distribution:")?;
            for (e, n) in &self.errors {
                writeln!(f, "  [{n}]\t{e}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_counts_successes_and_errors() {
        let mut a = Report::empty();
        for ms in 1..=100 {
            a.record(Duration::from_millis(ms), None);
        }
        let mut b = Report::empty();
        b.record(
            Duration::from_millis(5),
            Some(tonic::Status::unavailable("down")),
        );
        b.record(
            Duration::from_millis(5),
            Some(tonic::Status::unavailable("down")),
        );
        a.merge(b);
        a.total_time = Duration::from_secs(1);
        assert_eq!(a.ok(), 100);
        assert_eq!(a.failed(), 2);
        assert!((a.rps() - 100.0).abs() < 1e-9);
        assert!((a.percentile(50.0) - 0.050).abs() < 0.001);
        let text = a.to_string();
        assert!(text.contains("Requests: 102 (100 ok, 2 failed)"), "{text}");
        assert!(
            text.contains("[2]\trpc error: code = Unavailable desc = down"),
            "{text}"
        );
        assert!(text.contains("99.9% in 0.1000 secs."), "{text}");
        let counted: u64 = histogram_lines(&a.latencies).iter().map(|(_, c)| c).sum();
        assert_eq!(counted, 100);
    }

    #[test]
    fn empty_report_prints_without_stats() {
        let text = Report::empty().to_string();
        assert!(text.contains("Requests: 0 (0 ok, 0 failed)"), "{text}");
        assert!(!text.contains("Slowest"), "{text}");
    }
}
