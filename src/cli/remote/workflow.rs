//! `acp workflow list|push|publish|rollback|diff`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

use super::super::client::Client;
use super::done;
use acp::wire::{Diff, Published, WorkflowView};

#[derive(Subcommand)]
pub enum RemoteWorkflowCommand {
    /// Workflows with their published version.
    List,
    /// Save a RON file as its workflow's draft (and publish it with --publish).
    Push {
        file: PathBuf,
        #[arg(long)]
        publish: bool,
    },
    /// Publish a workflow's draft as its next version.
    Publish { key: String },
    /// Publish an earlier version again.
    Rollback { key: String, version: i64 },
    /// Unified diff of two versions.
    Diff { key: String, from: i64, to: i64 },
}

pub async fn workflow(c: &Client, command: RemoteWorkflowCommand) -> anyhow::Result<()> {
    match command {
        RemoteWorkflowCommand::List => {
            let list: Vec<WorkflowView> = c.get("/workflows").await?;
            c.show(
                &list,
                &["key", "team", "published", "latest", "draft"],
                |l| {
                    l.iter()
                        .map(|w| {
                            let published =
                                w.published_version.map_or("-".into(), |v| v.to_string());
                            vec![
                                w.key.clone(),
                                w.team.clone(),
                                published,
                                w.latest_version.to_string(),
                                w.has_draft.to_string(),
                            ]
                        })
                        .collect()
                },
            )
        }
        RemoteWorkflowCommand::Push { file, publish } => {
            let source = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let key = acp::domain::parse_workflow(&source)
                .map(|w| w.def.key)
                .map_err(|problems| {
                    let lines: Vec<String> = problems
                        .iter()
                        .map(|p| format!("{}:{p}", file.display()))
                        .collect();
                    anyhow::anyhow!(lines.join("\n"))
                })?;
            let saved: WorkflowView = c
                .put_text(&format!("/workflows/{key}/draft"), source)
                .await?;
            if !publish {
                return done(
                    c,
                    &saved,
                    &format!(
                        "draft of `{key}` saved; publish it with `acp workflow publish {key}`"
                    ),
                );
            }
            publish_draft(c, &key).await
        }
        RemoteWorkflowCommand::Publish { key } => publish_draft(c, &key).await,
        RemoteWorkflowCommand::Rollback { key, version } => {
            let published: Published = c
                .post(
                    &format!("/workflows/{key}/rollback"),
                    &json!({ "version": version }),
                )
                .await?;
            done(
                c,
                &published,
                &format!("`{key}` rolled back: version {version} is published"),
            )
        }
        RemoteWorkflowCommand::Diff { key, from, to } => {
            let diff: Diff = c
                .get_with(
                    &format!("/workflows/{key}/diff"),
                    &[("from", from), ("to", to)],
                )
                .await?;
            done(c, &diff, diff.unified.trim_end())
        }
    }
}

/// Publishes a workflow's draft and says which version it became.
async fn publish_draft(c: &Client, key: &str) -> anyhow::Result<()> {
    let published: Published = c
        .post(&format!("/workflows/{key}/publish"), &json!({}))
        .await?;
    done(
        c,
        &published,
        &format!("`{key}` version {} published", published.version),
    )
}
