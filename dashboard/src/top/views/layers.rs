//! Layers: the selected member's measurements — rate, p50/p99/max of the latest window, the
//! share of request time, and the p99's trend over the kept history; a chart of the selected
//! measurement below.
//!
//! SHARE is the layer's mean time per pass (`sum / count`) over the mean request's time
//! (`api.unary`'s `sum / count`): how much of a request one pass through the layer costs.
//! That holds for per-request layers (lock waits, `mvcc.range`) and for batched ones alike: a
//! put waits for one whole `wal.fsync` however many puts it serves, so a 20 ms fsync under a
//! 21 ms put is 95 %, where `sum / sum` would divide it among the concurrent requests. Layers
//! nest, so shares overlap; a layer that only some requests pass (writes, not reads) can
//! exceed 100 % of the mean request. Layers off the request path — background commits,
//! compaction, the freelist and bolt work inside a commit, start-up — show `bg`: no request
//! waits for them as a rule.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::widgets::{Paragraph, Row, Sparkline, Table, TableState};
use ratatui::Frame;

use super::{age, block, header_style, in_unit, per_s, rate, selected_style, spark, squeeze};
use crate::top::app::{App, Member};

/// The p99 of `name` in every snapshot of the history (0 where it had no samples).
fn p99_history(m: &Member, name: &str) -> Vec<u64> {
    m.history
        .iter()
        .filter(|s| s.window_ms > 0)
        .map(|s| {
            s.layers
                .iter()
                .find(|l| l.name == name)
                .map_or(0, |l| l.p99)
        })
        .collect()
}

/// Measurements no request waits for as a rule (asynchronous commits, compaction, start-up):
/// a share of request time would be meaningless.
const BACKGROUND: &[&str] = &[
    "backend.commit",
    "backend.commit_fsync",
    "backend.commit_pages",
    "bolt.mmap_remap",
    "bolt.rw_lock_wait",
    "freelist.allocate",
    "freelist.release",
    "mvcc.compaction",
    "mvcc.compaction_pause",
    "mvcc.restore",
];

/// The SHARE column (see the module doc): mean time per pass over the mean request's time.
pub(crate) fn share(
    name: &str,
    unit: &str,
    count: u64,
    sum: u64,
    request: Option<(u64, u64)>,
) -> String {
    if BACKGROUND.contains(&name) {
        return "bg".to_string();
    }
    match request {
        Some((rc, rs)) if unit == "ns" && count > 0 && rc > 0 && rs > 0 => {
            let layer_mean = sum as f64 / count as f64;
            let request_mean = rs as f64 / rc as f64;
            format!("{:.0}%", layer_mean * 100.0 / request_mean)
        }
        _ => "–".to_string(),
    }
}

/// How long the history spans.
fn span_ms(m: &Member) -> i64 {
    match (m.history.front(), m.history.back()) {
        (Some(a), Some(b)) => b.unix_ms - a.unix_ms,
        _ => 0,
    }
}

pub fn render(app: &App, f: &mut Frame, area: Rect) {
    let Some((_, m)) = app.selected() else {
        f.render_widget(
            Paragraph::new(" no member yet").block(block("Layers".into())),
            area,
        );
        return;
    };
    let Some(s) = m.latest() else {
        f.render_widget(
            Paragraph::new(" waiting for the first snapshot").block(block("Layers".into())),
            area,
        );
        return;
    };
    let chart_h = if area.height >= 16 { 6 } else { 0 };
    let [top, bottom] =
        Layout::vertical([Constraint::Min(0), Constraint::Length(chart_h)]).areas(area);
    let names = app.layer_rows(m);
    let request = s
        .layers
        .iter()
        .find(|l| l.name == "api.unary")
        .map(|l| (l.count, l.sum));
    // The trend column takes what the others leave; narrow terminals drop it and MAX.
    let wide = top.width >= 80;
    let fixed = 24 + 8 + 9 + 9 + 9 + 6 + 6 + 2;
    let trend_w = if wide {
        usize::from(top.width.saturating_sub(fixed))
    } else {
        0
    };
    let rows: Vec<Row> = names
        .iter()
        .filter_map(|n| s.layers.iter().find(|l| l.name == *n))
        .map(|l| {
            // A stream's first snapshot covers the process's life: no "now" figures yet.
            let idle = l.count == 0 || s.window_ms == 0;
            let q = |v: u64| {
                if idle {
                    "–".to_string()
                } else {
                    in_unit(&l.unit, v)
                }
            };
            let share = if s.window_ms == 0 {
                "–".to_string()
            } else {
                share(&l.name, &l.unit, l.count, l.sum, request)
            };
            let mut cells = vec![
                l.name.clone(),
                per_s(l.count, s.window_ms).map_or("–".into(), rate),
                q(l.p50),
                q(l.p99),
            ];
            if wide {
                cells.push(q(l.max));
            }
            cells.push(share);
            if wide {
                cells.push(spark(&p99_history(m, &l.name), trend_w));
            }
            Row::new(cells)
        })
        .collect();
    let (header, widths) = if wide {
        (
            vec![
                "MEASUREMENT",
                "/S",
                "P50",
                "P99",
                "MAX",
                "SHARE",
                "P99 TREND",
            ],
            vec![
                Constraint::Length(24),
                Constraint::Length(8),
                Constraint::Length(9),
                Constraint::Length(9),
                Constraint::Length(9),
                Constraint::Length(6),
                Constraint::Min(0),
            ],
        )
    } else {
        (
            vec!["MEASUREMENT", "/S", "P50", "P99", "SHARE"],
            vec![
                Constraint::Min(20),
                Constraint::Length(7),
                Constraint::Length(8),
                Constraint::Length(8),
                Constraint::Length(5),
            ],
        )
    };
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(header_style()))
        .row_highlight_style(selected_style())
        .block(block(format!(
            "Layers — {} (window {}, trend over {})",
            m.name(),
            age(i64::try_from(s.window_ms).unwrap_or(0)),
            age(span_ms(m))
        )));
    let mut state = TableState::default().with_selected(Some(app.row));
    f.render_stateful_widget(table, top, &mut state);

    if chart_h == 0 {
        return;
    }
    let Some(name) = names.get(app.row) else {
        return;
    };
    let unit = s
        .layers
        .iter()
        .find(|l| l.name == *name)
        .map_or("ns", |l| l.unit.as_str());
    let hist = p99_history(m, name);
    let data = squeeze(&hist, usize::from(bottom.width.saturating_sub(2)));
    let max = hist.iter().copied().max().unwrap_or(0);
    f.render_widget(
        Sparkline::default().data(&data).block(block(format!(
            "{name} p99, last {} (max {})",
            age(span_ms(m)),
            in_unit(unit, max)
        ))),
        bottom,
    );
}
