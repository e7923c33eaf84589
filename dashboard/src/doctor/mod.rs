//! `glass doctor`: samples every member's diagnostics stream for a while, runs the [`rules`] and
//! prints the verdict with its evidence.
//!
//! The members are found through `etcdserverpb.Cluster/MemberList` on the first endpoint that
//! answers (their first client URL each; the member that answered is sampled through the
//! endpoint given when its advertised URL does not connect: port-forwards, NAT); when no
//! endpoint answers MemberList, the endpoints themselves are sampled. Each member gets a `glass.v1.Diagnostics/Watch` stream for
//! `--duration` (one snapshot per `--interval`, the first at once), then its recent slow
//! requests (`RecentSlowRequests`, those that started during the period, on the member's
//! clock). A member is up only if its stream delivered snapshots until the deadline (at least
//! two: one window) and it answered at the end; a member whose stream cannot be opened, ends
//! early (it stopped or restarted) or gave too little is reported down with the reason, never
//! judged healthy for lack of data, and never a crash of the command.
//!
//! Exit codes: 0 healthy (advice included), 1 warnings, 2 a bottleneck (or a member down),
//! 3 nothing could be judged (no member gave a snapshot, or the doctor failed), 64 a usage
//! error (bad flags, `--duration` under two intervals), 130 interrupted (Ctrl-C).

pub mod rules;

use std::time::Duration;

use anyhow::Context;
use glassd::pb::etcdserverpb::cluster_client::ClusterClient;
use glassd::pb::etcdserverpb::MemberListRequest;
use glassd::pb::glass::v1::diagnostics_client::DiagnosticsClient;
use glassd::pb::glass::v1::{RecentSlowRequestsRequest, WatchRequest};
use serde::Serialize;
use tonic::transport::Channel;

use crate::bench::endpoint_uri;
use rules::{diagnose, MemberSamples, Severity, Verdict};

/// The exit code when nothing could be judged (no member answered, or the doctor failed).
pub const EXIT_UNREACHABLE: u8 = 3;
/// The exit code of a usage error (sysexits' EX_USAGE): never a verdict's 0-3.
pub const EXIT_USAGE: u8 = 64;
/// The exit code when interrupted (Ctrl-C: 128 + SIGINT).
pub const EXIT_INTERRUPTED: u8 = 130;

/// How long a connection or a unary call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// What `glass doctor` was asked.
#[derive(Clone, Debug)]
pub struct Options {
    pub endpoints: Vec<String>,
    pub duration: Duration,
    pub interval: Duration,
    pub json: bool,
}

/// A member to sample.
#[derive(Clone, Debug)]
struct Target {
    name: String,
    id: u64,
    endpoint: String,
}

/// One member in the report.
#[derive(Debug, Serialize)]
struct MemberReport {
    name: String,
    id: u64,
    endpoint: String,
    up: bool,
    snapshots: usize,
    slow_requests: usize,
    /// The figures the rules read, so that a reader sees the numbers beside the thresholds.
    period: Figures,
}

/// A member's period as the rules saw it (see [`rules::Period`]).
#[derive(Debug, Serialize)]
struct Figures {
    window_ms: u64,
    cpu_busy_percent: Option<f64>,
    cpu_steal_percent: Option<f64>,
    /// PSI cpu "some" as a share of the period, percent (from the stall totals when a
    /// baseline exists, else the windows' avg10 mean; see the rules' "Windows").
    psi_cpu_some_percent: Option<f64>,
    load1: Option<f64>,
    cores: u32,
    glassd_cpu_percent: Option<f64>,
    glassd_nonvoluntary_per_s: Option<f64>,
    /// PSI memory "some", percent, as `psi_cpu_some_percent`.
    psi_memory_some_percent: Option<f64>,
    swap_pages_per_s: Option<f64>,
    /// The backend at the end of the period.
    freelist_type: String,
    free_pages: u64,
    free_runs: u64,
    longest_free_run: u64,
    db_size: u64,
    db_size_in_use: u64,
    /// Measurements with samples in the period.
    layers: std::collections::BTreeMap<String, rules::LayerAgg>,
}

impl Figures {
    fn of(m: &MemberSamples) -> Figures {
        let p = rules::period(m);
        let b = p.last.and_then(|s| s.backend.clone()).unwrap_or_default();
        Figures {
            freelist_type: b.freelist_type,
            free_pages: b.free_pages,
            free_runs: b.free_runs,
            longest_free_run: b.longest_free_run,
            db_size: b.db_size,
            db_size_in_use: b.db_size_in_use,
            window_ms: p.window_ms,
            cpu_busy_percent: p.cpu_busy,
            cpu_steal_percent: p.cpu_steal,
            psi_cpu_some_percent: p.psi_cpu_some,
            load1: p.load1,
            cores: p.cores,
            glassd_cpu_percent: p.process_cpu,
            glassd_nonvoluntary_per_s: p.nonvoluntary_per_s,
            psi_memory_some_percent: p.psi_memory_some,
            swap_pages_per_s: p.swap_pages_per_s,
            layers: p.layers.into_iter().filter(|(_, l)| l.count > 0).collect(),
        }
    }
}

