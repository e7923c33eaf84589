//! Runtime flags: reading every setting of a running member and changing the `[runtime]` ones
//! without a restart (`glass.v1.Diagnostics/GetFlags` and `SetFlag`, `glass flags get|set`).
//!
//! Contract:
//! - One registry: [`RuntimeFlags::get_all`] is [`Config::flags`] of the configuration in
//!   force — value, default, source (`default`, `flag`, `env`, `file`, then `runtime` for a
//!   change made while running and `persisted` for one loaded at start from
//!   `glass-flags.yaml`), whether it can change while running, description.
//! - [`RuntimeFlags::set`] takes any spelling of a flag (aliases resolve), parses the value with
//!   the configuration's own parser ([`Config::with_value`]: the same syntaxes, ranges and
//!   messages as on the command line), applies it at once to the running member, logs it
//!   (`runtime flag changed name=… old=… new=… persisted=…`, at info) and records it in a
//!   bounded log the diagnostics stream reads ([`RuntimeFlags::changes_since`]). Unknown name:
//!   [`FlagError::NotFound`]; a setting that cannot change while running:
//!   [`FlagError::NotRuntime`]; a bad value: [`FlagError::InvalidValue`] with the parser's
//!   reason. Nothing changes when it fails. Changes are serialized (one at a time).
//! - **Persistence**: with `persist`, the value is written to `<data-dir>/glass-flags.yaml`
//!   before it is applied (the file is replaced atomically: temp file, fsync, rename, fsync of
//!   the directory); at start, `run` reads the file ([`load_persisted`]) and its values win over
//!   the command line, environment and config file (source `persisted`); a value that no longer
//!   parses, or a name that is not a runtime flag, is skipped with a warning. Without
//!   `persist` a change lasts until the process ends. A later change without `persist` to a
//!   flag the file holds leaves the file as it was: the next start brings the persisted value
//!   back (persist the new value, or edit the file, to replace it).
//!
//! What each change does, at once:
//! - `backend-batch-limit`, `backend-batch-interval`: the backend's commit triggers (the
//!   commit loop is woken and sleeps the new interval from then on);
//! - `backend-bbolt-freelist-type`: the freelist algorithm, from the next write tx (that is,
//!   after the open batch commits), keeping the same free pages;
//!   `glass_freelist_allocate_{map,array}_total` count which algorithm served allocations;
//! - `snapshot-count`: the applier's next snapshot check;
//! - `auto-compaction-retention` (read with the `--auto-compaction-mode` the member started
//!   with): the compactor task's schedule restarts from the change (a `watch` channel);
//! - `quota-backend-bytes`: the quota writes are checked against, and its gauge;
//! - `max-request-bytes`: the size the server refuses proposals above (etcd's `etcdserver:
//!   request is too large`), up to [`RuntimeFlags::request_bytes_ceiling`] — the gRPC message
//!   limit is fixed when the services are built, so it is set at start to
//!   `max(--max-request-bytes, 10 MiB)` plus etcd's 512 KiB of overhead, and a larger value is
//!   refused with a message saying to restart. (Unlike etcd, a request between
//!   `--max-request-bytes` + 512 KiB and that limit is therefore not refused by gRPC: a write
//!   gets etcd's `request is too large` from the server, a read is served);
//! - `max-txn-ops`: the txn size check;
//! - `log-level`: the process's log filter (a `tracing-subscriber` reload);
//! - `trace-sample-ratio`, `slow-request-threshold`, `otlp-endpoint`,
//!   `trace-max-exports-per-second`: the `TraceControl` the request path and the exporter
//!   read (the export limit's token bucket takes the new rate from the next request).
//!
//! # `<data-dir>/glass-flags.yaml`
//! ```text
//! # Runtime flag changes kept across restarts (glass.v1.Diagnostics/SetFlag with persist).
//! # Written by glassd; read at start, where these values win over flags, env and file.
//! backend-batch-interval: 2s
//! log-level: debug
//! max-request-bytes: '4096'
//! ```
//! A YAML mapping, UTF-8: each key a flag's canonical name (a `[runtime]` one), each value the
//! flag's value in command-line syntax as a YAML string (quoted when YAML would read it as
//! something else); keys sorted. Numbers and booleans written by hand are read as their text.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_yaml_ng::Value;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::{
    Config, ConfigError, FlagInfo, Retention, Source, MAX_QUOTA_BYTES,
    RECOMMENDED_MAX_REQUEST_BYTES,
};
use crate::etcdserver::{AutoCompaction, EtcdServer};

