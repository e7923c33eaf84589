//! The table every other part of the configuration reads: each setting's flag name (which is
//! also its YAML key and, upper-cased with an `ETCD_` prefix, its environment variable), other
//! spellings, default as `--help` prints it, whether it may change while running, and a
//! one-line description. Plus etcd 3.4's flags that Glass does not implement, and what to do
//! when one is given.

/// How a YAML value of this setting is written in etcd's config file (etcd decodes YAML
/// through JSON into typed Go fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Yaml {
    /// A Go string: any scalar, taken as its text (`name: 1` is the name "1").
    Str,
    /// A Go integer: a YAML number.
    Int,
    /// A Go `time.Duration`: an integer of nanoseconds, or (Glass) a duration string.
    Duration,
    /// A float: a YAML number.
    Float,
}

/// Sections of `--help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Group {
    Member,
    Clustering,
    Limits,
    Logging,
    Observability,
}

#[derive(Debug)]
pub(crate) struct Spec {
    pub name: &'static str,
    /// Other accepted spellings (flag, YAML key and environment variable alike).
    pub aliases: &'static [&'static str],
    pub default: &'static str,
    pub runtime: bool,
    pub yaml: Yaml,
    pub group: Group,
    pub help: &'static str,
}

const fn spec(
    name: &'static str,
    default: &'static str,
    runtime: bool,
    yaml: Yaml,
    group: Group,
    help: &'static str,
) -> Spec {
    Spec {
        name,
        aliases: &[],
        default,
        runtime,
        yaml,
        group,
        help,
    }
}

use Group::*;
use Yaml::{Duration, Float, Int, Str};

/// Every setting, in `--help` order. Names, defaults and meanings are etcd 3.4's except the
/// last six (Glass's observability).
pub(crate) const SPECS: &[Spec] = &[
    spec("config-file", "", false, Str, Member,
        "Path to the server configuration file (etcd's YAML keys). If given, other command-line flags and environment variables are ignored, as in etcd 3.4."),
    spec("name", "default", false, Str, Member, "Human-readable name for this member."),
    spec("data-dir", "${name}.etcd", false, Str, Member, "Path to the data directory."),
    spec("wal-dir", "", false, Str, Member, "Path to the dedicated wal directory."),
    spec("listen-peer-urls", "http://localhost:2380", false, Str, Member,
        "List of URLs to listen on for peer traffic."),
    spec("listen-client-urls", "http://localhost:2379", false, Str, Member,
        "List of URLs to listen on for client traffic."),
    spec("listen-metrics-urls", "", false, Str, Member,
        "List of URLs to listen on for the metrics and health endpoints."),
    spec("snapshot-count", "100000", true, Int, Member,
        "Number of committed transactions to trigger a snapshot to disk."),
    spec("heartbeat-interval", "100", false, Int, Member,
        "Time (in milliseconds) of a heartbeat interval."),
    spec("election-timeout", "1000", false, Int, Member,
        "Time (in milliseconds) for an election to timeout."),
    spec("initial-advertise-peer-urls", "http://localhost:2380", false, Str, Clustering,
        "List of this member's peer URLs to advertise to the rest of the cluster."),
    spec("advertise-client-urls", "http://localhost:2379", false, Str, Clustering,
        "List of this member's client URLs to advertise to the public."),
    spec("initial-cluster", "default=http://localhost:2380", false, Str, Clustering,
        "Initial cluster configuration for bootstrapping."),
    spec("initial-cluster-state", "new", false, Str, Clustering,
        "Initial cluster state ('new' or 'existing')."),
    spec("initial-cluster-token", "etcd-cluster", false, Str, Clustering,
        "Initial cluster token for the etcd cluster during bootstrap."),
    spec("quota-backend-bytes", "0", true, Int, Limits,
        "Raise alarms when backend size exceeds the given quota (0 means the default, 2 GiB; negative disables the quota)."),
    spec("backend-batch-limit", "0", true, Int, Limits,
        "Maximum operations before committing the backend transaction (0 means the default, 10000)."),
    spec("backend-batch-interval", "0s", true, Duration, Limits,
        "Maximum time before committing the backend transaction (0 means the default, 100ms)."),
    Spec {
        aliases: &["experimental-backend-bbolt-freelist-type"],
        ..spec("backend-bbolt-freelist-type", "map", true, Str, Limits,
            "Freelist type of the bbolt backend: 'map' or 'array'.")
    },
    spec("max-request-bytes", "1572864", true, Int, Limits,
        "Maximum client request size in bytes the server will accept."),
    spec("max-txn-ops", "128", true, Int, Limits,
        "Maximum number of operations permitted in a transaction."),
    spec("auto-compaction-mode", "periodic", false, Str, Limits,
        "Interpret 'auto-compaction-retention' one of: periodic|revision. 'periodic' for duration based retention, defaulting to hours if no time unit is provided (e.g. '5m'). 'revision' for revision number based retention."),
    spec("auto-compaction-retention", "0", true, Str, Limits,
        "Auto compaction retention for mvcc key value store. 0 means disable auto compaction."),
    spec("log-level", "info", true, Str, Logging,
        "Configures log level. Only supports debug, info, warn, error, panic, or fatal."),
    spec("otlp-endpoint", "", true, Str, Observability,
        "OTLP collector to export traces to (e.g. http://localhost:4317 for Jaeger over gRPC); empty disables export."),
    // Not runtime: the exporter's transport is chosen when it is built (TraceControl can
    // change the endpoint, not the protocol).
    spec("otlp-protocol", "grpc", false, Str, Observability,
        "OTLP transport: 'grpc' (port 4317) or 'http' (HTTP/protobuf, port 4318)."),
    spec("trace-sample-ratio", "0", true, Float, Observability,
        "Fraction of requests traced, 0.0 to 1.0 (parent-based: an incoming sampled trace context is honoured). Slow requests are exported regardless."),
    spec("slow-request-threshold", "100ms", true, Duration, Observability,
        "Requests slower than this are exported and kept in the slow-request ring even when not sampled (etcd's warning-apply-duration)."),
    spec("trace-max-exports-per-second", "1000", true, Int, Observability,
        "Most requests exported as traces per second, sampled and slow alike (a token bucket with a one-second burst); 0 means no limit. Any client can ask for its requests to be traced (a sampled traceparent): this bounds what that costs. The excess is counted in glass_trace_exports_throttled_total and its spans in glass_trace_spans_dropped_total; slow requests over the limit are still kept in the slow-request ring."),
    // Not runtime: what is measured is wired when the member starts.
    spec("glass-measurements", "all", false, Str, Observability,
        "What Glass measures: 'all' (histograms and per-request records: tail capture, slow-request ring, trace export), 'histograms' (histograms only: no per-request records, so no slow-request ring or traces) or 'off' (histograms record nothing either). For measuring Glass's own overhead (glass bench overhead); leave it at 'all' in production."),
];

