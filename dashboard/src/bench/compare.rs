//! `glass bench compare`: the same workloads against a reference etcd 3.4 and against glassd,
//! both started here on loopback ports, in one run; then one table with the ratios.
//!
//! The servers run one after the other (etcd first), never at the same time: the machine's cores
//! go to one server and the load generator. A glassd that exits before serving (today's glassd
//! exits 2: "the server is not built yet") or is missing is reported as not available, and the
//! etcd side still runs, so the command is useful now and complete once the server lands.

use std::path::PathBuf;
use std::time::Duration;

use super::report::Report;
use super::server::{self, Server, StartError};
use super::{Load, Workload};
use glassd::pb::etcdserverpb::kv_client::KvClient;
use glassd::pb::etcdserverpb::PutRequest;

pub struct Options {
    pub etcd: Option<PathBuf>,
    pub glassd: PathBuf,
    pub key_size: usize,
    pub val_size: usize,
    /// Requests per workload, and the request rate limit (0 = none).
    pub total: u64,
    pub rate: u64,
    pub progress: bool,
}

/// One row of the table: etcd benchmark flags it corresponds to.
struct Case {
    name: &'static str,
    clients: usize,
    conns: usize,
    kind: Kind,
}

#[derive(Clone, Copy)]
enum Kind {
    Put,
    Range { serializable: bool },
}

/// The set: put 1 client; put 64 clients over 8 connections; range serializable and
/// linearizable with 64/8.
const CASES: [Case; 4] = [
    Case {
        name: "put, 1 client / 1 conn",
        clients: 1,
        conns: 1,
        kind: Kind::Put,
    },
    Case {
        name: "put, 64 clients / 8 conns",
        clients: 64,
        conns: 8,
        kind: Kind::Put,
    },
    Case {
        name: "range serializable, 64 / 8",
        clients: 64,
        conns: 8,
        kind: Kind::Range { serializable: true },
    },
    Case {
        name: "range linearizable, 64 / 8",
        clients: 64,
        conns: 8,
        kind: Kind::Range {
            serializable: false,
        },
    },
];

/// What one server did: a report per case, or why it could not run.
enum Side {
    Ran(Vec<Report>),
    Unavailable(String),
}

pub async fn run(opts: &Options) -> anyhow::Result<()> {
    let etcd_path = match &opts.etcd {
        Some(p) => p.clone(),
        None => server::find_etcd()?,
    };
    let etcd_version = server::version_line(&etcd_path);
    println!(
        "glass bench compare: {} requests per workload, keys {} B, values {} B{}",
        opts.total,
        opts.key_size,
        opts.val_size,
        if opts.rate > 0 {
            format!(", at most {} req/s", opts.rate)
        } else {
            String::new()
        }
    );
    println!("reference: {} ({etcd_version})", etcd_path.display());

    // One value and one range key for both servers, so they see identical requests.
    let put = Workload::put(opts.key_size, opts.val_size, opts.total.max(1), true);
    let range_key = range_key(opts.key_size);

    let etcd = match Server::start("etcd", &etcd_path, Duration::from_secs(20)).await {
        Ok(s) => Side::Ran(run_cases(&s, opts, &put, &range_key).await?),
        Err(e) => anyhow::bail!("the reference etcd did not start: {e}"),
    };

    println!("glassd: {}", opts.glassd.display());
    let glassd = if !opts.glassd.is_file() {
        Side::Unavailable(format!("no glassd at {}", opts.glassd.display()))
    } else {
        match Server::start("glassd", &opts.glassd, Duration::from_secs(20)).await {
            Ok(s) => Side::Ran(run_cases(&s, opts, &put, &range_key).await?),
            Err(StartError::Exited { status, log_tail }) if log_tail.contains("not built yet") => {
                // glassd's own words, without the configuration report that follows them.
                let said = log_tail
                    .split(" | ")
                    .find(|l| l.contains("not built yet"))
                    .and_then(|l| l.split(';').next())
                    .unwrap_or("the server is not built yet");
                Side::Unavailable(format!("not available yet ({status}: {said})"))
            }
            Err(e) => Side::Unavailable(format!("did not start: {e}")),
        }
    };

    print_table(&etcd, &glassd);
    Ok(())
}