/// The file runtime changes are persisted to, in the data dir.
pub const PERSIST_FILE: &str = "glass-flags.yaml";
/// How many changes [`RuntimeFlags::changes_since`] can return (older ones are dropped).
pub const CHANGE_LOG_LEN: usize = 256;

/// Why a flag could not be changed. Nothing was changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlagError {
    #[error("unknown flag {name:?}")]
    NotFound { name: String },
    #[error("flag {name} cannot change while glassd runs; restart with --{name}")]
    NotRuntime { name: &'static str },
    /// The configuration parser's own message (`invalid value "x" for --flag: reason`).
    #[error(transparent)]
    InvalidValue(ConfigError),
    #[error("cannot persist runtime flags to {}: {source}", path.display())]
    Persist {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot apply {name}: {reason}")]
    Apply { name: &'static str, reason: String },
}

/// One change, as the diagnostics stream shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagChange {
    /// 1, 2, ...: the order of changes in this process.
    pub seq: u64,
    pub name: &'static str,
    pub old_value: String,
    pub new_value: String,
    pub unix_ms: i64,
    /// Written to `glass-flags.yaml`.
    pub persisted: bool,
}

/// What a change acts on; every `[runtime]` setting has one (a unit test checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    BatchLimit,
    BatchInterval,
    FreelistType,
    SnapshotCount,
    CompactionRetention,
    Quota,
    MaxRequestBytes,
    MaxTxnOps,
    LogLevel,
    OtlpEndpoint,
    SampleRatio,
    SlowThreshold,
    MaxExports,
}

fn effect(name: &str) -> Option<Effect> {
    Some(match name {
        "backend-batch-limit" => Effect::BatchLimit,
        "backend-batch-interval" => Effect::BatchInterval,
        "backend-bbolt-freelist-type" => Effect::FreelistType,
        "snapshot-count" => Effect::SnapshotCount,
        "auto-compaction-retention" => Effect::CompactionRetention,
        "quota-backend-bytes" => Effect::Quota,
        "max-request-bytes" => Effect::MaxRequestBytes,
        "max-txn-ops" => Effect::MaxTxnOps,
        "log-level" => Effect::LogLevel,
        "otlp-endpoint" => Effect::OtlpEndpoint,
        "trace-sample-ratio" => Effect::SampleRatio,
        "slow-request-threshold" => Effect::SlowThreshold,
        "trace-max-exports-per-second" => Effect::MaxExports,
        _ => return None,
    })
}

/// The auto compaction a configuration asks for (`None`: disabled).
pub fn auto_compaction(cfg: &Config) -> Option<AutoCompaction> {
    match cfg.auto_compaction_retention {
        Retention::Disabled => None,
        Retention::Period(p) => Some(AutoCompaction::Periodic(p)),
        Retention::Revisions(n) => Some(AutoCompaction::Revision(
            i64::try_from(n).unwrap_or(i64::MAX),
        )),
    }
}

/// The largest `--max-request-bytes` a member started with `initial` can take while running:
/// its gRPC message limit is this plus etcd's overhead, fixed at start.
pub fn request_bytes_ceiling(initial: u64) -> u64 {
    initial.max(RECOMMENDED_MAX_REQUEST_BYTES)
}

