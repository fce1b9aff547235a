//! Remote commands: runs, dead letters, workflows, records and the event stream, over the API.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::client::{Client, cell, clock};
use acp::wire::{
    BulkReplay, Created, Diff, DlqView, FieldChange, Page, Published, RecordView, RecordWritten,
    ReplayOn, ReplayPlan, RunDetail, RunQuery, RunView, WorkflowView,
};

/// Filters shared by `runs list` and `dlq list|replay --all`.
#[derive(Args, Clone, Debug, Default)]
pub struct Filter {
    #[arg(long)]
    workflow: Option<String>,
    #[arg(long)]
    status: Option<String>,
    #[arg(long)]
    team: Option<String>,
    #[arg(long)]
    record: Option<i64>,
    /// Only items at or after this time (RFC 3339).
    #[arg(long)]
    since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only items before this time (RFC 3339).
    #[arg(long)]
    until: Option<chrono::DateTime<chrono::Utc>>,
    /// Text to find in error messages.
    #[arg(long)]
    q: Option<String>,
    #[arg(long)]
    limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    #[arg(long)]
    cursor: Option<String>,
}

impl Filter {
    fn query(&self) -> RunQuery {
        RunQuery {
            workflow: self.workflow.clone(),
            status: self.status.clone(),
            team: self.team.clone(),
            mode: None,
            record_id: self.record,
            since: self.since,
            until: self.until,
            q: self.q.clone(),
            cursor: self.cursor.clone(),
            limit: self.limit,
        }
    }
}

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
        &["id", "workflow", "status", "queued", "attempts", "error"],
        |p| {
            p.items
                .iter()
                .map(|r| {
                    let error = r
                        .error
                        .as_ref()
                        .map_or("-".into(), |e| e.message.chars().take(60).collect());
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

fn done(c: &Client, value: &impl serde::Serialize, sentence: &str) -> anyhow::Result<()> {
    if c.json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        println!("{sentence}");
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum DlqCommand {
    /// Dead-letter entries, newest first.
    List(Filter),
    /// One entry.
    Show { id: i64 },
    /// Replay one entry, or with --all every open entry matching the filters.
    Replay {
        id: Option<i64>,
        #[arg(long, conflicts_with = "id")]
        all: bool,
        /// Run the version published now instead of the one that failed.
        #[arg(long)]
        latest: bool,
        /// A JSON file with an edited trigger payload (one entry only).
        #[arg(long, requires = "id")]
        payload: Option<PathBuf>,
        /// Only show what would happen.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        filter: Filter,
    },
    /// Close an entry without replaying it.
    Discard {
        id: i64,
        #[arg(long)]
        reason: String,
    },
}

pub async fn dlq(c: &Client, command: DlqCommand) -> anyhow::Result<()> {
    match command {
        DlqCommand::List(filter) => {
            let page: Page<DlqView> = c.get_with("/dlq", &filter.query()).await?;
            c.show(
                &page,
                &["id", "run", "workflow", "step", "status", "error"],
                |p| {
                    p.items
                        .iter()
                        .map(|d| {
                            let error = format!(
                                "{}: {}",
                                d.error.class,
                                d.error.message.chars().take(50).collect::<String>()
                            );
                            let workflow = format!("{}@{}", d.workflow, d.version);
                            vec![
                                d.id.to_string(),
                                d.run_id.to_string(),
                                workflow,
                                d.step_id.clone(),
                                d.status.to_string(),
                                error,
                            ]
                        })
                        .collect()
                },
            )
        }
        DlqCommand::Show { id } => {
            let entry: DlqView = c.get(&format!("/dlq/{id}")).await?;
            println!("{}", serde_json::to_string_pretty(&entry)?);
            Ok(())
        }
        DlqCommand::Replay {
            id,
            all,
            latest,
            payload,
            dry_run,
            filter,
        } => {
            let version = if latest {
                ReplayOn::Latest
            } else {
                ReplayOn::Same
            };
            match (id, all) {
                (Some(id), _) if !dry_run => {
                    let payload: Option<Value> = match payload {
                        Some(path) => Some(
                            serde_json::from_str(&std::fs::read_to_string(&path)?)
                                .with_context(|| format!("{} is not JSON", path.display()))?,
                        ),
                        None => None,
                    };
                    let created: Created = c
                        .post(
                            &format!("/dlq/{id}/replay"),
                            &json!({"version": version, "payload": payload}),
                        )
                        .await?;
                    done(
                        c,
                        &created,
                        &format!("entry {id} replayed as run {}", created.id),
                    )
                }
                (Some(_), _) => anyhow::bail!(
                    "--dry-run goes with --all and filters: `acp dlq replay --all --dry-run --workflow KEY`"
                ),
                (None, true) => {
                    bulk(
                        c,
                        BulkReplay {
                            filter: filter.query(),
                            version,
                            dry_run,
                        },
                    )
                    .await
                }
                (None, false) => anyhow::bail!(
                    "name an entry id, or pass --all to replay every open entry matching the filters"
                ),
            }
        }
        DlqCommand::Discard { id, reason } => {
            c.post::<Value>(&format!("/dlq/{id}/discard"), &json!({ "reason": reason }))
                .await?;
            done(
                c,
                &json!({"discarded": id}),
                &format!("entry {id} discarded"),
            )
        }
    }
}

async fn bulk(c: &Client, request: BulkReplay) -> anyhow::Result<()> {
    let plan: ReplayPlan = c.post("/dlq/replay", &request).await?;
    if c.json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
        return Ok(());
    }
    let verb = if request.dry_run {
        "would replay"
    } else {
        "replayed"
    };
    println!(
        "{verb} {} entries of {} ({} records)",
        plan.count,
        plan.workflows.join(", "),
        plan.records.len()
    );
    for step in &plan.external_steps {
        let key = if step.idempotency_key {
            "same idempotency key"
        } else {
            "NEW idempotency key"
        };
        println!(
            "  calls out again: {}@{} step {} ({}) x{} — {key}",
            step.workflow, step.version, step.step_id, step.kind, step.runs
        );
    }
    Ok(())
}

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
            let published: Published = c
                .post(&format!("/workflows/{key}/publish"), &json!({}))
                .await?;
            done(
                c,
                &published,
                &format!("`{key}` version {} published", published.version),
            )
        }
        RemoteWorkflowCommand::Publish { key } => {
            let published: Published = c
                .post(&format!("/workflows/{key}/publish"), &json!({}))
                .await?;
            done(
                c,
                &published,
                &format!("`{key}` version {} published", published.version),
            )
        }
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

#[derive(Subcommand)]
pub enum RecordsCommand {
    /// Create a record (`acp records put people email=ada@example.com`) or update one (`--id`).
    /// Values are JSON when they parse as JSON, text otherwise.
    Put {
        /// The object of a new record.
        #[arg(required_unless_present = "id")]
        object: Option<String>,
        #[arg(long)]
        id: Option<i64>,
        /// field=value pairs.
        #[arg(last = true)]
        fields: Vec<String>,
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// One record.
    Get { id: i64 },
    /// Every change to a record's fields, with who or what made it.
    History { id: i64 },
}

pub async fn records(c: &Client, command: RecordsCommand) -> anyhow::Result<()> {
    match command {
        RecordsCommand::Put {
            object,
            id,
            fields,
            idempotency_key,
        } => {
            let mut values = serde_json::Map::new();
            for pair in fields {
                let (field, text) = pair
                    .split_once('=')
                    .with_context(|| format!("`{pair}` is not field=value"))?;
                let value =
                    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()));
                values.insert(field.to_owned(), value);
            }
            let body = json!({"object": object.unwrap_or_default(), "values": values, "idempotency_key": idempotency_key});
            let written: RecordWritten = match id {
                Some(id) => c.patch(&format!("/records/{id}"), &body).await?,
                None => c.post("/records", &body).await?,
            };
            let runs = written
                .runs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            done(
                c,
                &written,
                &format!(
                    "record {} changed [{}]; runs started: [{runs}]",
                    written.record.id,
                    written.changed.join(", ")
                ),
            )
        }
        RecordsCommand::Get { id } => {
            let record: RecordView = c.get(&format!("/records/{id}")).await?;
            c.show(&record, &["field", "value"], |r| {
                r.values
                    .iter()
                    .map(|(k, v)| vec![k.clone(), cell(v)])
                    .collect()
            })
        }
        RecordsCommand::History { id } => {
            let history: Vec<FieldChange> = c.get(&format!("/records/{id}/history")).await?;
            c.show(
                &history,
                &[
                    "at",
                    "field",
                    "old",
                    "new",
                    "source",
                    "actor",
                    "workflow",
                    "run",
                    "ai policy",
                ],
                |h| {
                    h.iter()
                        .map(|f| {
                            let workflow = f.workflow.as_ref().map_or("-".into(), |w| {
                                format!("{w}@{}", f.workflow_version.unwrap_or(0))
                            });
                            let run = f.run_id.map_or("-".into(), |r| {
                                format!("{r}/{}", f.step_id.clone().unwrap_or_default())
                            });
                            let policy = f.ai_policy_id.clone().unwrap_or_else(|| "-".into());
                            vec![
                                clock(&f.at),
                                f.field.clone(),
                                cell(&f.old),
                                cell(&f.new),
                                f.source.to_string(),
                                f.actor.clone(),
                                workflow,
                                run,
                                policy,
                            ]
                        })
                        .collect()
                },
            )
        }
    }
}
