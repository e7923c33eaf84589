//! Overview: every member's identity, role, raft position, db size, load and latency; then the
//! selected member's requests per gRPC method.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row, Table, TableState};
use ratatui::Frame;

use super::{block, bytes, header_style, ns, per_s, rate, selected_style, up_span};
use crate::top::app::{App, Member};

/// Requests per second over all methods and the end-to-end p99 (`api.unary`) of the latest
/// window (none while the latest is a stream's first snapshot: it covers the process's life).
pub fn load(m: &Member) -> (Option<f64>, Option<u64>) {
    let Some(s) = m.latest().filter(|s| s.window_ms > 0) else {
        return (None, None);
    };
    let total: u64 = s.methods.iter().map(|w| w.count).sum();
    let p99 = s
        .layers
        .iter()
        .find(|l| l.name == "api.unary" && l.count > 0)
        .map(|l| l.p99);
    (per_s(total, s.window_ms), p99)
}

pub fn render(app: &App, f: &mut Frame, area: Rect) {
    let n = app.members.len() as u16;
    let [top, bottom] =
        Layout::vertical([Constraint::Length(n + 3), Constraint::Min(0)]).areas(area);
    // Narrow terminals drop the id, the raft indexes and the db size.
    let wide = area.width >= 90;
    let mut header = vec!["NAME"];
    if wide {
        header.push("ID");
    }
    header.extend(["STATE", "ROLE", "TERM"]);
    if wide {
        header.extend(["COMMIT/APPLIED", "DB/IN USE"]);
    }
    header.extend(["REQ/S", "P99"]);
    let rows: Vec<Row> = app
        .members
        .iter()
        .map(|(id, m)| {
            let s = m.latest();
            let raft = s.and_then(|s| s.raft.as_ref());
            let be = s.and_then(|s| s.backend.as_ref());
            // A down member's role is unknown; its last known positions stay shown.
            let role = match raft {
                _ if !m.up => "–",
                Some(r) if r.is_leader => "leader",
                Some(r) if r.leader != 0 => "follower",
                Some(_) => "no leader",
                None => "–",
            };
            let (rps, p99) = if m.up { load(m) } else { (None, None) };
            let mut cells = vec![Cell::from(m.name())];
            if wide {
                cells.push(Cell::from(format!("{id:x}")));
            }
            cells.extend([
                Cell::from(Line::from(up_span(m.up))),
                Cell::from(role),
                Cell::from(raft.map_or("–".into(), |r| r.term.to_string())),
            ]);
            if wide {
                cells.extend([
                    Cell::from(raft.map_or("–".into(), |r| {
                        format!("{}/{}", r.commit_index, r.applied_index)
                    })),
                    Cell::from(be.map_or("–".into(), |b| {
                        format!("{}/{}", bytes(b.db_size), bytes(b.db_size_in_use))
                    })),
                ]);
            }
            cells.extend([
                Cell::from(rps.map_or("–".into(), rate)),
                Cell::from(p99.map_or("–".into(), ns)),
            ]);
            Row::new(cells)
        })
        .collect();
    let mut widths = vec![Constraint::Min(8)];
    if wide {
        widths.push(Constraint::Length(16));
    }
    widths.extend([
        Constraint::Length(6),
        Constraint::Length(9),
        Constraint::Length(5),
    ]);
    if wide {
        widths.extend([Constraint::Length(14), Constraint::Length(17)]);
    }
    widths.extend([Constraint::Length(7), Constraint::Length(8)]);
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(header_style()))
        .row_highlight_style(selected_style())
        .block(block(format!("Members ({})", app.members.len())));
    let mut state = TableState::default()
        .with_offset(app.list_offset.get())
        .with_selected(Some(app.member));
    f.render_stateful_widget(table, top, &mut state);
    app.list_offset.set(state.offset());

    let Some((_, m)) = app.selected() else {
        return;
    };
    let title = format!("Requests by method — {}", m.name());
    let mut lines = Vec::new();
    match (m.up, m.latest()) {
        (false, _) => lines.push(Line::from(format!(
            " down: {}",
            m.error.as_deref().unwrap_or("not reached yet")
        ))),
        (true, None) => lines.push(Line::from(" waiting for the first snapshot")),
        (true, Some(s)) => {
            let (rps, p99) = load(m);
            lines.push(Line::from(format!(
                " all methods: {} req/s, p99 {}",
                rps.map_or("–".into(), rate),
                p99.map_or("–".into(), ns)
            )));
            // Latency is measured per method for the KV operations ("–" for the others).
            lines.push(Line::styled(
                format!(
                    " {:<24}{:>9}{:>10}{:>10}{:>9}",
                    "METHOD", "REQ/S", "P99", "P50", "ERR/S"
                ),
                header_style(),
            ));
            let mut methods: Vec<_> = s
                .methods
                .iter()
                .filter(|w| w.count > 0 && app.matches(&w.method))
                .collect();
            methods.sort_by(|a, b| b.count.cmp(&a.count).then(a.method.cmp(&b.method)));
            if methods.is_empty() {
                lines.push(Line::from(" no requests in the last window"));
            }
            for w in methods {
                let name = w
                    .method
                    .strip_prefix("etcdserverpb.")
                    .or_else(|| w.method.strip_prefix("glass.v1."))
                    .unwrap_or(&w.method);
                // A since-start snapshot's latencies are the process's life, not now.
                let latency = |v: u64| {
                    if w.latency_measured && s.window_ms > 0 {
                        ns(v)
                    } else {
                        "–".into()
                    }
                };
                lines.push(Line::from(vec![Span::raw(format!(
                    " {:<24.23}{:>9}{:>10}{:>10}{:>9}",
                    name,
                    per_s(w.count, s.window_ms).map_or("–".into(), rate),
                    latency(w.p99),
                    latency(w.p50),
                    per_s(w.errors, s.window_ms).map_or("–".into(), rate),
                ))]));
            }
        }
    }
    f.render_widget(
        ratatui::widgets::Paragraph::new(lines).block(block(title)),
        bottom,
    );
}
