//! `glass bench`: a load generator with the shape of etcd 3.4's `tools/benchmark`.
//!
//! `--conns` gRPC connections (tonic channels, one HTTP/2 connection each) are opened to the
//! endpoints in turn; `--clients` tasks share them (client `i` uses connection `i % conns`, as
//! etcd's benchmark does). The clients take request numbers `0..total` from one shared counter,
//! so the run stops after exactly `--total` requests whatever the mix of fast and slow clients;
//! request `i` is the one that decides its key (sequential keys are `i % key-space-size`).
//! `--rate` paces request `i` to start no earlier than `i / rate` seconds after the start.
//!
//! Each client records its latencies in its own HDR histogram (no lock on the request path);
//! they are merged into one [`report::Report`] at the end.

pub mod compare;
pub mod overhead;
pub mod report;
pub mod server;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use glassd::pb::etcdserverpb::kv_client::KvClient;
use glassd::pb::etcdserverpb::{request_op, PutRequest, RangeRequest, RequestOp, TxnRequest};
use hdrhistogram::Histogram;
use rand::Rng;
use tonic::transport::{Channel, Endpoint};

use report::Report;

/// How a run connects and how much it sends: etcd benchmark's global flags.
#[derive(Clone, Debug)]
pub struct Load {
    pub endpoints: Vec<String>,
    pub conns: usize,
    pub clients: usize,
    pub total: u64,
    /// Requests per second over all clients; 0 = as fast as they go.
    pub rate: u64,
    /// Redraw a progress bar on stderr.
    pub progress: bool,
}

/// What each request is.
#[derive(Clone, Debug)]
pub enum Workload {
    Put {
        key_size: usize,
        key_space_size: u64,
        sequential_keys: bool,
        /// One random value of `--val-size` bytes, sent with every put (as etcd does).
        value: Vec<u8>,
    },
    Range {
        key: Vec<u8>,
        end: Option<Vec<u8>>,
        serializable: bool,
    },
    TxnPut {
        key_size: usize,
        key_space_size: u64,
        txn_ops: u64,
        value: Vec<u8>,
    },
}

impl Workload {
    pub fn put(key_size: usize, val_size: usize, key_space_size: u64, sequential: bool) -> Self {
        Workload::Put {
            key_size,
            key_space_size: key_space_size.max(1),
            sequential_keys: sequential,
            value: random_bytes(val_size),
        }
    }

    pub fn txn_put(key_size: usize, val_size: usize, key_space_size: u64, txn_ops: u64) -> Self {
        Workload::TxnPut {
            key_size,
            key_space_size: key_space_size.max(1),
            txn_ops: txn_ops.max(1),
            value: random_bytes(val_size),
        }
    }

    /// Sends request number `i`.
    async fn issue(&self, client: &mut KvClient<Channel>, i: u64) -> Result<(), tonic::Status> {
        match self {
            Workload::Put {
                key_size,
                key_space_size,
                sequential_keys,
                value,
            } => {
                let n = if *sequential_keys {
                    i % key_space_size
                } else {
                    rand::thread_rng().gen_range(0..*key_space_size)
                };
                let req = PutRequest {
                    key: bench_key(n, *key_size),
                    value: value.clone(),
                    ..Default::default()
                };
                client.put(req).await.map(drop)
            }
            Workload::Range {
                key,
                end,
                serializable,
            } => {
                let req = RangeRequest {
                    key: key.clone(),
                    range_end: end.clone().unwrap_or_default(),
                    serializable: *serializable,
                    ..Default::default()
                };
                client.range(req).await.map(drop)
            }
            Workload::TxnPut {
                key_size,
                key_space_size,
                txn_ops,
                value,
            } => {
                let success = (0..*txn_ops)
                    .map(|j| RequestOp {
                        request: Some(request_op::Request::RequestPut(PutRequest {
                            key: bench_key((i * txn_ops + j) % key_space_size, *key_size),
                            value: value.clone(),
                            ..Default::default()
                        })),
                    })
                    .collect();
                let req = TxnRequest {
                    success,
                    ..Default::default()
                };
                client.txn(req).await.map(drop)
            }
        }
    }
}

/// etcd benchmark's key: `key_size` zero bytes with the zig-zag varint of `n` written at the
/// front (Go's `binary.PutVarint`). A key shorter than the varint is the varint's prefix.
pub fn bench_key(n: u64, key_size: usize) -> Vec<u8> {
    let mut key = vec![0u8; key_size];
    // n < 2^63 in practice; zig-zag of a non-negative value is 2n.
    let mut v = n.wrapping_shl(1);
    let mut pos = 0;
    while pos < key_size {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            key[pos] = byte;
            break;
        }
        key[pos] = byte | 0x80;
        pos += 1;
    }
    key
}

fn random_bytes(n: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())])
        .collect()
}

