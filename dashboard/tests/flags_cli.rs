//! `glass flags get|set` against a real glassd member (started by the system tests' harness):
//! the table and JSON, `NAME: OLD -> NEW`, and the server's message with exit 1 on a refusal.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use glass_tests::member::{Kind, Member};

const GLASS: &str = env!("CARGO_BIN_EXE_glass");

fn glass(args: &[&str]) -> (bool, String, String) {
    glass_tests::run(std::path::Path::new(GLASS), args)
}

#[test]
fn get_and_set_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(Kind::Glassd, dir.path(), &[]);
    let ep = m.endpoint();

    let (ok, out, err) = glass(&["flags", "get", "--endpoints", &ep]);
    assert!(ok, "{err}");
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "VALUE",
            "DEFAULT",
            "SOURCE",
            "RUNTIME",
            "DESCRIPTION"
        ]
    );
    let row = out
        .lines()
        .find(|l| l.starts_with("log-level "))
        .unwrap()
        .split_whitespace()
        .take(5)
        .collect::<Vec<_>>();
    assert_eq!(row, ["log-level", "warn", "info", "flag", "yes"]);
    assert!(out
        .lines()
        .any(|l| l.starts_with("data-dir ") && l.contains(" no ")));

    let (ok, out, err) = glass(&[
        "flags",
        "set",
        "backend-batch-interval",
        "250ms",
        "--endpoints",
        &ep,
    ]);
    assert!(ok, "{err}");
    assert_eq!(out, "backend-batch-interval: 0s -> 250ms (until restart)\n");
    // A negative value is a value, not a flag.
    let (ok, out, err) = glass(&[
        "flags",
        "set",
        "quota-backend-bytes",
        "-1",
        "--endpoints",
        &ep,
    ]);
    assert!(ok, "{err}");
    assert_eq!(out, "quota-backend-bytes: 0 -> -1 (until restart)\n");

    let (ok, out, err) = glass(&[
        "flags",
        "get",
        "backend-batch-interval",
        "-w",
        "json",
        "--endpoints",
        &ep,
    ]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with(r#"{"flags":[{"name":"backend-batch-interval","value":"250ms","default":"0s","source":"runtime","runtime":true,"#),
        "{out}"
    );

    let (ok, out, err) = glass(&[
        "flags",
        "set",
        "backend-batch-interval",
        "banana",
        "--endpoints",
        &ep,
    ]);
    assert!(!ok && out.is_empty());
    assert!(
        err.contains(r#"invalid value "banana" for --backend-batch-interval: time: invalid duration "banana""#),
        "{err}"
    );
    let (ok, _, err) = glass(&["flags", "set", "data-dir", "x", "--endpoints", &ep]);
    assert!(!ok);
    assert!(
        err.contains("cannot change while glassd runs; restart with --data-dir"),
        "{err}"
    );
    let (ok, _, err) = glass(&["flags", "get", "nope", "--endpoints", &ep]);
    assert!(!ok);
    assert!(err.contains(r#"unknown flag "nope""#), "{err}");
}
