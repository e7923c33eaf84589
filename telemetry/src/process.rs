//! What this process is doing, from `/proc/self` (Linux only): the `ProcessStatus` half of a
//! [`HostSample`](crate::host::HostSample). [`HostSampler`](crate::host::HostSampler) reads it
//! together with the host figures; this file holds the type and the parsers.
//!
//! Sources: `/proc/self/stat` (utime, stime, starttime in clock ticks; the tick rate comes from
//! `sysconf(_SC_CLK_TCK)`), `/proc/self/status` (VmRSS, Threads, the context switches),
//! `/proc/self/fd` (one entry per open descriptor) and `/proc/uptime` (for the uptime).

use std::path::Path;

use crate::host::read;

/// This process, as `glass.v1.ProcessStatus` carries it (one field each, same units).
///
/// Unreadable sources leave their fields at 0; `pid` is always this process's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Process {
    pub pid: u32,
    /// Percent of one core (user + system) over the window: 200 is two cores busy. The first
    /// sample's window is the process's whole life.
    pub cpu_percent: f64,
    /// Since the process started (`/proc/self/stat` utime).
    pub cpu_user_seconds: f64,
    /// Since the process started (`/proc/self/stat` stime).
    pub cpu_system_seconds: f64,
    /// Resident set size now (`VmRSS`).
    pub rss_bytes: u64,
    pub threads: u64,
    /// Entries of `/proc/self/fd`, counted as Prometheus's `process_open_fds` counts them (the
    /// descriptor opened to list the directory is among them).
    pub open_fds: u64,
    /// Summed over the process's live threads (`/proc/self/task/*/status`; the process's own
    /// status counts only its main thread), since each started.
    pub voluntary_ctxt_switches: u64,
    /// As `voluntary_ctxt_switches`: preemptions, the sign of threads waiting for a CPU.
    pub nonvoluntary_ctxt_switches: u64,
    pub uptime_seconds: f64,
}

/// The cumulative figures the next sample's window is computed from.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProcessCounters {
    /// utime + stime, clock ticks.
    pub(crate) cpu_ticks: u64,
}

/// The fields of `/proc/self/stat` Glass uses.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct SelfStat {
    pid: u32,
    utime: u64,
    stime: u64,
    threads: u64,
    /// Clock ticks after boot.
    starttime: u64,
}

/// Reads `/proc/self` under `root`. `clk_tck`: clock ticks per second; `uptime`: seconds since
/// boot (`/proc/uptime`), if readable; `prev`: the previous sample's counters and the seconds
/// since then, or `None` for a window over the process's whole life.
pub(crate) fn read_process(
    root: &Path,
    clk_tck: f64,
    uptime: Option<f64>,
    prev: Option<(ProcessCounters, f64)>,
) -> (Process, ProcessCounters) {
    let stat = read(root, "proc/self/stat").and_then(|t| parse_self_stat(&t));
    let status = read(root, "proc/self/status").map(|t| parse_status(&t));
    let mut p = Process {
        pid: std::process::id(),
        open_fds: count_fds(root),
        ..Process::default()
    };
    let mut counters = ProcessCounters::default();
    if let Some(s) = stat {
        p.pid = s.pid;
        p.threads = s.threads;
        p.cpu_user_seconds = s.utime as f64 / clk_tck;
        p.cpu_system_seconds = s.stime as f64 / clk_tck;
        counters.cpu_ticks = s.utime.saturating_add(s.stime);
        p.uptime_seconds = match uptime {
            Some(up) => (up - s.starttime as f64 / clk_tck).max(0.0),
            None => 0.0,
        };
        let (base, secs) = match prev {
            Some((c, secs)) => (c.cpu_ticks, secs),
            None => (0, p.uptime_seconds),
        };
        let busy = counters.cpu_ticks.saturating_sub(base) as f64 / clk_tck;
        p.cpu_percent = if secs > 0.0 { busy / secs * 100.0 } else { 0.0 };
    }
    if let Some(st) = status {
        p.rss_bytes = st.rss_bytes;
        // status's Threads and stat's num_threads are the same number; status is kept when
        // stat is unreadable.
        if p.threads == 0 {
            p.threads = st.threads;
        }
        p.voluntary_ctxt_switches = st.voluntary;
        p.nonvoluntary_ctxt_switches = st.nonvoluntary;
    }
    if let Some((voluntary, nonvoluntary)) = thread_ctxt_switches(root) {
        p.voluntary_ctxt_switches = voluntary;
        p.nonvoluntary_ctxt_switches = nonvoluntary;
    }
    (p, counters)
}

