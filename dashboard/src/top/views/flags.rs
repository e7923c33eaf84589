//! Flags: the selected member's settings (value, default, source, runtime or not), filtered
//! with `/`; Enter on a runtime flag opens the edit box, Enter asks to confirm, `y` sends the
//! SetFlag; the outcome shows in the status line and the list is read again. The member's recent
//! flag changes (from its snapshot stream) are listed below.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::Line;
use ratatui::widgets::{Clear, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use super::{age, block, header_style, selected_style};
use crate::top::app::{App, FlagEdit};

pub fn render(app: &App, f: &mut Frame, area: Rect) {
    let Some((_, m)) = app.selected() else {
        f.render_widget(
            Paragraph::new(" no member yet").block(block("Flags".into())),
            area,
        );
        return;
    };
    let changes_h = if m.flag_changes.is_empty() || area.height < 16 {
        0
    } else {
        (m.flag_changes.len() as u16).min(4) + 2
    };
    let [top, bottom] =
        Layout::vertical([Constraint::Min(0), Constraint::Length(changes_h)]).areas(area);
    match &m.flags {
        None => f.render_widget(
            Paragraph::new(" reading flags…").block(block(format!("Flags — {}", m.name()))),
            top,
        ),
        Some(Err(e)) => f.render_widget(
            Paragraph::new(format!(" cannot read the flags: {e}"))
                .block(block(format!("Flags — {}", m.name()))),
            top,
        ),
        Some(Ok(all)) => {
            let wide = top.width >= 80;
            let rows: Vec<Row> = app
                .flag_rows(m)
                .into_iter()
                .map(|fl| {
                    let mut cells = vec![fl.name.clone(), show(&fl.value)];
                    if wide {
                        cells.push(show(&fl.default_value));
                    }
                    cells.push(fl.source.clone());
                    cells.push(if fl.runtime { "yes" } else { "no" }.to_string());
                    Row::new(cells)
                })
                .collect();
            let shown = rows.len();
            // Narrow terminals drop the default (the name must stay whole).
            let (header, widths) = if wide {
                (
                    vec!["NAME", "VALUE", "DEFAULT", "SOURCE", "RUNTIME"],
                    vec![
                        Constraint::Min(20),
                        Constraint::Length(18),
                        Constraint::Length(14),
                        Constraint::Length(9),
                        Constraint::Length(7),
                    ],
                )
            } else {
                (
                    vec!["NAME", "VALUE", "SOURCE", "RT"],
                    vec![
                        Constraint::Min(24),
                        Constraint::Length(12),
                        Constraint::Length(8),
                        Constraint::Length(3),
                    ],
                )
            };
            let table = Table::new(rows, widths)
                .header(Row::new(header).style(header_style()))
                .row_highlight_style(selected_style())
                .block(block(format!(
                    "Flags — {} ({shown} of {}; Enter edits a runtime one)",
                    m.name(),
                    all.len()
                )));
            let mut state = TableState::default()
                .with_offset(app.list_offset.get())
                .with_selected(Some(app.row));
            f.render_stateful_widget(table, top, &mut state);
            app.list_offset.set(state.offset());
        }
    }
    if changes_h > 0 {
        let now = m.latest().map_or(0, |s| s.unix_ms);
        let lines: Vec<Line> = m
            .flag_changes
            .iter()
            .rev()
            .take(4)
            .map(|c| {
                Line::from(format!(
                    " {} ago  {}: {} -> {}{}",
                    age(now - c.unix_ms),
                    c.name,
                    show(&c.old_value),
                    show(&c.new_value),
                    if c.persisted { " (persisted)" } else { "" }
                ))
            })
            .collect();
        f.render_widget(
            Paragraph::new(lines).block(block("Recent changes (from the stream)".into())),
            bottom,
        );
    }
    render_edit(app, f, area);
}

fn show(v: &str) -> String {
    if v.is_empty() {
        "\"\"".into()
    } else {
        v.to_string()
    }
}

fn render_edit(app: &App, f: &mut Frame, area: Rect) {
    let (title, text, color) = match &app.edit {
        FlagEdit::None => return,
        FlagEdit::Editing { name, buf, .. } => (
            format!("Set {name} (Enter: confirm, Esc: cancel)"),
            format!(" {buf}▏"),
            Color::Yellow,
        ),
        FlagEdit::Confirm {
            member,
            name,
            value,
        } => (
            "Confirm".to_string(),
            format!(
                " set {name} to {value} on {}? y/n",
                app.members
                    .get(member)
                    .map_or_else(|| format!("{member:x}"), |m| m.name())
            ),
            Color::Yellow,
        ),
        FlagEdit::Pending { name, value } => (
            "Applying".to_string(),
            format!(" setting {name} to {value}…"),
            Color::Cyan,
        ),
    };
    let w = area.width.saturating_sub(4).min(70);
    let r = area.centered(Constraint::Length(w), Constraint::Length(3));
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(text)
            .style(Style::new().fg(color))
            .block(block(title)),
        r,
    );
}
