//! `acp runs`.

use clap::Subcommand;
use serde_json::{Value, json};

use super::super::client::{Client, cell, clock};
use super::{Filter, done};
use acp::wire::{Created, Page, RunDetail, RunView};

#[derive(Subcommand)]
pub enum RunsCommand {
    /// Runs, newest first.
    List(Filter),
    /// One run with every attempt of every step.
    Show { id: i64 },
    /// Resume a failed run at its failed step (same idempotency keys).
    Retry { id: i64 },
    /// Start a new run on the same trigger (new keys).
    Rerun { id: i64 },
    /// Cancel a queued, waiting or running run.
    Cancel {
        id: i64,
        #[arg(long)]
        reason: Option<String>,
    },
}

pub async fn runs(c: &Client, command: RunsCommand) -> anyhow::Result<()> {
    match command {
        RunsCommand::List(filter) => {
            let page: Page<RunView> = c.get_with("/runs", &filter.query()).await?;
            print_runs(c, &page)
        }
        RunsCommand::Show { id } => {
            let detail: RunDetail = c.get(&format!("/runs/{id}")).await?;
            if let (false, Some(reason)) = (c.json, &detail.run.held_reason) {
                let until = detail
                    .run
                    .next_attempt_at
                    .as_ref()
                    .map_or("when it is released".to_owned(), clock);
                println!(
                    "{}",
                    acp::wire::printable(&format!(
                        "run {id} is held: {reason}; it may go on {until}"
                    ))
                );
            }
            c.show(
                &detail,
                &["step", "attempt", "status", "started", "error"],
                |d| {
                    d.attempts
                        .iter()
                        .map(|a| {
                            let error = a
                                .error
                                .as_ref()
                                .map_or("-".into(), |e| format!("{}: {}", e.class, e.message));
                            vec![
                                a.step_id.clone(),
                                a.number.to_string(),
                                a.status.to_string(),
                                clock(&a.started_at),
                                error,
                            ]
                        })
                        .collect()
                },
            )
        }
        RunsCommand::Retry { id } => {
            c.post::<Value>(&format!("/runs/{id}/retry"), &json!({}))
                .await?;
            done(
                c,
                &json!({"run": id, "retried": true}),
                &format!("run {id} queued to resume at its failed step"),
            )
        }
        RunsCommand::Rerun { id } => {
            let created: Created = c.post(&format!("/runs/{id}/rerun"), &json!({})).await?;
            done(
                c,
                &created,
                &format!("run {} started (re-run of {id})", created.id),
            )
        }
        RunsCommand::Cancel { id, reason } => {
            let answer: Value = c
                .post(&format!("/runs/{id}/cancel"), &json!({ "reason": reason }))
                .await?;
            done(
                c,
                &answer,
                &format!("run {id}: {}", cell(&answer["status"])),
            )
        }
    }
}

fn print_runs(c: &Client, page: &Page<RunView>) -> anyhow::Result<()> {
    c.show(
        page,
        &[
            "id",
            "workflow",
            "status",
            "queued",
            "attempts",
            "error / held",
        ],
        |p| {
            p.items
                .iter()
                .map(|r| {
                    // A held run says why it waits where a failed one says what went wrong.
                    let error = match (&r.held_reason, &r.error) {
                        (Some(reason), _) => reason.chars().take(60).collect(),
                        (None, Some(e)) => e.message.chars().take(60).collect(),
                        (None, None) => "-".into(),
                    };
                    let workflow = format!("{}@{}", r.workflow, r.version);
                    vec![
                        r.id.to_string(),
                        workflow,
                        r.status.to_string(),
                        clock(&r.queued_at),
                        r.attempts.to_string(),
                        error,
                    ]
                })
                .collect()
        },
    )?;
    if let (false, Some(cursor)) = (c.json, &page.next_cursor) {
        println!("more: --cursor {cursor}");
    }
    Ok(())
}
