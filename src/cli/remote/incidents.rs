//! `acp incidents list|show|replay` and `acp metrics`.

use clap::{Args, Subcommand};

use super::super::client::{Client, clock};
use super::dlq::{confirm, follow, parse_rate, preview};
use super::done;
use acp::wire::{
    IncidentDetail, IncidentReplay, IncidentView, JobView, ReplayOn, ReplayRate, SummaryReport,
};

#[derive(Subcommand)]
pub enum IncidentsCommand {
    /// Incidents (failures grouped by signature), active first, then by last failure.
    List {
        /// `active` (open or regressed), `open`, `regressed` or `resolved`.
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        workflow: Option<String>,
        #[arg(long)]
        team: Option<String>,
        #[arg(long)]
        limit: Option<usize>,
    },
    /// One incident: its signature, cause, state history, runs and records.
    Show { id: i64 },
    /// Replay the incident's open dead letters: shows what would happen, asks, then follows
    /// the replay job.
    Replay {
        id: i64,
        /// Run the version published now instead of the one that failed.
        #[arg(long)]
        latest: bool,
        /// Only show what would happen.
        #[arg(long)]
        dry_run: bool,
        /// Replay without asking (the count is still printed first).
        #[arg(long, short = 'y')]
        yes: bool,
        /// Replayed runs start at most this fast, e.g. `5/s` (server default 10/s).
        #[arg(long, value_parser = parse_rate)]
        rate: Option<ReplayRate>,
        /// Also replay entries that failed permanently and would run the same version again.
        #[arg(long)]
        include_permanent: bool,
    },
}

/// `acp metrics`: the success metrics over a window.
#[derive(Args)]
pub struct MetricsArgs {
    /// How far back, e.g. `7d` (default) or `30d`.
    #[arg(long)]
    window: Option<String>,
    #[arg(long)]
    team: Option<String>,
}

pub async fn incidents(c: &Client, command: IncidentsCommand) -> anyhow::Result<()> {
    match command {
        IncidentsCommand::List {
            state,
            workflow,
            team,
            limit,
        } => {
            let mut query: Vec<(&str, String)> = Vec::new();
            query.extend(state.map(|s| ("state", s)));
            query.extend(workflow.map(|w| ("workflow", w)));
            query.extend(team.map(|t| ("team", t)));
            let limit = limit.unwrap_or(100);
            query.push(("limit", limit.to_string()));
            let list: Vec<IncidentView> = c.get_with("/incidents", &query).await?;
            c.show(
                &list,
                &[
                    "id",
                    "state",
                    "workflow",
                    "step",
                    "host",
                    "count",
                    "last seen",
                    "dlq",
                    "error",
                ],
                |l| l.iter().map(row).collect(),
            )?;
            if list.len() == limit && !c.json {
                eprintln!(
                    "the first {limit}: --limit (up to 1000) or --state/--workflow for the rest"
                );
            }
            Ok(())
        }
        IncidentsCommand::Show { id } => {
            let detail: IncidentDetail = c.get(&format!("/incidents/{id}")).await?;
            done(c, &detail, &describe(&detail))
        }
        IncidentsCommand::Replay {
            id,
            latest,
            dry_run,
            yes,
            rate,
            include_permanent,
        } => {
            let request = IncidentReplay {
                version: if latest {
                    ReplayOn::Latest
                } else {
                    ReplayOn::Same
                },
                dry_run: true,
                rate,
                include_permanent,
            };
            let path = format!("/incidents/{id}/replay");
            let plan = preview(c, &path, &request).await?;
            if dry_run || plan.count == 0 || !confirm(plan.count, yes)? {
                return Ok(());
            }
            let request = IncidentReplay {
                dry_run: false,
                ..request
            };
            let job: JobView = c.post(&path, &request).await?;
            follow(c, job).await
        }
    }
}

fn row(i: &IncidentView) -> Vec<String> {
    vec![
        i.id.to_string(),
        i.state.to_string(),
        i.signature.workflow.clone(),
        i.signature.step.clone(),
        i.signature.host.clone().unwrap_or_else(|| "-".into()),
        i.count.to_string(),
        clock(&i.last_seen),
        i.open_dead_letters.to_string(),
        i.signature.message.clone(),
    ]
}

