//! Glass's system tests: real `glassd` processes (and a reference etcd 3.4), driven by real
//! clients (the `etcd-client` crate, Debian's etcdctl 3.4) through real faults (SIGKILL, torn
//! and damaged files). This library is the harness; the tests are in `tests/`.
//!
//! # Layout
//! - [`member`] — start, kill, restart one-member clusters of glassd or etcd on free loopback
//!   ports; run etcdctl;
//! - [`http_get`] and [`metric`] — a member's `/metrics`, `/health`, `/version`;
//! - this file — where the `glassd` binary is ([`glassd_bin`]), and the reference bbolt
//!   (`boltcheck`, the judge of Glass's file format) shared with `server/`'s storage tests.
//!   (`boltcheck` comes from `../shared/tools/boltcheck`; `.ci/run` builds it.)
//!
//! # The glassd binary
//! The tests drive the binary `cargo test --workspace` builds (`target/<profile>/glassd`), or
//! the one `$GLASSD` names. Cargo does not rebuild another package's binary for this package's
//! tests, so a binary older than glassd's sources is refused with the command that rebuilds it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod member;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// The newest modification time of the files under `dir`.
fn newest(dir: &Path) -> Option<SystemTime> {
    let mut best = None;
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        let t = if p.is_dir() {
            newest(&p)
        } else {
            e.metadata().and_then(|m| m.modified()).ok()
        };
        best = best.max(t);
    }
    best
}

/// The `glassd` binary to test: `$GLASSD`, or the one built beside this test binary
/// (`target/<profile>/glassd`), checked to be newer than glassd's sources.
pub fn glassd_bin() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Some(p) = std::env::var_os("GLASSD") {
            return PathBuf::from(p);
        }
        // target/<profile>/deps/<test>-<hash> → target/<profile>
        let exe = std::env::current_exe().expect("the test binary's path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test binary is in target/<profile>/deps");
        let bin = profile_dir.join("glassd");
        let profile = profile_dir
            .file_name()
            .and_then(|n| n.to_str())
            .map(|p| if p == "debug" { "dev" } else { p })
            .unwrap_or("dev")
            .to_string();
        let rebuild = format!("cargo build -p glassd --profile {profile}");
        let built = std::fs::metadata(&bin)
            .and_then(|m| m.modified())
            .unwrap_or_else(|_| {
                panic!(
                    "no glassd at {}: run `{rebuild}` (or `cargo test --workspace`)",
                    bin.display()
                )
            });
        let ws = workspace();
        let sources = [ws.join("server"), ws.join("telemetry")]
            .iter()
            .filter_map(|d| newest(&d.join("src")))
            .max();
        if let Some(src) = sources {
            assert!(
                built >= src,
                "{} is older than glassd's sources: run `{rebuild}` (or `cargo test --workspace`)",
                bin.display()
            );
        }
        bin
    })
    .clone()
}

/// `GET path` over HTTP/1.1 on `127.0.0.1:port`; returns (status code, body).
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// One unlabelled sample of a Prometheus text exposition (`name value`), if present.
pub fn metric(exposition: &str, name: &str) -> Option<f64> {
    exposition.lines().find_map(|l| {
        let (n, v) = l.split_once(' ')?;
        if n == name {
            v.trim().parse().ok()
        } else {
            None
        }
    })
}

/// Runs the glassd binary; returns (exit success, stdout, stderr).
pub fn glassd(args: &[&str]) -> (bool, String, String) {
    run(&glassd_bin(), args)
}

/// Runs `program` to its end; returns (exit success, stdout, stderr).
pub fn run(program: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Path to the `boltcheck` oracle: `$BOLTCHECK`, or `target/boltcheck`, built from
/// `../shared/tools/boltcheck` on first use (it installs Go and Debian's bbolt if missing).
pub fn boltcheck() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Some(p) = std::env::var_os("BOLTCHECK") {
            return PathBuf::from(p);
        }
        let target = workspace().join("target").join("boltcheck");
        if target.exists() {
            return target;
        }
        let script = workspace().join("../shared/tools/boltcheck/build.sh");
        // Build to a private name and rename, so parallel test binaries never see half a file.
        let tmp = target.with_extension(format!("tmp{}", std::process::id()));
        let st = Command::new("bash")
            .arg(&script)
            .arg(&tmp)
            .status()
            .expect("run boltcheck build.sh");
        assert!(
            st.success(),
            "building boltcheck with {} failed",
            script.display()
        );
        std::fs::rename(&tmp, &target).expect("install boltcheck");
        target
    })
    .clone()
}

/// Runs boltcheck; returns (exit success, stdout).
pub fn bolt(args: &[&str]) -> (bool, String) {
    let out = Command::new(boltcheck())
        .args(args)
        .output()
        .expect("run boltcheck");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}
