//! The step inspector: the run's summary and links, its steps with their timing, and the
//! selected step's attempts, error, input and output (or the trigger payload), searchable.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};

use super::super::highlight;
use super::super::keymap::Command;
use super::super::state::{App, StepSummary, duration_ms, glyph};
use super::super::theme::Theme;
use super::runs::status_style;
use super::{ago, clock, datetime, placeholder, short_duration};
use crate::wire::AttemptStatus;

pub fn inspector(frame: &mut Frame<'_>, area: Rect, app: &App, theme: &Theme) {
    let Some(detail) = app.inspector.detail.get() else {
        frame.render_widget(placeholder(&app.inspector.detail, theme), area);
        return;
    };
    let run = &detail.run;
    let [top, rest] = Layout::vertical([Constraint::Length(4), Constraint::Min(1)]).areas(area);
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
            run.record_id
                .map_or_else(|| run.trigger_kind.to_string(), |r| format!("record {r}")),
            theme.dim,
        ),
    ]);
    let mut when = vec![Span::styled(
        format!(
            "queued {} ({}){}",
            datetime(&run.queued_at),
            ago(&run.queued_at),
            duration_ms(run)
                .map(|d| format!(" · took {}", short_duration(d)))
                .unwrap_or_default()
        ),
        theme.dim,
    )];
    let key = |command| {
        app.keymap
            .chord_for(app.view.context(), command)
            .map(|c| format!(" ({c})"))
            .unwrap_or_default()
    };
    if let Some(id) = run.replayed_as {
        when.push(Span::styled(
            format!(" · ↻ replayed as #{id}{}", key(Command::ReplayedAs)),
            theme.run_retrying,
        ));
    }
    if let Some(origin) = run.origin_run {
        when.push(Span::styled(
            format!(
                " · {} of #{origin}{}",
                run.trigger_kind,
                key(Command::ReplayOf)
            ),
            theme.dim,
        ));
    }
    let held = run.held_reason.as_ref().map(|reason| {
        let until = run
            .next_attempt_at
            .map(|at| format!(" (may go on {})", clock(&at)))
            .unwrap_or_default();
        Line::styled(format!("held: {reason}{until}"), theme.run_waiting)
    });
    let error = held.unwrap_or_else(|| {
        run.error.as_ref().map_or_else(Line::default, |e| {
            Line::styled(
                format!(
                    "{} error: {}",
                    e.class,
                    e.message.lines().next().unwrap_or("")
                ),
                theme.error,
            )
        })
    });
    frame.render_widget(
        Paragraph::new(vec![summary, Line::from(when), error]).block(
            Block::default()
                .borders(Borders::BOTTOM)
                .border_style(theme.border),
        ),
        top,
    );
    let list_width = list_width(app, rest.width);
    let [timeline, body] =
        Layout::horizontal([Constraint::Length(list_width), Constraint::Min(20)]).areas(rest);
    let steps = app.inspector.steps();
    let longest = steps
        .iter()
        .filter_map(|s| s.attempts.last().and_then(|a| attempt_ms(a)))
        .max()
        .unwrap_or(1)
        .max(1);
    let (name_width, bar_width) = if list_width < 34 { (12, 4) } else { (14, 8) };
    let lines: Vec<Line<'_>> = steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let last = step.attempts.last().expect("a step has an attempt");
            let took = attempt_ms(last).unwrap_or(0);
            let bar = "█".repeat(((took * bar_width) / longest).clamp(0, bar_width) as usize);
            let style = attempt_style(last.status, theme);
            Line::from(vec![
                Span::styled(format!("{} ", attempt_glyph(last.status)), style),
                Span::styled(
                    format!("{:<width$.width$}", step.step_id, width = name_width),
                    if i == app.inspector.step {
                        theme.selection
                    } else {
                        theme.text
                    },
                ),
                Span::styled(format!(" ×{} ", step.attempts.len()), theme.dim),
                Span::styled(format!("{bar:<width$}", width = bar_width as usize), style),
            ])
        })
        .collect();
    if list_width > 0 {
        frame.render_widget(
            Paragraph::new(lines).block(
                Block::default()
                    .borders(Borders::RIGHT)
                    .border_style(theme.border)
                    .title(Span::styled(
                        format!(" steps{} ", key(Command::Zoom).replace('(', "(hide ")),
                        theme.title,
                    )),
            ),
            timeline,
        );
    }
    let Some(mut text) = detail_lines(app, theme) else {
        frame.render_widget(Paragraph::new("no step ran yet").style(theme.dim), body);
        return;
    };
    let search = app.inspector.search.to_lowercase();
    if !search.is_empty() {
        for line in &mut text {
            if line.to_string().to_lowercase().contains(&search) {
                *line = std::mem::take(line).patch_style(theme.marked);
            }
        }
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

/// How wide the step list is beside the detail in a `width`-column inspector (0 when zoomed).
pub(crate) fn list_width(app: &App, width: u16) -> u16 {
    match (app.inspector.zoom, width) {
        (true, _) => 0,
        (false, width) if width < 120 => 26,
        _ => 34,
    }
}

/// The columns the inspector's detail wraps at in a `width`-column terminal.
pub(crate) fn detail_width(app: &App, width: u16) -> u16 {
    width.saturating_sub(list_width(app, width) + 2).max(1)
}

/// What the inspector's detail pane shows, line by line (before wrapping): the trigger
/// payload (`t`) or the selected step. `None` before a step has run.
pub(crate) fn detail_lines(app: &App, theme: &Theme) -> Option<Vec<Line<'static>>> {
    detail_with(app, theme, highlight::json)
}

