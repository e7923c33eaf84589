//! A process harness for one-member clusters: real etcd 3.4 (`/usr/bin/etcd`) or glassd,
//! started with the same etcd 3.4 command line on free loopback ports, and etcdctl 3.4
//! (`/usr/bin/etcdctl`) to talk to them.
//!
//! - [`Member::start`] picks a client, a peer and a metrics port (bind `127.0.0.1:0`, read the
//!   port, drop the listener), spawns the server with stdout and stderr appended to
//!   `DIR/stdout.log` and `DIR/stderr.log` and its data in `DIR/data` (not `DIR` itself: etcd
//!   warns about files in its data dir it does not know), and waits (at most
//!   [`READY_TIMEOUT`]) until a `Maintenance.Status` through the `etcd-client` crate reports a
//!   leader. A server that dies because a port was taken in the meantime is started again on new
//!   ports (at most [`START_ATTEMPTS`] times); any other failure panics with the server's output.
//! - Dropping a [`Member`] kills its process and reaps it, also when the test panics.
//! - [`etcdctl`] and [`etcdctl_stdin`] run etcdctl 3.4 against an endpoint with a bounded wait.
//! - [`missing_tools`] says whether etcd and etcdctl are installed, for tests to skip cleanly
//!   (`.ci/run` installs both).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::s;

/// Debian's etcd 3.4 (package `etcd-server`).
pub const ETCD: &str = "/usr/bin/etcd";
/// Debian's etcdctl 3.4 (package `etcd-client`).
pub const ETCDCTL: &str = "/usr/bin/etcdctl";
/// The `--name` every member gets.
pub const MEMBER_NAME: &str = "compat";
/// How long a member may take to answer with a leader.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How often readiness is polled.
const POLL: Duration = Duration::from_millis(50);
/// How long [`Member::stop`] waits after SIGTERM before it sends SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Starts on fresh ports when the previous ones were taken before the server bound them.
pub const START_ATTEMPTS: usize = 3;
/// An etcdctl run that takes longer than this is killed and the test fails (etcdctl itself
/// gives up after its 2 s dial timeout plus the 5 s command timeout).
const ETCDCTL_TIMEOUT: Duration = Duration::from_secs(30);

/// Which server a [`Member`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// etcd 3.4 at [`ETCD`].
    Etcd,
    /// The `glassd` binary ([`crate::glassd_bin`]).
    Glassd,
}

impl Kind {
    pub fn program(self) -> PathBuf {
        match self {
            Kind::Etcd => PathBuf::from(ETCD),
            Kind::Glassd => crate::glassd_bin(),
        }
    }
}

/// `Some(reason)` when etcd or etcdctl is not installed; tests print the reason and return.
pub fn missing_tools() -> Option<String> {
    [ETCD, ETCDCTL]
        .iter()
        .find(|p| !Path::new(p).is_file())
        .map(|p| format!("{p} is not installed (apt-get install etcd-server etcd-client)"))
}

/// The loopback ports of one member.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    pub client: u16,
    pub peer: u16,
    pub metrics: u16,
}

impl Ports {
    /// Three ports that were free a moment ago (all bound at once, so they are distinct).
    fn pick() -> Ports {
        let bind = || TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let (c, p, m) = (bind(), bind(), bind());
        let port = |l: &TcpListener| l.local_addr().expect("local addr").port();
        Ports {
            client: port(&c),
            peer: port(&p),
            metrics: port(&m),
        }
    }
}

/// What `Maintenance.Status` said when the member became ready.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    pub member_id: u64,
    pub cluster_id: u64,
    pub version: String,
}

/// One running etcd or glassd process and its directory.
pub struct Member {
    kind: Kind,
    dir: PathBuf,
    ports: Ports,
    extra_args: Vec<String>,
    /// Environment variables set for the process (on every start).
    env: Vec<(String, String)>,
    child: Option<Child>,
    identity: Identity,
}

/// Why one start attempt failed.
enum StartFailure {
    /// The process exited and its output says a port was in use: worth new ports.
    PortTaken(String),
    Other(String),
}

impl Member {
    /// Starts `kind` as a one-member cluster in `dir` (data in `dir/data`, output in
    /// `dir/stdout.log` and `dir/stderr.log`) with etcd's flags plus `extra_args`, and waits
    /// until it has a leader. Panics, with the server's output, when it does not come up.
    pub fn start(kind: Kind, dir: &Path, extra_args: &[&str]) -> Member {
        Member::start_with_env(kind, dir, extra_args, &[])
    }

