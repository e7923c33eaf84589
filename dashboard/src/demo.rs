//! `glass demo`: a local Glass with a light synthetic load, watched with `glass top`.
//!
//! Starts glassd (one member: clustering is not built yet) on free loopback ports with a
//! temporary data dir ([`crate::bench::server::Server`]), runs a paced put load and a slower
//! linearizable range load in this process ([`crate::bench::run`]), and opens `glass top` on it.
//! Quitting top (`q`, Ctrl-C), SIGINT or SIGTERM ends the load and kills and reaps glassd, and
//! removes its data; if glass is SIGKILLed, the kernel kills glassd (`PR_SET_PDEATHSIG`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::bench::server::Server;
use crate::bench::{self, Load, Workload};
use crate::top;

pub struct Options {
    pub glassd: PathBuf,
    pub interval: Duration,
    /// Puts per second (ranges run at a quarter of it).
    pub rate: u64,
}

/// Aborts the load when the demo ends.
struct Abort(Vec<tokio::task::JoinHandle<anyhow::Result<bench::report::Report>>>);

impl Drop for Abort {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

pub async fn run(opts: Options) -> anyhow::Result<()> {
    eprintln!("glass demo: starting glassd ({})", opts.glassd.display());
    let server = Server::start("glassd", &opts.glassd, Duration::from_secs(30))
        .await
        .with_context(|| format!("starting {}", opts.glassd.display()))?;
    let load = |rate: u64| Load {
        endpoints: vec![server.endpoint.clone()],
        conns: 1,
        clients: 2,
        // Runs until aborted: at 1000/s this lasts for millions of years.
        total: u64::MAX / 2,
        rate: rate.max(1),
        progress: false,
    };
    let puts = load(opts.rate);
    let ranges = load(opts.rate / 4);
    let _load = Abort(vec![
        tokio::spawn(async move { bench::run(&puts, Workload::put(16, 256, 10_000, false)).await }),
        tokio::spawn(async move {
            bench::run(
                &ranges,
                Workload::Range {
                    key: vec![0],
                    end: Some(vec![0x01]),
                    serializable: false,
                },
            )
            .await
        }),
    ]);
    let note = format!(
        "demo: glassd pid {} on {}, glass pid {}, {} puts/s",
        server.pid(),
        server.endpoint,
        std::process::id(),
        opts.rate
    );
    let result = top::run(top::Options {
        endpoints: vec![server.endpoint.clone()],
        interval: opts.interval,
        note: Some(note),
    })
    .await;
    drop(server);
    result
}
