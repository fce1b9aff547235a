//! Replies from the server and stream events, folded into the cache.

use super::super::client::CallError;
use super::super::msg::{Effect, Reply, Request};
use super::super::state::{App, Conn, Load, Overlay, View};
use super::open_effects;
use crate::wire::{RunStatus, RunView, StreamMessage};

pub(super) fn replied(
    app: &mut App,
    request: Request,
    result: Result<Reply, CallError>,
) -> Vec<Effect> {
    let reply = match result {
        Ok(reply) => reply,
        Err(error) => return failed(app, &request, error),
    };
    if app.conn == Conn::Live {
        app.offline_since = None;
    }
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
                Request::Failures,
                Request::Workflows,
                Request::Alerts,
                Request::Dlq,
                Request::Totals,
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
            if request == Request::Failures {
                app.runs.failures_complete = page.next_cursor.is_none();
            } else {
                app.runs.next_cursor = page.next_cursor;
                app.runs.loading_more = false;
                app.runs.loaded = true;
            }
        }
        Reply::Run(detail) => {
            app.runs.rows.insert(detail.run.id, detail.run.clone());
            if matches!(app.view, View::Inspector { run } if run == detail.run.id) {
                let first_look = app.inspector.detail.get().is_none();
                app.inspector.detail = Load::Loaded(*detail);
                // A run opened fresh lands on its failing step (else its first).
                if first_look {
                    let steps = app.inspector.steps();
                    let failing = app
                        .inspector
                        .detail
                        .get()
                        .and_then(|d| d.run.failed_step.as_deref());
                    app.inspector.step = steps
                        .iter()
                        .position(|s| Some(s.step_id) == failing)
                        .unwrap_or(0);
                }
            } else if let Overlay::Editor { editor, .. } = &mut app.overlay {
                let text = serde_json::to_string_pretty(&detail.run.trigger).unwrap_or_default();
                **editor = tui_textarea::TextArea::from(text.lines().map(str::to_owned));
            }
        }
        Reply::Dlq(page) => {
            app.dlq.more = page.next_cursor.is_some();
            app.dlq.entries = Load::Loaded(page.items);
        }
        Reply::Health(health) => app.health = Load::Loaded(*health),
        Reply::Totals(totals) => app.totals = Load::Loaded(*totals),
        Reply::Alerts(alerts) => {
            app.alerts.replace(alerts, |a| a.id);
            if let Some(id) = app.focus_alert.take() {
                let list = app
                    .alerts
                    .items
                    .get()
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                match list.iter().position(|a| a.id == id) {
                    Some(at) => app.alerts.selected = at,
                    None => {
                        app.toast = Some((
                            format!("alert {id} was not found (the list holds the newest alerts)"),
                            true,
                        ));
                    }
                }
            }
        }
        Reply::Workflows(list) => {
            app.teams = list
                .iter()
                .map(|w| (w.key.clone(), w.team.clone()))
                .collect();
            app.workflows.replace(list, |w| w.key.clone());
        }
        Reply::Versions(mut list) => {
            list.sort_by_key(|v| std::cmp::Reverse(v.version));
            app.versions.replace(list, |v| v.version);
        }
        Reply::Diff(diff) => {
            // Open where the change is, two lines of context above it.
            let first = diff.unified.lines().position(|l| {
                (l.starts_with('+') || l.starts_with('-'))
                    && !l.starts_with("+++")
                    && !l.starts_with("---")
            });
            app.inspector.scroll = first.map_or(0, |at| at.saturating_sub(2)) as u16;
            app.diff = Load::Loaded(diff);
        }
        Reply::Audit(page) => {
            let older = matches!(request, Request::Audit { cursor: Some(_) });
            match (older, app.audit.items.get().cloned()) {
                (true, Some(mut list)) => {
                    list.extend(page.items);
                    app.audit.items = Load::Loaded(list);
                }
                _ => app.audit.replace(page.items, |e| e.id),
            }
            app.audit_cursor = page.next_cursor;
        }
        Reply::Record(record, history) => app.record = Load::Loaded((*record, history)),
        Reply::Triggers(runs) => {
            if let Overlay::Picker(picker) = &mut app.overlay {
                // The newest trigger of each record (runs come newest first): the picker
                // finds records, not every run of a busy one.
                let mut seen = std::collections::HashSet::new();
                let runs = runs
                    .into_iter()
                    .filter(|run| run.record_id.is_none_or(|id| seen.insert(id)))
                    .collect();
                picker.runs = Load::Loaded(runs);
            }
        }
        Reply::Test(report) => {
            if app.test.workflow == report.workflow {
                // Open on the first input that did not succeed.
                app.test.selected = report
                    .results
                    .iter()
                    .position(|r| r.status != RunStatus::Succeeded)
                    .unwrap_or(0);
                app.test.scroll = 0;
                app.test.report = Load::Loaded(*report);
            }
        }
        Reply::Plan(plan) => {
            if let Overlay::Preview { plan: shown, .. } = &mut app.overlay {
                *shown = Load::Loaded(*plan);
            }
        }
        Reply::Job(job) => {
            if app.job.as_ref().is_none_or(|known| known.id != job.id) {
                let said = format!(
                    "replay job {} started: {} runs at {}, each also waiting on its limits",
                    job.id, job.total, job.rate
                );
                app.toast = Some((said, false));
            }
            app.stale.insert("dlq");
            app.job = Some(*job);
        }
        Reply::Incidents(list) => app.incidents.replace(list, |i| i.id),
        Reply::Incident(detail) => {
            if app.view
                == (View::Incident {
                    id: detail.incident.id,
                })
            {
                app.incident_selected = app
                    .incident_selected
                    .min(detail.runs.len().saturating_sub(1));
                app.incident = Load::Loaded(*detail);
            }
        }
        Reply::Summary(summary) => app.summary = Load::Loaded(*summary),
        Reply::Holds(holds) => {
            app.holds.selected = app.holds.selected.min(holds.holds.len().saturating_sub(1));
            app.holds.items = Load::Loaded(*holds);
        }
        Reply::Done(said) => {
            app.toast = Some((said, false));
            app.stale.extend(["dlq", "alerts", "workflows", "holds"]);
            return open_effects(app);
        }
    }
    Vec::new()
}

