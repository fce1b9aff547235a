//! The server's alerting policy, read from `acp serve --config acp.ron`: global and per-team
//! rules, notification channels, routes from rules to channels by severity and team, and the
//! timing of notifications.
//!
//! Secrets (a Slack URL, a signing secret, an SMTP password) may be written as `"env:NAME"` to
//! read them from the environment when the file is loaded.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::alert::{Rule, RuleDef, Severity};
use super::delivery::DEFAULT_GIVE_UP_AFTER;
use super::policy::{HoldScope, LimitsDef, PolicyConfig, Rate, Window, WindowDef};
use super::validate::locate::{Anchor, Locator};
use super::validate::{Problem, parse_duration, ron_options};

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename = "Config")]
pub struct ConfigDef {
    /// The address people reach this server at; notifications link to it.
    #[serde(default)]
    pub public_url: Option<String>,
    /// How long the signed page links in notifications open (default `7d`, at most `90d`).
    #[serde(default)]
    pub link_ttl: Option<String>,
    /// How long a notification or webhook message that receivers keep refusing for a
    /// passing reason (5xx, 429, a timeout) is tried before it is given up (default `24h`,
    /// between `1m` and `30d`).
    #[serde(default)]
    pub give_up_after: Option<String>,
    /// How often a firing alert that nobody acknowledged is sent again (default `1h`).
    #[serde(default)]
    pub renotify: Option<String>,
    /// The shortest time between two notifications of one alert about new failures (default `1m`).
    #[serde(default)]
    pub group_interval: Option<String>,
    /// How long a firing alert's condition must stay clear before it resolves (default `5m`);
    /// a re-fire within it continues the same alert. Alertmanager's `resolve_timeout` and
    /// Grafana's "keep firing for" do the same against flapping.
    #[serde(default)]
    pub resolve_after: Option<String>,
    /// A failed run counts as unnotified when no notification about it was delivered within
    /// this time (default `10m`).
    #[serde(default)]
    pub notify_within: Option<String>,
    #[serde(default)]
    pub channels: BTreeMap<String, ChannelDef>,
    #[serde(default)]
    pub routes: Vec<RouteDef>,
    /// Rules for every workflow.
    #[serde(default)]
    pub rules: Vec<RuleDef>,
    /// Rules for the workflows of one team.
    #[serde(default)]
    pub teams: BTreeMap<String, Vec<RuleDef>>,
    /// Limits per destination host, shared by every workflow's `http`, `notify` and `ai` steps:
    /// `{"api.attio.com": (rate: "25/s", concurrency: 10)}`.
    #[serde(default)]
    pub hosts: BTreeMap<String, LimitsDef>,
    /// Maintenance windows: scheduled holds.
    #[serde(default)]
    pub windows: Vec<WindowDef>,
    /// A run held longer than this raises a warning alert (default `1h`).
    #[serde(default)]
    pub hold_warning: Option<String>,
}

/// Where notifications go. `Debug` leaves out the secrets: a Slack webhook URL (it carries its
/// token), a signing secret, an SMTP password.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum ChannelDef {
    /// A Slack incoming webhook.
    Slack { url: String },
    /// A JSON POST signed like the status webhooks (Standard Webhooks, `whsec_...` secret).
    Webhook { url: String, secret: String },
    /// Email over SMTP.
    Email {
        host: String,
        #[serde(default)]
        port: Option<u16>,
        #[serde(default)]
        tls: EmailTls,
        from: String,
        to: Vec<String>,
        #[serde(default)]
        username: Option<String>,
        #[serde(default)]
        password: Option<String>,
    },
}

