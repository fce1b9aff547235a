//! Triggers: record changes matched against published workflows, and cron schedules.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, json};

use super::catalog::Compiled;
use super::{EngineError, Inner};
use crate::domain::template::is_true;
use crate::domain::workflow::RecordOn;
use crate::domain::{
    Merge, NewRun, PreparedWrite, RecordChange, RecordEvent, RecordWrite, RecordWriteOutcome,
    Trigger, Triggered,
};
use crate::store::StoreError;
use crate::wire::{RecordView, TriggerKind};

/// How often a record write is prepared again when the record changed while it was prepared.
/// Each round one of the writers racing for a record wins, so this bounds how many may race.
const STALE_RETRIES: usize = 100;

impl Inner {
    /// Writes a record. The engine merges the write into the record as it reads it and
    /// matches the change against the published record triggers; the store applies the
    /// merge and queues the triggered runs in one transaction, or refuses the write as stale
    /// when the record changed in between, and the engine prepares it again.
    pub(super) async fn write_record(
        &self,
        write: RecordWrite,
    ) -> Result<RecordWriteOutcome, EngineError> {
        let mut tries = 0;
        loop {
            let prepared = self.prepare(write.clone()).await?;
            match self.store.write_record(prepared).await {
                Err(StoreError::Stale(why)) if tries < STALE_RETRIES => {
                    tracing::debug!("{why}; preparing the write again");
                    tries += 1;
                }
                result => {
                    let outcome = result?;
                    if !outcome.runs.is_empty() {
                        self.wake.notify_one();
                    }
                    return Ok(outcome);
                }
            }
        }
    }

    /// Reads the record, merges the write into it and picks the workflows the change
    /// triggers. A new record has no id yet: filters see `trigger.record.id` as 0 (the runs
    /// get the real id).
    async fn prepare(&self, write: RecordWrite) -> Result<PreparedWrite, EngineError> {
        let existing = match write.id {
            Some(id) => Some(self.store.record(id).await?),
            None => None,
        };
        let merge = write
            .merge(existing.as_ref())
            .map_err(|refused| StoreError::Conflict(refused.to_string()))?;
        let now = self.config.clock.now();
        let triggered = match change_of(existing.clone(), &write, &merge, now) {
            None => Vec::new(),
            Some(change) => triggered(&self.catalog.published(), &self.catalog.env, &change, now),
        };
        Ok(PreparedWrite {
            read: existing.map(|r| r.values),
            write,
            merge,
            triggered,
        })
    }
}

/// The change `merge` makes to `existing` (`None` for a new record, which triggers see with
/// id 0), as record triggers see it; `None` when nothing changes.
pub(super) fn change_of(
    existing: Option<RecordView>,
    write: &RecordWrite,
    merge: &Merge,
    now: DateTime<Utc>,
) -> Option<RecordChange> {
    if merge.changed.is_empty() {
        return None;
    }
    let (previous, record) = match existing {
        Some(mut record) => {
            let previous = std::mem::replace(&mut record.values, merge.values.clone());
            record.updated_at = now;
            (previous, record)
        }
        None => (
            Map::new(),
            RecordView {
                id: 0,
                object: write.object.clone(),
                values: merge.values.clone(),
                created_at: now,
                updated_at: now,
            },
        ),
    };
    Some(RecordChange {
        event: merge.event,
        record,
        previous,
        changed: merge.changed.clone(),
        by_workflow: write.provenance.workflow.clone(),
    })
}

