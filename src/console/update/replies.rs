//! Replies from the server and stream events, folded into the cache.

use super::super::msg::{Effect, Reply, Request};
use super::super::state::{App, Conn, Load, Overlay, View};
use super::open_effects;
use crate::wire::{EventKind, RunStatus, RunView, StreamMessage};

pub(super) fn replied(
    app: &mut App,
    request: Request,
    result: Result<Reply, String>,
) -> Vec<Effect> {
    let reply = match result {
        Ok(reply) => reply,
        Err(error) => return failed(app, &request, error),
    };
    match reply {
        Reply::Me(me) => {
            let since = me.seq;
            app.me = Load::Loaded(me);
            // Connected: an earlier "cannot reach" no longer applies.
            if app.toast.as_ref().is_some_and(|(_, error)| *error) {
                app.toast = None;
            }
            let mut effects: Vec<Effect> = [
                Request::Runs { cursor: None },
                Request::Workflows,
                Request::Alerts,
                Request::Dlq,
            ]
            .into_iter()
            .map(Effect::Request)
            .collect();
            effects.extend(open_effects(app));
            effects.push(Effect::Stream { since });
            return effects;
        }
        Reply::Runs(page) => {
            for run in page.items {
                app.runs.rows.entry(run.id).or_insert(run);
            }
            app.runs.next_cursor = page.next_cursor;
            app.runs.loading_more = false;
            app.runs.loaded = true;
        }
        Reply::Run(detail) => {
            app.runs.rows.insert(detail.run.id, detail.run.clone());
            if matches!(app.view, View::Inspector { run } if run == detail.run.id) {
                app.inspector.detail = Load::Loaded(*detail);
            } else if let Overlay::Editor { editor, .. } = &mut app.overlay {
                let text = serde_json::to_string_pretty(&detail.run.trigger).unwrap_or_default();
                **editor = tui_textarea::TextArea::from(text.lines().map(str::to_owned));
            }
        }
        Reply::Dlq(entries) => app.dlq.entries = Load::Loaded(entries),
        Reply::Health(health) => app.health = Load::Loaded(*health),
        Reply::Alerts(alerts) => {
            if let Some(id) = app.focus_alert.take() {
                app.alerts.selected = alerts.iter().position(|a| a.id == id).unwrap_or(0);
            }
            app.alerts.items = Load::Loaded(alerts);
        }
        Reply::Workflows(list) => {
            app.teams = list
                .iter()
                .map(|w| (w.key.clone(), w.team.clone()))
                .collect();
            app.workflows.items = Load::Loaded(list);
        }
        Reply::Versions(mut list) => {
            list.sort_by_key(|v| std::cmp::Reverse(v.version));
            app.versions.items = Load::Loaded(list);
        }
        Reply::Diff(diff) => app.diff = Load::Loaded(diff),
        Reply::Audit(list) => app.audit.items = Load::Loaded(list),
        Reply::Record(record, history) => app.record = Load::Loaded((*record, history)),
        Reply::Plan(plan) => {
            if let Overlay::Preview { plan: shown, .. } = &mut app.overlay {
                *shown = Load::Loaded(*plan);
            }
        }
        Reply::Done(said) => {
            app.toast = Some((said, false));
            app.stale.extend(["dlq", "alerts", "workflows"]);
            return open_effects(app);
        }
    }
    Vec::new()
}

fn failed(app: &mut App, request: &Request, error: String) -> Vec<Effect> {
    match request {
        Request::Me if error.starts_with("unauthorized") => {
            app.me = Load::Failed(error.clone());
            app.conn = Conn::Rejected(error.clone());
        }
        Request::Me => {
            app.me = Load::Failed(error.clone());
            let attempt = match &app.conn {
                Conn::Reconnecting { attempt, .. } => attempt + 1,
                _ => 1,
            };
            app.conn = Conn::Reconnecting {
                attempt,
                next_in_secs: 2,
                error: error.clone(),
            };
        }
        Request::Runs { .. } => app.runs.loading_more = false,
        Request::Run(_) => app.inspector.detail = Load::Failed(error.clone()),
        Request::Dlq => app.dlq.entries = Load::Failed(error.clone()),
        Request::Health { .. } => app.health = Load::Failed(error.clone()),
        Request::Alerts => app.alerts.items = Load::Failed(error.clone()),
        Request::Workflows => app.workflows.items = Load::Failed(error.clone()),
        Request::Versions(_) => app.versions.items = Load::Failed(error.clone()),
        Request::Diff { .. } => app.diff = Load::Failed(error.clone()),
        Request::Audit => app.audit.items = Load::Failed(error.clone()),
        Request::Record(_) => app.record = Load::Failed(error.clone()),
        Request::Replay(b) if b.dry_run => {
            if let Overlay::Preview { plan, .. } = &mut app.overlay {
                *plan = Load::Failed(error.clone());
            }
        }
        _ => {}
    }
    app.toast = Some((error, true));
    Vec::new()
}

