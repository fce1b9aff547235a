//! Drawing: a pure function of the state and the theme. The header shows where you are and the
//! counts that matter; the status bar always shows the connection, the role and the last
//! outcome; overlays (help, command line, confirmations, replay preview, editor) sit on top.

mod audit;
mod health;
mod holds;
mod incidents;
mod inspector;
mod lists;
mod overlays;
mod runs;
mod table;
mod testing;
#[cfg(test)]
mod tests;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::state::{App, Conn, View};
use super::theme::Theme;

pub(crate) use inspector::{detail_text, detail_width};
pub(crate) use testing::detail_text as test_detail_text;

/// The smallest terminal the console lays out for.
pub const MIN: (u16, u16) = (80, 24);

/// Draws the whole screen.
pub fn draw(frame: &mut Frame<'_>, app: &App, theme: &Theme) {
    draw_screen(frame, app, theme);
    // Whatever the server sent (a reason, a record value, an error) reaches the terminal
    // only as text: an escape or a bidi override in data never becomes a terminal command.
    for cell in frame.buffer_mut().content.iter_mut() {
        if cell.symbol().contains(crate::wire::is_unsafe_char) {
            cell.set_symbol("\u{FFFD}");
        }
    }
}

fn draw_screen(frame: &mut Frame<'_>, app: &App, theme: &Theme) {
    let area = frame.area();
    if area.width < MIN.0 || area.height < MIN.1 {
        let text = format!(
            "The terminal is {}x{}; the console needs at least {}x{}. Enlarge it (keys wait until then; q quits).",
            area.width, area.height, MIN.0, MIN.1
        );
        frame.render_widget(
            Paragraph::new(text)
                .style(theme.warning)
                .wrap(Default::default()),
            area,
        );
        return;
    }
    let banner = banner(app);
    let message = message_lines(app, area.width);
    let [header, banner_area, body, message_area, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(u16::from(banner.is_some())),
        Constraint::Min(1),
        Constraint::Length(message.len() as u16),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_header(frame, header, app, theme);
    if let Some(text) = banner {
        frame.render_widget(Paragraph::new(text).style(theme.warning), banner_area);
    }
    match &app.view {
        View::Runs => runs::table(frame, body, app, theme),
        View::Inspector { .. } => inspector::inspector(frame, body, app, theme),
        View::Dlq => lists::dlq(frame, body, app, theme),
        View::Health => health::health(frame, body, app, theme),
        View::Alerts => lists::alerts(frame, body, app, theme),
        View::Workflows => lists::workflows(frame, body, app, theme),
        View::Versions { .. } => lists::versions(frame, body, app, theme),
        View::Diff { .. } => lists::diff(frame, body, app, theme),
        View::Test { .. } => testing::test(frame, body, app, theme),
        View::Audit => audit::audit(frame, body, app, theme),
        View::Record { .. } => audit::record(frame, body, app, theme),
        View::Holds => holds::holds(frame, body, app, theme),
        View::Incidents => incidents::incidents(frame, body, app, theme),
        View::Incident { .. } => incidents::incident(frame, body, app, theme),
    }
    if let Some((_, is_error)) = &app.toast {
        let style = if *is_error { theme.error } else { theme.text };
        frame.render_widget(
            Paragraph::new(message).style(style.patch(theme.status_bar)),
            message_area,
        );
    }
    draw_status(frame, status, app, theme);
    overlays::draw(frame, body, app, theme);
}

/// Most lines an action's message takes above the status bar.
const MESSAGE_LINES: usize = 3;

/// The last outcome or refusal, wrapped to the screen's width (at most [`MESSAGE_LINES`]
/// lines, the last one ending in `…` if it had to be cut).
fn message_lines(app: &App, width: u16) -> Vec<Line<'static>> {
    let Some((text, _)) = &app.toast else {
        return Vec::new();
    };
    let width = usize::from(width.saturating_sub(2)).max(10);
    // Word-wrapped; a word longer than a line is split.
    let mut lines: Vec<String> = vec![String::new()];
    for word in format!("» {text}").split(' ') {
        let mut word: Vec<char> = word.chars().collect();
        loop {
            let line = lines.last_mut().expect("a line");
            let used = line.chars().count();
            let gap = usize::from(used > 0);
            if used + gap + word.len() <= width {
                if gap == 1 {
                    line.push(' ');
                }
                line.extend(word.iter());
                break;
            }
            if used == 0 {
                line.extend(word.drain(..width));
            }
            lines.push(String::new());
        }
    }
    if lines.len() > MESSAGE_LINES {
        lines.truncate(MESSAGE_LINES);
        if let Some(last) = lines.last_mut() {
            last.pop();
            last.push('…');
        }
    }
    lines.into_iter().map(Line::from).collect()
}

