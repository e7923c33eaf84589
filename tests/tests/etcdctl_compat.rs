//! etcdctl 3.4 compatibility: one scripted etcdctl session runs against a fresh etcd 3.4 member
//! and a fresh member of kind [`OTHER`]; after normalization (ids, ports, sizes, raft
//! positions, durations: see [`Normalizer`]) every command's exit code, stdout and stderr must be
//! byte-equal. With `OTHER = Kind::Etcd` the test proves the session and the normalization
//! against etcd itself (every output is deterministic); with `Kind::Glassd` it is glassd's
//! compatibility test.
//!
//! Skipped (with a line on stderr) when etcd or etcdctl is not installed. With
//! `ETCDCTL_COMPAT_PRINT=1` the test prints etcd's normalized output of every command.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::time::Instant;

use glass_tests::member::{self, Kind, Member, Output};

/// The server compared with etcd 3.4.
const OTHER: Kind = Kind::Glassd;

/// One etcdctl command of the session.
struct Step {
    args: Vec<String>,
    stdin: String,
}

impl Step {
    fn new(args: &[&str]) -> Step {
        Step {
            args: args.iter().map(|a| a.to_string()).collect(),
            stdin: String::new(),
        }
    }

    fn stdin(args: &[&str], stdin: &str) -> Step {
        Step {
            stdin: stdin.into(),
            ..Step::new(args)
        }
    }

    /// `etcdctl txn -i EXTRA...` reading `compares`, `success` and `failure` (one line each),
    /// each block ended by an empty line as etcdctl's interactive mode wants.
    fn txn(compares: &[&str], success: &[&str], failure: &[&str], extra: &[&str]) -> Step {
        let mut stdin = String::new();
        for block in [compares, success, failure] {
            for line in block {
                stdin.push_str(line);
                stdin.push('\n');
            }
            stdin.push('\n');
        }
        let mut args = vec!["txn", "-i"];
        args.extend_from_slice(extra);
        Step::stdin(&args, &stdin)
    }

    /// The command as a shell line, with stdin shown (or its size, when large).
    fn describe(&self) -> String {
        let quote = |a: &String| {
            if a.is_empty() || a.contains([' ', '"', '(']) {
                format!("'{a}'")
            } else {
                a.clone()
            }
        };
        let line: Vec<String> = self.args.iter().map(quote).collect();
        let mut text = format!("etcdctl {}", line.join(" "));
        if self.stdin.len() > 200 {
            let _ = write!(text, " <<< ({} bytes)", self.stdin.len());
        } else if !self.stdin.is_empty() {
            let newline = if self.stdin.ends_with('\n') { "" } else { "\n" };
            let _ = write!(text, " <<EOF\n{}{newline}EOF", self.stdin);
        }
        text
    }
}

