//! A small client of the REST API for the CLI: bearer token, the server's error body turned
//! into a readable error, aligned tables for people and the wire format for `--json`.

use anyhow::{Context, bail};
use comfy_table::{Table, presets::NOTHING};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use acp::wire::ErrorBody;

/// `--server`, `--token` and `--json`, shared by every remote command (the token kept out of
/// `Debug`).
#[derive(clap::Args, Clone)]
pub struct Remote {
    /// The ACP server [default: http://127.0.0.1:7700, or the console context's].
    #[arg(long, global = true, env = "ACP_SERVER")]
    pub server: Option<String>,
    /// An API token (prefer the ACP_TOKEN variable: arguments show up in `ps`).
    #[arg(long, global = true, env = "ACP_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Show times in UTC instead of the local time zone (`TZ`); JSON is always RFC 3339.
    #[arg(long, global = true, env = "ACP_UTC")]
    pub utc: bool,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("server", &self.server)
            .field("token", &self.token.as_ref().map(|_| acp::wire::REDACTED))
            .field("json", &self.json)
            .field("utc", &self.utc)
            .finish()
    }
}

/// Set once from `--utc` before any table is printed.
pub static UTC: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    pub json: bool,
}

impl Client {
    pub fn new(remote: &Remote) -> anyhow::Result<Self> {
        let token = remote
            .token
            .clone()
            .context("no token: pass --token or set ACP_TOKEN")?;
        // An empty ACP_SERVER or --server counts as unset.
        let server = remote
            .server
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or("http://127.0.0.1:7700");
        let base = format!("{}/api/v1", server.trim_end_matches('/'));
        Ok(Self {
            http: reqwest::Client::new(),
            base,
            token,
            json: remote.json,
        })
    }

    /// The websocket URL of the stream.
    pub fn stream_url(&self, query: &str) -> String {
        let base = self.base.replacen("http", "ws", 1);
        format!("{base}/stream?{query}&batch=true")
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(self.http.get(self.url(path))).await
    }

    pub async fn get_with<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &impl Serialize,
    ) -> anyhow::Result<T> {
        self.send(self.http.get(self.url(path)).query(query)).await
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<T> {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    pub async fn patch<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<T> {
        self.send(self.http.patch(self.url(path)).json(body)).await
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(self.http.delete(self.url(path))).await
    }

    pub async fn put_text<T: DeserializeOwned>(
        &self,
        path: &str,
        text: String,
    ) -> anyhow::Result<T> {
        self.send(self.http.put(self.url(path)).body(text)).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<T> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = response.status();
        let bytes = response.bytes().await?;
        if status.is_success() {
            let text = if bytes.is_empty() {
                b"null".as_slice()
            } else {
                &bytes
            };
            return serde_json::from_slice(text)
                .context("the server's answer is not what this client expects");
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => {
                let mut message = format!(
                    "{} ({}): {}",
                    status.as_u16(),
                    body.error.code,
                    body.error.message
                );
                for p in body.error.problems {
                    message.push_str(&format!("\n  {}:{}: {}", p.line, p.col, p.message));
                }
                bail!(message)
            }
            Err(_) => bail!("{status}: {}", String::from_utf8_lossy(&bytes)),
        }
    }

    /// Prints `value` as JSON with `--json`, else as the table `rows` builds.
    pub fn show<T: Serialize>(
        &self,
        value: &T,
        header: &[&str],
        rows: impl FnOnce(&T) -> Vec<Vec<String>>,
    ) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value)?);
            return Ok(());
        }
        let mut table = Table::new();
        table
            .load_preset(NOTHING)
            .set_header(header.iter().map(|h| h.to_uppercase()));
        for row in rows(value) {
            // Data prints as text: an escape in a stored value never becomes a terminal command.
            table.add_row(row.iter().map(|c| acp::wire::printable(c).into_owned()));
        }
        println!("{table}");
        Ok(())
    }
}

/// A compact one-line rendering of a JSON value for table cells.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A timestamp for tables, in the viewer's time zone with its offset (`11-26 09:00:00 +01:00`),
/// or in UTC with `--utc` (`11-26 08:00:00Z`).
pub fn clock(at: &chrono::DateTime<chrono::Utc>) -> String {
    if UTC.load(std::sync::atomic::Ordering::Relaxed) {
        return at.format("%m-%d %H:%M:%SZ").to_string();
    }
    at.with_timezone(&chrono::Local)
        .format("%m-%d %H:%M:%S %:z")
        .to_string()
}
