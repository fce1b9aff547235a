//! Remote commands: runs, dead letters, workflows and records, over the API.

mod alerts;
mod dlq;
mod holds;
mod incidents;
mod records;
mod runs;
mod workflow;

pub use alerts::{AlertsCommand, alerts};
pub use dlq::{DlqCommand, dlq};
pub use holds::{HoldsCommand, holds};
pub use incidents::{IncidentsCommand, MetricsArgs, incidents, metrics};
pub use records::{RecordsCommand, records};
pub use runs::{RunsCommand, runs};
pub use workflow::{RemoteWorkflowCommand, workflow};

use clap::Args;

use super::client::Client;
use acp::wire::RunQuery;

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

/// Prints `value` as JSON with `--json`, else the sentence.
pub(super) fn done(
    c: &Client,
    value: &impl serde::Serialize,
    sentence: &str,
) -> anyhow::Result<()> {
    if c.json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        println!("{}", acp::wire::printable(sentence));
    }
    Ok(())
}
