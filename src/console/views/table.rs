//! The table every list screen draws: columns with priorities that drop the least important
//! first so the last one (the error, the name) keeps its room, cells cut with `…`, the
//! selection kept on screen; and the framed block and loading line around it.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::Span;
use ratatui::widgets::{Block, Borders, Row, Table};

use super::super::state::{App, Load};
use super::super::theme::Theme;
use super::placeholder;

pub(super) fn framed<'a>(title: String, theme: &Theme) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border)
        .title(Span::styled(title, theme.title))
}

/// A column: its header, its width and how much it matters (a higher `keep` stays longer
/// when the screen is narrow).
pub(super) struct Col {
    pub header: &'static str,
    pub width: u16,
    pub keep: u8,
}

pub(super) const fn col(header: &'static str, width: u16, keep: u8) -> Col {
    Col {
        header,
        width,
        keep,
    }
}

/// The width of a column of numbers: at least `min`, and enough for the widest of `values`
/// (ids and counts grow past any fixed width: run 1019999 must not show as 101999).
pub(super) fn number_width(min: u16, values: impl IntoIterator<Item = i64>) -> u16 {
    values
        .into_iter()
        .map(|v| v.to_string().len() as u16)
        .fold(min, u16::max)
}

/// Which of `cols` fit in `width` beside a last column of at least `last_min` (the error,
/// the name): the least important go first. Answers the kept columns' indices, in order, and
/// the width left for the last column.
pub(super) fn fit(cols: &[Col], width: u16, last_min: u16) -> (Vec<usize>, u16) {
    let mut kept: Vec<usize> = (0..cols.len()).collect();
    let need =
        |kept: &[usize]| -> u16 { kept.iter().map(|i| cols[*i].width + 1).sum::<u16>() + last_min };
    while need(&kept) > width {
        let Some(at) = (0..kept.len()).min_by_key(|at| cols[kept[*at]].keep) else {
            break;
        };
        kept.remove(at);
    }
    let last = width.saturating_sub(need(&kept) - last_min);
    (kept, last)
}

/// A table's title and columns; the last column takes what is left, at least `last_min`.
pub(super) struct Columns {
    pub title: String,
    pub cols: Vec<Col>,
    pub last: &'static str,
    pub last_min: u16,
}

/// A table of rows with one selected, scrolled so the selection shows. Each row has a cell
/// per column and one for the last; columns that do not fit are left out, least important
/// first.
pub(super) fn list(
    frame: &mut Frame<'_>,
    area: Rect,
    columns: Columns,
    rows: Vec<(Vec<Span<'static>>, Style)>,
    selected: usize,
    theme: &Theme,
) {
    let Columns {
        title,
        cols,
        last,
        last_min,
    } = columns;
    let block = framed(title, theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let (kept, last_width) = fit(&cols, inner.width, last_min);
    let height = inner.height.saturating_sub(1) as usize;
    let offset = match selected {
        usize::MAX => 0,
        selected => selected.saturating_sub(height.saturating_sub(1)),
    };
    let rows =
        rows.into_iter()
            .enumerate()
            .skip(offset)
            .take(height)
            .map(|(i, (mut cells, style))| {
                let mut last_cell = cells.pop().unwrap_or_default();
                last_cell.content = ellipsis(&last_cell.content, last_width).into();
                let mut shown: Vec<Span<'static>> = kept
                    .iter()
                    .map(|k| {
                        let mut cell = cells.get(*k).cloned().unwrap_or_default();
                        cell.content = ellipsis(&cell.content, cols[*k].width).into();
                        cell
                    })
                    .collect();
                shown.push(last_cell);
                let row = Row::new(shown);
                if i == selected {
                    row.style(theme.selection)
                } else {
                    row.style(style)
                }
            });
    let mut header: Vec<&str> = kept.iter().map(|k| cols[*k].header).collect();
    header.push(last);
    let mut widths: Vec<Constraint> = kept
        .iter()
        .map(|k| Constraint::Length(cols[*k].width))
        .collect();
    widths.push(Constraint::Min(last_min));
    frame.render_widget(
        Table::new(rows, widths)
            .header(Row::new(header).style(theme.header))
            .column_spacing(1),
        inner,
    );
}

pub(super) fn loading<T>(
    frame: &mut Frame<'_>,
    area: Rect,
    title: &str,
    load: &Load<T>,
    theme: &Theme,
) {
    let block = framed(format!(" {title} "), theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    frame.render_widget(placeholder(load, theme), inner);
}

/// The error column keeps at least this many characters at 80 columns: the cause shows.
pub(super) const ERROR_MIN: u16 = 30;

/// ` /filter (c clears)` for a title (a long filter cut to its first 40 characters), or
/// nothing without a filter.
pub(super) fn filter_mark(text: &str, app: &App) -> String {
    if text.is_empty() {
        return String::new();
    }
    let text = ellipsis(text, 40);
    let clear = app
        .keymap
        .chord_for(
            app.view.context(),
            crate::console::keymap::Command::ClearFilter,
        )
        .map(|c| format!(" ({c} clears)"))
        .unwrap_or_default();
    format!(" /{text}{clear}")
}

/// `text` cut to `width` columns with `…` when it is longer.
pub(super) fn ellipsis(text: &str, width: u16) -> String {
    let width = usize::from(width);
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}
