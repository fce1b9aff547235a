//! Who did what: the audit log, and a record's field history (source, actor, workflow
//! version, run, AI policy).

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Span;

use super::super::state::App;
use super::super::theme::Theme;
use super::clock;
use super::lists::{Columns, list, loading};

pub fn audit(frame: &mut Frame<'_>, area: Rect, app: &App, theme: &Theme) {
    let Some(items) = app.audit.items.get() else {
        return loading(frame, area, "Audit", &app.audit.items, theme);
    };
    let rows = items
        .iter()
        .map(|e| {
            (
                vec![
                    Span::raw(clock(&e.at)),
                    Span::raw(format!("{} ({})", e.actor, e.role)),
                    Span::raw(e.action.clone()),
                    Span::raw(e.target.clone()),
                    Span::styled(
                        e.outcome.clone(),
                        if e.outcome == "ok" {
                            theme.text
                        } else {
                            theme.error
                        },
                    ),
                    Span::styled(e.reason.clone().unwrap_or_default(), theme.dim),
                ],
                theme.text,
            )
        })
        .collect();
    list(
        frame,
        area,
        Columns {
            title: " Audit log ".into(),
            header: vec!["AT", "ACTOR", "ACTION", "TARGET", "OUTCOME", "REASON"],
            widths: vec![
                Constraint::Length(9),
                Constraint::Length(20),
                Constraint::Length(20),
                Constraint::Length(20),
                Constraint::Length(9),
                Constraint::Min(5),
            ],
        },
        rows,
        app.audit.selected,
        theme,
    );
}

pub fn record(frame: &mut Frame<'_>, area: Rect, app: &App, theme: &Theme) {
    let Some((record, history)) = app.record.get() else {
        return loading(frame, area, "Record", &app.record, theme);
    };
    let rows = history
        .iter()
        .rev()
        .map(|c| {
            let by = match (&c.workflow, c.workflow_version) {
                (Some(w), Some(v)) => format!("{w}@{v}"),
                _ => String::new(),
            };
            (
                vec![
                    Span::raw(clock(&c.at)),
                    Span::raw(c.field.clone()),
                    Span::raw(format!("{} → {}", c.old, c.new)),
                    Span::raw(c.source.to_string()),
                    Span::raw(c.actor.clone()),
                    Span::raw(by),
                    Span::raw(c.run_id.map(|r| format!("run {r}")).unwrap_or_default()),
                    Span::styled(c.ai_policy_id.clone().unwrap_or_default(), theme.dim),
                ],
                theme.text,
            )
        })
        .collect();
    list(
        frame,
        area,
        Columns {
            title: format!(" {} {} · field history ", record.object, record.id),
            header: vec![
                "AT",
                "FIELD",
                "CHANGE",
                "SOURCE",
                "ACTOR",
                "WORKFLOW",
                "RUN",
                "AI POLICY",
            ],
            widths: vec![
                Constraint::Length(9),
                Constraint::Length(12),
                Constraint::Min(16),
                Constraint::Length(8),
                Constraint::Length(12),
                Constraint::Length(16),
                Constraint::Length(8),
                Constraint::Length(10),
            ],
        },
        rows,
        usize::MAX,
        theme,
    );
}
