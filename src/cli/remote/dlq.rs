//! `acp dlq`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use serde_json::{Value, json};

use super::super::client::Client;
use super::{Filter, done};
use acp::wire::{
    BulkReplay, Created, DlqView, JobState, JobView, Page, ReplayOn, ReplayPlan, ReplayRate,
};

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
        /// With --all: replay without asking (the count is still printed first).
        #[arg(long, short = 'y', requires = "all")]
        yes: bool,
        /// With --all: replayed runs start at most this fast, e.g. `5/s`, `300/m` or a number
        /// per second (server default 10/s); they also wait on their workflow's and hosts'
        /// limits.
        #[arg(long, requires = "all", value_parser = parse_rate)]
        rate: Option<ReplayRate>,
        /// With --all: also replay entries that failed permanently and would run the same
        /// version again (held back by default: they would fail again at once).
        #[arg(long, requires = "all")]
        include_permanent: bool,
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
            yes,
            rate,
            include_permanent,
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
                    let request = BulkReplay {
                        filter: filter.query(),
                        version,
                        dry_run: true,
                        ids: Vec::new(),
                        all: true,
                        rate,
                        include_permanent,
                    };
                    let plan = bulk(c, &request).await?;
                    if dry_run || plan.count == 0 || !confirm(plan.count, yes)? {
                        return Ok(());
                    }
                    let request = BulkReplay {
                        dry_run: false,
                        ..request
                    };
                    let job: JobView = c.post("/dlq/replay", &request).await?;
                    follow(c, job).await
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

pub(super) fn parse_rate(text: &str) -> Result<ReplayRate, String> {
    Ok(match text.trim().parse::<f64>() {
        Ok(n) => ReplayRate::PerSecond(n),
        Err(_) => ReplayRate::Text(text.trim().to_owned()),
    })
}

/// Follows a replay job to its end with a progress bar (runs started of the total, and how
/// many ended); Ctrl-C cancels what has not started.
pub(super) async fn follow(c: &Client, job: JobView) -> anyhow::Result<()> {
    use indicatif::{ProgressBar, ProgressStyle};
    let bar = if c.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(job.total.max(0) as u64)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} started at {msg} (Ctrl-C cancels the rest)",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let path = format!("/jobs/{}", job.id);
    let mut current = job;
    let mut interrupted = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        bar.set_position((current.started + current.skipped).max(0) as u64);
        bar.set_message(format!(
            "{}: {} succeeded, {} failed",
            current.rate, current.succeeded, current.failed
        ));
        if current.is_over() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(250)) => {
                current = c.get(&path).await?;
            }
            _ = &mut interrupted => {
                current = c.delete(&path).await?;
                break;
            }
        }
    }
    bar.finish_and_clear();
    let left = current.total - current.started - current.skipped;
    let sentence = match current.state {
        JobState::Cancelled => format!(
            "replay job {} cancelled: {} runs started, {left} entries left open in the DLQ",
            current.id, current.started
        ),
        _ => format!(
            "replay job {} started {} runs ({} succeeded, {} failed so far, {} skipped: closed meanwhile); follow them with `acp runs list`",
            current.id, current.started, current.succeeded, current.failed, current.skipped
        ),
    };
    done(c, &current, &sentence)
}

/// Asks on the terminal before replaying `count` entries; without a terminal only `--yes`
/// goes ahead.
pub(super) fn confirm(count: usize, yes: bool) -> anyhow::Result<bool> {
    use std::io::{BufRead, IsTerminal, Write};
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("not replaying {count} entries without a terminal to confirm: add --yes");
    }
    eprint!("replay these {count} entries? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    let go = matches!(answer.trim(), "y" | "Y" | "yes");
    if !go {
        eprintln!("nothing replayed");
    }
    Ok(go)
}

/// Sends a bulk replay's dry run, prints the plan and answers it.
async fn bulk(c: &Client, request: &BulkReplay) -> anyhow::Result<ReplayPlan> {
    preview(c, "/dlq/replay", request).await
}

/// Sends a replay's dry run to `path`, prints the plan and answers it.
pub(super) async fn preview(
    c: &Client,
    path: &str,
    request: &impl serde::Serialize,
) -> anyhow::Result<ReplayPlan> {
    let plan: ReplayPlan = c.post(path, request).await?;
    if c.json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
        return Ok(plan);
    }
    let mut text = match plan.count {
        0 => "nothing would be replayed\n".to_owned(),
        n => format!(
            "would replay {n} entries of {} ({} records)\n",
            plan.workflows.join(", "),
            plan.records.len()
        ),
    };
    for group in &plan.groups {
        let held = if group.replayed {
            ""
        } else {
            " — held back (permanent; --include-permanent replays it)"
        };
        text.push_str(&format!(
            "  {} x{}: {}{held}\n",
            group.class, group.count, group.signature
        ));
    }
    for step in &plan.external_steps {
        let key = if step.idempotency_key {
            "same idempotency key"
        } else {
            "NEW idempotency key"
        };
        text.push_str(&format!(
            "  calls out again: {}@{} step {} ({}) x{} — {key}\n",
            step.workflow, step.version, step.step_id, step.kind, step.runs
        ));
    }
    print!("{}", acp::wire::printable(&text));
    Ok(plan)
}
