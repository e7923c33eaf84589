//! What the host and this process are doing, sampled from procfs and sysfs (Linux only): the
//! `HostStatus` and `ProcessStatus` of Glass's diagnostics stream
//! (`server/proto/glass/v1/diagnostics.proto`). Every type here carries exactly that message's
//! fields, with the same names, meanings and units (bytes, per second, percent 0–100,
//! milliseconds where a name says `_ms`), so mapping one to the other is one line per field.
//!
//! [`HostSampler::sample`] reads every file anew. Figures over a **window** (CPU percentages,
//! IOPS, bytes/s, await, util, swap and retransmit rates, the process's CPU percent) are deltas
//! since the previous call. The **first call's window is since boot** for the host (its counters
//! divided by `/proc/uptime`, as `iostat`'s and `mpstat`'s first report) **and since the process
//! started** for the process; its [`HostSample::window`] is zero, as `Snapshot.window_ms` is in a
//! stream's first snapshot. A device or core that was not in the previous sample also gets a
//! since-boot window.
//!
//! # CPU
//! From `/proc/stat`, in the buckets `top` and `mpstat` add up to 100%: `user` is user + nice
//! (guest time is inside both, as the kernel counts it), `system` is system + irq + softirq,
//! then `iowait`, `steal` and `idle`. The five sum to 100 whenever a tick elapsed.
//!
//! # Disks
//! For each watched directory: `stat` → `st_dev` → major:minor → the `/proc/diskstats` line of
//! that device (its name and counters) and `/sys/dev/block/MAJ:MIN` (its sysfs directory). A
//! **partition** (its sysfs directory has a `partition` file) reports its own diskstats line
//! under its own name (`vda1`) but its parent disk's queue settings (scheduler, rotational,
//! write cache live on the disk). A directory on **device-mapper** (LVM, dm-crypt) reports the
//! `dm-N` device, not the disks under it. A directory with **no block device** (major 0:
//! overlay, tmpfs, btrfs subvolumes, NFS, FUSE), that cannot be `stat`ed, or whose device is in
//! neither `/proc/diskstats` nor sysfs is **omitted**. A device in diskstats without sysfs keeps
//! its counters and neutral queue settings; one in sysfs without diskstats is named after its
//! sysfs directory, with zero counters.
//! Directories on one device make one [`Disk`] with every role, in the order given.
//! Rates follow `iostat -x`: IOPS are completed requests, bytes are sectors × 512, `r_await` and
//! `w_await` are milliseconds spent ÷ requests completed in the window, util is the busy time
//! (`io_ticks`) over the window (at most 100).
//!
//! # Neutral values
//! Nothing here panics or fails: a file that cannot be read, or a line that does not parse,
//! leaves its fields neutral and the rest is still read.
//!
//! | what | neutral |
//! |---|---|
//! | hostname, scheduler, write cache, THP, governor | `""` |
//! | kernel integers (`vm.*`, somaxconn) | `-1` |
//! | load averages | `-1.0` |
//! | [`Pressure`] (no PSI: kernel < 4.20 or `psi=0`) | `available = false`, zeros; a missing `full` line (`cpu` before 5.13) is 0 and still available |
//! | cores, memory, network, counters, process figures | `0` |
//! | [`CpuWindow`] | all five 0 (they no longer sum to 100) |
//! | a disk's queue settings (no sysfs) | `""`, `rotational = false` |
//! | rates when the window is zero | `0.0` |
//!
//! Files are read under a root directory (`/` normally; [`HostSampler::with_root`]) so tests and
//! containers with the host's `/proc` and `/sys` mounted elsewhere can point it at another tree.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use crate::process::Process;
use crate::process::{clock_ticks_per_second, read_process, ProcessCounters};

/// One reading of the host and of this process.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostSample {
    pub host: Host,
    pub process: Process,
    /// What the window figures cover: the time since the previous sample; zero in the first
    /// sample, whose windows are since boot (host) and since the process started (process).
    pub window: Duration,
}

/// `glass.v1.HostStatus`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Host {
    /// `/proc/sys/kernel/hostname`.
    pub hostname: String,
    /// The `cpuN` lines of `/proc/stat` (online cores).
    pub cores: u32,
    /// All cores together (`name` "cpu"), over the window.
    pub cpu: CpuWindow,
    /// One per core ("cpu0", ...), over the window.
    pub per_core: Vec<CpuWindow>,
    pub load1: f64,
    pub load5: f64,
    pub load15: f64,
    pub psi_cpu: Pressure,
    pub psi_io: Pressure,
    pub psi_memory: Pressure,
    pub memory: Memory,
    /// The block devices under the watched directories (see the module doc).
    pub disks: Vec<Disk>,
    pub network: Network,
    pub kernel: KernelSettings,
}

/// `glass.v1.CpuWindow`: percentages of the window, see the module doc for the buckets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuWindow {
    pub name: String,
    /// user + nice.
    pub user_percent: f64,
    /// system + irq + softirq.
    pub system_percent: f64,
    pub iowait_percent: f64,
    pub steal_percent: f64,
    pub idle_percent: f64,
}

/// `glass.v1.Pressure`: `/proc/pressure/*`, percentages of time stalled.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pressure {
    pub available: bool,
    pub some_avg10: f64,
    pub some_avg60: f64,
    pub full_avg10: f64,
    pub full_avg60: f64,
    /// Microseconds stalled since boot.
    pub some_total_us: u64,
    pub full_total_us: u64,
}

/// `glass.v1.Memory`: `/proc/meminfo` in bytes, swap rates from `/proc/vmstat`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Memory {
    pub total: u64,
    pub available: u64,
    pub dirty: u64,
    pub writeback: u64,
    pub swap_total: u64,
    pub swap_free: u64,
    /// Pages swapped in per second over the window (`pswpin`).
    pub swap_in_per_s: f64,
    /// Pages swapped out per second over the window (`pswpout`).
    pub swap_out_per_s: f64,
}