/// The session. Keys under `k/` are written so that every sort target orders them differently:
///
/// | key | create | mod | version | value |
/// |-----|--------|-----|---------|-------|
/// | k/a | 3      | 11  | 3       | x0    |
/// | k/b | 5      | 5   | 1       | x7    |
/// | k/c | 2      | 9   | 2       | x6    |
/// | k/d | 4      | 10  | 4       | x2    |
///
/// `k`, `k0`, `j` and `z` sit around the prefix to catch range-end mistakes. `k/e` and `k/f`
/// (version 1, like `k/b`) come later: etcd keeps ties in key order in both directions (Go sorts
/// up to 12 items by insertion, which is stable).
fn session() -> Vec<Step> {
    let mut steps = vec![
        // A fresh store: compaction 0 is accepted (nothing was compacted yet), reads of a
        // missing key print nothing.
        Step::new(&["compaction", "0"]),
        Step::new(&["get", "k/a"]),
        Step::new(&["get", "k/a", "-w", "json"]),
        // Revisions 2..=11: the table above.
        Step::new(&["put", "k/c", "x3"]),
        Step::new(&["put", "k/a", "x9"]),
        Step::new(&["put", "k/d", "x5"]),
        Step::new(&["put", "k/b", "x7"]),
        Step::new(&["put", "k/d", "x1"]),
        Step::new(&["put", "--prev-kv", "k/a", "x4"]),
        Step::new(&["put", "k/d", "x8", "-w", "json"]),
        Step::new(&["put", "k/c", "x6", "--prev-kv", "-w", "json"]),
        Step::new(&["put", "k/d", "x2"]),
        Step::new(&["put", "k/a", "x0", "--prev-kv", "-w", "fields"]),
        // Revisions 12..=17: neighbours of the prefix, a value with a space, an empty value,
        // --prev-kv of a key that did not exist, a value read from stdin.
        Step::new(&["put", "k", "plain k"]),
        Step::new(&["put", "k0", "after the prefix"]),
        Step::new(&["put", "j", "before"]),
        Step::new(&["put", "z", "last"]),
        Step::new(&["put", "--prev-kv", "k/e", ""]),
        Step::stdin(&["put", "k/f"], "from stdin"),
        // Reads.
        Step::new(&["get", "k/a"]),
        Step::new(&["get", "k/a", "-w", "json"]),
        Step::new(&["get", "k/a", "-w", "fields"]),
        Step::new(&["get", "k/e", "-w", "json"]),
        Step::new(&["get", "k/", "--prefix"]),
        Step::new(&["get", "k/", "--prefix", "-w", "json"]),
        Step::new(&["get", "k/", "--prefix", "--limit=2"]),
        Step::new(&["get", "k/", "--prefix", "--limit=2", "-w", "json"]),
        Step::new(&["get", "k/b", "--from-key"]),
        Step::new(&["get", "k/b", "--from-key", "--limit=3", "-w", "json"]),
        Step::new(&["get", "", "--from-key", "--keys-only"]),
        Step::new(&["get", "", "--prefix", "--keys-only"]),
        Step::new(&["get", "k/a", "k/d"]),
        Step::new(&["get", "k/", "--prefix", "--keys-only"]),
        Step::new(&["get", "k/", "--prefix", "--keys-only", "-w", "json"]),
        Step::new(&["get", "k/", "--prefix", "--print-value-only"]),
        Step::new(&["get", "k/", "--prefix", "--consistency=s"]),
        // etcdctl 3.4 has no --count-only (3.5 added it): a client-side error. The count is
        // in every JSON answer, with --limit too.
        Step::new(&["get", "k/", "--prefix", "--count-only"]),
        Step::new(&["get", "k/", "--prefix", "--limit=1", "-w", "json"]),
        Step::new(&[
            "get",
            "k/",
            "--prefix",
            "--keys-only",
            "--limit=1",
            "-w",
            "json",
        ]),
    ];
    for target in ["KEY", "CREATE", "MODIFY", "VALUE", "VERSION"] {
        for order in ["ASCEND", "DESCEND"] {
            steps.push(Step::new(&[
                "get",
                "k/",
                "--prefix",
                &format!("--sort-by={target}"),
                &format!("--order={order}"),
            ]));
        }
    }
    steps.extend([
        // Sort then limit. An order alone sorts by key. A target alone (sort order NONE) is an
        // etcd 3.4 quirk: the server fetches limit+1 keys in key order (the extra one sets
        // `more`), sorts those ascending and truncates: here k/a, k/c, not k/e, k/f.
        Step::new(&[
            "get",
            "k/",
            "--prefix",
            "--sort-by=MODIFY",
            "--order=DESCEND",
            "--limit=2",
        ]),
        Step::new(&["get", "k/", "--prefix", "--sort-by=VALUE", "--limit=2"]),
        Step::new(&["get", "k/", "--prefix", "--order=DESCEND"]),
        Step::new(&["get", "k/", "--prefix", "--sort-by=VERSION", "-w", "json"]),
        // History.
        Step::new(&["get", "k/a", "--rev=2"]),
        Step::new(&["get", "k/a", "--rev=3"]),
        Step::new(&["get", "k/", "--prefix", "--rev=6"]),
        Step::new(&["get", "k/d", "--rev=8", "-w", "json"]),
        Step::new(&["get", "k/", "--prefix", "--rev=17", "--keys-only"]),
        // Bad input etcdctl passes on: a negative revision and limit read the latest, all;
        // an empty key is refused by the server.
        Step::new(&["get", "k/a", "--rev=-1"]),
        Step::new(&["get", "k/", "--prefix", "--limit=-1", "--keys-only"]),
        Step::new(&["get", ""]),
        Step::new(&["put", "", "v"]),
        Step::new(&["del", ""]),
        Step::new(&["put", "k/g", "v", "--lease=1234abcd"]),
        // 1.6 MB: above etcd's --max-request-bytes (1.5 MiB), below gRPC's limit.
        Step::stdin(&["put", "k/big"], &"v".repeat(1_600_000)),
        // Transactions (revision 18: the success branch puts and deletes in one revision).
        Step::txn(
            &[
                r#"value("k/a") = "x0""#,
                r#"version("k/d") = "4""#,
                r#"create("k/c") = "2""#,
                r#"mod("k/b") < "6""#,
            ],
            &["get k/a", "put k/t t1", "del k/b"],
            &["put k/u u1"],
            &[],
        ),
        // The failure branch, with ops taking flags.
        Step::txn(
            &[r#"value("k/a") > "x5""#, r#"version("k/t") = "1""#],
            &["put k/s s1"],
            &[
                "get k/ --prefix --keys-only --limit=3",
                "put k/t t2 --prev-kv",
                "del k/c --prev-kv",
            ],
            &[],
        ),
        Step::txn(
            &[r#"mod("k/t") = "19""#, r#"create("k/t") != "18""#],
            &["put k/v v1"],
            &["get k/t", r#"put k/w "w 1" --prev-kv"#, "del k/nothing"],
            &["-w", "json"],
        ),
        // Compares on a missing key: version/create/mod are 0; the value compare is false.
        Step::txn(
            &[
                r#"version("k/missing") = "0""#,
                r#"create("k/missing") = "0""#,
            ],
            &["get k/missing", "del k/a --prev-kv"],
            &[],
            &["-w", "fields"],
        ),
        Step::txn(
            &[r#"value("k/missing") = """#],
            &["put k/x success"],
            &["put k/x failure"],
            &[],
        ),
        Step::txn(&[], &["get k/ --prefix --keys-only"], &[], &[]),
        // Refused by the server in either branch: the same key twice, an empty key.
        Step::txn(
            &[r#"version("k/t") = "0""#],
            &["put k/y 1"],
            &["put k/y 1", "del k/y"],
            &[],
        ),
        Step::txn(&[], &[r#"put "" 1"#], &[], &[]),
        // Deletes.
        Step::new(&["del", "k/nothing"]),
        Step::new(&["del", "k/nothing", "-w", "json"]),
        Step::new(&["del", "k0", "--prev-kv"]),
        Step::new(&["del", "j", "k/"]),
        Step::new(&["del", "k/", "--prefix", "--prev-kv"]),
        Step::new(&["put", "k/a", "again"]),
        Step::new(&["del", "--prefix", "k/", "--prev-kv", "-w", "json"]),
        Step::new(&["get", "", "--from-key"]),
        Step::new(&["get", "k/a", "--rev=11", "-w", "json"]),
        // Compaction: below, at and above the compacted revision, and twice.
        Step::new(&["compaction", "5"]),
        Step::new(&["get", "k/a", "--rev=4"]),
        Step::new(&["get", "k/b", "--rev=5"]),
        Step::new(&["get", "k/", "--prefix", "--rev=6", "-w", "json"]),
        Step::new(&["get", "k/a", "--rev=1000"]),
        Step::new(&["compaction", "5"]),
        Step::new(&["compaction", "3"]),
        Step::new(&["compaction", "1000"]),
        Step::new(&["compaction", "10"]),
        Step::new(&["get", "k/", "--prefix", "--rev=9", "--keys-only"]),
        // The cluster.
        Step::new(&["endpoint", "status"]),
        Step::new(&["endpoint", "status", "-w", "json"]),
        Step::new(&["endpoint", "status", "-w", "table"]),
        Step::new(&["endpoint", "status", "-w", "fields"]),
        Step::new(&["endpoint", "health"]),
        Step::new(&["endpoint", "health", "-w", "json"]),
        Step::new(&["endpoint", "health", "-w", "table"]),
        Step::new(&["member", "list"]),
        Step::new(&["member", "list", "-w", "json"]),
        Step::new(&["member", "list", "-w", "table"]),
        Step::new(&["member", "list", "-w", "fields"]),
    ]);
    steps
}

/// Rewrites what legitimately differs between two members out of etcdctl's output; everything
/// else stays byte-equal.
struct Normalizer {
    /// Literal replacements, longest first: this member's id and cluster id (hex as in
    /// tables and simple output, decimal as in JSON and fields) and its ports.
    literals: Vec<(String, String)>,
}

/// Columns of `endpoint status` and `endpoint health` tables whose values are masked.
const MASKED_COLUMNS: [&str; 6] = [
    "VERSION",
    "DB SIZE",
    "RAFT TERM",
    "RAFT INDEX",
    "RAFT APPLIED INDEX",
    "TOOK",
];
/// JSON keys masked in `endpoint status` (and `took` in `endpoint health`).
const MASKED_JSON_KEYS: [&str; 8] = [
    "version",
    "dbSize",
    "dbSizeInUse",
    "raftIndex",
    "raftTerm",
    "raftAppliedIndex",
    "raft_term",
    "took",
];
/// `-w fields` names masked in `endpoint status`.
const MASKED_FIELDS: [&str; 5] = [
    "Version",
    "DBSize",
    "RaftTerm",
    "RaftIndex",
    "RaftAppliedIndex",
];
/// Positions masked in `endpoint status`'s simple line: `ENDPOINT, ID, VERSION, DB SIZE,
/// IS LEADER, IS LEARNER, RAFT TERM, RAFT INDEX, RAFT APPLIED INDEX, ERRORS`.
const MASKED_STATUS_FIELDS: [usize; 5] = [2, 3, 6, 7, 8];

impl Normalizer {
    fn new(m: &Member) -> Normalizer {
        let id = m.identity();
        let ports = m.ports();
        let mut literals = vec![
            (format!("{:x}", id.member_id), "<member-id>".to_string()),
            (id.member_id.to_string(), "<member-id>".to_string()),
            (format!("{:x}", id.cluster_id), "<cluster-id>".to_string()),
            (id.cluster_id.to_string(), "<cluster-id>".to_string()),
            (
                format!("127.0.0.1:{}", ports.client),
                "127.0.0.1:<client-port>".to_string(),
            ),
            (
                format!("127.0.0.1:{}", ports.peer),
                "127.0.0.1:<peer-port>".to_string(),
            ),
        ];
        literals.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
        Normalizer { literals }
    }

    fn output(&self, step: &Step, out: &Output) -> Output {
        Output {
            code: out.code,
            stdout: self.text(step, &out.stdout),
            stderr: self.text(step, &out.stderr),
        }
    }

    /// One stream: literals, then etcdctl's own log lines, tables, and the per-command masks.
    fn text(&self, step: &Step, text: &str) -> String {
        let mut text = text.to_string();
        for (from, to) in &self.literals {
            text = text.replace(from.as_str(), to);
        }
        let cluster_info = step.args.first().is_some_and(|a| a == "endpoint");
        let lines: Vec<String> = text
            .split_inclusive('\n')
            .map(|line| {
                if line.starts_with(r#"{"level":"#) {
                    return client_log_line(line);
                }
                if !cluster_info {
                    return line.to_string();
                }
                let mut line = line.to_string();
                for key in MASKED_JSON_KEYS {
                    line = mask_json(&line, key);
                }
                for name in MASKED_FIELDS {
                    line = mask_field(&line, name);
                }
                line = mask_status_line(&line);
                mask_took(&line)
            })
            .collect();
        let masked: &[&str] = if cluster_info { &MASKED_COLUMNS } else { &[] };
        canonical_tables(&lines.concat(), masked)
    }
}

/// etcdctl's client library logs a zap line on stderr for every failed call
/// (`{"level":"warn","ts":"…","caller":"clientv3/retry_interceptor.go:62","msg":"retrying of
/// unary invoker failed","target":"endpoint://client-UUID/HOST:PORT","attempt":0,"error":"rpc
/// error: code = … desc = …"}`): the timestamp and the per-run target are masked; the gRPC
/// code and message stay.
fn client_log_line(line: &str) -> String {
    mask_json(&mask_json(line, "ts"), "target")
}

/// Replaces the value (a JSON string or a bare token) after every `"key":` with `"<key>"`.
fn mask_json(text: &str, key: &str) -> String {
    let needle = format!("\"{key}\":");
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(&needle) {
        let (head, tail) = rest.split_at(at + needle.len());
        out.push_str(head);
        let end = if let Some(quoted) = tail.strip_prefix('"') {
            // Go's JSON escapes quotes inside strings as \".
            let mut escaped = false;
            let close = quoted
                .char_indices()
                .find(|&(_, c)| {
                    let close = c == '"' && !escaped;
                    escaped = c == '\\' && !escaped;
                    close
                })
                .map_or(quoted.len(), |(i, _)| i);
            1 + close + 1
        } else {
            tail.find([',', '}', ']', '\n']).unwrap_or(tail.len())
        }
        .min(tail.len());
        let _ = write!(out, "\"<{key}>\"");
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// `-w fields` prints `"Name" : value` lines; the value of `name` becomes `<Name>`.
fn mask_field(line: &str, name: &str) -> String {
    let prefix = format!("\"{name}\" : ");
    match line.strip_prefix(&prefix) {
        Some(_) => format!("{prefix}<{name}>\n"),
        None => line.to_string(),
    }
}

/// `endpoint status`'s simple line (`ENDPOINT, ID, VERSION, DB SIZE, …, ERRORS`, ten
/// comma-separated fields): masks the version, DB size, raft term, index and applied index.
fn mask_status_line(line: &str) -> String {
    let body = line.strip_suffix('\n').unwrap_or(line);
    let mut fields: Vec<&str> = body.split(", ").collect();
    if !body.starts_with("http") || fields.len() != 10 {
        return line.to_string();
    }
    for i in MASKED_STATUS_FIELDS {
        fields[i] = "<masked>";
    }
    let newline = if line.ends_with('\n') { "\n" } else { "" };
    format!("{}{newline}", fields.join(", "))
}

/// `endpoint health`'s simple line (on stderr) ends with `took = DURATION`.
fn mask_took(line: &str) -> String {
    match line.find("took = ") {
        Some(at) => {
            let newline = if line.ends_with('\n') { "\n" } else { "" };
            format!("{}took = <took>{newline}", &line[..at])
        }
        None => line.to_string(),
    }
}

/// Re-renders every ASCII table (`+---+` borders, `| a | b |` rows) with cells trimmed, the
/// cells of `masked` columns (by header name) replaced with `<masked>`, and column widths
/// recomputed: a wider id, DB size or port then does not move the borders. Cell alignment is
/// not kept (etcdctl derives it from the content anyway).
fn canonical_tables(text: &str, masked: &[&str]) -> String {
    let mut out = String::new();
    let mut table: Vec<Option<Vec<String>>> = Vec::new(); // None = a border line
    let flush = |table: &mut Vec<Option<Vec<String>>>, out: &mut String| {
        if table.is_empty() {
            return;
        }
        let header = table.iter().flatten().next().cloned().unwrap_or_default();
        let mut seen_header = false;
        for row in table.iter_mut().flatten() {
            if seen_header {
                for (cell, name) in row.iter_mut().zip(&header) {
                    if masked.contains(&name.as_str()) {
                        *cell = "<masked>".into();
                    }
                }
            }
            seen_header = true;
        }
        let columns = table.iter().flatten().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                let cells = table.iter().flatten().filter_map(|r| r.get(c));
                cells.map(String::len).max().unwrap_or(0)
            })
            .collect();
        for row in table.drain(..) {
            match row {
                None => {
                    for w in &widths {
                        let _ = write!(out, "+{}", "-".repeat(w + 2));
                    }
                    out.push_str("+\n");
                }
                Some(cells) => {
                    for (c, w) in widths.iter().enumerate() {
                        let cell = cells.get(c).map_or("", String::as_str);
                        let _ = write!(out, "| {cell:<w$} ");
                    }
                    out.push_str("|\n");
                }
            }
        }
    };
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches('\n');
        if body.starts_with('+')
            && body.ends_with('+')
            && body.chars().all(|c| c == '+' || c == '-')
        {
            table.push(None);
        } else if body.starts_with('|') && body.ends_with('|') && body.len() > 1 {
            let inner = &body[1..body.len() - 1];
            table.push(Some(
                inner.split('|').map(|c| c.trim().to_string()).collect(),
            ));
        } else {
            flush(&mut table, &mut out);
            out.push_str(line);
        }
    }
    flush(&mut table, &mut out);
    out
}

/// Runs the session against a fresh member of `kind`; returns the member (alive, for its logs)
/// and the normalized outputs.
fn run_session(kind: Kind, steps: &[Step]) -> (Member, tempfile::TempDir, Vec<Output>) {
    let dir = tempfile::Builder::new()
        .prefix("etcdctl-compat-")
        .tempdir()
        .expect("temp dir");
    let member = Member::start(kind, dir.path(), &[]);
    let normalizer = Normalizer::new(&member);
    let endpoint = member.endpoint();
    let outputs = steps
        .iter()
        .map(|step| {
            let args: Vec<&str> = step.args.iter().map(String::as_str).collect();
            let out = member::etcdctl_stdin(&endpoint, &args, &step.stdin);
            normalizer.output(step, &out)
        })
        .collect();
    (member, dir, outputs)
}

/// A line diff (longest common subsequence): `  ` same, `- ` etcd only, `+ ` other only.
fn line_diff(a: &str, b: &str) -> String {
    let a: Vec<&str> = a.lines().collect();
    let b: Vec<&str> = b.lines().collect();
    // lcs[i][j]: the LCS length of a[i..] and b[j..].
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            let _ = writeln!(out, "    {}", a[i]);
            (i, j) = (i + 1, j + 1);
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            let _ = writeln!(out, "  - {}", a[i]);
            i += 1;
        } else {
            let _ = writeln!(out, "  + {}", b[j]);
            j += 1;
        }
    }
    out
}

/// What differs between the two outputs of one step, or `None`.
fn compare(step: &Step, etcd: &Output, other: &Output) -> Option<String> {
    if etcd == other {
        return None;
    }
    let mut text = format!("$ {}\n", step.describe());
    if etcd.code != other.code {
        let _ = writeln!(
            text,
            "  exit code: etcd {:?}, {OTHER:?} {:?}",
            etcd.code, other.code
        );
    }
    for (name, a, b) in [
        ("stdout", &etcd.stdout, &other.stdout),
        ("stderr", &etcd.stderr, &other.stderr),
    ] {
        if a != b {
            let _ = write!(text, "  {name} (- etcd, + {OTHER:?}):\n{}", line_diff(a, b));
        }
    }
    Some(text)
}

#[test]
fn etcdctl_session_matches_etcd() {
    if let Some(why) = member::missing_tools() {
        eprintln!("{why}: skipped");
        return;
    }
    let started = Instant::now();
    let steps = session();
    // The two members run side by side; each runs the session in order.
    let ((etcd, _etcd_dir, etcd_out), (other, _other_dir, other_out)) =
        std::thread::scope(|scope| {
            let a = scope.spawn(|| run_session(Kind::Etcd, &steps));
            let b = scope.spawn(|| run_session(OTHER, &steps));
            let join = |h: std::thread::ScopedJoinHandle<'_, _>| {
                h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
            };
            let a = join(a);
            (a, join(b))
        });
    if std::env::var_os("ETCDCTL_COMPAT_PRINT").is_some() {
        for (step, out) in steps.iter().zip(&etcd_out) {
            eprintln!(
                "$ {}\n[exit {:?}]\n{}{}",
                step.describe(),
                out.code,
                out.stdout,
                out.stderr
            );
        }
    }
    let diffs: Vec<String> = steps
        .iter()
        .zip(etcd_out.iter().zip(&other_out))
        .filter_map(|(step, (a, b))| compare(step, a, b))
        .collect();
    eprintln!(
        "{} etcdctl commands against etcd and {OTHER:?} in {:.1?}",
        steps.len(),
        started.elapsed()
    );
    assert!(
        diffs.is_empty(),
        "{} of {} etcdctl commands differ between etcd 3.4 and {OTHER:?}:\n\n{}\n\
         The {OTHER:?} member's log:\n{}\nThe etcd member's log:\n{}",
        diffs.len(),
        steps.len(),
        diffs.join("\n"),
        other.logs(),
        etcd.logs()
    );
}

/// The normalization itself, on outputs captured from etcd 3.4 and etcdctl 3.4.
#[test]
fn normalization_masks_only_what_differs_between_members() {
    let status = Step::new(&["endpoint", "status"]);
    let line =
        "http://127.0.0.1:<client-port>, <member-id>, 3.4.23, 20 kB, true, false, 2, 15, 15, \n";
    assert_eq!(
        mask_status_line(line),
        "http://127.0.0.1:<client-port>, <member-id>, <masked>, <masked>, true, false, <masked>, <masked>, <masked>, \n"
    );
    let json = r#"{"header":{"cluster_id":1,"member_id":2,"revision":6,"raft_term":2},"version":"3.4.23","dbSize":20480,"leader":2,"raftIndex":15}"#;
    let masked = MASKED_JSON_KEYS
        .iter()
        .fold(json.to_string(), |t, k| mask_json(&t, k));
    assert_eq!(
        masked,
        r#"{"header":{"cluster_id":1,"member_id":2,"revision":6,"raft_term":"<raft_term>"},"version":"<version>","dbSize":"<dbSize>","leader":2,"raftIndex":"<raftIndex>"}"#
    );
    assert_eq!(
        mask_json(r#"{"a":"x\"y","b":1}"#, "a"),
        r#"{"a":"<a>","b":1}"#
    );
    assert_eq!(
        mask_took("http://x is healthy: successfully committed proposal: took = 1.3ms\n"),
        "http://x is healthy: successfully committed proposal: took = <took>\n"
    );
    let table = "\
+-----+---------+
| ID  | DB SIZE |
+-----+---------+
| abc |   20 kB |
+-----+---------+
";
    assert_eq!(
        canonical_tables(table, &MASKED_COLUMNS),
        "\
+-----+----------+
| ID  | DB SIZE  |
+-----+----------+
| abc | <masked> |
+-----+----------+
"
    );
    let n = Normalizer {
        literals: vec![("bdae9bbc11dd390d".into(), "<member-id>".into())],
    };
    let out = Output {
        code: Some(0),
        stdout: line.replace("<member-id>", "bdae9bbc11dd390d"),
        stderr: String::new(),
    };
    assert_eq!(n.output(&status, &out).stdout, mask_status_line(line));
    // Outside the cluster commands only ids, ports and etcdctl's log lines change.
    let get = Step::new(&["get", "k", "-w", "json"]);
    assert_eq!(n.text(&get, json), json);
    assert_eq!(
        line_diff("a\nb\nc\n", "a\nx\nc\nd\n"),
        "    a\n  - b\n  + x\n    c\n  + d\n"
    );
}

/// The harness itself, on etcd: stop (SIGTERM), kill (SIGKILL) and restart keep the ports,
/// the data and the member's identity; the logs collect every run.
#[test]
fn harness_restarts_a_member_with_its_data() {
    if let Some(why) = member::missing_tools() {
        eprintln!("{why}: skipped");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let mut m = Member::start(Kind::Etcd, dir.path(), &["--snapshot-count=10000"]);
    let endpoint = m.endpoint();
    assert_eq!(endpoint, format!("http://127.0.0.1:{}", m.client_port()));
    assert_eq!(m.data_dir(), dir.path().join("data"));
    assert!(m.data_dir().join("member").is_dir());
    let identity = m.identity().clone();
    let put = member::etcdctl(&endpoint, &["put", "k", "v1"]);
    assert_eq!(
        (put.code, put.stdout.as_str()),
        (Some(0), "OK\n"),
        "{put:?}"
    );

    // etcd 3.4 cleans up on SIGTERM and then dies of the signal it re-raises.
    m.stop().expect("etcd exits on SIGTERM");
    assert!(std::net::TcpStream::connect(("127.0.0.1", m.client_port())).is_err());

    m.restart();
    assert_eq!(m.endpoint(), endpoint);
    assert_eq!(m.identity().member_id, identity.member_id);
    let got = member::etcdctl_stdin(&endpoint, &["put", "k"], "v2");
    assert_eq!(got.code, Some(0), "{got:?}");

    m.kill();
    m.restart();
    let got = member::etcdctl(&endpoint, &["get", "k", "--print-value-only"]);
    assert_eq!(got.stdout, "v2\n", "{got:?}");
    assert!(m.logs().contains("stderr.log"), "{}", m.logs());
}