fn range_key(key_size: usize) -> Vec<u8> {
    let mut key = b"glass-bench/range".to_vec();
    key.resize(key_size.max(key.len()), b'_');
    key.truncate(key_size.max(1));
    key
}

async fn run_cases(
    server: &Server,
    opts: &Options,
    put: &Workload,
    range_key: &[u8],
) -> anyhow::Result<Vec<Report>> {
    // The key that the range cases read, with a value of the same size as the puts'.
    let value = match put {
        Workload::Put { value, .. } => value.clone(),
        _ => Vec::new(),
    };
    let channel = super::connect(std::slice::from_ref(&server.endpoint), 1).await?;
    KvClient::new(channel[0].clone())
        .put(PutRequest {
            key: range_key.to_vec(),
            value,
            ..Default::default()
        })
        .await
        .map_err(|s| anyhow::anyhow!("{}: seeding the range key: {s}", server.name))?;

    let mut reports = Vec::new();
    for case in &CASES {
        let load = Load {
            endpoints: vec![server.endpoint.clone()],
            conns: case.conns,
            clients: case.clients,
            total: opts.total,
            rate: opts.rate,
            progress: opts.progress,
        };
        let workload = match case.kind {
            Kind::Put => put.clone(),
            Kind::Range { serializable } => Workload::Range {
                key: range_key.to_vec(),
                end: None,
                serializable,
            },
        };
        if opts.progress {
            eprintln!("{}: {}", server.name, case.name);
        }
        let report = super::run(&load, workload).await?;
        reports.push(report);
    }
    Ok(reports)
}

fn print_table(etcd: &Side, glassd: &Side) {
    println!();
    println!(
        "{:<28} {:>12} {:>12} {:>8} {:>10} {:>10} {:>8} {:>9}",
        "workload",
        "etcd req/s",
        "glassd req/s",
        "ratio",
        "etcd p99",
        "glassd p99",
        "ratio",
        "failed"
    );
    for (i, case) in CASES.iter().enumerate() {
        let e = match etcd {
            Side::Ran(r) => r.get(i),
            Side::Unavailable(_) => None,
        };
        let g = match glassd {
            Side::Ran(r) => r.get(i),
            Side::Unavailable(_) => None,
        };
        let rps = |r: Option<&Report>| r.map_or("n/a".into(), |r| format!("{:.0}", r.rps()));
        let p99 = |r: Option<&Report>| {
            r.map_or("n/a".into(), |r| {
                format!("{:.2}ms", r.percentile(99.0) * 1000.0)
            })
        };
        let (rps_ratio, p99_ratio) = match (e, g) {
            (Some(e), Some(g)) if e.rps() > 0.0 && e.percentile(99.0) > 0.0 => (
                format!("{:.2}x", g.rps() / e.rps()),
                format!("{:.2}x", g.percentile(99.0) / e.percentile(99.0)),
            ),
            _ => ("n/a".into(), "n/a".into()),
        };
        let failed = format!(
            "{}/{}",
            e.map_or("-".into(), |r| r.failed().to_string()),
            g.map_or("-".into(), |r| r.failed().to_string())
        );
        println!(
            "{:<28} {:>12} {:>12} {:>8} {:>10} {:>10} {:>8} {:>9}",
            case.name,
            rps(e),
            rps(g),
            rps_ratio,
            p99(e),
            p99(g),
            p99_ratio,
            failed
        );
    }
    println!();
    println!("ratio: glassd / etcd (req/s: above 1 is faster; p99: below 1 is faster); failed: etcd/glassd");
    if let Side::Unavailable(why) = glassd {
        println!("glassd: {why}");
    }
    if let Side::Unavailable(why) = etcd {
        println!("etcd: {why}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_key_has_the_key_size() {
        assert_eq!(range_key(32).len(), 32);
        assert!(range_key(32).starts_with(b"glass-bench/range"));
        assert_eq!(range_key(4), b"glas".to_vec());
    }
}