/// `glass.v1.Disk`: one block device and the roles of the directories on it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Disk {
    /// The kernel's name ("vda", "nvme0n1", "sda1", "dm-0").
    pub device: String,
    /// "data", "wal", ... in the order the directories were given.
    pub roles: Vec<String>,
    pub read_iops: f64,
    pub write_iops: f64,
    pub read_bytes_per_s: f64,
    pub write_bytes_per_s: f64,
    /// Milliseconds per read completed in the window (iostat's r_await); 0 with no reads.
    pub read_await_ms: f64,
    /// Milliseconds per write completed in the window (iostat's w_await); 0 with no writes.
    pub write_await_ms: f64,
    /// Busy time over the window, 0–100.
    pub util_percent: f64,
    /// Requests in flight now.
    pub in_flight: u64,
    /// `queue/scheduler`'s selected entry ("mq-deadline", "none").
    pub scheduler: String,
    /// `queue/rotational`.
    pub rotational: bool,
    /// `queue/write_cache`: "write back" or "write through".
    pub write_cache: String,
}

/// `glass.v1.Network`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Network {
    /// `/proc/net/snmp` Tcp RetransSegs, since boot.
    pub tcp_retrans_segs: u64,
    /// `/proc/net/snmp` Tcp OutSegs, since boot.
    pub tcp_out_segs: u64,
    /// Segments retransmitted per second over the window.
    pub retrans_per_s: f64,
    /// `/proc/net/dev`, summed over every interface but `lo`, since boot.
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_drops: u64,
    pub tx_drops: u64,
}

/// `glass.v1.KernelSettings`: the kernel settings that matter to etcd; -1 / "" when unreadable.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelSettings {
    pub vm_dirty_ratio: i64,
    pub vm_dirty_background_ratio: i64,
    pub vm_dirty_expire_centisecs: i64,
    pub vm_dirty_writeback_centisecs: i64,
    pub vm_swappiness: i64,
    /// `/sys/kernel/mm/transparent_hugepage/enabled`'s selected entry.
    pub transparent_hugepages: String,
    /// cpu0's `cpufreq/scaling_governor` ("" in most VMs, which have no cpufreq).
    pub cpu_governor: String,
    pub net_core_somaxconn: i64,
}

impl Default for KernelSettings {
    fn default() -> Self {
        KernelSettings {
            vm_dirty_ratio: -1,
            vm_dirty_background_ratio: -1,
            vm_dirty_expire_centisecs: -1,
            vm_dirty_writeback_centisecs: -1,
            vm_swappiness: -1,
            transparent_hugepages: String::new(),
            cpu_governor: String::new(),
            net_core_somaxconn: -1,
        }
    }
}

/// Samples the host and this process; keeps the previous sample's counters for the windows.
/// Plain data: one per consumer (each diagnostics stream has its own windows).
#[derive(Debug)]
pub struct HostSampler {
    /// `/` normally: every file is read under it.
    root: PathBuf,
    dirs: Vec<WatchedDir>,
    /// For `/proc/self/stat`'s times.
    clk_tck: f64,
    prev: Option<Counters>,
}

#[derive(Debug)]
struct WatchedDir {
    role: String,
    source: DirSource,
}

#[derive(Debug)]
enum DirSource {
    /// Stat'ed at every sample (a directory created later, or moved, is picked up).
    Path(PathBuf),
    /// A fixed major:minor, for tests over a fake tree.
    #[cfg(test)]
    Device(u32, u32),
}

/// The cumulative counters of one sample, the base of the next one's window.
#[derive(Debug, Clone)]
struct Counters {
    at: Instant,
    cpu: HashMap<String, CpuTimes>,
    pswpin: u64,
    pswpout: u64,
    tcp_retrans: u64,
    /// By major:minor.
    disks: HashMap<(u32, u32), DiskCounters>,
    process: ProcessCounters,
}

impl HostSampler {
    /// `dirs`: the directories whose block devices to watch, with a role each ("data", "wal").
    pub fn new(dirs: &[(&str, PathBuf)]) -> HostSampler {
        HostSampler::with_root("/", dirs)
    }

    /// As [`new`](Self::new), reading `/proc` and `/sys` under `root` instead of `/`. The
    /// directories themselves are still `stat`ed where they are.
    pub fn with_root(root: impl Into<PathBuf>, dirs: &[(&str, PathBuf)]) -> HostSampler {
        HostSampler {
            root: root.into(),
            dirs: dirs
                .iter()
                .map(|(role, p)| WatchedDir {
                    role: (*role).to_string(),
                    source: DirSource::Path(p.clone()),
                })
                .collect(),
            clk_tck: clock_ticks_per_second(),
            prev: None,
        }
    }

    /// Reads everything now; window figures are deltas since the previous call (the first
    /// call's: since boot, and since the process started; see the module doc).
    pub fn sample(&mut self) -> HostSample {
        self.sample_at(Instant::now())
    }

