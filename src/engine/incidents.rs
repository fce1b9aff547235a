//! Incidents as people read them: the store's incidents with what holds or throttles their
//! destination, and the replay of an incident's open dead letters through the bulk replay's
//! preview and job.

use super::{Engine, EngineError};
use crate::domain::policy::HoldScope;
use crate::store::StoreError;
use crate::wire::{
    BulkReplay, HoldView, IncidentDetail, IncidentQuery, IncidentReplay, IncidentView, JobView,
    ReplayPlan, RunQuery,
};

/// Most incidents one list answers.
const MAX_LIST: usize = 1000;

/// What an incident replay did: the preview of a dry run, or the job it started.
#[derive(Debug)]
pub enum IncidentReplayed {
    Preview(ReplayPlan),
    Started(JobView),
}

impl Engine {
    /// Incidents matching `query` (active first, then by last failure), each saying whether
    /// its workflow, team or host is held or its host rate limited.
    ///
    /// # Errors
    /// [`EngineError::Invalid`] for a `limit` of 0 or above 1000.
    pub async fn incidents(&self, query: &IncidentQuery) -> Result<Vec<IncidentView>, EngineError> {
        if let Some(limit) = query.limit
            && !(1..=MAX_LIST).contains(&limit)
        {
            return Err(EngineError::Invalid(format!(
                "limit: 1 to {MAX_LIST}, not {limit}"
            )));
        }
        let mut list = self.inner.store.incidents(query).await?;
        let holds = self.inner.store.holds(false, 0).await?;
        for incident in &mut list {
            incident.held = self.held_notes(incident, &holds);
        }
        Ok(list)
    }

    /// Up to `n` incidents of `workflow` that failed at or after `since`, newest failure
    /// first: what a notification and an alert's page name as the cause.
    ///
    /// # Errors
    /// The store's errors.
    pub async fn recent_incidents(
        &self,
        workflow: &str,
        since: chrono::DateTime<chrono::Utc>,
        n: usize,
    ) -> Result<Vec<IncidentView>, StoreError> {
        Ok(self
            .inner
            .store
            .incidents(&IncidentQuery {
                workflow: Some(workflow.to_owned()),
                limit: Some(20),
                ..IncidentQuery::default()
            })
            .await?
            .into_iter()
            .filter(|i| i.last_seen >= since)
            .take(n)
            .collect())
    }

    /// One incident with its runs, records, state history and alerts.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown id.
    pub async fn incident(&self, id: i64) -> Result<IncidentDetail, EngineError> {
        let mut detail = self.inner.store.incident(id).await?;
        let holds = self.inner.store.holds(false, 0).await?;
        detail.incident.held = self.held_notes(&detail.incident, &holds);
        Ok(detail)
    }

    /// Replays the incident's open dead letters: a preview when `request.dry_run`, else a
    /// replay job (see [`Engine::start_replay_job`]).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown id, [`StoreError::Conflict`] when it has no
    /// open dead letter, [`EngineError::Invalid`] for a bad rate.
    pub async fn replay_incident(
        &self,
        id: i64,
        request: &IncidentReplay,
        actor: &str,
    ) -> Result<IncidentReplayed, EngineError> {
        let detail = self.inner.store.incident(id).await?;
        let ids = self.inner.store.incident_dead_letters(id).await?;
        if ids.is_empty() {
            return Err(EngineError::Store(StoreError::Conflict(format!(
                "incident {id} has no open dead letter to replay"
            ))));
        }
        let bulk = BulkReplay {
            filter: RunQuery {
                workflow: Some(detail.incident.signature.workflow.clone()),
                ..RunQuery::default()
            },
            version: request.version,
            dry_run: request.dry_run,
            ids,
            all: false,
            rate: request.rate.clone(),
            include_permanent: request.include_permanent,
        };
        if request.dry_run {
            return Ok(IncidentReplayed::Preview(
                self.replay_matching(&bulk).await?,
            ));
        }
        Ok(IncidentReplayed::Started(
            self.start_replay_job(&bulk, actor).await?,
        ))
    }

    /// What holds or throttles the incident's workflow, team or host now.
    fn held_notes(&self, incident: &IncidentView, holds: &[HoldView]) -> Vec<String> {
        let signature = &incident.signature;
        let covers = |scope: &HoldScope| match scope {
            HoldScope::Workflow(key) => *key == signature.workflow,
            HoldScope::Team(team) => *team == incident.team,
            HoldScope::Host(host) => signature.host.as_deref() == Some(host.as_str()),
        };
        let mut notes: Vec<String> = holds
            .iter()
            .filter(|h| h.released_at.is_none())
            .filter(|h| HoldScope::parse(&h.scope).is_ok_and(|s| covers(&s)))
            .map(|h| format!("{} is held: {}", h.scope, h.reason))
            .collect();
        if let Some(host) = &signature.host
            && let Some(limits) = self.inner.config.policies.hosts.get(host)
            && let Some(rate) = limits.rate
        {
            notes.push(format!("host {host} is rate limited to {rate}"));
        }
        notes
    }
}