/// The setting a flag name, YAML key or alias stands for.
pub(crate) fn lookup(name: &str) -> Option<&'static Spec> {
    SPECS
        .iter()
        .find(|s| s.name == name || s.aliases.contains(&name))
}

/// `ETCD_` + the name upper-cased with `-` as `_` (etcd's `flags.FlagToEnv`).
pub(crate) fn env_var(name: &str) -> String {
    format!("ETCD_{}", name.to_ascii_uppercase().replace('-', "_"))
}

/// What Glass does with an etcd 3.4 setting it does not implement, when it is given a value
/// other than its off value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Policy {
    /// Accepted and ignored, with a warning: tuning that does not change what clients see.
    Ignore,
    /// Refused: silently ignoring it would change security or cluster membership (serving
    /// plaintext where TLS was asked for, bootstrapping without the discovery asked for).
    Refuse(&'static str),
}

#[derive(Debug)]
pub(crate) struct Unsupported {
    pub name: &'static str,
    /// A Go bool flag: `--flag` alone means true, and a value needs `=`.
    pub boolean: bool,
    /// A YAML key with no flag form (etcd's `client-transport-security` block).
    pub yaml_only: bool,
    pub policy: Policy,
}

const TLS: Policy =
    Policy::Refuse("TLS is not implemented; refusing to serve plaintext where TLS was asked for");
const DISCOVERY: Policy =
    Policy::Refuse("discovery is not implemented; bootstrap with --initial-cluster");
const PROXY: Policy = Policy::Refuse("proxy mode is not implemented");
const FORCE: Policy = Policy::Refuse("--force-new-cluster is not implemented");
const NO_FSYNC: Policy = Policy::Refuse("glassd always fsyncs its WAL and backend");

const fn flag(name: &'static str, policy: Policy) -> Unsupported {
    Unsupported {
        name,
        boolean: false,
        yaml_only: false,
        policy,
    }
}

const fn bool_flag(name: &'static str, policy: Policy) -> Unsupported {
    Unsupported {
        name,
        boolean: true,
        yaml_only: false,
        policy,
    }
}

const fn yaml_block(name: &'static str, policy: Policy) -> Unsupported {
    Unsupported {
        name,
        boolean: false,
        yaml_only: true,
        policy,
    }
}

