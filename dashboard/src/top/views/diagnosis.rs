//! Diagnosis: the doctor's verdict over the live history (`doctor::rules::diagnose`), worst
//! finding first, each with its member, layer, evidence and recommendation.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{List, ListItem, ListState, Paragraph, Wrap};
use ratatui::Frame;

use super::{block, selected_style};
use crate::doctor::rules::{Severity, Verdict};
use crate::top::app::App;

fn severity(s: Severity) -> Span<'static> {
    let (t, c) = match s {
        Severity::Healthy => ("HEALTHY", Color::Green),
        Severity::Info => ("ADVICE", Color::Cyan),
        Severity::Warning => ("WARNING", Color::Yellow),
        Severity::Bottleneck => ("BOTTLENECK", Color::Red),
    };
    Span::styled(t, Style::new().fg(c).add_modifier(Modifier::BOLD))
}

pub fn render(app: &App, f: &mut Frame, area: Rect) {
    render_verdict(&app.verdict, app.row, app.verdict_samples, f, area);
}

/// The verdict with finding `selected` highlighted; `samples` is how many snapshots it read.
pub fn render_verdict(v: &Verdict, selected: usize, samples: usize, f: &mut Frame, area: Rect) {
    let [head, list] = Layout::vertical([Constraint::Length(4), Constraint::Min(0)]).areas(area);
    f.render_widget(
        Paragraph::new(vec![
            Line::from(vec![
                Span::raw(" "),
                severity(v.severity),
                Span::raw(format!("  {}", v.headline)),
            ]),
            Line::from(format!(
                " {} finding(s) over {samples} snapshot(s)",
                v.findings.len()
            )),
        ])
        .wrap(Wrap { trim: false })
        .block(block("Diagnosis".into())),
        head,
    );
    if v.findings.is_empty() {
        f.render_widget(
            Paragraph::new(" no rule fired").block(block("Findings".into())),
            list,
        );
        return;
    }
    let items: Vec<ListItem> = v
        .findings
        .iter()
        .map(|fi| {
            let mut lines = vec![Line::from(vec![
                Span::raw(" "),
                severity(fi.severity),
                Span::raw(format!(
                    " {}{} — {}",
                    fi.member,
                    fi.layer.map(|l| format!(" · {l}")).unwrap_or_default(),
                    fi.summary
                )),
            ])];
            for e in &fi.evidence {
                lines.push(Line::from(format!("     · {e}")));
            }
            lines.push(Line::styled(
                format!("     → {}", fi.recommendation),
                Style::new().fg(Color::Cyan),
            ));
            lines.push(Line::from(format!("       rule {}", fi.rule)));
            ListItem::new(lines)
        })
        .collect();
    let mut state = ListState::default().with_selected(Some(selected));
    f.render_stateful_widget(
        List::new(items)
            .highlight_style(selected_style())
            .block(block("Findings (worst first)".into())),
        list,
        &mut state,
    );
}
