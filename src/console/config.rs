//! `$XDG_CONFIG_HOME/acp/config.ron`: named contexts (a server and where its token comes from),
//! and the default theme and keymap.
//!
//! ```ron
//! (
//!     default_context: "prod",
//!     contexts: {
//!         "prod": (server: "https://acp.example.com", token_env: "ACP_PROD_TOKEN"),
//!         "local": (server: "http://127.0.0.1:7700", token_file: "~/.acp-local-token"),
//!     },
//!     theme: "default",
//!     keymap: "default",
//! )
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::ronfile::{self, FileError};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub default_context: Option<String>,
    #[serde(default)]
    pub contexts: BTreeMap<String, ContextDef>,
    #[serde(default)]
    pub theme: Option<String>,
    #[serde(default)]
    pub keymap: Option<String>,
    #[serde(skip)]
    path: String,
    #[serde(skip)]
    text: String,
}

/// One server and where its token comes from (first of: `token`, `token_env`, `token_file`).
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextDef {
    pub server: String,
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub token_env: Option<String>,
    #[serde(default)]
    pub token_file: Option<String>,
}

impl std::fmt::Debug for ContextDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextDef")
            .field("server", &self.server)
            .field("token", &self.token.as_ref().map(|_| crate::wire::REDACTED))
            .field("token_env", &self.token_env)
            .field("token_file", &self.token_file)
            .finish()
    }
}

/// Where to connect (the token kept out of `Debug`).
#[derive(Clone, PartialEq)]
pub struct Target {
    pub server: String,
    pub token: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("server", &self.server)
            .field("token", &crate::wire::REDACTED)
            .finish()
    }
}

/// Reads the config file if there is one.
pub fn load(dir: Option<&Path>) -> Result<Settings, FileError> {
    let Some(path) = dir.map(|d| d.join("config.ron")) else {
        return Ok(Settings::default());
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Settings::default()),
        Err(e) => {
            return Err(FileError {
                path: path.display().to_string(),
                line: 1,
                col: 1,
                message: e.to_string(),
            });
        }
    };
    let path = path.display().to_string();
    let mut settings: Settings = ronfile::parse(&path, &text)?;
    settings.path = path;
    settings.text = text;
    Ok(settings)
}

impl Settings {
    /// The server and token: flags and environment first, then the context.
    pub fn target(
        &self,
        context: Option<&str>,
        server: Option<String>,
        token: Option<String>,
    ) -> Result<Target, FileError> {
        let name = context.or(self.default_context.as_deref());
        let chosen = match name {
            Some(name) => Some(self.contexts.get(name).ok_or_else(|| {
                let known: Vec<&str> = self.contexts.keys().map(String::as_str).collect();
                ronfile::at(
                    &self.path,
                    &self.text,
                    "contexts",
                    0,
                    format!(
                        "no context `{name}` in {} (known: {})",
                        if self.path.is_empty() {
                            "the config (there is no config.ron)"
                        } else {
                            &self.path
                        },
                        known.join(", ")
                    ),
                )
            })?),
            None => None,
        };
        // An empty ACP_SERVER or --server counts as unset.
        let server = server
            .filter(|s| !s.trim().is_empty())
            .or_else(|| chosen.map(|c| c.server.clone()))
            .unwrap_or_else(|| "http://127.0.0.1:7700".into());
        let token = match (token, chosen) {
            (Some(token), _) => token,
            (None, Some(c)) => self.token_of(name.unwrap_or_default(), c)?,
            (None, None) => String::new(),
        };
        Ok(Target { server, token })
    }

    fn token_of(&self, name: &str, c: &ContextDef) -> Result<String, FileError> {
        let fail = |message: String| {
            ronfile::at(&self.path, &self.text, &format!("\"{name}\""), 0, message)
        };
        if let Some(token) = &c.token {
            return Ok(token.clone());
        }
        if let Some(var) = &c.token_env {
            return std::env::var(var).map_err(|_| {
                fail(format!(
                    "context `{name}`: environment variable {var} is not set"
                ))
            });
        }
        if let Some(file) = &c.token_file {
            let path = match file.strip_prefix("~/") {
                Some(rest) => std::env::var("HOME")
                    .map(|h| format!("{h}/{rest}"))
                    .unwrap_or_else(|_| file.clone()),
                None => file.clone(),
            };
            return std::fs::read_to_string(&path)
                .map(|t| t.trim().to_owned())
                .map_err(|e| fail(format!("context `{name}`: cannot read {path}: {e}")));
        }
        Err(fail(format!(
            "context `{name}` names no token, token_env or token_file"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_a_token() {
        let context = ContextDef {
            server: "https://acp.example.com".into(),
            token: Some("acp_CONTEXTTOKEN".into()),
            ..ContextDef::default()
        };
        let target = Target {
            server: "https://acp.example.com".into(),
            token: "acp_TARGETTOKEN".into(),
        };
        let shown = format!("{context:?} {target:?}");
        assert!(
            !shown.contains("CONTEXTTOKEN") && !shown.contains("TARGETTOKEN"),
            "{shown}"
        );
        assert!(shown.contains("acp.example.com"));
    }

    #[test]
    fn contexts_give_a_server_and_a_token_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.ron"),
            "(default_context: \"prod\", contexts: {\"prod\": (server: \"https://acp.example.com\", token: \"acp_1\"), \"bad\": (server: \"x\")})",
        )
        .unwrap();
        let settings = load(Some(dir.path())).unwrap();
        assert_eq!(
            settings.target(None, None, None).unwrap(),
            Target {
                server: "https://acp.example.com".into(),
                token: "acp_1".into()
            }
        );
        assert_eq!(
            settings
                .target(None, Some("http://h".into()), Some("t".into()))
                .unwrap()
                .server,
            "http://h"
        );
        let e = settings.target(Some("bad"), None, None).unwrap_err();
        assert!(e.message.contains("names no token"), "{e}");
        assert_eq!((e.line, e.col), (1, 99));
        let missing = settings.target(Some("nope"), None, None).unwrap_err();
        assert!(missing.message.contains("known: bad, prod"), "{missing}");
    }
}
