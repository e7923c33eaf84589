//! Table-driven tests of the configuration against etcd 3.4's behaviour: defaults, every flag,
//! `ETCD_*` variables, the config file and its precedence, validation messages, the registry.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use super::build::parse_retention;
use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

fn parse(args: &[&str]) -> Result<Config, ConfigError> {
    Config::from_args(args.iter().copied(), no_env)
}

fn value(cfg: &Config, name: &str) -> String {
    cfg.flag(name).unwrap().value
}

fn source(cfg: &Config, name: &str) -> Source {
    cfg.flag(name).unwrap().source
}

/// A config file in a temporary directory (kept alive by the returned guard).
fn yaml(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("glassd.yml");
    std::fs::write(&path, text).unwrap();
    (dir, path.display().to_string())
}

#[test]
fn defaults_are_etcd_3_4s() {
    let cfg = parse(&[]).unwrap();
    assert_eq!(cfg, Config::default());
    assert!(cfg.warnings.is_empty());
    // etcd 3.4's `etcd --help` defaults, flag by flag (data-dir is `${name}.etcd`).
    let etcd: &[(&str, &str)] = &[
        ("name", "default"),
        ("data-dir", "default.etcd"),
        ("wal-dir", ""),
        ("listen-peer-urls", "http://localhost:2380"),
        ("listen-client-urls", "http://localhost:2379"),
        ("listen-metrics-urls", ""),
        ("initial-advertise-peer-urls", "http://localhost:2380"),
        ("advertise-client-urls", "http://localhost:2379"),
        ("initial-cluster", "default=http://localhost:2380"),
        ("initial-cluster-state", "new"),
        ("initial-cluster-token", "etcd-cluster"),
        ("heartbeat-interval", "100"),
        ("election-timeout", "1000"),
        ("snapshot-count", "100000"),
        ("quota-backend-bytes", "0"),
        ("max-request-bytes", "1572864"),
        ("max-txn-ops", "128"),
        ("auto-compaction-mode", "periodic"),
        ("auto-compaction-retention", "0"),
        ("backend-batch-limit", "0"),
        ("backend-batch-interval", "0s"),
        ("log-level", "info"),
        ("config-file", ""),
        // Glass's choices (documented in the module): map as etcd 3.5, observability off.
        ("backend-bbolt-freelist-type", "map"),
        ("otlp-endpoint", ""),
        ("otlp-protocol", "grpc"),
        ("trace-sample-ratio", "0"),
        ("slow-request-threshold", "100ms"),
        ("trace-max-exports-per-second", "1000"),
        ("glass-measurements", "all"),
    ];
    assert_eq!(etcd.len(), SPECS.len());
    for (name, want) in etcd {
        let info = cfg.flag(name).unwrap();
        assert_eq!(info.value, *want, "{name}");
        assert_eq!(info.source, Source::Default, "{name}");
        if *name != "data-dir" {
            assert_eq!(info.default, *want, "{name}: --help shows the default");
        }
    }
    assert_eq!(cfg.quota_bytes(), Some(2 << 30));
    assert_eq!(cfg.batch_limit(), 10_000);
    assert_eq!(cfg.batch_interval(), Duration::from_millis(100));
    assert_eq!(cfg.election_ticks(), 10);
    assert_eq!(
        cfg.initial_cluster_members().unwrap(),
        vec![(
            "default".to_string(),
            cfg.initial_advertise_peer_urls.clone()
        )]
    );
}

