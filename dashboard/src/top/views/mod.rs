//! Rendering: one function per view from `&App` to a `Frame`, no side effects. The frame is
//! the tab bar (line 0), the member line (line 1), the view, and the status line (last);
//! the help overlay goes on top; a terminal below [`MIN_WIDTH`]×[`MIN_HEIGHT`] gets a message.

mod diagnosis;
mod flags;
mod host;
pub(crate) mod layers;
pub(crate) mod overview;
mod slow;

#[cfg(test)]
pub use diagnosis::render_verdict;

/// How many lines the Host view has for `h` (its scroll bound).
pub fn host_lines(
    h: &glassd::pb::glass::v1::HostStatus,
    p: Option<&glassd::pb::glass::v1::ProcessStatus>,
) -> usize {
    host::lines(h, p).len()
}

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::app::{tab_label, App, View, TAB_START};

pub const MIN_WIDTH: u16 = 50;
pub const MIN_HEIGHT: u16 = 12;

pub fn render(app: &App, f: &mut Frame) {
    let area = f.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let msg = format!(
            "terminal too small ({}×{}): glass top needs {MIN_WIDTH}×{MIN_HEIGHT}; q quits",
            area.width, area.height
        );
        f.render_widget(Paragraph::new(msg).wrap(Wrap { trim: true }), area);
        return;
    }
    let [tabs, member, body, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    render_tabs(app, f, tabs);
    render_member_line(app, f, member);
    match app.view {
        View::Overview => overview::render(app, f, body),
        View::Layers => layers::render(app, f, body),
        View::Host => host::render(app, f, body),
        View::Slow => slow::render(app, f, body),
        View::Flags => flags::render(app, f, body),
        View::Diagnosis => diagnosis::render(app, f, body),
    }
    render_status(app, f, status);
    if app.help {
        render_help(f, area);
    }
}

fn render_tabs(app: &App, f: &mut Frame, area: Rect) {
    let mut spans = vec![Span::styled(
        format!("{:<w$}", " glass top", w = usize::from(TAB_START)),
        Style::new().add_modifier(Modifier::BOLD),
    )];
    for v in View::ALL {
        let style = if v == app.view {
            Style::new().fg(Color::Black).bg(Color::Cyan)
        } else {
            Style::new()
        };
        spans.push(Span::styled(tab_label(v, app.view, area.width), style));
        spans.push(Span::raw(" "));
    }
    f.render_widget(Line::from(spans), area);
}

fn render_member_line(app: &App, f: &mut Frame, area: Rect) {
    let mut spans = Vec::new();
    match app.selected() {
        Some((id, m)) => {
            spans.push(Span::raw(format!(" member {} ({id:x}) ", m.name())));
            spans.push(up_span(m.up));
            if app.members.len() > 1 {
                spans.push(Span::raw(format!(
                    "  [{}/{} h/l]",
                    app.member + 1,
                    app.members.len()
                )));
            }
        }
        None => spans.push(Span::raw(format!(
            " waiting for members from {}",
            app.endpoints.join(",")
        ))),
    }
    if app.filtering || !app.filter.is_empty() {
        spans.push(Span::styled(
            format!(
                "  filter /{}{}",
                app.filter,
                if app.filtering { "▏" } else { "" }
            ),
            Style::new().fg(Color::Yellow),
        ));
    }
    f.render_widget(Line::from(spans), area);
}

fn render_status(app: &App, f: &mut Frame, area: Rect) {
    let line = if let Some(e) = &app.discovery_error {
        Line::styled(
            format!(" members unknown: {e}"),
            Style::new().fg(Color::Red),
        )
    } else if let Some((ok, m)) = &app.message {
        Line::styled(
            format!(" {m}"),
            Style::new().fg(if *ok { Color::Green } else { Color::Red }),
        )
    } else {
        let up = app.members.values().filter(|m| m.up).count();
        let mut s = format!(
            " {up}/{} up · every {}ms · Tab/1-6 views · ? help · q quit",
            app.members.len(),
            app.interval_ms
        );
        if let Some(n) = &app.note {
            s = format!(" {n} ·{s}");
        }
        Line::styled(s, Style::new().fg(Color::DarkGray))
    };
    f.render_widget(line, area);
}

const HELP: &[(&str, &str)] = &[
    ("Tab / Shift-Tab", "next / previous view"),
    ("1-6", "Overview Layers Host Slow Flags Diagnosis"),
    ("j k ↓ ↑", "select a row (PgDn PgUp g G)"),
    ("h l ← →", "previous / next member"),
    ("/", "filter the list (Enter keeps, Esc clears)"),
    ("Enter", "Flags: edit a runtime flag, then y/n"),
    ("r", "Flags: read the flags again"),
    ("mouse", "click a tab or a row; wheel scrolls"),
    ("SHARE", "pass time ÷ mean request; bg: background"),
    ("?", "this help (any key closes)"),
    ("q  Ctrl-C", "quit"),
];

