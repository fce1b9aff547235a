//! Reading the console's RON files (themes, keymaps, config) with errors that say where:
//! `path:line:col: message`.

use std::fmt;

/// A problem in a file, 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub path: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path, self.line, self.col, self.message
        )
    }
}

impl std::error::Error for FileError {}

/// Parses `text` (read from `path`) as RON.
pub fn parse<T: serde::de::DeserializeOwned>(path: &str, text: &str) -> Result<T, FileError> {
    ron::Options::default()
        .with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME)
        .from_str(text)
        .map_err(|e| FileError {
            path: path.to_owned(),
            line: e.position.line,
            col: e.position.col,
            message: e.code.to_string(),
        })
}

/// An error placed at the `nth` (0-based) occurrence of `needle` in `text`, or at 1:1.
pub fn at(path: &str, text: &str, needle: &str, nth: usize, message: String) -> FileError {
    let offset = text
        .match_indices(needle)
        .nth(nth)
        .map_or(0, |(offset, _)| offset);
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(offset, |n| offset - n - 1) + 1;
    FileError {
        path: path.to_owned(),
        line,
        col,
        message,
    }
}

/// The user's config directory for ACP: `$XDG_CONFIG_HOME/acp` or `~/.config/acp`.
pub fn config_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".config")))
        .map(|dir| dir.join("acp"))
}

/// A user file `<config dir>/<kind>/<name>.ron`, if it exists: (path, text).
pub fn user_file(
    dir: Option<&std::path::Path>,
    kind: &str,
    name: &str,
) -> Result<Option<(String, String)>, FileError> {
    let Some(path) = dir.map(|d| d.join(kind).join(format!("{name}.ron"))) else {
        return Ok(None);
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some((path.display().to_string(), text))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(FileError {
            path: path.display().to_string(),
            line: 1,
            col: 1,
            message: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_needles() {
        let text = "(\n  a: \"x\",\n  b: \"x\",\n)";
        let e = at("f.ron", text, "\"x\"", 1, "twice".into());
        assert_eq!(e.to_string(), "f.ron:3:6: twice");
    }
}