    /// As [`sample`](Self::sample), with the window ending at `now` (the window is the time
    /// between successive `now`s).
    pub fn sample_at(&mut self, now: Instant) -> HostSample {
        let root = self.root.as_path();
        let uptime = read(root, "proc/uptime").and_then(|t| first_f64(&t));
        let prev = self.prev.as_ref();
        let window = prev.map_or(Duration::ZERO, |p| now.saturating_duration_since(p.at));
        // Seconds of the window for counters that were in the previous sample; a counter seen
        // for the first time is averaged since boot.
        let secs = window.as_secs_f64();
        let boot_secs = uptime.unwrap_or(0.0);
        let host_secs = if prev.is_some() { secs } else { boot_secs };

        let mut host = Host {
            hostname: read(root, "proc/sys/kernel/hostname")
                .map(|t| t.trim().to_string())
                .unwrap_or_default(),
            ..Host::default()
        };

        // CPU.
        let cpu_now = read(root, "proc/stat")
            .map(|t| parse_proc_stat(&t))
            .unwrap_or_default();
        let mut cpu_map = HashMap::with_capacity(cpu_now.len());
        for (name, times) in cpu_now {
            let base = prev.and_then(|p| p.cpu.get(&name));
            let w = cpu_window(&name, &times, base);
            if name == "cpu" {
                host.cpu = w;
            } else {
                host.per_core.push(w);
            }
            cpu_map.insert(name, times);
        }
        host.cores = host.per_core.len() as u32;

        // Load.
        let loads = read(root, "proc/loadavg")
            .map(|t| {
                t.split_whitespace()
                    .take(3)
                    .map(|w| w.parse::<f64>().unwrap_or(-1.0))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let load = |i: usize| loads.get(i).copied().unwrap_or(-1.0);
        (host.load1, host.load5, host.load15) = (load(0), load(1), load(2));

        // Pressure.
        host.psi_cpu = parse_pressure(read(root, "proc/pressure/cpu").as_deref());
        host.psi_io = parse_pressure(read(root, "proc/pressure/io").as_deref());
        host.psi_memory = parse_pressure(read(root, "proc/pressure/memory").as_deref());

        // Memory.
        let meminfo = read(root, "proc/meminfo")
            .map(|t| parse_meminfo(&t))
            .unwrap_or_default();
        let mem = |k: &str| meminfo.get(k).copied().unwrap_or(0);
        let vmstat = read(root, "proc/vmstat")
            .map(|t| parse_name_values(&t))
            .unwrap_or_default();
        let pswpin = vmstat.get("pswpin").copied().unwrap_or(0);
        let pswpout = vmstat.get("pswpout").copied().unwrap_or(0);
        host.memory = Memory {
            total: mem("MemTotal"),
            available: mem("MemAvailable"),
            dirty: mem("Dirty"),
            writeback: mem("Writeback"),
            swap_total: mem("SwapTotal"),
            swap_free: mem("SwapFree"),
            swap_in_per_s: rate(
                pswpin.saturating_sub(prev.map_or(0, |p| p.pswpin)),
                host_secs,
            ),
            swap_out_per_s: rate(
                pswpout.saturating_sub(prev.map_or(0, |p| p.pswpout)),
                host_secs,
            ),
        };

        // Disks.
        let diskstats = read(root, "proc/diskstats")
            .map(|t| parse_diskstats(&t))
            .unwrap_or_default();
        let mut disk_map = HashMap::new();
        for (dev, roles) in self.devices() {
            let stats = diskstats.get(&dev);
            let sysfs = root.join(format!("sys/dev/block/{}:{}", dev.0, dev.1));
            let sysdir = std::fs::canonicalize(&sysfs).ok();
            let device = match (stats, &sysdir) {
                (Some((name, _)), _) => name.clone(),
                (None, Some(dir)) => dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                (None, None) => continue, // not a block device this kernel knows
            };
            let now_c = stats.map(|(_, c)| *c).unwrap_or_default();
            let (base, disk_secs) = match prev.and_then(|p| p.disks.get(&dev)) {
                Some(b) => (*b, secs),
                None => (DiskCounters::default(), boot_secs),
            };
            let mut disk = disk_window(device, roles, &now_c, &base, disk_secs);
            if let Some(dir) = sysdir {
                // A partition's queue settings are its disk's.
                let disk_dir = if dir.join("partition").exists() {
                    dir.parent().map(Path::to_path_buf).unwrap_or(dir)
                } else {
                    dir
                };
                let queue = disk_dir.join("queue");
                disk.scheduler = read_abs(&queue.join("scheduler"))
                    .map(|t| selected(&t))
                    .unwrap_or_default();
                disk.rotational =
                    read_abs(&queue.join("rotational")).is_some_and(|t| t.trim() == "1");
                disk.write_cache = read_abs(&queue.join("write_cache"))
                    .map(|t| t.trim().to_string())
                    .unwrap_or_default();
            }
            host.disks.push(disk);
            disk_map.insert(dev, now_c);
        }

        // Network.
        let tcp = read(root, "proc/net/snmp")
            .map(|t| parse_snmp_tcp(&t))
            .unwrap_or_default();
        let retrans = tcp.get("RetransSegs").copied().unwrap_or(0);
        let netdev = read(root, "proc/net/dev")
            .map(|t| parse_net_dev(&t))
            .unwrap_or_default();
        host.network = Network {
            tcp_retrans_segs: retrans,
            tcp_out_segs: tcp.get("OutSegs").copied().unwrap_or(0),
            retrans_per_s: rate(
                retrans.saturating_sub(prev.map_or(0, |p| p.tcp_retrans)),
                host_secs,
            ),
            ..netdev
        };

        // Kernel settings.
        let int = |p: &str| {
            read(root, p)
                .and_then(|t| t.trim().parse::<i64>().ok())
                .unwrap_or(-1)
        };
        let sel = |p: &str| read(root, p).map(|t| selected(&t)).unwrap_or_default();
        host.kernel = KernelSettings {
            vm_dirty_ratio: int("proc/sys/vm/dirty_ratio"),
            vm_dirty_background_ratio: int("proc/sys/vm/dirty_background_ratio"),
            vm_dirty_expire_centisecs: int("proc/sys/vm/dirty_expire_centisecs"),
            vm_dirty_writeback_centisecs: int("proc/sys/vm/dirty_writeback_centisecs"),
            vm_swappiness: int("proc/sys/vm/swappiness"),
            transparent_hugepages: sel("sys/kernel/mm/transparent_hugepage/enabled"),
            cpu_governor: sel("sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
            net_core_somaxconn: int("proc/sys/net/core/somaxconn"),
        };

        // This process.
        let (process, process_counters) =
            read_process(root, self.clk_tck, uptime, prev.map(|p| (p.process, secs)));

        self.prev = Some(Counters {
            at: now,
            cpu: cpu_map,
            pswpin,
            pswpout,
            tcp_retrans: retrans,
            disks: disk_map,
            process: process_counters,
        });
        HostSample {
            host,
            process,
            window,
        }
    }

    /// The watched directories' devices (major, minor) with their roles, in the order given;
    /// directories without a block device are left out.
    fn devices(&self) -> Vec<((u32, u32), Vec<String>)> {
        let mut out: Vec<((u32, u32), Vec<String>)> = Vec::new();
        for d in &self.dirs {
            let dev = match &d.source {
                DirSource::Path(p) => match std::fs::metadata(p) {
                    Ok(m) => {
                        let dev = std::os::unix::fs::MetadataExt::dev(&m);
                        (libc::major(dev), libc::minor(dev))
                    }
                    Err(_) => continue,
                },
                #[cfg(test)]
                DirSource::Device(major, minor) => (*major, *minor),
            };
            if dev.0 == 0 {
                continue; // overlay, tmpfs, btrfs, NFS, FUSE: no block device
            }
            match out.iter_mut().find(|(k, _)| *k == dev) {
                Some((_, roles)) => {
                    if !roles.contains(&d.role) {
                        roles.push(d.role.clone());
                    }
                }
                None => out.push((dev, vec![d.role.clone()])),
            }
        }
        out
    }

    #[cfg(test)]
    fn watch_device(&mut self, role: &str, major: u32, minor: u32) {
        self.dirs.push(WatchedDir {
            role: role.to_string(),
            source: DirSource::Device(major, minor),
        });
    }
}

/// Reads `rel` under `root` as text; `None` when it cannot be read.
pub(crate) fn read(root: &Path, rel: &str) -> Option<String> {
    read_abs(&root.join(rel))
}

fn read_abs(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn first_f64(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// `n / secs`, 0 for an empty window.
fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

/// The bracketed entry of a sysfs choice list ("none [mq-deadline] kyber" → "mq-deadline"),
/// or the whole trimmed text when there are no brackets (a scaling governor).
fn selected(text: &str) -> String {
    match (text.find('['), text.find(']')) {
        (Some(a), Some(b)) if a < b => text.get(a + 1..b).unwrap_or_default().to_string(),
        _ => text.trim().to_string(),
    }
}

/// Clock ticks of one `/proc/stat` cpu line.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct CpuTimes {
    user: u64,
    nice: u64,
    system: u64,
    idle: u64,
    iowait: u64,
    irq: u64,
    softirq: u64,
    steal: u64,
}

/// The `cpu` and `cpuN` lines in file order; a line with fewer than four numbers is skipped
/// (later columns missing on old kernels count 0).
fn parse_proc_stat(text: &str) -> Vec<(String, CpuTimes)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let Some(name) = words.next() else { continue };
        let Some(suffix) = name.strip_prefix("cpu") else {
            continue;
        };
        if !suffix.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let nums: Vec<u64> = words.map_while(|w| w.parse().ok()).collect();
        if nums.len() < 4 {
            continue;
        }
        let n = |i: usize| nums.get(i).copied().unwrap_or(0);
        out.push((
            name.to_string(),
            CpuTimes {
                user: n(0),
                nice: n(1),
                system: n(2),
                idle: n(3),
                iowait: n(4),
                irq: n(5),
                softirq: n(6),
                steal: n(7),
            },
        ));
    }
    out
}

fn cpu_window(name: &str, now: &CpuTimes, base: Option<&CpuTimes>) -> CpuWindow {
    let b = base.copied().unwrap_or_default();
    // idle and iowait can step back on some kernels (NO_HZ accounting): saturate at 0.
    let d = |n: u64, p: u64| n.saturating_sub(p) as f64;
    let user = d(now.user, b.user) + d(now.nice, b.nice);
    let system = d(now.system, b.system) + d(now.irq, b.irq) + d(now.softirq, b.softirq);
    let iowait = d(now.iowait, b.iowait);
    let steal = d(now.steal, b.steal);
    let idle = d(now.idle, b.idle);
    let total = user + system + iowait + steal + idle;
    let pct = |x: f64| if total > 0.0 { x / total * 100.0 } else { 0.0 };
    CpuWindow {
        name: name.to_string(),
        user_percent: pct(user),
        system_percent: pct(system),
        iowait_percent: pct(iowait),
        steal_percent: pct(steal),
        idle_percent: pct(idle),
    }
}

/// `some avg10=1.16 avg60=1.57 avg300=5.45 total=3804631401` and the same for `full`.
fn parse_pressure(text: Option<&str>) -> Pressure {
    let mut p = Pressure::default();
    let Some(text) = text else { return p };
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let kind = words.next();
        let (mut avg10, mut avg60, mut total) = (None, None, None);
        for w in words {
            match w.split_once('=') {
                Some(("avg10", v)) => avg10 = v.parse::<f64>().ok(),
                Some(("avg60", v)) => avg60 = v.parse::<f64>().ok(),
                Some(("total", v)) => total = v.parse::<u64>().ok(),
                _ => {}
            }
        }
        let (Some(avg10), Some(avg60), Some(total)) = (avg10, avg60, total) else {
            continue;
        };
        match kind {
            Some("some") => {
                p.available = true;
                (p.some_avg10, p.some_avg60, p.some_total_us) = (avg10, avg60, total);
            }
            Some("full") => (p.full_avg10, p.full_avg60, p.full_total_us) = (avg10, avg60, total),
            _ => {}
        }
    }
    p
}

/// `/proc/meminfo` in bytes (`kB` values × 1024; values without a unit as they are).
fn parse_meminfo(text: &str) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let Some(Ok(n)) = words.next().map(str::parse::<u64>) else {
            continue;
        };
        let bytes = if words.next() == Some("kB") {
            n.saturating_mul(1024)
        } else {
            n
        };
        out.insert(name.trim().to_string(), bytes);
    }
    out
}

