//! etcd's YAML configuration file: one top-level key per setting, named as the flag. etcd 3.4
//! decodes it through JSON into typed Go fields, which decides what each value may look like:
//! URL lists are comma-separated strings, `heartbeat-interval` is an integer of milliseconds,
//! a Go `time.Duration` (`backend-batch-interval`) is an integer of nanoseconds, a string
//! field takes any scalar as text, and `null` leaves the default.
//!
//! This module turns the file into `(key, text)` pairs in the flags' own syntax, so that one
//! parser per setting serves flags, environment and file alike.

use std::path::Path;

use serde_yaml_ng::Value;

use super::error::ConfigError;
use super::spec::{self, Yaml};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub key: String,
    /// The value in flag syntax (`100`, `1500000ns`, `http://a:1,http://b:1`).
    pub value: String,
}

pub(crate) fn read(path: &Path) -> Result<Vec<Entry>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

pub(crate) fn parse(path: &Path, text: &str) -> Result<Vec<Entry>, ConfigError> {
    let err = |message: String| ConfigError::File {
        path: path.to_path_buf(),
        message,
    };
    let doc: Value = serde_yaml_ng::from_str(text).map_err(|e| err(e.to_string()))?;
    let map = match doc {
        Value::Null => return Ok(Vec::new()),
        Value::Mapping(m) => m,
        _ => return Err(err("expected a mapping of etcd configuration keys".into())),
    };
    let mut out = Vec::new();
    for (k, v) in map {
        let Value::String(key) = k else {
            return Err(err(format!("key {k:?} is not a string")));
        };
        if v.is_null() {
            continue;
        }
        let value = match spec::lookup(&key) {
            Some(s) => typed(s.yaml, &v).map_err(|expected| {
                err(format!("{key}: expected {expected}, got {}", describe(&v)))
            })?,
            None => loose(&v),
        };
        out.push(Entry { key, value });
    }
    Ok(out)
}

/// A setting's value by its Go type; `Err` names the type expected.
fn typed(kind: Yaml, v: &Value) -> Result<String, &'static str> {
    match (kind, v) {
        (Yaml::Str, Value::String(s)) => Ok(s.clone()),
        (Yaml::Str, Value::Number(n)) => Ok(n.to_string()),
        (Yaml::Str, Value::Bool(b)) => Ok(b.to_string()),
        (Yaml::Str, _) => Err("a string"),
        (Yaml::Int, Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
        (Yaml::Int, _) => Err("an integer"),
        (Yaml::Duration, Value::Number(n)) if n.is_u64() => Ok(format!("{n}ns")),
        (Yaml::Duration, Value::String(s)) => Ok(s.clone()),
        (Yaml::Duration, _) => Err("an integer of nanoseconds or a duration string"),
        (Yaml::Float, Value::Number(n)) => Ok(n.to_string()),
        (Yaml::Float, _) => Err("a number"),
    }
}

/// An etcd key Glass does not implement, or an unknown key: only its off-ness matters. A
/// block (`client-transport-security`) is off when every field in it is.
fn loose(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Sequence(items) => items.iter().map(loose).collect::<Vec<_>>().join(","),
        Value::Mapping(m) => {
            let off = m.values().map(loose).all(|s| s.is_empty() || s == "false");
            if off {
                String::new()
            } else {
                "(set)".to_string()
            }
        }
        Value::Tagged(t) => loose(&t.value),
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {s:?}"),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(t) => format!("tagged value {}", t.tag),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(text: &str) -> Vec<(String, String)> {
        parse(Path::new("f.yml"), text)
            .unwrap()
            .into_iter()
            .map(|e| (e.key, e.value))
            .collect()
    }

    #[test]
    fn values_in_flag_syntax() {
        let got = entries(
            "name: 1\nheartbeat-interval: 50\nwal-dir:\nbackend-batch-interval: 10000000\n\
             slow-request-threshold: 250ms\ntrace-sample-ratio: 0.5\nauto-compaction-retention: 1\n\
             listen-client-urls: http://a:1,http://b:2\nlog-outputs: [stderr]\n\
             client-transport-security:\n  cert-file:\n  client-cert-auth: false\n",
        );
        let want = [
            ("name", "1"),
            ("heartbeat-interval", "50"),
            ("backend-batch-interval", "10000000ns"),
            ("slow-request-threshold", "250ms"),
            ("trace-sample-ratio", "0.5"),
            ("auto-compaction-retention", "1"),
            ("listen-client-urls", "http://a:1,http://b:2"),
            ("log-outputs", "stderr"),
            ("client-transport-security", ""),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want);
        assert_eq!(entries(""), vec![]);
    }

    #[test]
    fn type_errors_name_the_key() {
        let cases = [
            (
                "heartbeat-interval: \"100\"",
                "heartbeat-interval: expected an integer, got string \"100\"",
            ),
            (
                "heartbeat-interval: 1.5",
                "heartbeat-interval: expected an integer, got number 1.5",
            ),
            (
                "listen-client-urls: [http://a:1]",
                "listen-client-urls: expected a string, got a list",
            ),
            (
                "trace-sample-ratio: high",
                "trace-sample-ratio: expected a number, got string \"high\"",
            ),
            ("- name", "expected a mapping of etcd configuration keys"),
        ];
        for (text, want) in cases {
            let e = parse(Path::new("f.yml"), text).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("config file f.yml: {want}"),
                "{text}"
            );
        }
    }
}
