//! The `glassd` binary.
//! - `glassd [etcd flags]`: reads etcd 3.4's flags, `ETCD_*` variables and `--config-file`
//!   ([`glassd::config`]), validates them and runs the member ([`glassd::run`]) until Ctrl-C or
//!   SIGTERM.
//! - `glassd bolt check|dump|stats|compact|bench`: offline tools over bbolt-format files.
//!
//! `bolt` is recognised as the first argument, so that the server's command line stays
//! etcd's (Go flag rules, single-dash flags included) while `bolt` keeps clap.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use glassd::config::{Config, ConfigError};
use glassd::storage::btree::{self, FreelistType, Options};

#[derive(Parser)]
#[command(
    name = "glassd",
    version,
    about = "Glass: an etcd-compatible key-value server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Offline tools for bbolt-format files (etcd's member/snap/db).
    #[command(subcommand)]
    Bolt(Bolt),
}

#[derive(Subcommand)]
enum Bolt {
    /// Check consistency: every page reachable or free exactly once, types, key order, metas.
    /// Prints `ok`, or one line per problem and exits 1.
    Check { file: PathBuf },
    /// Print every entry as `BUCKET_HEX[/NESTED_HEX...] KEY_HEX VALUE_HEX`, depth first.
    Dump { file: PathBuf },
    /// Pages by type, free pages and runs, keys per bucket.
    Stats { file: PathBuf },
    /// Copy every bucket into a fresh file through Glass's write path.
    Compact {
        src: PathBuf,
        dst: PathBuf,
        /// Freelist algorithm for the new file.
        #[arg(long, default_value = "map")]
        freelist_type: FreelistType,
    },
    /// `boltcheck bench`'s workload: insert N random 32-byte keys in txs of BATCH, delete every
    /// other one, insert N/2 more, read. One line per phase: PHASE OPS_PER_S SECONDS.
    Bench {
        file: PathBuf,
        n: usize,
        batch: usize,
        value_size: usize,
        #[arg(default_value = "map")]
        freelist_type: FreelistType,
        /// Skip fdatasync: measures the engine's CPU cost alone (unsafe for real data).
        #[arg(long)]
        no_sync: bool,
        /// Also run the reference bbolt (`boltcheck bench`, at this path) on the same workload,
        /// alternating with Glass, and print per-phase medians and Glass/bbolt ratios.
        #[arg(long, value_name = "BOLTCHECK")]
        compare: Option<PathBuf>,
        /// Rounds per engine with --compare.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "bolt") {
        telemetry::init_logging("warn");
        let cli = Cli::parse_from(args);
        return match run(cli) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("glassd: {}", error_text(&e));
                ExitCode::from(1)
            }
        };
    }
    serve(args.into_iter().skip(1))
}

