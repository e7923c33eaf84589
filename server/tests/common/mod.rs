//! Shared helpers for the storage tests: the reference bbolt (`boltcheck`, from the system
//! tests' harness in `tests/`), this package's glassd binary, the MVCC store harness (`mvcc`).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)]

pub mod mvcc;

use std::path::Path;
use std::process::Command;

#[allow(unused_imports)]
pub use glass_tests::{bolt, boltcheck, workspace};

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
