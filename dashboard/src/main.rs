//! The `glass` binary: the operator's tool for Glass.
//! - `glass bench put|range|txn-put`: a load generator with etcd 3.4 benchmark's flags and report
//!   ([`bench`]), against any etcd-compatible endpoint.
//! - `glass bench compare`: the same workloads against a reference etcd 3.4 and glassd, both
//!   started by the command, with the ratios.
//! - `glass bench overhead`: put 64/8 against glassd started in each measurement mode
//!   (`--glass-measurements off|histograms|all`, sampling 0, 1%, 100%, collector down): what
//!   Glass's own measurements cost.
//! - `glass flags get [NAME]` / `glass flags set NAME VALUE [--persist]`: a running member's
//!   settings, changed without a restart ([`flags`]).
//! - `glass doctor [--duration 10s] [--interval 1s] [--json]`: samples every member, runs the
//!   rules and prints the verdict; exit 0 healthy, 1 warnings, 2 a bottleneck, 3 nothing could
//!   be judged ([`doctor`]).
//! - `glass top --endpoints URL[,URL…]`: the live dashboard ([`top`]).
//! - `glass demo`: a local glassd under a light load, with `glass top` on it ([`demo`]).
//!
//! Usage errors (bad flags) exit 64 for every command and Ctrl-C exits 130 (except in `top` and
//! `demo`, where Ctrl-C is the quit key and exits 0): neither can be mistaken for one of the
//! doctor's verdicts.
//!
//! Layout: `bench/mod.rs` (connections, clients, pacing), `bench/report.rs` (HDR histogram →
//! etcd's report), `bench/server.rs` (servers started here, killed on drop),
//! `bench/compare.rs` (the side-by-side run), `bench/overhead.rs` (measurement modes and an
//! in-process OTLP collector); `flags.rs` (GetFlags/SetFlag, table and JSON);
//! `doctor/mod.rs` (sampling and the report), `doctor/rules.rs` (the rules, pure functions);
//! `top/` (the dashboard: state, collector, views), `demo.rs` (a local glassd under load with
//! top on it).

mod bench;
mod demo;
mod doctor;
mod flags;
mod top;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "glass", version, about = "Glass: the operator's tool")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load generator with etcd 3.4 benchmark's shape; `compare` runs it against etcd and glassd.
    Bench(BenchCmd),
    /// A running member's settings: read them all, or change a runtime one without a restart.
    Flags(FlagsCmd),
    /// Samples every member for a while and names the bottleneck, with its evidence and what
    /// to do; exit 0 healthy, 1 warnings, 2 a bottleneck found (or a member down), 3 nothing
    /// could be judged, 64 a usage error, 130 interrupted.
    Doctor(DoctorCmd),
    /// The live dashboard: members, layers, host, slow requests, flags, diagnosis.
    Top(TopCmd),
    /// Starts a local glassd with a light synthetic load and opens `glass top` on it; quitting
    /// stops everything.
    Demo(DemoCmd),
}

#[derive(Args)]
struct DoctorCmd {
    /// gRPC endpoints, comma-separated `host:port` or `http://host:port`; the cluster's
    /// members are found through the first that answers.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    endpoints: Vec<String>,
    /// How long to sample (`10s`, `500ms`, `1m`): at least two intervals (one window to judge
    /// after the first snapshot, which covers the process's life).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: std::time::Duration,
    /// The diagnostics snapshot interval (at least 100ms).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    interval: std::time::Duration,
    /// Print the verdict as JSON.
    #[arg(long)]
    json: bool,
}

/// `1m30s`, `10s`, `500ms`: whole numbers with h, m, s or ms units.
pub(crate) fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("invalid duration {s:?} (use e.g. 10s, 500ms, 1m)");
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = std::time::Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let unit = match &rest[..unit_len] {
            "ms" => std::time::Duration::from_millis(1),
            "s" => std::time::Duration::from_secs(1),
            "m" => std::time::Duration::from_secs(60),
            "h" => std::time::Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += unit
            .checked_mul(u32::try_from(n).map_err(|_| bad())?)
            .ok_or_else(bad)?;
    }
    Ok(total)
}

#[derive(Args)]
struct DemoCmd {
    /// glassd binary (default: `glassd` next to this `glass`).
    #[arg(long)]
    glassd: Option<PathBuf>,
    /// Puts per second (linearizable ranges run at a quarter of it).
    #[arg(long, default_value_t = 200)]
    rate: u64,
    /// How often the member sends a snapshot.
    #[arg(long, default_value = "1s", value_parser = top::parse_interval)]
    interval: std::time::Duration,
}

#[derive(Args)]
struct TopCmd {
    /// gRPC endpoints, comma-separated `host:port` or `http://host:port`: one is enough, the
    /// other members are found through MemberList.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    endpoints: Vec<String>,
    /// How often the members send a snapshot (`500ms`, `1s`, ...).
    #[arg(long, default_value = "1s", value_parser = top::parse_interval)]
    interval: std::time::Duration,
}

