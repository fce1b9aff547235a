//! Keys while an overlay is open: the command and filter lines, confirmations, the replay
//! preview, the discard reason and the payload editor.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::super::msg::{Effect, Request};
use super::super::state::{App, Filter, Load, Overlay, Pending, Typed, View};
use super::{confirmed, switch};
use crate::wire::{HoldRequest, ReplayOn};

pub(super) fn key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    match &mut app.overlay {
        Overlay::None => Vec::new(),
        Overlay::Help | Overlay::Message { .. } => {
            if !scroll(app, &key) {
                app.overlay = Overlay::None;
            }
            Vec::new()
        }
        Overlay::Search(input) => {
            match key.code {
                KeyCode::Esc => {
                    app.inspector.search.clear();
                    app.overlay = Overlay::None;
                    return Vec::new();
                }
                KeyCode::Enter => {
                    app.overlay = Overlay::None;
                    return Vec::new();
                }
                KeyCode::Backspace => {
                    input.pop();
                }
                KeyCode::Char('u') if ctrl => input.clear(),
                KeyCode::Char(c) if !ctrl => input.push(c),
                _ => return Vec::new(),
            }
            app.inspector.search = input.clone();
            app.inspector.hit = 0;
            super::jump_to_match(app, 0);
            Vec::new()
        }
        Overlay::Command(input) | Overlay::Filter(input) => match key.code {
            KeyCode::Esc => {
                app.overlay = Overlay::None;
                Vec::new()
            }
            KeyCode::Enter => {
                let overlay = std::mem::take(&mut app.overlay);
                match overlay {
                    Overlay::Command(text) => run_command_line(app, &text),
                    _ => {
                        let filter = match app.view {
                            View::Dlq => &app.dlq.filter,
                            _ => &app.runs.filter,
                        };
                        if let Some(error) = filter.error.clone() {
                            app.toast = Some((format!("{error}; it filters nothing"), true));
                        }
                        Vec::new()
                    }
                }
            }
            KeyCode::Tab => {
                if let Overlay::Command(text) = &mut app.overlay
                    && let Some(done) = complete(text)
                {
                    *text = done.to_owned();
                }
                Vec::new()
            }
            KeyCode::Backspace => {
                input.pop();
                apply_filter(app);
                Vec::new()
            }
            KeyCode::Char('u') if ctrl => {
                input.clear();
                apply_filter(app);
                Vec::new()
            }
            KeyCode::Char(c) if !ctrl => {
                input.push(c);
                apply_filter(app);
                Vec::new()
            }
            _ => Vec::new(),
        },
        Overlay::Confirm { .. } => match key.code {
            KeyCode::Char('y') | KeyCode::Char('Y') => {
                let Overlay::Confirm { then, .. } = std::mem::take(&mut app.overlay) else {
                    return Vec::new();
                };
                app.toast = Some(("sent…".into(), false));
                vec![Effect::Request(confirmed(then))]
            }
            KeyCode::Char('n') | KeyCode::Esc => {
                app.overlay = Overlay::None;
                app.toast = Some(("nothing changed".into(), false));
                Vec::new()
            }
            _ => Vec::new(),
        },
        Overlay::Picker(picker) => {
            let shown = picker.shown().len();
            match key.code {
                KeyCode::Esc => app.overlay = Overlay::None,
                KeyCode::Enter => {
                    let inputs = picker.inputs();
                    if inputs.is_empty() {
                        app.toast = Some((
                            "nothing to test on: no recent trigger; type #ID for a record".into(),
                            true,
                        ));
                        return Vec::new();
                    }
                    let (workflow, version) = (picker.workflow.clone(), picker.version);
                    app.overlay = Overlay::None;
                    return super::start_test(app, workflow, version, inputs, None);
                }
                KeyCode::Up => picker.selected = picker.selected.saturating_sub(1),
                KeyCode::Down => {
                    picker.selected = (picker.selected + 1).min(shown.saturating_sub(1));
                }
                KeyCode::Char(' ') => {
                    let id = picker.shown().get(picker.selected).map(|(run, _)| run.id);
                    if let Some(id) = id
                        && !picker.marked.remove(&id)
                    {
                        picker.marked.insert(id);
                    }
                }
                KeyCode::Backspace => {
                    picker.query.pop();
                    picker.selected = 0;
                }
                KeyCode::Char('u') if ctrl => {
                    picker.query.clear();
                    picker.selected = 0;
                }
                // Every shown trigger, or none when they all were.
                KeyCode::Char('a') if ctrl => {
                    let ids: Vec<i64> = picker.shown().iter().map(|(run, _)| run.id).collect();
                    if ids.iter().all(|id| picker.marked.contains(id)) {
                        picker.marked.clear();
                    } else {
                        picker.marked.extend(ids);
                    }
                }
                KeyCode::Char(c) if !ctrl => {
                    picker.query.push(c);
                    picker.selected = 0;
                }
                _ => {}
            }
            Vec::new()
        }
        Overlay::Preview { plan, then } => match key.code {
            // Switch between the failed runs' own versions and the latest published one, or
            // take in the permanent failures held back.
            KeyCode::Char(c @ ('l' | 'i')) => {
                let Some((version, include_permanent)) = then.replay_options() else {
                    return Vec::new();
                };
                if c == 'l' {
                    *version = match version {
                        ReplayOn::Same => ReplayOn::Latest,
                        ReplayOn::Latest => ReplayOn::Same,
                    };
                } else {
                    *include_permanent = !*include_permanent;
                }
                *plan = Load::Loading;
                then.replay_request(true)
                    .map(Effect::Request)
                    .into_iter()
                    .collect()
            }
            KeyCode::Char('y') | KeyCode::Char('Y') if matches!(plan, Load::Loaded(p) if p.count > 0) =>
            {
                let Overlay::Preview { then, .. } = std::mem::take(&mut app.overlay) else {
                    return Vec::new();
                };
                app.dlq.marked.clear();
                app.toast = Some(("replaying…".into(), false));
                vec![Effect::Request(confirmed(then))]
            }
            KeyCode::Char('n') | KeyCode::Esc => {
                app.overlay = Overlay::None;
                app.toast = Some(("replay cancelled; nothing changed".into(), false));
                Vec::new()
            }
            _ => {
                scroll(app, &key);
                Vec::new()
            }
        },
        Overlay::Reason { input, then, .. } => match key.code {
            KeyCode::Esc => {
                app.overlay = Overlay::None;
                Vec::new()
            }
            KeyCode::Enter if !input.trim().is_empty() => {
                let typed = input.trim().to_owned();
                let request = match then {
                    Typed::Discard(ids) => {
                        let ids = std::mem::take(ids);
                        app.dlq.marked.clear();
                        Request::Discard { ids, reason: typed }
                    }
                    Typed::Pause(workflow) => Request::PlaceHold(Box::new(HoldRequest {
                        scope: format!("workflow:{workflow}"),
                        reason: typed,
                        ..HoldRequest::default()
                    })),
                    Typed::Hold => match hold_request(&typed) {
                        Ok(request) => Request::PlaceHold(Box::new(request)),
                        Err(problem) => {
                            app.toast = Some((problem.to_string(), true));
                            return Vec::new();
                        }
                    },
                };
                app.overlay = Overlay::None;
                vec![Effect::Request(request)]
            }
            KeyCode::Backspace => {
                input.pop();
                Vec::new()
            }
            KeyCode::Char(c) if !ctrl => {
                input.push(c);
                Vec::new()
            }
            _ => Vec::new(),
        },
        Overlay::Editor { dlq, editor, error } => match key.code {
            KeyCode::Esc => {
                app.overlay = Overlay::None;
                Vec::new()
            }
            KeyCode::Char('s') if ctrl => {
                let text = editor.lines().join("\n");
                match serde_json::from_str::<serde_json::Value>(&text) {
                    Ok(payload) if payload.is_object() => {
                        let dlq = *dlq;
                        app.overlay = Overlay::Confirm {
                            question: format!("Replay entry {dlq} with the edited payload?"),
                            then: Pending::ReplayEdited { dlq, payload },
                        };
                    }
                    Ok(_) => *error = Some("the payload must be a JSON object".into()),
                    Err(e) => *error = Some(format!("not valid JSON: {e}")),
                }
                Vec::new()
            }
            _ => {
                editor.input(key);
                *error = None;
                Vec::new()
            }
        },
    }
}

