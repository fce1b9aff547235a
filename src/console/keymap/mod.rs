//! Key bindings as data: `keymaps/*.ron` (compiled in) and `$XDG_CONFIG_HOME/acp/keymaps/*.ron`
//! (a file with a built-in's name, or one that `extends` a built-in, rebinds only what it names).
//! A chord bound twice in one context, an unknown command or an unreadable chord is an error
//! with path:line:col.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use crossterm::event::KeyEvent;
use serde::Deserialize;
use serde::de::{MapAccess, Visitor};

use super::ronfile::{self, FileError};

mod chord;
pub use chord::{Chord, KeyCodeKey};

/// The keymaps that ship with ACP.
pub const BUILT_IN: &[(&str, &str)] = &[
    ("default", include_str!("../../../keymaps/default.ron")),
    ("emacs", include_str!("../../../keymaps/emacs.ron")),
];

macro_rules! commands {
    ($($name:ident => ($mutates:expr, $help:expr)),* $(,)?) => {
        /// What a key can do.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
        pub enum Command { $($name),* }

        impl Command {
            /// One line for the help overlay.
            pub fn help(self) -> &'static str {
                match self { $(Self::$name => $help),* }
            }

            /// True for commands that change something on the server (hidden when read-only).
            pub fn mutates(self) -> bool {
                match self { $(Self::$name => $mutates),* }
            }
        }
    };
}

commands!(
    Quit => (false, "quit"),
    Help => (false, "this help"),
    CommandMode => (false, "command line (the commands are listed below)"),
    Filter => (false, "filter: words, status:failed wf:KEY team:NAME since:1h"),
    ClearFilter => (false, "clear the filter"),
    Back => (false, "back / close"),
    Up => (false, "up"),
    Down => (false, "down"),
    PageUp => (false, "page up"),
    PageDown => (false, "page down"),
    Top => (false, "first row"),
    Bottom => (false, "last row"),
    Open => (false, "open"),
    Refresh => (false, "reload from the server"),
    Follow => (false, "follow new runs / pause"),
    SortNext => (false, "sort by the next column"),
    NextPane => (false, "next pane / step"),
    PrevPane => (false, "previous pane / step"),
    Copy => (false, "copy JSON (OSC 52)"),
    History => (false, "the record's field history"),
    Zoom => (false, "hide / show the step list (the detail takes the width)"),
    Search => (false, "search the detail (JSON, errors)"),
    NextMatch => (false, "next match"),
    PrevMatch => (false, "previous match"),
    Trigger => (false, "show the trigger payload / the step"),
    ReplayedAs => (false, "go to the run that replayed this one"),
    ReplayOf => (false, "go to the run this one replays or re-runs"),
    Retry => (true, "retry: resume at the failed step"),
    Rerun => (true, "re-run with new idempotency keys"),
    Cancel => (true, "cancel the run"),
    Mark => (false, "mark / unmark"),
    MarkRange => (false, "mark the range to the last mark"),
    GroupNext => (false, "group by workflow / error signature / none"),
    Replay => (true, "replay marked (or selected) entries"),
    ReplayLatest => (true, "replay on the latest published version"),
    ReplayFiltered => (true, "replay everything the filter matches"),
    EditPayload => (true, "edit the trigger payload, then replay"),
    Discard => (true, "discard with a reason"),
    Ack => (true, "acknowledge the alert"),
    Diff => (false, "diff with the previous version"),
    Publish => (true, "publish the draft"),
    Rollback => (true, "roll back to the selected version"),
    Test => (true, "test on recent triggers or records (applies nothing)"),
    Compare => (true, "compare the test with the published version"),
    Pause => (true, "pause the workflow (a hold, with a reason) / resume it"),
    PlaceHold => (true, "hold a workflow, team or host: SCOPE REASON [for 2h] [drain 5/s]"),
    Release => (true, "release the hold: its runs continue at its drain rate"),
    GoRuns => (false, "runs"),
    GoDlq => (false, "dead letters"),
    GoHealth => (false, "health"),
    GoAlerts => (false, "alerts"),
    GoWorkflows => (false, "workflows"),
    GoAudit => (false, "audit log"),
    GoHolds => (false, "holds and maintenance windows"),
    GoIncidents => (false, "incidents: failures grouped by signature"),
);

/// Where a binding applies; `Global` is looked up after the view's own context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Context {
    Global,
    Runs,
    Inspector,
    Dlq,
    Health,
    Alerts,
    Workflows,
    Audit,
    Holds,
    Incidents,
}

