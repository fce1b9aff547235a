//! `update`: the only place the console's state changes. Keys become commands through the
//! keymap; replies and stream events refresh the cache; every change on the server goes
//! through a confirmation (or a typed reason, or a replay preview) first.

mod overlay;
mod replies;
#[cfg(test)]
mod tests;

use crossterm::event::KeyEvent;

use super::keymap::Command;
use super::msg::{Effect, Msg, Request};
use super::state::{App, Conn, Filter, Load, Overlay, Pending, Picker, TestScreen, Typed, View};
use crate::wire::{
    HoldView, ReplayOn, Responses, Role, RunView, TestInput, TestRequest, TestVersion,
};
pub use overlay::{COMMANDS, run_command_line};

/// Rows a page key moves.
const PAGE: usize = 10;
/// What to load when the console starts.
pub fn start() -> Vec<Effect> {
    vec![Effect::Request(Request::Me)]
}

/// Applies one message; answers what to do outside. Stream events only mark the run table
/// for recomputing: [`settle`] does it once per batch (the caller drains the queue first).
pub fn update(app: &mut App, msg: Msg) -> Vec<Effect> {
    let streamed = matches!(msg, Msg::Stream(_));
    app.runs.changed |= match &msg {
        Msg::Key(_) | Msg::Stream(_) => true,
        Msg::Reply(request, _) => matches!(
            request,
            Request::Runs { .. } | Request::Run(_) | Request::Failures
        ),
        Msg::Conn(_) | Msg::Tick | Msg::Resize(..) => false,
    };
    let overlay = std::mem::discriminant(&app.overlay);
    let effects = match msg {
        Msg::Key(key) => key_pressed(app, key),
        Msg::Reply(request, result) => replies::replied(app, request, *result),
        Msg::Stream(message) => replies::streamed(app, message),
        Msg::Conn(conn) => {
            let back = conn == Conn::Live && app.conn != Conn::Live;
            app.offline_since = match conn {
                Conn::Live => None,
                _ => app.offline_since.or(Some(chrono::Utc::now())),
            };
            app.conn = conn;
            // Back after a drop: reload what may have been missed before the stream resumed.
            if back && app.me.get().is_some() {
                app.stale.extend(["alerts", "dlq", "workflows"]);
            }
            Vec::new()
        }
        Msg::Tick => tick(app),
        Msg::Resize(width, height) => {
            app.size = Some((width, height));
            // Header, status bar, the table's borders and column header.
            app.runs.page = usize::from(height.saturating_sub(5));
            Vec::new()
        }
    };
    // A new overlay opens at its top.
    if std::mem::discriminant(&app.overlay) != overlay {
        app.overlay_scroll = 0;
    }
    if !streamed {
        settle(app);
    }
    effects
}

/// Recomputes what the lists show, if anything changed.
pub fn settle(app: &mut App) {
    app.refresh_lists();
}

fn tick(app: &mut App) -> Vec<Effect> {
    // The server was not reachable at start: keep asking who we are until it answers.
    if matches!(app.me, Load::Failed(_)) && !matches!(app.conn, Conn::Rejected(_)) {
        app.me = Load::Loading;
        return vec![Effect::Request(Request::Me)];
    }
    let mut effects: Vec<Effect> = std::mem::take(&mut app.stale)
        .into_iter()
        .filter_map(|what| match what {
            "alerts" => Some(Request::Alerts),
            "dlq" => Some(Request::Dlq),
            "workflows" => Some(Request::Workflows),
            "totals" => Some(Request::Totals),
            "holds" => Some(Request::Holds),
            _ => None,
        })
        .map(Effect::Request)
        .collect();
    if let Some(job) = app.job.as_ref().filter(|j| !j.is_over()) {
        effects.push(Effect::Request(Request::Job(job.id)));
    }
    // The holds screen counts held runs, which change with every run event: it reloads.
    if app.view == View::Holds && app.conn == Conn::Live {
        effects.push(Effect::Request(Request::Holds));
    }
    if app.view == View::Health && app.conn == Conn::Live {
        effects.push(Effect::Request(Request::Health {
            team: app.health_team.clone(),
        }));
    }
    // Incidents change as the server's tracker folds the log in: their screens reload.
    if app.conn == Conn::Live {
        match app.view {
            View::Incidents => effects.push(Effect::Request(Request::Incidents)),
            View::Incident { id } => effects.push(Effect::Request(Request::Incident(id))),
            _ => {}
        }
    }
    effects
}

fn key_pressed(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    // Behind the "too small" notice nothing may act unseen: only quitting works.
    if app.too_small() {
        if app.keymap.command(app.view.context(), &key) == Some(Command::Quit) {
            app.quit = true;
        }
        return Vec::new();
    }
    if !matches!(app.overlay, Overlay::None) {
        return overlay::key(app, key);
    }
    let Some(command) = app.keymap.command(app.view.context(), &key) else {
        return Vec::new();
    };
    command_run(app, command)
}