/// The same lines as plain text (JSON pretty-printed, not highlighted): what search and
/// scrolling measure, cheap enough for every keypress.
pub(crate) fn detail_text(app: &App) -> Vec<String> {
    static PLAIN: std::sync::OnceLock<Option<Theme>> = std::sync::OnceLock::new();
    let Some(theme) = PLAIN.get_or_init(|| super::super::theme::load("mono", None).ok()) else {
        return Vec::new();
    };
    let plain = |value: &serde_json::Value, _: &Theme| -> Vec<Line<'static>> {
        serde_json::to_string_pretty(value)
            .unwrap_or_default()
            .lines()
            .map(|l| Line::from(l.to_owned()))
            .collect()
    };
    detail_with(app, theme, plain)
        .unwrap_or_default()
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// A JSON value as the detail's lines.
type JsonLines = fn(&serde_json::Value, &Theme) -> Vec<Line<'static>>;

fn detail_with(app: &App, theme: &Theme, json: JsonLines) -> Option<Vec<Line<'static>>> {
    let detail = app.inspector.detail.get()?;
    if app.inspector.trigger {
        let chord = app
            .keymap
            .chord_for(app.view.context(), Command::Trigger)
            .map(|c| format!(" ({c})"))
            .unwrap_or_default();
        let mut text = vec![Line::styled(
            format!("trigger payload ({}){chord}", detail.run.trigger_kind),
            theme.title,
        )];
        text.extend(json(&detail.run.trigger, theme));
        return Some(text);
    }
    let steps = app.inspector.steps();
    steps
        .get(app.inspector.step)
        .map(|step| step_detail(step, theme, json))
}

/// A step's attempts, then its error (the cause first), its input and output, and an AI
/// step's provenance.
fn step_detail(step: &StepSummary<'_>, theme: &Theme, json: JsonLines) -> Vec<Line<'static>> {
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
        // The last attempt's error follows in full; earlier ones say theirs here.
        let error = match &attempt.error {
            Some(e) if attempt.id != last.id => {
                format!(" {}", e.message.lines().next().unwrap_or(""))
            }
            _ => String::new(),
        };
        text.push(Line::from(vec![
            Span::styled(
                format!("  #{} {} ", attempt.number, attempt.status),
                attempt_style(attempt.status, theme),
            ),
            Span::styled(
                format!("{} · {took}{retry}", clock(&attempt.started_at)),
                theme.dim,
            ),
            Span::styled(error, theme.error),
        ]));
    }
    if let Some(error) = &last.error {
        text.push(Line::styled("error", theme.header));
        text.push(Line::styled(error.message.clone(), theme.error));
    }
    text.push(Line::styled("input", theme.header));
    text.extend(json(&last.input, theme));
    text.push(Line::styled("output", theme.header));
    text.extend(json(&last.output, theme));
    if last.detail.get("provider").is_some() {
        text.push(Line::styled("AI provenance", theme.header));
        text.extend(json(&last.detail, theme));
    }
    text
}

fn attempt_ms(attempt: &crate::wire::AttemptView) -> Option<i64> {
    Some((attempt.finished_at? - attempt.started_at).num_milliseconds())
}

fn attempt_glyph(status: AttemptStatus) -> &'static str {
    match status.as_str() {
        "succeeded" => "✓",
        "failed" => "✗",
        "skipped" => "–",
        "throttled" => "‖",
        _ => "▶",
    }
}

fn attempt_style(status: AttemptStatus, theme: &Theme) -> ratatui::style::Style {
    match status.as_str() {
        "succeeded" => theme.run_succeeded,
        "failed" => theme.run_failed,
        "skipped" => theme.dim,
        "throttled" => theme.run_waiting,
        _ => theme.run_running,
    }
}
