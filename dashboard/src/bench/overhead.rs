//! `glass bench overhead`: what Glass's own measurements cost. The same put workload (64
//! clients over 8 connections) against glassd started here in each measurement mode, each on
//! a fresh data dir:
//!
//! | mode | glassd flags |
//! |---|---|
//! | `off` | `--glass-measurements off`: histograms record nothing, no per-request records |
//! | `histograms` | `--glass-measurements histograms`: histograms, no per-request records |
//! | `records` | (defaults) histograms and records, sampling 0: tail capture of slow requests |
//! | `sample 1%` | `--trace-sample-ratio 0.01`, exporting over OTLP/gRPC to a collector in this process |
//! | `sample 100%` | `--trace-sample-ratio 1`, the same collector |
//! | `100%, collector down` | `--trace-sample-ratio 1` to a closed port |
//! | `off (control)` | `off` again: how far two identical runs differ on this machine |
//!
//! The exporting modes run with `--trace-max-exports-per-second 0`, so that 100% means 100%.
//! The collector counts the spans it receives (decoding them, as a real one would: it shares
//! the machine with glassd and the load generator). With `--rounds N` the modes run N times,
//! interleaved (each round in a rotated order); the ratio to `off` is the median of each
//! round's ratio to that round's `off` run, which drifts less than absolute numbers do on a
//! shared machine. glassd's CPU per request comes from `/proc/<pid>/stat`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};

use super::server::{self, Server};
use super::{Load, Workload};

pub struct Options {
    pub glassd: PathBuf,
    pub total: u64,
    pub rounds: usize,
    pub key_size: usize,
    pub val_size: usize,
    /// Puts before each measured run (not measured): connections, allocator and page cache
    /// warm up.
    pub warmup: u64,
    pub progress: bool,
    /// `--modes`: the keys of the modes to run (empty: all). `off` always runs: the ratios
    /// are to it.
    pub modes: Vec<String>,
}

/// The keys `--modes` takes.
pub fn mode_keys() -> Vec<&'static str> {
    MODES.iter().map(|m| m.key).collect()
}

/// Where a mode's spans go.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Export {
    None,
    Collector,
    ClosedPort,
}

struct Mode {
    /// What `--modes` calls it.
    key: &'static str,
    name: &'static str,
    flags: &'static [&'static str],
    export: Export,
}

const MODES: [Mode; 7] = [
    Mode {
        key: "off",
        name: "off",
        flags: &["--glass-measurements", "off"],
        export: Export::None,
    },
    Mode {
        key: "histograms",
        name: "histograms",
        flags: &["--glass-measurements", "histograms"],
        export: Export::None,
    },
    Mode {
        key: "records",
        name: "records (sampling 0)",
        flags: &[],
        export: Export::None,
    },
    Mode {
        key: "sample1",
        name: "sample 1%, collector",
        flags: &["--trace-sample-ratio", "0.01"],
        export: Export::Collector,
    },
    Mode {
        key: "sample100",
        name: "sample 100%, collector",
        flags: &["--trace-sample-ratio", "1"],
        export: Export::Collector,
    },
    Mode {
        key: "down",
        name: "100%, collector down",
        flags: &["--trace-sample-ratio", "1"],
        export: Export::ClosedPort,
    },
    Mode {
        key: "control",
        name: "off (control)",
        flags: &["--glass-measurements", "off"],
        export: Export::None,
    },
];

/// One measured run of one mode.
#[derive(Clone, Copy, Default)]
struct Run {
    rps: f64,
    p99_ms: f64,
    failed: u64,
    /// glassd's CPU (user + system) per request, µs.
    cpu_us: f64,
    received: u64,
    dropped: u64,
}

/// Counts the spans it receives.
#[derive(Clone, Default)]
struct Counting(Arc<AtomicU64>);

