//! Themes: semantic slots (`run_failed`, `selection`, `json_key`...) over a named palette, read
//! from `themes/*.ron` (compiled in) and `$XDG_CONFIG_HOME/acp/themes/*.ron` (a file with a
//! built-in's name overrides only the slots and colours it names). `NO_COLOR` selects `mono`.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

use super::ronfile::{self, FileError};

/// The themes that ship with ACP.
pub const BUILT_IN: &[(&str, &str)] = &[
    ("default", include_str!("../../themes/default.ron")),
    ("light", include_str!("../../themes/light.ron")),
    ("ansi16", include_str!("../../themes/ansi16.ron")),
    ("mono", include_str!("../../themes/mono.ron")),
];

/// A theme file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeDef {
    /// Start from another theme and change only what this file names.
    #[serde(default)]
    extends: Option<String>,
    #[serde(default)]
    palette: BTreeMap<String, String>,
    #[serde(default)]
    slots: BTreeMap<String, StyleDef>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct StyleDef {
    #[serde(default)]
    fg: Option<String>,
    #[serde(default)]
    bg: Option<String>,
    #[serde(default)]
    bold: bool,
    #[serde(default)]
    dim: bool,
    #[serde(default)]
    italic: bool,
    #[serde(default)]
    underline: bool,
    #[serde(default)]
    reversed: bool,
}