    /// [`Member::start`] with environment variables set for the process (glassd's test-only
    /// hooks, such as `GLASS_TEST_FSYNC_DELAY`).
    pub fn start_with_env(
        kind: Kind,
        dir: &Path,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Member {
        fs::create_dir_all(dir).expect("create the member dir");
        let mut member = Member {
            kind,
            dir: dir.to_path_buf(),
            ports: Ports::pick(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            child: None,
            identity: Identity::default(),
        };
        // A data dir that exists before the first attempt is the caller's; one a failed attempt
        // created records that attempt's peer URL and is removed before the next.
        let fresh = !member.data_dir().exists();
        for attempt in 1..=START_ATTEMPTS {
            match member.spawn_and_wait() {
                Ok(()) => return member,
                Err(StartFailure::PortTaken(why)) if attempt < START_ATTEMPTS && fresh => {
                    eprintln!("{kind:?} lost a port race, starting again on new ports: {why}");
                    if member.data_dir().exists() {
                        fs::remove_dir_all(member.data_dir()).expect("remove the data dir");
                    }
                    member.ports = Ports::pick();
                }
                Err(StartFailure::PortTaken(why) | StartFailure::Other(why)) => panic!("{why}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// `http://127.0.0.1:CLIENT_PORT`, for `--endpoints`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.client)
    }

    /// `http://127.0.0.1:PEER_PORT`.
    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.peer)
    }

    pub fn client_port(&self) -> u16 {
        self.ports.client
    }

    pub fn ports(&self) -> Ports {
        self.ports
    }

    /// `--data-dir`: `DIR/data`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The ids and version `Maintenance.Status` reported at the last (re)start.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// SIGKILL, and reap. Nothing happens when the process is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, wait up to 10 s for the exit, then SIGKILL. Returns the exit status (`None` when
    /// the process was not running or had to be killed).
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) has no memory effects; `pid` is our child, not yet reaped (so the id
        // cannot have been reused).
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(POLL);
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Stops the member (if running) and starts it again on the same ports and dir, waiting
    /// until it has a leader. Panics, with the server's output, when it does not come up.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(StartFailure::PortTaken(why) | StartFailure::Other(why)) = self.spawn_and_wait()
        {
            panic!("{why}");
        }
    }

    /// Everything the server wrote to stdout and stderr, across restarts.
    pub fn logs(&self) -> String {
        let read = |name: &str| {
            let path = self.dir.join(name);
            let text = fs::read_to_string(&path).unwrap_or_else(|e| format!("({e})\n"));
            format!("--- {} ---\n{text}", path.display())
        };
        format!("{}{}", read("stdout.log"), read("stderr.log"))
    }

    /// The command line both servers take: etcd 3.4's flags, quiet logging, then `extra_args`
    /// (Go's flag package lets a later repetition of a flag win).
    fn args(&self) -> Vec<String> {
        let client = self.endpoint();
        let peer = self.peer_url();
        let mut args: Vec<String> = [
            "--name",
            MEMBER_NAME,
            "--data-dir",
            s(&self.data_dir()),
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
            "--initial-cluster",
            &format!("{MEMBER_NAME}={peer}"),
            "--listen-metrics-urls",
            &format!("http://127.0.0.1:{}", self.ports.metrics),
            // etcd 3.4's zap logger at warn prints a line or two; its default (capnslog) prints
            // raft's INFO lines whatever the level. glassd warns that it ignores the first two.
            "--logger=zap",
            "--log-outputs=stderr",
            "--log-level=warn",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        args.extend(self.extra_args.iter().cloned());
        args
    }

    fn spawn_and_wait(&mut self) -> Result<(), StartFailure> {
        let program = self.kind.program();
        let log = |name: &str| -> (File, u64) {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join(name))
                .expect("open a member log");
            let len = f.metadata().expect("log metadata").len();
            (f, len)
        };
        let (stdout, _) = log("stdout.log");
        let (stderr, stderr_start) = log("stderr.log");
        let args = self.args();
        let mut cmd = Command::new(&program);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        // An ETCD_* variable that repeats a flag is an error in etcd (and glassd): keep them out.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("ETCD_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let child = cmd
            .spawn()
            .map_err(|e| StartFailure::Other(format!("cannot run {}: {e}", program.display())))?;
        self.child = Some(child);

        let what = format!("{:?} ({} {})", self.kind, program.display(), args.join(" "));
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let exited = match self.child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => Some(status.to_string()),
                Some(Ok(None)) => None,
                Some(Err(e)) => Some(format!("wait failed: {e}")),
                None => Some("not running".into()),
            };
            if let Some(status) = exited {
                self.child = None;
                let why = format!(
                    "{what} exited ({status}) before it answered on {}\n{}",
                    self.endpoint(),
                    self.logs()
                );
                // Only this attempt's output decides whether a port was taken.
                let mut this_attempt = fs::read(self.dir.join("stderr.log")).unwrap_or_default();
                this_attempt.drain(
                    ..usize::try_from(stderr_start)
                        .unwrap_or(0)
                        .min(this_attempt.len()),
                );
                let taken = String::from_utf8_lossy(&this_attempt)
                    .to_lowercase()
                    .contains("address already in use");
                return Err(if taken {
                    StartFailure::PortTaken(why)
                } else {
                    StartFailure::Other(why)
                });
            }
            let last_error = match status_blocking(&self.endpoint()) {
                // Whoever answered, our process must still be running: a server that took our
                // port before we bound it answers too, and ours then dies of the taken port.
                Ok(identity)
                    if matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None))) =>
                {
                    self.identity = identity;
                    return Ok(());
                }
                Ok(_) => continue,
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                self.kill();
                return Err(StartFailure::Other(format!(
                    "{what} did not answer with a leader on {} within {READY_TIMEOUT:?}: \
                     {last_error}\n{}",
                    self.endpoint(),
                    self.logs()
                )));
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One `Maintenance.Status` call; ready means a leader is known.
/// [`status`] from any thread, tokio tests included: on a thread of its own with its own
/// runtime (a runtime can neither block nor be dropped inside another).
fn status_blocking(endpoint: &str) -> Result<Identity, String> {
    let endpoint = endpoint.to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        rt.block_on(status(&endpoint))
    })
    .join()
    .expect("the status thread panicked")
}