/// `cfg` with `name` set to `value`, checked as [`RuntimeFlags::set`] checks it; the flag's
/// canonical name.
fn validate(
    cfg: &Config,
    name: &str,
    value: &str,
    source: Source,
    request_ceiling: u64,
) -> Result<(Config, &'static str), FlagError> {
    let info = cfg.flag(name).ok_or_else(|| FlagError::NotFound {
        name: name.to_string(),
    })?;
    if !info.runtime || effect(info.name).is_none() {
        return Err(FlagError::NotRuntime { name: info.name });
    }
    let new = cfg
        .with_value(info.name, value, source)
        .map_err(FlagError::InvalidValue)?;
    if info.name == "max-request-bytes" && new.max_request_bytes > request_ceiling {
        return Err(FlagError::InvalidValue(ConfigError::InvalidValue {
            origin: "--max-request-bytes".into(),
            value: value.to_string(),
            reason: format!(
                "above {request_ceiling}, the most this member takes while running (its gRPC \
                 message limit is fixed at start); restart with --max-request-bytes={value}"
            ),
        }));
    }
    Ok((new, info.name))
}

/// The values persisted in `glass-flags.yaml`, by canonical flag name, in flag syntax.
pub type Persisted = BTreeMap<&'static str, String>;

/// Reads `<data-dir>/glass-flags.yaml`, if there is one, and applies its values over `cfg`
/// (source `persisted`). Entries that do not apply are skipped with a warning, and so is an
/// unreadable file; the map holds the entries applied (what a rewrite keeps).
pub fn load_persisted(cfg: Config) -> (Config, Persisted) {
    let path = cfg.data_dir.join(PERSIST_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (cfg, Persisted::new()),
        Err(e) => {
            warn!(path = %path.display(), error = %e, "cannot read persisted runtime flags; ignored");
            return (cfg, Persisted::new());
        }
    };
    let (cfg, persisted, warnings) = apply_persisted(cfg, &text);
    for w in warnings {
        warn!(path = %path.display(), "persisted runtime flags: {w}");
    }
    (cfg, persisted)
}

/// [`load_persisted`] on the file's text: the configuration, the entries applied, warnings.
fn apply_persisted(mut cfg: Config, text: &str) -> (Config, Persisted, Vec<String>) {
    let mut persisted = Persisted::new();
    let mut warnings = Vec::new();
    let map = match serde_yaml_ng::from_str::<Value>(text) {
        Ok(Value::Mapping(m)) => m,
        Ok(Value::Null) => return (cfg, persisted, warnings),
        Ok(_) => {
            warnings.push("not a mapping of flag names to values; ignored".into());
            return (cfg, persisted, warnings);
        }
        Err(e) => {
            warnings.push(format!("not YAML ({e}); ignored"));
            return (cfg, persisted, warnings);
        }
    };
    for (k, v) in map {
        let Value::String(name) = k else {
            warnings.push(format!("key {k:?} is not a flag name; skipped"));
            continue;
        };
        let value = match v {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => {
                warnings.push(format!("{name}: {other:?} is not a value; skipped"));
                continue;
            }
        };
        let ceiling = request_bytes_ceiling(cfg.max_request_bytes);
        match validate(&cfg, &name, &value, Source::Persisted, ceiling) {
            Ok((new, canonical)) => {
                cfg = new;
                persisted.insert(canonical, value);
            }
            Err(e) => warnings.push(format!("{name}: {e}; skipped")),
        }
    }
    (cfg, persisted, warnings)
}

/// The file's text for `persisted`.
fn render_persisted(persisted: &Persisted) -> String {
    let mut out = String::from(
        "# Runtime flag changes kept across restarts (glass.v1.Diagnostics/SetFlag with persist).\n\
         # Written by glassd; read at start, where these values win over flags, env and file.\n",
    );
    let map: BTreeMap<&str, &str> = persisted.iter().map(|(k, v)| (*k, v.as_str())).collect();
    if !map.is_empty() {
        // A map of strings always serializes.
        out.push_str(&serde_yaml_ng::to_string(&map).unwrap_or_default());
    }
    out
}