#[derive(Args)]
struct FlagsCmd {
    /// gRPC endpoints, comma-separated `host:port` or `http://host:port` (the first that
    /// answers is used).
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "127.0.0.1:2379"
    )]
    endpoints: Vec<String>,
    #[command(subcommand)]
    action: FlagsAction,
}

#[derive(Subcommand)]
enum FlagsAction {
    /// Every setting (or NAME's) with its value, default, source, and whether it can change
    /// while running.
    Get {
        /// A flag name or alias (default: all).
        name: Option<String>,
        /// Output format.
        #[arg(short = 'w', long = "write-out", value_enum, default_value = "table")]
        write_out: flags::Format,
    },
    /// Changes a runtime flag at once; prints `NAME: OLD -> NEW`.
    Set {
        name: String,
        /// The new value in command-line syntax (`2s`, `array`, `-1`).
        #[arg(allow_hyphen_values = true)]
        value: String,
        /// Keep the change across restarts (`<data-dir>/glass-flags.yaml`).
        #[arg(long)]
        persist: bool,
    },
}

#[derive(Args)]
struct BenchCmd {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    workload: BenchWorkload,
}

/// etcd benchmark's global flags (accepted before or after the subcommand).
#[derive(Args)]
struct Global {
    /// gRPC endpoints, comma-separated `host:port` or `http://host:port`.
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "127.0.0.1:2379"
    )]
    endpoints: Vec<String>,
    /// Total number of gRPC connections.
    #[arg(long, global = true, default_value_t = 1)]
    conns: usize,
    /// Total number of concurrent clients, spread over the connections.
    #[arg(long, global = true, default_value_t = 1)]
    clients: usize,
    /// Total number of requests (default 10000; per run for `overhead`, default 50000).
    #[arg(long, global = true)]
    total: Option<u64>,
    /// Maximum requests per second over all clients (0 = no limit).
    #[arg(long, global = true, default_value_t = 0)]
    rate: u64,
    /// No progress bar on stderr (there is none when stderr is not a terminal).
    #[arg(long, global = true)]
    no_progress: bool,
}

