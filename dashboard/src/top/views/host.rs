//! Host: the selected member's machine — CPU (total and per core), PSI, memory and dirty
//! pages, the process, network retransmits, the data and WAL devices, and the kernel settings
//! etcd is sensitive to, each checked against guidance (the source is named per row: `etcd`
//! for etcd's own tuning and hardware guides, `glass` for Glass's rule of thumb).

use glassd::pb::glass::v1::{Disk, HostStatus, KernelSettings, Pressure, ProcessStatus};
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::{age, block, bytes, header_style};
use crate::top::app::App;

/// One kernel setting checked against guidance.
pub struct Check {
    pub setting: &'static str,
    pub value: String,
    pub guidance: &'static str,
    pub source: &'static str,
    /// None: unreadable or no opinion.
    pub ok: Option<bool>,
}

fn int(v: i64) -> String {
    if v < 0 {
        "?".into()
    } else {
        v.to_string()
    }
}

fn known(v: i64, ok: impl Fn(i64) -> bool) -> Option<bool> {
    (v >= 0).then(|| ok(v))
}

/// The checks, in display order.
pub fn checks(k: &KernelSettings, disks: &[Disk]) -> Vec<Check> {
    let mut c = vec![
        Check {
            setting: "cpu governor",
            value: if k.cpu_governor.is_empty() {
                "?".into()
            } else {
                k.cpu_governor.clone()
            },
            guidance: "performance",
            source: "etcd",
            ok: (!k.cpu_governor.is_empty()).then(|| k.cpu_governor == "performance"),
        },
        Check {
            setting: "vm.swappiness",
            value: int(k.vm_swappiness),
            // The doctor's threshold (its kernel-settings advice).
            guidance: "<= 10 (swap stalls)",
            source: "glass",
            ok: known(k.vm_swappiness, |v| {
                v <= crate::doctor::rules::SWAPPINESS_MAX
            }),
        },
        Check {
            setting: "vm.dirty_ratio",
            value: int(k.vm_dirty_ratio),
            guidance: "<= 20 (writeback bursts)",
            source: "glass",
            ok: known(k.vm_dirty_ratio, |v| v <= 20),
        },
        Check {
            setting: "vm.dirty_background_ratio",
            value: int(k.vm_dirty_background_ratio),
            guidance: "<= 10",
            source: "glass",
            ok: known(k.vm_dirty_background_ratio, |v| v <= 10),
        },
        Check {
            setting: "vm.dirty_expire_centisecs",
            value: int(k.vm_dirty_expire_centisecs),
            guidance: "informational",
            source: "glass",
            ok: None,
        },
        Check {
            setting: "transparent hugepages",
            value: if k.transparent_hugepages.is_empty() {
                "?".into()
            } else {
                k.transparent_hugepages.clone()
            },
            guidance: "never or madvise",
            source: "glass",
            ok: (!k.transparent_hugepages.is_empty()).then(|| k.transparent_hugepages != "always"),
        },
        Check {
            setting: "net.core.somaxconn",
            value: int(k.net_core_somaxconn),
            guidance: ">= 1024",
            source: "glass",
            ok: known(k.net_core_somaxconn, |v| v >= 1024),
        },
    ];
    for d in disks {
        c.push(Check {
            setting: "disk rotational",
            value: format!("{} {}", d.device, if d.rotational { "HDD" } else { "SSD" }),
            guidance: "SSD",
            source: "etcd",
            ok: Some(!d.rotational),
        });
    }
    let wal_alone = disks
        .iter()
        .any(|d| d.roles.iter().any(|r| r == "wal") && !d.roles.iter().any(|r| r == "data"));
    if !disks.is_empty() {
        c.push(Check {
            setting: "WAL device",
            value: if wal_alone {
                "dedicated".into()
            } else {
                "shared with data".into()
            },
            guidance: "dedicated disk",
            source: "etcd",
            ok: Some(wal_alone),
        });
    }
    c
}

fn pressure(name: &str, p: Option<&Pressure>) -> String {
    match p {
        Some(p) if p.available => format!("{name} {:.1}/{:.1}", p.some_avg10, p.full_avg10),
        _ => format!("{name} n/a"),
    }
}

/// A section title line.
fn section(t: &str) -> Line<'static> {
    Line::styled(format!(" {t}"), header_style().fg(Color::Cyan))
}