/// Replaces `path` with `text` atomically: temp file, fsync, rename, fsync of the directory.
fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("yaml.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// What changes act on.
#[derive(Debug)]
pub struct Handles {
    pub server: Arc<EtcdServer>,
    /// The process's log filter.
    pub log: telemetry::Guard,
    pub trace: Arc<telemetry::TraceControl>,
    /// The compactor task's setting (`etcdserver::compactor_run_watched` reads it).
    pub compaction: watch::Sender<Option<AutoCompaction>>,
}

#[derive(Debug)]
struct State {
    config: Config,
    persisted: Persisted,
    changes: VecDeque<FlagChange>,
    last_seq: u64,
}

/// The member's settings in force and the handles that change them; see the module doc.
#[derive(Debug)]
pub struct RuntimeFlags {
    handles: Handles,
    /// One lock for the configuration, the file and the log: changes happen one at a time, so
    /// the file, the configuration and the member never disagree about their order.
    state: Mutex<State>,
    path: PathBuf,
    request_ceiling: u64,
}

pub(crate) fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl RuntimeFlags {
    /// `config` is the configuration the member started with, persisted values included
    /// ([`load_persisted`]); `persisted` what the file holds. The telemetry controls (made by
    /// `main` from the command line) are brought in line with the persisted values here.
    pub fn new(config: Config, persisted: Persisted, handles: Handles) -> RuntimeFlags {
        let flags = RuntimeFlags {
            path: config.data_dir.join(PERSIST_FILE),
            request_ceiling: request_bytes_ceiling(config.max_request_bytes),
            handles,
            state: Mutex::new(State {
                config,
                persisted,
                changes: VecDeque::new(),
                last_seq: 0,
            }),
        };
        {
            let st = flags.lock();
            // The log level first, so that the lines below follow it. (The member's start-up
            // lines, before this, followed the command line's level.)
            let mut names: Vec<&'static str> = st.persisted.keys().copied().collect();
            names.sort_by_key(|n| *n != "log-level");
            for name in names {
                if let Some(e) = effect(name) {
                    if let Err(err) = flags.apply(e, name, &st.config) {
                        warn!(error = %err, "persisted runtime flag not applied");
                    }
                }
                let value = st.persisted.get(name).map_or("", String::as_str);
                info!(name = %name, value = %value, path = %flags.path.display(), "persisted runtime flag applied");
            }
        }
        flags
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every writer leaves the state consistent before anything that can panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every setting with its value in force and where it came from.
    pub fn get_all(&self) -> Vec<FlagInfo> {
        self.lock().config.flags()
    }

    /// One setting by any of its spellings.
    pub fn get(&self, name: &str) -> Result<FlagInfo, FlagError> {
        self.lock()
            .config
            .flag(name)
            .ok_or_else(|| FlagError::NotFound {
                name: name.to_string(),
            })
    }

    /// The configuration in force.
    pub fn config(&self) -> Config {
        self.lock().config.clone()
    }

    /// The largest `max-request-bytes` this member takes while running.
    pub fn request_bytes_ceiling(&self) -> u64 {
        self.request_ceiling
    }

    /// Changes `name` (any spelling) to `value` at once; with `persist`, also in
    /// `glass-flags.yaml` for the next start. Returns the flag as it now is and its previous
    /// value. Blocks for the file's fsyncs when persisting: call it off the async runtime.
    pub fn set(
        &self,
        name: &str,
        value: &str,
        persist: bool,
    ) -> Result<(FlagInfo, String), FlagError> {
        let mut st = self.lock();
        let (new, canonical) = validate(
            &st.config,
            name,
            value,
            Source::Runtime,
            self.request_ceiling,
        )?;
        let old_value = st
            .config
            .flag(canonical)
            .map(|f| f.value)
            .unwrap_or_default();
        let info = new.flag(canonical).ok_or_else(|| FlagError::NotFound {
            name: name.to_string(),
        })?;
        if persist {
            let mut persisted = st.persisted.clone();
            persisted.insert(canonical, info.value.clone());
            write_atomic(&self.path, &render_persisted(&persisted)).map_err(|source| {
                FlagError::Persist {
                    path: self.path.clone(),
                    source,
                }
            })?;
            st.persisted = persisted;
        }
        // validate() found an effect.
        if let Some(e) = effect(canonical) {
            self.apply(e, canonical, &new)?;
        }
        st.config = new;
        st.last_seq += 1;
        let change = FlagChange {
            seq: st.last_seq,
            name: canonical,
            old_value: old_value.clone(),
            new_value: info.value.clone(),
            unix_ms: unix_ms(),
            persisted: persist,
        };
        if st.changes.len() == CHANGE_LOG_LEN {
            st.changes.pop_front();
        }
        st.changes.push_back(change);
        info!(
            name = %canonical,
            old = %old_value,
            new = %info.value,
            persisted = persist,
            "runtime flag changed"
        );
        Ok((info, old_value))
    }

    /// The changes after `seq` still in the log (oldest first), and the sequence number to
    /// ask from next time. Start with 0 for every change kept, or with
    /// [`last_change_seq`](Self::last_change_seq) for the changes from now on.
    pub fn changes_since(&self, seq: u64) -> (Vec<FlagChange>, u64) {
        let st = self.lock();
        let out = st.changes.iter().filter(|c| c.seq > seq).cloned().collect();
        (out, st.last_seq.max(seq))
    }

    /// The sequence number of the latest change (0: none yet).
    pub fn last_change_seq(&self) -> u64 {
        self.lock().last_seq
    }

    /// Makes the running member use `c`'s value of `name`.
    fn apply(&self, e: Effect, name: &'static str, c: &Config) -> Result<(), FlagError> {
        let h = &self.handles;
        let backend = h.server.kv().backend();
        match e {
            Effect::BatchLimit => backend.set_batch_limit(c.batch_limit()),
            Effect::BatchInterval => backend.set_batch_interval(c.batch_interval()),
            Effect::FreelistType => backend.set_freelist_type(c.backend_freelist_type),
            Effect::SnapshotCount => h.server.raft().set_snapshot_count(c.snapshot_count()),
            Effect::CompactionRetention => {
                h.compaction.send_replace(auto_compaction(c));
            }
            Effect::Quota => {
                let q = c.quota_bytes();
                h.server.quota().set(q);
                h.server
                    .metrics()
                    .server_quota_backend_bytes
                    .set(q.map_or(0, |q| i64::try_from(q).unwrap_or(i64::MAX)));
                if q.is_some_and(|q| q > MAX_QUOTA_BYTES) {
                    warn!(
                        quota_backend_bytes = c.quota_backend_bytes,
                        "quota exceeds the maximum value (8 GiB); a larger quota may degrade performance"
                    );
                }
            }
            Effect::MaxRequestBytes => h.server.set_max_request_bytes(c.max_request_bytes),
            Effect::MaxTxnOps => h.server.set_max_txn_ops(c.max_txn_ops),
            Effect::LogLevel => h
                .log
                .set_log_filter(c.log_level.filter())
                .map_err(|reason| FlagError::Apply { name, reason })?,
            Effect::OtlpEndpoint => h.trace.set_otlp_endpoint(c.otlp_endpoint.clone()),
            Effect::SampleRatio => h.trace.set_sample_ratio(c.trace_sample_ratio),
            Effect::SlowThreshold => h.trace.set_slow_threshold(c.slow_request_threshold),
            Effect::MaxExports => h
                .trace
                .set_max_exports_per_second(c.trace_max_exports_per_second),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const CEILING: u64 = 10 << 20;

    fn set(cfg: &Config, name: &str, value: &str) -> Result<Config, FlagError> {
        validate(cfg, name, value, Source::Runtime, CEILING).map(|(c, _)| c)
    }

    fn message(r: Result<Config, FlagError>) -> String {
        match r {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn every_runtime_flag_has_an_effect_and_no_other_does() {
        for f in Config::default().flags() {
            assert_eq!(f.runtime, effect(f.name).is_some(), "{}", f.name);
        }
    }

    #[test]
    fn values_parse_as_on_the_command_line() {
        let c = Config::default();
        let n = set(&c, "backend-batch-interval", "250ms").unwrap();
        assert_eq!(n.backend_batch_interval, Duration::from_millis(250));
        assert_eq!(
            n.flag("backend-batch-interval").unwrap().source,
            Source::Runtime
        );
        assert_eq!(n.flag("backend-batch-interval").unwrap().value, "250ms");
        // Go integers, sizes as etcd takes them.
        assert_eq!(
            set(&c, "backend-batch-limit", "0x10")
                .unwrap()
                .backend_batch_limit,
            16
        );
        assert_eq!(
            set(&c, "quota-backend-bytes", "-1").unwrap().quota_bytes(),
            None
        );
        assert_eq!(set(&c, "max-txn-ops", "1_000").unwrap().max_txn_ops, 1000);
        // An alias resolves to the flag.
        let n = set(&c, "experimental-backend-bbolt-freelist-type", "array").unwrap();
        assert_eq!(n.backend_freelist_type, crate::config::FreelistType::Array);
        assert_eq!(
            n.flag("backend-bbolt-freelist-type").unwrap().source,
            Source::Runtime
        );
        assert_eq!(
            set(&c, "log-level", "debug").unwrap().log_level.filter(),
            "debug"
        );
        assert_eq!(
            set(&c, "log-level", "fatal").unwrap().log_level.filter(),
            "error"
        );
        assert_eq!(
            set(&c, "trace-sample-ratio", "0.25")
                .unwrap()
                .trace_sample_ratio,
            0.25
        );
        assert_eq!(
            set(&c, "otlp-endpoint", "http://127.0.0.1:4317")
                .unwrap()
                .otlp_endpoint
                .as_deref(),
            Some("http://127.0.0.1:4317")
        );
        assert_eq!(set(&c, "otlp-endpoint", "").unwrap().otlp_endpoint, None);
    }

    #[test]
    fn retention_follows_the_mode_the_member_started_with() {
        let periodic = Config::default();
        assert_eq!(
            set(&periodic, "auto-compaction-retention", "2")
                .unwrap()
                .auto_compaction_retention,
            Retention::Period(Duration::from_secs(7200))
        );
        assert_eq!(
            set(&periodic, "auto-compaction-retention", "5m")
                .unwrap()
                .auto_compaction_retention,
            Retention::Period(Duration::from_secs(300))
        );
        assert_eq!(
            auto_compaction(&set(&periodic, "auto-compaction-retention", "0").unwrap()),
            None
        );
        let revision = Config {
            auto_compaction_mode: crate::config::CompactionMode::Revision,
            ..Config::default()
        };
        assert_eq!(
            auto_compaction(&set(&revision, "auto-compaction-retention", "1000").unwrap()),
            Some(AutoCompaction::Revision(1000))
        );
        let m = message(set(&revision, "auto-compaction-retention", "5m"));
        assert!(
            m.contains("--auto-compaction-mode=revision takes a number"),
            "{m}"
        );
    }

    #[test]
    fn bad_values_carry_the_parsers_reason() {
        let c = Config::default();
        assert_eq!(
            message(set(&c, "backend-batch-interval", "banana")),
            r#"invalid value "banana" for --backend-batch-interval: time: invalid duration "banana""#
        );
        assert_eq!(
            message(set(&c, "trace-sample-ratio", "2")),
            r#"invalid value "2" for --trace-sample-ratio: must be a number from 0.0 to 1.0"#
        );
        for (name, value) in [
            ("backend-bbolt-freelist-type", "list"),
            ("backend-batch-limit", "-1"),
            ("snapshot-count", "many"),
            ("log-level", "loud"),
            ("otlp-endpoint", "localhost:4317"),
            ("slow-request-threshold", "-5ms"),
            ("max-request-bytes", "99999999999"),
        ] {
            let r = set(&c, name, value);
            assert!(
                matches!(r, Err(FlagError::InvalidValue(_))),
                "{name}={value}: {r:?}"
            );
        }
        let m = message(set(&c, "max-request-bytes", &(CEILING + 1).to_string()));
        assert!(m.contains("restart with --max-request-bytes="), "{m}");
        assert!(set(&c, "max-request-bytes", &CEILING.to_string()).is_ok());
    }

    #[test]
    fn unknown_and_start_only_flags_are_refused() {
        let c = Config::default();
        assert_eq!(message(set(&c, "bogus", "1")), r#"unknown flag "bogus""#);
        assert_eq!(
            message(set(&c, "data-dir", "/tmp/x")),
            "flag data-dir cannot change while glassd runs; restart with --data-dir"
        );
        for name in [
            "listen-client-urls",
            "auto-compaction-mode",
            "otlp-protocol",
            "name",
        ] {
            assert!(
                matches!(set(&c, name, "x"), Err(FlagError::NotRuntime { .. })),
                "{name}"
            );
        }
        // An etcd flag glassd does not implement is no flag of the registry.
        assert!(matches!(
            set(&c, "cert-file", "x"),
            Err(FlagError::NotFound { .. })
        ));
    }

    #[test]
    fn the_persisted_file_round_trips() {
        let mut p = Persisted::new();
        p.insert("backend-batch-interval", "2s".into());
        p.insert("max-request-bytes", "4096".into());
        p.insert("log-level", "debug".into());
        p.insert("otlp-endpoint", "http://127.0.0.1:4317".into());
        p.insert("slow-request-threshold", "1.5µs".into());
        let text = render_persisted(&p);
        assert!(text.starts_with("# Runtime flag changes"), "{text}");
        let (cfg, got, warnings) = apply_persisted(Config::default(), &text);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(got, p);
        assert_eq!(cfg.max_request_bytes, 4096);
        assert_eq!(cfg.backend_batch_interval, Duration::from_secs(2));
        assert_eq!(cfg.slow_request_threshold, Duration::from_nanos(1500));
        assert_eq!(cfg.flag("log-level").unwrap().source, Source::Persisted);
        assert_eq!(cfg.flag("max-txn-ops").unwrap().source, Source::Default);
        // Nothing persisted: the header only, which reads as nothing.
        let empty = render_persisted(&Persisted::new());
        let (_, got, warnings) = apply_persisted(Config::default(), &empty);
        assert!(got.is_empty() && warnings.is_empty());
    }

    #[test]
    fn bad_persisted_entries_are_skipped_with_a_warning() {
        let text = "snapshot-count: 5000\nbackend-batch-interval: banana\ndata-dir: /x\nbogus: 1\n\
                    experimental-backend-bbolt-freelist-type: array\nlog-level: [a]\n";
        let (cfg, got, warnings) = apply_persisted(Config::default(), text);
        assert_eq!(cfg.snapshot_count, 5000);
        assert_eq!(
            cfg.backend_freelist_type,
            crate::config::FreelistType::Array
        );
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            [
                ("backend-bbolt-freelist-type", "array".to_string()),
                ("snapshot-count", "5000".to_string())
            ]
        );
        assert_eq!(warnings.len(), 4, "{warnings:?}");
        assert!(warnings[0].contains("invalid duration"), "{warnings:?}");
        assert!(
            warnings[1].contains("cannot change while glassd runs"),
            "{warnings:?}"
        );
        assert!(warnings[2].contains("unknown flag"), "{warnings:?}");
        let (_, got, warnings) = apply_persisted(Config::default(), "[1, 2]");
        assert!(got.is_empty());
        assert_eq!(warnings.len(), 1);
        let (_, _, warnings) = apply_persisted(Config::default(), "a: [");
        assert!(warnings[0].starts_with("not YAML"), "{warnings:?}");
    }

    #[test]
    fn the_file_is_replaced_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(PERSIST_FILE);
        write_atomic(&path, "a: b\n").unwrap();
        write_atomic(&path, "c: d\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "c: d\n");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [std::ffi::OsString::from(PERSIST_FILE)]);
    }
}
