//! The incident lifecycle, folded from the run log.
//!
//! A failed run's signature ([`failure_signature`]) names its incident. The first failed run
//! of a signature opens it (`open`); later ones attach to it. It is `resolved` once the step
//! that failed has succeeded on that workflow after the last failure *and* none of its dead
//! letters is still open (each replayed, discarded, or its run retried). A failure after that
//! reopens the same incident as `regressed`.
//!
//! Beside incidents the fold keeps two more facts the success metrics need: each workflow's
//! run-level outages (its first failed run after a success until its next succeeded run) and
//! its publishes and rollbacks (the likely cause of an incident that opens soon after one).
//!
//! [`Book`] holds what the fold needs to know of the past (the store loads it for a batch of
//! events); [`Book::fold`] decides and says what changed as [`Change`]s, which the store
//! applies in one transaction with the cursor past the batch.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};

use super::signature::failure_signature;
use crate::wire::{Event, EventBody, IncidentCause, IncidentState, SignatureView, StepError};

/// The event-log cursor of the incident tracker (retention never prunes past it; migration
/// 13 creates it at 0, so a server that upgrades folds the log it still keeps).
pub const CURSOR: &str = "incidents";

/// How long after a publish or rollback an incident that opens is shown as following it.
pub const CAUSE_WINDOW: TimeDelta = TimeDelta::hours(1);

/// An incident as the fold needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Tracked {
    pub workflow: String,
    pub step: String,
    pub state: IncidentState,
    /// True once the failing step succeeded after the last failure.
    pub recovered: bool,
    /// Its dead letters still open.
    pub open_dead_letters: i64,
}

/// A failed run's place in an incident.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    /// The incident's signature key.
    pub key: String,
    pub dlq_id: Option<i64>,
    pub dlq_open: bool,
}

/// A publish (`published`) or rollback (`rolled_back`) of a workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowChange {
    pub change: String,
    pub version: i64,
    pub actor: String,
    pub at: DateTime<Utc>,
    /// The version live before it (none for a first publish).
    pub previous: Option<i64>,
}

/// What the fold knows of the past: the incidents that are not resolved and those the batch
/// names (by signature key), the failed runs the batch names (by run id), the open run-level
/// outages (by workflow) and the latest change of the workflows that fail in the batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Book {
    pub incidents: HashMap<String, Tracked>,
    pub links: HashMap<i64, Link>,
    pub outages: HashMap<String, DateTime<Utc>>,
    pub latest_change: HashMap<String, WorkflowChange>,
}

/// What a batch needs loaded into a [`Book`] before it is folded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BookQuery {
    /// Signature keys of the batch's failed runs.
    pub keys: Vec<String>,
    /// Runs whose dead letters the batch opens or closes by run (`dlq.added`, `run.retried`).
    pub runs: Vec<i64>,
    /// Dead letters the batch closes (`dlq.replayed`, `dlq.discarded`).
    pub dlqs: Vec<i64>,
    /// Workflows with failed runs, publishes or rollbacks in the batch (for their latest
    /// change).
    pub workflows: Vec<String>,
}

impl BookQuery {
    /// What `events` need.
    pub fn of<'a>(events: impl IntoIterator<Item = &'a Event>) -> Self {
        let mut query = Self::default();
        for event in events {
            match (&event.body, event.run_id) {
                (EventBody::RunFailed(ended), Some(_)) => {
                    let Some(workflow) = &event.workflow else {
                        continue;
                    };
                    let error = ended.error.clone().unwrap_or_else(unknown_error);
                    let step = ended.step_id.as_deref().unwrap_or_default();
                    query
                        .keys
                        .push(failure_signature(workflow, step, &error).key);
                    query.workflows.push(workflow.clone());
                }
                (EventBody::DlqAdded(_) | EventBody::RunRetried(_), Some(run)) => {
                    query.runs.push(run);
                }
                (EventBody::WorkflowPublished(_) | EventBody::WorkflowRolledBack(_), _) => {
                    query.workflows.extend(event.workflow.clone());
                }
                (EventBody::DlqReplayed(r), _) => query.dlqs.push(r.dlq_id),
                (EventBody::DlqDiscarded(d), _) => query.dlqs.push(d.dlq_id),
                _ => {}
            }
        }
        for list in [&mut query.keys, &mut query.workflows] {
            list.sort();
            list.dedup();
        }
        query.runs.sort_unstable();
        query.runs.dedup();
        query.dlqs.sort_unstable();
        query.dlqs.dedup();
        query
    }
}