#[test]
fn every_flag_parses() {
    // (flag as given, value given, registry name, value in the registry, extra args)
    let ac: &[&str] = &["--advertise-client-urls=http://10.0.0.1:2379"];
    let rows: &[(&str, &str, &str, &str, &[&str])] = &[
        ("name", "m1", "name", "m1", &[]),
        (
            "data-dir",
            "/var/lib/glass",
            "data-dir",
            "/var/lib/glass",
            &[],
        ),
        ("wal-dir", "/wal", "wal-dir", "/wal", &[]),
        (
            "listen-peer-urls",
            "http://127.0.0.1:2380,http://10.0.0.1:2380",
            "listen-peer-urls",
            "http://10.0.0.1:2380,http://127.0.0.1:2380",
            &[],
        ),
        (
            "listen-client-urls",
            "http://0.0.0.0:2379",
            "listen-client-urls",
            "http://0.0.0.0:2379",
            ac,
        ),
        (
            "listen-metrics-urls",
            "http://[::1]:2381",
            "listen-metrics-urls",
            "http://[::1]:2381",
            &[],
        ),
        (
            "initial-advertise-peer-urls",
            "https://node1.example:2380",
            "initial-advertise-peer-urls",
            "https://node1.example:2380",
            &[],
        ),
        (
            "advertise-client-urls",
            "http://10.0.0.1:2379,unix://localhost:1",
            "advertise-client-urls",
            "http://10.0.0.1:2379,unix://localhost:1",
            &[],
        ),
        (
            "initial-cluster",
            "a=http://10.0.0.1:2380,b=http://10.0.0.2:2380",
            "initial-cluster",
            "a=http://10.0.0.1:2380,b=http://10.0.0.2:2380",
            &[],
        ),
        (
            "initial-cluster-state",
            "existing",
            "initial-cluster-state",
            "existing",
            &[],
        ),
        (
            "initial-cluster-token",
            "tok",
            "initial-cluster-token",
            "tok",
            &[],
        ),
        ("heartbeat-interval", "50", "heartbeat-interval", "50", &[]),
        ("election-timeout", "500", "election-timeout", "500", &[]),
        ("snapshot-count", "0x10", "snapshot-count", "16", &[]),
        (
            "quota-backend-bytes",
            "-1",
            "quota-backend-bytes",
            "-1",
            &[],
        ),
        (
            "max-request-bytes",
            "10485760",
            "max-request-bytes",
            "10485760",
            &[],
        ),
        ("max-txn-ops", "1024", "max-txn-ops", "1024", &[]),
        (
            "auto-compaction-mode",
            "revision",
            "auto-compaction-mode",
            "revision",
            &[],
        ),
        (
            "auto-compaction-retention",
            "1",
            "auto-compaction-retention",
            "1h0m0s",
            &[],
        ),
        (
            "backend-batch-limit",
            "1000",
            "backend-batch-limit",
            "1000",
            &[],
        ),
        (
            "backend-batch-interval",
            "10ms",
            "backend-batch-interval",
            "10ms",
            &[],
        ),
        (
            "backend-bbolt-freelist-type",
            "array",
            "backend-bbolt-freelist-type",
            "array",
            &[],
        ),
        (
            "experimental-backend-bbolt-freelist-type",
            "array",
            "backend-bbolt-freelist-type",
            "array",
            &[],
        ),
        ("log-level", "debug", "log-level", "debug", &[]),
        (
            "otlp-endpoint",
            "http://localhost:4317",
            "otlp-endpoint",
            "http://localhost:4317",
            &[],
        ),
        ("otlp-protocol", "http", "otlp-protocol", "http", &[]),
        (
            "trace-sample-ratio",
            "0.25",
            "trace-sample-ratio",
            "0.25",
            &[],
        ),
        (
            "slow-request-threshold",
            "250ms",
            "slow-request-threshold",
            "250ms",
            &[],
        ),
        (
            "trace-max-exports-per-second",
            "0",
            "trace-max-exports-per-second",
            "0",
            &[],
        ),
        (
            "glass-measurements",
            "histograms",
            "glass-measurements",
            "histograms",
            &[],
        ),
    ];
    for (flag, given, name, want, extra) in rows {
        // `--flag=value`, `--flag value` and Go's single-dash `-flag value` alike.
        let forms = [
            vec![format!("--{flag}={given}")],
            vec![format!("--{flag}"), given.to_string()],
            vec![format!("-{flag}"), given.to_string()],
        ];
        for mut args in forms {
            args.extend(extra.iter().map(|s| s.to_string()));
            let cfg = Config::from_args(&args, no_env).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert_eq!(value(&cfg, name), *want, "{args:?}");
            assert_eq!(source(&cfg, name), Source::Flag, "{args:?}");
        }
    }
    for s in SPECS.iter().filter(|s| s.name != "config-file") {
        assert!(
            rows.iter().any(|r| r.2 == s.name),
            "no row for --{}",
            s.name
        );
    }

    let cfg = parse(&[
        "--heartbeat-interval=50",
        "--election-timeout=500",
        "--auto-compaction-mode=revision",
        "--auto-compaction-retention=1000",
    ])
    .unwrap();
    assert_eq!(cfg.heartbeat_interval, Duration::from_millis(50));
    assert_eq!(cfg.election_ticks(), 10);
    assert_eq!(cfg.auto_compaction_retention, Retention::Revisions(1000));
    let cfg = parse(&[
        "--quota-backend-bytes=-1",
        "--backend-batch-limit=5",
        "--snapshot-count=0",
    ])
    .unwrap();
    assert_eq!(cfg.quota_bytes(), None);
    assert_eq!(cfg.batch_limit(), 5);
    assert_eq!(cfg.snapshot_count(), DEFAULT_SNAPSHOT_COUNT);
}

