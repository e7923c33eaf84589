//! Servers that `glass bench compare` and `glass demo` start themselves: a single member on free
//! loopback ports with a temporary data dir, stopped (SIGKILL, then reaped) when its [`Server`]
//! guard is dropped — on every exit path, errors and Ctrl-C included (the command's future is
//! dropped on Ctrl-C) — and killed by the kernel if glass itself is killed (`PR_SET_PDEATHSIG`).
//!
//! etcd and glassd take the same flags (glassd reads etcd's command line), so one launcher serves
//! both.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use glassd::pb::etcdserverpb::kv_client::KvClient;
use glassd::pb::etcdserverpb::RangeRequest;
use tonic::transport::Endpoint;

/// A running server; dropping it kills the process and removes its data dir.
pub struct Server {
    pub name: String,
    /// `127.0.0.1:PORT`, for `--endpoints`.
    pub endpoint: String,
    child: Child,
    /// Holds the data dir and the server's log (`server.log`) until the guard goes.
    dir: tempfile::TempDir,
}

/// Why a server did not come up.
#[derive(Debug)]
pub enum StartError {
    /// The process exited before it served: exit status and the last lines of its log.
    Exited { status: String, log_tail: String },
    /// Could not be spawned at all (no such binary, ...).
    Spawn(String),
    /// Still running but never answered a Range before the deadline.
    NotReady(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Exited { status, log_tail } => write!(f, "exited ({status}): {log_tail}"),
            StartError::Spawn(e) => write!(f, "cannot start: {e}"),
            StartError::NotReady(e) => write!(f, "not ready in time: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("binding a loopback port")?;
    Ok(l.local_addr()?.port())
}

impl Server {
    /// Starts `binary` as a one-member cluster with etcd's flags and waits until a serializable
    /// Range succeeds (at most `deadline`).
    pub async fn start(
        name: &str,
        binary: &Path,
        deadline: Duration,
    ) -> Result<Server, StartError> {
        Self::start_with(name, binary, &[], deadline).await
    }

    /// [`Server::start`] with `extra` flags after etcd's.
    pub async fn start_with(
        name: &str,
        binary: &Path,
        extra: &[String],
        deadline: Duration,
    ) -> Result<Server, StartError> {
        let spawn = |e: anyhow::Error| StartError::Spawn(format!("{e:#}"));
        let dir = tempfile::Builder::new()
            .prefix("glass-bench-")
            .tempdir()
            .map_err(|e| spawn(e.into()))?;
        let client_port = free_port().map_err(spawn)?;
        let peer_port = free_port().map_err(spawn)?;
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let log_path = dir.path().join("server.log");
        let log = File::create(&log_path).map_err(|e| spawn(e.into()))?;
        let log2 = log.try_clone().map_err(|e| spawn(e.into()))?;
        let mut cmd = Command::new(binary);
        cmd.arg("--name")
            .arg("bench")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer_url)
            .arg("--initial-cluster")
            .arg(format!("bench={peer_url}"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        // An ETCD_* variable that repeats a flag is an error in etcd (and glassd): keep them out.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("ETCD_") {
                cmd.env_remove(k);
            }
        }
        // The server dies with this process even when it is SIGKILLed (no Drop runs then).
        // PR_SET_PDEATHSIG fires when the *thread* that spawned the child exits: spawning
        // happens on a runtime worker thread, which lives as long as the process's runtime.
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| StartError::Spawn(format!("{}: {e}", binary.display())))?;
        let mut server = Server {
            name: name.to_string(),
            endpoint: format!("127.0.0.1:{client_port}"),
            child,
            dir,
        };
        server.wait_ready(&client_url, deadline).await?;
        Ok(server)
    }

    async fn wait_ready(&mut self, url: &str, deadline: Duration) -> Result<(), StartError> {
        let until = Instant::now() + deadline;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(StartError::Exited {
                    status: status.to_string(),
                    log_tail: self.log_tail(3),
                });
            }
            let last = match probe(url).await {
                Ok(()) => return Ok(()),
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() >= until {
                return Err(StartError::NotReady(last));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last `n` non-empty lines of the server's output, joined by " | ".
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(n)..].join(" | ")
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The client port (for `/metrics`).
    pub fn client_port(&self) -> Option<u16> {
        self.endpoint.rsplit_once(':')?.1.parse().ok()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn probe(url: &str) -> anyhow::Result<()> {
    let channel = Endpoint::from_shared(url.to_string())?
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(1))
        .connect()
        .await?;
    KvClient::new(channel)
        .range(RangeRequest {
            key: b"glass-bench-probe".to_vec(),
            serializable: true,
            ..Default::default()
        })
        .await?;
    Ok(())
}

/// etcd's binary: `$PATH`'s `etcd`, else Debian's `/usr/bin/etcd`.
pub fn find_etcd() -> anyhow::Result<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("etcd"))
        .find(|p| p.is_file());
    if let Some(p) = on_path {
        return Ok(p);
    }
    let debian = PathBuf::from("/usr/bin/etcd");
    if debian.is_file() {
        return Ok(debian);
    }
    bail!("no etcd binary found: install Debian's etcd 3.4 (`apt-get install -y etcd-server`) or pass --etcd PATH")
}

/// The first line of `BINARY --version` (`etcd Version: 3.4.23`).
pub fn version_line(binary: &Path) -> String {
    Command::new(binary)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_else(|| "unknown version".into())
}
