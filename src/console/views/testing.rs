//! The test screen: one row per input, then the selected input's step timeline, per-record
//! diff (`-` before, `+` after), the requests it would send and the workflows it would start.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::super::state::{App, Load, Picker, candidate_label, glyph};
use super::super::theme::Theme;
use super::table::{Columns, col, framed, list, loading};
use crate::wire::{
    DiffMark, RunStatus, TestInput, TestReport, TestResult, TestStepStatus, TestVersion,
};

/// What the test ran on, in a word or two.
fn input_label(input: &TestInput) -> String {
    match input {
        TestInput::Record { record_id } => format!("record {record_id} as it is now"),
        TestInput::Payload { payload } => match payload.pointer("/record/id") {
            Some(id) => format!("record {id} (trigger) {}", values_of(payload)),
            None => payload.to_string(),
        },
    }
}

fn values_of(payload: &serde_json::Value) -> String {
    payload
        .pointer("/record/values")
        .map(ToString::to_string)
        .unwrap_or_default()
}

fn version_label(version: i64) -> String {
    match version {
        0 => "draft".into(),
        n => format!("v{n}"),
    }
}

pub fn test(frame: &mut Frame<'_>, area: Rect, app: &App, theme: &Theme) {
    let screen = &app.test;
    let Some(report) = screen.report.get() else {
        let title = format!("Testing {} (nothing is written or sent)", screen.workflow);
        return loading(frame, area, &title, &screen.report, theme);
    };
    let rows_height = (report.results.len() as u16 + 3).clamp(4, (area.height / 3).max(4));
    let [top, bottom] =
        Layout::vertical([Constraint::Length(rows_height), Constraint::Min(3)]).areas(area);
    let compared = report.compare.as_ref();
    let rows = report
        .results
        .iter()
        .enumerate()
        .map(|(i, result)| {
            let differs = compared
                .and_then(|c| c.inputs.get(i))
                .map(|c| {
                    if c.same_status && c.same_writes && c.same_calls {
                        "same".to_owned()
                    } else {
                        format!("was {}", glyph(c.compared_status))
                    }
                })
                .unwrap_or_default();
            let style = status_style(result.status, theme);
            (
                vec![
                    Span::styled(format!("{} {}", glyph(result.status), result.status), style),
                    Span::raw(result.writes.len().to_string()),
                    Span::raw(result.would_trigger.len().to_string()),
                    Span::styled(differs, theme.warning),
                    Span::raw(input_label(&result.input)),
                ],
                theme.text,
            )
        })
        .collect();
    let summary = match compared {
        Some(c) => format!(
            " · vs {}: {} of {} now fail, {} differ ",
            version_label(c.version),
            c.now_fail,
            c.inputs.len(),
            c.differ
        ),
        None if app.tests_published() => " ".to_owned(),
        None => " · c compares with the published version ".to_owned(),
    };
    list(
        frame,
        top,
        Columns {
            title: format!(
                " Test of {} {}{summary}",
                report.workflow,
                version_label(report.version)
            ),
            cols: vec![
                col("STATUS", 11, 9),
                col("WRITES", 6, 5),
                col("STARTS", 6, 4),
                col("VS", 5, 6),
            ],
            last: "INPUT (tab: next)",
            last_min: 20,
        },
        rows,
        screen.selected,
        theme,
    );
    let lines: Vec<Line<'_>> = detail(report, screen.selected)
        .into_iter()
        .map(|(tone, text)| Line::styled(text, tone.style(theme)))
        .collect();
    let title = match report.results.get(screen.selected) {
        Some(r) => format!(
            " input {} · test run {} · nothing was written or sent ",
            screen.selected + 1,
            r.run_id
        ),
        None => " no input ".to_owned(),
    };
    frame.render_widget(
        Paragraph::new(lines)
            .block(framed(title, theme))
            .wrap(Wrap { trim: false })
            .scroll((screen.scroll, 0)),
        bottom,
    );
}