fn describe(d: &IncidentDetail) -> String {
    let i = &d.incident;
    let s = &i.signature;
    let mut text = format!(
        "incident {} ({}): {} × `{}` in {} step {}{}\n",
        i.id,
        i.state,
        i.count,
        s.message,
        s.workflow,
        s.step,
        s.host
            .as_deref()
            .map(|h| format!(" calling {h}"))
            .unwrap_or_default()
    );
    text.push_str(&format!(
        "first seen {}, last seen {}; versions {:?}; {} record(s); {} open dead letter(s)\n",
        clock(&i.first_seen),
        clock(&i.last_seen),
        i.versions,
        i.records,
        i.open_dead_letters
    ));
    if let Some(cause) = &i.cause {
        text.push_str(&format!("cause: {}\n", cause.sentence()));
    }
    for note in &i.held {
        text.push_str(&format!("note: {note}\n"));
    }
    text.push_str(&format!("example: {}\n", i.example));
    let history: Vec<String> = d
        .history
        .iter()
        .map(|h| format!("{} {}", h.state, clock(&h.at)))
        .collect();
    text.push_str(&format!("history: {}\n", history.join(" → ")));
    if !d.alerts.is_empty() {
        text.push_str(&format!("alerts: {:?}\n", d.alerts));
    }
    text.push_str("runs (newest first):\n");
    for r in &d.runs {
        let dlq = match (r.dlq_id, r.dlq_open) {
            (Some(id), true) => format!("  dead letter {id} open"),
            (Some(id), false) => format!("  dead letter {id} closed"),
            _ => String::new(),
        };
        let record = r
            .record_id
            .map(|id| format!(" record {id}"))
            .unwrap_or_default();
        text.push_str(&format!(
            "  run {} v{} at {}{record}{dlq}\n",
            r.run_id,
            r.version,
            clock(&r.at)
        ));
    }
    text
}

fn seconds(value: Option<f64>) -> String {
    value.map_or_else(
        || "-".to_owned(),
        |s| {
            humantime::format_duration(std::time::Duration::from_secs(s.round() as u64)).to_string()
        },
    )
}

pub async fn metrics(c: &Client, args: MetricsArgs) -> anyhow::Result<()> {
    let mut query: Vec<(&str, String)> = Vec::new();
    query.extend(args.window.map(|w| ("window", w)));
    query.extend(args.team.map(|t| ("team", t)));
    let report: SummaryReport = c.get_with("/metrics/summary", &query).await?;
    if c.json {
        return done(c, &report, "");
    }
    let t = &report.totals;
    let mut text = format!(
        "{} → {}\nruns {} ({:.0} per week)\nMTTR p50 {} p90 {} (incident opened → resolved)\n\
         run MTTR p50 {} p90 {} (first failed run → next success)\nMTTA p50 {} p90 {} (alert fired → acknowledged)\n\
         unnotified failures {:.3}%\nhealthy workflows {} of {} ({:.0}%)\n",
        clock(&report.since),
        clock(&report.until),
        t.runs,
        t.runs_per_week,
        seconds(t.mttr_p50_s),
        seconds(t.mttr_p90_s),
        seconds(t.run_mttr_p50_s),
        seconds(t.run_mttr_p90_s),
        seconds(t.mtta_p50_s),
        seconds(t.mtta_p90_s),
        t.unnotified_rate * 100.0,
        t.healthy_workflows,
        t.workflows,
        t.healthy_pct
    );
    if t.workflows == 0 {
        text.push_str("  no published workflows match\n");
    }
    for w in &report.per_workflow {
        let state = if w.healthy {
            "healthy".to_owned()
        } else {
            format!("unhealthy: {}", w.unhealthy_because.join("; "))
        };
        text.push_str(&format!(
            "  {} ({}): {} runs, MTTR p50 {}, {state}\n",
            w.workflow,
            w.team,
            w.metrics.runs,
            seconds(w.metrics.mttr_p50_s)
        ));
    }
    print!("{}", acp::wire::printable(&text));
    Ok(())
}