/// The published workflows whose record trigger matches a change; their runs fall due at
/// `now`.
pub(super) fn triggered(
    published: &[Arc<Compiled>],
    env: &minijinja::Environment<'static>,
    change: &RecordChange,
    now: DateTime<Utc>,
) -> Vec<Triggered> {
    let ctx = minijinja::Value::from_serialize(json!({ "trigger": change.payload() }));
    published
        .iter()
        .filter(|c| matches(c, change, env, &ctx))
        .map(|c| Triggered {
            workflow: c.workflow.key().to_owned(),
            version: c.version,
            team: c.workflow.team().to_owned(),
            not_before: Some(now),
        })
        .collect()
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
        let now = inner.config.clock.now();
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
                    dedupe_key: Some(format!("schedule:{}:{}", id.0, fire.to_rfc3339())),
                    not_before: Some(now),
                    ..NewRun::live(
                        &id.0,
                        id.1,
                        compiled.workflow.team(),
                        TriggerKind::Schedule,
                        json!({"scheduled_at": *fire, "timezone": timezone.name()}),
                    )
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
///
/// Wall-clock times follow the workflow's timezone, with one rule for daylight-saving
/// changes: a schedule that runs every hour (hour field `*`, e.g. `*/15 * * * *`) is an
/// interval and fires on real time through both changes, the repeated hour of the autumn
/// change included; a schedule at fixed hours (`30 2 * * *`) fires once per matching day.
pub fn next_fire(
    cron: &croner::Cron,
    timezone: &chrono_tz::Tz,
    after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    use chrono::Offset;
    let local = after.with_timezone(timezone);
    let wall = cron
        .find_next_occurrence(&local, false)
        .ok()
        .map(|t| t.with_timezone(&Utc));
    let every_hour = (0..24).all(|h| cron.pattern.hour_match(h).unwrap_or(false));
    if !every_hour {
        return wall;
    }
    // Croner walks local wall time, which runs through the repeated hour only once. Walking
    // the wall time of the offset in force at `after` instead finds the slots of the second
    // pass; each candidate must still match in the real timezone.
    let fixed = local.offset().fix();
    let second_pass = cron
        .find_next_occurrence(&after.with_timezone(&fixed), false)
        .ok()
        .map(|t| t.with_timezone(&Utc))
        .filter(|t| *t > after)
        .filter(|t| {
            cron.is_time_matching(&t.with_timezone(timezone))
                .unwrap_or(false)
        });
    [wall.filter(|t| *t > after), second_pass]
        .into_iter()
        .flatten()
        .min()
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

    /// Every fire of `pattern` in `zone` from `from` (exclusive) to `to` (inclusive).
    fn fires(pattern: &str, zone: &str, from: &str, to: &str) -> Vec<DateTime<Utc>> {
        let cron = croner::Cron::new(pattern)
            .with_seconds_optional()
            .parse()
            .unwrap();
        let tz: chrono_tz::Tz = zone.parse().unwrap();
        let (mut at, to): (DateTime<Utc>, DateTime<Utc>) =
            (from.parse().unwrap(), to.parse().unwrap());
        let mut out = Vec::new();
        while let Some(next) = next_fire(&cron, &tz, at).filter(|n| *n <= to) {
            assert!(next > at, "{pattern} in {zone}: {next} after {at}");
            out.push(next);
            at = next;
        }
        out
    }

    fn gaps(fires: &[DateTime<Utc>]) -> Vec<i64> {
        fires
            .windows(2)
            .map(|w| (w[1] - w[0]).num_minutes())
            .collect()
    }

    #[test]
    fn interval_schedules_fire_on_real_time_through_both_dst_changes() {
        // Autumn: Berlin repeats 02:00-03:00 on 2026-10-25 (00:00Z-02:00Z), New York repeats
        // 01:00-02:00 on 2026-11-01 (05:00Z-07:00Z). Spring: Berlin skips an hour on
        // 2026-03-29 (01:00Z), New York on 2026-03-08 (07:00Z).
        for (zone, from, to) in [
            (
                "Europe/Berlin",
                "2026-10-24T22:00:00Z",
                "2026-10-25T04:00:00Z",
            ),
            (
                "America/New_York",
                "2026-11-01T03:00:00Z",
                "2026-11-01T09:00:00Z",
            ),
            (
                "Europe/Berlin",
                "2026-03-28T22:00:00Z",
                "2026-03-29T04:00:00Z",
            ),
            (
                "America/New_York",
                "2026-03-08T04:00:00Z",
                "2026-03-08T10:00:00Z",
            ),
        ] {
            let every = fires("*/15 * * * *", zone, from, to);
            assert_eq!(every.len(), 24, "{zone} {from}: {every:?}");
            assert!(
                gaps(&every).iter().all(|g| *g == 15),
                "{zone} {from}: {every:?}"
            );
            let hourly = fires("0 * * * *", zone, from, to);
            assert_eq!(hourly.len(), 6, "{zone} {from}: {hourly:?}");
        }
        let berlin = fires(
            "*/15 * * * *",
            "Europe/Berlin",
            "2026-10-25T00:30:00Z",
            "2026-10-25T02:00:00Z",
        );
        let shown: Vec<String> = berlin
            .iter()
            .map(|t| t.format("%H:%M").to_string())
            .collect();
        assert_eq!(
            shown,
            ["00:45", "01:00", "01:15", "01:30", "01:45", "02:00"]
        );
    }

    #[test]
    fn fixed_time_schedules_fire_once_on_dst_days() {
        for (zone, from, to) in [
            (
                "Europe/Berlin",
                "2026-10-24T12:00:00Z",
                "2026-10-25T12:00:00Z",
            ),
            (
                "America/New_York",
                "2026-10-31T12:00:00Z",
                "2026-11-01T12:00:00Z",
            ),
        ] {
            let daily = fires("30 1 * * *", zone, from, to);
            assert_eq!(daily.len(), 1, "{zone}: {daily:?}");
            let daily = fires("30 2 * * *", zone, from, to);
            assert_eq!(daily.len(), 1, "{zone}: {daily:?}");
        }
        let spring = fires(
            "30 2 * * *",
            "Europe/Berlin",
            "2026-03-28T12:00:00Z",
            "2026-03-29T12:00:00Z",
        );
        assert!(spring.len() <= 1, "{spring:?}");
    }
}
