//! Key chords as keymap files write them (`ctrl-r`, `G`, `enter`, `f5`) and as crossterm
//! reports key presses.

use std::fmt;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// A key with its modifiers, as the keymap files write it (`ctrl-r`, `G`, `enter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Chord {
    pub code: KeyCodeKey,
    pub ctrl: bool,
    pub alt: bool,
}

/// The key part of a chord, orderable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyCodeKey {
    Char(char),
    F(u8),
    Named(&'static str),
}

const NAMED: &[(&str, KeyCode)] = &[
    ("enter", KeyCode::Enter),
    ("esc", KeyCode::Esc),
    ("tab", KeyCode::Tab),
    ("backtab", KeyCode::BackTab),
    ("backspace", KeyCode::Backspace),
    ("delete", KeyCode::Delete),
    ("up", KeyCode::Up),
    ("down", KeyCode::Down),
    ("left", KeyCode::Left),
    ("right", KeyCode::Right),
    ("pageup", KeyCode::PageUp),
    ("pagedown", KeyCode::PageDown),
    ("home", KeyCode::Home),
    ("end", KeyCode::End),
];

impl Chord {
    /// Reads `ctrl-r`, `alt-x`, `G`, `space`, `shift-tab`, `f5`, `pagedown`...
    pub fn parse(text: &str) -> Option<Chord> {
        let (mut ctrl, mut alt) = (false, false);
        let mut rest = text;
        loop {
            if let Some(r) = rest.strip_prefix("ctrl-") {
                (ctrl, rest) = (true, r);
            } else if let Some(r) = rest.strip_prefix("alt-") {
                (alt, rest) = (true, r);
            } else {
                break;
            }
        }
        let code = match rest {
            "space" => KeyCodeKey::Char(' '),
            "shift-tab" => KeyCodeKey::Named("backtab"),
            _ if rest.chars().count() == 1 => KeyCodeKey::Char(rest.chars().next()?),
            _ => {
                if let Some(n) = rest.strip_prefix('f').and_then(|n| n.parse::<u8>().ok()) {
                    (1..=12).contains(&n).then_some(KeyCodeKey::F(n))?
                } else {
                    KeyCodeKey::Named(NAMED.iter().find(|(name, _)| *name == rest)?.0)
                }
            }
        };
        Some(Chord { code, ctrl, alt })
    }

    /// The chord of a key press (shift is part of the character).
    pub fn of(key: &KeyEvent) -> Option<Chord> {
        let code = match key.code {
            KeyCode::Char(c) => KeyCodeKey::Char(c),
            KeyCode::F(n) => KeyCodeKey::F(n),
            other => KeyCodeKey::Named(NAMED.iter().find(|(_, c)| *c == other)?.0),
        };
        Some(Chord {
            code,
            ctrl: key.modifiers.contains(KeyModifiers::CONTROL),
            alt: key.modifiers.contains(KeyModifiers::ALT),
        })
    }
}

impl fmt::Display for Chord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ctrl {
            f.write_str("ctrl-")?;
        }
        if self.alt {
            f.write_str("alt-")?;
        }
        match self.code {
            KeyCodeKey::Char(' ') => f.write_str("space"),
            KeyCodeKey::Char(c) => write!(f, "{c}"),
            KeyCodeKey::F(n) => write!(f, "f{n}"),
            KeyCodeKey::Named(name) => f.write_str(name),
        }
    }
}