/// Context switches summed over `/proc/self/task/*/status` (voluntary, nonvoluntary); `None`
/// when the task directory cannot be listed. A thread that exits takes its counts with it.
fn thread_ctxt_switches(root: &Path) -> Option<(u64, u64)> {
    let dir = std::fs::read_dir(root.join("proc/self/task")).ok()?;
    let mut sum = (0u64, 0u64);
    for entry in dir.flatten() {
        if let Ok(text) = std::fs::read_to_string(entry.path().join("status")) {
            let st = parse_status(&text);
            sum.0 = sum.0.saturating_add(st.voluntary);
            sum.1 = sum.1.saturating_add(st.nonvoluntary);
        }
    }
    Some(sum)
}

/// `pid (comm) state ppid ...`: comm may hold spaces and parentheses, so the fields are counted
/// from the last `)`. Field numbers as in proc(5): utime 14, stime 15, num_threads 20,
/// starttime 22.
fn parse_self_stat(text: &str) -> Option<SelfStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text.get(..open)?.trim().parse().ok()?;
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state).
    let field = |n: usize| -> Option<u64> { rest.get(n - 3)?.parse().ok() };
    Some(SelfStat {
        pid,
        utime: field(14)?,
        stime: field(15)?,
        threads: field(20)?,
        starttime: field(22)?,
    })
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Status {
    rss_bytes: u64,
    threads: u64,
    voluntary: u64,
    nonvoluntary: u64,
}

/// `Name:\tvalue [kB]` lines; unknown and malformed lines are skipped.
fn parse_status(text: &str) -> Status {
    let mut s = Status::default();
    for line in text.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let mut words = value.split_whitespace();
        let Some(Ok(n)) = words.next().map(str::parse::<u64>) else {
            continue;
        };
        match name {
            "VmRSS" => {
                s.rss_bytes = if words.next() == Some("kB") {
                    n.saturating_mul(1024)
                } else {
                    n
                }
            }
            "Threads" => s.threads = n,
            "voluntary_ctxt_switches" => s.voluntary = n,
            "nonvoluntary_ctxt_switches" => s.nonvoluntary = n,
            _ => {}
        }
    }
    s
}

fn count_fds(root: &Path) -> u64 {
    match std::fs::read_dir(root.join("proc/self/fd")) {
        Ok(dir) => dir.filter(|e| e.is_ok()).count() as u64,
        Err(_) => 0,
    }
}

/// Clock ticks per second for `/proc/*/stat` times; 100 (Linux's USER_HZ everywhere) if
/// sysconf fails.
pub(crate) fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value; it has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_stat_with_a_hostile_comm() {
        // comm "a) b (c" — spaces and parentheses; fields counted from the last ')'.
        let line = "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    250 75 0 0 20 0 7 0 1234 1000000 500 18446744073709551615";
        assert_eq!(
            parse_self_stat(line),
            Some(SelfStat {
                pid: 4242,
                utime: 250,
                stime: 75,
                threads: 7,
                starttime: 1234
            })
        );
        assert_eq!(parse_self_stat("garbage"), None);
        assert_eq!(parse_self_stat("12 (x) S 1 2"), None);
    }

    #[test]
    fn status_fields_and_malformed_lines() {
        let text = "Name:\tglassd\nVmRSS:\t  2048 kB\nThreads:\t9\nbroken line\nThreads\n\
                    voluntary_ctxt_switches:\t10\nnonvoluntary_ctxt_switches:\tx\n";
        assert_eq!(
            parse_status(text),
            Status {
                rss_bytes: 2048 * 1024,
                threads: 9,
                voluntary: 10,
                nonvoluntary: 0
            }
        );
    }

    #[test]
    fn context_switches_are_summed_over_threads() {
        let root = tempfile::tempdir().unwrap();
        let status = |v: u64, n: u64| {
            format!(
                "Name:\tglassd\nvoluntary_ctxt_switches:\t{v}\nnonvoluntary_ctxt_switches:\t{n}\n"
            )
        };
        let self_dir = root.path().join("proc/self");
        std::fs::create_dir_all(&self_dir).unwrap();
        std::fs::write(self_dir.join("status"), status(1, 2)).unwrap();
        for (tid, v, n) in [("100", 1, 2), ("101", 30, 40), ("102", 500, 600)] {
            let d = self_dir.join("task").join(tid);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("status"), status(v, n)).unwrap();
        }
        let (p, _) = read_process(root.path(), 100.0, None, None);
        assert_eq!(
            (p.voluntary_ctxt_switches, p.nonvoluntary_ctxt_switches),
            (531, 642)
        );
        // This process: its threads' sum is at least its main thread's.
        let (p, _) = read_process(Path::new("/"), 100.0, None, None);
        assert!(p.voluntary_ctxt_switches > 0);
    }

    #[test]
    fn clock_ticks_are_positive() {
        assert!(clock_ticks_per_second() > 0.0);
    }
}
