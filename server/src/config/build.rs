//! Assembling a [`Config`]: applying each value (from a flag, an `ETCD_*` variable or the
//! file) to its field with its parser, recording where it came from, then etcd's derived
//! defaults and validation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::spec::{self, Policy, Spec, SPECS};
use super::{
    args, value, ClusterState, CompactionMode, Config, ConfigError, FreelistType, LogLevel,
    Measurements, OtlpProtocol, Retention, Source, Url, DEFAULT_INITIAL_CLUSTER, DEFAULT_NAME,
    MAX_ELECTION_MS, MAX_QUOTA_BYTES, RECOMMENDED_MAX_REQUEST_BYTES,
};

/// etcd's `InitialClusterFromName`: `name=url` for each advertised peer URL.
fn initial_cluster_from_name(name: &str, peer_urls: &[Url]) -> String {
    let name = if name.is_empty() { DEFAULT_NAME } else { name };
    peer_urls
        .iter()
        .map(|u| format!("{name}={u}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Where a value being applied came from, and how messages name it.
#[derive(Debug, Clone)]
pub(super) struct Origin {
    source: Source,
    /// `--name`, `ETCD_NAME`, or `name in /etc/etcd.yml`.
    text: String,
}

impl Origin {
    pub(super) fn flag(text: &str) -> Origin {
        Origin {
            source: Source::Flag,
            text: text.to_string(),
        }
    }
    pub(super) fn env(var: &str) -> Origin {
        Origin {
            source: Source::Env,
            text: var.to_string(),
        }
    }
    fn file(key: &str, path: &Path) -> Origin {
        Origin {
            source: Source::File,
            text: format!("{key} in {}", path.display()),
        }
    }
}

/// A configuration being assembled.
pub(super) struct Builder {
    pub(super) cfg: Config,
    /// `--auto-compaction-retention` as given: its meaning depends on the mode, which may come
    /// later.
    retention: (String, String),
    /// Per setting: who set it and to what, to catch two spellings disagreeing.
    set_by: BTreeMap<&'static str, (Source, String, String)>,
}

impl Builder {
    pub(super) fn new() -> Builder {
        Builder {
            // An empty data dir means `${name}.etcd`, decided once the name is known.
            cfg: Config {
                data_dir: PathBuf::new(),
                ..Config::default()
            },
            retention: ("0".into(), "--auto-compaction-retention".into()),
            set_by: BTreeMap::new(),
        }
    }

    pub(super) fn apply_named(
        &mut self,
        name: &str,
        value: &str,
        origin: &Origin,
    ) -> Result<(), ConfigError> {
        match (spec::lookup(name), spec::lookup_unsupported(name)) {
            (Some(s), _) => self.apply(s, value, origin),
            (None, Some(u)) => self.unsupported(u, value, origin),
            (None, None) => Err(ConfigError::UnknownFlag {
                flag: origin.text.clone(),
            }),
        }
    }

    pub(super) fn apply_file(
        &mut self,
        path: &Path,
        key: &str,
        value: &str,
    ) -> Result<(), ConfigError> {
        let origin = Origin::file(key, path);
        match (spec::lookup(key), spec::lookup_unsupported(key)) {
            (Some(s), _) if s.name != "config-file" => self.apply(s, value, &origin),
            (None, Some(u)) => self.unsupported(u, value, &origin),
            _ => {
                self.cfg
                    .warnings
                    .push(format!("unknown key {key:?} in {} ignored", path.display()));
                Ok(())
            }
        }
    }

    /// `ETCD_*` for every setting not on the command line (etcd's `SetFlagsFromEnv`).
    pub(super) fn apply_env(
        &mut self,
        flags: &[args::ArgFlag],
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        let on_command_line =
            |names: &[&str]| flags.iter().any(|f| names.contains(&f.name.as_str()));
        for s in SPECS.iter().filter(|s| s.name != "config-file") {
            let mut names = vec![s.name];
            names.extend_from_slice(s.aliases);
            for name in &names {
                let var = spec::env_var(name);
                let Some(v) = env(&var) else { continue };
                if on_command_line(&names) {
                    return Err(ConfigError::EnvConflict { var });
                }
                if !v.is_empty() {
                    self.apply(s, &v, &Origin::env(&var))?;
                }
            }
        }
        for u in spec::UNSUPPORTED.iter().filter(|u| !u.yaml_only) {
            let var = spec::env_var(u.name);
            let Some(v) = env(&var) else { continue };
            if on_command_line(&[u.name]) {
                return Err(ConfigError::EnvConflict { var });
            }
            if !v.is_empty() {
                self.unsupported(u, &v, &Origin::env(&var))?;
            }
        }
        Ok(())
    }

    /// With a config file, etcd 3.4 ignores the other flags and the environment. The flags'
    /// values must still parse (Go's flag parsing rejects a bad one before etcd looks for the
    /// file); each ignored one is named in a warning.
    pub(super) fn ignore_flags_and_env(
        &mut self,
        flags: &[args::ArgFlag],
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        let mut scratch = Builder::new();
        let mut ignored = Vec::new();
        for f in flags.iter().filter(|f| f.name != "config-file") {
            match spec::lookup(&f.name) {
                Some(s) => scratch.apply(s, &f.value, &Origin::flag(&f.origin))?,
                None => check_bool(&f.name, &f.value, &f.origin)?,
            }
            ignored.push(f.origin.clone());
        }
        for s in SPECS.iter().filter(|s| s.name != "config-file") {
            for name in std::iter::once(&s.name).chain(s.aliases) {
                let var = spec::env_var(name);
                if env(&var).is_some_and(|v| !v.is_empty()) {
                    ignored.push(var);
                }
            }
        }
        if !ignored.is_empty() {
            self.cfg.warnings.push(format!(
                "{} ignored: a config file is given, and etcd 3.4 then ignores other flags and environment variables",
                ignored.join(", ")
            ));
        }
        Ok(())
    }

    /// An etcd setting Glass does not implement: fine when off, refused or warned about when on.
    fn unsupported(
        &mut self,
        u: &spec::Unsupported,
        value: &str,
        origin: &Origin,
    ) -> Result<(), ConfigError> {
        if origin.source != Source::File {
            check_bool(u.name, value, &origin.text)?;
        }
        if spec::is_off_value(u, value) {
            return Ok(());
        }
        match u.policy {
            Policy::Refuse(why) => Err(ConfigError::Unsupported {
                origin: origin.text.clone(),
                why,
            }),
            Policy::Ignore => {
                self.cfg.warnings.push(format!(
                    "{} is an etcd setting glassd does not implement; ignored",
                    origin.text
                ));
                Ok(())
            }
        }
    }

    /// Parses one value into its field.
    fn apply(&mut self, s: &'static Spec, value: &str, origin: &Origin) -> Result<(), ConfigError> {
        let invalid = |reason: String| ConfigError::InvalidValue {
            origin: origin.text.clone(),
            value: value.to_string(),
            reason,
        };
        let uint = || value::parse_uint(value).map_err(|r| invalid(r.to_string()));
        let int = || value::parse_int(value).map_err(|r| invalid(r.to_string()));
        let duration = || value::parse_duration(value).map_err(&invalid);
        // etcd's URL flags keep their value when given an empty string.
        let urls = |current: &mut Vec<Url>| -> Result<(), ConfigError> {
            if !value.is_empty() {
                *current = value::parse_urls(value).map_err(&invalid)?;
            }
            Ok(())
        };
        let path = |v: &str| (!v.is_empty()).then(|| PathBuf::from(v));
        if let Some((source, first, previous)) = self.set_by.get(s.name) {
            if *source == origin.source && *first != origin.text && previous != value {
                return Err(ConfigError::Conflicting {
                    first: first.clone(),
                    second: origin.text.clone(),
                });
            }
        }
        let c = &mut self.cfg;
        match s.name {
            "config-file" => c.config_file = path(value),
            "name" => c.name = value.to_string(),
            "data-dir" => c.data_dir = PathBuf::from(value),
            "wal-dir" => c.wal_dir = path(value),
            "listen-peer-urls" => urls(&mut c.listen_peer_urls)?,
            "listen-client-urls" => urls(&mut c.listen_client_urls)?,
            "listen-metrics-urls" => urls(&mut c.listen_metrics_urls)?,
            "initial-advertise-peer-urls" => urls(&mut c.initial_advertise_peer_urls)?,
            "advertise-client-urls" => urls(&mut c.advertise_client_urls)?,
            "snapshot-count" => c.snapshot_count = uint()?,
            "heartbeat-interval" => c.heartbeat_interval = Duration::from_millis(uint()?),
            "election-timeout" => c.election_timeout = Duration::from_millis(uint()?),
            "initial-cluster" => c.initial_cluster = value.to_string(),
            "initial-cluster-state" => {
                c.initial_cluster_state = match value {
                    "" | "new" => ClusterState::New,
                    "existing" => ClusterState::Existing,
                    _ => return Err(invalid(r#"want "new" or "existing""#.into())),
                }
            }
            "initial-cluster-token" => c.initial_cluster_token = value.to_string(),
            "quota-backend-bytes" => c.quota_backend_bytes = int()?,
            "backend-batch-limit" => {
                c.backend_batch_limit = u64::try_from(int()?)
                    .map_err(|_| invalid("must be >= 0 (0 means the default, 10000)".into()))?
            }
            "backend-batch-interval" => c.backend_batch_interval = duration()?,
            "backend-bbolt-freelist-type" => {
                c.backend_freelist_type = match value {
                    "" | "map" => FreelistType::Map,
                    "array" => FreelistType::Array,
                    _ => {
                        return Err(invalid(
                            r#"unknown freelist type (want "map" or "array")"#.into(),
                        ))
                    }
                }
            }
            "max-request-bytes" => c.max_request_bytes = uint()?,
            "max-txn-ops" => c.max_txn_ops = uint()?,
            "auto-compaction-mode" => {
                c.auto_compaction_mode = match value {
                    "" | "periodic" => CompactionMode::Periodic,
                    "revision" => CompactionMode::Revision,
                    _ => return Err(invalid(format!("unknown auto-compaction-mode {value:?}"))),
                }
            }
            "auto-compaction-retention" => {
                self.retention = (value.to_string(), origin.text.clone())
            }
            "log-level" => {
                c.log_level = match value {
                    "debug" => LogLevel::Debug,
                    "info" => LogLevel::Info,
                    "warn" => LogLevel::Warn,
                    "error" => LogLevel::Error,
                    "panic" => LogLevel::Panic,
                    "fatal" => LogLevel::Fatal,
                    _ => {
                        return Err(invalid(format!(
                            "unknown level {value:?} (debug, info, warn, error, panic or fatal)"
                        )))
                    }
                }
            }
            "otlp-endpoint" => c.otlp_endpoint = otlp_endpoint(value).map_err(&invalid)?,
            "otlp-protocol" => {
                c.otlp_protocol = match value {
                    "" | "grpc" => OtlpProtocol::Grpc,
                    "http" | "http/protobuf" => OtlpProtocol::Http,
                    _ => return Err(invalid(r#"want "grpc" or "http""#.into())),
                }
            }
            "trace-sample-ratio" => {
                c.trace_sample_ratio = match value.parse::<f64>() {
                    Ok(r) if (0.0..=1.0).contains(&r) => r,
                    _ => return Err(invalid("must be a number from 0.0 to 1.0".into())),
                }
            }
            "slow-request-threshold" => c.slow_request_threshold = duration()?,
            "trace-max-exports-per-second" => c.trace_max_exports_per_second = uint()?,
            "glass-measurements" => {
                c.glass_measurements = match value {
                    "" | "all" => Measurements::All,
                    "histograms" => Measurements::Histograms,
                    "off" => Measurements::Off,
                    _ => return Err(invalid(r#"want "all", "histograms" or "off""#.into())),
                }
            }
            other => unreachable!("setting {other} has no parser"),
        }
        self.cfg.sources.insert(s.name, origin.source);
        self.set_by.insert(
            s.name,
            (origin.source, origin.text.clone(), value.to_string()),
        );
        Ok(())
    }

    /// Derived defaults, then etcd's validation (in `embed.Config.Validate`'s order).
    pub(super) fn finish(mut self, from_file: bool) -> Result<Config, ConfigError> {
        let (retention, origin) = std::mem::take(&mut self.retention);
        self.cfg.auto_compaction_retention =
            parse_retention(self.cfg.auto_compaction_mode, &retention).map_err(|reason| {
                ConfigError::InvalidValue {
                    origin,
                    value: retention.clone(),
                    reason,
                }
            })?;
        let c = &mut self.cfg;
        if c.data_dir.as_os_str().is_empty() {
            c.data_dir = PathBuf::from(format!("{}.etcd", c.name));
        }
        // etcd's UpdateDefaultClusterFromName: `--name foo` alone makes the initial cluster
        // `foo=<advertised peer URLs>`.
        if c.name != DEFAULT_NAME && c.initial_cluster == DEFAULT_INITIAL_CLUSTER {
            c.initial_cluster = initial_cluster_from_name(&c.name, &c.initial_advertise_peer_urls);
        }
        for (flag, urls) in [
            ("listen-peer-urls", &c.listen_peer_urls),
            ("listen-client-urls", &c.listen_client_urls),
            ("listen-metrics-urls", &c.listen_metrics_urls),
        ] {
            if let Some(u) = urls.iter().find(|u| !value::bindable(u)) {
                return Err(ConfigError::BindNotIp {
                    flag,
                    url: u.to_string(),
                });
            }
        }
        for (flag, urls) in [
            (
                "initial-advertise-peer-urls",
                &c.initial_advertise_peer_urls,
            ),
            ("advertise-client-urls", &c.advertise_client_urls),
        ] {
            if let Some(u) = urls.iter().find(|u| u.host.is_empty()) {
                return Err(ConfigError::EmptyHost {
                    flag,
                    urls: value::join_urls(urls),
                    url: u.to_string(),
                });
            }
        }
        let (heartbeat_ms, election_ms) = (
            u64::try_from(c.heartbeat_interval.as_millis()).unwrap_or(u64::MAX),
            u64::try_from(c.election_timeout.as_millis()).unwrap_or(u64::MAX),
        );
        if heartbeat_ms == 0 {
            return Err(ConfigError::NotPositive {
                flag: "heartbeat-interval",
                ms: 0,
            });
        }
        if election_ms == 0 {
            return Err(ConfigError::NotPositive {
                flag: "election-timeout",
                ms: 0,
            });
        }
        if heartbeat_ms.saturating_mul(5) > election_ms {
            return Err(ConfigError::ElectionTooShort {
                election_ms,
                heartbeat_ms,
            });
        }
        if election_ms > MAX_ELECTION_MS {
            return Err(ConfigError::ElectionTooLong { election_ms });
        }
        // etcd drops the default advertise URL when the listen URLs are set explicitly (flag or
        // env; a config file keeps it).
        let explicit = |name| matches!(c.sources.get(name), Some(Source::Flag | Source::Env));
        if !from_file && explicit("listen-client-urls") && !explicit("advertise-client-urls") {
            return Err(ConfigError::AdvertiseClientUrlsRequired);
        }
        if c.quota_backend_bytes > MAX_QUOTA_BYTES as i64 {
            c.warnings.push(format!(
                "quota exceeds the maximum value: --quota-backend-bytes={} is above {MAX_QUOTA_BYTES} (8 GiB); a larger quota may degrade performance",
                c.quota_backend_bytes
            ));
        }
        if c.max_request_bytes > RECOMMENDED_MAX_REQUEST_BYTES {
            c.warnings.push(format!(
                "exceeded recommended request limit: --max-request-bytes={} is above {RECOMMENDED_MAX_REQUEST_BYTES} (10 MiB)",
                c.max_request_bytes
            ));
        }
        Ok(self.cfg)
    }
}

/// `cfg` with one setting parsed from `value` (see [`Config::with_value`]).
pub(super) fn apply_one(
    cfg: &Config,
    s: &'static Spec,
    value: &str,
    source: Source,
) -> Result<Config, ConfigError> {
    let origin = Origin {
        source,
        text: format!("--{}", s.name),
    };
    let mut b = Builder::new();
    b.cfg = cfg.clone();
    b.apply(s, value, &origin)?;
    if s.name == "auto-compaction-retention" {
        b.cfg.auto_compaction_retention = parse_retention(b.cfg.auto_compaction_mode, value)
            .map_err(|reason| ConfigError::InvalidValue {
                origin: origin.text,
                value: value.to_string(),
                reason,
            })?;
    }
    Ok(b.cfg)
}

/// Go's flag parsing checks a boolean flag's value even for flags etcd then ignores.
fn check_bool(name: &str, value: &str, origin: &str) -> Result<(), ConfigError> {
    match spec::lookup_unsupported(name) {
        Some(u) if u.boolean => {
            value::parse_bool(value)
                .map(|_| ())
                .map_err(|r| ConfigError::InvalidValue {
                    origin: origin.to_string(),
                    value: value.to_string(),
                    reason: r.to_string(),
                })
        }
        _ => Ok(()),
    }
}

/// etcd's `parseCompactionRetention`: a non-negative integer is hours (periodic) or revisions
/// (revision); anything else must be a Go duration, and only periodic mode takes one.
pub(super) fn parse_retention(mode: CompactionMode, raw: &str) -> Result<Retention, String> {
    let raw = if raw.is_empty() { "0" } else { raw };
    if let Ok(n) = raw.parse::<i64>() {
        if n >= 0 {
            let n = n.unsigned_abs();
            return Ok(match (n, mode) {
                (0, _) => Retention::Disabled,
                (n, CompactionMode::Revision) => Retention::Revisions(n),
                (n, CompactionMode::Periodic) => {
                    let secs = n
                        .checked_mul(3600)
                        .ok_or("error parsing CompactionRetention: too many hours")?;
                    Retention::Period(Duration::from_secs(secs))
                }
            });
        }
    }
    let d = value::parse_duration(raw)
        .map_err(|e| format!("error parsing CompactionRetention: {e}"))?;
    match (mode, d) {
        (_, Duration::ZERO) => Ok(Retention::Disabled),
        (CompactionMode::Periodic, d) => Ok(Retention::Period(d)),
        (CompactionMode::Revision, _) => Err(
            "a duration, but --auto-compaction-mode=revision takes a number of revisions".into(),
        ),
    }
}

/// `--otlp-endpoint`: empty (off) or an http(s) URL with a host; a path is allowed (OTLP/HTTP
/// collectors may sit under one).
fn otlp_endpoint(value: &str) -> Result<Option<String>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    let rest = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"))
        .ok_or("want http://host:port or https://host:port")?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || authority.starts_with(':') {
        return Err("missing host".into());
    }
    Ok(Some(value.to_string()))
}
