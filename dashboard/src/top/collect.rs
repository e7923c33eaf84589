//! The collector: tasks that talk to the members and report [`Update`]s to the UI over one
//! channel (unbounded: the UI drains it every frame, and a snapshot per member per interval is
//! little).
//!
//! - Discovery: `Cluster/MemberList` through the first endpoint that answers, every
//!   [`MEMBERS_EVERY`]; a member that appears gets its own task, one that leaves has its task
//!   aborted (membership is followed, not fixed at start). The member that answered is followed
//!   through that endpoint when its advertised client URL does not connect (port-forward, NAT).
//! - Per member: a `Diagnostics/Watch` stream; `RecentSlowRequests` every [`SLOW_EVERY`] beside
//!   it. A broken stream (or one silent for three intervals) reports [`Update::Down`] and is
//!   reopened with exponential backoff ([`BACKOFF_MIN`] doubling to [`BACKOFF_MAX`]).
//! - Commands from the UI (`GetFlags`, `SetFlag`) each run in a task of their own.

use std::collections::HashMap;
use std::time::Duration;

use glassd::pb::etcdserverpb::cluster_client::ClusterClient;
use glassd::pb::etcdserverpb::MemberListRequest;
use glassd::pb::glass::v1::diagnostics_client::DiagnosticsClient;
use glassd::pb::glass::v1::{
    GetFlagsRequest, RecentSlowRequestsRequest, SetFlagRequest, WatchRequest,
};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};

use super::app::{MemberInfo, Update};
use crate::bench::endpoint_uri;

pub const MEMBERS_EVERY: Duration = Duration::from_secs(3);
pub const SLOW_EVERY: Duration = Duration::from_secs(2);
pub const BACKOFF_MIN: Duration = Duration::from_millis(250);
pub const BACKOFF_MAX: Duration = Duration::from_secs(8);
/// Unary calls (MemberList, flags, slow requests) give up after this.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

async fn channel(url: &str) -> Result<Channel, String> {
    Endpoint::from_shared(url.to_string())
        .map_err(|e| format!("bad endpoint {url}: {e}"))?
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {url}: {}", chain(&e)))
}

/// An error with its sources ("transport error: tcp connect error: Connection refused").
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.ends_with(&t) {
            s = format!("{s}: {t}");
        }
        cur = c.source();
    }
    s
}

fn status(s: tonic::Status) -> String {
    crate::flags::status_text(&s)
}

fn request<T>(t: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(t);
    r.set_timeout(CALL_TIMEOUT);
    r
}

/// The next backoff after `d`.
pub fn backoff(d: Duration) -> Duration {
    (d * 2).clamp(BACKOFF_MIN, BACKOFF_MAX)
}

/// Owns the tasks; dropping it stops them all.
pub struct Collector {
    tx: UnboundedSender<Update>,
    discovery: JoinHandle<()>,
    members: std::sync::Arc<std::sync::Mutex<HashMap<u64, String>>>,
}

impl Drop for Collector {
    fn drop(&mut self) {
        // Aborting discovery drops its map of member tasks, whose guards abort them.
        self.discovery.abort();
    }
}