/// Runs a command in the current view (nothing while the terminal is too small, or when this
/// screen does not handle it).
pub fn command_run(app: &mut App, command: Command) -> Vec<Effect> {
    if app.too_small() || !handles(app, command) {
        return Vec::new();
    }
    if command.mutates()
        && let Some(refusal) = refusal(app, command)
    {
        app.toast = Some((refusal, true));
        return Vec::new();
    }
    app.toast = None;
    match command {
        Command::Quit => app.quit = true,
        Command::Help => app.overlay = Overlay::Help,
        Command::CommandMode => app.overlay = Overlay::Command(String::new()),
        Command::Filter => {
            let current = match app.view {
                View::Dlq => app.dlq.filter_text.clone(),
                _ => app.runs.filter_text.clone(),
            };
            app.overlay = Overlay::Filter(current);
        }
        Command::ClearFilter => {
            let cleared = match app.view {
                View::Dlq => std::mem::take(&mut app.dlq.filter_text),
                _ => {
                    app.runs.filter_before_drill = None;
                    app.runs.changed = true;
                    std::mem::take(&mut app.runs.filter_text)
                }
            };
            match app.view {
                View::Dlq => app.dlq.filter = Filter::default(),
                _ => app.runs.filter = Filter::default(),
            }
            app.toast = Some((
                if cleared.is_empty() {
                    "no filter to clear".to_owned()
                } else {
                    let shown: String = cleared.chars().take(40).collect();
                    let more = if shown.len() < cleared.len() {
                        "…"
                    } else {
                        ""
                    };
                    format!("filter /{shown}{more} cleared")
                },
                false,
            ));
        }
        Command::Back => back(app),
        Command::Up => move_by(app, -1),
        Command::Down => move_by(app, 1),
        Command::PageUp => move_by(app, -(PAGE as i64)),
        Command::PageDown => move_by(app, PAGE as i64),
        Command::Top => {
            move_by(app, i64::MIN / 2);
            // Back at the newest run: follow again.
            app.runs.follow |= app.view == View::Runs;
        }
        Command::Bottom => move_by(app, i64::MAX / 2),
        Command::Open => return open(app),
        Command::Refresh => return refresh(app),
        Command::Follow => {
            app.runs.follow = !app.runs.follow;
            if app.runs.follow {
                app.runs.selected = 0;
            }
        }
        Command::SortNext => app.runs.sort = app.runs.sort.next(),
        Command::GroupNext => app.dlq.group = app.dlq.group.next(),
        Command::NextPane | Command::PrevPane if matches!(app.view, View::Test { .. }) => {
            let results = app.test.report.get().map_or(0, |r| r.results.len());
            let selected = &mut app.test.selected;
            *selected = match command {
                Command::NextPane => (*selected + 1).min(results.saturating_sub(1)),
                _ => selected.saturating_sub(1),
            };
            app.test.scroll = 0;
        }
        Command::NextPane | Command::PrevPane => {
            let steps = app.inspector.steps().len();
            let step = &mut app.inspector.step;
            *step = match command {
                Command::NextPane => (*step + 1).min(steps.saturating_sub(1)),
                _ => step.saturating_sub(1),
            };
            app.inspector.scroll = 0;
            app.inspector.trigger = false;
        }
        Command::Zoom => app.inspector.zoom = !app.inspector.zoom,
        Command::Search => app.overlay = Overlay::Search(app.inspector.search.clone()),
        Command::NextMatch | Command::PrevMatch if app.inspector.search.is_empty() => {
            app.toast = Some(("nothing searched yet: / searches the detail".into(), true));
        }
        Command::NextMatch => jump_to_match(app, 1),
        Command::PrevMatch => jump_to_match(app, -1),
        Command::Trigger => {
            app.inspector.trigger = !app.inspector.trigger;
            app.inspector.scroll = 0;
        }
        Command::ReplayedAs | Command::ReplayOf => {
            let run = current_run(app);
            let target = match command {
                Command::ReplayedAs => run.and_then(|r| r.replayed_as),
                _ => run.and_then(|r| r.origin_run),
            };
            match target {
                Some(run) => return go(app, View::Inspector { run }),
                None => {
                    let what = match command {
                        Command::ReplayedAs => "this run was not replayed",
                        _ => "this run is not a replay or re-run",
                    };
                    app.toast = Some((what.into(), true));
                }
            }
        }
        Command::Copy => {
            if let Some(text) = selected_json(app) {
                app.toast = Some(("copied to the clipboard (OSC 52)".into(), false));
                return vec![Effect::Copy(text)];
            }
        }
        Command::History => {
            if let Some(record) = current_run(app).and_then(|r| r.record_id) {
                return go(app, View::Record { id: record });
            }
            app.toast = Some(("this run has no record".into(), true));
        }
        Command::Retry | Command::Rerun | Command::Cancel => {
            if let Some(run) = current_run(app) {
                let (question, then) = match command {
                    Command::Retry => (
                        format!("Retry run {} from its failed step?", run.id),
                        Pending::Retry(run.id),
                    ),
                    Command::Rerun => (
                        format!("Re-run run {} from the start with new keys?", run.id),
                        Pending::Rerun(run.id),
                    ),
                    _ => (format!("Cancel run {}?", run.id), Pending::Cancel(run.id)),
                };
                app.overlay = Overlay::Confirm { question, then };
            }
        }
        Command::Mark => {
            if let Some(id) = app.dlq.selected_entry().map(|e| e.id) {
                if !app.dlq.marked.remove(&id) {
                    app.dlq.marked.insert(id);
                }
                let known = app
                    .dlq
                    .entries
                    .get()
                    .map(|list| list.iter().map(|e| e.id).collect())
                    .unwrap_or_default();
                app.dlq.anchor = Some((id, known));
                move_by(app, 1);
            }
        }
        Command::MarkRange => {
            let range = app.dlq.range();
            app.dlq.marked.extend(range);
        }
        Command::Replay | Command::ReplayLatest | Command::ReplayFiltered => {
            return preview(app, command);
        }
        Command::EditPayload => {
            if let Some(entry) = app.dlq.selected_entry() {
                let (dlq, run) = (entry.id, entry.run_id);
                app.overlay = Overlay::Editor {
                    dlq,
                    editor: Box::new(tui_textarea::TextArea::from(["loading…".to_owned()])),
                    error: None,
                };
                return vec![Effect::Request(Request::Run(run))];
            }
        }
        Command::Discard => {
            let ids = app.dlq.targets();
            if !ids.is_empty() {
                app.overlay = Overlay::Reason {
                    prompt: format!(
                        "Discard {} entr{}: why?",
                        ids.len(),
                        if ids.len() == 1 { "y" } else { "ies" }
                    ),
                    input: String::new(),
                    then: Typed::Discard(ids),
                };
            }
        }
        Command::Ack => {
            if let Some(alert) = selected_alert(app) {
                app.overlay = Overlay::Confirm {
                    question: format!(
                        "Acknowledge alert {} ({} on {})?",
                        alert.id, alert.rule, alert.workflow
                    ),
                    then: Pending::Ack(alert.id),
                };
            }
        }
        Command::Diff => {
            if let Some((workflow, to)) = selected_version(app) {
                if to <= 1 {
                    app.toast = Some((format!("v{to} has no earlier version to diff with"), true));
                    return Vec::new();
                }
                let from = to - 1;
                app.diff = Load::Loading;
                let mut effects = go(
                    app,
                    View::Diff {
                        workflow: workflow.clone(),
                    },
                );
                effects.push(Effect::Request(Request::Diff { workflow, from, to }));
                return effects;
            }
        }
        Command::Publish => {
            if let Some(w) = selected_workflow(app) {
                app.overlay = Overlay::Confirm {
                    question: format!("Publish the draft of {}?", w),
                    then: Pending::Publish(w),
                };
            }
        }
        Command::Rollback if incident_view(app) => {
            let Some(incident) = current_incident(app) else {
                return Vec::new();
            };
            let workflow = incident.signature.workflow.clone();
            let published = app
                .workflows
                .items
                .get()
                .and_then(|list| list.iter().find(|w| w.key == workflow))
                .and_then(|w| w.published_version);
            let refusal = match incident.cause.as_ref() {
                None => Err(
                    "this incident did not follow a publish or rollback: roll back from the versions (:wf, enter)"
                        .to_owned(),
                ),
                // Undoing a rollback would put back the version it took away: a person picks.
                Some(cause) if cause.change == "rolled_back" => Err(format!(
                    "this incident began after a rollback to version {}: pick the version to go to from the versions (:wf, enter)",
                    cause.version
                )),
                Some(cause) if published.is_some_and(|p| p != cause.version) => Err(format!(
                    "version {} is no longer published (v{} is): there is nothing of this incident's cause to undo",
                    cause.version,
                    published.unwrap_or_default()
                )),
                Some(cause) => match cause.previous {
                    None => Err(format!(
                        "version {} was {workflow}'s first version: there is none to roll back to",
                        cause.version
                    )),
                    Some(version) => Ok(Overlay::Confirm {
                        question: format!(
                            "Incident {} {}. Roll {workflow} back to version {version}?",
                            incident.id,
                            cause.sentence()
                        ),
                        then: Pending::Rollback { workflow, version },
                    }),
                },
            };
            match refusal {
                Ok(confirm) => app.overlay = confirm,
                Err(why) => app.toast = Some((why, true)),
            }
        }
        Command::Rollback => {
            if let Some((workflow, version)) = selected_version(app) {
                app.overlay = Overlay::Confirm {
                    question: format!("Roll {workflow} back to version {version}?"),
                    then: Pending::Rollback { workflow, version },
                };
            }
        }
        Command::Test => return test_picker(app),
        Command::Compare => return compare(app),
        Command::GoRuns => return switch(app, View::Runs),
        Command::GoDlq => return switch(app, View::Dlq),
        Command::GoHealth => {
            // The screen key shows every team; `:health TEAM` narrows it.
            if app.health_team.take().is_some() {
                app.health = Load::Loading;
            }
            return switch(app, View::Health);
        }
        Command::GoAlerts => return switch(app, View::Alerts),
        Command::GoWorkflows => return switch(app, View::Workflows),
        Command::GoAudit => return switch(app, View::Audit),
        Command::GoHolds => return switch(app, View::Holds),
        Command::GoIncidents => return switch(app, View::Incidents),
        Command::Pause => {
            if let Some(workflow) = selected_workflow(app) {
                match app.pause_of(&workflow) {
                    Some(hold) => {
                        app.overlay = Overlay::Confirm {
                            question: format!(
                                "Resume {workflow}? (releases hold {}: {})",
                                hold.id, hold.reason
                            ),
                            then: Pending::Release(hold.id),
                        };
                    }
                    None => {
                        app.overlay = Overlay::Reason {
                            prompt: format!(
                                "Pause {workflow}: its runs wait until resumed (z). Why?"
                            ),
                            input: String::new(),
                            then: Typed::Pause(workflow),
                        };
                    }
                }
            }
        }
        Command::PlaceHold => {
            app.overlay = Overlay::Reason {
                prompt: "SCOPE REASON [for 2h] [drain 5/s]: host:api.attio.com vendor outage"
                    .into(),
                input: String::new(),
                then: Typed::Hold,
            };
        }
        Command::Release => {
            if let Some(hold) = selected_hold(app) {
                app.overlay = Overlay::Confirm {
                    question: format!(
                        "Release hold {} on {}? Its {} held runs continue{}.",
                        hold.id,
                        hold.scope,
                        hold.held_runs,
                        hold.drain_rate
                            .as_deref()
                            .map(|r| format!(" at {r}"))
                            .unwrap_or_default()
                    ),
                    then: Pending::Release(hold.id),
                };
            }
        }
    }
    Vec::new()
}