#[test]
fn retention_is_read_by_mode() {
    use CompactionMode::{Periodic, Revision};
    let h = |n: u64| Retention::Period(Duration::from_secs(n * 3600));
    let rows = [
        (Periodic, "0", Retention::Disabled),
        (Periodic, "", Retention::Disabled),
        (Periodic, "1", h(1)),
        (Periodic, "72", h(72)),
        (Periodic, "5m", Retention::Period(Duration::from_secs(300))),
        (
            Periodic,
            "1h30m",
            Retention::Period(Duration::from_secs(5400)),
        ),
        (Periodic, "0s", Retention::Disabled),
        (Revision, "0", Retention::Disabled),
        (Revision, "1000", Retention::Revisions(1000)),
    ];
    for (mode, raw, want) in rows {
        assert_eq!(parse_retention(mode, raw), Ok(want), "{mode:?} {raw:?}");
    }
}

#[test]
fn initial_cluster_follows_the_name_as_etcd() {
    let cfg = parse(&["--name", "n1"]).unwrap();
    assert_eq!(cfg.initial_cluster, "n1=http://localhost:2380");
    assert_eq!(cfg.data_dir, PathBuf::from("n1.etcd"));
    assert_eq!(source(&cfg, "initial-cluster"), Source::Default);
    assert_eq!(source(&cfg, "data-dir"), Source::Default);

    let cfg = parse(&[
        "--name=n1",
        "--initial-advertise-peer-urls=http://10.0.0.1:2380,http://10.0.0.2:2380",
    ])
    .unwrap();
    assert_eq!(
        cfg.initial_cluster,
        "n1=http://10.0.0.1:2380,n1=http://10.0.0.2:2380"
    );
    assert_eq!(
        cfg.initial_cluster_members().unwrap(),
        vec![("n1".to_string(), cfg.initial_advertise_peer_urls.clone())]
    );

    let cfg = parse(&[
        "--name=n1",
        "--initial-cluster=n1=http://10.0.0.1:2380,n2=http://10.0.0.2:2380",
        "--data-dir=/d",
    ])
    .unwrap();
    assert_eq!(
        cfg.initial_cluster,
        "n1=http://10.0.0.1:2380,n2=http://10.0.0.2:2380"
    );
    assert_eq!(cfg.data_dir, PathBuf::from("/d"));
    let members = cfg.initial_cluster_members().unwrap();
    assert_eq!(
        members.iter().map(|m| m.0.as_str()).collect::<Vec<_>>(),
        ["n1", "n2"]
    );

    // Checked only when bootstrapping, as etcd (a restart ignores --initial-cluster).
    let cfg = parse(&["--initial-cluster=n1"]).unwrap();
    assert_eq!(
        cfg.initial_cluster_members().unwrap_err().to_string(),
        "error setting up initial cluster: \"n1\" is not of the form name=url"
    );
}

