//! What sits over the view: help generated from the keymap, the command and filter lines,
//! confirmations, the replay preview with the server's dry-run answer, and the payload editor.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::super::state::{App, Load, Overlay, Pending};
use super::super::theme::Theme;
use super::super::update::COMMANDS;
use super::centered;
use crate::wire::ReplayOn;

pub fn draw(frame: &mut Frame<'_>, body: Rect, app: &App, theme: &Theme) {
    match &app.overlay {
        Overlay::None => {}
        Overlay::Help => help(frame, body, app, theme),
        Overlay::Message { title, text } => {
            let lines: Vec<Line<'_>> = text
                .lines()
                .map(|l| Line::styled(l.to_owned(), theme.text))
                .collect();
            let height =
                (text.len() as u16 / 70 + text.lines().count() as u16 + 3).min(body.height);
            boxed(frame, body, title, lines, 76, height, theme);
        }
        Overlay::Command(input) => {
            let matches: Vec<&str> = COMMANDS
                .iter()
                .copied()
                .filter(|c| c.starts_with(input.as_str()))
                .collect();
            line(
                frame,
                body,
                format!(":{input}▏  {}", matches.join(" ")),
                theme,
            );
        }
        Overlay::Filter(input) => line(
            frame,
            body,
            format!("/{input}▏  (status:failed wf:KEY team:NAME, Enter keeps it, Esc closes)"),
            theme,
        ),
        Overlay::Confirm { question, .. } => {
            let text = vec![
                Line::styled(question.clone(), theme.text),
                Line::default(),
                Line::styled("y: yes    n / Esc: no", theme.key_hint),
            ];
            boxed(frame, body, " Confirm ", text, 60, 6, theme);
        }
        Overlay::Reason { prompt, input, .. } => {
            let text = vec![
                Line::styled(prompt.clone(), theme.text),
                Line::styled(format!("> {input}▏"), theme.title),
                Line::styled(
                    "Enter: discard (a reason is required)    Esc: cancel",
                    theme.key_hint,
                ),
            ];
            boxed(frame, body, " Discard ", text, 70, 6, theme);
        }
        Overlay::Preview { plan, then } => {
            let on = match then {
                Pending::Replay {
                    version: ReplayOn::Latest,
                    ..
                } => "on the latest published version (l: on each run's own version)",
                _ => "on each failed run's own version (l: on the latest published version)",
            };
            preview(frame, body, plan, on, theme)
        }
        Overlay::Editor { dlq, editor, error } => {
            let area = centered(
                body,
                body.width.saturating_sub(8),
                body.height.saturating_sub(2),
            );
            frame.render_widget(Clear, area);
            let block = Block::default()
                .borders(Borders::ALL)
                .border_style(theme.border_focus)
                .title(Span::styled(
                    format!(
                        " Trigger payload of entry {dlq} · ctrl-s check and replay · Esc cancel "
                    ),
                    theme.title,
                ));
            let inner = block.inner(area);
            frame.render_widget(block, area);
            let [text, status] =
                Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(inner);
            frame.render_widget(&**editor, text);
            let (message, style) = match error {
                Some(e) => (e.clone(), theme.error),
                None => (
                    "edit the JSON; it is checked before anything is replayed".into(),
                    theme.dim,
                ),
            };
            frame.render_widget(Paragraph::new(message).style(style), status);
        }
    }
}

fn line(frame: &mut Frame<'_>, body: Rect, text: String, theme: &Theme) {
    let area = Rect {
        y: body.y + body.height.saturating_sub(1),
        height: 1,
        ..body
    };
    frame.render_widget(Clear, area);
    frame.render_widget(Paragraph::new(text).style(theme.title), area);
}

fn boxed(
    frame: &mut Frame<'_>,
    body: Rect,
    title: &str,
    text: Vec<Line<'_>>,
    width: u16,
    height: u16,
    theme: &Theme,
) {
    let area = centered(body, width, height);
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(text).wrap(Wrap { trim: false }).block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(theme.border_focus)
                .title(Span::styled(title.to_owned(), theme.title)),
        ),
        area,
    );
}

fn help(frame: &mut Frame<'_>, body: Rect, app: &App, theme: &Theme) {
    let context = app.view.context();
    let read_only = app.read_only();
    let lines: Vec<Line<'_>> = app
        .keymap
        .help(context)
        .into_iter()
        .filter(|(command, _)| !(read_only && command.mutates()))
        .map(|(command, chords)| {
            let keys: Vec<String> = chords.iter().map(ToString::to_string).collect();
            Line::from(vec![
                Span::styled(format!("{:>18}  ", keys.join(" ")), theme.key_hint),
                Span::styled(command.help(), theme.text),
            ])
        })
        .collect();
    let height = (lines.len() as u16 + 2).min(body.height);
    let title = format!(
        " Keys: {} ({} keymap{}) · any key closes ",
        app.view.crumb(),
        app.keymap.name,
        if read_only { ", read-only" } else { "" }
    );
    boxed(frame, body, &title, lines, 76, height, theme);
}

fn preview(
    frame: &mut Frame<'_>,
    body: Rect,
    plan: &Load<crate::wire::ReplayPlan>,
    on: &str,
    theme: &Theme,
) {
    let mut text: Vec<Line<'_>> = Vec::new();
    match plan {
        Load::Idle | Load::Loading => text.push(Line::styled(
            "asking the server what would happen…",
            theme.dim,
        )),
        Load::Failed(e) => text.push(Line::styled(
            format!("the server refused the dry run: {e}"),
            theme.error,
        )),
        Load::Loaded(plan) => {
            text.push(Line::styled(
                format!(
                    "{} run(s) would start, on {}",
                    plan.count,
                    plan.workflows.join(", ")
                ),
                theme.title,
            ));
            text.push(Line::styled(on.to_owned(), theme.text));
            if !plan.records.is_empty() {
                let records: Vec<String> = plan
                    .records
                    .iter()
                    .take(12)
                    .map(ToString::to_string)
                    .collect();
                text.push(Line::styled(
                    format!("records: {}", records.join(", ")),
                    theme.text,
                ));
            }
            text.push(Line::default());
            text.push(Line::styled(
                "calls to outside systems that would happen again:",
                theme.header,
            ));
            for step in &plan.external_steps {
                let (key, style) = if step.idempotency_key {
                    (
                        "same idempotency key: the receiver can deduplicate",
                        theme.text,
                    )
                } else {
                    (
                        "NEW idempotency key: the effect can happen twice",
                        theme.warning,
                    )
                };
                text.push(Line::from(vec![
                    Span::styled(
                        format!(
                            "  {}@{} {} ({}) ×{}  ",
                            step.workflow, step.version, step.step_id, step.kind, step.runs
                        ),
                        theme.text,
                    ),
                    Span::styled(key, style),
                ]));
            }
            if plan.external_steps.is_empty() {
                text.push(Line::styled("  none", theme.dim));
            }
            text.push(Line::default());
            text.push(Line::styled(
                if plan.count > 0 {
                    "y: replay    n / Esc: cancel"
                } else {
                    "nothing to replay · Esc: close"
                },
                theme.key_hint,
            ));
        }
    }
    let height = (text.len() as u16 + 2).min(body.height);
    boxed(
        frame,
        body,
        " Replay preview (dry run) ",
        text,
        96,
        height,
        theme,
    );
}
