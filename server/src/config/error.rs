//! Errors of the configuration layer. Where etcd 3.4 has a message for the same mistake, the
//! text is etcd's (operators grep for it); every message names the flag, environment variable
//! or config-file key it is about.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `-h`, `-help` or `--help`: not a failure; the binary prints [`super::help`] and exits 0.
    #[error("help requested")]
    HelpRequested,
    /// `--version`: not a failure; the binary prints its version and exits 0.
    #[error("version requested")]
    VersionRequested,

    // Command-line syntax (Go `flag` package rules, which etcd uses). The binary exits 2.
    /// A flag neither etcd 3.4 nor Glass defines.
    #[error("unknown flag {flag}")]
    UnknownFlag { flag: String },
    /// `---x`, `-=x` and the like.
    #[error("bad flag syntax: {arg}")]
    BadSyntax { arg: String },
    /// A flag that takes a value, last on the command line.
    #[error("flag needs an argument: {flag}")]
    MissingValue { flag: String },
    /// A positional argument: etcd takes none (its own message).
    #[error("'{arg}' is not a valid flag")]
    NotAFlag { arg: String },
    /// An argument that is not UTF-8.
    #[error("argument {arg:?} is not valid UTF-8")]
    NotUtf8 { arg: String },

    // Values. The binary exits 1.
    /// A value that does not parse or is out of the flag's range; `origin` is `--flag`,
    /// `ETCD_FLAG` or `key in FILE`. With `ETCD_*` this is etcd's `SetFlagsFromEnv` message.
    #[error("invalid value {value:?} for {origin}: {reason}")]
    InvalidValue {
        origin: String,
        value: String,
        reason: String,
    },
    /// etcd's fatal `verifyEnv` error: an `ETCD_*` variable for a flag also on the command line.
    #[error(
        "conflicting environment variable {var:?} is shadowed by corresponding command-line flag \
         (either unset environment variable or disable flag)"
    )]
    EnvConflict { var: String },
    /// Two spellings of one setting with different values
    /// (`--backend-bbolt-freelist-type` and `--experimental-backend-bbolt-freelist-type`).
    #[error("{first} and {second} set the same setting to different values")]
    Conflicting { first: String, second: String },
    /// An etcd 3.4 setting Glass does not implement and will not silently ignore (TLS,
    /// discovery, proxy, ...) set to something other than its off value.
    #[error("{origin} is not supported by glassd yet: {why}")]
    Unsupported { origin: String, why: &'static str },

    // The config file.
    #[error("cannot read config file {}: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {}: {message}", path.display())]
    File { path: PathBuf, message: String },

    // Validation of the whole configuration (etcd's `embed.Config.Validate` and start-up).
    /// etcd: `--heartbeat-interval must be >0 (set to 0ms)`.
    #[error("--{flag} must be >0 (set to {ms}ms)")]
    NotPositive { flag: &'static str, ms: u64 },
    /// etcd's rule: the election timeout is at least 5 heartbeats.
    #[error(
        "--election-timeout[{election_ms}ms] should be at least as 5 times as \
         --heartbeat-interval[{heartbeat_ms}ms]"
    )]
    ElectionTooShort { election_ms: u64, heartbeat_ms: u64 },
    /// etcd's `maxElectionMs` (50000).
    #[error(
        "--election-timeout[{election_ms}ms] is too long, and should be set less than 50000ms"
    )]
    ElectionTooLong { election_ms: u64 },
    /// A listen URL whose host is a name: etcd binds to IPs (and `localhost`) only.
    #[error("--{flag}: expected IP in URL for binding ({url})")]
    BindNotIp { flag: &'static str, url: String },
    /// An advertise URL without a host.
    #[error("--{flag} {urls:?} must be \"host:port\" (unexpected empty host ({url}))")]
    EmptyHost {
        flag: &'static str,
        urls: String,
        url: String,
    },
    /// etcd's `ErrUnsetAdvertiseClientURLsFlag`.
    #[error("--advertise-client-urls is required when --listen-client-urls is set explicitly")]
    AdvertiseClientUrlsRequired,
    /// `--initial-cluster` that is not `name=url,...` (checked when bootstrapping, as etcd does).
    #[error("error setting up initial cluster: {reason}")]
    InitialCluster { reason: String },
}

impl ConfigError {
    /// A mistake in the command line's shape (etcd exits 2 for these, 1 for bad values).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ConfigError::UnknownFlag { .. }
                | ConfigError::BadSyntax { .. }
                | ConfigError::MissingValue { .. }
                | ConfigError::NotAFlag { .. }
                | ConfigError::NotUtf8 { .. }
        )
    }
}