#[test]
fn env_applies_and_conflicts_as_etcd() {
    let cfg = Config::from_args(
        ["--name=f"],
        env_of(&[
            ("ETCD_INITIAL_CLUSTER_TOKEN", "tok"),
            ("ETCD_HEARTBEAT_INTERVAL", "50"),
            ("ETCD_EXPERIMENTAL_BACKEND_BBOLT_FREELIST_TYPE", "array"),
            ("ETCD_OTLP_ENDPOINT", "http://jaeger:4317"),
            ("ETCD_WAL_DIR", ""),
            ("ETCD_LISTEN_CLIENT_URLS", "http://127.0.0.1:2379"),
            ("ETCD_ADVERTISE_CLIENT_URLS", "http://127.0.0.1:2379"),
            ("ETCD_ENABLE_V2", "false"),
            ("OTHER", "x"),
        ]),
    )
    .unwrap();
    assert_eq!(cfg.name, "f");
    assert_eq!(source(&cfg, "name"), Source::Flag);
    assert_eq!(cfg.initial_cluster_token, "tok");
    assert_eq!(source(&cfg, "initial-cluster-token"), Source::Env);
    assert_eq!(cfg.heartbeat_interval, Duration::from_millis(50));
    assert_eq!(cfg.backend_freelist_type, FreelistType::Array);
    assert_eq!(source(&cfg, "backend-bbolt-freelist-type"), Source::Env);
    assert_eq!(cfg.otlp_endpoint.as_deref(), Some("http://jaeger:4317"));
    // An empty variable sets nothing.
    assert_eq!(cfg.wal_dir, None);
    assert_eq!(source(&cfg, "wal-dir"), Source::Default);
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);

    // etcd 3.4 does not let the flag win silently: `verifyEnv` is fatal. Even an empty
    // variable conflicts, and so does the other spelling of the same setting.
    let conflicts: &[(&[&str], &str, &str)] = &[
        (&["--name=f"], "ETCD_NAME", "e"),
        (&["--name=f"], "ETCD_NAME", ""),
        (
            &["-heartbeat-interval", "50"],
            "ETCD_HEARTBEAT_INTERVAL",
            "50",
        ),
        (
            &["--backend-bbolt-freelist-type=map"],
            "ETCD_EXPERIMENTAL_BACKEND_BBOLT_FREELIST_TYPE",
            "array",
        ),
        (&["--enable-v2=false"], "ETCD_ENABLE_V2", "true"),
    ];
    for (args, var, val) in conflicts {
        let err = Config::from_args(args.iter().copied(), env_of(&[(var, val)])).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "conflicting environment variable \"{var}\" is shadowed by corresponding command-line flag \
                 (either unset environment variable or disable flag)"
            ),
            "{args:?}"
        );
    }

    let errors: &[(&[(&str, &str)], &str)] = &[
        (&[("ETCD_HEARTBEAT_INTERVAL", "abc")], "invalid value \"abc\" for ETCD_HEARTBEAT_INTERVAL: parse error"),
        (&[("ETCD_LISTEN_CLIENT_URLS", "http://127.0.0.1:2379")], "--advertise-client-urls is required when --listen-client-urls is set explicitly"),
        (&[("ETCD_CERT_FILE", "/c.pem")], "ETCD_CERT_FILE is not supported by glassd yet: TLS is not implemented; refusing to serve plaintext where TLS was asked for"),
        (
            &[("ETCD_BACKEND_BBOLT_FREELIST_TYPE", "map"), ("ETCD_EXPERIMENTAL_BACKEND_BBOLT_FREELIST_TYPE", "array")],
            "ETCD_BACKEND_BBOLT_FREELIST_TYPE and ETCD_EXPERIMENTAL_BACKEND_BBOLT_FREELIST_TYPE set the same setting to different values",
        ),
    ];
    for (env, want) in errors {
        let err = Config::from_args(Vec::<String>::new(), env_of(env)).unwrap_err();
        assert_eq!(err.to_string(), *want);
    }
}