impl std::fmt::Debug for ChannelDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const HIDDEN: &str = crate::wire::REDACTED;
        match self {
            Self::Slack { .. } => f.debug_struct("Slack").field("url", &HIDDEN).finish(),
            Self::Webhook { url, .. } => f
                .debug_struct("Webhook")
                .field("url", url)
                .field("secret", &HIDDEN)
                .finish(),
            Self::Email {
                host,
                port,
                tls,
                from,
                to,
                username,
                password,
            } => f
                .debug_struct("Email")
                .field("host", host)
                .field("port", port)
                .field("tls", tls)
                .field("from", from)
                .field("to", to)
                .field("username", username)
                .field("password", &password.as_ref().map(|_| HIDDEN))
                .finish(),
        }
    }
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum EmailTls {
    /// Plain text, for a relay on the same machine or network.
    None,
    /// Upgrade with STARTTLS (port 587 by default).
    #[default]
    StartTls,
    /// TLS from the first byte (port 465 by default).
    Tls,
}

/// Which channels an alert goes to: every route whose filters match adds its channels.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteDef {
    #[serde(default)]
    pub severity: Option<Severity>,
    #[serde(default)]
    pub team: Option<String>,
    #[serde(default)]
    pub workflow: Option<String>,
    pub channels: Vec<String>,
}

/// The shortest and longest `give_up_after`.
const GIVE_UP_AFTER_RANGE: (Duration, Duration) =
    (Duration::from_secs(60), Duration::from_secs(30 * 86_400));

/// How long signed links open unless `link_ttl` says otherwise: a week.
pub const DEFAULT_LINK_TTL: Duration = Duration::from_secs(7 * 86_400);
/// The longest `link_ttl`.
pub const MAX_LINK_TTL: Duration = Duration::from_secs(90 * 86_400);

/// The checked policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Where people reach the server; `acp serve` fills in its listen address when unset.
    pub public_url: Option<String>,
    /// How long a signed link (`{public_url}/a/...`, `/r/...`) opens after its message was
    /// queued.
    pub link_ttl: Duration,
    /// How long a delivery refused for a passing reason is tried (see
    /// [`crate::domain::delivery`]).
    pub give_up_after: Duration,
    pub renotify: Duration,
    pub group_interval: Duration,
    /// How long a condition stays clear before its firing alert resolves.
    pub resolve_after: Duration,
    pub notify_within: Duration,
    /// Channels by name, secrets resolved.
    pub channels: BTreeMap<String, ChannelDef>,
    pub routes: Vec<RouteDef>,
    pub rules: Vec<Rule>,
    pub team_rules: BTreeMap<String, Vec<Rule>>,
    /// The rules as written, for listing them.
    pub rule_defs: Vec<RuleDef>,
    pub team_rule_defs: BTreeMap<String, Vec<RuleDef>>,
    /// Host limits, maintenance windows and the held-work warning.
    pub policies: PolicyConfig,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            public_url: None,
            link_ttl: DEFAULT_LINK_TTL,
            give_up_after: DEFAULT_GIVE_UP_AFTER,
            renotify: Duration::from_secs(3600),
            group_interval: Duration::from_secs(60),
            resolve_after: Duration::from_secs(300),
            notify_within: Duration::from_secs(600),
            channels: BTreeMap::new(),
            routes: Vec::new(),
            rules: Vec::new(),
            team_rules: BTreeMap::new(),
            rule_defs: Vec::new(),
            team_rule_defs: BTreeMap::new(),
            policies: PolicyConfig::default(),
        }
    }
}

impl Policy {
    /// Where people reach the server: `public_url`, or `acp serve`'s default address.
    pub fn base_url(&self) -> &str {
        self.public_url
            .as_deref()
            .unwrap_or("http://127.0.0.1:7700")
    }

