//! glassd's configuration: etcd 3.4's flags, `ETCD_*` environment variables and YAML config
//! file, read the way etcd reads them, so that an etcd deployment's command line, unit file or
//! config file starts glassd unchanged.
//!
//! Contract:
//! - [`Config::from_args`] is the only entry: it takes the arguments (without the program
//!   name) and an environment lookup (`main` passes `std::env::var`; tests pass a map), so the
//!   library never reads the process environment.
//! - **Sources, as etcd 3.4** (`etcdmain/config.go`): with `--config-file` (or
//!   `ETCD_CONFIG_FILE`) every setting comes from the file or its default, and all other flags
//!   and `ETCD_*` variables are ignored (with a warning naming them; their values must still
//!   parse, as Go's flag parsing checks them). Without a file: command-line flags, then
//!   `ETCD_<FLAG>` variables for flags not on the command line, then defaults. A variable for a
//!   flag also on the command line is an error (etcd's fatal `verifyEnv`); an empty variable is
//!   no setting.
//! - Each setting records where its value came from ([`Source`]); [`Config::flags`] lists every
//!   setting with its value, default, source, whether it may change while running, and a
//!   description: the registry the runtime-flags work builds on.
//! - Validation is etcd's (`embed.Config.Validate` and start-up), with etcd's messages; values
//!   etcd warns about (quota above 8 GiB, requests above 10 MiB) land in [`Config::warnings`].
//!
//! Where Glass differs from etcd 3.4, on purpose:
//! - `--backend-bbolt-freelist-type` defaults to `map` (etcd 3.4's effective default was
//!   `array`; 3.5 made `map` the default) and a value other than `map`/`array` is refused
//!   (3.4 took anything but `map` as `array`). Both the 3.5 spelling and 3.4's
//!   `--experimental-backend-bbolt-freelist-type` are accepted.
//! - A config file without `auto-compaction-mode` means `periodic`, as the flag's default
//!   (3.4 left the mode empty, which silently disabled an hours-only retention).
//! - `--auto-compaction-retention` given as a duration with `--auto-compaction-mode=revision`
//!   is refused (3.4 took the nanoseconds as a revision count); negative values are refused.
//! - Negative `--backend-batch-limit` is refused (3.4 committed after every operation).
//! - etcd 3.4 flags Glass does not implement are refused when they would change security or
//!   membership (TLS, discovery, proxy, force-new-cluster, unsafe-no-fsync) and otherwise
//!   accepted with a warning; unknown config-file keys are ignored with a warning (etcd ignores
//!   them silently).
//! - Not done yet: replacing a `0.0.0.0` listen address's default advertise host with the
//!   machine's (etcd's `UpdateDefaultClusterFromName`); warnings for unknown `ETCD_*` variables.
//!
//! # Layout
//! - this file — [`Config`], [`Source`], [`FlagInfo`], the value types, the registry;
//! - `build` — applying values with their sources, derived defaults, validation;
//! - `spec` — the table of settings (names, defaults, runtime, help) and etcd's unsupported flags;
//! - `args` — the command line by Go's `flag` rules; `file` — the YAML file;
//! - `value` — Go's integer, duration and URL syntaxes; `error` — [`ConfigError`].

mod args;
mod build;
mod error;
mod file;
mod spec;
mod value;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::storage::btree::FreelistType;
pub use error::ConfigError;
pub use spec::help;
pub use value::Url;

use build::{Builder, Origin};
use spec::{Spec, SPECS};