/// Moves `delta` matches of the inspector's search from the last one (0: the current one,
/// after the search changed) and scrolls the detail so it shows, two lines below the top.
pub(super) fn jump_to_match(app: &mut App, delta: i64) {
    let search = app.inspector.search.to_lowercase();
    if search.is_empty() {
        return;
    }
    let lines = super::views::detail_text(app);
    let hits: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.to_lowercase().contains(&search))
        .map(|(i, _)| i)
        .collect();
    if hits.is_empty() {
        app.toast = Some((format!("no match for `{}`", app.inspector.search), true));
        return;
    }
    let count = hits.len() as i64;
    let hit = (app.inspector.hit as i64 + delta).rem_euclid(count) as usize;
    app.inspector.hit = hit;
    let width = super::views::detail_width(app, app.size.map_or(super::views::MIN.0, |(w, _)| w));
    // The rows the lines above the match take, two of them left above it.
    let rows = wrapped_rows(&lines[..hits[hit]], width);
    app.inspector.scroll = rows.saturating_sub(2).min(usize::from(u16::MAX)) as u16;
    app.toast = Some((
        format!(
            "match {} of {count} for `{}` (n / N)",
            hit + 1,
            app.inspector.search
        ),
        false,
    ));
}

/// True when the current screen does something with `command`: help lists only these, and
/// the others do nothing here.
pub fn handles(app: &App, command: Command) -> bool {
    use Command::*;
    let view = &app.view;
    let inspector = matches!(view, View::Inspector { .. });
    match command {
        Quit | Help | CommandMode | Refresh | GoRuns | GoDlq | GoHealth | GoAlerts
        | GoWorkflows | GoAudit | GoHolds | GoIncidents => true,
        Back => !app.history.is_empty(),
        Up | Down | PageUp | PageDown | Top | Bottom => *view != View::Health,
        Filter | ClearFilter => matches!(view, View::Runs | View::Dlq),
        Open => {
            matches!(
                view,
                View::Runs | View::Dlq | View::Alerts | View::Workflows | View::Record { .. }
            ) || incident_view(app)
        }
        Follow | SortNext => *view == View::Runs,
        NextPane | PrevPane => inspector || matches!(view, View::Test { .. }),
        Copy | Zoom | Trigger | ReplayedAs | ReplayOf | Search | NextMatch | PrevMatch => inspector,
        History | Retry | Rerun | Cancel => inspector || *view == View::Runs,
        Replay | ReplayLatest => *view == View::Dlq || incident_view(app),
        Mark | MarkRange | GroupNext | ReplayFiltered | EditPayload | Discard => *view == View::Dlq,
        Ack => *view == View::Alerts,
        Diff => matches!(view, View::Versions { .. }),
        Rollback => matches!(view, View::Versions { .. }) || incident_view(app),
        Publish => matches!(
            view,
            View::Workflows | View::Versions { .. } | View::Test { .. }
        ),
        Test => matches!(
            view,
            View::Workflows | View::Versions { .. } | View::Test { .. }
        ),
        Compare => matches!(view, View::Test { .. }),
        Pause => matches!(view, View::Workflows | View::Versions { .. }),
        PlaceHold | Release => *view == View::Holds,
    }
}