/// Scrolls the open overlay on arrows, j/k and page keys; false for any other key.
fn scroll(app: &mut App, key: &KeyEvent) -> bool {
    let delta: i32 = match key.code {
        KeyCode::Down | KeyCode::Char('j') => 1,
        KeyCode::Up | KeyCode::Char('k') => -1,
        KeyCode::PageDown | KeyCode::Char(' ') => 10,
        KeyCode::PageUp => -10,
        KeyCode::Home | KeyCode::Char('g') => -10_000,
        KeyCode::End | KeyCode::Char('G') => 10_000,
        _ => return false,
    };
    app.overlay_scroll = (i32::from(app.overlay_scroll) + delta).clamp(0, 2_000) as u16;
    true
}

/// Filters as the user types.
fn apply_filter(app: &mut App) {
    let Overlay::Filter(text) = &app.overlay else {
        return;
    };
    let text = text.clone();
    match app.view {
        View::Dlq => {
            app.dlq.filter = Filter::parse(&text);
            app.dlq.filter_text = text;
        }
        _ => {
            app.runs.filter = Filter::parse(&text);
            app.runs.filter_text = text;
            app.runs.changed = true;
        }
    }
}

/// What `:incident` says in the demo.
const INCIDENT: &str = "About a minute in, the sandbox's enrichment API starts answering 503 (now and then 429) to most calls: \
lead_routing retries, then dead-letters, and the failure_rate alert fires (its notification is in the sandbox's \
Slack-like sink). Half a minute later a bad big_deal_alert version goes out: every big deal fails on a template \
error.\n\nTriage: 4 (alerts), enter (the failed runs), enter (the failing step and its error). 8 (incidents) \
groups the failures by signature, each with its count, first and last seen, and the publish it followed; enter \
lists its runs, p replays its dead letters through the preview, B rolls back the version it followed.\n\nFix: :fix (the \
enrichment API recovers); 5, select big_deal_alert, enter, select the previous version, B, y (roll back); 2 \
(dead letters), A, l (on the latest version), check the preview (entries by error; permanent failures that would \
fail the same way again, like the invalid e-mail addresses, are held back: i takes them in, D discards them), y (replay the rest). \
Then watch 4: the alert resolves once the failure rate has stayed low for a while.\n\nStop the bleeding first: \
during the outage, hold every call to the enrichment API (the sandbox serves it as localhost): :holds, n, \
host:localhost enrichment outage drain 5/s, enter. Lead routing runs now wait at their enrich step (status held, \
‖ in 1) instead of burning their retries into the DLQ; the API's own 429s with Retry-After already hold it for \
a moment by themselves (the automatic holds in :holds). After :fix, D on the hold releases it: the held runs \
drain at 5 a second, oldest first, and none of them reaches the DLQ.\n\nCatch it before it ships: in 5, \
open big_deal_alert, select the bad version, t (test), ctrl-a (every recent big deal), enter: each input fails on \
`owner_email` and nothing is sent or written; after the rollback, c compares it with the published version (\"N of N now fail\"). From a \
shell or CI: acp workflow test FILE --recent 20 --compare published (exits 1).";