/// etcd's `DefaultQuotaBytes`: the quota when `--quota-backend-bytes` is 0.
pub const DEFAULT_QUOTA_BYTES: u64 = 2 << 30;
/// etcd's `MaxQuotaBytes`: larger quotas are allowed, with a warning.
pub const MAX_QUOTA_BYTES: u64 = 8 << 30;
/// etcd's `DefaultSnapshotCount` (also used when `--snapshot-count` is 0, as etcd does).
pub const DEFAULT_SNAPSHOT_COUNT: u64 = 100_000;
/// etcd's `DefaultMaxRequestBytes`, 1.5 MiB.
pub const DEFAULT_MAX_REQUEST_BYTES: u64 = 1536 * 1024;
/// Above this etcd warns "exceeded recommended request limit".
pub const RECOMMENDED_MAX_REQUEST_BYTES: u64 = 10 << 20;
/// etcd's `DefaultMaxTxnOps`.
pub const DEFAULT_MAX_TXN_OPS: u64 = 128;
/// `--trace-max-exports-per-second`'s default: well above what tracing on purpose asks for
/// (1% of a busy member's requests), well below what a client forcing 100% could.
pub const DEFAULT_TRACE_MAX_EXPORTS_PER_SECOND: u64 = 1000;
/// etcd's `maxElectionMs`.
pub const MAX_ELECTION_MS: u64 = 50_000;

const DEFAULT_NAME: &str = "default";
const DEFAULT_INITIAL_CLUSTER: &str = "default=http://localhost:2380";

/// Where a setting's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Source {
    Default,
    /// The command line.
    Flag,
    /// An `ETCD_*` environment variable.
    Env,
    /// The `--config-file`.
    File,
    /// Changed while running (`glass.v1.Diagnostics/SetFlag`; see `crate::flags`).
    Runtime,
    /// A runtime change kept across restarts, loaded at start from the data dir's
    /// `glass-flags.yaml`.
    Persisted,
}

impl Source {
    pub fn as_str(&self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::Flag => "flag",
            Source::Env => "env",
            Source::File => "file",
            Source::Runtime => "runtime",
            Source::Persisted => "persisted",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One setting in the registry ([`Config::flags`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagInfo {
    /// The flag name without dashes; also the YAML key.
    pub name: &'static str,
    /// Other spellings accepted for it.
    pub aliases: &'static [&'static str],
    /// The current value in flag syntax (what `--name=VALUE` would take).
    pub value: String,
    /// The default as `--help` shows it (`${name}.etcd` for the data dir).
    pub default: &'static str,
    pub source: Source,
    /// May change while the member runs.
    pub runtime: bool,
    pub description: &'static str,
}

/// `--initial-cluster-state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClusterState {
    #[default]
    New,
    Existing,
}

/// `--auto-compaction-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompactionMode {
    /// Keep a window of time.
    #[default]
    Periodic,
    /// Keep a number of revisions.
    Revision,
}

/// `--auto-compaction-retention`, read by the mode as etcd reads it: a bare number is hours
/// in periodic mode and revisions in revision mode; `5m`-style durations are periodic only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Retention {
    /// `0`: no auto compaction.
    #[default]
    Disabled,
    Period(Duration),
    Revisions(u64),
}

/// `--glass-measurements`: what the member measures (for measuring what measuring costs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Measurements {
    /// Histograms and per-request records (tail capture, slow ring, traces).
    #[default]
    All,
    /// Histograms only: no per-request records.
    Histograms,
    /// Nothing: histograms record nothing, no per-request records.
    Off,
}

impl Measurements {
    pub fn as_str(&self) -> &'static str {
        match self {
            Measurements::All => "all",
            Measurements::Histograms => "histograms",
            Measurements::Off => "off",
        }
    }
}

/// `--log-level`: etcd's six levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogLevel {
    Debug,
    #[default]
    Info,
    Warn,
    Error,
    Panic,
    Fatal,
}

impl LogLevel {
    pub fn as_str(&self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Panic => "panic",
            LogLevel::Fatal => "fatal",
        }
    }

    /// The `tracing` filter directive: panic and fatal log errors only, as in etcd.
    pub fn filter(&self) -> &'static str {
        match self {
            LogLevel::Panic | LogLevel::Fatal => "error",
            other => other.as_str(),
        }
    }
}

/// `--otlp-protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OtlpProtocol {
    /// OTLP/gRPC (Jaeger's port 4317).
    #[default]
    Grpc,
    /// OTLP/HTTP with protobuf bodies (port 4318).
    Http,
}

