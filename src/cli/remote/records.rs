//! `acp records`.

use anyhow::Context;
use clap::Subcommand;
use serde_json::{Value, json};

use super::super::client::{Client, cell, clock};
use super::done;
use acp::wire::{FieldChange, RecordView, RecordWritten};

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