fn status_style(status: RunStatus, theme: &Theme) -> Style {
    match status {
        RunStatus::Succeeded => theme.run_succeeded,
        RunStatus::Failed => theme.run_failed,
        _ => theme.text,
    }
}

/// The selected result's detail as plain text (scrolling measures it).
pub(crate) fn detail_text(app: &App) -> Vec<String> {
    app.test
        .report
        .get()
        .map(|report| {
            detail(report, app.test.selected)
                .into_iter()
                .map(|(_, text)| text)
                .collect()
        })
        .unwrap_or_default()
}

/// How a line of the detail is drawn.
#[derive(Debug, Clone, Copy)]
enum Tone {
    Text,
    Dim,
    Title,
    Header,
    Error,
    Warning,
    Added,
    Removed,
    Status(RunStatus),
    Step(TestStepStatus),
}

impl Tone {
    fn style(self, theme: &Theme) -> Style {
        match self {
            Self::Text => theme.text,
            Self::Dim => theme.dim,
            Self::Title => theme.title,
            Self::Header => theme.header,
            Self::Error => theme.error,
            Self::Warning => theme.warning,
            Self::Added => theme.diff_add,
            Self::Removed => theme.diff_remove,
            Self::Status(status) => status_style(status, theme),
            Self::Step(TestStepStatus::Succeeded) => theme.run_succeeded,
            Self::Step(TestStepStatus::Failed) => theme.run_failed,
            Self::Step(TestStepStatus::NotSent) => theme.warning,
            Self::Step(_) => theme.dim,
        }
    }
}

/// One result: steps, the net per-record diff, the calls it would make, what it would start,
/// and how it compared.
fn detail(report: &TestReport, selected: usize) -> Vec<(Tone, String)> {
    let Some(result) = report.results.get(selected) else {
        return Vec::new();
    };
    let mut lines = vec![(
        Tone::Status(result.status),
        format!("{} · {}", result.status, input_label(&result.input)),
    )];
    if let Some(error) = &result.error {
        lines.push((Tone::Error, error.message.clone()));
    }
    if let Some(note) = &result.note {
        lines.push((Tone::Warning, note.clone()));
    }
    lines.push((Tone::Header, "STEPS".into()));
    lines.extend(steps(result));
    lines.push((Tone::Header, "WOULD WRITE".into()));
    if result.writes.is_empty() {
        lines.push((Tone::Dim, "  no record changes".into()));
    }
    for write in &result.writes {
        for (mark, text) in write.lines() {
            let (tone, indent) = match mark {
                DiffMark::Record => (Tone::Title, "  "),
                DiffMark::Removed => (Tone::Removed, "    "),
                DiffMark::Added => (Tone::Added, "    "),
                DiffMark::Unchanged => (Tone::Dim, "    "),
            };
            lines.push((tone, format!("{indent}{}{text}", mark.marker())));
        }
    }
    let calls: Vec<_> = result
        .steps
        .iter()
        .filter_map(|s| Some((s, s.would_call.as_ref()?)))
        .collect();
    lines.push((Tone::Header, "WOULD CALL".into()));
    if calls.is_empty() {
        lines.push((Tone::Dim, "  no outside calls".into()));
    }
    for (step, call) in calls {
        lines.push((
            Tone::Text,
            format!("  {} {} {}", step.id, call.method, call.url),
        ));
        if !call.body.is_null() {
            lines.push((Tone::Dim, format!("    {}", call.body)));
        }
    }
    lines.push((Tone::Header, "WOULD START".into()));
    if result.would_trigger.is_empty() {
        lines.push((Tone::Dim, "  no other workflow".into()));
    }
    for hit in &result.would_trigger {
        let record = hit.record();
        let fields = hit.fields.join(", ");
        lines.push((
            Tone::Warning,
            format!(
                "  {} v{} on {record} ({fields} changed)",
                hit.workflow, hit.version
            ),
        ));
    }
    if let Some(compare) = &report.compare
        && let (Some(input), Some(theirs)) =
            (compare.inputs.get(selected), compare.results.get(selected))
    {
        let against = version_label(compare.version);
        lines.push((Tone::Header, format!("COMPARED WITH {against}")));
        let verdict = |same: bool| if same { "same" } else { "differ" };
        let same = input.same_status && input.same_writes && input.same_calls;
        lines.push((
            if same { Tone::Dim } else { Tone::Warning },
            format!(
                "  status {} → {} · writes {} · calls {} (test run {})",
                input.compared_status,
                input.status,
                verdict(input.same_writes),
                verdict(input.same_calls),
                theirs.run_id
            ),
        ));
    }
    lines
}