/// What the fold changed, in order; the store applies them in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A new incident; `Failed` follows for its first run.
    Opened {
        signature: SignatureView,
        at: DateTime<Utc>,
        cause: Option<IncidentCause>,
    },
    /// A failed run joined the incident `key` (count, last seen, example, not recovered).
    Failed {
        key: String,
        run_id: i64,
        at: DateTime<Utc>,
        example: String,
    },
    /// A resolved incident failed again; `cause` as for a new incident (the change it
    /// followed this time, if one came within [`CAUSE_WINDOW`]).
    Regressed {
        key: String,
        at: DateTime<Utc>,
        cause: Option<IncidentCause>,
    },
    /// The failed run's dead-letter entry opened (or opened again).
    DeadLettered {
        key: String,
        run_id: i64,
        dlq_id: i64,
    },
    /// A dead-letter entry was replayed, discarded or its run retried.
    DlqClosed {
        key: String,
        dlq_id: i64,
    },
    /// The failing step succeeded after the incident's last failure.
    Recovered {
        key: String,
    },
    Resolved {
        key: String,
        at: DateTime<Utc>,
    },
    /// A workflow's first failed run after a success.
    OutageStarted {
        workflow: String,
        at: DateTime<Utc>,
    },
    /// The workflow's next succeeded run.
    OutageEnded {
        workflow: String,
        at: DateTime<Utc>,
    },
    /// A publish or rollback, kept for the incidents that follow it.
    WorkflowChanged {
        workflow: String,
        change: WorkflowChange,
    },
}

/// The error of a failed run whose event carries none (never written by this version).
fn unknown_error() -> StepError {
    crate::domain::StepFailure::permanent("failed").error
}

impl Book {
    /// Folds one event in, appending what it changed to `out`.
    pub fn fold(&mut self, event: &Event, out: &mut Vec<Change>) {
        let at = event.at;
        let workflow = event.workflow.as_deref();
        match (&event.body, event.run_id, workflow) {
            (EventBody::RunFailed(ended), Some(run_id), Some(workflow)) => {
                let error = ended.error.clone().unwrap_or_else(unknown_error);
                let step = ended.step_id.as_deref().unwrap_or_default();
                self.failed(workflow, step, run_id, &error, at, out);
            }
            (EventBody::DlqAdded(added), Some(run_id), _) => {
                let Some(link) = self.links.get_mut(&run_id) else {
                    return;
                };
                if link.dlq_open {
                    return;
                }
                link.dlq_id = Some(added.dlq_id);
                link.dlq_open = true;
                if let Some(incident) = self.incidents.get_mut(&link.key) {
                    incident.open_dead_letters += 1;
                }
                out.push(Change::DeadLettered {
                    key: link.key.clone(),
                    run_id,
                    dlq_id: added.dlq_id,
                });
            }
            (EventBody::DlqReplayed(replayed), _, _) => self.close(replayed.dlq_id, at, out),
            (EventBody::DlqDiscarded(discarded), _, _) => self.close(discarded.dlq_id, at, out),
            (EventBody::RunRetried(_), Some(run_id), _) => {
                let open = self.links.get(&run_id).filter(|l| l.dlq_open);
                if let Some(dlq_id) = open.and_then(|l| l.dlq_id) {
                    self.close(dlq_id, at, out);
                }
            }
            (EventBody::StepSucceeded(ended), _, Some(workflow)) => {
                let keys: Vec<String> = self
                    .incidents
                    .iter()
                    .filter(|(_, i)| {
                        i.state.is_active()
                            && !i.recovered
                            && i.workflow == workflow
                            && i.step == ended.step_id
                    })
                    .map(|(key, _)| key.clone())
                    .collect();
                for key in keys {
                    if let Some(incident) = self.incidents.get_mut(&key) {
                        incident.recovered = true;
                    }
                    out.push(Change::Recovered { key: key.clone() });
                    self.settle(&key, at, out);
                }
            }
            (EventBody::RunSucceeded(_), _, Some(workflow)) => {
                self.run_succeeded(workflow, at, out)
            }
            (EventBody::WorkflowPublished(p), _, Some(workflow)) => {
                self.changed(workflow, "published", p.version, &p.actor, at, out);
            }
            (EventBody::WorkflowRolledBack(r), _, Some(workflow)) => {
                self.changed(workflow, "rolled_back", r.to, &r.actor, at, out);
            }
            _ => {}
        }
    }