#[test]
fn config_file_as_etcd_3_4() {
    let (_dir, path) = yaml(
        "name: infra1\n\
         data-dir: /var/lib/etcd\n\
         listen-client-urls: http://10.0.0.1:2379,http://127.0.0.1:2379\n\
         listen-peer-urls: http://10.0.0.1:2380\n\
         initial-advertise-peer-urls: http://10.0.0.1:2380\n\
         initial-cluster: infra1=http://10.0.0.1:2380\n\
         initial-cluster-state: existing\n\
         heartbeat-interval: 50\n\
         election-timeout: 500\n\
         snapshot-count: 10000\n\
         quota-backend-bytes: 4294967296\n\
         backend-batch-interval: 10000000\n\
         auto-compaction-retention: 1\n\
         experimental-backend-bbolt-freelist-type: array\n\
         log-level: warn\n\
         trace-sample-ratio: 0.5\n\
         slow-request-threshold: 50ms\n\
         wal-dir:\n\
         max-wals: 5\n\
         enable-v2: true\n\
         client-transport-security:\n  cert-file:\n  client-cert-auth: false\n\
         heartbeat-intervall: 10\n",
    );
    let env = env_of(&[("ETCD_NAME", "from-env"), ("ETCD_SNAPSHOT_COUNT", "5")]);
    let cfg = Config::from_args(["--config-file", path.as_str(), "--max-txn-ops=7"], env).unwrap();
    assert_eq!(cfg.config_file.as_deref(), Some(Path::new(&path)));
    assert_eq!(source(&cfg, "config-file"), Source::Flag);
    assert_eq!(cfg.name, "infra1");
    assert_eq!(cfg.data_dir, PathBuf::from("/var/lib/etcd"));
    // The file's listen URLs without advertise URLs keep the default advertise URL (no error,
    // unlike the same on the command line).
    assert_eq!(
        value(&cfg, "listen-client-urls"),
        "http://10.0.0.1:2379,http://127.0.0.1:2379"
    );
    assert_eq!(
        value(&cfg, "advertise-client-urls"),
        "http://localhost:2379"
    );
    assert_eq!(cfg.initial_cluster_state, ClusterState::Existing);
    assert_eq!(cfg.heartbeat_interval, Duration::from_millis(50));
    assert_eq!(cfg.snapshot_count, 10_000);
    assert_eq!(cfg.quota_backend_bytes, 4 << 30);
    assert_eq!(cfg.backend_batch_interval, Duration::from_millis(10));
    assert_eq!(cfg.auto_compaction_mode, CompactionMode::Periodic);
    assert_eq!(
        cfg.auto_compaction_retention,
        Retention::Period(Duration::from_secs(3600))
    );
    assert_eq!(cfg.backend_freelist_type, FreelistType::Array);
    assert_eq!(cfg.log_level, LogLevel::Warn);
    assert_eq!(cfg.trace_sample_ratio, 0.5);
    assert_eq!(cfg.slow_request_threshold, Duration::from_millis(50));
    // Flags and env are ignored with a file, as etcd 3.4 does.
    assert_eq!(cfg.max_txn_ops, DEFAULT_MAX_TXN_OPS);
    for (name, want) in [
        ("name", Source::File),
        ("heartbeat-interval", Source::File),
        ("backend-bbolt-freelist-type", Source::File),
        ("wal-dir", Source::Default),
        ("max-txn-ops", Source::Default),
        ("advertise-client-urls", Source::Default),
    ] {
        assert_eq!(source(&cfg, name), want, "{name}");
    }
    let warnings = cfg.warnings.join("\n");
    for w in [
        "--max-txn-ops, ETCD_NAME, ETCD_SNAPSHOT_COUNT ignored: a config file is given",
        &format!("max-wals in {path} is an etcd setting glassd does not implement; ignored"),
        &format!("enable-v2 in {path} is an etcd setting glassd does not implement; ignored"),
        &format!("unknown key \"heartbeat-intervall\" in {path} ignored"),
    ] {
        assert!(warnings.contains(w), "missing {w:?} in:\n{warnings}");
    }
    assert_eq!(cfg.warnings.len(), 4, "{warnings}");

    // ETCD_CONFIG_FILE names the file when the flag does not.
    let cfg = Config::from_args(
        Vec::<String>::new(),
        env_of(&[("ETCD_CONFIG_FILE", path.as_str())]),
    )
    .unwrap();
    assert_eq!(cfg.name, "infra1");
    assert_eq!(source(&cfg, "config-file"), Source::Env);
}