fn steps(result: &TestResult) -> Vec<(Tone, String)> {
    result
        .steps
        .iter()
        .map(|step| {
            let mark = match step.status {
                TestStepStatus::Succeeded => "✓",
                TestStepStatus::Failed => "✗",
                TestStepStatus::Skipped => "-",
                TestStepStatus::NotSent => "○",
                TestStepStatus::NotRun => " ",
            };
            let mut what = match (&step.would_call, &step.response) {
                (Some(call), Some(r)) => {
                    format!("{} {} → {} ({})", call.method, call.url, r.status, r.source)
                }
                (Some(call), None) => format!(
                    "{} {} not sent (no mock or recorded answer)",
                    call.method, call.url
                ),
                _ => step.status.to_string(),
            };
            if let Some(write) = step.writes.first() {
                let changed = write.changed();
                what = format!("{} {} ({changed} changed)", write.op, write.object);
            }
            if let Some(error) = &step.error {
                what = error.message.clone();
            }
            (
                Tone::Step(step.status),
                format!("  {mark} {:<14} {what}", step.id),
            )
        })
        .collect()
}

/// The picker over the body: the recent triggers narrowed by the query, marks, and keys.
pub fn picker(frame: &mut Frame<'_>, body: Rect, picker: &Picker, theme: &Theme) {
    let area = super::centered(
        body,
        body.width.saturating_sub(4),
        body.height.saturating_sub(2),
    );
    frame.render_widget(ratatui::widgets::Clear, area);
    let version = match picker.version {
        TestVersion::Draft => "the draft".to_owned(),
        TestVersion::Published => "the published version".to_owned(),
        TestVersion::Number(n) => format!("v{n}"),
    };
    let block = ratatui::widgets::Block::default()
        .borders(ratatui::widgets::Borders::ALL)
        .border_style(theme.border_focus)
        .title(Span::styled(
            format!(" Test {} of {} on: ", version, picker.workflow),
            theme.title,
        ));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [query, rows, keys] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(inner);
    frame.render_widget(
        Paragraph::new(format!("> {}▏", picker.query)).style(theme.title),
        query,
    );
    let mut lines = Vec::new();
    if let Some(record) = picker.record() {
        lines.push(Line::styled(
            format!("Enter: test on record {record} as it is now"),
            theme.selection,
        ));
    } else if let Some(text) = match &picker.runs {
        Load::Loaded(_) => None,
        Load::Failed(e) => Some(format!("could not load the recent triggers: {e}")),
        _ => Some("loading the recent triggers…".to_owned()),
    } {
        lines.push(Line::styled(text, theme.dim));
    } else {
        let shown = picker.shown();
        if shown.is_empty() {
            lines.push(Line::styled(
                "no recent trigger matches; type #ID to test on a record",
                theme.dim,
            ));
        }
        let height = usize::from(rows.height);
        let offset = picker.selected.saturating_sub(height.saturating_sub(1));
        for (i, (run, _)) in shown.iter().enumerate().skip(offset).take(height) {
            let mark = if picker.marked.contains(&run.id) {
                "● "
            } else {
                "  "
            };
            let style = if i == picker.selected {
                theme.selection
            } else {
                theme.text
            };
            lines.push(Line::styled(
                format!("{mark}{}", candidate_label(run)),
                style,
            ));
        }
    }
    frame.render_widget(Paragraph::new(lines), rows);
    frame.render_widget(
        Paragraph::new(
            "type to narrow · #ID a record · space mark · ctrl-a all · enter test · esc",
        )
        .style(theme.key_hint),
        keys,
    );
}
