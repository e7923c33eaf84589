//! `glass doctor`: samples every member's diagnostics stream for a while, runs the [`rules`] and
//! prints the verdict with its evidence.

pub mod rules;