/// Aborts a task when dropped.
struct TaskGuard(JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Collector {
    pub fn start(endpoints: Vec<String>, interval: Duration, tx: UnboundedSender<Update>) -> Self {
        let members = std::sync::Arc::new(std::sync::Mutex::new(HashMap::new()));
        let discovery = tokio::spawn(discover(endpoints, interval, tx.clone(), members.clone()));
        Collector {
            tx,
            discovery,
            members,
        }
    }

    fn url(&self, member: u64) -> Option<String> {
        self.members
            .lock()
            .ok()
            .and_then(|m| m.get(&member).cloned())
    }

    pub fn fetch_flags(&self, member: u64) {
        let (tx, url) = (self.tx.clone(), self.url(member));
        tokio::spawn(async move {
            let r = match url {
                Some(u) => get_flags(&u).await,
                None => Err("member not known yet".to_string()),
            };
            let _ = tx.send(Update::Flags(member, r));
        });
    }

    pub fn set_flag(&self, member: u64, name: String, value: String) {
        let (tx, url) = (self.tx.clone(), self.url(member));
        tokio::spawn(async move {
            let Some(url) = url else {
                let _ = tx.send(Update::FlagSet(member, Err("member not known".into())));
                return;
            };
            let r = async {
                let mut c = DiagnosticsClient::new(channel(&url).await?);
                let resp = c
                    .set_flag(request(SetFlagRequest {
                        name,
                        value,
                        persist: false,
                    }))
                    .await
                    .map_err(status)?
                    .into_inner();
                let f = resp.flag.unwrap_or_default();
                Ok(format!(
                    "{}: {} -> {} (applied, until restart)",
                    f.name, resp.old_value, f.value
                ))
            }
            .await;
            let _ = tx.send(Update::FlagSet(member, r));
            // Read them again so the list shows the new value and source.
            let _ = tx.send(Update::Flags(member, get_flags(&url).await));
        });
    }
}

async fn get_flags(url: &str) -> Result<Vec<glassd::pb::glass::v1::Flag>, String> {
    let mut c = DiagnosticsClient::new(channel(url).await?);
    Ok(c.get_flags(request(GetFlagsRequest {}))
        .await
        .map_err(status)?
        .into_inner()
        .flags)
}

async fn member_list(endpoints: &[String]) -> Result<Vec<MemberInfo>, String> {
    let mut last = "no endpoints".to_string();
    for e in endpoints {
        let url = match endpoint_uri(e) {
            Ok(u) => u,
            Err(err) => {
                last = format!("{err:#}");
                continue;
            }
        };
        let ch = match channel(&url).await {
            Ok(c) => c,
            Err(err) => {
                last = err;
                continue;
            }
        };
        match ClusterClient::new(ch)
            .member_list(request(MemberListRequest::default()))
            .await
        {
            Ok(r) => {
                let r = r.into_inner();
                let answered = r.header.as_ref().map_or(0, |h| h.member_id);
                let mut list: Vec<MemberInfo> = r
                    .members
                    .into_iter()
                    // A member that has not started has no client URL yet: nothing to follow.
                    .filter_map(|m| {
                        let u = m.client_ur_ls.first()?;
                        Some(MemberInfo {
                            id: m.id,
                            name: m.name,
                            endpoint: endpoint_uri(u).unwrap_or_else(|_| u.clone()),
                        })
                    })
                    .collect();
                // Through a port-forward or NAT (or a member advertising an address only it
                // can reach), the advertised URL does not answer while this one does: follow
                // the member that answered through this one.
                for m in list
                    .iter_mut()
                    .filter(|m| m.id == answered && answered != 0)
                {
                    if m.endpoint != url && channel(&m.endpoint).await.is_err() {
                        m.endpoint = url.clone();
                    }
                }
                return Ok(list);
            }
            Err(s) => last = format!("{url}: {}", status(s)),
        }
    }
    Err(last)
}

async fn discover(
    endpoints: Vec<String>,
    interval: Duration,
    tx: UnboundedSender<Update>,
    urls: std::sync::Arc<std::sync::Mutex<HashMap<u64, String>>>,
) {
    // Each member's task, with the URL it follows (a changed URL restarts it).
    let mut tasks: HashMap<u64, (String, TaskGuard)> = HashMap::new();
    let mut wait = BACKOFF_MIN;
    loop {
        // The endpoints given, then every member's own URL (the given ones may be gone).
        let mut eps = endpoints.clone();
        eps.extend(tasks.values().map(|(u, _)| u.clone()));
        match member_list(&eps).await {
            Ok(list) => {
                wait = MEMBERS_EVERY;
                tasks.retain(|id, (url, _)| list.iter().any(|m| m.id == *id && m.endpoint == *url));
                for m in &list {
                    tasks.entry(m.id).or_insert_with(|| {
                        let h =
                            tokio::spawn(follow(m.id, m.endpoint.clone(), interval, tx.clone()));
                        (m.endpoint.clone(), TaskGuard(h))
                    });
                }
                if let Ok(mut u) = urls.lock() {
                    *u = list.iter().map(|m| (m.id, m.endpoint.clone())).collect();
                }
                if tx.send(Update::Members(list)).is_err() {
                    return;
                }
            }
            Err(e) => {
                wait = backoff(wait);
                if tx.send(Update::DiscoveryError(e)).is_err() {
                    return;
                }
            }
        }
        tokio::time::sleep(wait).await;
    }
}

/// One member: its Watch stream and its slow-request ring, until aborted.
async fn follow(id: u64, url: String, interval: Duration, tx: UnboundedSender<Update>) {
    // Dropped (the poller aborted) when this task returns or is aborted.
    let _slow = {
        let (tx, url) = (tx.clone(), url.clone());
        TaskGuard(tokio::spawn(async move {
            loop {
                if let Ok(ch) = channel(&url).await {
                    let mut c = DiagnosticsClient::new(ch);
                    while let Ok(r) = c
                        .recent_slow_requests(request(RecentSlowRequestsRequest { limit: 0 }))
                        .await
                    {
                        if tx.send(Update::Slow(id, r.into_inner().requests)).is_err() {
                            return;
                        }
                        tokio::time::sleep(SLOW_EVERY).await;
                    }
                }
                tokio::time::sleep(SLOW_EVERY).await;
            }
        }))
    };
    let mut wait = BACKOFF_MIN;
    let silent = interval * 3 + Duration::from_secs(2);
    loop {
        let err = match watch(id, &url, interval, silent, &tx, &mut wait).await {
            Ok(()) => return, // the UI is gone
            Err(e) => e,
        };
        if tx.send(Update::Down(id, err)).is_err() {
            return;
        }
        tokio::time::sleep(wait).await;
        wait = backoff(wait);
    }
}

/// Streams snapshots until the stream breaks (`Err`) or the UI goes (`Ok`). A snapshot resets
/// the backoff.
async fn watch(
    id: u64,
    url: &str,
    interval: Duration,
    silent: Duration,
    tx: &UnboundedSender<Update>,
    wait: &mut Duration,
) -> Result<(), String> {
    let mut c = DiagnosticsClient::new(channel(url).await?);
    let ms = u64::try_from(interval.as_millis()).unwrap_or(1000).max(1);
    let mut stream = c
        .watch(WatchRequest { interval_ms: ms })
        .await
        .map_err(status)?
        .into_inner();
    loop {
        match tokio::time::timeout(silent, stream.message()).await {
            Err(_) => return Err(format!("no snapshot for {}s", silent.as_secs())),
            Ok(Err(s)) => return Err(status(s)),
            Ok(Ok(None)) => return Err("stream ended".to_string()),
            Ok(Ok(Some(snap))) => {
                *wait = BACKOFF_MIN;
                if tx.send(Update::Snapshot(id, Box::new(snap))).is_err() {
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let mut d = BACKOFF_MIN;
        let mut seen = vec![d];
        for _ in 0..8 {
            d = backoff(d);
            seen.push(d);
        }
        assert_eq!(seen[1], Duration::from_millis(500));
        assert_eq!(seen[4], Duration::from_secs(4));
        assert_eq!(*seen.last().unwrap_or(&d), BACKOFF_MAX);
    }
}