/// `name value` lines (`/proc/vmstat`).
fn parse_name_values(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.parse().ok()?))
        })
        .collect()
}

/// The `/proc/diskstats` counters Glass uses (proc(5) field numbers after major, minor, name).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct DiskCounters {
    /// 1: reads completed.
    reads: u64,
    /// 3: sectors read (512 bytes each, whatever the device's sector size).
    read_sectors: u64,
    /// 4: milliseconds spent reading.
    read_ms: u64,
    /// 5: writes completed.
    writes: u64,
    /// 7: sectors written.
    write_sectors: u64,
    /// 8: milliseconds spent writing.
    write_ms: u64,
    /// 9: I/Os in progress now.
    in_flight: u64,
    /// 10: milliseconds with I/O in progress (`io_ticks`).
    io_ticks: u64,
}

/// By major:minor: the device's name and counters. Lines with fewer than ten counters (the
/// four-field partition lines of kernels before 2.6.25) are skipped.
fn parse_diskstats(text: &str) -> HashMap<(u32, u32), (String, DiskCounters)> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        let (Some(Ok(major)), Some(Ok(minor)), Some(name)) = (
            w.first().map(|s| s.parse::<u32>()),
            w.get(1).map(|s| s.parse::<u32>()),
            w.get(2),
        ) else {
            continue;
        };
        let nums: Option<Vec<u64>> = w.iter().skip(3).take(10).map(|s| s.parse().ok()).collect();
        let Some(f) = nums.filter(|n| n.len() == 10) else {
            continue;
        };
        out.insert(
            (major, minor),
            (
                (*name).to_string(),
                DiskCounters {
                    reads: f[0],
                    read_sectors: f[2],
                    read_ms: f[3],
                    writes: f[4],
                    write_sectors: f[6],
                    write_ms: f[7],
                    in_flight: f[8],
                    io_ticks: f[9],
                },
            ),
        );
    }
    out
}