#[tonic::async_trait]
impl TraceService for Counting {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans: usize = req
            .into_inner()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.0.fetch_add(spans as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// An OTLP/gRPC collector on a loopback port, in this process.
struct Collector {
    addr: SocketAddr,
    received: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Collector {
    async fn start() -> anyhow::Result<Collector> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the collector's port")?;
        let addr = listener.local_addr()?;
        let counting = Counting::default();
        let received = counting.0.clone();
        let task = tokio::spawn(async move {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            if let Err(e) = tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(counting))
                .serve_with_incoming(incoming)
                .await
            {
                eprintln!("glass bench overhead: the collector stopped: {e}");
            }
        });
        Ok(Collector {
            addr,
            received,
            task,
        })
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn run(opts: &Options) -> anyhow::Result<()> {
    anyhow::ensure!(
        opts.glassd.is_file(),
        "no glassd at {} (build it: cargo build --release -p glassd)",
        opts.glassd.display()
    );
    let rounds = opts.rounds.max(1);
    println!(
        "glass bench overhead: put, 64 clients / 8 conns, {} requests per run (+{} warm-up), \
         keys {} B, values {} B, {} round(s), modes interleaved",
        opts.total, opts.warmup, opts.key_size, opts.val_size, rounds
    );
    println!("glassd: {}", opts.glassd.display());
    let collector = Collector::start().await?;
    // A port nothing listens on: bound, then closed; on 127.0.0.3, where no glassd of this
    // run listens, so a member started later on the same port number cannot answer for it.
    let closed = server::free_port()?;
    for m in &opts.modes {
        anyhow::ensure!(
            MODES.iter().any(|x| x.key == m),
            "unknown mode {m:?} (one of {})",
            mode_keys().join(", ")
        );
    }
    let chosen: Vec<usize> = (0..MODES.len())
        .filter(|&i| {
            i == 0 || opts.modes.is_empty() || opts.modes.iter().any(|m| m == MODES[i].key)
        })
        .collect();
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); MODES.len()];
    for round in 0..rounds {
        for k in 0..chosen.len() {
            let i = chosen[(k + round) % chosen.len()];
            let mode = &MODES[i];
            let endpoint = match mode.export {
                Export::None => None,
                Export::Collector => Some(format!("http://{}", collector.addr)),
                Export::ClosedPort => Some(format!("http://127.0.0.3:{closed}")),
            };
            eprintln!("round {}/{rounds}: {}", round + 1, mode.name);
            let r = run_mode(opts, mode, endpoint, &collector).await?;
            runs[i].push(r);
        }
    }
    print_table(&runs);
    Ok(())
}

async fn run_mode(
    opts: &Options,
    mode: &Mode,
    endpoint: Option<String>,
    collector: &Collector,
) -> anyhow::Result<Run> {
    let mut flags: Vec<String> = mode.flags.iter().map(|s| s.to_string()).collect();
    if let Some(e) = endpoint {
        flags.extend(["--otlp-endpoint".into(), e]);
        flags.extend(["--trace-max-exports-per-second".into(), "0".into()]);
    }
    let server = Server::start_with("glassd", &opts.glassd, &flags, Duration::from_secs(30))
        .await
        .map_err(|e| anyhow::anyhow!("glassd ({}) did not start: {e}", mode.name))?;
    let load = |total: u64, progress: bool| Load {
        endpoints: vec![server.endpoint.clone()],
        conns: 8,
        clients: 64,
        total,
        rate: 0,
        progress,
    };
    // Distinct keys over the warm-up and the run.
    let keys = (opts.warmup + opts.total).max(1);
    let dropped_total = || {
        server
            .client_port()
            .and_then(|p| metrics_value(p, "glass_trace_spans_dropped_total"))
            .unwrap_or(0.0) as u64
    };
    let exporting = mode.export != Export::None;
    if opts.warmup > 0 {
        let w = Workload::put(opts.key_size, opts.val_size, keys, true);
        super::run(&load(opts.warmup, false), w).await?;
        // The warm-up's spans are not the run's.
        settle(collector, exporting).await;
    }
    let received_before = collector.received.load(Ordering::Relaxed);
    let dropped_before = dropped_total();
    let cpu_before = cpu_ticks(server.pid());
    let workload = Workload::put(opts.key_size, opts.val_size, keys, true);
    let report = super::run(&load(opts.total, opts.progress), workload).await?;
    // After the exporter's tail went out: its CPU is part of what the mode costs.
    let received = settle(collector, exporting).await;
    let cpu_after = cpu_ticks(server.pid());
    let dropped = dropped_total().saturating_sub(dropped_before);
    let cpu_us = match (cpu_before, cpu_after) {
        (Some(a), Some(b)) if report.ok() > 0 => {
            // USER_HZ is 100 on Linux.
            (b.saturating_sub(a)) as f64 * 10_000.0 / report.ok() as f64
        }
        _ => f64::NAN,
    };
    Ok(Run {
        rps: report.rps(),
        p99_ms: report.percentile(99.0) * 1000.0,
        failed: report.failed(),
        cpu_us,
        received: received - received_before,
        dropped,
    })
}

/// What the exporter still holds goes out within its batch delay (or is dropped): waits until
/// the collector's count stops moving (when `exporting`); the count.
async fn settle(collector: &Collector, exporting: bool) -> u64 {
    let mut received = collector.received.load(Ordering::Relaxed);
    if exporting {
        let mut still = 0;
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let now = collector.received.load(Ordering::Relaxed);
            still = if now == received { still + 1 } else { 0 };
            received = now;
            if still >= 3 {
                break;
            }
        }
    }
    received
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces): state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// One unlabelled sample of the member's `/metrics`.
fn metrics_value(port: u16, name: &str) -> Option<f64> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    String::from_utf8_lossy(&buf).lines().find_map(|l| {
        let (n, v) = l.split_once(' ')?;
        (n == name).then(|| v.trim().parse().ok()).flatten()
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| !x.is_nan());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn print_table(runs: &[Vec<Run>]) {
    let off = &runs[0];
    println!();
    println!(
        "{:<24} {:>10} {:>9} {:>9} {:>17} {:>10} {:>14} {:>12}",
        "mode",
        "req/s",
        "p99 ms",
        "vs off",
        "ratios (rounds)",
        "CPU µs/req",
        "spans recv/run",
        "dropped/run"
    );
    for (mode, rs) in MODES.iter().zip(runs).filter(|(_, rs)| !rs.is_empty()) {
        let ratios: Vec<f64> = rs
            .iter()
            .zip(off)
            .map(|(r, o)| if o.rps > 0.0 { r.rps / o.rps } else { f64::NAN })
            .collect();
        let spread = if ratios.len() > 1 {
            let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            format!("{lo:.3}–{hi:.3}")
        } else {
            "-".into()
        };
        let n = rs.len().max(1) as u64;
        let failed: u64 = rs.iter().map(|r| r.failed).sum();
        println!(
            "{:<24} {:>10.0} {:>9.2} {:>9.3} {:>17} {:>10.1} {:>14} {:>12}{}",
            mode.name,
            median(rs.iter().map(|r| r.rps).collect()),
            median(rs.iter().map(|r| r.p99_ms).collect()),
            median(ratios),
            spread,
            median(rs.iter().map(|r| r.cpu_us).collect()),
            rs.iter().map(|r| r.received).sum::<u64>() / n,
            rs.iter().map(|r| r.dropped).sum::<u64>() / n,
            if failed > 0 {
                format!("  ({failed} failed requests)")
            } else {
                String::new()
            }
        );
    }
    println!();
    println!("per round (req/s, CPU µs/req), in run order within each round:");
    for (mode, rs) in MODES.iter().zip(runs).filter(|(_, rs)| !rs.is_empty()) {
        let each: Vec<String> = rs
            .iter()
            .map(|r| format!("{:.0} {:.1}", r.rps, r.cpu_us))
            .collect();
        println!("  {:<24} {}", mode.name, each.join(" | "));
    }
    println!();
    println!(
        "req/s, p99 and CPU: medians over rounds; vs off: the median of each round's ratio to \
         that round's off run; ratios (rounds): the lowest and highest of those."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_proc_stat() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(vec![f64::NAN]).is_nan());
        assert!(cpu_ticks(std::process::id()).is_some());
    }

    #[test]
    fn the_first_mode_is_off_and_exporting_modes_have_no_limit() {
        assert_eq!(MODES[0].name, "off");
        assert!(MODES[0].flags.contains(&"off"));
        assert_eq!(MODES.len(), 7);
        assert_eq!(MODES[6].flags, MODES[0].flags, "the control repeats off");
    }
}