macro_rules! slots {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Every style the console draws with.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Theme {
            pub name: String,
            $($(#[$doc])* pub $name: Style,)*
        }

        /// The slot names a theme must define.
        pub const SLOTS: &[&str] = &[$(stringify!($name)),*];

        impl Theme {
            fn from_styles(name: &str, styles: &BTreeMap<String, Style>) -> Option<Self> {
                Some(Self {
                    name: name.to_owned(),
                    $($name: *styles.get(stringify!($name))?,)*
                })
            }
        }
    };
}

slots!(
    /// Ordinary text.
    text,
    /// Secondary text: timestamps, ids, hints.
    dim,
    title,
    border,
    border_focus,
    /// The selected row.
    selection,
    /// A marked row (DLQ selection).
    marked,
    /// Table headers.
    header,
    status_bar,
    run_queued,
    run_running,
    run_retrying,
    run_waiting,
    run_succeeded,
    run_failed,
    run_cancelled,
    dlq_badge,
    alert_firing,
    alert_pending,
    alert_resolved,
    conn_live,
    conn_reconnecting,
    conn_offline,
    json_key,
    json_string,
    json_number,
    json_literal,
    json_punct,
    spark_throughput,
    spark_failures,
    error,
    warning,
    key_hint,
    diff_add,
    diff_remove,
    diff_hunk,
);

/// Loads theme `name`: a built-in, possibly overridden by a user file of the same name, or a
/// user file that `extends` another theme.
pub fn load(name: &str, user_dir: Option<&Path>) -> Result<Theme, FileError> {
    let user = ronfile::user_file(user_dir, "themes", name)?;
    let built_in = BUILT_IN.iter().find(|(n, _)| *n == name);
    let mut layers: Vec<(String, String)> = Vec::new();
    if let Some((path, text)) = user {
        layers.push((path, text));
    }
    if let Some((n, text)) = built_in {
        layers.push((format!("themes/{n}.ron"), (*text).to_owned()));
    }
    if layers.is_empty() {
        let known: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
        return Err(FileError {
            path: format!("themes/{name}.ron"),
            line: 1,
            col: 1,
            message: format!("no theme `{name}` (built in: {})", known.join(", ")),
        });
    }
    // Follow `extends` from the top layer down, at most a few levels.
    let mut defs = Vec::new();
    for (path, text) in &layers {
        defs.push((
            path.clone(),
            text.clone(),
            ronfile::parse::<ThemeDef>(path, text)?,
        ));
    }
    let mut seen = vec![name.to_owned()];
    while let Some(base) = defs.last().and_then(|(_, _, d)| d.extends.clone()) {
        if seen.contains(&base) || seen.len() > 4 {
            let (path, text, _) = defs.last().expect("a layer");
            return Err(ronfile::at(
                path,
                text,
                &format!("\"{base}\""),
                0,
                format!("`extends: \"{base}\"` loops"),
            ));
        }
        let (_, text) = BUILT_IN.iter().find(|(n, _)| *n == base).ok_or_else(|| {
            let (path, text, _) = defs.last().expect("a layer");
            ronfile::at(
                path,
                text,
                &format!("\"{base}\""),
                0,
                format!("no built-in theme `{base}` to extend"),
            )
        })?;
        let path = format!("themes/{base}.ron");
        defs.push((
            path.clone(),
            (*text).to_owned(),
            ronfile::parse(&path, text)?,
        ));
        seen.push(base);
    }
    resolve(name, &defs)
}

/// Merges layers (the first wins) and turns names into styles.
fn resolve(name: &str, layers: &[(String, String, ThemeDef)]) -> Result<Theme, FileError> {
    let mut palette: BTreeMap<&str, (&str, &str, &str)> = BTreeMap::new();
    let mut slots: BTreeMap<&str, (&str, &str, &StyleDef)> = BTreeMap::new();
    for (path, text, def) in layers.iter().rev() {
        for (k, v) in &def.palette {
            palette.insert(k, (path, text, v));
        }
        for (k, v) in &def.slots {
            if !SLOTS.contains(&k.as_str()) {
                return Err(ronfile::at(
                    path,
                    text,
                    &format!("\"{k}\""),
                    0,
                    format!("unknown slot `{k}`; slots are: {}", SLOTS.join(", ")),
                ));
            }
            slots.insert(k, (path, text, v));
        }
    }
    let color = |path: &str, text: &str, value: &str| -> Result<Color, FileError> {
        let resolved = palette.get(value).map_or(value, |(_, _, v)| v);
        Color::from_str(resolved).map_err(|_| {
            ronfile::at(path, text, &format!("\"{value}\""), 0, format!("`{value}` is neither a palette name nor a colour (e.g. \"red\", \"#ff8800\", \"203\")"))
        })
    };
    let mut styles = BTreeMap::new();
    for (slot, (path, text, def)) in &slots {
        let mut style = Style::default();
        if let Some(fg) = &def.fg {
            style = style.fg(color(path, text, fg)?);
        }
        if let Some(bg) = &def.bg {
            style = style.bg(color(path, text, bg)?);
        }
        for (on, modifier) in [
            (def.bold, Modifier::BOLD),
            (def.dim, Modifier::DIM),
            (def.italic, Modifier::ITALIC),
            (def.underline, Modifier::UNDERLINED),
            (def.reversed, Modifier::REVERSED),
        ] {
            if on {
                style = style.add_modifier(modifier);
            }
        }
        styles.insert(slot.to_string(), style);
    }
    Theme::from_styles(name, &styles).ok_or_else(|| {
        let missing: Vec<&str> = SLOTS
            .iter()
            .copied()
            .filter(|s| !styles.contains_key(*s))
            .collect();
        let (path, _, _) = &layers[0];
        FileError {
            path: path.clone(),
            line: 1,
            col: 1,
            message: format!(
                "theme `{name}` leaves slots undefined: {}",
                missing.join(", ")
            ),
        }
    })
}

/// The theme to use: `NO_COLOR` (set and not empty) means `mono` unless one was asked for.
pub fn choose(asked: Option<&str>, no_color: bool) -> &str {
    match asked {
        Some(name) => name,
        None if no_color => "mono",
        None => "default",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_theme_loads() {
        for (name, _) in BUILT_IN {
            let theme = load(name, None).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(theme.name, *name);
        }
        assert_eq!(
            load("mono", None).unwrap().run_failed.fg,
            None,
            "mono has no colour"
        );
    }

    #[test]
    fn a_user_file_overrides_only_what_it_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("themes")).unwrap();
        std::fs::write(
            dir.path().join("themes/default.ron"),
            "(slots: {\"run_failed\": (fg: \"#ff0000\", bold: true)})",
        )
        .unwrap();
        let theme = load("default", Some(dir.path())).unwrap();
        let stock = load("default", None).unwrap();
        assert_eq!(
            theme.run_failed,
            Style::default()
                .fg(Color::Rgb(255, 0, 0))
                .add_modifier(Modifier::BOLD)
        );
        assert_eq!(theme.run_succeeded, stock.run_succeeded);
        std::fs::write(
            dir.path().join("themes/mine.ron"),
            "(extends: \"ansi16\", palette: {\"ok\": \"lightgreen\"})",
        )
        .unwrap();
        assert_eq!(
            load("mine", Some(dir.path())).unwrap().text,
            load("ansi16", None).unwrap().text
        );
    }

    #[test]
    fn the_choice_honours_no_color() {
        assert_eq!(choose(None, true), "mono");
        assert_eq!(choose(None, false), "default");
        assert_eq!(choose(Some("light"), true), "light");
    }
}