/// Why a change is not possible now, if it is not.
fn refusal(app: &App, command: Command) -> Option<String> {
    if let Some(why) = role_refusal(app, command) {
        return Some(why);
    }
    if app.conn != Conn::Live {
        return Some("offline: changes are disabled until the connection is back".into());
    }
    None
}

/// Why this console (its `--read-only` flag, its token's role) may never run `command`, if
/// it may not; screens leave such commands out of their key hints.
pub fn role_refusal(app: &App, command: Command) -> Option<String> {
    if !command.mutates() {
        return None;
    }
    if app.read_only_flag {
        return Some("read-only console (--read-only): changes are disabled".into());
    }
    match app.role() {
        Role::Viewer => return Some("read-only: this token has the viewer role".into()),
        Role::Operator if matches!(command, Command::Publish | Command::Rollback) => {
            return Some("publish and rollback need an admin token".into());
        }
        Role::Operator
            if matches!(
                command,
                Command::Pause | Command::PlaceHold | Command::Release
            ) =>
        {
            return Some("holds (pause, resume, release) need an admin token".into());
        }
        _ => {}
    }
    None
}

/// Most screens `esc` can go back through.
const MAX_HISTORY: usize = 20;

/// Moves to another view (a drill-down), remembering where we were; the back stack holds
/// at most [`MAX_HISTORY`] screens.
pub fn go(app: &mut App, view: View) -> Vec<Effect> {
    if app.view != view {
        let previous = std::mem::replace(&mut app.view, view);
        app.history.push(previous);
        if app.history.len() > MAX_HISTORY {
            app.history.remove(0);
        }
    }
    open_effects(app)
}