/// A member's configuration: plain data, etcd's defaults in [`Config::default`].
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `--name`: this member's human-readable name.
    pub name: String,
    /// `--data-dir`; `${name}.etcd` (relative) when not given, as etcd.
    pub data_dir: PathBuf,
    /// `--wal-dir`: the WAL on another disk; `None` means `data_dir/member/wal`.
    pub wal_dir: Option<PathBuf>,
    /// `--listen-client-urls`, sorted (etcd sorts them).
    pub listen_client_urls: Vec<Url>,
    /// `--advertise-client-urls`.
    pub advertise_client_urls: Vec<Url>,
    /// `--listen-peer-urls`.
    pub listen_peer_urls: Vec<Url>,
    /// `--initial-advertise-peer-urls`.
    pub initial_advertise_peer_urls: Vec<Url>,
    /// `--listen-metrics-urls`: extra listeners for `/metrics` and `/health`.
    pub listen_metrics_urls: Vec<Url>,
    /// `--initial-cluster` as given (`name=url,...`); read by [`Config::initial_cluster_members`]
    /// only when bootstrapping, because etcd ignores it once the data dir holds a member.
    pub initial_cluster: String,
    pub initial_cluster_state: ClusterState,
    pub initial_cluster_token: String,
    /// `--heartbeat-interval` (milliseconds on the command line): one raft tick.
    pub heartbeat_interval: Duration,
    /// `--election-timeout` (milliseconds): at least 5 heartbeats.
    pub election_timeout: Duration,
    /// `--snapshot-count`: applied entries between snapshots; 0 means the default, as etcd.
    pub snapshot_count: u64,
    /// `--quota-backend-bytes` as etcd takes it: 0 is the default 2 GiB, negative disables the
    /// quota. [`Config::quota_bytes`] resolves it.
    pub quota_backend_bytes: i64,
    /// `--max-request-bytes`: the largest client request accepted.
    pub max_request_bytes: u64,
    /// `--max-txn-ops`: the most operations in one txn.
    pub max_txn_ops: u64,
    pub auto_compaction_mode: CompactionMode,
    pub auto_compaction_retention: Retention,
    /// `--backend-batch-limit`: 0 means the backend's default (10000), as etcd.
    pub backend_batch_limit: u64,
    /// `--backend-batch-interval`: 0 means the backend's default (100ms), as etcd.
    pub backend_batch_interval: Duration,
    /// `--backend-bbolt-freelist-type`.
    pub backend_freelist_type: FreelistType,
    pub log_level: LogLevel,
    /// `--config-file`, if the configuration was read from one.
    pub config_file: Option<PathBuf>,
    /// `--otlp-endpoint`: where traces go; `None` exports nothing.
    pub otlp_endpoint: Option<String>,
    pub otlp_protocol: OtlpProtocol,
    /// `--trace-sample-ratio`, 0.0 to 1.0. Defaults to 0: tracing costs nothing until asked
    /// for, and slow requests are exported anyway (tail capture).
    pub trace_sample_ratio: f64,
    /// `--slow-request-threshold`: etcd's 100ms warning-apply-duration.
    pub slow_request_threshold: Duration,
    /// `--trace-max-exports-per-second`: 0 is no limit.
    pub trace_max_exports_per_second: u64,
    /// `--glass-measurements`.
    pub glass_measurements: Measurements,
    /// Where each setting not at its default came from, by flag name.
    pub sources: BTreeMap<&'static str, Source>,
    /// Things etcd would warn about, and settings accepted but ignored; `main` prints them.
    pub warnings: Vec<String>,
    /// TEST-ONLY: `GLASS_TEST_FSYNC_DELAY` (a Go duration): every WAL and snapshot file
    /// fdatasync lasts this much longer (a slow disk for `glass doctor`'s scenarios). Not a
    /// flag, not in `--help`; a warning says when it is set.
    pub test_fsync_delay: Option<Duration>,
}

/// The environment variable behind [`Config::test_fsync_delay`].
pub const TEST_FSYNC_DELAY_ENV: &str = "GLASS_TEST_FSYNC_DELAY";

