//! `:incidents`: failures grouped by signature, active first, with their count, first and
//! last seen, the publish they followed and the records they touched; and one incident with
//! its cause, state history and runs (enter opens a run, p replays its dead letters, B rolls
//! back the version it followed).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::super::keymap::Command;
use super::super::state::App;
use super::super::theme::Theme;
use super::table::{Columns, col, framed, list, loading, number_width};
use super::{ago, clock};
use crate::wire::{IncidentState, IncidentView};

fn state_style(state: IncidentState, theme: &Theme) -> ratatui::style::Style {
    match state {
        IncidentState::Open => theme.alert_firing,
        IncidentState::Regressed => theme.alert_firing,
        IncidentState::Resolved => theme.alert_resolved,
    }
}

/// The keys this screen offers (those this console may run), as the keymap binds them.
fn hints(app: &App, commands: &[(Command, &str)]) -> String {
    super::key_hints(app, commands, " · ")
}

pub fn incidents(frame: &mut Frame<'_>, area: Rect, app: &App, theme: &Theme) {
    let Some(items) = app.incidents.items.get() else {
        return loading(frame, area, "Incidents", &app.incidents.items, theme);
    };
    let [table, detail] = Layout::vertical([Constraint::Min(4), Constraint::Length(7)]).areas(area);
    let active = items.iter().filter(|i| i.state.is_active()).count();
    let rows = items
        .iter()
        .map(|i| {
            (
                vec![
                    Span::styled(i.state.to_string(), state_style(i.state, theme)),
                    Span::raw(i.id.to_string()),
                    Span::raw(i.signature.workflow.clone()),
                    Span::raw(i.count.to_string()),
                    Span::raw(ago(&i.last_seen)),
                    Span::raw(i.open_dead_letters.to_string()),
                    Span::styled(i.signature.message.clone(), theme.error),
                ],
                theme.text,
            )
        })
        .collect();
    list(
        frame,
        table,
        Columns {
            title: format!(
                " Incidents · {active} active · {} ",
                hints(
                    app,
                    &[
                        (Command::Open, "runs"),
                        (Command::Replay, "replay"),
                        (Command::Rollback, "roll back"),
                    ],
                )
            ),
            cols: vec![
                col("STATE", 9, 9),
                col("ID", number_width(3, items.iter().map(|i| i.id)), 8),
                col("WORKFLOW", 16, 7),
                col("COUNT", number_width(5, items.iter().map(|i| i.count)), 6),
                col("LAST", 8, 5),
                col(
                    "DLQ",
                    number_width(3, items.iter().map(|i| i.open_dead_letters)),
                    4,
                ),
            ],
            last: "SIGNATURE",
            last_min: 16,
        },
        rows,
        app.incidents.selected,
        theme,
    );
    let selected = items.get(app.incidents.selected);
    let lines = selected.map(|i| summary(i, theme)).unwrap_or_default();
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(framed(" Incident ".into(), theme)),
        detail,
    );
}

/// What an incident is, in a few lines: where, since when, how much, why.
fn summary<'a>(i: &IncidentView, theme: &Theme) -> Vec<Line<'a>> {
    let s = &i.signature;
    let host = s
        .host
        .as_deref()
        .map(|h| format!(" calling {h}"))
        .unwrap_or_default();
    let versions: Vec<String> = i.versions.iter().map(|v| format!("v{v}")).collect();
    let mut lines = vec![
        Line::from(vec![
            Span::styled(
                format!("{} ", i.state.to_string().to_uppercase()),
                state_style(i.state, theme),
            ),
            Span::styled(
                format!("{} step {}{host}: ", s.workflow, s.step),
                theme.title,
            ),
            Span::styled(i.example.clone(), theme.error),
        ]),
        Line::styled(
            format!(
                "{}× since {} (last {}) · {} · {} record(s) · {} open dead letter(s)",
                i.count,
                clock(&i.first_seen),
                ago(&i.last_seen),
                versions.join(" "),
                i.records,
                i.open_dead_letters
            ),
            theme.dim,
        ),
    ];
    if let Some(cause) = &i.cause {
        lines.push(Line::styled(cause.sentence(), theme.warning));
    }
    for note in &i.held {
        lines.push(Line::styled(note.clone(), theme.warning));
    }
    lines
}

/// One incident: its summary and history above its runs, newest first.
pub fn incident(frame: &mut Frame<'_>, area: Rect, app: &App, theme: &Theme) {
    let Some(detail) = app.incident.get() else {
        return loading(frame, area, "Incident", &app.incident, theme);
    };
    let i = &detail.incident;
    let mut lines = summary(i, theme);
    let history: Vec<String> = detail
        .history
        .iter()
        .map(|h| format!("{} {}", h.state, clock(&h.at)))
        .collect();
    lines.push(Line::styled(
        format!("history: {}", history.join(" → ")),
        theme.dim,
    ));
    if !detail.alerts.is_empty() {
        let alerts: Vec<String> = detail.alerts.iter().map(|a| format!("#{a}")).collect();
        lines.push(Line::styled(
            format!("alerts: {}", alerts.join(" ")),
            theme.dim,
        ));
    }
    // The lines as wrapped in the frame, and its borders; the runs keep at least 4 rows.
    let inner = usize::from(area.width.saturating_sub(2)).max(1);
    let rows: usize = lines.iter().map(|l| l.width().div_ceil(inner).max(1)).sum();
    let head = (rows as u16 + 2).min(area.height.saturating_sub(4));
    let [top, table] = Layout::vertical([Constraint::Length(head), Constraint::Min(4)]).areas(area);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(framed(
                format!(
                    " Incident {} · {} ",
                    i.id,
                    hints(
                        app,
                        &[
                            (Command::Open, "the run"),
                            (Command::Replay, "replay"),
                            (Command::Rollback, "roll back"),
                        ],
                    )
                ),
                theme,
            )),
        top,
    );
    let rows = detail
        .runs
        .iter()
        .map(|r| {
            let dlq = match (r.dlq_id, r.dlq_open) {
                (Some(id), true) => format!("{id} open"),
                (Some(id), false) => format!("{id} closed"),
                _ => "-".to_owned(),
            };
            (
                vec![
                    Span::raw(r.run_id.to_string()),
                    Span::raw(format!("v{}", r.version)),
                    Span::raw(r.record_id.map_or("-".to_owned(), |id| id.to_string())),
                    Span::raw(clock(&r.at)),
                    Span::raw(dlq),
                ],
                theme.text,
            )
        })
        .collect();
    list(
        frame,
        table,
        Columns {
            title: format!(" Runs · newest {} of {} ", detail.runs.len(), i.count),
            cols: vec![
                col(
                    "RUN",
                    number_width(6, detail.runs.iter().map(|r| r.run_id)),
                    9,
                ),
                col("VERSION", 7, 6),
                col("RECORD", 8, 5),
                col("FAILED AT", 16, 7),
            ],
            last: "DEAD LETTER",
            last_min: 12,
        },
        rows,
        app.incident_selected,
        theme,
    );
}