fn render_help(f: &mut Frame, area: Rect) {
    let w = area.width.min(62);
    let h = area.height.min(HELP.len() as u16 + 2);
    let r = area.centered(Constraint::Length(w), Constraint::Length(h));
    let lines: Vec<Line> = HELP
        .iter()
        .map(|(k, v)| {
            Line::from(vec![
                Span::styled(format!(" {k:<16}"), Style::new().fg(Color::Cyan)),
                Span::raw(*v),
            ])
        })
        .collect();
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" Help ")),
        r,
    );
}

pub(crate) fn up_span(up: bool) -> Span<'static> {
    if up {
        Span::styled("● up", Style::new().fg(Color::Green))
    } else {
        Span::styled("● down", Style::new().fg(Color::Red))
    }
}

/// The style of the selected row.
pub(crate) fn selected_style() -> Style {
    Style::new().add_modifier(Modifier::REVERSED)
}

pub(crate) fn header_style() -> Style {
    Style::new().add_modifier(Modifier::BOLD)
}

/// A block with the view's title.
pub(crate) fn block(title: String) -> Block<'static> {
    Block::bordered().title(format!(" {title} "))
}

/// Nanoseconds, in the largest unit that keeps a digit before the point.
pub fn ns(v: u64) -> String {
    let f = v as f64;
    if v < 1_000 {
        format!("{v}ns")
    } else if v < 1_000_000 {
        format!("{:.1}µs", f / 1e3)
    } else if v < 1_000_000_000 {
        format!("{:.2}ms", f / 1e6)
    } else {
        format!("{:.2}s", f / 1e9)
    }
}

pub fn bytes(v: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut f = v as f64;
    let mut u = 0;
    while f >= 1024.0 && u + 1 < UNITS.len() {
        f /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{v}B")
    } else {
        format!("{f:.1}{}", UNITS[u])
    }
}

pub fn rate(r: f64) -> String {
    if r >= 10_000.0 {
        format!("{:.1}k", r / 1e3)
    } else if r >= 100.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    }
}

/// `count` over a window of `window_ms`; none for a stream's first snapshot (window 0).
pub fn per_s(count: u64, window_ms: u64) -> Option<f64> {
    (window_ms > 0).then(|| count as f64 * 1000.0 / window_ms as f64)
}

/// A value in a measurement's unit.
pub fn in_unit(unit: &str, v: u64) -> String {
    match unit {
        "ns" => ns(v),
        "bytes" => bytes(v),
        _ => v.to_string(),
    }
}

/// Milliseconds as `1h02m`, `3m05s`, `12s`, `0.4s`.
pub fn age(ms: i64) -> String {
    let ms = ms.max(0);
    let s = ms / 1000;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else if s >= 10 {
        format!("{s}s")
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

/// A text sparkline of `values` squeezed (max per bucket) into `width` cells.
pub fn spark(values: &[u64], width: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    if values.is_empty() || width == 0 {
        return String::new();
    }
    let buckets = squeeze(values, width);
    let max = buckets.iter().copied().max().unwrap_or(0).max(1);
    buckets
        .iter()
        .map(|v| BARS[((*v as u128 * 7) / max as u128) as usize])
        .collect()
}

/// The maximum of each of `width` consecutive groups of `values` (the last `width` values
/// when there are fewer than `width` groups' worth).
pub fn squeeze(values: &[u64], width: usize) -> Vec<u64> {
    if values.len() <= width {
        return values.to_vec();
    }
    (0..width)
        .map(|i| {
            let a = i * values.len() / width;
            let b = ((i + 1) * values.len() / width).max(a + 1);
            values[a..b].iter().copied().max().unwrap_or(0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(ns(999), "999ns");
        assert_eq!(ns(1_500), "1.5µs");
        assert_eq!(ns(2_345_678), "2.35ms");
        assert_eq!(ns(3_000_000_000), "3.00s");
        assert_eq!(bytes(512), "512B");
        assert_eq!(bytes(3 * 1024 * 1024), "3.0MiB");
        assert_eq!(rate(12.34), "12.3");
        assert_eq!(rate(12_345.0), "12.3k");
        assert_eq!(per_s(10, 0), None);
        assert_eq!(per_s(10, 500), Some(20.0));
        assert_eq!(age(61_000), "1m01s");
        assert_eq!(spark(&[0, 7, 14], 3), "▁▄█");
        assert_eq!(squeeze(&[1, 5, 2, 8], 2), vec![5, 8]);
    }
}