/// `host:port` → `http://host:port`; URLs are kept (only plain http is supported here).
pub fn endpoint_uri(endpoint: &str) -> anyhow::Result<String> {
    let e = endpoint.trim();
    if e.is_empty() {
        bail!("empty endpoint");
    }
    if e.starts_with("https://") || e.starts_with("unixs://") {
        bail!("{e}: TLS endpoints are not supported by glass bench yet");
    }
    if e.starts_with("http://") {
        Ok(e.trim_end_matches('/').to_string())
    } else if e.contains("://") {
        bail!("{e}: unsupported scheme (use host:port or http://host:port)");
    } else {
        Ok(format!("http://{e}"))
    }
}

/// One connection to `endpoint` (`host:port` or `http://host:port`).
pub async fn channel(endpoint: &str, connect_timeout: Duration) -> anyhow::Result<Channel> {
    let uri = endpoint_uri(endpoint)?;
    Endpoint::from_shared(uri.clone())
        .with_context(|| format!("bad endpoint {uri}"))?
        .connect_timeout(connect_timeout)
        .connect()
        .await
        .with_context(|| format!("cannot connect to {uri}"))
}

/// Opens `conns` connections, spread over the endpoints in turn.
pub async fn connect(endpoints: &[String], conns: usize) -> anyhow::Result<Vec<Channel>> {
    if endpoints.is_empty() {
        bail!("no endpoints");
    }
    let mut channels = Vec::with_capacity(conns);
    for c in 0..conns.max(1) {
        channels.push(channel(&endpoints[c % endpoints.len()], Duration::from_secs(3)).await?);
    }
    Ok(channels)
}

/// Runs `workload` under `load` and reports. Connection failures are errors; failed requests are
/// counted in the report.
pub async fn run(load: &Load, workload: Workload) -> anyhow::Result<Report> {
    let channels = connect(&load.endpoints, load.conns).await?;
    let workload = Arc::new(workload);
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(load.clients);
    for c in 0..load.clients.max(1) {
        let mut client = KvClient::new(channels[c % channels.len()].clone());
        let (workload, next, done) = (workload.clone(), next.clone(), done.clone());
        let (total, rate) = (load.total, load.rate);
        tasks.push(tokio::spawn(async move {
            let mut part = Report::empty();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                if rate > 0 {
                    let at = start + Duration::from_secs_f64(i as f64 / rate as f64);
                    tokio::time::sleep_until(at.into()).await;
                }
                let t = Instant::now();
                let result = workload.issue(&mut client, i).await;
                part.record(t.elapsed(), result.err());
                done.fetch_add(1, Ordering::Relaxed);
            }
            part
        }));
    }
    let progress = load
        .progress
        .then(|| tokio::spawn(progress_bar(done.clone(), load.total)));
    let mut report = Report::empty();
    for task in tasks {
        report.merge(task.await.context("a bench client panicked")?);
    }
    report.total_time = start.elapsed();
    if let Some(p) = progress {
        p.abort();
        draw_bar(load.total, load.total);
        eprintln!();
    }
    Ok(report)
}

async fn progress_bar(done: Arc<AtomicU64>, total: u64) {
    loop {
        draw_bar(done.load(Ordering::Relaxed), total);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn draw_bar(done: u64, total: u64) {
    use std::io::Write;
    const WIDTH: u64 = 40;
    let filled = (done * WIDTH).checked_div(total).unwrap_or(WIDTH);
    let pct = (done * 100).checked_div(total).unwrap_or(100);
    let bar: String = (0..WIDTH)
        .map(|k| if k < filled { '#' } else { '.' })
        .collect();
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r {done:>8} / {total:<8} [{bar}] {pct:>3}%");
    let _ = err.flush();
}

/// The HDR histogram that every latency goes into: nanoseconds, 3 significant digits, growing
/// as needed.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new(3).expect("3 significant figures is a valid HDR precision")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_go_putvarint_padded() {
        assert_eq!(bench_key(0, 8), vec![0; 8]);
        assert_eq!(bench_key(1, 4), vec![2, 0, 0, 0]);
        // 64 → zig-zag 128 → [0x80, 0x01]
        assert_eq!(bench_key(64, 4), vec![0x80, 0x01, 0, 0]);
        assert_eq!(bench_key(64, 1), vec![0x80]);
        assert_eq!(bench_key(5, 32).len(), 32);
    }

    #[test]
    fn endpoints_become_uris() {
        assert_eq!(
            endpoint_uri("127.0.0.1:2379").ok(),
            Some("http://127.0.0.1:2379".into())
        );
        assert_eq!(
            endpoint_uri("http://localhost:2379/").ok(),
            Some("http://localhost:2379".into())
        );
        assert!(endpoint_uri("https://x:1").is_err());
        assert!(endpoint_uri("").is_err());
    }

    #[test]
    fn values_have_the_asked_size() {
        match Workload::put(32, 256, 10, true) {
            Workload::Put { value, .. } => assert_eq!(value.len(), 256),
            other => panic!("{other:?}"),
        }
    }
}