#[test]
fn config_file_errors() {
    let cases: &[(&str, &[&str], &str)] = &[
        // The file is validated as flags are.
        ("heartbeat-interval: 300\n", &[], "--election-timeout[1000ms] should be at least as 5 times as --heartbeat-interval[300ms]"),
        ("listen-client-urls: http://example.com:2379\n", &[], "--listen-client-urls: expected IP in URL for binding (http://example.com:2379)"),
        ("auto-compaction-mode: revision\nauto-compaction-retention: 1h\n", &[], "invalid value \"1h\" for auto-compaction-retention in FILE: a duration, but --auto-compaction-mode=revision takes a number of revisions"),
        ("peer-transport-security:\n  cert-file: /p.pem\n", &[], "peer-transport-security in FILE is not supported by glassd yet: TLS is not implemented; refusing to serve plaintext where TLS was asked for"),
        ("backend-bbolt-freelist-type: map\nexperimental-backend-bbolt-freelist-type: array\n", &[], "backend-bbolt-freelist-type in FILE and experimental-backend-bbolt-freelist-type in FILE set the same setting to different values"),
        ("heartbeat-interval: fast\n", &[], "config file FILE: heartbeat-interval: expected an integer, got string \"fast\""),
        // Ignored flags must still parse (Go's flag parsing runs before etcd reads the file).
        ("name: a\n", &["--heartbeat-interval=abc"], "invalid value \"abc\" for --heartbeat-interval: parse error"),
        ("name: a\n", &["--nonsense"], "unknown flag --nonsense"),
    ];
    for (text, extra, want) in cases {
        let (_dir, path) = yaml(text);
        let mut args = vec!["--config-file", path.as_str()];
        args.extend_from_slice(extra);
        let err = parse(&args).unwrap_err().to_string();
        // "FILE" stands for the path; keys are visited in the order written.
        assert_eq!(err, want.replace("FILE", &path), "{text:?}");
    }
    let err = parse(&["--config-file=/nonexistent/glassd.yml"]).unwrap_err();
    assert!(matches!(err, ConfigError::ReadFile { .. }));
    assert!(err
        .to_string()
        .starts_with("cannot read config file /nonexistent/glassd.yml: "));
}