    /// The channels an alert of `severity` on `workflow` (of `team`) goes to. Without routes,
    /// every channel gets every alert.
    pub fn channels_for(&self, severity: Severity, team: &str, workflow: &str) -> Vec<String> {
        if self.routes.is_empty() {
            return self.channels.keys().cloned().collect();
        }
        let mut names: Vec<String> = self
            .routes
            .iter()
            .filter(|r| r.severity.is_none_or(|s| s == severity))
            .filter(|r| r.team.as_deref().is_none_or(|t| t == team))
            .filter(|r| r.workflow.as_deref().is_none_or(|w| w == workflow))
            .flat_map(|r| r.channels.iter().cloned())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// Parses and checks a config file's text; `env` answers environment variables.
pub fn parse_config(
    source: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Policy, Vec<Problem>> {
    let def: ConfigDef = ron_options().from_str(source).map_err(|e| {
        vec![Problem {
            line: e.position.line,
            col: e.position.col,
            message: super::validate::ron_message(&e.code),
        }]
    })?;
    let at = Locator::new(source);
    let mut problems = Vec::new();
    let mut fail = |anchor: Anchor, message: String| {
        let (line, col) = at.position(&anchor);
        problems.push(Problem { line, col, message });
    };
    let defaults = Policy::default();
    let mut duration = |field: &'static str, text: &Option<String>, default: Duration| match text
        .as_deref()
        .map(parse_duration)
    {
        None => default,
        Some(Ok(d)) if !d.is_zero() => d,
        Some(Ok(_)) => {
            fail(
                Anchor::Field(field, None),
                format!("{field} must be longer than zero"),
            );
            default
        }
        Some(Err(e)) => {
            fail(Anchor::Field(field, None), format!("{field}: {e}"));
            default
        }
    };
    let renotify = duration("renotify", &def.renotify, defaults.renotify);
    let group_interval = duration(
        "group_interval",
        &def.group_interval,
        defaults.group_interval,
    );
    let resolve_after = duration("resolve_after", &def.resolve_after, defaults.resolve_after);
    let hold_warning = duration(
        "hold_warning",
        &def.hold_warning,
        defaults.policies.hold_warning,
    );
    let notify_within = duration("notify_within", &def.notify_within, defaults.notify_within);
    let mut link_ttl = duration("link_ttl", &def.link_ttl, defaults.link_ttl);
    let mut give_up_after = duration("give_up_after", &def.give_up_after, defaults.give_up_after);
    if link_ttl > MAX_LINK_TTL {
        fail(
            Anchor::Field("link_ttl", None),
            format!(
                "link_ttl is at most {}d: a link is a password anyone holding it can use",
                MAX_LINK_TTL.as_secs() / 86_400
            ),
        );
        link_ttl = defaults.link_ttl;
    }
    if !(GIVE_UP_AFTER_RANGE.0..=GIVE_UP_AFTER_RANGE.1).contains(&give_up_after) {
        fail(
            Anchor::Field("give_up_after", None),
            "give_up_after is between 1m and 30d: shorter drops notifications a receiver \
             would take after a short outage, longer keeps a dead one queued for weeks"
                .into(),
        );
        give_up_after = defaults.give_up_after;
    }
    let public_url = match def.public_url {
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
            Some(url.trim_end_matches('/').to_owned())
        }
        Some(url) => {
            fail(
                Anchor::Field("public_url", None),
                format!("public_url `{url}` is not an http(s) URL"),
            );
            None
        }
        None => defaults.public_url,
    };
    let names: Vec<String> = def.channels.keys().cloned().collect();
    let mut channels = BTreeMap::new();
    for (name, channel) in def.channels {
        let near = Anchor::Field("channels", Some(format!("\"{name}\"")));
        match resolve_channel(channel, &env) {
            Ok(channel) => {
                channels.insert(name, channel);
            }
            Err(message) => fail(near, format!("channel `{name}`: {message}")),
        }
    }
    for route in &def.routes {
        for name in &route.channels {
            if !names.contains(name) {
                fail(
                    Anchor::Field("routes", Some(format!("\"{name}\""))),
                    format!("route names channel `{name}`, which is not in `channels`"),
                );
            }
        }
    }
    let mut check_rules = |field: &'static str, defs: &[RuleDef]| {
        let mut rules = Vec::new();
        let mut names = std::collections::HashSet::new();
        for rule in defs {
            let near = Anchor::Field(field, Some(format!("\"{}\"", rule.name)));
            if !names.insert(rule.name.as_str()) {
                fail(near.clone(), format!("duplicate rule name `{}`", rule.name));
            }
            match rule.check(parse_duration) {
                Ok(rule) => rules.push(rule),
                Err(found) => found
                    .into_iter()
                    .for_each(|(_, message)| fail(near.clone(), message)),
            }
        }
        rules
    };
    let rules = check_rules("rules", &def.rules);
    let team_rules = def
        .teams
        .iter()
        .map(|(team, defs)| (team.clone(), check_rules("teams", defs)))
        .collect();
    let mut hosts = BTreeMap::new();
    for (host, def) in &def.hosts {
        let near = Anchor::Field("hosts", Some(format!("\"{host}\"")));
        if !matches!(
            HoldScope::parse(&format!("host:{host}")),
            Ok(HoldScope::Host(_))
        ) {
            fail(
                near.clone(),
                format!("hosts: `{host}` is not a host name (no scheme, port or path)"),
            );
        }
        match def.check() {
            Ok(limits) => {
                hosts.insert(host.to_ascii_lowercase(), limits);
            }
            Err(found) => found
                .into_iter()
                .for_each(|(_, message)| fail(near.clone(), format!("host `{host}`: {message}"))),
        }
    }
    let mut windows = Vec::new();
    let mut window_names = std::collections::HashSet::new();
    for window in &def.windows {
        let near = Anchor::Field("windows", Some(format!("\"{}\"", window.name)));
        if window.name.trim().is_empty() {
            fail(near.clone(), "windows: a window needs a name".into());
        } else if window.name.contains(crate::wire::is_unsafe_char) {
            fail(
                near.clone(),
                "windows: a name must not contain control or invisible formatting characters"
                    .into(),
            );
        } else if !window_names.insert(window.name.as_str()) {
            fail(
                near.clone(),
                format!("duplicate window name `{}`", window.name),
            );
        }
        match check_window(window) {
            Ok(window) => windows.push(window),
            Err(found) => found.into_iter().for_each(|(text, message)| {
                fail(
                    Anchor::Field("windows", Some(format!("\"{text}\""))),
                    format!("window `{}`: {message}", window.name),
                )
            }),
        }
    }
    if !problems.is_empty() {
        problems.sort_by_key(|p| (p.line, p.col));
        return Err(problems);
    }
    Ok(Policy {
        public_url,
        link_ttl,
        give_up_after,
        renotify,
        group_interval,
        resolve_after,
        notify_within,
        channels,
        routes: def.routes,
        rules,
        team_rules,
        rule_defs: def.rules,
        team_rule_defs: def.teams,
        policies: PolicyConfig {
            hosts,
            windows,
            hold_warning,
        },
    })
}

/// Checks one maintenance window: its scope, cron (croner, 5 or 6 fields), time zone (IANA),
/// duration and drain rate. Each problem comes with the text it is about, to place it.
fn check_window(def: &WindowDef) -> Result<Window, Vec<(String, String)>> {
    let mut problems: Vec<(String, String)> = Vec::new();
    let scope = HoldScope::parse(&def.scope)
        .map_err(|e| problems.push((def.scope.clone(), e.to_string())))
        .ok();
    match croner::Cron::new(&def.cron).with_seconds_optional().parse() {
        Err(e) => {
            let message = format!("cron `{}` is not valid: {e}", def.cron);
            problems.push((def.cron.clone(), message));
        }
        // A date that never comes (`0 0 30 2 *`, the 30th of February) is a window that
        // never opens: surely a mistake.
        Ok(cron)
            if cron
                .find_next_occurrence(&chrono::Utc::now(), false)
                .is_err() =>
        {
            let message = format!("cron `{}` never fires", def.cron);
            problems.push((def.cron.clone(), message));
        }
        Ok(_) => {}
    }
    let timezone = def.timezone.clone().unwrap_or_else(|| "UTC".into());
    if timezone.parse::<chrono_tz::Tz>().is_err() {
        let message =
            format!("timezone `{timezone}` is not an IANA name such as \"Europe/Berlin\"");
        problems.push((timezone.clone(), message));
    }
    let duration = match parse_duration(&def.duration) {
        Ok(d) if !d.is_zero() => Some(d),
        Ok(_) => {
            let message = "duration must be longer than zero".to_owned();
            problems.push((def.duration.clone(), message));
            None
        }
        Err(e) => {
            problems.push((def.duration.clone(), format!("duration: {e}")));
            None
        }
    };
    let drain_rate = match def.drain_rate.as_deref().map(Rate::parse) {
        None => None,
        Some(Ok(rate)) => Some(rate),
        Some(Err(e)) => {
            let text = def.drain_rate.clone().unwrap_or_default();
            problems.push((text, format!("drain_rate: {e}")));
            None
        }
    };
    match (scope, duration, problems.is_empty()) {
        (Some(scope), Some(duration), true) => Ok(Window {
            name: def.name.clone(),
            scope,
            cron: def.cron.clone(),
            duration,
            timezone,
            drain_rate,
        }),
        _ => Err(problems),
    }
}

/// What is wrong with a channel of `acp.ron`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    #[error("url is not an http(s) URL")]
    NotHttp,
    #[error("secret must be a `whsec_...` signing secret")]
    NotSigningSecret,
    #[error("name at least one recipient in `to`")]
    NoRecipient,
    #[error("`{0}` is not an email address")]
    NotEmail(String),
    #[error(
        "a password with `tls: None` would cross the network in clear to `{0}`: use StartTls \
         or Tls (None is for a relay on this machine)"
    )]
    PasswordInClear(String),
}