pub(super) fn lines(h: &HostStatus, p: Option<&ProcessStatus>) -> Vec<Line<'static>> {
    let mut l = Vec::new();
    let label = |s: &str| Span::styled(format!(" {s:<9}"), header_style());
    if let Some(c) = &h.cpu {
        l.push(Line::from(vec![
            label("CPU"),
            Span::raw(format!(
                "user {:.1}% sys {:.1}% iowait {:.1}% steal {:.1}% idle {:.1}%",
                c.user_percent, c.system_percent, c.iowait_percent, c.steal_percent, c.idle_percent
            )),
        ]));
    }
    l.push(Line::from(vec![
        label("load"),
        Span::raw(format!("{:.2} {:.2} {:.2}", h.load1, h.load5, h.load15)),
    ]));
    // Busy percent per core, eight to a line.
    for (i, chunk) in h.per_core.chunks(8).enumerate() {
        let cores: Vec<String> = chunk
            .iter()
            .map(|c| format!("{} {:.0}%", c.name, (100.0 - c.idle_percent).max(0.0)))
            .collect();
        l.push(Line::from(vec![
            label(if i == 0 { "cores" } else { "" }),
            Span::raw(cores.join("  ")),
        ]));
    }
    l.push(Line::from(vec![
        label("PSI"),
        Span::raw(format!(
            "{}  {}  {}  (some/full avg10 %)",
            pressure("cpu", h.psi_cpu.as_ref()),
            pressure("io", h.psi_io.as_ref()),
            pressure("mem", h.psi_memory.as_ref())
        )),
    ]));
    if let Some(m) = &h.memory {
        l.push(Line::from(vec![
            label("memory"),
            Span::raw(format!(
                "total {} avail {} swap used {} (in {:.0}/s out {:.0}/s)",
                bytes(m.total),
                bytes(m.available),
                bytes(m.swap_total.saturating_sub(m.swap_free)),
                m.swap_in_per_s,
                m.swap_out_per_s
            )),
        ]));
        l.push(Line::from(vec![
            label("dirty"),
            Span::raw(format!(
                "{} writeback {}",
                bytes(m.dirty),
                bytes(m.writeback)
            )),
        ]));
    }
    if let Some(n) = &h.network {
        l.push(Line::from(vec![
            label("network"),
            Span::raw(format!(
                "retrans {:.1}/s ({} of {} segs since boot) err rx {} tx {} drop rx {} tx {}",
                n.retrans_per_s,
                n.tcp_retrans_segs,
                n.tcp_out_segs,
                n.rx_errors,
                n.tx_errors,
                n.rx_drops,
                n.tx_drops
            )),
        ]));
    }
    if let Some(p) = p {
        l.push(Line::from(vec![
            label("glassd"),
            Span::raw(format!(
                "pid {} cpu {:.0}% rss {} threads {} fds {} up {}",
                p.pid,
                p.cpu_percent,
                bytes(p.rss_bytes),
                p.threads,
                p.open_fds,
                age((p.uptime_seconds * 1000.0) as i64)
            )),
        ]));
    }
    l.push(section("Disks (data, WAL)"));
    if h.disks.is_empty() {
        l.push(Line::from("   none found under the data and WAL dirs"));
    }
    for d in &h.disks {
        l.push(Line::from(vec![
            label(&d.device),
            Span::raw(format!(
                "{:<9} util {:.1}%  await r {:.2} w {:.2} ms  in flight {}",
                d.roles.join("+"),
                d.util_percent,
                d.read_await_ms,
                d.write_await_ms,
                d.in_flight
            )),
        ]));
        l.push(Line::from(vec![
            label(""),
            Span::raw(format!(
                "iops r {:.0} w {:.0}  r {}/s w {}/s  {} {}",
                d.read_iops,
                d.write_iops,
                bytes(d.read_bytes_per_s as u64),
                bytes(d.write_bytes_per_s as u64),
                d.scheduler,
                d.write_cache
            )),
        ]));
    }
    l.push(section("Kernel settings (guidance: source)"));
    let k = h.kernel.clone().unwrap_or_default();
    for c in checks(&k, &h.disks) {
        let (mark, color) = match c.ok {
            Some(true) => ("ok", Color::Green),
            Some(false) => ("WARN", Color::Yellow),
            None => ("–", Color::DarkGray),
        };
        l.push(Line::from(vec![
            Span::raw(format!(" {:<26}{:<17}", c.setting, c.value)),
            Span::styled(format!("{mark:<5}"), Style::new().fg(color)),
            Span::raw(format!("{}: {}", c.guidance, c.source)),
        ]));
    }
    l
}

pub fn render(app: &App, f: &mut Frame, area: Rect) {
    // A stream's first snapshot (also after a reconnect) covers the time since boot: its CPU,
    // disk and swap rates are not "now", so the view waits for the first window.
    let snap = app
        .selected()
        .and_then(|(_, m)| m.latest())
        .filter(|s| s.window_ms > 0);
    let Some((s, h)) = snap.and_then(|s| s.host.as_ref().map(|h| (s, h))) else {
        f.render_widget(
            Paragraph::new(" waiting for the first window (a stream's first snapshot covers the time since boot)")
                .wrap(ratatui::widgets::Wrap { trim: true })
                .block(block("Host".into())),
            area,
        );
        return;
    };
    let lines = lines(h, s.process.as_ref());
    // j/k scroll, as far as the last line reaching the bottom.
    let visible = usize::from(area.height.saturating_sub(2));
    let top = app.row.min(lines.len().saturating_sub(visible));
    let more = if lines.len() > visible {
        " (j/k scroll)"
    } else {
        ""
    };
    f.render_widget(
        Paragraph::new(lines)
            .scroll((u16::try_from(top).unwrap_or(0), 0))
            .block(block(format!(
                "Host {} ({} cores){more}",
                h.hostname, h.cores
            ))),
        area,
    );
}