/// The `:` commands, for completion.
pub const COMMANDS: &[&str] = &[
    "incident",
    "incidents",
    "fix",
    "runs",
    "dlq",
    "health",
    "alerts",
    "wf",
    "audit",
    "holds",
    "run ",
    "record ",
    "quit",
];

fn complete(text: &str) -> Option<&'static str> {
    let matches: Vec<&&str> = COMMANDS.iter().filter(|c| c.starts_with(text)).collect();
    (matches.len() == 1).then(|| *matches[0])
}

/// How a typed hold line shows what it should be.
const HOLD_USAGE: &str = "write SCOPE REASON [for DURATION] [drain RATE], e.g. host:api.attio.com \
                          vendor outage for 2h drain 5/s";

/// What is wrong with a typed hold line (each message says how to write one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum HoldLineError {
    #[error("a hold needs a reason: {HOLD_USAGE}")]
    NoReason,
    #[error("`{0}` is not a scope: {HOLD_USAGE}")]
    NotAScope(String),
    #[error("`{option}` is an option: options come last, after the reason{follows}: {HOLD_USAGE}")]
    Misplaced { option: String, follows: String },
}

/// Reads `SCOPE REASON [for DURATION] [drain RATE]` (the server checks the scope, the
/// duration and the rate).
///
/// # Errors
/// [`HoldLineError`]: no reason, no scope, or an option inside the reason.
fn hold_request(text: &str) -> Result<HoldRequest, HoldLineError> {
    let (scope, rest) = text
        .split_once(char::is_whitespace)
        .ok_or(HoldLineError::NoReason)?;
    if !scope.contains(':') {
        return Err(HoldLineError::NotAScope(scope.to_owned()));
    }
    let mut words: Vec<&str> = rest.split_whitespace().collect();
    let (mut for_, mut drain_rate) = (None, None);
    // The options come last, in either order.
    while words.len() >= 3 {
        let (option, value) = (words[words.len() - 2], words[words.len() - 1].to_owned());
        match option {
            "for" if for_.is_none() => for_ = Some(value),
            "drain" if drain_rate.is_none() => drain_rate = Some(value),
            _ => break,
        }
        words.truncate(words.len() - 2);
    }
    let is_option = |pair: &[&str]| match pair[0] {
        "for" => pair[1].starts_with(|c: char| c.is_ascii_digit()),
        "drain" => pair[1].contains('/'),
        _ => false,
    };
    // Only options, no reason (`host:x for 2h`).
    let only_options = words.len().is_multiple_of(2) && words.chunks(2).all(is_option);
    if words.is_empty() || only_options {
        return Err(HoldLineError::NoReason);
    }
    // An option left inside the reason (`for 2h ... extra`) was surely meant as one.
    if let Some(at) = words.windows(2).position(is_option) {
        let follows = match words.len() > at + 2 {
            true => format!(" (`{}` follows it)", words[words.len() - 1]),
            false => String::new(),
        };
        let option = format!("{} {}", words[at], words[at + 1]);
        return Err(HoldLineError::Misplaced { option, follows });
    }
    Ok(HoldRequest {
        scope: scope.to_owned(),
        reason: words.join(" "),
        for_,
        drain_rate,
        ..HoldRequest::default()
    })
}