    fn failed(
        &mut self,
        workflow: &str,
        step: &str,
        run_id: i64,
        error: &StepError,
        at: DateTime<Utc>,
        out: &mut Vec<Change>,
    ) {
        let signature = failure_signature(workflow, step, error);
        let key = signature.key.clone();
        let cause = self.cause(workflow, at);
        match self.incidents.get_mut(&key) {
            None => {
                out.push(Change::Opened {
                    signature,
                    at,
                    cause,
                });
                self.incidents.insert(
                    key.clone(),
                    Tracked {
                        workflow: workflow.to_owned(),
                        step: step.to_owned(),
                        state: IncidentState::Open,
                        recovered: false,
                        open_dead_letters: 0,
                    },
                );
            }
            Some(incident) => {
                if incident.state == IncidentState::Resolved {
                    incident.state = IncidentState::Regressed;
                    out.push(Change::Regressed {
                        key: key.clone(),
                        at,
                        cause,
                    });
                }
                incident.recovered = false;
            }
        }
        out.push(Change::Failed {
            key: key.clone(),
            run_id,
            at,
            example: error.message.clone(),
        });
        // A run retried in place keeps its dead-letter entry, which `dlq.added` reopens.
        let dlq_id = self.links.get(&run_id).and_then(|l| l.dlq_id);
        self.links.insert(
            run_id,
            Link {
                key,
                dlq_id,
                dlq_open: false,
            },
        );
        if !self.outages.contains_key(workflow) {
            self.outages.insert(workflow.to_owned(), at);
            out.push(Change::OutageStarted {
                workflow: workflow.to_owned(),
                at,
            });
        }
    }

    /// Ends the workflow's run-level outage, if one is open.
    fn run_succeeded(&mut self, workflow: &str, at: DateTime<Utc>, out: &mut Vec<Change>) {
        if self.outages.remove(workflow).is_some() {
            out.push(Change::OutageEnded {
                workflow: workflow.to_owned(),
                at,
            });
        }
    }

    fn close(&mut self, dlq_id: i64, at: DateTime<Utc>, out: &mut Vec<Change>) {
        let Some(link) = self
            .links
            .values_mut()
            .find(|l| l.dlq_open && l.dlq_id == Some(dlq_id))
        else {
            return;
        };
        link.dlq_open = false;
        let key = link.key.clone();
        if let Some(incident) = self.incidents.get_mut(&key) {
            incident.open_dead_letters -= 1;
        }
        out.push(Change::DlqClosed {
            key: key.clone(),
            dlq_id,
        });
        self.settle(&key, at, out);
    }

    /// Resolves `key` when its step recovered and no dead letter of it is open.
    fn settle(&mut self, key: &str, at: DateTime<Utc>, out: &mut Vec<Change>) {
        let Some(incident) = self.incidents.get_mut(key) else {
            return;
        };
        if incident.state.is_active() && incident.recovered && incident.open_dead_letters <= 0 {
            incident.state = IncidentState::Resolved;
            out.push(Change::Resolved {
                key: key.to_owned(),
                at,
            });
        }
    }

    fn changed(
        &mut self,
        workflow: &str,
        change: &str,
        version: i64,
        actor: &str,
        at: DateTime<Utc>,
        out: &mut Vec<Change>,
    ) {
        let change = WorkflowChange {
            change: change.to_owned(),
            version,
            actor: actor.to_owned(),
            at,
            previous: self.latest_change.get(workflow).map(|c| c.version),
        };
        self.latest_change
            .insert(workflow.to_owned(), change.clone());
        out.push(Change::WorkflowChanged {
            workflow: workflow.to_owned(),
            change,
        });
    }

    /// The workflow's latest change when it came at most [`CAUSE_WINDOW`] before `at`.
    fn cause(&self, workflow: &str, at: DateTime<Utc>) -> Option<IncidentCause> {
        let change = self.latest_change.get(workflow)?;
        let after = at - change.at;
        (after >= TimeDelta::zero() && after <= CAUSE_WINDOW).then(|| IncidentCause {
            change: change.change.clone(),
            version: change.version,
            actor: change.actor.clone(),
            at: change.at,
            after_s: after.num_seconds(),
            previous: change.previous,
        })
    }
}

/// The `q`-quantile (0 to 1) of `values` by the nearest-rank method (the smallest value with
/// at least `q` of them at or below it); none for no values.
pub fn quantile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = (q * values.len() as f64).ceil().max(1.0) as usize;
    values.get(rank.min(values.len()) - 1).copied()
}

#[cfg(test)]
mod tests;
