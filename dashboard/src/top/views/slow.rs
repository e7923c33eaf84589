//! Slow requests: the selected member's ring (newest first, ages relative to its latest
//! snapshot, not this machine's clock), and the selected request's waterfall: each layer it
//! crossed as a bar at its offset, scaled to the request's duration.

use glassd::pb::glass::v1::SlowRequest;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table, TableState};
use ratatui::Frame;

use super::{age, block, header_style, ns, selected_style};
use crate::top::app::App;

/// `width` cells with the part [start, start+len) of `total` filled.
pub fn bar(start: u64, len: u64, total: u64, width: usize) -> String {
    if width == 0 {
        return String::new();
    }
    let total = total.max(1) as u128;
    let w = width as u128;
    let a = ((start as u128 * w) / total).min(w - 1) as usize;
    let b = (((start as u128 + len as u128) * w).div_ceil(total)).min(w) as usize;
    let b = b.max(a + 1);
    (0..width)
        .map(|i| if i >= a && i < b { '█' } else { '·' })
        .collect()
}

pub fn render(app: &App, f: &mut Frame, area: Rect) {
    let Some((_, m)) = app.selected() else {
        f.render_widget(
            Paragraph::new(" no member yet").block(block("Slow requests".into())),
            area,
        );
        return;
    };
    let reqs = app.slow_rows(m);
    // Ages are relative to the member's clock: its latest snapshot, else its newest request.
    let now = m
        .latest()
        .map(|s| s.unix_ms)
        .or_else(|| m.slow.first().map(|r| r.unix_ms))
        .unwrap_or(0);
    let wf_h = reqs
        .get(app.row)
        .map_or(0, |r| (r.layers.len() as u16 + 4).min(area.height / 2));
    let [top, bottom] =
        Layout::vertical([Constraint::Min(0), Constraint::Length(wf_h)]).areas(area);
    let rows: Vec<Row> = reqs
        .iter()
        .map(|r| {
            Row::new(vec![
                age(now - r.unix_ms),
                r.method
                    .strip_prefix("etcdserverpb.")
                    .unwrap_or(&r.method)
                    .to_string(),
                ns(r.duration_ns),
                r.code.clone(),
                r.summary.clone(),
            ])
        })
        .collect();
    let title = if m.slow.is_empty() {
        format!("Slow requests — {} (none kept)", m.name())
    } else {
        format!("Slow requests — {} ({} kept)", m.name(), m.slow.len())
    };
    let table = Table::new(
        rows,
        [
            Constraint::Length(7),
            Constraint::Length(14),
            Constraint::Length(9),
            Constraint::Length(10),
            Constraint::Min(0),
        ],
    )
    .header(Row::new(["AGE", "METHOD", "DURATION", "CODE", "SUMMARY"]).style(header_style()))
    .row_highlight_style(selected_style())
    .block(block(title));
    let mut state = TableState::default()
        .with_offset(app.list_offset.get())
        .with_selected(Some(app.row));
    f.render_stateful_widget(table, top, &mut state);
    app.list_offset.set(state.offset());
    if let Some(r) = reqs.get(app.row) {
        render_waterfall(r, f, bottom);
    }
}

fn render_waterfall(r: &SlowRequest, f: &mut Frame, area: Rect) {
    let name_w = 26usize;
    let dur_w = 10usize;
    let bar_w = usize::from(area.width.saturating_sub(2)).saturating_sub(name_w + dur_w + 2);
    let mut lines = vec![Line::from(vec![
        Span::raw(" trace "),
        Span::styled(
            if r.trace_id.is_empty() {
                "not exported".to_string()
            } else {
                r.trace_id.clone()
            },
            Style::new().fg(Color::Cyan),
        ),
    ])];
    for l in &r.layers {
        lines.push(Line::from(vec![
            Span::raw(format!(" {:<w$.w$}", l.layer, w = name_w - 1)),
            Span::raw(format!("{:>w$} ", ns(l.duration_ns), w = dur_w)),
            Span::styled(
                bar(l.start_offset_ns, l.duration_ns, r.duration_ns, bar_w),
                Style::new().fg(Color::Yellow),
            ),
        ]));
    }
    let method = r.method.strip_prefix("etcdserverpb.").unwrap_or(&r.method);
    f.render_widget(
        Paragraph::new(lines).block(block(format!(
            "Waterfall: {method} {} {}",
            ns(r.duration_ns),
            r.code
        ))),
        area,
    );
}

#[cfg(test)]
mod tests {
    use super::bar;

    #[test]
    fn bars_scale_to_the_request() {
        assert_eq!(bar(0, 100, 100, 10), "██████████");
        assert_eq!(bar(50, 10, 100, 10), "·····█····");
        assert_eq!(bar(99, 0, 100, 10), "·········█");
        assert_eq!(bar(0, 1, 1000, 4), "█···");
    }
}