/// `--json`'s document: the verdict, its exit code and what was sampled.
#[derive(Debug, Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    verdict: &'a Verdict,
    exit_code: u8,
    duration_ms: u64,
    interval_ms: u64,
    members: Vec<MemberReport>,
}

/// Runs the doctor; the result is the process's exit code.
pub async fn run(opts: &Options) -> anyhow::Result<u8> {
    let targets = discover(&opts.endpoints).await?;
    let tasks: Vec<_> = targets
        .into_iter()
        .map(|t| {
            let (duration, interval) = (opts.duration, opts.interval);
            tokio::spawn(async move { sample(t, duration, interval).await })
        })
        .collect();
    let mut members = Vec::with_capacity(tasks.len());
    for t in tasks {
        members.push(t.await.context("a sampling task failed")?);
    }
    if members.iter().all(|m| !m.up && m.snapshots.is_empty()) {
        let names: Vec<&str> = members.iter().map(|m| m.endpoint.as_str()).collect();
        let reasons: Vec<&str> = members
            .iter()
            .filter_map(|m| m.down_reason.as_deref())
            .collect();
        eprintln!(
            "glass doctor: no member could be reached or gave a snapshot ({}): {}",
            names.join(", "),
            reasons.join("; ")
        );
        return Ok(EXIT_UNREACHABLE);
    }
    let verdict = diagnose(&members);
    let code = verdict.exit_code();
    if opts.json {
        let report = Report {
            verdict: &verdict,
            exit_code: code,
            duration_ms: millis(opts.duration),
            interval_ms: millis(opts.interval),
            members: members
                .iter()
                .map(|m| MemberReport {
                    name: m.name.clone(),
                    id: m.id,
                    endpoint: m.endpoint.clone(),
                    up: m.up,
                    snapshots: m.snapshots.len(),
                    slow_requests: m.slow_requests.len(),
                    period: Figures::of(m),
                })
                .collect(),
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", human(&verdict, &members, opts));
    }
    Ok(code)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

async fn channel(endpoint: &str) -> anyhow::Result<Channel> {
    crate::bench::channel(endpoint, CALL_TIMEOUT).await
}

/// The members of the cluster behind `endpoints`, or the endpoints themselves when none
/// answers MemberList.
async fn discover(endpoints: &[String]) -> anyhow::Result<Vec<Target>> {
    if endpoints.is_empty() {
        anyhow::bail!("no endpoints given");
    }
    for e in endpoints {
        // Bad syntax is the caller's mistake: say so at once.
        endpoint_uri(e)?;
        let Ok(ch) = channel(e).await else { continue };
        let resp = tokio::time::timeout(
            CALL_TIMEOUT,
            ClusterClient::new(ch).member_list(MemberListRequest {}),
        )
        .await;
        let Ok(Ok(resp)) = resp else { continue };
        let resp = resp.into_inner();
        // The member that answered: reachable through `e` whatever it advertises.
        let answered = resp.header.as_ref().map_or(0, |h| h.member_id);
        let mut targets: Vec<Target> = resp
            .members
            .into_iter()
            .filter_map(|m| {
                let url = m.client_ur_ls.first()?.clone();
                Some(Target {
                    name: if m.name.is_empty() {
                        url.clone()
                    } else {
                        m.name
                    },
                    id: m.id,
                    endpoint: url,
                })
            })
            .collect();
        // Through a port-forward or NAT, or with a member advertising an address only it can
        // reach, the advertised URL does not answer while the endpoint given does: sample the
        // member that answered through the endpoint given.
        for t in targets
            .iter_mut()
            .filter(|t| t.id == answered && answered != 0)
        {
            if endpoint_uri(&t.endpoint).ok() != endpoint_uri(e).ok()
                && channel(&t.endpoint).await.is_err()
            {
                t.endpoint = e.clone();
            }
        }
        if !targets.is_empty() {
            return Ok(targets);
        }
    }
    Ok(endpoints
        .iter()
        .map(|e| Target {
            name: e.clone(),
            id: 0,
            endpoint: e.clone(),
        })
        .collect())
}

/// Streams one member's snapshots for `duration`, then reads its slow requests.
async fn sample(t: Target, duration: Duration, interval: Duration) -> MemberSamples {
    let mut m = MemberSamples {
        name: t.name,
        id: t.id,
        endpoint: t.endpoint,
        ..MemberSamples::default()
    };
    let deadline = tokio::time::Instant::now() + duration;
    let client = channel(&m.endpoint).await.map(DiagnosticsClient::new);
    let mut client = match client {
        Ok(c) => c,
        Err(e) => {
            m.down_reason = Some(format!("{e:#}"));
            return m;
        }
    };
    let watch = tokio::time::timeout(
        CALL_TIMEOUT,
        client.watch(WatchRequest {
            interval_ms: millis(interval),
        }),
    )
    .await;
    // Whether the stream delivered until the deadline.
    let mut complete = false;
    match watch {
        Ok(Ok(resp)) => {
            let mut stream = resp.into_inner();
            // The last snapshot is due at the deadline: wait a little beyond it for it (capped,
            // so that a large interval cannot hold the doctor long past its duration).
            let grace = (interval / 2).min(Duration::from_secs(2)) + Duration::from_millis(200);
            // When the last snapshot came.
            let mut last_rx = None;
            // Ends when the stream ends or fails (the member went away), or the deadline passes.
            loop {
                match tokio::time::timeout_at(deadline + grace, stream.message()).await {
                    Ok(Ok(Some(s))) => {
                        m.snapshots.push(s);
                        last_rx = Some(tokio::time::Instant::now());
                        if tokio::time::Instant::now() >= deadline {
                            complete = true;
                            break;
                        }
                    }
                    Ok(Ok(None)) => {
                        m.down_reason = Some(format!(
                            "the diagnostics stream ended early, after {} snapshot(s): the member stopped or restarted",
                            m.snapshots.len()
                        ));
                        break;
                    }
                    Ok(Err(e)) => {
                        m.down_reason = Some(format!(
                            "the diagnostics stream failed after {} snapshot(s): {}",
                            m.snapshots.len(),
                            e.message()
                        ));
                        break;
                    }
                    // The last snapshot came just before the deadline, the next is due after
                    // it: the stream delivered the whole period.
                    Err(_) if last_rx.is_some_and(|t| t + interval >= deadline) => {
                        complete = true;
                        break;
                    }
                    Err(_) => {
                        m.down_reason = Some(format!(
                            "the diagnostics stream stalled ({} snapshot(s) received)",
                            m.snapshots.len()
                        ));
                        break;
                    }
                }
            }
        }
        Ok(Err(e)) => {
            m.down_reason = Some(format!(
                "the diagnostics stream could not be opened: {}",
                e.message()
            ))
        }
        Err(_) => {
            m.down_reason = Some(format!(
                "the diagnostics stream did not open within {CALL_TIMEOUT:?}"
            ))
        }
    }
    if complete && m.snapshots.len() < 2 {
        complete = false;
        m.down_reason = Some(format!(
            "only {} snapshot(s) by the deadline: no window to judge",
            m.snapshots.len()
        ));
    }
    let slow = tokio::time::timeout(
        CALL_TIMEOUT,
        client.recent_slow_requests(RecentSlowRequestsRequest { limit: 0 }),
    )
    .await;
    match slow {
        Ok(Ok(resp)) => {
            m.up = complete;
            m.slow_requests = resp
                .into_inner()
                .requests
                .into_iter()
                .filter(|r| rules::started_in_period(&m.snapshots, r))
                .collect();
        }
        _ if m.down_reason.is_none() => {
            m.down_reason = Some("no answer to RecentSlowRequests at the end".to_string());
        }
        _ => {}
    }
    if let Some(s) = m.snapshots.last() {
        if m.id == 0 {
            m.id = s.member_id;
        }
        if m.name == m.endpoint && !s.name.is_empty() {
            m.name = s.name.clone();
        }
    }
    m
}

/// The human report: the verdict, what was sampled, each finding with its evidence and what
/// to do.
fn human(v: &Verdict, members: &[MemberSamples], opts: &Options) -> String {
    let mut out = format!("glass doctor: {}\n", v.headline);
    out.push_str(&format!(
        "sampled {} member(s) for {:?} every {:?}:\n",
        members.len(),
        opts.duration,
        opts.interval
    ));
    for m in members {
        out.push_str(&format!(
            "  {} ({}): {}, {} snapshots, {} slow requests\n",
            m.name,
            m.endpoint,
            match (m.up, &m.down_reason) {
                (true, _) => "up".to_string(),
                (false, Some(r)) => format!("DOWN ({r})"),
                (false, None) => "DOWN".to_string(),
            },
            m.snapshots.len(),
            m.slow_requests.len()
        ));
    }
    for f in &v.findings {
        out.push('\n');
        let layer = f.layer.map(|l| format!(" ({l})")).unwrap_or_default();
        out.push_str(&format!(
            "[{}] {} on {}{}: {}\n",
            f.severity.as_str(),
            f.rule,
            f.member,
            layer,
            f.summary
        ));
        for e in &f.evidence {
            out.push_str(&format!("    - {e}\n"));
        }
        out.push_str(&format!("    => {}\n", f.recommendation));
    }
    if v.severity == Severity::Healthy && v.findings.is_empty() {
        out.push_str("\nno finding: every rule stayed under its thresholds\n");
    }
    out
}
