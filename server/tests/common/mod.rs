//! Shared helpers for the storage tests: the reference bbolt (`boltcheck`, from the system
//! tests' harness in `tests/`), this package's glassd binary, the MVCC store harness (`mvcc`).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)]

pub mod mvcc;

use std::path::Path;

#[allow(unused_imports)]
pub use glass_tests::{bolt, boltcheck, s, workspace};

/// Runs this package's glassd binary; returns (exit success, stdout, stderr).
pub fn glassd(args: &[&str]) -> (bool, String, String) {
    glass_tests::run(Path::new(env!("CARGO_BIN_EXE_glassd")), args)
}
