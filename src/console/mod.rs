//! `acp console`: the keyboard-driven triage TUI (ratatui). It talks to any ACP server over the
//! REST API and the websocket stream and depends on `wire` only.
//!
//! Elm-style: terminal input, replies and stream messages become [`msg::Msg`]s;
//! [`update::update`] changes the [`state::App`] and answers [`msg::Effect`]s (requests run in
//! background tasks by [`client::Client`]); [`views::draw`] renders from the state only, when
//! something changed, at most 30 times a second. The loop never awaits the network.

pub mod client;
pub mod config;
mod highlight;
pub mod keymap;
pub mod msg;
pub mod ronfile;
pub mod state;
mod term;
pub mod theme;
pub mod update;
pub mod views;

use tokio::sync::mpsc;

use client::Client;
use msg::{Effect, Msg};
use state::{App, View};

/// `acp console` flags (the server and token come from the global `--server` / `--token`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Args {
    /// A context from $XDG_CONFIG_HOME/acp/config.ron (server URL and token source).
    #[arg(long)]
    pub context: Option<String>,
    /// Theme name: default, light, ansi16, mono, or one in $XDG_CONFIG_HOME/acp/themes/.
    #[arg(long)]
    pub theme: Option<String>,
    /// Keymap name: default, emacs, or one in $XDG_CONFIG_HOME/acp/keymaps/.
    #[arg(long)]
    pub keymap: Option<String>,
    /// Hide every action that changes something.
    #[arg(long)]
    pub read_only: bool,
    /// Let the mouse scroll (off by default: it breaks the terminal's own text selection).
    #[arg(long)]
    pub mouse: bool,
    /// Open on one run's step inspector.
    #[arg(long, group = "start")]
    pub run: Option<i64>,
    /// Open on the dead-letter queue.
    #[arg(long, group = "start")]
    pub dlq: bool,
    /// Open on one alert (Enter then shows its failed runs).
    #[arg(long, group = "start")]
    pub alert: Option<i64>,
    /// Open on the runs of one workflow.
    #[arg(long, group = "start")]
    pub workflow: Option<String>,
    /// The demo's sandbox (enables `:fix` and `:incident`).
    #[arg(long, hide = true)]
    pub sandbox: Option<String>,
}

/// The first screen the flags ask for.
pub fn start_view(app: &mut App, args: &Args) {
    if let Some(run) = args.run {
        app.history.push(View::Runs);
        app.view = View::Inspector { run };
    } else if args.dlq {
        app.view = View::Dlq;
    } else if let Some(alert) = args.alert {
        app.view = View::Alerts;
        app.focus_alert = Some(alert);
    } else if let Some(workflow) = &args.workflow {
        let text = format!("wf:{workflow}");
        app.runs.filter = state::Filter::parse(&text);
        app.runs.filter_text = text;
    }
    app.runs.changed = true;
}

/// Runs the console until the user quits.
pub async fn run(server: Option<String>, token: Option<String>, args: Args) -> anyhow::Result<()> {
    let dir = ronfile::config_dir();
    let settings = config::load(dir.as_deref())?;
    let target = settings.target(args.context.as_deref(), server, token)?;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let theme_name = theme::choose(
        args.theme.as_deref().or(settings.theme.as_deref()),
        no_color,
    );
    let theme = theme::load(theme_name, dir.as_deref())?;
    let keymap = keymap::load(
        args.keymap
            .as_deref()
            .or(settings.keymap.as_deref())
            .unwrap_or("default"),
        dir.as_deref(),
    )?;
    let (tx, rx) = mpsc::unbounded_channel();
    let client = Client::new(&target.server, target.token, tx);
    let mut app = App::new(target.server, keymap, args.read_only);
    app.sandbox = args.sandbox.clone();
    if app.sandbox.is_some() {
        app.toast = Some((
            "demo: type :incident for what is going on and how to fix it".into(),
            false,
        ));
    }
    start_view(&mut app, &args);
    term::run(app, theme, client, rx, args.mouse).await
}

/// Carries out effects: requests and the stream go to background tasks; copies are written
/// to `out` as OSC 52.
pub fn perform(
    client: &Client,
    effects: Vec<Effect>,
    streaming: &mut bool,
    out: &mut impl std::io::Write,
) {
    for effect in effects {
        match effect {
            Effect::Request(request) => client.send(request),
            Effect::Stream { since } if !*streaming => {
                *streaming = true;
                tokio::spawn(client.clone().stream(since));
            }
            Effect::Stream { .. } => {}
            Effect::Copy(text) => {
                use base64::Engine as _;
                let encoded = base64::engine::general_purpose::STANDARD.encode(text);
                let _ = write!(out, "\x1b]52;c;{encoded}\x07");
                let _ = out.flush();
            }
        }
    }
}

/// Applies every message already waiting, without blocking: many stream events become one
/// redraw.
pub fn drain(app: &mut App, rx: &mut mpsc::UnboundedReceiver<Msg>, first: Msg) -> Vec<Effect> {
    let mut effects = update::update(app, first);
    while let Ok(msg) = rx.try_recv() {
        effects.extend(update::update(app, msg));
    }
    update::settle(app);
    effects
}
