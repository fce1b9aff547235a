//! `:holds`: the holds not released yet (people's, maintenance windows', hosts' requests to
//! wait), how many runs each holds, and the next maintenance windows.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::super::state::App;
use super::super::theme::Theme;
use super::clock;
use super::table::{Columns, col, framed, list, loading, number_width};
use crate::wire::HoldSource;

pub fn holds(frame: &mut Frame<'_>, area: Rect, app: &App, theme: &Theme) {
    let Some(list_) = app.holds.items.get() else {
        return loading(frame, area, "Holds", &app.holds.items, theme);
    };
    let window_lines = list_.windows.len().clamp(1, 4) as u16 + 2;
    let [table, windows] =
        Layout::vertical([Constraint::Min(4), Constraint::Length(window_lines)]).areas(area);
    let rows = list_
        .holds
        .iter()
        .map(|h| {
            let by = match h.source {
                HoldSource::Api => h.created_by.clone(),
                HoldSource::Window => h.created_by.clone(),
                HoldSource::Backpressure => "the host (429/503)".to_owned(),
            };
            let until = h.until.as_ref().map_or("until released".to_owned(), clock);
            (
                vec![
                    Span::raw(h.id.to_string()),
                    Span::styled(h.scope.clone(), theme.title),
                    Span::raw(h.held_runs.to_string()),
                    Span::raw(until),
                    Span::styled(by, theme.dim),
                    Span::raw(h.reason.clone()),
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
                " Holds · {} active · {} runs held{} ",
                list_.holds.len(),
                list_.held_runs,
                if app.role() == crate::wire::Role::Admin {
                    " · n hold, D release"
                } else {
                    ""
                }
            ),
            cols: vec![
                col("ID", number_width(4, list_.holds.iter().map(|h| h.id)), 9),
                col("SCOPE", 26, 8),
                col("RUNS", 5, 7),
                col("UNTIL", 16, 6),
                col("BY", 14, 3),
            ],
            last: "REASON",
            last_min: 12,
        },
        rows,
        app.holds.selected,
        theme,
    );
    let lines: Vec<Line<'_>> = if list_.windows.is_empty() {
        vec![Line::styled(
            "no maintenance windows (acp.ron: windows: [...])",
            theme.dim,
        )]
    } else {
        list_
            .windows
            .iter()
            .map(|w| {
                let when = match (w.active, w.next_start, w.next_end) {
                    (true, _, Some(end)) => format!("ON NOW until {}", clock(&end)),
                    (false, Some(start), _) => format!("next {}", clock(&start)),
                    _ => "no next occurrence".to_owned(),
                };
                Line::from(vec![
                    Span::styled(format!("{} ", w.name), theme.title),
                    Span::raw(format!("{} · {when} · ", w.scope)),
                    Span::styled(format!("{} {}", w.cron, w.timezone), theme.dim),
                ])
            })
            .collect()
    };
    frame.render_widget(
        Paragraph::new(lines).block(framed(" Maintenance windows ".into(), theme)),
        windows,
    );
}