fn localhost(port: u16) -> Vec<Url> {
    vec![Url {
        scheme: "http".to_string(),
        host: "localhost".to_string(),
        port: Some(port),
    }]
}

impl Default for Config {
    /// etcd 3.4's defaults (what `glassd` with no flags and no `ETCD_*` variables runs with).
    fn default() -> Self {
        Config {
            name: DEFAULT_NAME.to_string(),
            data_dir: PathBuf::from("default.etcd"),
            wal_dir: None,
            listen_client_urls: localhost(2379),
            advertise_client_urls: localhost(2379),
            listen_peer_urls: localhost(2380),
            initial_advertise_peer_urls: localhost(2380),
            listen_metrics_urls: Vec::new(),
            initial_cluster: DEFAULT_INITIAL_CLUSTER.to_string(),
            initial_cluster_state: ClusterState::New,
            initial_cluster_token: "etcd-cluster".to_string(),
            heartbeat_interval: Duration::from_millis(100),
            election_timeout: Duration::from_millis(1000),
            snapshot_count: DEFAULT_SNAPSHOT_COUNT,
            quota_backend_bytes: 0,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_txn_ops: DEFAULT_MAX_TXN_OPS,
            auto_compaction_mode: CompactionMode::Periodic,
            auto_compaction_retention: Retention::Disabled,
            backend_batch_limit: 0,
            backend_batch_interval: Duration::ZERO,
            backend_freelist_type: FreelistType::Map,
            log_level: LogLevel::Info,
            config_file: None,
            otlp_endpoint: None,
            otlp_protocol: OtlpProtocol::Grpc,
            trace_sample_ratio: 0.0,
            slow_request_threshold: Duration::from_millis(100),
            trace_max_exports_per_second: DEFAULT_TRACE_MAX_EXPORTS_PER_SECOND,
            glass_measurements: Measurements::All,
            sources: BTreeMap::new(),
            warnings: Vec::new(),
            test_fsync_delay: None,
        }
    }
}

impl Config {
    /// Reads the configuration from `args` (without the program name, like etcd's
    /// `os.Args[1:]`), `ETCD_*` variables through `env`, and the config file if one is named,
    /// then validates it. `-h`/`--help` and `--version` come back as
    /// [`ConfigError::HelpRequested`] and [`ConfigError::VersionRequested`].
    pub fn from_args<I, T>(
        args: I,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let flags = match args::parse(args)? {
            args::Parsed::Help => return Err(ConfigError::HelpRequested),
            args::Parsed::Version => return Err(ConfigError::VersionRequested),
            args::Parsed::Flags(f) => f,
        };
        let mut b = Builder::new();
        // The config file is found first: it decides whether flags and env count (etcd reads
        // ETCD_CONFIG_FILE on its own for the same reason).
        for f in flags.iter().filter(|f| f.name == "config-file") {
            b.apply_named(&f.name, &f.value, &Origin::flag(&f.origin))?;
        }
        if b.cfg.config_file.is_none() {
            let var = spec::env_var("config-file");
            if let Some(v) = env(&var).filter(|v| !v.is_empty()) {
                b.apply_named("config-file", &v, &Origin::env(&var))?;
            }
        }
        let mut cfg = match b.cfg.config_file.clone() {
            Some(path) => {
                b.ignore_flags_and_env(&flags, &env)?;
                for entry in file::read(&path)? {
                    b.apply_file(&path, &entry.key, &entry.value)?;
                }
                b.finish(true)?
            }
            None => {
                for f in flags.iter().filter(|f| f.name != "config-file") {
                    b.apply_named(&f.name, &f.value, &Origin::flag(&f.origin))?;
                }
                b.apply_env(&flags, &env)?;
                b.finish(false)?
            }
        };
        if let Some(v) = env(TEST_FSYNC_DELAY_ENV).filter(|v| !v.is_empty()) {
            match value::parse_duration(&v) {
                Ok(d) => {
                    cfg.test_fsync_delay = Some(d);
                    cfg.warnings.push(format!(
                        "{TEST_FSYNC_DELAY_ENV}={v}: TEST-ONLY, every WAL and snapshot fdatasync is slowed down by {d:?}"
                    ));
                }
                Err(e) => cfg
                    .warnings
                    .push(format!("{TEST_FSYNC_DELAY_ENV} ignored: {e}")),
            }
        }
        Ok(cfg)
    }