/// While the server is away or refuses the token: what the screens show and how old it is.
fn banner(app: &App) -> Option<String> {
    match (&app.conn, app.offline_since) {
        (Conn::Rejected(_), _) => {
            Some(" ✕ token rejected: nothing loads until it changes (--token / ACP_TOKEN)".into())
        }
        (Conn::Live, _) | (_, None) => None,
        (_, Some(since)) => {
            let cached = app.runs.loaded || app.me.get().is_some();
            Some(if cached {
                format!(
                    " ✕ offline: showing what was cached {} ({}); changes disabled",
                    ago(&since),
                    clock(&since)
                )
            } else {
                format!(
                    " ✕ cannot reach {}: retrying; nothing is known yet",
                    app.server
                )
            })
        }
    }
}

fn draw_header(frame: &mut Frame<'_>, area: Rect, app: &App, theme: &Theme) {
    let right = header_counts(app, theme);
    let width: u16 = right.iter().map(|s| s.width() as u16).sum();
    let [left_area, right_area] =
        Layout::horizontal([Constraint::Min(1), Constraint::Length(width)]).areas(area);
    // One column stays blank between the way here and the counts.
    let room = usize::from(left_area.width.saturating_sub(1));
    frame.render_widget(Line::from(breadcrumbs(app, theme, room)), left_area);
    frame.render_widget(Line::from(right), right_area);
}

/// ` ACP › … › runs › inspector`: the newest steps of the way here that fit in `room`
/// columns; older ones fold into `…`, and a step too long for what is left is cut with `…`.
fn breadcrumbs<'a>(app: &App, theme: &Theme, room: usize) -> Vec<Span<'a>> {
    let mut crumbs: Vec<Span<'a>> = vec![Span::styled(" ACP ", theme.title)];
    let mut left = room.saturating_sub(crumbs[0].width());
    let path: Vec<String> = app
        .history
        .iter()
        .chain(std::iter::once(&app.view))
        .map(View::crumb)
        .collect();
    let mut shown: Vec<String> = Vec::new();
    for crumb in path.iter().rev() {
        let cost = crumb.chars().count() + 3;
        let fold = if shown.len() + 1 < path.len() { 4 } else { 0 };
        if cost + fold <= left {
            left -= cost;
            shown.push(crumb.clone());
        } else if shown.is_empty() {
            let keep = left.saturating_sub(4 + fold);
            shown.push(format!("{}…", crumb.chars().take(keep).collect::<String>()));
            left = fold;
            break;
        } else {
            break;
        }
    }
    if shown.len() < path.len() && left >= 4 {
        crumbs.push(Span::styled("› … ", theme.dim));
    }
    for crumb in shown.into_iter().rev() {
        crumbs.push(Span::styled("› ", theme.dim));
        crumbs.push(Span::styled(format!("{crumb} "), theme.text));
    }
    crumbs
}