/// Switches to a top-level screen (`1`-`6`, `:runs`...). A screen already on the way back is
/// returned to (the steps after it are dropped), so switching never grows the back stack.
pub fn switch(app: &mut App, view: View) -> Vec<Effect> {
    match app.history.iter().position(|v| *v == view) {
        Some(at) if app.view != view => {
            app.history.truncate(at);
            app.view = view;
            open_effects(app)
        }
        _ => go(app, view),
    }
}

fn back(app: &mut App) {
    if app.history.is_empty() {
        return;
    }
    // Leaving a drilled-down run list pops the filter the drill-down set.
    if app.view == View::Runs
        && let Some(before) = app.runs.filter_before_drill.take()
    {
        app.runs.filter = Filter::parse(&before);
        app.runs.filter_text = before;
        app.runs.changed = true;
    }
    if let Some(previous) = app.history.pop() {
        app.view = previous;
    }
}

/// What a view needs loaded when it opens (or after a change).
pub(super) fn open_effects(app: &mut App) -> Vec<Effect> {
    let request = match &app.view {
        View::Inspector { run } => {
            if app.inspector.detail.get().is_none_or(|d| d.run.id != *run) {
                app.inspector = Default::default();
                app.inspector.detail = Load::Loading;
            }
            Request::Run(*run)
        }
        View::Dlq => Request::Dlq,
        View::Health => {
            return vec![
                Effect::Request(Request::Health {
                    team: app.health_team.clone(),
                }),
                Effect::Request(Request::Summary {
                    team: app.health_team.clone(),
                }),
            ];
        }
        View::Alerts => {
            return vec![
                Effect::Request(Request::Alerts),
                Effect::Request(Request::Incidents),
            ];
        }
        View::Workflows => {
            return vec![
                Effect::Request(Request::Workflows),
                Effect::Request(Request::Holds),
            ];
        }
        View::Holds => Request::Holds,
        // The workflows too: which version is published decides what a rollback may undo.
        View::Incidents => {
            return vec![
                Effect::Request(Request::Incidents),
                Effect::Request(Request::Workflows),
            ];
        }
        View::Incident { id } => {
            if app.incident.get().is_none_or(|d| d.incident.id != *id) {
                app.incident = Load::Loading;
                app.incident_selected = 0;
            }
            return vec![
                Effect::Request(Request::Incident(*id)),
                Effect::Request(Request::Workflows),
            ];
        }
        View::Versions { workflow } => Request::Versions(workflow.clone()),
        View::Audit => Request::Audit { cursor: None },
        View::Record { id } => {
            if app.record.get().is_none_or(|(r, _)| r.id != *id) {
                app.record = Load::Loading;
                app.record_selected = 0;
            }
            Request::Record(*id)
        }
        View::Runs | View::Diff { .. } | View::Test { .. } => return Vec::new(),
    };
    vec![Effect::Request(request)]
}