/// Reads `env:NAME` secrets and checks addresses.
///
/// # Errors
/// [`ChannelError`] naming the first thing wrong.
fn resolve_channel(
    channel: ChannelDef,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<ChannelDef, ChannelError> {
    let secret = |value: String| match value.strip_prefix("env:") {
        Some(name) => env(name).ok_or_else(|| ChannelError::MissingEnv(name.to_owned())),
        None => Ok(value),
    };
    let url = |value: String| {
        let value = secret(value)?;
        if value.starts_with("http://") || value.starts_with("https://") {
            Ok(value)
        } else {
            Err(ChannelError::NotHttp)
        }
    };
    Ok(match channel {
        ChannelDef::Slack { url: u } => ChannelDef::Slack { url: url(u)? },
        ChannelDef::Webhook { url: u, secret: s } => {
            let s = secret(s)?;
            if !s.starts_with("whsec_") {
                return Err(ChannelError::NotSigningSecret);
            }
            ChannelDef::Webhook {
                url: url(u)?,
                secret: s,
            }
        }
        ChannelDef::Email {
            host,
            port,
            tls,
            from,
            to,
            username,
            password,
        } => {
            if to.is_empty() {
                return Err(ChannelError::NoRecipient);
            }
            for address in std::iter::once(&from).chain(&to) {
                if !address.contains('@') {
                    return Err(ChannelError::NotEmail(address.clone()));
                }
            }
            let loopback = host == "localhost"
                || host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if password.is_some() && tls == EmailTls::None && !loopback {
                return Err(ChannelError::PasswordInClear(host));
            }
            ChannelDef::Email {
                host,
                port,
                tls,
                from,
                to,
                username,
                password: password.map(secret).transpose()?,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_a_channel_secret() {
        let channels = [
            ChannelDef::Slack {
                url: "https://hooks.slack.com/services/T0/B0/SLACKTOKEN".into(),
            },
            ChannelDef::Webhook {
                url: "https://ops.example.com/hook".into(),
                secret: "whsec_SIGNINGSECRET".into(),
            },
            ChannelDef::Email {
                host: "smtp.example.com".into(),
                port: Some(587),
                tls: EmailTls::default(),
                from: "acp@example.com".into(),
                to: vec!["oncall@example.com".into()],
                username: Some("acp".into()),
                password: Some("SMTPPASSWORD".into()),
            },
        ];
        let shown = format!("{channels:?}");
        for secret in ["SLACKTOKEN", "SIGNINGSECRET", "SMTPPASSWORD"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("ops.example.com") && shown.contains("[redacted]"));
    }

    const GOOD: &str = r#"(
    public_url: "https://acp.example.com/",
    renotify: "30m",
    channels: {
        "oncall": Slack(url: "env:SLACK_URL"),
        "mail": Email(host: "127.0.0.1", port: 2525, tls: None, from: "acp@example.com", to: ["ops@example.com"]),
    },
    routes: [
        (severity: Critical, channels: ["oncall", "mail"]),
        (team: "revops", channels: ["mail"]),
    ],
    rules: [(name: "dead_letters", severity: Warning, when: DlqDepth(above: 10))],
    teams: {"revops": [(name: "burst", severity: Critical, when: AnyFailure())]},
)"#;

    fn env(name: &str) -> Option<String> {
        (name == "SLACK_URL").then(|| "https://hooks.slack.test/T1".to_owned())
    }

    #[test]
    fn reads_channels_routes_rules_and_timing() {
        let policy = parse_config(GOOD, env).unwrap();
        assert_eq!(
            policy.public_url.as_deref(),
            Some("https://acp.example.com")
        );
        assert_eq!(policy.renotify, Duration::from_secs(1800));
        assert_eq!(policy.link_ttl, DEFAULT_LINK_TTL, "a week unless set");
        let short = parse_config("(link_ttl: \"2d\")", |_| None).unwrap();
        assert_eq!(short.link_ttl, Duration::from_secs(2 * 86_400));
        assert_eq!(policy.group_interval, Duration::from_secs(60));
        assert_eq!(policy.resolve_after, Duration::from_secs(300));
        assert_eq!(
            policy.channels["oncall"],
            ChannelDef::Slack {
                url: "https://hooks.slack.test/T1".into()
            }
        );
        assert_eq!(
            policy.channels_for(Severity::Critical, "sales", "big_deal"),
            ["mail", "oncall"]
        );
        assert_eq!(
            policy.channels_for(Severity::Warning, "revops", "lead_routing"),
            ["mail"]
        );
        assert!(
            policy
                .channels_for(Severity::Warning, "sales", "big_deal")
                .is_empty()
        );
        assert_eq!(policy.rules[0].name, "dead_letters");
        assert_eq!(policy.team_rules["revops"][0].name, "burst");
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let text = include_str!("../../assets/acp.example.ron");
        let policy = parse_config(text, |name| match name {
            "ACP_SLACK_WEBHOOK_URL" => Some("https://hooks.slack.com/services/T/B/X".into()),
            "ACP_PAGER_SECRET" => Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
            _ => Some("secret".into()),
        })
        .unwrap();
        assert_eq!(policy.channels.len(), 3);
        assert_eq!(
            policy.channels_for(Severity::Warning, "revops", "lead_routing"),
            ["oncall-slack", "ops-email"]
        );
        let attio = &policy.policies.hosts["api.attio.com"];
        assert_eq!(attio.rate.map(|r| r.to_string()).as_deref(), Some("25/s"));
        assert_eq!(attio.concurrency.map(|c| c.get()), Some(10));
        assert_eq!(policy.policies.windows[0].timezone, "Europe/Berlin");
        assert_eq!(policy.policies.hold_warning, Duration::from_secs(3600));
    }

    #[test]
    fn host_limits_and_windows_are_checked_with_positions() {
        let text = r#"(
    hosts: {
        "https://api.attio.com": (rate: "25/s"),
        "api.example.com": (rate: "fast", burst: 0),
    },
    windows: [
        (name: "w", scope: "queue:x", cron: "61 * * * *", duration: "0s", timezone: "Mars/Base"),
        (name: "w", scope: "host:a.example.com", cron: "0 2 * * SAT", duration: "2h", drain_rate: "1/0s"),
        (name: "feb30", scope: "team:t", cron: "0 0 30 2 *", duration: "1h"),
    ],
    hold_warning: "soon",
)"#;
        let problems = parse_config(text, |_| None).unwrap_err();
        let said: Vec<String> = problems
            .iter()
            .map(|p| format!("{}:{} {}", p.line, p.col, p.message))
            .collect();
        let all = said.join("\n");
        for needle in [
            "3:9 hosts: `https://api.attio.com` is not a host name",
            "4:9 host `api.example.com`: `fast` is not a rate",
            "4:9 host `api.example.com`: burst must be at least 1",
            "7:28 window `w`: `queue:x` is not a hold scope",
            "7:45 window `w`: cron `61 * * * *` is not valid",
            "7:69 window `w`: duration must be longer than zero",
            "7:85 window `w`: timezone `Mars/Base` is not an IANA name",
            "7:16 duplicate window name `w`",
            "8:99 window `w`: drain_rate: `1/0s` is not a rate",
            "9:48 window `feb30`: cron `0 0 30 2 *` never fires",
            "11:5 hold_warning: `soon` is not a duration",
        ] {
            assert!(all.contains(needle), "{needle} in\n{all}");
        }
        assert!(said.iter().all(|p| !p.starts_with("1:1 ")), "{all}");
    }

    #[test]
    fn problems_say_where() {
        let bad = GOOD
            .replace("\"30m\"", "\"soon\"")
            .replace("[\"mail\"]),", "[\"pager\"]),");
        let problems = parse_config(&bad, |_| None).unwrap_err();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "3:5: renotify: `soon` is not a duration (expected number at 0); write e.g. \"30s\", \"5m\", \"1h\"".to_owned(),
                "5:9: channel `oncall`: environment variable SLACK_URL is not set".to_owned(),
                "10:37: route names channel `pager`, which is not in `channels`".to_owned(),
            ]
        );
        let long = parse_config("(\n  link_ttl: \"180d\",\n)", |_| None).unwrap_err();
        assert_eq!(
            long[0].to_string(),
            "2:3: link_ttl is at most 90d: a link is a password anyone holding it can use"
        );
        assert_eq!(
            parse_config("()", |_| None).unwrap().give_up_after,
            Duration::from_secs(86_400),
            "a day unless set"
        );
        let hours = parse_config("(give_up_after: \"6h\")", |_| None).unwrap();
        assert_eq!(hours.give_up_after, Duration::from_secs(6 * 3600));
        for (text, at) in [("10s", "1:2"), ("60d", "1:2")] {
            let refused =
                parse_config(&format!("(give_up_after: \"{text}\")"), |_| None).unwrap_err();
            assert_eq!(
                refused[0].to_string(),
                format!(
                    "{at}: give_up_after is between 1m and 30d: shorter drops notifications a \
                     receiver would take after a short outage, longer keeps a dead one queued \
                     for weeks"
                )
            );
        }
        let clear = parse_config(
            "(channels: {\"m\": Email(host: \"smtp.example.com\", tls: None, \
             from: \"a@example.com\", to: [\"b@example.com\"], username: \"u\", password: \"p\")})",
            |_| None,
        )
        .unwrap_err();
        assert_eq!(
            clear[0].to_string(),
            "1:13: channel `m`: a password with `tls: None` would cross the network in clear to \
             `smtp.example.com`: use StartTls or Tls (None is for a relay on this machine)"
        );
        let relay = "(channels: {\"m\": Email(host: \"127.0.0.1\", tls: None, \
             from: \"a@example.com\", to: [\"b@example.com\"], username: \"u\", password: \"p\")})";
        assert!(
            parse_config(relay, |_| None).is_ok(),
            "a relay on this machine"
        );
        let syntax = parse_config("(channels: {\"x\": Pager(url: \"\")})", |_| None).unwrap_err();
        assert_eq!((syntax[0].line, syntax[0].col), (1, 23));
        assert!(syntax[0].message.contains("Pager"), "{}", syntax[0].message);
    }
}
