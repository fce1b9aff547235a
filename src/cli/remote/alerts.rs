//! `acp alerts`.

use clap::Subcommand;
use serde_json::json;

use super::super::client::{Client, clock};
use super::done;
use acp::wire::{AlertView, NotificationView, RuleView};

#[derive(Subcommand)]
pub enum AlertsCommand {
    /// Alerts, newest first.
    List {
        /// `pending`, `firing` or `resolved`.
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Acknowledge an alert: it stops re-notifying, and still resolves by itself.
    Ack { id: i64 },
    /// Silence an alert (admin) for a while (`--for 2h`) or until a maintenance window ends
    /// (`--until 2026-12-01T06:00:00Z`).
    Silence {
        id: i64,
        #[arg(
            long = "for",
            required_unless_present = "until",
            conflicts_with = "until"
        )]
        duration: Option<String>,
        #[arg(long)]
        until: Option<chrono::DateTime<chrono::Utc>>,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Notifications sent (or still being retried), newest first, with their last attempt.
    Notifications {
        #[arg(long)]
        alert: Option<i64>,
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Every rule and where it comes from (workflow file, acp.ron, API, defaults).
    Rules,
}

pub async fn alerts(c: &Client, command: AlertsCommand) -> anyhow::Result<()> {
    match command {
        AlertsCommand::List { state, limit } => {
            let mut query: Vec<(&str, String)> = Vec::new();
            query.extend(state.map(|s| ("state", s)));
            query.extend(limit.map(|l| ("limit", l.to_string())));
            let list: Vec<AlertView> = c.get_with("/alerts", &query).await?;
            c.show(
                &list,
                &[
                    "id", "state", "severity", "rule", "workflow", "since", "acked by",
                ],
                |l| {
                    l.iter()
                        .map(|a| {
                            let since = clock(&a.fired_at.unwrap_or(a.opened_at));
                            let acked = a.acked_by.clone().unwrap_or_else(|| "-".into());
                            vec![
                                a.id.to_string(),
                                a.state.to_string(),
                                a.severity.clone(),
                                a.rule.clone(),
                                a.workflow.clone(),
                                since,
                                acked,
                            ]
                        })
                        .collect()
                },
            )
        }
        AlertsCommand::Ack { id } => {
            let alert: AlertView = c.post(&format!("/alerts/{id}/ack"), &json!({})).await?;
            done(c, &alert, &format!("alert {id} acknowledged"))
        }
        AlertsCommand::Silence {
            id,
            duration,
            until,
            reason,
        } => {
            let alert: AlertView = c
                .post(
                    &format!("/alerts/{id}/silence"),
                    &json!({"for": duration, "until": until, "reason": reason}),
                )
                .await?;
            let until = alert.silenced_until.map(|t| clock(&t)).unwrap_or_default();
            done(c, &alert, &format!("alert {id} silenced until {until}"))
        }
        AlertsCommand::Notifications { alert, limit } => {
            let mut query: Vec<(&str, String)> = Vec::new();
            query.extend(alert.map(|a| ("alert", a.to_string())));
            query.extend(limit.map(|l| ("limit", l.to_string())));
            let list: Vec<NotificationView> = c.get_with("/notifications", &query).await?;
            c.show(
                &list,
                &[
                    "id", "alert", "channel", "reason", "status", "runs", "tries", "last try",
                ],
                |l| {
                    l.iter()
                        .map(|n| {
                            let last = n.attempts.last().map_or_else(
                                || "-".to_owned(),
                                |a| match (&a.error, a.status_code) {
                                    (Some(error), _) => error.clone(),
                                    (None, Some(code)) => code.to_string(),
                                    (None, None) => "ok".to_owned(),
                                },
                            );
                            vec![
                                n.id.to_string(),
                                n.alert_id.to_string(),
                                n.channel.clone(),
                                n.reason.clone(),
                                n.status.clone(),
                                n.runs_covered.to_string(),
                                n.attempts.len().to_string(),
                                last,
                            ]
                        })
                        .collect()
                },
            )
        }
        AlertsCommand::Rules => {
            let list: Vec<RuleView> = c.get("/rules").await?;
            c.show(&list, &["scope", "name", "source", "id", "when"], |l| {
                l.iter()
                    .map(|r| {
                        vec![
                            r.scope.clone(),
                            r.name.clone(),
                            r.source.clone(),
                            r.id.map_or_else(|| "-".to_owned(), |id| id.to_string()),
                            r.rule["when"].to_string(),
                        ]
                    })
                    .collect()
            })
        }
    }
}