fn refresh(app: &mut App) -> Vec<Effect> {
    if app.view == View::Runs {
        app.runs.rows.clear();
        return vec![
            Effect::Request(Request::Runs { cursor: None }),
            Effect::Request(Request::Failures),
        ];
    }
    open_effects(app)
}

fn open(app: &mut App) -> Vec<Effect> {
    match app.view.clone() {
        View::Runs => match app.runs.selected_run() {
            Some(run) => {
                let run = run.id;
                go(app, View::Inspector { run })
            }
            None => Vec::new(),
        },
        View::Dlq => match app.dlq.selected_entry() {
            Some(entry) => {
                let run = entry.run_id;
                go(app, View::Inspector { run })
            }
            None => Vec::new(),
        },
        View::Alerts => match selected_alert(app) {
            Some(alert) => {
                let text = format!("wf:{} status:failed", alert.workflow);
                let before = std::mem::replace(&mut app.runs.filter_text, text);
                app.runs.filter_before_drill.get_or_insert(before);
                app.runs.filter = Filter::parse(&app.runs.filter_text);
                app.runs.changed = true;
                go(app, View::Runs)
            }
            None => Vec::new(),
        },
        View::Workflows => match selected_workflow(app) {
            Some(workflow) => {
                app.versions = Default::default();
                go(app, View::Versions { workflow })
            }
            None => Vec::new(),
        },
        View::Record { .. } => {
            let change = app
                .record
                .get()
                .and_then(|(_, history)| history.iter().rev().nth(app.record_selected));
            match change.map(|c| c.run_id) {
                Some(Some(run)) => go(app, View::Inspector { run }),
                Some(None) => {
                    app.toast = Some(("this change was not made by a run".into(), true));
                    Vec::new()
                }
                None => Vec::new(),
            }
        }
        View::Incidents => match current_incident(app).map(|i| i.id) {
            Some(id) => go(app, View::Incident { id }),
            None => Vec::new(),
        },
        View::Incident { .. } => {
            let run = app
                .incident
                .get()
                .and_then(|d| d.runs.get(app.incident_selected))
                .map(|r| r.run_id);
            match run {
                Some(run) => go(app, View::Inspector { run }),
                None => Vec::new(),
            }
        }
        _ => Vec::new(),
    }
}

/// Asks the server what a replay would do; the preview needs an explicit yes.
fn preview(app: &mut App, command: Command) -> Vec<Effect> {
    let version = match command {
        Command::ReplayLatest => ReplayOn::Latest,
        _ => ReplayOn::Same,
    };
    if incident_view(app) {
        let Some(incident) = current_incident(app) else {
            return Vec::new();
        };
        if incident.open_dead_letters == 0 {
            app.toast = Some((
                format!("incident {} has no open dead letter to replay", incident.id),
                true,
            ));
            return Vec::new();
        }
        let then = Pending::ReplayIncident {
            id: incident.id,
            version,
            include_permanent: false,
        };
        let request = then.replay_request(true);
        app.overlay = Overlay::Preview {
            plan: Load::Loading,
            then,
        };
        return request.map(Effect::Request).into_iter().collect();
    }
    let (ids, filter) = match command {
        Command::ReplayFiltered => (Vec::new(), Some(app.dlq.filter.query())),
        _ => (app.dlq.targets(), None),
    };
    if ids.is_empty() && filter.is_none() {
        return Vec::new();
    }
    let then = Pending::Replay {
        ids,
        filter,
        version,
        include_permanent: false,
    };
    let bulk = then.bulk(true);
    app.overlay = Overlay::Preview {
        plan: Load::Loading,
        then,
    };
    bulk.map(|b| Effect::Request(Request::Replay(Box::new(b))))
        .into_iter()
        .collect()
}

/// The request a confirmed change sends.
pub(super) fn confirmed(then: Pending) -> Request {
    match then {
        Pending::Retry(id) => Request::Retry(id),
        Pending::Rerun(id) => Request::Rerun(id),
        Pending::Cancel(id) => Request::Cancel(id),
        Pending::Ack(id) => Request::Ack(id),
        Pending::Publish(key) => Request::Publish(key),
        Pending::Rollback { workflow, version } => Request::Rollback { workflow, version },
        Pending::Release(id) => Request::ReleaseHold(id),
        then @ Pending::Replay { .. } => {
            Request::Replay(Box::new(then.bulk(false).unwrap_or_default()))
        }
        Pending::ReplayEdited { dlq, payload } => Request::ReplayEdited { dlq, payload },
        then @ Pending::ReplayIncident { .. } => {
            then.replay_request(false).unwrap_or(Request::Incidents)
        }
    }
}

