//! `glass top` driven for real: a glassd member (the system tests' harness) under `glass bench
//! put` load, and `glass top` in a detached tmux session (a private tmux server, killed on
//! drop) read with `capture-pane`. The screen must show non-zero rates and latencies, every view
//! must open with its title, editing backend-batch-interval in the Flags view must change it on
//! the member (read back through `glass flags get`), a killed member must show as down and come
//! back up after its restart, and `q` must exit 0 with the terminal restored (the pane off the
//! alternate screen).
//!
//! Skipped, with a message, when tmux is not installed (`.ci/run` installs it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use glass_tests::member::{Kind, Member};

const GLASS: &str = env!("CARGO_BIN_EXE_glass");
/// How long one screen may take to show what is expected.
const WAIT: Duration = Duration::from_secs(30);

/// A private tmux server (its socket in a temporary dir, gone with it) with one session
/// running a command; killed on drop.
struct Tmux {
    socket: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmux {
    fn start(tag: &str, cmd: &str) -> Tmux {
        let dir = tempfile::Builder::new()
            .prefix(&format!("glass-top-{tag}-"))
            .tempdir()
            .unwrap();
        let t = Tmux {
            socket: dir.path().join("tmux.sock"),
            _dir: dir,
        };
        let out = t.run(&[
            "new-session",
            "-d",
            "-s",
            "top",
            "-x",
            "120",
            "-y",
            "35",
            cmd,
        ]);
        assert!(out.status.success(), "tmux: {out:?}");
        t
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("-f")
            .arg("/dev/null")
            .args(args)
            .output()
            .expect("running tmux")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "top"]).stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            let out = self.run(&["send-keys", "-t", "top", k]);
            assert!(out.status.success(), "send-keys {k}: {out:?}");
        }
    }

    fn text(&self, s: &str) {
        let out = self.run(&["send-keys", "-t", "top", "-l", s]);
        assert!(out.status.success(), "send-keys -l {s}: {out:?}");
    }

    /// Polls the screen until `ok` holds (bounded by [`WAIT`]); returns the screen.
    fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + WAIT;
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            assert!(
                Instant::now() < until,
                "timed out waiting for {what}; screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// Killed and reaped on drop.
struct Load(Child);

impl Drop for Load {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The number after `label` on the line that has it ("all methods: 123 req/s, p99 1.2ms").
fn rate_and_p99(screen: &str) -> Option<(f64, String)> {
    let line = screen.lines().find(|l| l.contains("all methods:"))?;
    let rest = line.split("all methods:").nth(1)?;
    let rate: f64 = rest.split_whitespace().next()?.parse().ok()?;
    let p99 = rest
        .split("p99")
        .nth(1)?
        .split_whitespace()
        .next()?
        .to_string();
    Some((rate, p99))
}

#[test]
fn top_shows_a_loaded_member_and_sets_a_flag() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("SKIPPED: tmux is not installed (.ci/run installs it)");
        return;
    }
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let mut m = Member::start(Kind::Glassd, dir.path(), &[]);
    let ep = m.endpoint();
    let _load = Load(
        Command::new(GLASS)
            .args([
                "bench",
                "put",
                "--endpoints",
                &ep,
                "--total",
                "10000000",
                "--rate",
                "200",
                "--clients",
                "4",
                "--key-space-size",
                "1000",
                "--no-progress",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The shell line prints glass's exit status when it ends, then keeps the pane open.
    let tmux = Tmux::start("top", &format!(
        "TERM=xterm-256color {GLASS} top --endpoints {ep} --interval 500ms; echo \"top exited $?\"; sleep 60"
    ));

    let s = tmux.wait_for("non-zero rates and latencies on the Overview", |s| {
        rate_and_p99(s).is_some_and(|(r, p99)| r > 0.0 && p99 != "–")
    });
    assert!(s.contains("Members (1)"), "{s}");
    assert!(s.contains("● up") && s.contains("leader"), "{s}");
    assert!(s.contains("KV/Put"), "{s}");

    tmux.keys(&["2"]);
    let s = tmux.wait_for("the Layers view with a measured wal.fsync", |s| {
        s.lines()
            .any(|l| l.contains("wal.fsync") && l.contains("s ") && !l.contains("–    "))
    });
    assert!(s.contains("Layers — "), "{s}");
    assert!(s.contains("api.unary"), "{s}");

    tmux.keys(&["3"]);
    tmux.wait_for("the Host view", |s| {
        s.contains("Host ") && s.contains("Kernel settings") && s.contains("CPU")
    });
    tmux.keys(&["4"]);
    tmux.wait_for("the Slow requests view", |s| s.contains("Slow requests — "));
    tmux.keys(&["6"]);
    // A verdict, read from snapshots: not only the view's labels. The member is up, so it is
    // not the member-down verdict.
    let s = tmux.wait_for("the Diagnosis view with a verdict", |s| {
        s.contains("┌ Diagnosis")
            && ["HEALTHY", "ADVICE", "WARNING", "BOTTLENECK"]
                .iter()
                .any(|v| s.contains(v))
            && s.contains(" snapshot(s)")
            && !s.contains("over 0 snapshot(s)")
    });
    assert!(!s.contains("member-down"), "{s}");
    tmux.keys(&["Tab"]);
    tmux.wait_for("Tab wrapping to the Overview", |s| {
        s.contains("Members (1)")
    });
    tmux.keys(&["?"]);
    tmux.wait_for("the help overlay", |s| s.contains("┌ Help"));
    tmux.keys(&["Escape"]);

    tmux.keys(&["5"]);
    tmux.wait_for("the Flags view", |s| {
        s.contains("Flags — ") && s.contains("backend-batch-interval")
    });
    tmux.keys(&["/"]);
    tmux.text("backend-batch-interval");
    tmux.keys(&["Enter"]);
    tmux.wait_for("the filtered list", |s| s.contains("(1 of "));
    tmux.keys(&["Enter"]);
    tmux.wait_for("the edit box", |s| s.contains("Set backend-batch-interval"));
    for _ in 0..8 {
        tmux.keys(&["BSpace"]);
    }
    tmux.text("250ms");
    tmux.keys(&["Enter"]);
    tmux.wait_for("the confirmation", |s| {
        s.contains("set backend-batch-interval to 250ms on compat? y/n")
    });
    tmux.keys(&["y"]);
    tmux.wait_for("the applied change", |s| {
        s.contains("backend-batch-interval: 0s -> 250ms")
    });
    // The list is read again and the stream reports the change too.
    tmux.wait_for("the new value in the list and the stream's change", |s| {
        s.lines().any(|l| {
            l.contains("backend-batch-interval") && l.contains("250ms") && l.contains("runtime")
        }) && s.contains("Recent changes")
    });

    let (ok, out, err) = glass_tests::run(
        std::path::Path::new(GLASS),
        &[
            "flags",
            "get",
            "backend-batch-interval",
            "-w",
            "json",
            "--endpoints",
            &ep,
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains(r#""value":"250ms""#), "{out}");

    // A member that dies is shown down, and followed again when it is back (backoff <= 8 s).
    tmux.keys(&["1"]);
    m.kill();
    tmux.wait_for("the member shown down", |s| s.contains("● down"));
    m.restart();
    tmux.wait_for("the member back up", |s| {
        s.contains("● up") && s.contains("1/1 up") && s.contains("leader")
    });

    tmux.keys(&["q"]);
    let s = tmux.wait_for("glass top to exit", |s| s.contains("top exited"));
    assert!(s.contains("top exited 0"), "{s}");
    let alt = tmux.run(&["display-message", "-p", "-t", "top", "#{alternate_on}"]);
    assert_eq!(
        String::from_utf8_lossy(&alt.stdout).trim(),
        "0",
        "still on the alternate screen"
    );
    eprintln!("tmux test took {:?}", started.elapsed());
}

/// True when `pid` is gone (or a zombie nobody reaped yet: it no longer runs).
fn dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
    }
}

/// The number after `label` in the screen ("glassd pid 1234").
fn number_after(screen: &str, label: &str) -> Option<u32> {
    let rest = screen.split(label).nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .find(|t| !t.is_empty())?
        .parse()
        .ok()
}

fn start_demo(tag: &str) -> (Tmux, u32, u32) {
    let glassd = glass_tests::glassd_bin();
    let tmux = Tmux::start(
        tag,
        &format!(
            "TERM=xterm-256color {GLASS} demo --glassd {} --interval 500ms; echo \"demo exited $?\"; sleep 60",
            glassd.display()
        ),
    );
    let s = tmux.wait_for("the demo's member under load", |s| {
        s.contains("demo: glassd pid") && rate_and_p99(s).is_some_and(|(r, _)| r > 0.0)
    });
    let glassd_pid = number_after(&s, "glassd pid").unwrap();
    let glass_pid = number_after(&s, "glass pid").unwrap();
    assert!(!dead(glassd_pid) && !dead(glass_pid), "{s}");
    (tmux, glass_pid, glassd_pid)
}

/// `glass demo` starts a member with load and top on it; Ctrl-C stops everything, and a
/// SIGKILLed glass takes its glassd with it.
#[test]
fn demo_leaves_no_process_behind() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("SKIPPED: tmux is not installed (.ci/run installs it)");
        return;
    }
    // Ctrl-C, as the README says (in raw mode it is a key, not a signal).
    let (tmux, glass_pid, glassd_pid) = start_demo("demo-ctrl-c");
    tmux.keys(&["C-c"]);
    let s = tmux.wait_for("the demo to exit", |s| s.contains("demo exited"));
    assert!(s.contains("demo exited 0"), "{s}");
    assert!(dead(glassd_pid), "glassd {glassd_pid} outlived the demo");
    assert!(dead(glass_pid));
    drop(tmux);

    let (tmux, glass_pid, glassd_pid) = start_demo("demo-kill");
    let out = Command::new("kill")
        .args(["-KILL", &glass_pid.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let until = Instant::now() + Duration::from_secs(10);
    while !dead(glassd_pid) {
        assert!(
            Instant::now() < until,
            "glassd {glassd_pid} outlived a SIGKILLed glass"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(tmux);
}

/// The children of `pid` (from /proc).
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(p);
        }
    }
    out
}

/// A panic and a SIGTERM both leave the terminal restored (off the alternate screen, the
/// cursor shown, raw mode off: the shell's `echo` prints normally after it).
#[test]
fn panic_and_sigterm_restore_the_terminal() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("SKIPPED: tmux is not installed (.ci/run installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(Kind::Glassd, dir.path(), &[]);
    let ep = m.endpoint();

    let tmux = Tmux::start(
        "panic",
        &format!(
            "GLASS_TOP_TEST_PANIC=1 TERM=xterm-256color {GLASS} top --endpoints {ep} --interval 500ms; echo \"top exited $?\"; sleep 60"
        ),
    );
    let s = tmux.wait_for("glass top to panic", |s| s.contains("top exited"));
    assert!(s.contains("top exited 101"), "{s}");
    assert!(
        s.contains("GLASS_TOP_TEST_PANIC is set"),
        "the panic message is shown: {s}"
    );
    let alt = tmux.run(&["display-message", "-p", "-t", "top", "#{alternate_on}"]);
    assert_eq!(String::from_utf8_lossy(&alt.stdout).trim(), "0", "{s}");
    drop(tmux);

    let tmux = Tmux::start(
        "term",
        &format!(
            "TERM=xterm-256color {GLASS} top --endpoints {ep} --interval 500ms; echo \"top exited $?\"; sleep 60"
        ),
    );
    tmux.wait_for("the Overview", |s| s.contains("Members (1)"));
    let shell: u32 = String::from_utf8_lossy(
        &tmux
            .run(&["display-message", "-p", "-t", "top", "#{pane_pid}"])
            .stdout,
    )
    .trim()
    .parse()
    .unwrap();
    let glass = children(shell);
    assert_eq!(glass.len(), 1, "{glass:?}");
    let out = Command::new("kill")
        .args(["-TERM", &glass[0].to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let s = tmux.wait_for("glass top to exit on SIGTERM", |s| s.contains("top exited"));
    assert!(s.contains("top exited 0"), "{s}");
    let alt = tmux.run(&["display-message", "-p", "-t", "top", "#{alternate_on}"]);
    assert_eq!(String::from_utf8_lossy(&alt.stdout).trim(), "0", "{s}");
}
