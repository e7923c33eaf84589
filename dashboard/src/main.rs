//! The `glass` binary: the operator's tool for Glass.
//! - `glass bench put|range|txn-put`: a load generator with etcd 3.4 benchmark's flags and report
//!   ([`bench`]), against any etcd-compatible endpoint.
//! - `glass bench compare`: the same workloads against a reference etcd 3.4 and glassd, both
//!   started by the command, with the ratios.
//! - `glass flags get [NAME]` / `glass flags set NAME VALUE [--persist]`: a running member's
//!   settings, changed without a restart ([`flags`]).
//! - `glass top --endpoints URL[,URL…]`: the live dashboard ([`top`]).
//! - `glass demo`: a local glassd under a light load, with `glass top` on it ([`demo`]).
//!
//! Layout: `bench/mod.rs` (connections, clients, pacing), `bench/report.rs` (HDR histogram →
//! etcd's report), `bench/server.rs` (servers started here, killed on drop),
//! `bench/compare.rs` (the side-by-side run); `flags.rs` (GetFlags/SetFlag, table and JSON);
//! `top/` (the dashboard: state, collector, views).

mod bench;
mod demo;
#[allow(dead_code)] // SKELETON until issue 5 lands the doctor and the dashboard.
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
    /// The live dashboard: members, layers, host, slow requests, flags, diagnosis.
    Top(TopCmd),
    /// Starts a local glassd with a light synthetic load and opens `glass top` on it; quitting
    /// stops everything.
    Demo(DemoCmd),
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
    /// Total number of requests.
    #[arg(long, global = true, default_value_t = 10000)]
    total: u64,
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
}

#[derive(Clone, Copy, ValueEnum)]
enum Consistency {
    #[value(name = "l")]
    Linearizable,
    #[value(name = "s")]
    Serializable,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
            r = execute(cli) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("glass: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(cli: Cli) -> anyhow::Result<()> {
    let BenchCmd { global, workload } = match cli.command {
        Command::Bench(b) => b,
        Command::Demo(DemoCmd {
            glassd,
            rate,
            interval,
        }) => {
            let glassd = match glassd {
                Some(p) => p,
                None => std::env::current_exe()
                    .context("locating the glass binary")?
                    .with_file_name("glassd"),
            };
            return demo::run(demo::Options {
                glassd,
                interval,
                rate,
            })
            .await;
        }
        Command::Top(TopCmd {
            endpoints,
            interval,
        }) => {
            return top::run(top::Options {
                endpoints,
                interval,
                note: None,
            })
            .await;
        }
        Command::Flags(FlagsCmd { endpoints, action }) => {
            return match action {
                FlagsAction::Get { name, write_out } => {
                    flags::get(&endpoints, name.as_deref(), write_out).await
                }
                FlagsAction::Set {
                    name,
                    value,
                    persist,
                } => flags::set(&endpoints, &name, &value, persist).await,
            };
        }
    };
    let load = bench::Load {
        endpoints: global.endpoints,
        conns: global.conns.max(1),
        clients: global.clients.max(1),
        total: global.total,
        rate: global.rate,
        // A bar redrawn with \r only makes sense on a terminal.
        progress: !global.no_progress && std::io::IsTerminal::is_terminal(&std::io::stderr()),
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
            let glassd = match glassd {
                Some(p) => p,
                None => std::env::current_exe()
                    .context("locating the glass binary")?
                    .with_file_name("glassd"),
            };
            let opts = bench::compare::Options {
                etcd,
                glassd,
                key_size,
                val_size,
                total: load.total,
                rate: load.rate,
                progress: load.progress,
            };
            return bench::compare::run(&opts).await;
        }
    };
    let report = bench::run(&load, workload).await?;
    print!("{report}");
    Ok(())
}