pub(super) fn move_by(app: &mut App, delta: i64) {
    let (selected, len) = match &app.view {
        View::Runs => (&mut app.runs.selected, app.runs.visible.len()),
        View::Dlq => {
            let len = app.dlq.visible.len();
            let target = (app.dlq.selected as i64)
                .saturating_add(delta)
                .clamp(0, len.saturating_sub(1) as i64);
            app.dlq.select(target as usize);
            return;
        }
        View::Alerts => (
            &mut app.alerts.selected,
            app.alerts.items.get().map_or(0, Vec::len),
        ),
        View::Workflows => (
            &mut app.workflows.selected,
            app.workflows.items.get().map_or(0, Vec::len),
        ),
        View::Versions { .. } => (
            &mut app.versions.selected,
            app.versions.items.get().map_or(0, Vec::len),
        ),
        View::Audit => (
            &mut app.audit.selected,
            app.audit.items.get().map_or(0, Vec::len),
        ),
        View::Holds => (
            &mut app.holds.selected,
            app.holds.items.get().map_or(0, |h| h.holds.len()),
        ),
        View::Incidents => (
            &mut app.incidents.selected,
            app.incidents.items.get().map_or(0, Vec::len),
        ),
        View::Incident { .. } => (
            &mut app.incident_selected,
            app.incident.get().map_or(0, |d| d.runs.len()),
        ),
        View::Record { .. } => (
            &mut app.record_selected,
            app.record.get().map_or(0, |(_, history)| history.len()),
        ),
        View::Test { .. } => {
            let last = i64::from(furthest_scroll(app));
            let scroll = &mut app.test.scroll;
            *scroll = (i64::from(*scroll) + delta.clamp(-1000, 1000)).clamp(0, last) as u16;
            return;
        }
        View::Inspector { .. } | View::Diff { .. } | View::Health => {
            let last = i64::from(furthest_scroll(app));
            let scroll = &mut app.inspector.scroll;
            *scroll = (i64::from(*scroll) + delta.clamp(-1000, 1000)).clamp(0, last) as u16;
            return;
        }
    };
    let target = (*selected as i64)
        .saturating_add(delta)
        .clamp(0, len.saturating_sub(1) as i64);
    *selected = target as usize;
    if app.view == View::Runs {
        // Moving away from the top pauses following; the newest row resumes it.
        app.runs.follow = app.runs.selected == 0 && app.runs.follow;
    }
}

/// The furthest the inspector's detail or a diff scrolls: its last row at the pane's foot.
fn furthest_scroll(app: &App) -> u16 {
    let (width, height) = app.size.unwrap_or(super::views::MIN);
    // Header and status bar, then the diff's borders or the inspector's run summary.
    let (lines, width, visible): (Vec<String>, u16, u16) = match &app.view {
        View::Diff { .. } => (
            app.diff
                .get()
                .map(|d| d.unified.lines().map(str::to_owned).collect())
                .unwrap_or_default(),
            width.saturating_sub(2),
            height.saturating_sub(4),
        ),
        View::Inspector { .. } => (
            super::views::detail_text(app),
            super::views::detail_width(app, width),
            height.saturating_sub(6),
        ),
        // Header and status bar, the inputs' table and the detail's borders.
        View::Test { .. } => {
            let results = app.test.report.get().map_or(0, |r| r.results.len()) as u16;
            let body = height.saturating_sub(2);
            let table = (results + 3).clamp(4, (body / 3).max(4));
            (
                super::views::test_detail_text(app),
                width.saturating_sub(2),
                body.saturating_sub(table + 2),
            )
        }
        _ => return 0,
    };
    wrapped_rows(&lines, width)
        .saturating_sub(usize::from(visible))
        .min(usize::from(u16::MAX)) as u16
}

/// How many rows `lines` take wrapped at `width` columns, a character per column and an
/// empty line one row: ratatui's word wrap takes as many or a few more.
fn wrapped_rows(lines: &[String], width: u16) -> usize {
    let width = usize::from(width.max(1));
    lines
        .iter()
        .map(|l| l.chars().count().div_ceil(width).max(1))
        .sum()
}

/// Near the end of the cached runs or audit entries: the next page over REST.
pub fn more(app: &mut App, visible_rows: usize) -> Option<Effect> {
    if app.view == View::Audit {
        let len = app.audit.items.get().map_or(0, Vec::len);
        if app.audit.selected + visible_rows < len {
            return None;
        }
        let cursor = app.audit_cursor.take()?;
        return Some(Effect::Request(Request::Audit {
            cursor: Some(cursor),
        }));
    }
    if app.view != View::Runs {
        return None;
    }
    let runs = &mut app.runs;
    let near_end = runs.selected + visible_rows >= runs.visible.len();
    match (&runs.next_cursor, near_end, runs.loading_more) {
        (Some(cursor), true, false) => {
            runs.loading_more = true;
            Some(Effect::Request(Request::Runs {
                cursor: Some(cursor.clone()),
            }))
        }
        _ => None,
    }
}