/// `glassd [etcd flags]`: exit 0 for help and version, 2 for a command-line mistake (as Go's
/// flag package), 1 for a bad value or a member that cannot start (as etcd), 0 after a clean
/// shutdown.
fn serve(args: impl Iterator<Item = OsString>) -> ExitCode {
    let cfg = match Config::from_args(args, |k| std::env::var(k).ok()) {
        Ok(cfg) => cfg,
        Err(ConfigError::HelpRequested) => {
            print!("{}", glassd::config::help());
            return ExitCode::SUCCESS;
        }
        Err(ConfigError::VersionRequested) => {
            println!("glassd Version: {}", env!("CARGO_PKG_VERSION"));
            println!("etcd API: 3.4");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("glassd: {e}");
            if e.is_usage() {
                eprintln!("See 'glassd --help'.");
                return ExitCode::from(2);
            }
            return ExitCode::from(1);
        }
    };
    let log = telemetry::init(cfg.log_level.filter());
    let trace = std::sync::Arc::new(cfg.trace_control());
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("glassd")
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("glassd: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let metrics = std::sync::Arc::new(telemetry::Metrics::new());
    match runtime.block_on(glassd::run(cfg, metrics, log, trace, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("glassd: {}", error_text(&anyhow::Error::from(e)));
            ExitCode::from(1)
        }
    }
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let Command::Bolt(cmd) = cli.command;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match cmd {
        Bolt::Check { file } => {
            let report = btree::check_path(&file);
            for w in &report.warnings {
                writeln!(out, "warning: {w}")?;
            }
            for p in &report.problems {
                writeln!(out, "error: {p}")?;
            }
            if report.ok() {
                writeln!(out, "ok")?;
                out.flush()?;
                return Ok(ExitCode::SUCCESS);
            }
            out.flush()?;
            eprintln!(
                "glassd: {}: {} errors",
                file.display(),
                report.problems.len()
            );
            return Ok(ExitCode::from(1));
        }
        Bolt::Dump { file } => {
            let db = open_ro(&file)?;
            let mut tx = db.begin_read()?;
            btree::dump(&mut tx, &mut |line| writeln!(out, "{line}"))?;
        }
        Bolt::Stats { file } => {
            let db = open_ro(&file)?;
            let st = db.stats();
            let mut tx = db.begin_read()?;
            let fs = btree::file_stats(&mut tx)?;
            writeln!(out, "page_size {}", st.page_size)?;
            writeln!(out, "txid {}", st.txid)?;
            writeln!(out, "file_bytes {}", st.file_bytes)?;
            writeln!(out, "high_water_pages {}", st.high_water)?;
            writeln!(out, "pages_meta {}", fs.meta)?;
            writeln!(out, "pages_freelist {}", fs.freelist)?;
            writeln!(out, "pages_branch {}", fs.branch)?;
            writeln!(out, "pages_leaf {}", fs.leaf)?;
            writeln!(out, "pages_free {}", st.free_pages + st.pending_pages)?;
            writeln!(out, "free_runs {}", st.free_runs)?;
            writeln!(out, "longest_free_run {}", st.longest_free_run)?;
            for b in &fs.buckets {
                writeln!(
                    out,
                    "bucket {} keys {} depth {} branch_pages {} leaf_pages {} overflow_leaf {}{}",
                    b.name,
                    b.keys,
                    b.depth,
                    b.branch_pages,
                    b.leaf_pages,
                    b.overflow_pages,
                    if b.inline { " inline" } else { "" }
                )?;
            }
        }
        Bolt::Compact {
            src,
            dst,
            freelist_type,
        } => {
            let (a, b) = btree::tool::compact(
                &src,
                &dst,
                Options {
                    freelist_type,
                    ..Options::default()
                },
            )?;
            writeln!(
                out,
                "compacted {} ({a} bytes) -> {} ({b} bytes)",
                src.display(),
                dst.display()
            )?;
        }
        Bolt::Bench {
            file,
            n,
            batch,
            value_size,
            freelist_type,
            no_sync,
            compare,
            rounds,
        } => {
            let opts = Options {
                freelist_type,
                no_sync,
                ..Options::default()
            };
            let Some(boltcheck) = compare else {
                btree::tool::bench(&file, n, batch, value_size, opts, |p| {
                    println!("{}", p.line());
                })?;
                out.flush()?;
                return Ok(ExitCode::SUCCESS);
            };
            compare_with_bbolt(&boltcheck, &file, [n, batch, value_size], opts, rounds)?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Runs Glass and bbolt on the same workload, alternately (so that drifts in disk speed hit
/// both alike), and prints per-phase medians of ops/s and the Glass/bbolt ratio.
fn compare_with_bbolt(
    boltcheck: &std::path::Path,
    file: &std::path::Path,
    [n, batch, value_size]: [usize; 3],
    opts: Options,
    rounds: usize,
) -> anyhow::Result<()> {
    use std::collections::BTreeMap;
    let bolt_file = file.with_extension("bbolt");
    let fl = match opts.freelist_type {
        FreelistType::Array => "array",
        _ => "hashmap",
    };
    let mut glass: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut bolt: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut order = Vec::new();
    for round in 0..rounds.max(1) {
        for p in btree::tool::bench(file, n, batch, value_size, opts.clone(), |_| {})? {
            if round == 0 {
                order.push(p.name.to_string());
            }
            glass
                .entry(p.name.to_string())
                .or_default()
                .push(p.ops as f64 / p.seconds.max(1e-9));
        }
        let args = [n.to_string(), batch.to_string(), value_size.to_string()];
        let o = std::process::Command::new(boltcheck)
            .arg("bench")
            .arg(&bolt_file)
            .args(&args)
            .arg(fl)
            .output()
            .with_context(|| format!("run {}", boltcheck.display()))?;
        anyhow::ensure!(
            o.status.success(),
            "boltcheck bench failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        for line in String::from_utf8_lossy(&o.stdout).lines() {
            let mut it = line.split_whitespace();
            if let (Some(name), Some(ops)) = (it.next(), it.next()) {
                bolt.entry(name.to_string())
                    .or_default()
                    .push(ops.parse().unwrap_or(0.0));
            }
        }
    }
    let _ = std::fs::remove_file(&bolt_file);
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    println!(
        "phase     glass_ops_s  bbolt_ops_s  ratio   (medians of {} rounds; N={n} batch={batch} value={value_size} freelist={})",
        rounds.max(1),
        opts.freelist_type
    );
    for name in order {
        let g = median(glass.entry(name.clone()).or_default());
        let b = median(bolt.entry(name.clone()).or_default());
        let ratio = if b > 0.0 { g / b } else { f64::NAN };
        println!("{name:<9} {g:>11.0}  {b:>11.0}  {ratio:>5.2}x");
    }
    Ok(())
}

fn open_ro(file: &std::path::Path) -> anyhow::Result<btree::Db> {
    btree::Db::open(
        file,
        Options {
            read_only: true,
            ..Options::default()
        },
    )
    .with_context(|| format!("open {}", file.display()))
}

/// The error and its causes on one line, without repeating what a message already says (the
/// engine's I/O errors name their path and cause themselves).
fn error_text(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if parts.iter().any(|p| p.contains(&s)) {
            continue;
        }
        match parts.last_mut() {
            Some(last) if s.starts_with(last.as_str()) => *last = s,
            _ => parts.push(s),
        }
    }
    parts.join(": ")
}
