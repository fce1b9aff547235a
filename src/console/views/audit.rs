//! Who did what: the audit log, and a record's field history (source, actor, workflow
//! version, run, AI policy).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Span;

use super::super::state::App;
use super::super::theme::Theme;
use super::clock;
use super::table::{Columns, col, list, loading, number_width};

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
            title: format!(
                " Audit log · {} entries{} · {} ",
                items.len(),
                if app.audit_cursor.is_some() {
                    ", older ones load as you scroll"
                } else {
                    ""
                },
                super::zone()
            ),
            cols: vec![
                col("AT", 11, 9),
                col("ACTOR", 20, 7),
                col("ACTION", 20, 8),
                col("TARGET", 20, 6),
                col("OUTCOME", 9, 5),
            ],
            last: "REASON",
            last_min: 5,
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
                    Span::raw(c.source.to_string()),
                    Span::raw(c.actor.clone()),
                    Span::raw(by),
                    Span::raw(c.run_id.map(|r| format!("run {r}")).unwrap_or_default()),
                    Span::styled(c.ai_policy_id.clone().unwrap_or_default(), theme.dim),
                    Span::raw(format!("{} → {}", c.old, c.new)),
                ],
                theme.text,
            )
        })
        .collect();
    list(
        frame,
        area,
        Columns {
            title: format!(
                " {} {} · field history · enter: the run that made the change ",
                record.object, record.id
            ),
            cols: vec![
                col("AT", 11, 9),
                col("FIELD", 12, 8),
                col("SOURCE", 8, 4),
                col("ACTOR", 12, 3),
                col("WORKFLOW", 16, 5),
                col(
                    "RUN",
                    4 + number_width(4, history.iter().filter_map(|c| c.run_id)),
                    7,
                ),
                col("AI POLICY", 10, 2),
            ],
            last: "CHANGE",
            last_min: 16,
        },
        rows,
        app.record_selected,
        theme,
    );
}