impl Context {
    /// The context's field name in a keymap file.
    pub fn field(self) -> &'static str {
        match self {
            Self::Global => "global",
            Self::Runs => "runs",
            Self::Inspector => "inspector",
            Self::Dlq => "dlq",
            Self::Health => "health",
            Self::Alerts => "alerts",
            Self::Workflows => "workflows",
            Self::Audit => "audit",
            Self::Holds => "holds",
            Self::Incidents => "incidents",
        }
    }

    pub const ALL: [Context; 10] = [
        Self::Global,
        Self::Runs,
        Self::Inspector,
        Self::Dlq,
        Self::Health,
        Self::Alerts,
        Self::Workflows,
        Self::Audit,
        Self::Holds,
        Self::Incidents,
    ];
}

/// Bindings in file order (a map would hide a chord bound twice).
#[derive(Debug, Default)]
struct Bindings(Vec<(String, Command)>);

impl<'de> Deserialize<'de> for Bindings {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Pairs;
        impl<'de> Visitor<'de> for Pairs {
            type Value = Bindings;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of chords to commands, e.g. {\"ctrl-r\": Retry}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Bindings, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry::<String, Command>()? {
                    pairs.push(pair);
                }
                Ok(Bindings(pairs))
            }
        }
        d.deserialize_map(Pairs)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeymapDef {
    #[serde(default)]
    extends: Option<String>,
    #[serde(default)]
    global: Bindings,
    #[serde(default)]
    runs: Bindings,
    #[serde(default)]
    inspector: Bindings,
    #[serde(default)]
    dlq: Bindings,
    #[serde(default)]
    health: Bindings,
    #[serde(default)]
    alerts: Bindings,
    #[serde(default)]
    workflows: Bindings,
    #[serde(default)]
    audit: Bindings,
    #[serde(default)]
    holds: Bindings,
    #[serde(default)]
    incidents: Bindings,
}

impl KeymapDef {
    fn context(&self, context: Context) -> &Bindings {
        match context {
            Context::Global => &self.global,
            Context::Runs => &self.runs,
            Context::Inspector => &self.inspector,
            Context::Dlq => &self.dlq,
            Context::Health => &self.health,
            Context::Alerts => &self.alerts,
            Context::Workflows => &self.workflows,
            Context::Audit => &self.audit,
            Context::Holds => &self.holds,
            Context::Incidents => &self.incidents,
        }
    }
}

/// The active bindings.
#[derive(Debug, Clone, PartialEq)]
pub struct Keymap {
    pub name: String,
    bindings: BTreeMap<(Context, Chord), Command>,
}

impl Keymap {
    /// The command a key runs in `context` (its own bindings first, then global ones).
    pub fn command(&self, context: Context, key: &KeyEvent) -> Option<Command> {
        let chord = Chord::of(key)?;
        self.bindings
            .get(&(context, chord))
            .or_else(|| self.bindings.get(&(Context::Global, chord)))
            .copied()
    }

    /// Every binding that applies in `context`, by command: for the help overlay.
    pub fn help(&self, context: Context) -> Vec<(Command, Vec<Chord>)> {
        let mut by: BTreeMap<Command, Vec<Chord>> = BTreeMap::new();
        for ctx in [context, Context::Global] {
            for ((c, chord), command) in &self.bindings {
                let hidden =
                    ctx == Context::Global && self.bindings.contains_key(&(context, *chord));
                if *c == ctx && !(hidden && context != Context::Global) {
                    by.entry(*command).or_default().push(*chord);
                }
            }
        }
        by.into_iter().collect()
    }

    /// The first chord bound to `command` in `context` (or globally), for hints.
    pub fn chord_for(&self, context: Context, command: Command) -> Option<Chord> {
        [context, Context::Global].into_iter().find_map(|ctx| {
            self.bindings
                .iter()
                .find(|((c, _), cmd)| *c == ctx && **cmd == command)
                .map(|((_, chord), _)| *chord)
        })
    }
}