/// Patches the cache from an event, so the explorer moves without a request per event.
pub(super) fn streamed(app: &mut App, message: StreamMessage) -> Vec<Effect> {
    let event = match message {
        StreamMessage::Event(event) => event,
        StreamMessage::Reset { .. } => {
            app.runs.rows.clear();
            app.stale.extend(["alerts", "dlq", "workflows"]);
            return vec![Effect::Request(Request::Runs { cursor: None })];
        }
        StreamMessage::Lagged { .. } => return Vec::new(),
        StreamMessage::Batch { messages } => {
            return messages
                .into_iter()
                .flat_map(|m| streamed(app, m))
                .collect();
        }
    };
    let kind = event.kind;
    let group = kind.as_str().split('.').next().unwrap_or("");
    match group {
        "alert" => {
            app.stale.insert("alerts");
        }
        "dlq" => {
            app.stale.insert("dlq");
        }
        "workflow" => {
            app.stale.insert("workflows");
        }
        _ => {}
    }
    let (Some(run_id), Some(workflow)) = (event.run_id, event.workflow.clone()) else {
        return Vec::new();
    };
    if kind == EventKind::RunQueued {
        let team = app.teams.get(&workflow).cloned().unwrap_or_default();
        app.runs.rows.entry(run_id).or_insert_with(|| RunView {
            id: run_id,
            workflow,
            version: event.data["version"].as_i64().unwrap_or(0),
            team,
            status: RunStatus::Queued,
            mode: crate::wire::RunMode::Live,
            trigger_kind: serde_json::from_value(event.data["trigger_kind"].clone())
                .unwrap_or(crate::wire::TriggerKind::Manual),
            trigger: serde_json::Value::Null,
            record_id: event.data["record_id"].as_i64(),
            origin_run: event.data["origin_run"].as_i64(),
            queued_at: event.at,
            started_at: None,
            finished_at: None,
            next_attempt_at: None,
            attempts: 0,
            error: None,
            failed_step: None,
        });
    }
    let Some(run) = app.runs.rows.get_mut(&run_id) else {
        return Vec::new();
    };
    match kind {
        EventKind::RunStarted | EventKind::RunResumed => {
            run.status = RunStatus::Running;
            run.started_at.get_or_insert(event.at);
        }
        EventKind::RunWaiting => run.status = RunStatus::Waiting,
        EventKind::StepStarted => {
            run.status = RunStatus::Running;
            run.attempts += 1;
        }
        EventKind::StepRetryScheduled => run.status = RunStatus::Retrying,
        EventKind::RunRetried => {
            run.status = RunStatus::Queued;
            run.finished_at = None;
            run.error = None;
        }
        EventKind::RunSucceeded | EventKind::RunFailed | EventKind::RunCancelled => {
            run.status = match kind {
                EventKind::RunSucceeded => RunStatus::Succeeded,
                EventKind::RunFailed => RunStatus::Failed,
                _ => RunStatus::Cancelled,
            };
            run.finished_at = Some(event.at);
            run.error = serde_json::from_value(event.data["error"].clone()).ok();
            run.failed_step = event.data["step_id"].as_str().map(str::to_owned);
        }
        _ => {}
    }
    // The inspector shows this run: reload its detail.
    let shown = matches!(app.view, View::Inspector { run } if run == run_id);
    if shown && matches!(group, "run" | "step") {
        return vec![Effect::Request(Request::Run(run_id))];
    }
    Vec::new()
}
