//! The list screens: dead letters, alerts, workflows and versions, diffs.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{LineGauge, Paragraph};

use super::super::state::{App, Grouping};
use super::super::theme::Theme;
use super::table::{
    Columns, ERROR_MIN, col, ellipsis, filter_mark, framed, list, loading, number_width,
};
use super::{ago, clock, datetime};
use crate::wire::{AlertState, JobState, JobView};

pub fn dlq(frame: &mut Frame<'_>, area: Rect, app: &App, theme: &Theme) {
    let area = match &app.job {
        Some(job) => {
            let [list, bar] =
                Layout::vertical([Constraint::Min(3), Constraint::Length(1)]).areas(area);
            job_progress(frame, bar, job, theme);
            list
        }
        None => area,
    };
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
                Span::raw(ellipsis(&format!("{}@{}", e.workflow, e.version), 18)),
                Span::raw(e.record_id.map(|r| format!("rec {r}")).unwrap_or_default()),
                Span::raw(ellipsis(&e.step_id, 10)),
                Span::raw(ago(&e.created_at)),
                Span::styled(
                    e.error.message.lines().next().unwrap_or("").to_owned(),
                    theme.error,
                ),
            ];
            (cells, if marked { theme.marked } else { theme.text })
        })
        .collect();
    let filter = filter_mark(&app.dlq.filter_text, app);
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
            cols: vec![
                col("", 1, 9),
                col("ENTRY", number_width(6, entries.iter().map(|e| e.id)), 6),
                col("RUN", number_width(7, entries.iter().map(|e| e.run_id)), 3),
                col("WORKFLOW", 18, 8),
                col("RECORD", 8, 2),
                col("STEP", 10, 7),
                col("SINCE", 7, 5),
            ],
            last: "ERROR",
            last_min: ERROR_MIN,
        },
        rows,
        app.dlq.selected,
        theme,
    );
}

/// One line: a replay job's runs started of its total, and how many ended either way.
fn job_progress(frame: &mut Frame<'_>, area: Rect, job: &JobView, theme: &Theme) {
    let done = job.started + job.skipped;
    let ratio = match job.total {
        0 => 1.0,
        total => (done as f64 / total as f64).clamp(0.0, 1.0),
    };
    let state = match job.state {
        JobState::Running => format!("at {}", job.rate),
        JobState::Finished => "all started".to_owned(),
        JobState::Cancelled => "cancelled, the rest stay open".to_owned(),
    };
    let label = format!(
        "replay {}: {done}/{} {state} · {}✓ {}✗",
        job.id, job.total, job.succeeded, job.failed
    );
    let gauge = LineGauge::default()
        .ratio(ratio)
        .label(label)
        .filled_style(theme.selection)
        .unfilled_style(theme.dim);
    frame.render_widget(gauge, area);
}

pub fn alerts(frame: &mut Frame<'_>, area: Rect, app: &App, theme: &Theme) {
    let Some(alerts) = app.alerts.items.get() else {
        return loading(frame, area, "Alerts", &app.alerts.items, theme);
    };
    let [table, detail] = Layout::vertical([Constraint::Min(4), Constraint::Length(7)]).areas(area);
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
                    Span::raw(ago(&a.fired_at.unwrap_or(a.opened_at))),
                    Span::styled(note, theme.dim),
                ],
                theme.text,
            )
        })
        .collect();
    list(
        frame,
        table,
        Columns {
            title: format!(" Alerts · {} firing ", app.firing().len()),
            cols: vec![
                col("STATE", 9, 9),
                col("ID", number_width(5, alerts.iter().map(|a| a.id)), 6),
                col("SEVERITY", 9, 3),
                col("RULE", 18, 8),
                col("WORKFLOW", 20, 7),
                col("SINCE", 8, 5),
            ],
            last: "",
            last_min: 8,
        },
        rows,
        app.alerts.selected,
        theme,
    );
    alert_detail(frame, detail, alerts.get(app.alerts.selected), app, theme);
}

/// What Slack says about the selected alert: how bad, the top error, since when, and the
/// way to its failed runs.
fn alert_detail(
    frame: &mut Frame<'_>,
    area: Rect,
    alert: Option<&crate::wire::AlertView>,
    app: &App,
    theme: &Theme,
) {
    let block = framed(" Alert ".into(), theme);
    let Some(a) = alert else {
        frame.render_widget(block, area);
        return;
    };
    let since = a.fired_at.unwrap_or(a.opened_at);
    let mut lines = vec![
        Line::from(vec![
            Span::styled(
                format!("{} {} ", a.severity.to_uppercase(), a.state),
                theme.title,
            ),
            Span::styled(format!("`{}` on {}: ", a.rule, a.workflow), theme.text),
            Span::styled(a.summary(), theme.text),
        ]),
        Line::styled(
            format!(
                "since {} ({}){}",
                datetime(&since),
                ago(&since),
                a.resolved_at
                    .map(|at| format!(" · resolved {}", ago(&at)))
                    .unwrap_or_default()
            ),
            theme.dim,
        ),
    ];
    if let Some(top) = a.top_error() {
        lines.push(Line::from(vec![
            Span::styled("top error: ", theme.header),
            Span::styled(top, theme.error),
        ]));
    }
    // The incident of its workflow that was active while it was open or in the hour before
    // (as `GET /incidents?alert=ID` answers).
    let incident = app.incidents.items.get().into_iter().flatten().find(|i| {
        i.signature.workflow == a.workflow
            && a.resolved_at.is_none_or(|r| i.first_seen <= r)
            && i.resolved_at
                .is_none_or(|r| r >= a.opened_at - chrono::TimeDelta::hours(1))
    });
    if let Some(i) = incident {
        let followed = i
            .cause
            .as_ref()
            .map(|c| format!(" after v{}", c.version))
            .unwrap_or_default();
        lines.push(Line::from(vec![
            Span::styled(
                format!("incident {} {}{followed}: ", i.id, i.state),
                theme.header,
            ),
            Span::styled(format!("{}× {}", i.count, i.signature.message), theme.text),
        ]));
    }
    let chord = |command| app.keymap.chord_for(app.view.context(), command);
    let open = [
        chord(crate::console::keymap::Command::Open).map(|c| format!("{c}: its failed runs")),
        chord(crate::console::keymap::Command::GoIncidents).map(|c| format!("{c}: incidents")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" · ");
    lines.push(Line::styled(open, theme.key_hint));
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(ratatui::widgets::Wrap { trim: false })
            .block(block),
        area,
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
                    match (app.pause_of(&w.key), w.has_draft) {
                        (Some(_), _) => Span::styled("paused", theme.run_waiting),
                        (None, true) => Span::styled("draft", theme.warning),
                        (None, false) => Span::raw(""),
                    },
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
            cols: vec![
                col("KEY", 22, 9),
                col("TEAM", 12, 5),
                col("PUBLISHED", 9, 8),
                col("LATEST", 7, 7),
                col("", 6, 6),
            ],
            last: "NAME",
            last_min: 10,
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
                    Span::raw(ago(&v.created_at)),
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
            cols: vec![col("VERSION", 8, 9), col("", 10, 8), col("CREATED", 8, 7)],
            last: "BY",
            last_min: 10,
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
            .block(framed(
                format!(
                    " v{} → v{} · opened at the first change ",
                    diff.from, diff.to
                ),
                theme,
            ))
            .wrap(ratatui::widgets::Wrap { trim: false })
            .scroll((app.inspector.scroll, 0)),
        area,
    );
}
