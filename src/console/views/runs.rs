//! The run explorer (only the visible rows are built) and the step inspector.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, Wrap};

use super::super::highlight;
use super::super::state::{App, duration_ms, glyph};
use super::super::theme::Theme;
use super::{clock, placeholder, short_duration};
use crate::wire::{AttemptStatus, RunStatus};

pub fn status_style(status: RunStatus, theme: &Theme) -> ratatui::style::Style {
    match status {
        RunStatus::Queued => theme.run_queued,
        RunStatus::Running => theme.run_running,
        RunStatus::Retrying => theme.run_retrying,
        RunStatus::Waiting => theme.run_waiting,
        RunStatus::Succeeded => theme.run_succeeded,
        RunStatus::Failed => theme.run_failed,
        RunStatus::Cancelled => theme.run_cancelled,
    }
}

pub fn table(frame: &mut Frame<'_>, area: Rect, app: &App, theme: &Theme) {
    let runs = &app.runs;
    let mode = if runs.follow { "following" } else { "paused" };
    let filter = if runs.filter_text.is_empty() {
        String::new()
    } else {
        format!(" /{}", runs.filter_text)
    };
    let title = format!(
        " Runs {}/{} · {mode} · sort {}{filter} · {} ",
        runs.visible.len(),
        runs.rows.len(),
        runs.sort.label(),
        super::zone()
    );
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border)
        .title(Span::styled(title, theme.title));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if runs.visible.is_empty() {
        let text = if runs.loaded {
            "no runs match"
        } else {
            "loading runs…"
        };
        frame.render_widget(Paragraph::new(text).style(theme.dim), inner);
        return;
    }
    let (medium, wide) = (inner.width >= 100, inner.width >= 120);
    let height = inner.height.saturating_sub(1) as usize;
    let offset = runs.selected.saturating_sub(height.saturating_sub(1));
    let rows = runs.visible[offset..(offset + height).min(runs.visible.len())]
        .iter()
        .enumerate()
        .filter_map(|(i, id)| {
            let run = runs.rows.get(id)?;
            let style = status_style(run.status, theme);
            let duration = duration_ms(run)
                .map(short_duration)
                .unwrap_or_else(|| "-".into());
            let error = run
                .error
                .as_ref()
                .map(|e| e.message.lines().next().unwrap_or("").to_owned())
                .unwrap_or_default();
            let mut cells = vec![
                Cell::from(Span::styled(
                    format!("{} {}", glyph(run.status), run.status),
                    style,
                )),
                Cell::from(run.id.to_string()),
                Cell::from(format!("{}@{}", run.workflow, run.version)),
            ];
            if medium {
                cells.push(Cell::from(
                    run.record_id
                        .map(|r| format!("rec {r}"))
                        .unwrap_or_else(|| run.trigger_kind.to_string()),
                ));
            }
            cells.push(Cell::from(clock(&run.started_at.unwrap_or(run.queued_at))));
            cells.push(Cell::from(duration));
            if wide {
                cells.push(Cell::from(run.attempts.to_string()));
            }
            cells.push(Cell::from(Span::styled(error, theme.error)));
            let row = Row::new(cells);
            Some(if offset + i == runs.selected {
                row.style(theme.selection)
            } else {
                row.style(theme.text)
            })
        });
    let mut widths = vec![
        Constraint::Length(11),
        Constraint::Length(6),
        Constraint::Length(if wide { 26 } else { 20 }),
    ];
    let mut header = vec!["STATUS", "ID", "WORKFLOW"];
    if medium {
        widths.push(Constraint::Length(9));
        header.push("TRIGGER");
    }
    widths.extend([Constraint::Length(11), Constraint::Length(7)]);
    header.extend(["STARTED", "TOOK"]);
    if wide {
        widths.push(Constraint::Length(5));
        header.push("TRIES");
    }
    widths.push(Constraint::Min(10));
    header.push("ERROR");
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(theme.header))
        .column_spacing(1);
    frame.render_widget(table, inner);
}

