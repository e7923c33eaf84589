//! Shared helpers for the tests: the reference bbolt (`boltcheck`), temp files, the MVCC store
//! harness (`mvcc`) and the etcd/glassd process harness with etcdctl (`member`).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)]

pub mod member;
pub mod mvcc;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("server/ has a parent")
        .to_path_buf()
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

/// Runs the glassd binary; returns (exit success, stdout, stderr).
pub fn glassd(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_glassd"))
        .args(args)
        .output()
        .expect("run glassd");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}