#[derive(Subcommand)]
enum BenchWorkload {
    /// Puts of `--key-size` keys with one random `--val-size` value.
    Put {
        #[arg(long, default_value_t = 8)]
        key_size: usize,
        #[arg(long, default_value_t = 8)]
        val_size: usize,
        /// Maximum possible keys (keys are etcd's: the varint of a number, zero-padded).
        #[arg(long, default_value_t = 1)]
        key_space_size: u64,
        /// Use sequential keys (request i writes key i % key-space-size) instead of random ones.
        #[arg(long)]
        sequential_keys: bool,
    },
    /// Ranges over KEY, or [KEY, END).
    Range {
        key: String,
        end: Option<String>,
        /// Linearizable (`l`, through the leader's read index) or serializable (`s`, local).
        #[arg(long, value_enum, default_value = "l")]
        consistency: Consistency,
    },
    /// Txns of `--txn-ops` puts each.
    TxnPut {
        #[arg(long, default_value_t = 8)]
        key_size: usize,
        #[arg(long, default_value_t = 8)]
        val_size: usize,
        #[arg(long, default_value_t = 1)]
        key_space_size: u64,
        /// Puts per txn.
        #[arg(long, default_value_t = 1)]
        txn_ops: u64,
    },
    /// Runs the workloads (put 1 client; put 64/8; range s and l 64/8) against a
    /// reference etcd 3.4 and glassd, both started here on loopback ports, and prints the ratios.
    /// Uses --total and --rate; ignores --endpoints, --conns and --clients.
    Compare {
        #[arg(long, default_value_t = 32)]
        key_size: usize,
        #[arg(long, default_value_t = 256)]
        val_size: usize,
        /// etcd binary (default: `etcd` on PATH, else /usr/bin/etcd).
        #[arg(long)]
        etcd: Option<PathBuf>,
        /// glassd binary (default: `glassd` next to this `glass`).
        #[arg(long)]
        glassd: Option<PathBuf>,
    },
    /// What Glass's own measurements cost: put with 64 clients / 8 conns against glassd started
    /// here in each mode (measurements off; histograms only; records with sampling 0; sampling
    /// 1% and 100% exporting to an OTLP/gRPC collector in this process; 100% with the collector
    /// down), fresh data dir each run; a table of req/s, p99, ratio to off, glassd CPU per
    /// request, spans received and dropped. Uses --total (per run, default 50000); ignores
    /// --endpoints, --conns, --clients and --rate.
    Overhead {
        /// Rounds of all modes, interleaved (ratios are medians of per-round ratios).
        #[arg(long, default_value_t = 1)]
        rounds: usize,
        #[arg(long, default_value_t = 32)]
        key_size: usize,
        #[arg(long, default_value_t = 256)]
        val_size: usize,
        /// Puts before each measured run (not measured).
        #[arg(long, default_value_t = 2000)]
        warmup: u64,
        /// Only these modes (comma-separated; `off` always runs): off, histograms, records,
        /// sample1, sample100, down, control. Fewer modes alternate more tightly.
        #[arg(long, value_delimiter = ',')]
        modes: Vec<String>,
        /// glassd binary (default: `glassd` next to this `glass`).
        #[arg(long)]
        glassd: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Consistency {
    #[value(name = "l")]
    Linearizable,
    #[value(name = "s")]
    Serializable,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version print and exit 0; a usage error exits 64 (EX_USAGE), not
        // clap's 2, which is the doctor's "bottleneck found".
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(doctor::EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("glass: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Ctrl-C drops the command's future: servers started by `compare` are killed by their guards.
    let result = runtime.block_on(async {
        tokio::select! {
            r = execute(cli) => r.map(Some),
            _ = tokio::signal::ctrl_c() => Ok(None),
        }
    });
    match result {
        Ok(Some(code)) => code,
        // 128 + SIGINT, as a shell reports it: not a verdict.
        Ok(None) => {
            eprintln!("glass: interrupted");
            ExitCode::from(doctor::EXIT_INTERRUPTED)
        }
        Err(e) => {
            eprintln!("glass: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(cli: Cli) -> anyhow::Result<ExitCode> {
    let BenchCmd { global, workload } = match cli.command {
        Command::Bench(b) => b,
        Command::Demo(DemoCmd {
            glassd,
            rate,
            interval,
        }) => {
            demo::run(demo::Options {
                glassd: glassd_path(glassd)?,
                interval,
                rate,
            })
            .await?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Top(TopCmd {
            endpoints,
            interval,
        }) => {
            top::run(top::Options {
                endpoints,
                interval,
                note: None,
            })
            .await?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Flags(FlagsCmd { endpoints, action }) => {
            match action {
                FlagsAction::Get { name, write_out } => {
                    flags::get(&endpoints, name.as_deref(), write_out).await?
                }
                FlagsAction::Set {
                    name,
                    value,
                    persist,
                } => flags::set(&endpoints, &name, &value, persist).await?,
            };
            return Ok(ExitCode::SUCCESS);
        }
        Command::Doctor(d) => {
            let interval = d.interval.max(std::time::Duration::from_millis(100));
            // One window needs two snapshots: the first covers the process's life.
            if d.duration < 2 * interval {
                eprintln!(
                    "glass doctor: --duration {:?} is shorter than two intervals ({:?}): \
                     nothing could be judged; use e.g. --duration 10s --interval 1s",
                    d.duration,
                    2 * interval
                );
                return Ok(ExitCode::from(doctor::EXIT_USAGE));
            }
            let opts = doctor::Options {
                endpoints: d.endpoints,
                duration: d.duration,
                interval,
                json: d.json,
            };
            // Every failure of the doctor is "could not judge": 3, never a verdict's 1.
            return Ok(ExitCode::from(match doctor::run(&opts).await {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("glass doctor: {e:#}");
                    doctor::EXIT_UNREACHABLE
                }
            }));
        }
    };
    let progress = !global.no_progress && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let global_total = global.total;
    let load = bench::Load {
        endpoints: global.endpoints,
        conns: global.conns.max(1),
        clients: global.clients.max(1),
        total: global.total.unwrap_or(10_000),
        rate: global.rate,
        // A bar redrawn with \r only makes sense on a terminal.
        progress,
    };
    let workload = match workload {
        BenchWorkload::Put {
            key_size,
            val_size,
            key_space_size,
            sequential_keys,
        } => bench::Workload::put(key_size, val_size, key_space_size, sequential_keys),
        BenchWorkload::Range {
            key,
            end,
            consistency,
        } => bench::Workload::Range {
            key: key.into_bytes(),
            end: end.map(String::into_bytes),
            serializable: matches!(consistency, Consistency::Serializable),
        },
        BenchWorkload::TxnPut {
            key_size,
            val_size,
            key_space_size,
            txn_ops,
        } => bench::Workload::txn_put(key_size, val_size, key_space_size, txn_ops),
        BenchWorkload::Compare {
            key_size,
            val_size,
            etcd,
            glassd,
        } => {
            let opts = bench::compare::Options {
                etcd,
                glassd: glassd_path(glassd)?,
                key_size,
                val_size,
                total: load.total,
                rate: load.rate,
                progress: load.progress,
            };
            bench::compare::run(&opts).await?;
            return Ok(ExitCode::SUCCESS);
        }
        BenchWorkload::Overhead {
            rounds,
            key_size,
            val_size,
            warmup,
            glassd,
            modes,
        } => {
            let opts = bench::overhead::Options {
                glassd: glassd_path(glassd)?,
                total: global_total.unwrap_or(50_000),
                rounds,
                key_size,
                val_size,
                warmup,
                progress: load.progress,
                modes,
            };
            bench::overhead::run(&opts).await?;
            return Ok(ExitCode::SUCCESS);
        }
    };
    let report = bench::run(&load, workload).await?;
    print!("{report}");
    Ok(ExitCode::SUCCESS)
}

/// `--glassd`, else `glassd` next to this `glass`.
fn glassd_path(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match given {
        Some(p) => Ok(p),
        None => Ok(std::env::current_exe()
            .context("locating the glass binary")?
            .with_file_name("glassd")),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("1x").is_err());
    }
}
