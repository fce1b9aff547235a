//! The list screens: dead letters, alerts, workflows and versions, diffs; and the table
//! helper the others share.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table};

use super::super::state::{App, Grouping, Load};
use super::super::theme::Theme;
use super::{clock, placeholder};
use crate::wire::AlertState;

pub(super) fn framed<'a>(title: String, theme: &Theme) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border)
        .title(Span::styled(title, theme.title))
}

/// A table's title, column headers and widths.
pub(super) struct Columns {
    pub title: String,
    pub header: Vec<&'static str>,
    pub widths: Vec<Constraint>,
}

/// A table of rows with one selected, scrolled so the selection shows.
pub(super) fn list(
    frame: &mut Frame<'_>,
    area: Rect,
    columns: Columns,
    rows: Vec<(Vec<Span<'static>>, Style)>,
    selected: usize,
    theme: &Theme,
) {
    let Columns {
        title,
        header,
        widths,
    } = columns;
    let block = framed(title, theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let height = inner.height.saturating_sub(1) as usize;
    let offset = match selected {
        usize::MAX => 0,
        selected => selected.saturating_sub(height.saturating_sub(1)),
    };
    let rows = rows
        .into_iter()
        .enumerate()
        .skip(offset)
        .take(height)
        .map(|(i, (cells, style))| {
            let row = Row::new(cells);
            if i == selected {
                row.style(theme.selection)
            } else {
                row.style(style)
            }
        });
    frame.render_widget(
        Table::new(rows, widths)
            .header(Row::new(header).style(theme.header))
            .column_spacing(1),
        inner,
    );
}

pub(super) fn loading<T>(
    frame: &mut Frame<'_>,
    area: Rect,
    title: &str,
    load: &Load<T>,
    theme: &Theme,
) {
    let block = framed(format!(" {title} "), theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    frame.render_widget(placeholder(load, theme), inner);
}

pub fn dlq(frame: &mut Frame<'_>, area: Rect, app: &App, theme: &Theme) {
    let Some(entries) = app.dlq.entries.get() else {
        return loading(frame, area, "Dead letters", &app.dlq.entries, theme);
    };
    let rows = app
        .dlq
        .visible
        .iter()
        .filter_map(|i| entries.get(*i))
        .map(|e| {
            let marked = app.dlq.marked.contains(&e.id);
            let mark = if marked { "●" } else { " " };
            let cells = vec![
                Span::styled(mark.to_owned(), theme.marked),
                Span::raw(e.id.to_string()),
                Span::raw(e.run_id.to_string()),
                Span::raw(format!("{}@{}", e.workflow, e.version)),
                Span::raw(e.record_id.map(|r| format!("rec {r}")).unwrap_or_default()),
                Span::raw(e.step_id.clone()),
                Span::raw(clock(&e.created_at)),
                Span::styled(
                    e.error.message.lines().next().unwrap_or("").to_owned(),
                    theme.error,
                ),
            ];
            (cells, if marked { theme.marked } else { theme.text })
        })
        .collect();
    let filter = if app.dlq.filter_text.is_empty() {
        String::new()
    } else {
        format!(" /{}", app.dlq.filter_text)
    };
    let grouping = match app.dlq.group {
        Grouping::None => String::new(),
        Grouping::Workflow => " · grouped by workflow".into(),
        Grouping::Error => " · grouped by error".into(),
    };
    let title = format!(
        " Dead letters {}/{} · {} marked{grouping}{filter} ",
        app.dlq.visible.len(),
        entries.len(),
        app.dlq.marked.len()
    );
    list(
        frame,
        area,
        Columns {
            title,
            header: vec![
                "", "ENTRY", "RUN", "WORKFLOW", "RECORD", "STEP", "SINCE", "ERROR",
            ],
            widths: vec![
                Constraint::Length(1),
                Constraint::Length(6),
                Constraint::Length(7),
                Constraint::Length(20),
                Constraint::Length(8),
                Constraint::Length(12),
                Constraint::Length(11),
                Constraint::Min(10),
            ],
        },
        rows,
        app.dlq.selected,
        theme,
    );
}

pub fn alerts(frame: &mut Frame<'_>, area: Rect, app: &App, theme: &Theme) {
    let Some(alerts) = app.alerts.items.get() else {
        return loading(frame, area, "Alerts", &app.alerts.items, theme);
    };
    let rows = alerts
        .iter()
        .map(|a| {
            let style = match a.state {
                AlertState::Firing => theme.alert_firing,
                AlertState::Pending => theme.alert_pending,
                AlertState::Resolved => theme.alert_resolved,
            };
            let note = match (&a.acked_by, a.silenced_until) {
                (_, Some(until)) if until > chrono::Utc::now() => {
                    format!("silenced until {}", clock(&until))
                }
                (Some(by), _) => format!("acked by {by}"),
                _ => String::new(),
            };
            (
                vec![
                    Span::styled(a.state.to_string(), style),
                    Span::raw(a.id.to_string()),
                    Span::raw(a.severity.clone()),
                    Span::raw(a.rule.clone()),
                    Span::raw(a.workflow.clone()),
                    Span::raw(clock(&a.fired_at.unwrap_or(a.opened_at))),
                    Span::styled(note, theme.dim),
                ],
                theme.text,
            )
        })
        .collect();
    list(
        frame,
        area,
        Columns {
            title: format!(" Alerts · {} firing ", app.firing().len()),
            header: vec!["STATE", "ID", "SEVERITY", "RULE", "WORKFLOW", "SINCE", ""],
            widths: vec![
                Constraint::Length(9),
                Constraint::Length(5),
                Constraint::Length(9),
                Constraint::Length(18),
                Constraint::Length(20),
                Constraint::Length(9),
                Constraint::Min(5),
            ],
        },
        rows,
        app.alerts.selected,
        theme,
    );
}

pub fn workflows(frame: &mut Frame<'_>, area: Rect, app: &App, theme: &Theme) {
    let Some(list_items) = app.workflows.items.get() else {
        return loading(frame, area, "Workflows", &app.workflows.items, theme);
    };
    let rows = list_items
        .iter()
        .map(|w| {
            (
                vec![
                    Span::raw(w.key.clone()),
                    Span::raw(w.team.clone()),
                    Span::raw(
                        w.published_version
                            .map_or_else(|| "-".into(), |v| format!("v{v}")),
                    ),
                    Span::raw(format!("v{}", w.latest_version)),
                    Span::styled(
                        if w.has_draft { "draft" } else { "" }.to_owned(),
                        theme.warning,
                    ),
                    Span::raw(w.name.clone()),
                ],
                theme.text,
            )
        })
        .collect();
    list(
        frame,
        area,
        Columns {
            title: " Workflows ".into(),
            header: vec!["KEY", "TEAM", "PUBLISHED", "LATEST", "", "NAME"],
            widths: vec![
                Constraint::Length(22),
                Constraint::Length(12),
                Constraint::Length(9),
                Constraint::Length(7),
                Constraint::Length(6),
                Constraint::Min(10),
            ],
        },
        rows,
        app.workflows.selected,
        theme,
    );
}

pub fn versions(frame: &mut Frame<'_>, area: Rect, app: &App, theme: &Theme) {
    let Some(items) = app.versions.items.get() else {
        return loading(frame, area, "Versions", &app.versions.items, theme);
    };
    let rows = items
        .iter()
        .map(|v| {
            (
                vec![
                    Span::raw(format!("v{}", v.version)),
                    Span::styled(
                        if v.published { "published" } else { "" }.to_owned(),
                        theme.run_succeeded,
                    ),
                    Span::raw(clock(&v.created_at)),
                    Span::raw(v.created_by.clone()),
                ],
                theme.text,
            )
        })
        .collect();
    list(
        frame,
        area,
        Columns {
            title: " Versions (d diff with the previous, B roll back to the selected) ".into(),
            header: vec!["VERSION", "", "CREATED", "BY"],
            widths: vec![
                Constraint::Length(8),
                Constraint::Length(10),
                Constraint::Length(12),
                Constraint::Min(10),
            ],
        },
        rows,
        app.versions.selected,
        theme,
    );
}

pub fn diff(frame: &mut Frame<'_>, area: Rect, app: &App, theme: &Theme) {
    let Some(diff) = app.diff.get() else {
        return loading(frame, area, "Diff", &app.diff, theme);
    };
    let lines: Vec<Line<'_>> = diff
        .unified
        .lines()
        .map(|l| {
            let style = match l.chars().next() {
                Some('+') => theme.diff_add,
                Some('-') => theme.diff_remove,
                Some('@') => theme.diff_hunk,
                _ => theme.text,
            };
            Line::styled(l.to_owned(), style)
        })
        .collect();
    frame.render_widget(
        Paragraph::new(lines)
            .block(framed(format!(" v{} → v{} ", diff.from, diff.to), theme))
            .scroll((app.inspector.scroll, 0)),
        area,
    );
}