pub fn inspector(frame: &mut Frame<'_>, area: Rect, app: &App, theme: &Theme) {
    let Some(detail) = app.inspector.detail.get() else {
        frame.render_widget(placeholder(&app.inspector.detail, theme), area);
        return;
    };
    let run = &detail.run;
    let [top, rest] = Layout::vertical([Constraint::Length(3), Constraint::Min(1)]).areas(area);
    let summary = Line::from(vec![
        Span::styled(
            format!("{} {} ", glyph(run.status), run.status),
            status_style(run.status, theme),
        ),
        Span::styled(
            format!("run {} · {}@{} · ", run.id, run.workflow, run.version),
            theme.text,
        ),
        Span::styled(
            format!(
                "{} · queued {}{}",
                run.record_id
                    .map_or_else(|| run.trigger_kind.to_string(), |r| format!("record {r}")),
                clock(&run.queued_at),
                duration_ms(run)
                    .map(|d| format!(" · took {}", short_duration(d)))
                    .unwrap_or_default()
            ),
            theme.dim,
        ),
    ]);
    let error = run.error.as_ref().map_or_else(Line::default, |e| {
        Line::styled(
            format!(
                "{} error: {}",
                e.class,
                e.message.lines().next().unwrap_or("")
            ),
            theme.error,
        )
    });
    frame.render_widget(
        Paragraph::new(vec![summary, error]).block(
            Block::default()
                .borders(Borders::BOTTOM)
                .border_style(theme.border),
        ),
        top,
    );
    let [timeline, body] =
        Layout::horizontal([Constraint::Length(34), Constraint::Min(20)]).areas(rest);
    let steps = app.inspector.steps();
    let longest = steps
        .iter()
        .filter_map(|s| s.attempts.last().and_then(|a| attempt_ms(a)))
        .max()
        .unwrap_or(1)
        .max(1);
    let lines: Vec<Line<'_>> = steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let last = step.attempts.last().expect("a step has an attempt");
            let took = attempt_ms(last).unwrap_or(0);
            let bar = "█".repeat(((took * 8) / longest).clamp(0, 8) as usize);
            let style = attempt_style(last.status, theme);
            Line::from(vec![
                Span::styled(format!("{} ", attempt_glyph(last.status)), style),
                Span::styled(
                    format!("{:<14.14}", step.step_id),
                    if i == app.inspector.step {
                        theme.selection
                    } else {
                        theme.text
                    },
                ),
                Span::styled(format!(" ×{} ", step.attempts.len()), theme.dim),
                Span::styled(format!("{bar:<8}"), style),
            ])
        })
        .collect();
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::RIGHT)
                .border_style(theme.border)
                .title(Span::styled(" steps ", theme.title)),
        ),
        timeline,
    );
    let Some(step) = steps.get(app.inspector.step) else {
        frame.render_widget(Paragraph::new("no step ran yet").style(theme.dim), body);
        return;
    };
    let last = step.attempts.last().expect("a step has an attempt");
    let mut text: Vec<Line<'static>> = vec![Line::from(vec![
        Span::styled(format!("{} ", step.step_id), theme.title),
        Span::styled(format!("key {}", last.idempotency_key), theme.dim),
    ])];
    for attempt in &step.attempts {
        let took = attempt_ms(attempt)
            .map(short_duration)
            .unwrap_or_else(|| "…".into());
        let retry = attempt
            .retry_delay_ms
            .map(|d| format!(", retry in {}", short_duration(d)))
            .unwrap_or_default();
        let error = attempt
            .error
            .as_ref()
            .map(|e| format!(" {}", e.message.lines().next().unwrap_or("")))
            .unwrap_or_default();
        text.push(Line::from(vec![
            Span::styled(
                format!("  #{} {} ", attempt.number, attempt.status),
                attempt_style(attempt.status, theme),
            ),
            Span::styled(format!("{took}{retry}"), theme.dim),
            Span::styled(error, theme.error),
        ]));
    }
    if last.detail.get("provider").is_some() {
        text.push(Line::styled("AI provenance", theme.header));
        text.extend(highlight::json(&last.detail, theme));
    }
    text.push(Line::styled("input", theme.header));
    text.extend(highlight::json(&last.input, theme));
    text.push(Line::styled("output", theme.header));
    text.extend(highlight::json(&last.output, theme));
    if let Some(error) = &last.error {
        text.push(Line::styled("error", theme.header));
        text.push(Line::styled(error.message.clone(), theme.error));
    }
    frame.render_widget(
        Paragraph::new(text)
            .wrap(Wrap { trim: false })
            .scroll((app.inspector.scroll, 0)),
        body.inner(ratatui::layout::Margin {
            horizontal: 1,
            vertical: 0,
        }),
    );
}

fn attempt_ms(attempt: &crate::wire::AttemptView) -> Option<i64> {
    Some((attempt.finished_at? - attempt.started_at).num_milliseconds())
}

fn attempt_glyph(status: AttemptStatus) -> &'static str {
    match status.as_str() {
        "succeeded" => "✓",
        "failed" => "✗",
        "skipped" => "–",
        _ => "▶",
    }
}

fn attempt_style(status: AttemptStatus, theme: &Theme) -> ratatui::style::Style {
    match status.as_str() {
        "succeeded" => theme.run_succeeded,
        "failed" => theme.run_failed,
        "skipped" => theme.dim,
        _ => theme.run_running,
    }
}
