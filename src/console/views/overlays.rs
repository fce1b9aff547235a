//! What sits over the view: help generated from the keymap, the command and filter lines,
//! confirmations, the replay preview with the server's dry-run answer, and the payload editor.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::super::state::{App, Load, Overlay, Typed};
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
            let footer = Line::styled("↑↓ scroll · any other key closes", theme.key_hint);
            scrolled(
                frame,
                body,
                title,
                lines,
                footer,
                76,
                app.overlay_scroll,
                theme,
            );
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
        Overlay::Filter(input) => {
            let filter = match app.view {
                super::super::state::View::Dlq => &app.dlq.filter,
                _ => &app.runs.filter,
            };
            let help = filter.error.clone().unwrap_or_else(|| {
                "status:failed wf:KEY team:NAME since:1h · enter keeps · ctrl-u clears".into()
            });
            line(frame, body, format!("/{input}▏  ({help})"), theme)
        }
        Overlay::Search(input) => line(
            frame,
            body,
            format!("/{input}▏  (search the detail · enter keeps · esc clears · n / N move)"),
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
        Overlay::Reason {
            prompt,
            input,
            then,
        } => {
            let (title, enter) = match then {
                Typed::Discard(_) => (" Discard ", "discard (a reason is required)"),
                Typed::Pause(_) => (" Pause ", "pause (a reason is required)"),
                Typed::Hold => (" Hold ", "place the hold (admin)"),
            };
            let text = vec![
                Line::styled(prompt.clone(), theme.text),
                Line::styled(format!("> {input}▏"), theme.title),
                Line::styled(format!("Enter: {enter}    Esc: cancel"), theme.key_hint),
            ];
            boxed(frame, body, title, text, 70, 6, theme);
        }
        Overlay::Preview { plan, then } => {
            let (version, include) = then.replay_settings().unwrap_or((ReplayOn::Same, false));
            let on = match version {
                ReplayOn::Latest => {
                    "on the latest published version (l: on each run's own version)"
                }
                ReplayOn::Same => {
                    "on each failed run's own version (l: on the latest published version)"
                }
            };
            preview(frame, body, plan, on, include, app.overlay_scroll, theme)
        }
        Overlay::Picker(picker) => super::testing::picker(frame, body, picker, theme),
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

/// An input line at the body's foot; a line longer than the screen shows its end (where the
/// cursor is), led by `…`.
fn line(frame: &mut Frame<'_>, body: Rect, text: String, theme: &Theme) {
    let area = Rect {
        y: body.y + body.height.saturating_sub(1),
        height: 1,
        ..body
    };
    let width = usize::from(area.width);
    let chars: Vec<char> = text.chars().collect();
    let text = match chars.iter().position(|c| *c == '▏') {
        Some(cursor) if cursor + 1 > width => {
            let from = cursor + 2 - width;
            std::iter::once('…')
                .chain(chars[from..].iter().copied())
                .collect()
        }
        _ => text,
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

/// A box of `lines` scrolled by `scroll` with `footer` (its keys) always on its last line;
/// the title says when more is above or below.
#[allow(clippy::too_many_arguments)]
fn scrolled(
    frame: &mut Frame<'_>,
    body: Rect,
    title: &str,
    lines: Vec<Line<'_>>,
    footer: Line<'_>,
    width: u16,
    scroll: u16,
    theme: &Theme,
) {
    let inner_width = usize::from(width.min(body.width).saturating_sub(2)).max(1);
    // Lines as they wrap, so the box is as tall as its text and scrolling stops at the end.
    let rows: usize = lines
        .iter()
        .map(|l| l.width().div_ceil(inner_width).max(1))
        .sum();
    let height = (rows as u16 + 3).min(body.height);
    let area = centered(body, width, height);
    let visible = usize::from(height.saturating_sub(3));
    let scroll = usize::from(scroll).min(rows.saturating_sub(visible));
    let more = match (scroll > 0, scroll + visible < rows) {
        (true, true) => " ↑↓ more ",
        (true, false) => " ↑ more ",
        (false, true) => " ↓ more ",
        (false, false) => "",
    };
    frame.render_widget(Clear, area);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border_focus)
        .title(Span::styled(title.to_owned(), theme.title))
        .title_bottom(Span::styled(more, theme.dim));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [text, keys] = Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(inner);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .scroll((scroll as u16, 0)),
        text,
    );
    frame.render_widget(Paragraph::new(footer), keys);
}

fn help(frame: &mut Frame<'_>, body: Rect, app: &App, theme: &Theme) {
    let context = app.view.context();
    let read_only = app.read_only();
    let mut lines: Vec<Line<'_>> = app
        .keymap
        .help(context)
        .into_iter()
        .filter(|(command, _)| !(read_only && command.mutates()))
        .filter(|(command, _)| super::super::update::handles(app, *command))
        .map(|(command, chords)| {
            let keys: Vec<String> = chords.iter().map(ToString::to_string).collect();
            Line::from(vec![
                Span::styled(format!("{:>18}  ", keys.join(" ")), theme.key_hint),
                Span::styled(command.help(), theme.text),
            ])
        })
        .collect();
    lines.push(Line::default());
    lines.push(Line::styled("commands (after :)", theme.header));
    for (command, what) in COMMAND_HELP {
        lines.push(Line::from(vec![
            Span::styled(format!("{command:>18}  "), theme.key_hint),
            Span::styled(*what, theme.text),
        ]));
    }
    lines.push(Line::default());
    lines.push(Line::styled("legend", theme.header));
    for (symbol, what) in LEGEND {
        lines.push(Line::from(vec![
            Span::styled(format!("{symbol:>18}  "), theme.key_hint),
            Span::styled(*what, theme.text),
        ]));
    }
    let title = format!(
        " Keys: {} ({} keymap{}) ",
        app.view.crumb(),
        app.keymap.name,
        if read_only { ", read-only" } else { "" }
    );
    let footer = Line::styled("↑↓ scroll · any other key closes", theme.key_hint);
    scrolled(
        frame,
        body,
        &title,
        lines,
        footer,
        76,
        app.overlay_scroll,
        theme,
    );
}

/// Every `:` command with its argument.
const COMMAND_HELP: &[(&str, &str)] = &[
    (":runs  :r", "the run explorer"),
    (":dlq  :d", "dead letters"),
    (":health [TEAM]", "health, of one team if named"),
    (":alerts  :a", "alerts"),
    (":wf", "workflows and their versions"),
    (":audit", "the audit log"),
    (":holds", "holds (pauses) and maintenance windows"),
    (":run ID", "open run ID in the inspector"),
    (":record ID", "the field history of record ID"),
    (
        ":incident",
        "the demo's incident and how to triage it (acp demo)",
    ),
    (":fix", "end the demo's incident (acp demo)"),
    (":quit  :q", "quit"),
];

/// What the symbols mean (the same without colour).
const LEGEND: &[(&str, &str)] = &[
    ("· ▶ … ↻", "queued, running, waiting, retrying"),
    ("✓ ✗ ⊘", "succeeded, failed, cancelled"),
    ("‖", "held: a hold, a limit or a host that asked to wait"),
    (
        "↻ as #N",
        "a failed run whose dead letter was replayed as run N",
    ),
    ("replay of #N", "a replay (or re-run) of run N"),
    ("●", "a marked dead letter"),
    (
        "█ (steps)",
        "how long each step's last attempt took, to scale",
    ),
    (
        "▁▃▅ (health)",
        "runs and failures per interval of the window",
    ),
    (
        "? (header)",
        "a count not known (not loaded, or the server is away)",
    ),
];

#[allow(clippy::too_many_arguments)]
fn preview(
    frame: &mut Frame<'_>,
    body: Rect,
    plan: &Load<crate::wire::ReplayPlan>,
    on: &str,
    include_permanent: bool,
    scroll: u16,
    theme: &Theme,
) {
    let mut text: Vec<Line<'_>> = Vec::new();
    let mut footer = Line::styled("n / esc: cancel", theme.key_hint);
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
                    if plan.workflows.is_empty() {
                        "-".to_owned()
                    } else {
                        plan.workflows.join(", ")
                    }
                ),
                theme.title,
            ));
            text.push(Line::styled(on.to_owned(), theme.text));
            text.push(Line::default());
            text.push(Line::styled("the entries, by error:", theme.header));
            for group in &plan.groups {
                let (mark, style, note) = if group.replayed {
                    ("✓", theme.text, "")
                } else {
                    (
                        "–",
                        theme.dim,
                        " (held back: permanent, would fail again; i includes)",
                    )
                };
                text.push(Line::from(vec![
                    Span::styled(
                        format!("  {mark} {:>4} × {} ", group.count, group.class),
                        style,
                    ),
                    Span::styled(group.signature.clone(), style),
                    Span::styled(note, theme.warning),
                ]));
            }
            if include_permanent {
                text.push(Line::styled(
                    "  permanent failures included (i holds them back again)",
                    theme.warning,
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
            if !plan.records.is_empty() {
                text.push(Line::default());
                let records: Vec<String> = plan.records.iter().map(ToString::to_string).collect();
                text.push(Line::styled(
                    format!("records ({}): {}", plan.records.len(), records.join(", ")),
                    theme.text,
                ));
            }
            let held = if plan.held_back > 0 || include_permanent {
                " · i: include/hold back permanent"
            } else {
                ""
            };
            footer = Line::styled(
                if plan.count > 0 {
                    format!(
                        "y: replay {} · l: version{held} · n / esc: cancel",
                        plan.count
                    )
                } else {
                    format!("nothing to replay{held} · esc: close")
                },
                theme.key_hint,
            );
        }
    }
    scrolled(
        frame,
        body,
        " Replay preview (dry run) ",
        text,
        footer,
        96,
        scroll,
        theme,
    );
}