fn current_run(app: &App) -> Option<&RunView> {
    match &app.view {
        View::Inspector { .. } => app.inspector.detail.get().map(|d| &d.run),
        View::Runs => app.runs.selected_run(),
        _ => None,
    }
}

/// True on the incidents list or one incident.
fn incident_view(app: &App) -> bool {
    matches!(app.view, View::Incidents | View::Incident { .. })
}

/// The incident selected in the list, or the one open.
fn current_incident(app: &App) -> Option<&crate::wire::IncidentView> {
    match app.view {
        View::Incident { id } => app
            .incident
            .get()
            .map(|d| &d.incident)
            .filter(|i| i.id == id),
        _ => app.incidents.items.get()?.get(app.incidents.selected),
    }
}

fn selected_alert(app: &App) -> Option<&crate::wire::AlertView> {
    app.alerts.items.get()?.get(app.alerts.selected)
}

/// The workflow and version selected in the versions view.
fn selected_version(app: &App) -> Option<(String, i64)> {
    let View::Versions { workflow } = &app.view else {
        return None;
    };
    let version = app
        .versions
        .items
        .get()?
        .get(app.versions.selected)?
        .version;
    Some((workflow.clone(), version))
}

fn selected_hold(app: &App) -> Option<&HoldView> {
    app.holds.items.get()?.holds.get(app.holds.selected)
}

fn selected_workflow(app: &App) -> Option<String> {
    match &app.view {
        View::Versions { workflow } | View::Test { workflow } => Some(workflow.clone()),
        _ => app
            .workflows
            .items
            .get()?
            .get(app.workflows.selected)
            .map(|w| w.key.clone()),
    }
}

/// Opens the test picker for the selected workflow (its draft when it has one, else its
/// published version), the selected version, or the version on the test screen.
fn test_picker(app: &mut App) -> Vec<Effect> {
    let (workflow, version) = match &app.view {
        View::Versions { .. } => match selected_version(app) {
            Some((workflow, version)) => (workflow, TestVersion::Number(version)),
            None => return Vec::new(),
        },
        View::Test { workflow } => (workflow.clone(), app.test.version),
        _ => {
            let Some(w) = app
                .workflows
                .items
                .get()
                .and_then(|list| list.get(app.workflows.selected))
            else {
                return Vec::new();
            };
            let version = match (w.has_draft, w.published_version) {
                (true, _) => TestVersion::Draft,
                (false, Some(_)) => TestVersion::Published,
                (false, None) => {
                    app.toast = Some((format!("{} has nothing to test yet", w.key), true));
                    return Vec::new();
                }
            };
            (w.key.clone(), version)
        }
    };
    app.overlay = Overlay::Picker(Box::new(Picker {
        workflow: workflow.clone(),
        version,
        runs: Load::Loading,
        query: String::new(),
        marked: Default::default(),
        selected: 0,
    }));
    vec![Effect::Request(Request::Triggers(workflow))]
}

/// Runs a test and shows its screen; `compare` also runs that version on the same inputs.
pub(super) fn start_test(
    app: &mut App,
    workflow: String,
    version: TestVersion,
    inputs: Vec<TestInput>,
    compare: Option<TestVersion>,
) -> Vec<Effect> {
    app.test = TestScreen {
        workflow: workflow.clone(),
        version,
        inputs: inputs.clone(),
        report: Load::Loading,
        selected: 0,
        scroll: 0,
    };
    // The console has no mocks to give: outside calls get their last live answer.
    let request = TestRequest {
        version: Some(version),
        inputs,
        compare,
        responses: Responses::Recorded,
        ..TestRequest::default()
    };
    let mut effects = go(
        app,
        View::Test {
            workflow: workflow.clone(),
        },
    );
    effects.push(Effect::Request(Request::Test {
        workflow,
        request: Box::new(request),
    }));
    effects
}

/// The test again, on the same inputs, compared with the published version.
fn compare(app: &mut App) -> Vec<Effect> {
    if app.tests_published() {
        app.toast = Some((
            "this tests the published version: compare a draft or another version with it".into(),
            true,
        ));
        return Vec::new();
    }
    let test = &app.test;
    if test.inputs.is_empty() {
        return Vec::new();
    }
    let (workflow, version, inputs) = (test.workflow.clone(), test.version, test.inputs.clone());
    start_test(app, workflow, version, inputs, Some(TestVersion::Published))
}

/// The JSON the inspector shows for the selected step (its last attempt).
fn selected_json(app: &App) -> Option<String> {
    let steps = app.inspector.steps();
    let attempt = steps.get(app.inspector.step)?.attempts.last()?;
    serde_json::to_string_pretty(&serde_json::json!({
        "input": attempt.input,
        "output": attempt.output,
        "error": attempt.error,
    }))
    .ok()
}