    /// Every setting, in `--help` order, with its value and where it came from.
    pub fn flags(&self) -> Vec<FlagInfo> {
        SPECS.iter().map(|s| self.info(s)).collect()
    }

    /// One setting by any of its spellings.
    pub fn flag(&self, name: &str) -> Option<FlagInfo> {
        spec::lookup(name).map(|s| self.info(s))
    }

    /// This configuration with one setting (any spelling) changed to `value`, parsed and
    /// range-checked exactly as on the command line, its source recorded as `source`. The
    /// auto-compaction retention is read with the current `--auto-compaction-mode`. Only the
    /// value's own checks run, not the whole-configuration validation of start-up: meant for
    /// the runtime settings, none of which another setting constrains. Errors are
    /// [`ConfigError::UnknownFlag`] and [`ConfigError::InvalidValue`] (origin `--NAME`).
    pub fn with_value(
        &self,
        name: &str,
        value: &str,
        source: Source,
    ) -> Result<Config, ConfigError> {
        let s = spec::lookup(name).ok_or_else(|| ConfigError::UnknownFlag {
            flag: format!("--{name}"),
        })?;
        build::apply_one(self, s, value, source)
    }

    fn info(&self, s: &'static Spec) -> FlagInfo {
        FlagInfo {
            name: s.name,
            aliases: s.aliases,
            value: self.value_of(s.name),
            default: s.default,
            source: self.sources.get(s.name).copied().unwrap_or(Source::Default),
            runtime: s.runtime,
            description: s.help,
        }
    }

    /// A setting's value in flag syntax.
    fn value_of(&self, name: &str) -> String {
        let path = |p: &Option<PathBuf>| {
            p.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        };
        match name {
            "config-file" => path(&self.config_file),
            "name" => self.name.clone(),
            "data-dir" => self.data_dir.display().to_string(),
            "wal-dir" => path(&self.wal_dir),
            "listen-peer-urls" => value::join_urls(&self.listen_peer_urls),
            "listen-client-urls" => value::join_urls(&self.listen_client_urls),
            "listen-metrics-urls" => value::join_urls(&self.listen_metrics_urls),
            "initial-advertise-peer-urls" => value::join_urls(&self.initial_advertise_peer_urls),
            "advertise-client-urls" => value::join_urls(&self.advertise_client_urls),
            "snapshot-count" => self.snapshot_count.to_string(),
            "heartbeat-interval" => self.heartbeat_interval.as_millis().to_string(),
            "election-timeout" => self.election_timeout.as_millis().to_string(),
            "initial-cluster" => self.initial_cluster.clone(),
            "initial-cluster-state" => match self.initial_cluster_state {
                ClusterState::New => "new".into(),
                ClusterState::Existing => "existing".into(),
            },
            "initial-cluster-token" => self.initial_cluster_token.clone(),
            "quota-backend-bytes" => self.quota_backend_bytes.to_string(),
            "backend-batch-limit" => self.backend_batch_limit.to_string(),
            "backend-batch-interval" => value::format_duration(self.backend_batch_interval),
            "backend-bbolt-freelist-type" => self.backend_freelist_type.as_str().into(),
            "max-request-bytes" => self.max_request_bytes.to_string(),
            "max-txn-ops" => self.max_txn_ops.to_string(),
            "auto-compaction-mode" => match self.auto_compaction_mode {
                CompactionMode::Periodic => "periodic".into(),
                CompactionMode::Revision => "revision".into(),
            },
            "auto-compaction-retention" => match self.auto_compaction_retention {
                Retention::Disabled => "0".into(),
                Retention::Period(d) => value::format_duration(d),
                Retention::Revisions(n) => n.to_string(),
            },
            "log-level" => self.log_level.as_str().into(),
            "otlp-endpoint" => self.otlp_endpoint.clone().unwrap_or_default(),
            "otlp-protocol" => match self.otlp_protocol {
                OtlpProtocol::Grpc => "grpc".into(),
                OtlpProtocol::Http => "http".into(),
            },
            "trace-sample-ratio" => self.trace_sample_ratio.to_string(),
            "slow-request-threshold" => value::format_duration(self.slow_request_threshold),
            "trace-max-exports-per-second" => self.trace_max_exports_per_second.to_string(),
            "glass-measurements" => self.glass_measurements.as_str().into(),
            _ => String::new(),
        }
    }

