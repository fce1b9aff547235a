//! Secret redaction: what is stored or streamed never contains a secret.
//!
//! Two rules: values of the secrets a workflow reads are replaced wherever they appear (a key
//! in a URL, a token echoed in an error), and fields whose names say they hold credentials
//! (Authorization, Cookie, `*_token`, `password`, `api_key`, ...) are replaced whole.

use serde_json::Value;

/// What replaces a secret.
pub const MASK: &str = "[redacted]";

const SENSITIVE_NAMES: &[&str] = &[
    "authorization",
    "proxy_authorization",
    "cookie",
    "set_cookie",
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "x_api_key",
    "client_secret",
    "private_key",
    "session",
];

const SENSITIVE_SUFFIXES: &[&str] = &["_password", "_secret", "_token", "_api_key", "_apikey"];

/// True for a field or header name that holds a credential.
pub fn is_sensitive(name: &str) -> bool {
    let name = name.to_ascii_lowercase().replace('-', "_");
    SENSITIVE_NAMES.contains(&name.as_str()) || SENSITIVE_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// Redacts known secret values and credential-named fields.
#[derive(Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

impl Redactor {
    /// A redactor for these secret values (empty values are ignored).
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Self { secrets }
    }

    /// Replaces every secret value inside `text`.
    pub fn text(&self, text: &str) -> String {
        self.secrets.iter().fold(text.to_owned(), |acc, secret| {
            acc.replace(secret.as_str(), MASK)
        })
    }

    /// A copy of `value` that is safe to store and stream.
    pub fn value(&self, value: &Value) -> Value {
        match value {
            Value::String(s) => Value::String(self.text(s)),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.value(v)).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        let safe = if is_sensitive(k) && !v.is_null() {
                            Value::String(MASK.into())
                        } else {
                            self.value(v)
                        };
                        (k.clone(), safe)
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_values_and_credential_fields_are_masked() {
        let r = Redactor::new(["sk-live-123".to_owned(), String::new()]);
        let input = json!({
            "url": "https://api.example.com/v1?key=sk-live-123",
            "headers": {"Authorization": "Bearer abc", "X-Api-Key": "k", "Content-Type": "application/json"},
            "body": {"user": {"password": "hunter2", "refresh_token": "r", "name": "Ada"}, "prompt_tokens": 12},
            "list": ["sk-live-123"],
        });
        assert_eq!(
            r.value(&input),
            json!({
                "url": "https://api.example.com/v1?key=[redacted]",
                "headers": {"Authorization": "[redacted]", "X-Api-Key": "[redacted]", "Content-Type": "application/json"},
                "body": {"user": {"password": "[redacted]", "refresh_token": "[redacted]", "name": "Ada"}, "prompt_tokens": 12},
                "list": ["[redacted]"],
            })
        );
        assert_eq!(r.text("error near sk-live-123!"), "error near [redacted]!");
    }
}