/// A count in about five characters: 9999, 12.3k, 123k, 1.0M.
fn compact(n: i64) -> String {
    match n {
        ..=9_999 => n.to_string(),
        10_000..=99_999 => format!("{:.1}k", n as f64 / 1e3),
        100_000..=999_999 => format!("{:.0}k", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

/// The counters at the header's right; a count not loaded yet (or lost with the server) is
/// `?`, never a reassuring 0.
fn header_counts<'a>(app: &App, theme: &Theme) -> Vec<Span<'a>> {
    let known = |n: Option<usize>| n.map_or_else(|| "?".to_owned(), |n| n.to_string());
    let counts = &app.runs.counts;
    let mut right: Vec<Span<'a>> = Vec::new();
    // A count over a partly loaded list is a floor: `12+`.
    let older = app.runs.next_cursor.is_some();
    for (status, style, partial) in [
        ("running", theme.run_running, older),
        ("retrying", theme.run_retrying, older),
        ("failed", theme.run_failed, !app.runs.failures_complete),
    ] {
        let count = app
            .runs
            .loaded
            .then(|| counts.get(status).copied().unwrap_or(0));
        let plus = if partial && count.is_some() { "+" } else { "" };
        right.push(Span::styled(
            format!("{status} {}{plus} ", known(count)),
            style,
        ));
    }
    // Held runs (holds, limits, a host that asked to wait), shown while there are any.
    if let Some(held) = app
        .runs
        .loaded
        .then(|| counts.get("held").copied().unwrap_or(0))
        .filter(|n| *n > 0)
    {
        let plus = if older { "+" } else { "" };
        right.push(Span::styled(
            format!("held {held}{plus} "),
            theme.run_waiting,
        ));
    }
    // Outcomes over the last 24 hours, from the server's rollups (whatever the list holds).
    let day = app.totals.get().map(|t| {
        t.workflows.iter().fold((0, 0), |(ok, failed), w| {
            (ok + w.counts.succeeded, failed + w.counts.failed)
        })
    });
    right.push(Span::styled(
        match day {
            Some((ok, failed)) => format!("24h ✓{} ✗{} ", compact(ok), compact(failed)),
            None => "24h ? ".to_owned(),
        },
        theme.run_succeeded,
    ));
    let dlq = app.dlq.entries.get().map(Vec::len);
    right.push(Span::styled(
        format!("dlq {}{} ", known(dlq), if app.dlq.more { "+" } else { "" }),
        if dlq.unwrap_or(0) > 0 {
            theme.dlq_badge
        } else {
            theme.dim
        },
    ));
    let firing = app.alerts.items.get().map(|_| app.firing().len());
    right.push(Span::styled(
        format!("alerts {} ", known(firing)),
        if firing.unwrap_or(0) > 0 {
            theme.alert_firing
        } else {
            theme.dim
        },
    ));
    right
}

fn draw_status(frame: &mut Frame<'_>, area: Rect, app: &App, theme: &Theme) {
    let (conn, conn_style) = match &app.conn {
        Conn::Connecting => ("◌ connecting".to_owned(), theme.conn_reconnecting),
        Conn::Live => ("● live".to_owned(), theme.conn_live),
        Conn::Reconnecting {
            attempt,
            next_in_secs,
            ..
        } if *attempt > 3 => (
            format!("✕ offline (attempt {attempt}, next try in {next_in_secs}s)"),
            theme.conn_offline,
        ),
        Conn::Reconnecting {
            attempt,
            next_in_secs,
            ..
        } => (
            format!("◌ reconnecting (attempt {attempt}, next try in {next_in_secs}s)"),
            theme.conn_reconnecting,
        ),
        Conn::Rejected(_) => (
            "✕ token rejected: check --token / ACP_TOKEN".to_owned(),
            theme.conn_offline,
        ),
    };
    let role = match (&app.me, app.read_only_flag) {
        (_, true) => "read-only".to_owned(),
        (super::state::Load::Loaded(me), false) => format!("{} ({})", me.name, me.role),
        _ => "…".to_owned(),
    };
    let spans = vec![
        Span::styled(format!(" {conn} "), conn_style.patch(theme.status_bar)),
        Span::styled(format!("│ {role} │ {} ", app.server), theme.status_bar),
    ];
    let hint = format!(" {}  ", hints(app));
    let hint_width = hint.chars().count() as u16;
    let [left, right] =
        Layout::horizontal([Constraint::Min(1), Constraint::Length(hint_width)]).areas(area);
    frame.render_widget(
        Paragraph::new(Line::from(spans)).style(theme.status_bar),
        left,
    );
    frame.render_widget(
        Paragraph::new(Span::styled(hint, theme.key_hint.patch(theme.status_bar)))
            .style(theme.status_bar),
        right,
    );
}

/// The few keys worth knowing on this screen, from the active keymap (only those that do
/// something here).
fn hints(app: &App) -> String {
    use super::keymap::Command;
    key_hints(
        app,
        &[
            (Command::Help, "help"),
            (Command::CommandMode, "cmd"),
            (Command::Back, "back"),
        ],
        "  ",
    )
}

/// `chord label` for each of `commands` this screen handles and this console may run, as
/// the active keymap binds them, joined by `separator`.
pub(super) fn key_hints(
    app: &App,
    commands: &[(super::keymap::Command, &str)],
    separator: &str,
) -> String {
    commands
        .iter()
        .filter(|(command, _)| super::update::handles(app, *command))
        .filter(|(command, _)| super::update::role_refusal(app, *command).is_none())
        .filter_map(|(command, label)| {
            app.keymap
                .chord_for(app.view.context(), *command)
                .map(|c| format!("{c} {label}"))
        })
        .collect::<Vec<_>>()
        .join(separator)
}

/// A centred rectangle of `width` x `height` inside `area`.
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

/// A line saying that something is loading or could not be loaded (nothing once it has).
pub fn placeholder<T>(load: &super::state::Load<T>, theme: &Theme) -> Paragraph<'static> {
    use super::state::Load;
    let (text, style): (String, Style) = match load {
        Load::Idle | Load::Loading => ("loading…".into(), theme.dim),
        Load::Failed(e) => (format!("could not load: {e}"), theme.error),
        Load::Loaded(_) => (String::new(), theme.dim),
    };
    Paragraph::new(text).style(style)
}

/// `2m 05s`-style durations.
pub fn short_duration(ms: i64) -> String {
    match ms {
        ms if ms < 1000 => format!("{ms}ms"),
        ms if ms < 60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        ms if ms < 3_600_000 => format!("{}m {:02}s", ms / 60_000, (ms / 1000) % 60),
        ms => format!("{}h {:02}m", ms / 3_600_000, (ms / 60_000) % 60),
    }
}

/// Times are shown in UTC instead of the viewer's zone (`acp console --utc`).
pub static UTC: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// "Now" for relative times, in Unix milliseconds; 0 means the real clock (snapshot tests
/// set a fixed moment).
pub static NOW_MS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

fn now() -> chrono::DateTime<chrono::Utc> {
    match NOW_MS.load(std::sync::atomic::Ordering::Relaxed) {
        0 => chrono::Utc::now(),
        ms => chrono::DateTime::from_timestamp_millis(ms).unwrap_or_else(chrono::Utc::now),
    }
}

/// How long ago, in at most 8 columns: `now`, `42s ago`, `12m ago`, `3h ago`, `5d ago`.
pub fn ago(at: &chrono::DateTime<chrono::Utc>) -> String {
    let secs = (now() - *at).num_seconds();
    match secs {
        ..5 => "now".into(),
        5..60 => format!("{secs}s ago"),
        60..3600 => format!("{}m ago", secs / 60),
        3600..86_400 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}

/// The full date and time with its zone, `2026-11-30 21:04:05 +01:00`, for the inspector.
pub fn datetime(at: &chrono::DateTime<chrono::Utc>) -> String {
    if UTC.load(std::sync::atomic::Ordering::Relaxed) {
        return at.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    }
    at.with_timezone(&chrono::Local)
        .format("%Y-%m-%d %H:%M:%S %:z")
        .to_string()
}

/// `21:04:05` today, `11-28 21:04` otherwise, in the viewer's time zone (`TZ`) or UTC; the
/// tables' titles name the zone ([`zone`]).
pub fn clock(at: &chrono::DateTime<chrono::Utc>) -> String {
    if UTC.load(std::sync::atomic::Ordering::Relaxed) {
        return short_clock(at, chrono::Utc::now());
    }
    let local = at.with_timezone(&chrono::Local);
    short_clock(&local, chrono::Local::now())
}

fn short_clock<Tz: chrono::TimeZone>(at: &chrono::DateTime<Tz>, now: chrono::DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    if at.date_naive() == now.date_naive() {
        at.format("%H:%M:%S").to_string()
    } else {
        at.format("%m-%d %H:%M").to_string()
    }
}

/// The zone times are shown in: `UTC`, or the local offset such as `+01:00`.
pub fn zone() -> String {
    if UTC.load(std::sync::atomic::Ordering::Relaxed) {
        return "UTC".into();
    }
    match chrono::Local::now().offset().to_string().as_str() {
        "+00:00" => "UTC".into(),
        offset => offset.to_owned(),
    }
}
