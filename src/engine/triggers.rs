//! Triggers: record changes matched against published workflows, and cron schedules.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::catalog::Compiled;
use super::{EngineError, Inner};
use crate::domain::template::is_true;
use crate::domain::workflow::RecordOn;
use crate::domain::{NewRun, RecordChange, RecordEvent, RecordWrite, RecordWriteOutcome, Trigger};
use crate::store::TriggerMatcher;
use crate::wire::{RunMode, TriggerKind};

impl Inner {
    /// Writes a record; the runs its change triggers are queued in the same transaction.
    pub(super) async fn write_record(
        &self,
        write: RecordWrite,
    ) -> Result<RecordWriteOutcome, EngineError> {
        let matcher = matcher(self.catalog.published(), self.catalog.env.clone());
        let outcome = self.store.write_record(write, matcher).await?;
        if !outcome.runs.is_empty() {
            self.wake.notify_one();
        }
        Ok(outcome)
    }
}

/// Picks the published workflows whose record trigger matches a change.
fn matcher(
    published: Arc<Vec<Arc<Compiled>>>,
    env: Arc<minijinja::Environment<'static>>,
) -> TriggerMatcher {
    Box::new(move |change: &RecordChange| {
        let payload = change.payload();
        let ctx = minijinja::Value::from_serialize(json!({ "trigger": payload }));
        published
            .iter()
            .filter(|c| matches(c, change, &env, &ctx))
            .map(|c| NewRun {
                workflow: c.workflow.key().to_owned(),
                version: c.version,
                team: c.workflow.team().to_owned(),
                mode: RunMode::Live,
                trigger_kind: TriggerKind::Record,
                trigger: payload.clone(),
                record_id: Some(change.record.id),
                origin_run: None,
                carry_from_origin: false,
                dedupe_key: None,
            })
            .collect()
    })
}

fn matches(
    compiled: &Compiled,
    change: &RecordChange,
    env: &minijinja::Environment<'static>,
    ctx: &minijinja::Value,
) -> bool {
    let Trigger::Record {
        object,
        on,
        fields,
        filter,
    } = &compiled.workflow.trigger
    else {
        return false;
    };
    let event = match change.event {
        RecordEvent::Created => RecordOn::Created,
        RecordEvent::Updated => RecordOn::Updated,
    };
    let own_write = change.by_workflow.as_deref() == Some(compiled.workflow.key());
    let fields_ok = fields.is_empty() || change.changed.iter().any(|f| fields.contains(f));
    if *object != change.record.object || !on.contains(&event) || own_write || !fields_ok {
        return false;
    }
    match filter {
        None => true,
        Some(expr) => is_true(env, expr, ctx).unwrap_or_else(|e| {
            tracing::warn!(
                workflow = compiled.workflow.key(),
                "trigger filter failed: {e}"
            );
            false
        }),
    }
}

/// Queues a run for every cron fire time that has come. Each fire time has a dedupe key, so
/// two servers (or a restart) never start the same occurrence twice. Occurrences missed while
/// no server ran are not made up.
pub async fn schedule_loop(inner: Arc<Inner>) {
    let mut next: HashMap<(String, i64), DateTime<Utc>> = HashMap::new();
    loop {
        let now = Utc::now();
        let mut due = Vec::new();
        for compiled in inner.catalog.published().iter() {
            let Trigger::Schedule { cron, timezone } = &compiled.workflow.trigger else {
                continue;
            };
            let id = (compiled.workflow.key().to_owned(), compiled.version);
            let fire = next.entry(id.clone()).or_insert_with(|| {
                next_fire(cron, timezone, now).unwrap_or(DateTime::<Utc>::MAX_UTC)
            });
            if *fire <= now {
                due.push(NewRun {
                    workflow: id.0.clone(),
                    version: id.1,
                    team: compiled.workflow.team().to_owned(),
                    mode: RunMode::Live,
                    trigger_kind: TriggerKind::Schedule,
                    trigger: json!({"scheduled_at": *fire, "timezone": timezone.name()}),
                    record_id: None,
                    origin_run: None,
                    carry_from_origin: false,
                    dedupe_key: Some(format!("schedule:{}:{}", id.0, fire.to_rfc3339())),
                });
                *fire = next_fire(cron, timezone, now).unwrap_or(DateTime::<Utc>::MAX_UTC);
            }
        }
        if !due.is_empty() {
            match inner.store.create_runs(due).await {
                Ok(_) => inner.wake.notify_one(),
                Err(e) => tracing::warn!("queueing scheduled runs failed: {e}"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = inner.shutdown.cancelled() => return,
        }
    }
}

/// The first occurrence strictly after `after`, in UTC.
pub fn next_fire(
    cron: &croner::Cron,
    timezone: &chrono_tz::Tz,
    after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(&after.with_timezone(timezone), false)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_fires_in_the_workflow_timezone() {
        let cron = croner::Cron::new("0 9 * * MON-FRI")
            .with_seconds_optional()
            .parse()
            .unwrap();
        let tz: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
        let after: DateTime<Utc> = "2026-11-25T09:30:00Z".parse().unwrap();
        let fire = next_fire(&cron, &tz, after).unwrap();
        assert_eq!(fire.to_rfc3339(), "2026-11-26T08:00:00+00:00");
    }
}