/// A request failed: say so, and keep what was cached on screen (marked stale by the view
/// while the server is away) instead of replacing it with the error.
fn failed(app: &mut App, request: &Request, failure: CallError) -> Vec<Effect> {
    let error = failure.to_string();
    fn keep<T>(load: &mut Load<T>, error: &str) {
        if load.get().is_none() {
            *load = Load::Failed(error.to_owned());
        }
    }
    match request {
        Request::Me if failure.is_unauthorized() => {
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
            app.offline_since.get_or_insert_with(chrono::Utc::now);
        }
        Request::Runs { .. } => app.runs.loading_more = false,
        Request::Run(_) => keep(&mut app.inspector.detail, &error),
        Request::Dlq => keep(&mut app.dlq.entries, &error),
        Request::Health { .. } => keep(&mut app.health, &error),
        Request::Totals => keep(&mut app.totals, &error),
        Request::Alerts => keep(&mut app.alerts.items, &error),
        Request::Workflows => keep(&mut app.workflows.items, &error),
        Request::Versions(_) => keep(&mut app.versions.items, &error),
        Request::Diff { .. } => keep(&mut app.diff, &error),
        Request::Audit { .. } => keep(&mut app.audit.items, &error),
        Request::Holds => keep(&mut app.holds.items, &error),
        Request::Incidents => keep(&mut app.incidents.items, &error),
        Request::Incident(_) => keep(&mut app.incident, &error),
        Request::Summary { .. } => keep(&mut app.summary, &error),
        Request::Record(_) => keep(&mut app.record, &error),
        Request::Test { .. } => app.test.report = Load::Failed(error.clone()),
        Request::Triggers(_) => {
            if let Overlay::Picker(picker) = &mut app.overlay {
                picker.runs = Load::Failed(error.clone());
            }
        }
        Request::ReplayIncident { request, .. } if request.dry_run => {
            if let Overlay::Preview { plan, .. } = &mut app.overlay {
                *plan = Load::Failed(error.clone());
            }
        }
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
            return vec![
                Effect::Request(Request::Runs { cursor: None }),
                Effect::Request(Request::Failures),
            ];
        }
        StreamMessage::Lagged { .. } => return Vec::new(),
        StreamMessage::Batch { messages } => {
            return messages
                .into_iter()
                .flat_map(|m| streamed(app, m))
                .collect();
        }
    };
    let kind = event.kind();
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
        "hold" => {
            app.stale.insert("holds");
        }
        _ => {}
    }
    if event.body.run_status().is_some_and(RunStatus::is_final) {
        app.stale.insert("totals");
    }
    let Some(run_id) = event.run_id else {
        return Vec::new();
    };
    if let Some(mut run) = RunView::queued(&event) {
        if run.team.is_empty() {
            run.team = app.teams.get(&run.workflow).cloned().unwrap_or_default();
        }
        app.runs.rows.entry(run_id).or_insert(run);
    }
    let Some(run) = app.runs.rows.get_mut(&run_id) else {
        return Vec::new();
    };
    run.apply(&event);
    // The inspector shows this run: reload its detail.
    let shown = matches!(app.view, View::Inspector { run } if run == run_id);
    if shown && matches!(group, "run" | "step") {
        return vec![Effect::Request(Request::Run(run_id))];
    }
    Vec::new()
}