#[test]
fn validation_errors_with_etcds_messages() {
    let ac = "--advertise-client-urls=http://10.0.0.1:2379";
    let cases: &[(&[&str], &str)] = &[
        (&["--election-timeout=400"], "--election-timeout[400ms] should be at least as 5 times as --heartbeat-interval[100ms]"),
        (&["--heartbeat-interval=300"], "--election-timeout[1000ms] should be at least as 5 times as --heartbeat-interval[300ms]"),
        (&["--heartbeat-interval=0"], "--heartbeat-interval must be >0 (set to 0ms)"),
        (&["--election-timeout=0"], "--election-timeout must be >0 (set to 0ms)"),
        (&["--election-timeout=60000"], "--election-timeout[60000ms] is too long, and should be set less than 50000ms"),
        (&["--heartbeat-interval=abc"], "invalid value \"abc\" for --heartbeat-interval: parse error"),
        (&["--heartbeat-interval=-1"], "invalid value \"-1\" for --heartbeat-interval: parse error"),
        (&["--max-txn-ops=18446744073709551616"], "invalid value \"18446744073709551616\" for --max-txn-ops: value out of range"),
        (&["--listen-client-urls=localhost:2379", ac], "invalid value \"localhost:2379\" for --listen-client-urls: URL scheme must be http, https, unix, or unixs: localhost:2379"),
        (&["--listen-peer-urls=http://127.0.0.1"], "invalid value \"http://127.0.0.1\" for --listen-peer-urls: URL address does not have the form \"host:port\": http://127.0.0.1"),
        (&["--advertise-client-urls=http://10.0.0.1:2379/v3"], "invalid value \"http://10.0.0.1:2379/v3\" for --advertise-client-urls: URL must not contain a path: http://10.0.0.1:2379/v3"),
        (&["--listen-peer-urls=http://example.com:2380"], "--listen-peer-urls: expected IP in URL for binding (http://example.com:2380)"),
        (&["--listen-metrics-urls=http://metrics.local:2381"], "--listen-metrics-urls: expected IP in URL for binding (http://metrics.local:2381)"),
        (&["--initial-advertise-peer-urls=http://:2380"], "--initial-advertise-peer-urls \"http://:2380\" must be \"host:port\" (unexpected empty host (http://:2380))"),
        (&["--listen-client-urls=http://127.0.0.1:2379"], "--advertise-client-urls is required when --listen-client-urls is set explicitly"),
        (&["--initial-cluster-state=old"], "invalid value \"old\" for --initial-cluster-state: want \"new\" or \"existing\""),
        (&["--backend-bbolt-freelist-type=list"], "invalid value \"list\" for --backend-bbolt-freelist-type: unknown freelist type (want \"map\" or \"array\")"),
        (&["--experimental-backend-bbolt-freelist-type=hashmap"], "invalid value \"hashmap\" for --experimental-backend-bbolt-freelist-type: unknown freelist type (want \"map\" or \"array\")"),
        (&["--backend-bbolt-freelist-type=map", "--experimental-backend-bbolt-freelist-type=array"], "--backend-bbolt-freelist-type and --experimental-backend-bbolt-freelist-type set the same setting to different values"),
        (&["--backend-batch-interval=10"], "invalid value \"10\" for --backend-batch-interval: time: missing unit in duration \"10\""),
        (&["--backend-batch-limit=-1"], "invalid value \"-1\" for --backend-batch-limit: must be >= 0 (0 means the default, 10000)"),
        (&["--auto-compaction-mode=hourly"], "invalid value \"hourly\" for --auto-compaction-mode: unknown auto-compaction-mode \"hourly\""),
        (&["--auto-compaction-retention=1x"], "invalid value \"1x\" for --auto-compaction-retention: error parsing CompactionRetention: time: unknown unit \"x\" in duration \"1x\""),
        (&["--auto-compaction-retention=-1"], "invalid value \"-1\" for --auto-compaction-retention: error parsing CompactionRetention: time: missing unit in duration \"-1\""),
        (&["--auto-compaction-retention=1.5"], "invalid value \"1.5\" for --auto-compaction-retention: error parsing CompactionRetention: time: missing unit in duration \"1.5\""),
        (&["--auto-compaction-retention=-1h"], "invalid value \"-1h\" for --auto-compaction-retention: error parsing CompactionRetention: negative duration \"-1h\""),
        (&["--auto-compaction-mode=revision", "--auto-compaction-retention=5m"], "invalid value \"5m\" for --auto-compaction-retention: a duration, but --auto-compaction-mode=revision takes a number of revisions"),
        (&["--log-level=verbose"], "invalid value \"verbose\" for --log-level: unknown level \"verbose\" (debug, info, warn, error, panic or fatal)"),
        (&["--trace-sample-ratio=2"], "invalid value \"2\" for --trace-sample-ratio: must be a number from 0.0 to 1.0"),
        (&["--glass-measurements=some"], "invalid value \"some\" for --glass-measurements: want \"all\", \"histograms\" or \"off\""),
        (&["--trace-max-exports-per-second=-1"], "invalid value \"-1\" for --trace-max-exports-per-second: parse error"),
        (&["--otlp-protocol=udp"], "invalid value \"udp\" for --otlp-protocol: want \"grpc\" or \"http\""),
        (&["--otlp-endpoint=localhost:4317"], "invalid value \"localhost:4317\" for --otlp-endpoint: want http://host:port or https://host:port"),
        (&["--slow-request-threshold=fast"], "invalid value \"fast\" for --slow-request-threshold: time: invalid duration \"fast\""),
        (&["--unknown-flag"], "unknown flag --unknown-flag"),
        (&["--name"], "flag needs an argument: --name"),
        (&["serve"], "'serve' is not a valid flag"),
        (&["--enable-v2=maybe"], "invalid value \"maybe\" for --enable-v2: parse error"),
        (&["--cert-file=/c.pem"], "--cert-file is not supported by glassd yet: TLS is not implemented; refusing to serve plaintext where TLS was asked for"),
        (&["--client-cert-auth"], "--client-cert-auth is not supported by glassd yet: TLS is not implemented; refusing to serve plaintext where TLS was asked for"),
        (&["--discovery=https://discovery.etcd.io/x"], "--discovery is not supported by glassd yet: discovery is not implemented; bootstrap with --initial-cluster"),
        (&["--proxy=on"], "--proxy is not supported by glassd yet: proxy mode is not implemented"),
        (&["--unsafe-no-fsync"], "--unsafe-no-fsync is not supported by glassd yet: glassd always fsyncs its WAL and backend"),
    ];
    for (args, want) in cases {
        let err = parse(args).unwrap_err();
        assert_eq!(err.to_string(), *want, "{args:?}");
    }
}