/// True for a run or record id: a whole number from 1.
fn positive(id: &str) -> bool {
    id.parse::<i64>().is_ok_and(|id| id > 0)
}

/// Runs a `:` command line.
pub fn run_command_line(app: &mut App, text: &str) -> Vec<Effect> {
    let mut words = text.split_whitespace();
    let view = match (words.next().unwrap_or(""), words.next()) {
        ("runs" | "r", _) => View::Runs,
        ("dlq" | "d", _) => View::Dlq,
        ("health" | "h", team) => {
            // A team no workflow belongs to would show an empty, all-clear screen.
            if let Some(team) = team
                && !app.teams.is_empty()
                && !app.teams.values().any(|t| t == team)
            {
                let mut known: Vec<&str> = app.teams.values().map(String::as_str).collect();
                known.sort_unstable();
                known.dedup();
                app.toast = Some((
                    format!("no team `{team}` (teams: {})", known.join(", ")),
                    true,
                ));
                return Vec::new();
            }
            app.health_team = team.map(str::to_owned);
            app.health = Load::Loading;
            View::Health
        }
        ("alerts" | "a", _) => View::Alerts,
        ("wf" | "workflows" | "w", _) => View::Workflows,
        ("audit", _) => View::Audit,
        ("holds", _) => View::Holds,
        ("incidents", _) => View::Incidents,
        ("incident", Some(id)) if words.clone().next().is_none() && positive(id) => {
            View::Incident {
                id: id.parse().unwrap_or(0),
            }
        }
        ("run", Some(id)) if words.clone().next().is_none() && positive(id) => View::Inspector {
            run: id.parse().unwrap_or(0),
        },
        ("record", Some(id)) if words.clone().next().is_none() && positive(id) => View::Record {
            id: id.parse().unwrap_or(0),
        },
        ("incident", _) if app.sandbox.is_some() => {
            let sandbox = app.sandbox.clone().unwrap_or_default();
            app.overlay = Overlay::Message {
                title: " The demo's incident ".into(),
                text: format!(
                    "{INCIDENT}\n\nWhat the Slack-like sink received: curl {sandbox}/slack"
                ),
            };
            return Vec::new();
        }
        ("incident", None) => View::Incidents,
        ("fix", _) => match app.sandbox.clone() {
            Some(sandbox) => return vec![Effect::Request(Request::FixSandbox(sandbox))],
            None => {
                app.toast = Some(("`:fix` is for the demo's sandbox (acp demo)".into(), true));
                return Vec::new();
            }
        },
        ("q" | "quit", _) => {
            app.quit = true;
            return Vec::new();
        }
        ("", _) => return Vec::new(),
        (command @ ("run" | "record" | "incident"), id) => {
            let what = match (id, words.next()) {
                (Some(_), Some(extra)) => format!("`:{command}` takes one id, not `{extra}` too"),
                (Some(id), None) => {
                    let article = if command == "incident" { "an" } else { "a" };
                    format!("`{id}` is not {article} {command} id (ids are numbers from 1)")
                }
                (None, _) => format!("`:{command}` needs an id"),
            };
            app.toast = Some((format!("{what}: write e.g. :{command} 42"), true));
            return Vec::new();
        }
        (other, _) => {
            let demo = if app.sandbox.is_some() {
                " :incident :fix"
            } else {
                ""
            };
            app.toast = Some((
                format!(
                    "unknown command `{other}`; the commands: :runs :dlq :health [TEAM] :alerts :wf :audit :holds :incidents :incident ID :run ID :record ID{demo} :quit (? lists them)"
                ),
                true,
            ));
            return Vec::new();
        }
    };
    switch(app, view)
}
