//! The terminal: raw mode and the alternate screen (restored on quit, on panic and on
//! SIGTERM or SIGHUP), synchronized output, drawing after each message (ticks every 2 s
//! included) and at most 30 frames a second. The loop waits on keys, messages, a tick and
//! signals; it never awaits the network.

use std::io::{Write, stdout};
use std::time::{Duration, Instant};

use crossterm::event::{
    DisableMouseCapture, EnableMouseCapture, Event, EventStream, KeyEventKind, MouseEventKind,
};
use crossterm::terminal::{
    BeginSynchronizedUpdate, EndSynchronizedUpdate, EnterAlternateScreen, LeaveAlternateScreen,
    disable_raw_mode, enable_raw_mode,
};
use crossterm::{cursor, execute, queue};
use futures_util::StreamExt;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::sync::mpsc::UnboundedReceiver;

use super::client::Client;
use super::keymap::Command;
use super::msg::Msg;
use super::state::App;
use super::theme::Theme;
use super::{drain, perform, update, views};

const FRAME: Duration = Duration::from_millis(33);

fn restore(mouse: bool) {
    let _ = disable_raw_mode();
    if mouse {
        let _ = execute!(stdout(), DisableMouseCapture);
    }
    let _ = execute!(stdout(), LeaveAlternateScreen, cursor::Show);
}

pub async fn run(
    mut app: App,
    theme: Theme,
    client: Client,
    mut rx: UnboundedReceiver<Msg>,
    mouse: bool,
) -> anyhow::Result<()> {
    enable_raw_mode()?;
    execute!(stdout(), EnterAlternateScreen, cursor::Hide)?;
    if mouse {
        execute!(stdout(), EnableMouseCapture)?;
    }
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore(mouse);
        previous(info);
    }));
    let result = event_loop(&mut app, &theme, &client, &mut rx).await;
    restore(mouse);
    result
}

async fn event_loop(
    app: &mut App,
    theme: &Theme,
    client: &Client,
    rx: &mut UnboundedReceiver<Msg>,
) -> anyhow::Result<()> {
    let mut terminal = Terminal::new(CrosstermBackend::new(stdout()))?;
    let mut keys = EventStream::new();
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    #[cfg(unix)]
    let mut term_signal =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    // The terminal went away (an SSH session dropped, tmux killed): leave like on SIGTERM, so
    // whoever opened the console (`acp demo`) still cleans up.
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut streaming = false;
    let mut effects = update::start();
    if let Ok(size) = terminal.size() {
        effects.extend(update::update(app, Msg::Resize(size.width, size.height)));
    }
    effects.extend(update::update(app, Msg::Tick));
    perform(client, effects, &mut streaming, &mut stdout());
    let mut dirty = true;
    let mut last_draw = Instant::now() - FRAME;
    loop {
        if dirty && last_draw.elapsed() >= FRAME {
            let mut out = stdout();
            queue!(out, BeginSynchronizedUpdate)?;
            terminal.draw(|frame| views::draw(frame, app, theme))?;
            queue!(terminal.backend_mut(), EndSynchronizedUpdate)?;
            terminal.backend_mut().flush()?;
            last_draw = Instant::now();
            dirty = false;
        }
        let wait = if dirty {
            FRAME.saturating_sub(last_draw.elapsed())
        } else {
            Duration::from_secs(3600)
        };
        #[cfg(unix)]
        let terminated = async {
            tokio::select! {
                _ = term_signal.recv() => {}
                _ = hangup.recv() => {}
            }
        };
        #[cfg(not(unix))]
        let terminated = std::future::pending::<()>();
        let msg = tokio::select! {
            event = keys.next() => match event {
                Some(Ok(Event::Key(key))) if key.kind != KeyEventKind::Release => Some(Msg::Key(key)),
                Some(Ok(Event::Mouse(mouse))) => {
                    let command = match mouse.kind {
                        MouseEventKind::ScrollDown => Some(Command::Down),
                        MouseEventKind::ScrollUp => Some(Command::Up),
                        _ => None,
                    };
                    if let Some(command) = command {
                        let effects = update::command_run(app, command);
                        perform(client, effects, &mut streaming, &mut stdout());
                        dirty = true;
                    }
                    None
                }
                Some(Ok(Event::Resize(width, height))) => {
                    dirty = true;
                    Some(Msg::Resize(width, height))
                }
                Some(Ok(_)) => None,
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(()),
            },
            msg = rx.recv() => msg,
            _ = tick.tick() => Some(Msg::Tick),
            _ = terminated => return Ok(()),
            _ = tokio::time::sleep(wait) => None,
        };
        if let Some(msg) = msg {
            let mut effects = drain(app, rx, msg);
            let rows = terminal.size().map_or(20, |s| s.height as usize);
            effects.extend(update::more(app, rows));
            // Every message redraws, ticks too: relative times (`3m ago`) and the offline
            // line's age move on their own; ratatui sends only the cells that changed.
            dirty = true;
            perform(client, effects, &mut streaming, &mut stdout());
        }
        if app.quit {
            return Ok(());
        }
    }
}