#[test]
fn warnings_as_etcd() {
    let cases: &[(&[&str], &[&str])] = &[
        (&["--quota-backend-bytes=9663676416"], &["quota exceeds the maximum value: --quota-backend-bytes=9663676416 is above 8589934592 (8 GiB); a larger quota may degrade performance"]),
        (&["--quota-backend-bytes=8589934592"], &[]),
        (&["--max-request-bytes=11534336"], &["exceeded recommended request limit: --max-request-bytes=11534336 is above 10485760 (10 MiB)"]),
        (&["--enable-v2"], &["--enable-v2 is an etcd setting glassd does not implement; ignored"]),
        (&["--max-snapshots", "10"], &["--max-snapshots is an etcd setting glassd does not implement; ignored"]),
        // Off values ask for nothing Glass lacks.
        (&["--enable-v2=false", "--proxy=off", "--cert-file="], &[]),
    ];
    for (args, want) in cases {
        assert_eq!(parse(args).unwrap().warnings, *want, "{args:?}");
    }
}

#[test]
fn registry_lists_every_flag_with_source_and_runtime() {
    let (_dir, path) = yaml("name: from-file\n");
    let file_cfg = parse(&["--config-file", path.as_str()]).unwrap();
    let cfg = Config::from_args(
        ["--name=n", "--log-level=debug"],
        env_of(&[("ETCD_SNAPSHOT_COUNT", "5"), ("ETCD_MAX_TXN_OPS", "64")]),
    )
    .unwrap();
    let flags = cfg.flags();
    let names: Vec<&str> = flags.iter().map(|f| f.name).collect();
    let want_names: Vec<&str> = SPECS.iter().map(|s| s.name).collect();
    assert_eq!(names, want_names);
    let runtime: Vec<&str> = flags.iter().filter(|f| f.runtime).map(|f| f.name).collect();
    assert_eq!(
        runtime,
        [
            "snapshot-count",
            "quota-backend-bytes",
            "backend-batch-limit",
            "backend-batch-interval",
            "backend-bbolt-freelist-type",
            "max-request-bytes",
            "max-txn-ops",
            "auto-compaction-retention",
            "log-level",
            "otlp-endpoint",
            "trace-sample-ratio",
            "slow-request-threshold",
            "trace-max-exports-per-second",
        ]
    );
    for f in &flags {
        let want = match f.name {
            "name" | "log-level" => Source::Flag,
            "snapshot-count" | "max-txn-ops" => Source::Env,
            _ => Source::Default,
        };
        assert_eq!(f.source, want, "{}", f.name);
        assert!(!f.description.is_empty());
    }
    assert_eq!(value(&cfg, "snapshot-count"), "5");
    assert_eq!(value(&cfg, "initial-cluster"), "n=http://localhost:2380");
    assert_eq!(source(&file_cfg, "name"), Source::File);
    assert_eq!(source(&file_cfg, "config-file"), Source::Flag);
    // Any spelling finds the setting.
    let fl = cfg
        .flag("experimental-backend-bbolt-freelist-type")
        .unwrap();
    assert_eq!(
        (fl.name, fl.aliases),
        (
            "backend-bbolt-freelist-type",
            &["experimental-backend-bbolt-freelist-type"][..]
        )
    );
}

#[test]
fn help_and_version() {
    assert!(matches!(
        parse(&["--help"]),
        Err(ConfigError::HelpRequested)
    ));
    assert!(matches!(parse(&["-h"]), Err(ConfigError::HelpRequested)));
    assert!(matches!(
        parse(&["--version"]),
        Err(ConfigError::VersionRequested)
    ));
    let text = help();
    for s in SPECS {
        assert!(
            text.contains(&format!("  --{} '{}'", s.name, s.default)),
            "--{} missing from help",
            s.name
        );
        for a in s.aliases {
            assert!(text.contains(&format!("  --{a}\n")));
        }
    }
}
