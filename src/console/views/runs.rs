//! The run explorer: only the visible rows are built.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Span;
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, Wrap};

use super::super::state::{App, Conn, duration_ms, glyph};
use super::super::theme::Theme;
use super::table::{ERROR_MIN, col, ellipsis, filter_mark, fit, number_width};
use super::{ago, short_duration};
use crate::wire::{DlqStatus, RunStatus, RunView, TriggerKind};

pub fn status_style(status: RunStatus, theme: &Theme) -> ratatui::style::Style {
    match status {
        RunStatus::Queued => theme.run_queued,
        RunStatus::Running => theme.run_running,
        RunStatus::Retrying => theme.run_retrying,
        RunStatus::Waiting | RunStatus::Held => theme.run_waiting,
        RunStatus::Succeeded => theme.run_succeeded,
        RunStatus::Failed => theme.run_failed,
        RunStatus::Cancelled => theme.run_cancelled,
    }
}

pub fn table(frame: &mut Frame<'_>, area: Rect, app: &App, theme: &Theme) {
    let runs = &app.runs;
    let mode = if runs.follow { "following" } else { "paused" };
    let filter = filter_mark(&runs.filter_text, app);
    // The title keeps what matters most when it must shorten: the counts and the filter.
    // `+`: older runs exist on the server than are loaded (they load as you scroll).
    let older = if runs.next_cursor.is_some() { "+" } else { "" };
    let mut title = format!(
        " Runs {}/{}{older}{filter} ",
        runs.visible.len(),
        runs.rows.len()
    );
    let room = usize::from(area.width.saturating_sub(4));
    for part in [
        format!("· {mode} "),
        format!("· sort {} {} ", runs.sort.label(), runs.sort.direction()),
        format!("· {} ", super::zone()),
    ] {
        if title.chars().count() + part.chars().count() <= room {
            title.push_str(&part);
        }
    }
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border)
        .title(Span::styled(title, theme.title));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if runs.visible.is_empty() {
        let text = match (&app.conn, runs.loaded) {
            (_, true) => "no runs match".to_owned(),
            (Conn::Rejected(_), false) => "nothing loaded: the server rejected the token".into(),
            (Conn::Reconnecting { error, .. }, false) => {
                format!("nothing loaded yet: {error}")
            }
            _ => "loading runs…".into(),
        };
        frame.render_widget(
            Paragraph::new(text)
                .style(theme.dim)
                .wrap(Wrap { trim: false }),
            inner,
        );
        return;
    }
    let id_width = number_width(6, runs.visible.iter().copied());
    // "✗ ↻ #1003041" outgrows "✓ succeeded": the column fits the widest status shown.
    let status_width = runs
        .visible
        .iter()
        .filter_map(|id| runs.rows.get(id))
        .map(|run| Span::raw(status_text(run)).width() as u16)
        .fold(11, u16::max);
    let cols = [
        col("STATUS", status_width, 9),
        col("ID", id_width, 8),
        col("WORKFLOW", if inner.width >= 140 { 26 } else { 20 }, 7),
        col("TRIGGER", 9, 2),
        col("STARTED", 7, 5),
        col("TOOK", 7, 3),
        col("TRIES", 5, 1),
    ];
    let (kept, last_width) = fit(&cols, inner.width, ERROR_MIN);
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
            let all = [
                Cell::from(Span::styled(status_text(run), style)),
                Cell::from(run.id.to_string()),
                Cell::from(ellipsis(
                    &format!("{}@{}", run.workflow, run.version),
                    cols[2].width,
                )),
                Cell::from(
                    run.record_id
                        .map(|r| format!("rec {r}"))
                        .unwrap_or_else(|| run.trigger_kind.to_string()),
                ),
                Cell::from(ago(&run.started_at.unwrap_or(run.queued_at))),
                Cell::from(duration),
                Cell::from(run.attempts.to_string()),
            ];
            let mut cells: Vec<Cell<'_>> = kept.iter().map(|k| all[*k].clone()).collect();
            cells.push(last_cell(run, last_width, theme));
            let row = Row::new(cells);
            Some(if offset + i == runs.selected {
                row.style(theme.selection)
            } else {
                row.style(theme.text)
            })
        });
    let mut widths: Vec<Constraint> = kept
        .iter()
        .map(|k| Constraint::Length(cols[*k].width))
        .collect();
    widths.push(Constraint::Min(ERROR_MIN));
    let mut header: Vec<&str> = kept.iter().map(|k| cols[*k].header).collect();
    header.push("ERROR / LINK");
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(theme.header))
        .column_spacing(1);
    frame.render_widget(table, inner);
}

/// A run's status as the table shows it: a failure someone handled says where it went
/// (`✗ ↻ #812` replayed as run 812, `✗ discarded`, `✗ retried`).
fn status_text(run: &RunView) -> String {
    match (run.status, run.replayed_as, run.dead_letter) {
        (RunStatus::Failed, Some(id), _) => format!("{} ↻ #{id}", glyph(run.status)),
        (RunStatus::Failed, None, Some(status)) if status != DlqStatus::Open => {
            format!("{} {status}", glyph(run.status))
        }
        _ => format!("{} {}", glyph(run.status), run.status),
    }
}

/// The last column of a run row: the error, or for a replay or re-run without one, the run
/// it repeats (`replay of #77`).
fn last_cell<'a>(run: &RunView, width: u16, theme: &Theme) -> Cell<'a> {
    if let Some(reason) = &run.held_reason {
        return Cell::from(Span::styled(ellipsis(reason, width), theme.run_waiting));
    }
    match (&run.error, run.origin_run, run.trigger_kind) {
        (Some(e), _, _) => Cell::from(Span::styled(
            ellipsis(e.message.lines().next().unwrap_or(""), width),
            theme.error,
        )),
        (None, Some(origin), TriggerKind::Replay | TriggerKind::Rerun) => Cell::from(Span::styled(
            format!("{} of #{origin}", run.trigger_kind),
            theme.dim,
        )),
        _ => Cell::from(""),
    }
}