/// Loads keymap `name` like a theme: a built-in, a user file of the same name over it, or a
/// user file that `extends` a built-in.
pub fn load(name: &str, user_dir: Option<&Path>) -> Result<Keymap, FileError> {
    let mut layers: Vec<(String, String)> = Vec::new();
    if let Some(user) = ronfile::user_file(user_dir, "keymaps", name)? {
        layers.push(user);
    }
    if let Some((n, text)) = BUILT_IN.iter().find(|(n, _)| *n == name) {
        layers.push((format!("keymaps/{n}.ron"), (*text).to_owned()));
    }
    if layers.is_empty() {
        let known: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
        return Err(FileError {
            path: format!("keymaps/{name}.ron"),
            line: 1,
            col: 1,
            message: format!("no keymap `{name}` (built in: {})", known.join(", ")),
        });
    }
    let mut defs = Vec::new();
    for (path, text) in layers {
        let def: KeymapDef = ronfile::parse(&path, &text)?;
        defs.push((path, text, def));
    }
    while let Some(base) = defs.last().and_then(|(_, _, d)| d.extends.clone()) {
        let (path, text, _) = defs.last().expect("a layer");
        let Some((_, base_text)) = BUILT_IN.iter().find(|(n, _)| *n == base) else {
            return Err(ronfile::at(
                path,
                text,
                &format!("\"{base}\""),
                0,
                format!("no built-in keymap `{base}` to extend"),
            ));
        };
        if defs.len() > 4 {
            return Err(ronfile::at(
                path,
                text,
                &format!("\"{base}\""),
                0,
                "`extends` goes too deep".into(),
            ));
        }
        let base_path = format!("keymaps/{base}.ron");
        let def = ronfile::parse(&base_path, base_text)?;
        defs.push((base_path, (*base_text).to_owned(), def));
    }
    let mut bindings = BTreeMap::new();
    for (path, text, def) in defs.iter().rev() {
        let mut this_file: BTreeMap<(Context, Chord), &str> = BTreeMap::new();
        for context in Context::ALL {
            for (written, command) in &def.context(context).0 {
                let needle = format!("\"{written}\"");
                let Some(chord) = Chord::parse(written) else {
                    return Err(ronfile::at(
                        path,
                        text,
                        &needle,
                        0,
                        format!(
                            "`{written}` is not a key chord (e.g. \"j\", \"G\", \"ctrl-r\", \"enter\", \"space\", \"f5\")"
                        ),
                    ));
                };
                if let Some(first) = this_file.insert((context, chord), written) {
                    // Point at the second binding inside this context's section.
                    let section = text.find(&format!("{}:", context.field())).unwrap_or(0);
                    let before = text[..section].matches(&needle).count();
                    let seconds = usize::from(first == written.as_str());
                    return Err(ronfile::at(
                        path,
                        text,
                        &needle,
                        before + seconds,
                        format!(
                            "`{written}` is bound twice in `{}` (also as `{first}`)",
                            context.field()
                        ),
                    ));
                }
                bindings.insert((context, chord), *command);
            }
        }
    }
    Ok(Keymap {
        name: name.to_owned(),
        bindings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::{KeyCode, KeyModifiers};

    fn key(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn every_built_in_keymap_loads_and_the_default_has_arrows_and_vim_keys() {
        for (name, _) in BUILT_IN {
            load(name, None).unwrap_or_else(|e| panic!("{e}"));
        }
        let map = load("default", None).unwrap();
        for code in [KeyCode::Down, KeyCode::Char('j')] {
            assert_eq!(
                map.command(Context::Runs, &key(code, KeyModifiers::NONE)),
                Some(Command::Down)
            );
        }
        assert_eq!(
            map.command(Context::Runs, &key(KeyCode::Char('G'), KeyModifiers::SHIFT)),
            Some(Command::Bottom)
        );
        let emacs = load("emacs", None).unwrap();
        assert_eq!(
            emacs.command(
                Context::Runs,
                &key(KeyCode::Char('n'), KeyModifiers::CONTROL)
            ),
            Some(Command::Down)
        );
    }

    #[test]
    fn a_user_file_rebinds_only_what_it_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("keymaps")).unwrap();
        std::fs::write(
            dir.path().join("keymaps/default.ron"),
            "(runs: {\"ctrl-r\": Retry})",
        )
        .unwrap();
        let map = load("default", Some(dir.path())).unwrap();
        assert_eq!(
            map.command(
                Context::Runs,
                &key(KeyCode::Char('r'), KeyModifiers::CONTROL)
            ),
            Some(Command::Retry)
        );
        assert_eq!(
            map.command(Context::Runs, &key(KeyCode::Char('j'), KeyModifiers::NONE)),
            Some(Command::Down)
        );
    }

    #[test]
    fn chords_round_trip() {
        for text in [
            "j",
            "G",
            "ctrl-r",
            "alt-x",
            "enter",
            "space",
            "backtab",
            "f5",
            "ctrl-alt-d",
        ] {
            assert_eq!(Chord::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(Chord::parse("shift-tab"), Chord::parse("backtab"));
        assert!(Chord::parse("hyper-q").is_none());
        assert!(Chord::parse("f13").is_none());
    }
}