/// etcd 3.4's flags (`etcdmain/config.go`, 3.4.x) and YAML keys that Glass does not implement.
pub(crate) const UNSUPPORTED: &[Unsupported] = &[
    flag("max-snapshots", Policy::Ignore),
    flag("max-wals", Policy::Ignore),
    bool_flag("initial-election-tick-advance", Policy::Ignore),
    flag("grpc-keepalive-min-time", Policy::Ignore),
    flag("grpc-keepalive-interval", Policy::Ignore),
    flag("grpc-keepalive-timeout", Policy::Ignore),
    flag("discovery", DISCOVERY),
    flag("discovery-fallback", Policy::Ignore),
    flag("discovery-proxy", DISCOVERY),
    flag("discovery-srv", DISCOVERY),
    flag("discovery-srv-name", DISCOVERY),
    bool_flag("strict-reconfig-check", Policy::Ignore),
    bool_flag("enable-v2", Policy::Ignore),
    bool_flag("pre-vote", Policy::Ignore),
    flag("proxy", PROXY),
    flag("proxy-failure-wait", Policy::Ignore),
    flag("proxy-refresh-interval", Policy::Ignore),
    flag("proxy-dial-timeout", Policy::Ignore),
    flag("proxy-write-timeout", Policy::Ignore),
    flag("proxy-read-timeout", Policy::Ignore),
    flag("cert-file", TLS),
    flag("key-file", TLS),
    bool_flag("client-cert-auth", TLS),
    flag("client-crl-file", TLS),
    flag("client-cert-allowed-hostname", TLS),
    flag("trusted-ca-file", TLS),
    bool_flag("auto-tls", TLS),
    flag("peer-cert-file", TLS),
    flag("peer-key-file", TLS),
    bool_flag("peer-client-cert-auth", TLS),
    flag("peer-trusted-ca-file", TLS),
    bool_flag("peer-auto-tls", TLS),
    flag("peer-crl-file", TLS),
    flag("peer-cert-allowed-cn", TLS),
    flag("peer-cert-allowed-hostname", TLS),
    flag("cipher-suites", TLS),
    bool_flag("experimental-peer-skip-client-san-verification", TLS),
    yaml_block("client-transport-security", TLS),
    yaml_block("peer-transport-security", TLS),
    flag("cors", Policy::Ignore),
    flag("host-whitelist", Policy::Ignore),
    flag("logger", Policy::Ignore),
    flag("log-output", Policy::Ignore),
    flag("log-outputs", Policy::Ignore),
    bool_flag("debug", Policy::Ignore),
    flag("log-package-levels", Policy::Ignore),
    bool_flag("enable-pprof", Policy::Ignore),
    flag("metrics", Policy::Ignore),
    flag("auth-token", Policy::Ignore),
    flag("auth-token-ttl", Policy::Ignore),
    flag("bcrypt-cost", Policy::Ignore),
    bool_flag("enable-grpc-gateway", Policy::Ignore),
    bool_flag("experimental-initial-corrupt-check", Policy::Ignore),
    flag("experimental-corrupt-check-time", Policy::Ignore),
    flag("experimental-enable-v2v3", Policy::Ignore),
    bool_flag("experimental-enable-lease-checkpoint", Policy::Ignore),
    flag("experimental-compaction-batch-limit", Policy::Ignore),
    flag(
        "experimental-watch-progress-notify-interval",
        Policy::Ignore,
    ),
    bool_flag("force-new-cluster", FORCE),
    bool_flag("unsafe-no-fsync", NO_FSYNC),
];

pub(crate) fn lookup_unsupported(name: &str) -> Option<&'static Unsupported> {
    UNSUPPORTED.iter().find(|u| u.name == name)
}

/// Values that leave an unsupported setting off (so asking for them asks for nothing Glass
/// lacks): empty, a false boolean, `proxy=off`.
pub(crate) fn is_off_value(u: &Unsupported, value: &str) -> bool {
    value.is_empty()
        || (u.boolean && matches!(value, "0" | "f" | "F" | "false" | "FALSE" | "False"))
        || (u.name == "proxy" && value == "off")
}

/// `glassd --help`.
pub fn help() -> String {
    let mut out = String::from(
        "Usage:\n\n  glassd [flags]\n    Start a Glass member. Flags, their defaults and ETCD_* environment variables are etcd 3.4's.\n  glassd bolt check|dump|stats|compact|bench ...\n    Offline tools over bbolt-format files (see 'glassd bolt --help').\n  glassd --version\n    Print the version and exit.\n  glassd -h | --help\n    Show this help.\n",
    );
    for (group, title) in [
        (Member, "Member"),
        (Clustering, "Clustering"),
        (Limits, "Backend, limits and compaction"),
        (Logging, "Logging"),
        (Observability, "Observability (Glass)"),
    ] {
        out.push_str(&format!("\n{title}:\n"));
        for s in SPECS.iter().filter(|s| s.group == group) {
            out.push_str(&format!("  --{} '{}'\n      {}", s.name, s.default, s.help));
            if s.runtime {
                out.push_str(" [runtime]");
            }
            out.push('\n');
            for a in s.aliases {
                out.push_str(&format!("  --{a}\n      Same as --{}.\n", s.name));
            }
        }
    }
    out.push_str(
        "\nEvery flag can also be set with an environment variable: --initial-cluster-token is\n\
         ETCD_INITIAL_CLUSTER_TOKEN. Setting both the flag and its variable is an error, as in etcd.\n\
         [runtime] settings can later be changed on a running member.\n\
         etcd 3.4 flags glassd does not implement are refused when they would change security or\n\
         membership (TLS, discovery, proxy) and otherwise accepted with a warning.\n",
    );
    out
}
