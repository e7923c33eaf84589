//! The doctor's rules: pure functions over the snapshots the members streamed
//! (`glass.v1.Diagnostics/Watch`), shared by `glass doctor` and `glass top`'s Diagnosis view.
//!
//! SKELETON: the API both commands are written against; the rules themselves land with issue 5.

use glassd::pb::glass::v1::{SlowRequest, Snapshot};
use serde::Serialize;

/// What one member streamed over the sampled period.
#[derive(Clone, Debug, Default)]
pub struct MemberSamples {
    /// The member's name (MemberList's), or its endpoint when it never answered.
    pub name: String,
    pub id: u64,
    /// The client URL the snapshots came from.
    pub endpoint: String,
    /// Oldest first. A stream's first snapshot (window_ms == 0) covers the time since the process
    /// started: rules skip it when later ones exist.
    pub snapshots: Vec<Snapshot>,
    /// The member's recent slow requests (newest first), when they were read.
    pub slow_requests: Vec<SlowRequest>,
    /// False when the member could not be reached at the end of the period.
    pub up: bool,
}

/// Ordered: the verdict's severity is the worst finding's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    #[default]
    Healthy,
    Warning,
    Bottleneck,
}

/// One rule that fired on one member.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// The rule's stable id ("slow-wal-fsync", "cpu-saturation", ...): what `--json` readers and
    /// tests match on.
    pub rule: &'static str,
    pub severity: Severity,
    /// The member's name.
    pub member: String,
    /// The measurement the rule is about, when there is one ("wal.fsync").
    pub layer: Option<&'static str>,
    /// One line, plain words: what is wrong.
    pub summary: String,
    /// The numbers that made the rule fire, each with its threshold.
    pub evidence: Vec<String>,
    /// What to do about it.
    pub recommendation: String,
}

/// The doctor's answer for a cluster.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Verdict {
    pub severity: Severity,
    /// One line: "healthy", or the worst finding's summary with its member.
    pub headline: String,
    /// Worst first.
    pub findings: Vec<Finding>,
}

/// Runs every rule over every member.
pub fn diagnose(members: &[MemberSamples]) -> Verdict {
    let _ = members;
    Verdict {
        severity: Severity::Healthy,
        headline: "healthy".to_string(),
        findings: Vec::new(),
    }
}
