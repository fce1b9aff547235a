//! `acp holds list|place|release`, and `acp workflow pause|resume` (a hold on `workflow:KEY`).

use clap::Subcommand;

use super::super::client::{Client, clock};
use super::done;
use acp::wire::{HoldList, HoldRequest, HoldSource, HoldView};

#[derive(Subcommand)]
pub enum HoldsCommand {
    /// Holds not released yet (with --all, also the last 100 released), the maintenance
    /// windows with their next occurrence, and how many runs are held.
    List {
        #[arg(long)]
        all: bool,
    },
    /// Hold a scope: its runs wait (before their next step, or before calling the host).
    Place {
        /// `workflow:KEY`, `team:NAME` or `host:HOST`.
        scope: String,
        /// Why (shown beside every run it holds).
        #[arg(long)]
        reason: String,
        /// How long, e.g. `2h` (default: until released).
        #[arg(long = "for", value_name = "DURATION")]
        for_: Option<String>,
        /// Until this RFC 3339 time instead.
        #[arg(long, conflicts_with = "for_")]
        until: Option<chrono::DateTime<chrono::Utc>>,
        /// How fast its runs continue when it ends, e.g. `5/s` (default: all at once).
        #[arg(long)]
        drain_rate: Option<String>,
    },
    /// Release a hold now: its runs continue at its drain rate, oldest first.
    Release { id: i64 },
}

pub async fn holds(c: &Client, command: HoldsCommand) -> anyhow::Result<()> {
    match command {
        HoldsCommand::List { all } => {
            let path = if all { "/holds?all=true" } else { "/holds" };
            let list: HoldList = c.get(path).await?;
            if c.json {
                return done(c, &list, "");
            }
            print_holds(c, &list.holds)?;
            println!("{} run(s) held", list.held_runs);
            for w in &list.windows {
                let next = match (w.active, w.next_start, w.next_end) {
                    (true, _, Some(end)) => format!("on now, until {}", clock(&end)),
                    (false, Some(start), _) => format!("next {}", clock(&start)),
                    _ => "no next occurrence".into(),
                };
                let line = format!(
                    "window {} holds {} ({} {}, {} s): {next}",
                    w.name, w.scope, w.cron, w.timezone, w.duration_s
                );
                println!("{}", acp::wire::printable(&line));
            }
            Ok(())
        }
        HoldsCommand::Place {
            scope,
            reason,
            for_,
            until,
            drain_rate,
        } => {
            let request = HoldRequest {
                scope,
                reason,
                for_,
                until,
                drain_rate,
            };
            place(c, &request).await
        }
        HoldsCommand::Release { id } => release(c, id).await,
    }
}

fn print_holds(c: &Client, holds: &[HoldView]) -> anyhow::Result<()> {
    c.show(
        &holds,
        &[
            "id", "scope", "reason", "by", "until", "drain", "runs", "released",
        ],
        |list| {
            list.iter()
                .map(|h| {
                    vec![
                        h.id.to_string(),
                        h.scope.clone(),
                        h.reason.clone(),
                        h.created_by.clone(),
                        h.until.as_ref().map_or("when released".into(), clock),
                        h.drain_rate.clone().unwrap_or_else(|| "-".into()),
                        h.held_runs.to_string(),
                        h.released_at.as_ref().map_or("-".into(), clock),
                    ]
                })
                .collect()
        },
    )
}

async fn place(c: &Client, request: &HoldRequest) -> anyhow::Result<()> {
    let hold: HoldView = c.post("/holds", request).await?;
    let until = hold
        .until
        .as_ref()
        .map_or("until released".into(), |u| format!("until {}", clock(u)));
    done(
        c,
        &hold,
        &format!(
            "hold {} on {} {until}; release it with `acp holds release {}`",
            hold.id, hold.scope, hold.id
        ),
    )
}

async fn release(c: &Client, id: i64) -> anyhow::Result<()> {
    let hold: HoldView = c.delete(&format!("/holds/{id}")).await?;
    let drain = hold
        .drain_rate
        .as_deref()
        .map_or("at once".into(), |r| format!("at {r}"));
    done(
        c,
        &hold,
        &format!(
            "hold {id} on {} released; its runs continue {drain}",
            hold.scope
        ),
    )
}

/// `acp workflow pause KEY`: a hold on `workflow:KEY` until resumed.
pub async fn pause(
    c: &Client,
    key: &str,
    reason: String,
    for_: Option<String>,
) -> anyhow::Result<()> {
    if let Some(hold) = pause_of(c, key).await? {
        anyhow::bail!(
            "`{key}` is already paused (hold {}: {}); `acp workflow resume {key}` resumes it",
            hold.id,
            acp::wire::printable(&hold.reason)
        );
    }
    let request = HoldRequest {
        scope: format!("workflow:{key}"),
        reason,
        for_,
        ..HoldRequest::default()
    };
    place(c, &request).await
}

/// `acp workflow resume KEY`: releases every hold a person placed on `workflow:KEY`
/// (maintenance windows and host backpressure keep theirs).
pub async fn resume(c: &Client, key: &str) -> anyhow::Result<()> {
    // An unknown workflow is a 404, not "not paused".
    c.get::<serde_json::Value>(&format!("/workflows/{key}"))
        .await?;
    let list: HoldList = c.get("/holds").await?;
    let scope = format!("workflow:{key}");
    let mine: Vec<&HoldView> = list
        .holds
        .iter()
        .filter(|h| h.scope == scope && h.source == HoldSource::Api)
        .collect();
    if mine.is_empty() {
        anyhow::bail!("`{key}` is not paused (no hold on {scope})");
    }
    for hold in mine {
        release(c, hold.id).await?;
    }
    Ok(())
}

/// The hold a person placed on `workflow:KEY`, if any (what pause places and resume
/// releases).
pub async fn pause_of(c: &Client, key: &str) -> anyhow::Result<Option<HoldView>> {
    let list: HoldList = c.get("/holds").await?;
    let scope = format!("workflow:{key}");
    Ok(list
        .holds
        .into_iter()
        .find(|h| h.scope == scope && h.source == HoldSource::Api))
}