    /// The tracing settings as the process's [`telemetry::TraceControl`]: sample ratio, slow
    /// threshold, OTLP endpoint and protocol, export limit (the runtime flags change it
    /// afterwards).
    pub fn trace_control(&self) -> telemetry::TraceControl {
        let control = telemetry::TraceControl::new(
            self.trace_sample_ratio,
            self.slow_request_threshold,
            self.otlp_endpoint.clone(),
        );
        control.set_otlp_protocol(match self.otlp_protocol {
            OtlpProtocol::Grpc => telemetry::OtlpProtocol::Grpc,
            OtlpProtocol::Http => telemetry::OtlpProtocol::Http,
        });
        control.set_max_exports_per_second(self.trace_max_exports_per_second);
        control
    }

    /// The backend quota in bytes; `None` when disabled (negative `--quota-backend-bytes`).
    pub fn quota_bytes(&self) -> Option<u64> {
        match self.quota_backend_bytes {
            q if q < 0 => None,
            0 => Some(DEFAULT_QUOTA_BYTES),
            q => Some(q.unsigned_abs()),
        }
    }

    /// `--snapshot-count`, with 0 meaning etcd's default.
    pub fn snapshot_count(&self) -> u64 {
        match self.snapshot_count {
            0 => DEFAULT_SNAPSHOT_COUNT,
            n => n,
        }
    }

    /// `--backend-batch-limit`, with 0 meaning the backend's default.
    pub fn batch_limit(&self) -> usize {
        match self.backend_batch_limit {
            0 => crate::storage::backend::DEFAULT_BATCH_LIMIT,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        }
    }

    /// `--backend-batch-interval`, with 0 meaning the backend's default.
    pub fn batch_interval(&self) -> Duration {
        match self.backend_batch_interval {
            Duration::ZERO => crate::storage::backend::DEFAULT_BATCH_INTERVAL,
            d => d,
        }
    }

    /// Raft ticks per election timeout (etcd's `ElectionTicks`).
    pub fn election_ticks(&self) -> u64 {
        let tick = self.heartbeat_interval.as_millis().max(1);
        u64::try_from(self.election_timeout.as_millis() / tick).unwrap_or(u64::MAX)
    }

    /// `--initial-cluster` as members and their peer URLs, in order of first appearance (etcd's
    /// `types.NewURLsMap`; a name may repeat to give a member several URLs).
    pub fn initial_cluster_members(&self) -> Result<Vec<(String, Vec<Url>)>, ConfigError> {
        let mut members: Vec<(String, Vec<Url>)> = Vec::new();
        if self.initial_cluster.is_empty() {
            return Ok(members);
        }
        for entry in self.initial_cluster.split(',') {
            let (name, url) = entry
                .split_once('=')
                .ok_or_else(|| ConfigError::InitialCluster {
                    reason: format!("{entry:?} is not of the form name=url"),
                })?;
            let url =
                value::parse_url(url).map_err(|reason| ConfigError::InitialCluster { reason })?;
            match members.iter_mut().find(|(n, _)| n == name) {
                Some((_, urls)) => urls.push(url),
                None => members.push((name.to_string(), vec![url])),
            }
        }
        for (_, urls) in &mut members {
            urls.sort_by_key(|u| u.to_string());
        }
        Ok(members)
    }
}

#[cfg(test)]
mod tests;