fn disk_window(
    device: String,
    roles: Vec<String>,
    now: &DiskCounters,
    base: &DiskCounters,
    secs: f64,
) -> Disk {
    let d = |n: u64, p: u64| n.saturating_sub(p);
    let reads = d(now.reads, base.reads);
    let writes = d(now.writes, base.writes);
    let per = |ms: u64, ios: u64| if ios > 0 { ms as f64 / ios as f64 } else { 0.0 };
    let busy_ms = d(now.io_ticks, base.io_ticks) as f64;
    Disk {
        device,
        roles,
        read_iops: rate(reads, secs),
        write_iops: rate(writes, secs),
        read_bytes_per_s: rate(
            d(now.read_sectors, base.read_sectors).saturating_mul(512),
            secs,
        ),
        write_bytes_per_s: rate(
            d(now.write_sectors, base.write_sectors).saturating_mul(512),
            secs,
        ),
        read_await_ms: per(d(now.read_ms, base.read_ms), reads),
        write_await_ms: per(d(now.write_ms, base.write_ms), writes),
        util_percent: if secs > 0.0 {
            (busy_ms / (secs * 1000.0) * 100.0).min(100.0)
        } else {
            0.0
        },
        in_flight: now.in_flight,
        ..Disk::default()
    }
}

/// `/proc/net/snmp`'s `Tcp:` header line zipped with its values line.
fn parse_snmp_tcp(text: &str) -> HashMap<String, u64> {
    let mut tcp = text.lines().filter(|l| l.starts_with("Tcp:"));
    let (Some(names), Some(values)) = (tcp.next(), tcp.next()) else {
        return HashMap::new();
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .skip(1)
        .filter_map(|(n, v)| Some((n.to_string(), v.parse().ok()?)))
        .collect()
}

/// `/proc/net/dev` errors and drops summed over every interface but `lo`.
fn parse_net_dev(text: &str) -> Network {
    let mut n = Network::default();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name == "lo" || name.contains('|') {
            continue;
        }
        let f: Option<Vec<u64>> = rest.split_whitespace().map(|w| w.parse().ok()).collect();
        let Some(f) = f.filter(|f| f.len() >= 12) else {
            continue;
        };
        // receive: bytes packets errs drop fifo frame compressed multicast; then transmit:
        // bytes packets errs drop ...
        n.rx_errors = n.rx_errors.saturating_add(f[2]);
        n.rx_drops = n.rx_drops.saturating_add(f[3]);
        n.tx_errors = n.tx_errors.saturating_add(f[10]);
        n.tx_drops = n.tx_drops.saturating_add(f[11]);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake root: `/proc` and `/sys` files written by the test.
    struct Tree(tempfile::TempDir);

    impl Tree {
        fn new() -> Tree {
            Tree(tempfile::tempdir().expect("tempdir"))
        }
        fn path(&self) -> &Path {
            self.0.path()
        }
        fn put(&self, rel: &str, text: &str) {
            let p = self.path().join(rel);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, text).expect("write");
        }
        fn link(&self, rel: &str, target: &str) {
            let p = self.path().join(rel);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::os::unix::fs::symlink(target, p).expect("symlink");
        }
    }

    #[track_caller]
    fn close(got: f64, want: f64) {
        assert!((got - want).abs() < 1e-9, "got {got}, want {want}");
    }

    /// A sampler over `tree` with a 100 Hz clock (the fake stat's ticks).
    fn fake_sampler(tree: &Tree) -> HostSampler {
        let mut s = HostSampler::with_root(tree.path(), &[]);
        s.clk_tck = 100.0;
        s
    }

    /// The files that do not change between the two samples.
    fn static_files(t: &Tree) {
        t.put("proc/sys/kernel/hostname", "fakehost\n");
        t.put("proc/loadavg", "0.50 1.04 1.70 3/92 27214\n");
        t.put(
            "proc/pressure/cpu",
            "some avg10=1.16 avg60=1.57 avg300=5.45 total=3804631401\n",
        );
        t.put(
            "proc/pressure/io",
            "some avg10=9.85 avg60=2.19 avg300=1.73 total=486336154\n\
             full avg10=9.50 avg60=2.16 avg300=1.50 total=134293922\n",
        );
        // no proc/pressure/memory
        t.put(
            "proc/meminfo",
            "MemTotal:       24684096 kB\nMemFree:  100 kB\nMemAvailable:   24191980 kB\n\
             Dirty:              2048 kB\nWriteback:            4 kB\nSwapTotal:  1000 kB\n\
             SwapFree:    600 kB\nHugePages_Total:       0\nbroken\n",
        );
        t.put("proc/sys/vm/dirty_ratio", "20\n");
        t.put("proc/sys/vm/dirty_background_ratio", "10\n");
        t.put("proc/sys/vm/dirty_expire_centisecs", "3000\n");
        t.put("proc/sys/vm/dirty_writeback_centisecs", "500\n");
        t.put("proc/sys/vm/swappiness", "sixty\n"); // malformed → -1
        t.put(
            "sys/kernel/mm/transparent_hugepage/enabled",
            "always [madvise] never\n",
        );
        t.put(
            "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor",
            "performance\n",
        );
        t.put("proc/sys/net/core/somaxconn", "4096\n");
        t.put(
            "proc/net/dev",
            "Inter-|   Receive                                                |  Transmit\n \
             face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
             lo: 100 10 7 7 0 0 0 0 100 10 7 7 0 0 0 0\n  \
             eth0: 387106234   16321    1    2    0     0          0         0   922881    9805    3    4    0     0       0          0\n  \
             eth1: 5 5 10 20 0 0 0 0 5 5 30 40 0 0 0 0\n  \
             bad0: 1 2 x\n",
        );
        // A partitioned disk vdb (252:16, vdb1 = 252:17) and a disk vdc (252:32) with no sysfs.
        let vdb = "sys/devices/virtual/block/vdb";
        t.put(
            &format!("{vdb}/queue/scheduler"),
            "none [mq-deadline] kyber bfq\n",
        );
        t.put(&format!("{vdb}/queue/rotational"), "1\n");
        t.put(&format!("{vdb}/queue/write_cache"), "write through\n");
        t.put(&format!("{vdb}/vdb1/partition"), "1\n");
        // Not in a real kernel: proves the partition's settings come from its disk.
        t.put(&format!("{vdb}/vdb1/queue/scheduler"), "[wrong]\n");
        t.link("sys/dev/block/252:16", "../../devices/virtual/block/vdb");
        t.link(
            "sys/dev/block/252:17",
            "../../devices/virtual/block/vdb/vdb1",
        );
    }

    fn first_files(t: &Tree) {
        t.put("proc/uptime", "1000.00 1900.00\n");
        t.put(
            "proc/stat",
            "cpu  1000 200 300 7000 400 50 50 0 0 0\n\
             cpu0 500 100 150 3500 200 25 25 0 0 0\n\
             cpu1 500 100 150 3500 200 25 25 0 0 0\n\
             intr 1 2 3\nctxt 49245667\ncpufoo 1 2 3 4\ncpu2 1 2\n",
        );
        t.put("proc/vmstat", "nr_free_pages 5\npswpin 100\npswpout 200\n");
        t.put(
            "proc/diskstats",
            "   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n \
             252      16 vdb 9 9 9 9 9 9 9 9 9 9 9 9 9 9 9 9 9\n \
             252      17 vdb1 100 0 800 50 200 0 1600 400 0 300 450 0 0 0 0 0 0\n \
             252      32 vdc 10 0 80 20 0 0 0 0 0 100 120\n \
             252      33 short 1 2 3 4\n",
        );
        t.put(
            "proc/net/snmp",
            "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
             Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors\n\
             Tcp: 1 200 120000 -1 11781 10930 795 3678 0 11845438 1000 10 0 2946 0\n",
        );
        t.put(
            "proc/self/stat",
            "77 (glass d) S 1 77 77 0 -1 4194560 100 0 0 0 300 100 0 0 20 0 5 0 50000 1000 256\n",
        );
        t.put(
            "proc/self/status",
            "Name:\tglassd\nVmRSS:\t    1024 kB\nThreads:\t5\n\
             voluntary_ctxt_switches:\t10\nnonvoluntary_ctxt_switches:\t2\n",
        );
        for fd in ["0", "1", "2", "3"] {
            t.put(&format!("proc/self/fd/{fd}"), "");
        }
    }

    /// Two seconds later.
    fn second_files(t: &Tree) {
        t.put("proc/uptime", "1002.00 1903.00\n");
        // cpu: user +300, nice +100, system +50, idle +400, iowait +50, irq +25, softirq +25,
        // steal +50 = 1000 ticks. cpu0: user +200, system +100, idle +150, iowait +50 = 500.
        // cpu1: idle steps back (NO_HZ), user +100 = 100.
        t.put(
            "proc/stat",
            "cpu  1300 300 350 7400 450 75 75 50 0 0\n\
             cpu0 700 100 250 3650 250 25 25 0 0 0\n\
             cpu1 600 100 150 3400 200 25 25 0 0 0\n",
        );
        t.put("proc/vmstat", "pswpin 300\npswpout 260\n");
        // vdb1: reads +40 (+3200 sectors, +200 ms), writes +400 (+8000 sectors, +800 ms),
        // 3 in flight, io_ticks +1000 ms. vdc: no change.
        t.put(
            "proc/diskstats",
            " 252      16 vdb 9 9 9 9 9 9 9 9 9 9 9 9 9 9 9 9 9\n \
             252      17 vdb1 140 0 4000 250 600 0 9600 1200 3 1300 2000 0 0 0 0 0 0\n \
             252      32 vdc 10 0 80 20 0 0 0 0 0 100 120\n",
        );
        t.put(
            "proc/net/snmp",
            "Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors\n\
             Tcp: 1 200 120000 -1 11781 10930 795 3678 0 11845438 3000 30 0 2946 0\n",
        );
        t.put(
            "proc/self/stat",
            "77 (glass d) S 1 77 77 0 -1 4194560 100 0 0 0 400 150 0 0 20 0 6 0 50000 1000 256\n",
        );
        t.put(
            "proc/self/status",
            "Name:\tglassd\nVmRSS:\t    2048 kB\nThreads:\t6\n\
             voluntary_ctxt_switches:\t15\nnonvoluntary_ctxt_switches:\t3\n",
        );
    }

    #[test]
    fn two_samples_over_a_fake_tree() {
        let t = Tree::new();
        static_files(&t);
        first_files(&t);
        let mut s = fake_sampler(&t);
        s.watch_device("data", 252, 17);
        s.watch_device("wal", 252, 17);
        s.watch_device("tmpfs", 0, 42); // no block device: omitted
        s.watch_device("gone", 9, 9); // neither in diskstats nor in sysfs: omitted
        s.watch_device("other", 252, 32); // in diskstats, no sysfs

        let t0 = Instant::now();
        let a = s.sample_at(t0);
        assert_eq!(a.window, Duration::ZERO);
        // First window: since boot (uptime 1000 s). cpu total = 1200 + 400 + 400 + 0 + 7000.
        close(a.host.cpu.user_percent, 1200.0 / 9000.0 * 100.0);
        close(a.host.cpu.idle_percent, 7000.0 / 9000.0 * 100.0);
        close(a.host.memory.swap_in_per_s, 0.1);
        close(a.host.memory.swap_out_per_s, 0.2);
        close(a.host.network.retrans_per_s, 0.01);
        let d = &a.host.disks[0];
        close(d.read_iops, 0.1);
        close(d.write_iops, 0.2);
        close(d.read_bytes_per_s, 800.0 * 512.0 / 1000.0);
        close(d.read_await_ms, 0.5);
        close(d.write_await_ms, 2.0);
        close(d.util_percent, 300.0 / 1_000_000.0 * 100.0);
        // The process: 4 cpu seconds over 500 s of life (started 500 s after boot).
        close(a.process.uptime_seconds, 500.0);
        close(a.process.cpu_percent, 4.0 / 500.0 * 100.0);

        second_files(&t);
        let b = s.sample_at(t0 + Duration::from_secs(2));
        assert_eq!(b.window, Duration::from_secs(2));
        let h = &b.host;
        assert_eq!(h.hostname, "fakehost");
        assert_eq!(h.cores, 2);
        assert_eq!(
            h.cpu,
            CpuWindow {
                name: "cpu".into(),
                user_percent: 40.0,
                system_percent: 10.0,
                iowait_percent: 5.0,
                steal_percent: 5.0,
                idle_percent: 40.0,
            }
        );
        assert_eq!(
            h.per_core,
            vec![
                CpuWindow {
                    name: "cpu0".into(),
                    user_percent: 40.0,
                    system_percent: 20.0,
                    iowait_percent: 10.0,
                    steal_percent: 0.0,
                    idle_percent: 30.0,
                },
                CpuWindow {
                    name: "cpu1".into(),
                    user_percent: 100.0,
                    ..CpuWindow::default()
                },
            ]
        );
        assert_eq!((h.load1, h.load5, h.load15), (0.50, 1.04, 1.70));
        assert_eq!(
            h.psi_cpu,
            Pressure {
                available: true,
                some_avg10: 1.16,
                some_avg60: 1.57,
                some_total_us: 3804631401,
                ..Pressure::default()
            }
        );
        assert_eq!(
            h.psi_io,
            Pressure {
                available: true,
                some_avg10: 9.85,
                some_avg60: 2.19,
                full_avg10: 9.50,
                full_avg60: 2.16,
                some_total_us: 486336154,
                full_total_us: 134293922,
            }
        );
        assert_eq!(h.psi_memory, Pressure::default());
        assert_eq!(
            h.memory,
            Memory {
                total: 24684096 * 1024,
                available: 24191980 * 1024,
                dirty: 2048 * 1024,
                writeback: 4 * 1024,
                swap_total: 1000 * 1024,
                swap_free: 600 * 1024,
                swap_in_per_s: 100.0,
                swap_out_per_s: 30.0,
            }
        );
        assert_eq!(
            h.disks,
            vec![
                Disk {
                    device: "vdb1".into(),
                    roles: vec!["data".into(), "wal".into()],
                    read_iops: 20.0,
                    write_iops: 200.0,
                    read_bytes_per_s: 3200.0 * 512.0 / 2.0,
                    write_bytes_per_s: 8000.0 * 512.0 / 2.0,
                    read_await_ms: 5.0,
                    write_await_ms: 2.0,
                    util_percent: 50.0,
                    in_flight: 3,
                    scheduler: "mq-deadline".into(),
                    rotational: true,
                    write_cache: "write through".into(),
                },
                Disk {
                    device: "vdc".into(),
                    roles: vec!["other".into()],
                    ..Disk::default()
                },
            ]
        );
        assert_eq!(
            h.network,
            Network {
                tcp_retrans_segs: 30,
                tcp_out_segs: 3000,
                retrans_per_s: 10.0,
                rx_errors: 11,
                tx_errors: 33,
                rx_drops: 22,
                tx_drops: 44,
            }
        );
        assert_eq!(
            h.kernel,
            KernelSettings {
                vm_dirty_ratio: 20,
                vm_dirty_background_ratio: 10,
                vm_dirty_expire_centisecs: 3000,
                vm_dirty_writeback_centisecs: 500,
                vm_swappiness: -1,
                transparent_hugepages: "madvise".into(),
                cpu_governor: "performance".into(),
                net_core_somaxconn: 4096,
            }
        );
        assert_eq!(
            b.process,
            Process {
                pid: 77,
                // +150 ticks = 1.5 s of CPU over 2 s.
                cpu_percent: 75.0,
                cpu_user_seconds: 4.0,
                cpu_system_seconds: 1.5,
                rss_bytes: 2048 * 1024,
                threads: 6,
                open_fds: 4,
                voluntary_ctxt_switches: 15,
                nonvoluntary_ctxt_switches: 3,
                uptime_seconds: 502.0,
            }
        );

        // A third sample at the same instant: an empty window, every rate 0.
        let c = s.sample_at(t0 + Duration::from_secs(2));
        assert_eq!(c.window, Duration::ZERO);
        assert_eq!(c.host.disks[0].write_iops, 0.0);
        assert_eq!(c.host.disks[0].util_percent, 0.0);
        assert_eq!(c.host.memory.swap_in_per_s, 0.0);
        assert_eq!(c.process.cpu_percent, 0.0);
    }

    #[test]
    fn counters_going_back_give_zero_not_a_panic() {
        let t = Tree::new();
        static_files(&t);
        second_files(&t);
        let mut s = fake_sampler(&t);
        s.watch_device("data", 252, 17);
        let t0 = Instant::now();
        s.sample_at(t0);
        first_files(&t); // every counter smaller
        let b = s.sample_at(t0 + Duration::from_secs(1));
        assert_eq!(b.host.disks[0].write_iops, 0.0);
        assert_eq!(b.host.disks[0].write_await_ms, 0.0);
        assert_eq!(b.host.memory.swap_in_per_s, 0.0);
        assert_eq!(b.host.network.retrans_per_s, 0.0);
        assert_eq!(b.process.cpu_percent, 0.0);
        assert_eq!(b.host.cpu.idle_percent, 0.0);
    }

    #[test]
    fn an_empty_tree_gives_neutral_values() {
        let t = Tree::new();
        let mut s = fake_sampler(&t);
        s.watch_device("data", 8, 0);
        let t0 = Instant::now();
        s.sample_at(t0);
        let b = s.sample_at(t0 + Duration::from_secs(1));
        let want = HostSample {
            host: Host {
                load1: -1.0,
                load5: -1.0,
                load15: -1.0,
                ..Host::default()
            },
            process: Process {
                pid: std::process::id(),
                ..Process::default()
            },
            window: Duration::from_secs(1),
        };
        assert_eq!(b, want);
        assert_eq!(b.host.kernel.vm_dirty_ratio, -1);
        assert_eq!(b.host.cpu.name, "");
    }

    #[test]
    fn pressure_without_a_full_line_is_available() {
        let p = parse_pressure(Some("some avg10=0.00 avg60=0.50 avg300=0.00 total=12\n"));
        assert!(p.available);
        assert_eq!(
            (p.some_avg60, p.some_total_us, p.full_total_us),
            (0.5, 12, 0)
        );
        assert!(!parse_pressure(Some("garbage\nsome avg10=x\n")).available);
        assert!(!parse_pressure(None).available);
    }

    #[test]
    fn selected_entries() {
        assert_eq!(selected("none [mq-deadline] kyber bfq\n"), "mq-deadline");
        assert_eq!(selected("[none] mq-deadline\n"), "none");
        assert_eq!(selected("performance\n"), "performance");
        assert_eq!(selected("a ] b [ c"), "a ] b [ c");
    }

    // ---- On this machine ----

    fn proc_file(p: &str) -> String {
        std::fs::read_to_string(p).unwrap_or_default()
    }

    /// The kernel's name for the device holding `dir`, found independently of the sampler;
    /// `None` when the directory has no block device (major 0).
    fn device_of(dir: &Path) -> Option<String> {
        let dev = std::os::unix::fs::MetadataExt::dev(&std::fs::metadata(dir).ok()?);
        let (major, minor) = (libc::major(dev), libc::minor(dev));
        if major == 0 {
            return None;
        }
        let uevent = proc_file(&format!("/sys/dev/block/{major}:{minor}/uevent"));
        uevent
            .lines()
            .find_map(|l| l.strip_prefix("DEVNAME="))
            .map(str::to_string)
    }

    #[test]
    fn real_host_matches_proc() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = HostSampler::new(&[
            ("data", dir.path().to_path_buf()),
            ("wal", dir.path().join(".")),
        ]);
        let a = s.sample();
        assert_eq!(a.window, Duration::ZERO);
        let h = &a.host;

        let mem_total = proc_file("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .expect("MemTotal");
        assert_eq!(h.memory.total, mem_total * 1024);
        let cores = proc_file("/proc/stat")
            .lines()
            .filter(|l| {
                l.split_whitespace().next().is_some_and(|w| {
                    w.strip_prefix("cpu")
                        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
                })
            })
            .count();
        assert_eq!(h.cores as usize, cores);
        assert_eq!(h.per_core.len(), cores);
        let sum = h.cpu.user_percent
            + h.cpu.system_percent
            + h.cpu.iowait_percent
            + h.cpu.steal_percent
            + h.cpu.idle_percent;
        assert!((sum - 100.0).abs() < 1e-6, "cpu buckets sum to {sum}");
        assert_eq!(h.hostname, proc_file("/proc/sys/kernel/hostname").trim());
        assert!(h.load1 >= 0.0);

        let int = |p: &str| proc_file(p).trim().parse::<i64>().unwrap_or(-1);
        let sel = |p: &str| {
            let t = proc_file(p);
            match (t.find('['), t.find(']')) {
                (Some(a), Some(b)) => t[a + 1..b].to_string(),
                _ => t.trim().to_string(),
            }
        };
        assert_eq!(
            h.kernel,
            KernelSettings {
                vm_dirty_ratio: int("/proc/sys/vm/dirty_ratio"),
                vm_dirty_background_ratio: int("/proc/sys/vm/dirty_background_ratio"),
                vm_dirty_expire_centisecs: int("/proc/sys/vm/dirty_expire_centisecs"),
                vm_dirty_writeback_centisecs: int("/proc/sys/vm/dirty_writeback_centisecs"),
                vm_swappiness: int("/proc/sys/vm/swappiness"),
                transparent_hugepages: sel("/sys/kernel/mm/transparent_hugepage/enabled"),
                cpu_governor: sel("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
                net_core_somaxconn: int("/proc/sys/net/core/somaxconn"),
            }
        );
        assert!(h.kernel.vm_dirty_ratio >= 0);

        // Both roles on the temp dir's device: one Disk.
        match device_of(dir.path()) {
            Some(name) => {
                assert_eq!(h.disks.len(), 1, "{:?}", h.disks);
                assert_eq!(h.disks[0].device, name);
                assert_eq!(h.disks[0].roles, ["data", "wal"]);
                // This machine: the root file system is ext4 on /dev/vda, /tmp on it.
                if proc_file("/proc/mounts").starts_with("/dev/vda / ")
                    && dir.path().starts_with("/tmp")
                {
                    assert_eq!(name, "vda");
                    assert_eq!(h.disks[0].scheduler, sel("/sys/block/vda/queue/scheduler"));
                }
            }
            None => assert!(h.disks.is_empty(), "{:?}", h.disks),
        }

        let p = &a.process;
        assert_eq!(p.pid, std::process::id());
        assert!(
            (1 << 20..4 << 30).contains(&p.rss_bytes),
            "rss {}",
            p.rss_bytes
        );
        assert!(p.threads >= 1);
        assert!(p.open_fds >= 3);
        assert!(p.uptime_seconds >= 0.0 && p.uptime_seconds < 86_400.0);
        // A young test process may not have run a whole clock tick yet.
        assert!(p.cpu_user_seconds >= 0.0 && p.cpu_system_seconds >= 0.0);
        assert!(p.voluntary_ctxt_switches + p.nonvoluntary_ctxt_switches > 0);
    }

    #[test]
    fn fsync_shows_as_disk_writes() {
        use std::io::Write;
        let dir = tempfile::tempdir().expect("tempdir");
        if device_of(dir.path()).is_none() {
            return; // the temp dir is on tmpfs or overlay: no block device to watch
        }
        let mut s = HostSampler::new(&[("wal", dir.path().to_path_buf())]);
        s.sample();
        let mut f = std::fs::File::create(dir.path().join("wal")).expect("create");
        let block = vec![0x5au8; 1 << 20];
        for _ in 0..8 {
            f.write_all(&block).expect("write");
        }
        f.sync_all().expect("fsync");
        // A few milliseconds of window at least.
        std::thread::sleep(Duration::from_millis(20));
        let b = s.sample();
        assert!(b.window > Duration::ZERO);
        let d = &b.host.disks[0];
        assert!(d.write_bytes_per_s > 0.0, "{d:?}");
        assert!(d.write_iops > 0.0, "{d:?}");
        assert!(d.util_percent <= 100.0);
    }
}
