//! Background jobs: a bulk replay of dead letters that starts its runs at a rate, with
//! progress a client can follow and a cancel for what has not started.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ReplayPlan;
use super::runs::string_enum;

string_enum!(
    /// `running` until every entry was started (`finished`) or a person cancelled the rest
    /// (`cancelled`: entries not started stay open in the DLQ).
    JobState {
        Running => "running",
        Finished => "finished",
        Cancelled => "cancelled",
    }
);

/// `GET /jobs/{id}`: a bulk replay and how far it got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct JobView {
    pub id: i64,
    /// `dlq.replay`.
    pub kind: String,
    pub state: JobState,
    /// Entries it replays.
    pub total: i64,
    /// Runs it started so far.
    pub started: i64,
    /// Of those, runs that succeeded and that failed (the rest are still going or held).
    pub succeeded: i64,
    pub failed: i64,
    /// Entries someone closed before their turn (discarded, replayed by hand): not started.
    #[serde(default)]
    pub skipped: i64,
    /// Starts per unit of time, e.g. `5/s`.
    pub rate: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
    /// What the replay covers (its dry run's answer, without run ids).
    #[serde(default)]
    pub plan: Option<ReplayPlan>,
}

impl JobView {
    /// True once it starts nothing more.
    pub fn is_over(&self) -> bool {
        self.state != JobState::Running
    }

    /// Started runs that ended, succeeded or failed.
    pub fn ended(&self) -> i64 {
        self.succeeded + self.failed
    }
}

/// A bulk replay's rate: a number of runs per second (`10`) or a rate (`"5/s"`, `"300/m"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum ReplayRate {
    PerSecond(f64),
    Text(String),
}