async fn status(endpoint: &str) -> Result<Identity, String> {
    let options = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_millis(500))
        .with_timeout(Duration::from_secs(1));
    let mut client = etcd_client::Client::connect([endpoint], Some(options))
        .await
        .map_err(|e| e.to_string())?;
    let resp = client.status().await.map_err(|e| e.to_string())?;
    if resp.leader() == 0 {
        return Err("status: no leader yet".into());
    }
    let header = resp.header().ok_or("status: no header")?;
    Ok(Identity {
        member_id: header.member_id(),
        cluster_id: header.cluster_id(),
        version: resp.version().to_string(),
    })
}

/// What an etcdctl run produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// The exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// `etcdctl --endpoints ENDPOINT --command-timeout=5s ARGS...` with `ETCDCTL_API=3` and an
/// empty stdin.
pub fn etcdctl(endpoint: &str, args: &[&str]) -> Output {
    etcdctl_stdin(endpoint, args, "")
}

/// [`etcdctl`] with `stdin` as its standard input (`txn -i`, `put KEY` reading the value).
pub fn etcdctl_stdin(endpoint: &str, args: &[&str], stdin: &str) -> Output {
    let mut cmd = Command::new(ETCDCTL);
    // etcdctl refuses an ETCDCTL_* variable that repeats a flag: keep the caller's out.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("ETCDCTL_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoint, "--command-timeout=5s"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {ETCDCTL}: {e}"));
    let pid = child.id();
    let mut input = child.stdin.take().expect("piped stdin");
    let stdin = stdin.to_string();
    // Written from a thread: a large input must not block while etcdctl's output fills its pipes.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(stdin.as_bytes());
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(ETCDCTL_TIMEOUT) {
        Ok(out) => out.expect("etcdctl ran"),
        Err(_) => {
            let pid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
            // SAFETY: kill(2) has no memory effects. The waiting thread has not reaped etcdctl
            // (it would have sent), barring the moment in between; pids are not reused that fast.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!(
                "etcdctl {} did not finish within {ETCDCTL_TIMEOUT:?}",
                args.join(" ")
            );
        }
    };
    let _ = writer.join();
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
