//! Key sequences -> commands -> state: navigation, filter, marking, confirmation, refusals.

use super::*;
use crate::console::client::CallError;
use crate::console::keymap;
use crate::console::msg::{Msg, Reply};
use crate::wire::{DlqStatus, DlqView, ErrorClass, Me, RunMode, StepError, TriggerKind};
use crate::wire::{RunStatus, StreamMessage};
use crossterm::event::{KeyCode, KeyModifiers};

fn app(role: Role) -> App {
    let mut app = App::new(
        "http://h".into(),
        keymap::load("default", None).unwrap(),
        false,
    );
    app.me = Load::Loaded(Me {
        name: "me".into(),
        role,
        seq: 0,
    });
    app.conn = Conn::Live;
    for id in 1..=30 {
        app.runs.rows.insert(
            id,
            run(
                id,
                if id % 2 == 0 {
                    "lead_routing"
                } else {
                    "big_deal"
                },
                if id % 3 == 0 {
                    RunStatus::Failed
                } else {
                    RunStatus::Succeeded
                },
            ),
        );
    }
    app.dlq.entries = Load::Loaded((1..=5).map(entry).collect());
    app.runs.changed = true;
    app.refresh_lists();
    app
}

fn run(id: i64, workflow: &str, status: RunStatus) -> RunView {
    RunView {
        id,
        workflow: workflow.into(),
        version: 1,
        team: "revops".into(),
        status,
        mode: RunMode::Live,
        trigger_kind: TriggerKind::Manual,
        trigger: serde_json::json!({}),
        record_id: None,
        origin_run: None,
        queued_at: chrono::Utc::now(),
        started_at: None,
        finished_at: None,
        next_attempt_at: None,
        attempts: 1,
        error: (status == RunStatus::Failed).then(|| StepError {
            class: ErrorClass::Transient,
            message: "HTTP 503".into(),
            retryable: true,
            status: None,
            host: None,
        }),
        failed_step: None,
        dead_letter: None,
        replayed_as: None,
        held_reason: None,
    }
}

fn entry(id: i64) -> DlqView {
    DlqView {
        id,
        run_id: id * 3,
        workflow: "lead_routing".into(),
        version: 1,
        team: "revops".into(),
        step_id: "enrich".into(),
        error: StepError {
            class: ErrorClass::Transient,
            message: "HTTP 503".into(),
            retryable: true,
            status: None,
            host: None,
        },
        status: DlqStatus::Open,
        created_at: chrono::Utc::now(),
        closed_at: None,
        closed_by: None,
        close_reason: None,
        replay_run: None,
        record_id: Some(100 + id),
    }
}

/// Presses keys written like `j j G` (`<esc>`, `<enter>`, `<space>`, `<bs>`, `<tab>` by name).
fn keys(app: &mut App, text: &str) -> Vec<Effect> {
    let mut effects = Vec::new();
    for word in text.split(' ') {
        let codes: Vec<KeyCode> = match word {
            "<esc>" => vec![KeyCode::Esc],
            "<enter>" => vec![KeyCode::Enter],
            "<space>" => vec![KeyCode::Char(' ')],
            "<bs>" => vec![KeyCode::Backspace],
            "<tab>" => vec![KeyCode::Tab],
            "<down>" => vec![KeyCode::Down],
            _ => word.chars().map(KeyCode::Char).collect(),
        };
        for code in codes {
            effects.extend(update(
                app,
                Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)),
            ));
        }
    }
    effects
}

/// The server's answer to `GET /dlq`: these entries, all of them.
fn dlq_reply(entries: Vec<DlqView>) -> Msg {
    Msg::Reply(
        Request::Dlq,
        Box::new(Ok(Reply::Dlq(crate::wire::Page {
            items: entries,
            next_cursor: None,
        }))),
    )
}

/// A call that got no answer.
fn unreachable(reason: &str) -> CallError {
    CallError::Unreachable {
        what: "the server",
        reason: reason.into(),
    }
}

fn requests(effects: &[Effect]) -> Vec<&Request> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Request(r) => Some(r),
            _ => None,
        })
        .collect()
}

#[test]
fn navigation_moves_the_selection_and_enter_opens_the_inspector() {
    let mut app = app(Role::Operator);
    assert_eq!(app.runs.selected_run().unwrap().id, 30, "newest first");
    keys(&mut app, "j j");
    assert_eq!(app.runs.selected_run().unwrap().id, 28);
    assert!(!app.runs.follow, "moving down pauses following");
    keys(&mut app, "G");
    assert_eq!(app.runs.selected_run().unwrap().id, 1);
    keys(&mut app, "g");
    let effects = keys(&mut app, "<enter>");
    assert_eq!(app.view, View::Inspector { run: 30 });
    assert_eq!(requests(&effects), [&Request::Run(30)]);
    keys(&mut app, "<esc>");
    assert_eq!(app.view, View::Runs);
}

#[test]
fn the_filter_applies_as_you_type() {
    let mut app = app(Role::Operator);
    keys(&mut app, "/ status:failed <space> wf:lead_routing <enter>");
    assert_eq!(app.runs.filter_text, "status:failed wf:lead_routing");
    assert_eq!(app.runs.visible, [30, 24, 18, 12, 6]);
    keys(
        &mut app,
        "/ <bs> <bs> <bs> <bs> <bs> <bs> <bs> <bs> <bs> <bs> <bs> <bs> <bs> <bs> <bs> <bs> <esc>",
    );
    assert_eq!(app.runs.visible.len(), 10, "status:failed alone");
}

#[test]
fn changes_need_a_yes() {
    let mut app = app(Role::Operator);
    assert!(keys(&mut app, "R").is_empty());
    assert!(matches!(app.overlay, Overlay::Confirm { .. }));
    assert!(keys(&mut app, "n").is_empty(), "no: nothing sent");
    assert!(matches!(app.overlay, Overlay::None));
    let effects = keys(&mut app, "R y");
    assert_eq!(requests(&effects), [&Request::Retry(30)]);
}

#[test]
fn dlq_marks_ranges_and_replays_only_after_the_preview() {
    let mut app = app(Role::Operator);
    keys(&mut app, "2");
    assert_eq!(app.view, View::Dlq);
    keys(&mut app, "<space> j j V");
    assert_eq!(
        app.dlq.marked.iter().copied().collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    let effects = keys(&mut app, "p");
    let [Request::Replay(plan)] = requests(&effects)[..] else {
        panic!("{effects:?}")
    };
    assert!(plan.dry_run);
    assert_eq!(plan.ids, [1, 2, 3, 4]);
    assert!(
        keys(&mut app, "y").is_empty(),
        "no yes before the server answered"
    );
    let effects = keys(&mut app, "l");
    let [Request::Replay(latest)] = requests(&effects)[..] else {
        panic!("{effects:?}")
    };
    assert_eq!(
        (latest.version, latest.dry_run),
        (ReplayOn::Latest, true),
        "l asks again, for the latest version"
    );
    update(
        &mut app,
        Msg::Reply(
            Request::Replay(plan.clone()),
            Box::new(Ok(Reply::Plan(Box::new(crate::wire::ReplayPlan {
                count: 4,
                workflows: vec![],
                records: vec![],
                external_steps: vec![],
                runs: vec![],
                groups: vec![],
                held_back: 0,
            })))),
        ),
    );
    let effects = keys(&mut app, "y");
    let [Request::Replay(real)] = requests(&effects)[..] else {
        panic!("{effects:?}")
    };
    assert!(!real.dry_run);
    assert_eq!(real.version, ReplayOn::Latest);
    assert_eq!(real.ids, [1, 2, 3, 4]);
    assert!(app.dlq.marked.is_empty());
}

#[test]
fn discard_needs_a_typed_reason() {
    let mut app = app(Role::Operator);
    keys(&mut app, "2 D");
    assert!(
        keys(&mut app, "<enter>").is_empty(),
        "an empty reason is not enough"
    );
    let effects = keys(&mut app, "dup <space> lead <enter>");
    assert_eq!(
        requests(&effects),
        [&Request::Discard {
            ids: vec![1],
            reason: "dup lead".into()
        }]
    );
}

#[test]
fn read_only_viewers_and_offline_consoles_refuse_changes_with_a_reason() {
    let mut viewer = app(Role::Viewer);
    assert!(keys(&mut viewer, "R").is_empty());
    assert!(matches!(viewer.overlay, Overlay::None));
    assert!(viewer.toast.as_ref().unwrap().0.contains("viewer role"));
    let mut flagged = app(Role::Admin);
    flagged.read_only_flag = true;
    keys(&mut flagged, "R");
    assert!(flagged.toast.as_ref().unwrap().0.contains("--read-only"));
    let mut offline = app(Role::Admin);
    update(
        &mut offline,
        Msg::Conn(Conn::Reconnecting {
            attempt: 2,
            next_in_secs: 4,
            error: "refused".into(),
        }),
    );
    keys(&mut offline, "R");
    assert!(offline.toast.as_ref().unwrap().0.starts_with("offline"));
    keys(&mut offline, "j");
    assert_eq!(offline.runs.selected, 1, "browsing the cache still works");
    let mut operator = app(Role::Operator);
    keys(&mut operator, "5 P");
    assert!(operator.toast.as_ref().unwrap().0.contains("admin"));
}

#[test]
fn command_mode_completes_and_switches_views() {
    let mut app = app(Role::Operator);
    keys(&mut app, ": he <tab> <enter>");
    assert_eq!(app.view, View::Health);
    let effects = keys(&mut app, ": health <space> revops <enter>");
    assert_eq!(
        requests(&effects),
        [
            &Request::Health {
                team: Some("revops".into())
            },
            &Request::Summary {
                team: Some("revops".into())
            }
        ]
    );
    keys(&mut app, ": record <space> 12 <enter>");
    assert_eq!(app.view, View::Record { id: 12 });
    keys(&mut app, ": bogus <enter>");
    assert!(app.toast.as_ref().unwrap().0.contains("unknown command"));
    assert_eq!(app.history, [View::Runs, View::Health]);
}

#[test]
fn stream_events_move_the_explorer_without_requests() {
    let mut app = app(Role::Operator);
    let event = |seq, kind: &str, data| {
        Msg::Stream(StreamMessage::Event(crate::wire::Event {
            seq,
            at: chrono::Utc::now(),
            workflow: Some("lead_routing".into()),
            run_id: Some(31),
            body: crate::wire::EventBody::from_parts(kind, data).expect("a typed body"),
        }))
    };
    assert!(
        update(
            &mut app,
            event(
                1,
                "run.queued",
                serde_json::json!({"version": 2, "trigger_kind": "record"})
            )
        )
        .is_empty()
    );
    settle(&mut app);
    assert_eq!(app.runs.visible[0], 31, "the newest run shows on top");
    assert_eq!(
        app.runs.selected_run().unwrap().id,
        30,
        "a new row never moves the selection off the run being read"
    );
    let effects = keys(&mut app, "<enter>");
    assert_eq!(requests(&effects), [&Request::Run(30)]);
    keys(&mut app, "<esc>");
    update(
        &mut app,
        event(2, "run.started", serde_json::json!({"from": "queued"})),
    );
    update(
        &mut app,
        event(
            3,
            "run.failed",
            serde_json::json!({"step_id": "enrich", "error": {"class": "permanent", "message": "HTTP 422", "retryable": false}}),
        ),
    );
    let run = &app.runs.rows[&31];
    assert_eq!(
        (run.status, run.error.as_ref().unwrap().message.as_str()),
        (RunStatus::Failed, "HTTP 422")
    );
    assert_eq!(run.version, 2);
    assert!(
        requests(&update(&mut app, Msg::Tick)).contains(&&Request::Totals),
        "a run that ended reloads the header's 24 h totals at the next tick"
    );
    assert!(!requests(&update(&mut app, Msg::Tick)).contains(&&Request::Totals));
    settle(&mut app);
    let failed = app.runs.counts.get("failed").copied().unwrap_or(0);
    update(
        &mut app,
        event(
            4,
            "dlq.added",
            serde_json::json!({"dlq_id": 9, "step_id": "enrich", "class": "permanent", "message": "HTTP 422"}),
        ),
    );
    update(
        &mut app,
        event(
            5,
            "dlq.replayed",
            serde_json::json!({"dlq_id": 9, "replay_run": 32}),
        ),
    );
    settle(&mut app);
    let run = &app.runs.rows[&31];
    assert_eq!(
        (run.dead_letter, run.replayed_as),
        (Some(DlqStatus::Replayed), Some(32))
    );
    assert_eq!(
        app.runs.counts.get("failed").copied().unwrap_or(0),
        failed - 1,
        "the header counts open failures: a replayed one is handled"
    );
}

#[test]
fn dead_letters_group_by_workflow_then_error() {
    let mut app = app(Role::Operator);
    let mut entries: Vec<DlqView> = (1..=4).map(entry).collect();
    entries[0].workflow = "zeta".into();
    entries[2].workflow = "zeta".into();
    entries[1].error.message = "HTTP 429 for lead 12".into();
    entries[3].error.message = "HTTP 429 for lead 99".into();
    app.dlq.entries = Load::Loaded(entries);
    keys(&mut app, "2 o");
    let ids = |app: &App| -> Vec<i64> {
        let entries = app.dlq.entries.get().unwrap();
        app.dlq.visible.iter().map(|i| entries[*i].id).collect()
    };
    assert_eq!(ids(&app), [2, 4, 1, 3], "lead_routing first, then zeta");
    keys(&mut app, "o");
    assert_eq!(
        ids(&app),
        [2, 4, 1, 3],
        "the two 429s (one signature) together, then the 503s"
    );
    keys(&mut app, "o");
    assert_eq!(ids(&app), [1, 2, 3, 4]);
}

#[test]
fn the_payload_editor_checks_json_before_a_replay() {
    let mut app = app(Role::Operator);
    keys(&mut app, "2");
    let effects = keys(&mut app, "E");
    assert_eq!(
        requests(&effects),
        [&Request::Run(3)],
        "the entry's run, for its payload"
    );
    let mut detail_run = run(3, "lead_routing", RunStatus::Failed);
    detail_run.trigger = serde_json::json!({"email": "ada@example"});
    let detail = crate::wire::RunDetail {
        run: detail_run,
        attempts: vec![],
    };
    update(
        &mut app,
        Msg::Reply(Request::Run(3), Box::new(Ok(Reply::Run(Box::new(detail))))),
    );
    let Overlay::Editor { editor, .. } = &app.overlay else {
        panic!("the editor")
    };
    assert!(editor.lines().join("\n").contains("ada@example"));
    let ctrl_s = KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL);
    // Break the JSON: type a stray character at the start.
    keys(&mut app, "x");
    update(&mut app, Msg::Key(ctrl_s));
    let Overlay::Editor {
        error: Some(error), ..
    } = &app.overlay
    else {
        panic!("an error")
    };
    assert!(error.starts_with("not valid JSON"), "{error}");
    keys(&mut app, "<bs>");
    assert!(update(&mut app, Msg::Key(ctrl_s)).is_empty());
    assert!(
        matches!(app.overlay, Overlay::Confirm { .. }),
        "valid JSON asks before replaying"
    );
    let effects = keys(&mut app, "y");
    assert_eq!(
        requests(&effects),
        [&Request::ReplayEdited {
            dlq: 1,
            payload: serde_json::json!({"email": "ada@example"})
        }]
    );
}

#[test]
fn scrolling_near_the_end_of_the_cache_pages_over_rest() {
    let mut app = app(Role::Operator);
    app.runs.next_cursor = Some("c1".into());
    assert_eq!(
        more(&mut app, 20),
        None,
        "the top of 30 runs is not near the end"
    );
    keys(&mut app, "G");
    assert_eq!(
        more(&mut app, 20),
        Some(Effect::Request(Request::Runs {
            cursor: Some("c1".into())
        }))
    );
    assert_eq!(more(&mut app, 20), None, "one page at a time");
    let page = crate::wire::Page {
        items: vec![run(0, "lead_routing", RunStatus::Succeeded)],
        next_cursor: None,
    };
    update(
        &mut app,
        Msg::Reply(
            Request::Runs {
                cursor: Some("c1".into()),
            },
            Box::new(Ok(Reply::Runs(page))),
        ),
    );
    assert_eq!(app.runs.rows.len(), 31);
    assert!(app.runs.next_cursor.is_none());
}

#[test]
fn a_server_that_is_down_at_start_is_asked_again_on_every_tick() {
    let mut app = App::new(
        "http://h".into(),
        keymap::load("default", None).unwrap(),
        false,
    );
    let down = || Box::new(Err(unreachable("connection refused")));
    update(&mut app, Msg::Reply(Request::Me, down()));
    assert!(matches!(app.conn, Conn::Reconnecting { attempt: 1, .. }));
    assert_eq!(requests(&update(&mut app, Msg::Tick)), [&Request::Me]);
    update(&mut app, Msg::Reply(Request::Me, down()));
    assert!(matches!(app.conn, Conn::Reconnecting { attempt: 2, .. }));
    let me = Me {
        name: "me".into(),
        role: Role::Operator,
        seq: 7,
    };
    let effects = update(
        &mut app,
        Msg::Reply(Request::Me, Box::new(Ok(Reply::Me(me)))),
    );
    assert!(
        effects.contains(&Effect::Stream { since: 7 }),
        "{effects:?}"
    );
}

#[test]
fn screen_keys_do_not_grow_the_back_stack() {
    let mut app = app(Role::Operator);
    for _ in 0..30 {
        keys(&mut app, "2 3 4 5 6 1");
    }
    assert!(app.history.len() <= 6, "{:?}", app.history);
    assert_eq!(app.view, View::Runs);
    keys(&mut app, "3 4");
    assert_eq!(app.history.last(), Some(&View::Health));
    keys(&mut app, "3");
    assert_eq!(
        app.view,
        View::Health,
        "going to a screen on the way back returns to it"
    );
    assert!(!app.history.contains(&View::Health), "{:?}", app.history);
}

#[test]
fn a_drill_down_filter_is_popped_with_it_and_ctrl_u_clears_the_input() {
    let mut app = app(Role::Operator);
    keys(&mut app, "/ s l o w <enter>");
    assert_eq!(app.runs.filter_text, "slow");
    app.alerts.items = Load::Loaded(vec![crate::wire::AlertView {
        id: 1,
        rule: "failure_rate".into(),
        workflow: "lead_routing".into(),
        severity: "critical".into(),
        state: crate::wire::AlertState::Firing,
        opened_at: chrono::Utc::now(),
        fired_at: None,
        resolved_at: None,
        acked_at: None,
        acked_by: None,
        silenced_until: None,
        notified_at: None,
        detail: serde_json::Value::Null,
    }]);
    keys(&mut app, "4 <enter>");
    assert_eq!(app.view, View::Runs);
    assert_eq!(app.runs.filter_text, "wf:lead_routing status:failed");
    keys(&mut app, "<esc>");
    assert_eq!(app.view, View::Alerts, "esc goes back to the alert");
    assert_eq!(
        app.runs.filter_text, "slow",
        "and takes the drill-down's filter with it"
    );
    keys(&mut app, "1 / x y z");
    assert_eq!(app.runs.filter_text, "slowxyz", "/ edits the active filter");
    update(
        &mut app,
        Msg::Key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL)),
    );
    assert_eq!(app.runs.filter_text, "");
}

#[test]
fn commands_with_a_bad_argument_say_what_is_wrong() {
    let mut app = app(Role::Operator);
    keys(&mut app, ": run <space> abc <enter>");
    let toast = app.toast.clone().unwrap().0;
    assert!(toast.contains("`abc` is not a run id"), "{toast}");
    keys(&mut app, ": record <enter>");
    let toast = app.toast.clone().unwrap().0;
    assert!(toast.contains("`:record` needs an id"), "{toast}");
    assert_eq!(app.view, View::Runs);
}

#[test]
fn a_rejected_token_stops_the_retries_and_says_so() {
    let mut app = App::new(
        "http://127.0.0.1:7700".into(),
        keymap::load("default", None).unwrap(),
        false,
    );
    update(
        &mut app,
        Msg::Reply(
            Request::Me,
            Box::new(Err(CallError::Refused {
                status: 401,
                code: Some("unauthorized".into()),
                message: "the token is not valid or was revoked".into(),
            })),
        ),
    );
    assert!(matches!(app.conn, Conn::Rejected(_)), "{:?}", app.conn);
    assert!(
        requests(&update(&mut app, Msg::Tick)).is_empty(),
        "no retry with the same token"
    );
    update(
        &mut app,
        Msg::Reply(Request::Me, Box::new(Err(unreachable("refused")))),
    );
    assert!(matches!(app.conn, Conn::Reconnecting { .. }));
    assert_eq!(
        requests(&update(&mut app, Msg::Tick)),
        [&Request::Me],
        "a dead server is asked again"
    );
}

#[test]
fn nothing_acts_behind_the_too_small_notice_but_quit() {
    let mut app = app(Role::Operator);
    update(&mut app, Msg::Resize(70, 20));
    let effects = keys(&mut app, "<enter> 2 : R");
    assert!(effects.is_empty(), "{effects:?}");
    assert_eq!(app.view, View::Runs);
    assert!(matches!(app.overlay, Overlay::None));
    assert!(
        command_run(&mut app, Command::Down).is_empty(),
        "mouse wheel too"
    );
    assert_eq!(app.runs.selected, 0);
    keys(&mut app, "q");
    assert!(app.quit);
    let mut app = self::app(Role::Operator);
    update(&mut app, Msg::Resize(80, 24));
    keys(&mut app, "2");
    assert_eq!(app.view, View::Dlq, "80x24 is enough");
}

#[test]
fn overlays_scroll_and_any_other_key_closes_them() {
    let mut app = app(Role::Operator);
    keys(&mut app, "? j j <down>");
    assert!(matches!(app.overlay, Overlay::Help));
    assert_eq!(app.overlay_scroll, 3);
    keys(&mut app, "k");
    assert_eq!(app.overlay_scroll, 2);
    keys(&mut app, "x");
    assert!(matches!(app.overlay, Overlay::None));
    keys(&mut app, "?");
    assert_eq!(app.overlay_scroll, 0, "a new overlay opens at its top");
}

#[test]
fn one_key_clears_the_active_filter() {
    let mut app = app(Role::Operator);
    keys(&mut app, "/ b i g <enter>");
    assert_eq!(app.runs.filter_text, "big");
    assert_eq!(app.runs.visible.len(), 15);
    keys(&mut app, "c");
    assert_eq!(app.runs.filter_text, "");
    assert_eq!(app.runs.visible.len(), 30);
    assert!(app.toast.as_ref().unwrap().0.contains("cleared"));
    keys(&mut app, "/ s i n c e : s o o n <enter>");
    assert!(
        app.runs
            .filter
            .error
            .as_ref()
            .unwrap()
            .contains("since:soon")
    );
    keys(&mut app, "c / s i n c e : 1 h <enter>");
    assert_eq!(
        app.runs.visible.len(),
        30,
        "every run is from the last hour"
    );
}

#[test]
fn dead_letter_selection_and_ranges_follow_ids_not_rows() {
    let mut app = app(Role::Operator);
    keys(&mut app, "2 j j");
    let chosen = app.dlq.selected_entry().unwrap().id;
    let mut entries: Vec<DlqView> = std::iter::once(entry(9))
        .chain((1..=5).map(entry))
        .collect();
    entries.sort_by_key(|e| e.id);
    update(&mut app, dlq_reply(entries));
    assert_eq!(app.dlq.selected_entry().unwrap().id, chosen);

    let mut app = self::app(Role::Operator);
    keys(&mut app, "2 <space>");
    let first = *app.dlq.marked.iter().next().unwrap();
    // An entry arrives between the anchor and where the range ends.
    let mut entries: Vec<DlqView> = (1..=5).map(entry).collect();
    let mut late = entry(99);
    late.workflow = "lead_routing".into();
    entries.insert(2, late);
    update(&mut app, dlq_reply(entries));
    keys(&mut app, "j j j V");
    assert!(app.dlq.marked.contains(&first));
    assert!(
        !app.dlq.marked.contains(&99),
        "the range never takes in what arrived after the anchor: {:?}",
        app.dlq.marked
    );
    assert_eq!(app.dlq.marked.len(), 4, "{:?}", app.dlq.marked);
}

#[test]
fn help_lists_only_what_the_screen_handles() {
    let mut app = app(Role::Operator);
    assert!(handles(&app, Command::Filter));
    keys(&mut app, "4");
    assert!(!handles(&app, Command::Filter), "no filter on alerts");
    assert!(handles(&app, Command::Open));
    keys(&mut app, "3");
    assert!(!handles(&app, Command::Open), "nothing to open on health");
    let effects = keys(&mut app, "/");
    assert!(effects.is_empty() && matches!(app.overlay, Overlay::None));
}

#[test]
fn the_replay_preview_holds_back_permanent_failures_until_asked() {
    let mut app = app(Role::Operator);
    keys(&mut app, "2");
    let effects = keys(&mut app, "A");
    let [Request::Replay(plan)] = requests(&effects)[..] else {
        panic!("{effects:?}")
    };
    assert!(plan.dry_run && !plan.include_permanent);
    let effects = keys(&mut app, "i");
    let [Request::Replay(plan)] = requests(&effects)[..] else {
        panic!("{effects:?}")
    };
    assert!(
        plan.dry_run && plan.include_permanent,
        "i asks again, with them"
    );
    keys(&mut app, "j");
    assert_eq!(app.overlay_scroll, 1, "the preview scrolls");
}

#[test]
fn a_failed_reload_keeps_the_cached_screen() {
    let mut app = app(Role::Operator);
    update(
        &mut app,
        Msg::Conn(Conn::Reconnecting {
            attempt: 1,
            next_in_secs: 2,
            error: "down".into(),
        }),
    );
    assert!(app.offline_since.is_some());
    update(
        &mut app,
        Msg::Reply(Request::Dlq, Box::new(Err(unreachable("refused")))),
    );
    assert_eq!(app.dlq.entries.get().map(Vec::len), Some(5));
    assert!(app.toast.as_ref().unwrap().1);
    update(&mut app, Msg::Conn(Conn::Live));
    assert!(app.offline_since.is_none());
}

#[test]
fn a_replayed_run_links_to_its_replay_and_back() {
    let mut app = app(Role::Operator);
    let mut failed = run(3, "lead_routing", RunStatus::Failed);
    failed.replayed_as = Some(31);
    app.view = View::Inspector { run: 3 };
    app.inspector.detail = Load::Loaded(crate::wire::RunDetail {
        run: failed,
        attempts: Vec::new(),
    });
    let effects = keys(&mut app, "]");
    assert_eq!(app.view, View::Inspector { run: 31 });
    assert_eq!(requests(&effects), [&Request::Run(31)]);
    keys(&mut app, "[");
    assert!(app.toast.as_ref().unwrap().0.contains("not a replay"));
}

#[test]
fn search_in_the_inspector_jumps_between_matches() {
    let mut app = app(Role::Operator);
    update(&mut app, Msg::Resize(80, 24));
    let attempt = |n: i64| crate::wire::AttemptView {
        id: n,
        step_index: 0,
        step_id: "enrich".into(),
        number: n,
        status: crate::wire::AttemptStatus::Succeeded,
        idempotency_key: "run-3:enrich".into(),
        input: serde_json::json!({"a_rows": (0..40).map(|i| format!("row {i}")).collect::<Vec<_>>(), "needle": "here"}),
        output: serde_json::json!({"needle": "again"}),
        error: None,
        detail: serde_json::json!({}),
        started_at: chrono::Utc::now(),
        finished_at: None,
        carried_from: None,
        retry_delay_ms: None,
    };
    app.view = View::Inspector { run: 3 };
    app.inspector.detail = Load::Loaded(crate::wire::RunDetail {
        run: run(3, "lead_routing", RunStatus::Succeeded),
        attempts: vec![attempt(1)],
    });
    keys(&mut app, "/ n e e d l e");
    assert_eq!(app.inspector.search, "needle");
    let first = app.inspector.scroll;
    assert!(first > 30, "the first match is below the 40 rows: {first}");
    keys(&mut app, "<enter> n");
    assert!(app.inspector.scroll > first, "n goes to the next match");
    assert!(app.toast.as_ref().unwrap().0.contains("match 2 of 2"));
    keys(&mut app, "n");
    assert_eq!(app.inspector.scroll, first, "and wraps around");
    keys(&mut app, "/ x y z");
    assert!(app.toast.as_ref().unwrap().0.contains("no match"));
    keys(&mut app, "<esc>");
    assert!(app.inspector.search.is_empty(), "esc clears the search");
}

#[test]
fn bad_input_in_commands_and_filters_says_what_is_wrong() {
    let mut app = app(Role::Operator);
    app.teams.insert("lead_routing".into(), "revops".into());
    keys(&mut app, ": h e a l t h <space> n o p e <enter>");
    assert!(app.toast.as_ref().unwrap().0.contains("no team `nope`"));
    assert_eq!(app.view, View::Runs, "an unknown team opens nothing");
    keys(&mut app, ": h e a l t h <space> r e v o p s <enter>");
    assert_eq!(app.health_team.as_deref(), Some("revops"));
    keys(&mut app, "1 3");
    assert_eq!(app.health_team, None, "the screen key shows every team");
    keys(&mut app, "1 / s i n c e : 5 x <enter>");
    let (said, error) = app.toast.clone().unwrap();
    assert!(error && said.contains("since:5x") && said.contains("filters nothing"));
    keys(&mut app, "c / s i n c e : 1 0 0 0 0 0 0 0 0 0 y <enter>");
    assert!(app.toast.as_ref().unwrap().0.contains("over 100 years"));
    keys(&mut app, "c : r u n <space> 1 <space> 2 <enter>");
    assert!(app.toast.as_ref().unwrap().0.contains("takes one id"));
    keys(&mut app, ": r u n <space> - 1 <enter>");
    assert!(app.toast.as_ref().unwrap().0.contains("numbers from 1"));
    assert_eq!(app.view, View::Runs, "a bad id leaves the screen as it is");
}

#[test]
fn the_diff_stops_scrolling_at_its_last_line() {
    let mut app = app(Role::Operator);
    update(&mut app, Msg::Resize(80, 24));
    app.view = View::Diff {
        workflow: "lead_routing".into(),
    };
    app.diff = Load::Loaded(crate::wire::Diff {
        from: 1,
        to: 2,
        unified: "--- v1\n+++ v2\n@@ -1 +1 @@\n-a\n+b\n".into(),
    });
    keys(&mut app, "G");
    assert_eq!(app.inspector.scroll, 0, "five lines fit: nothing to scroll");
    let long: String = (0..60).map(|i| format!("+line {i}\n")).collect();
    app.diff = Load::Loaded(crate::wire::Diff {
        from: 1,
        to: 2,
        unified: long,
    });
    keys(&mut app, "G j j");
    assert_eq!(app.inspector.scroll, 40, "the last line at the pane's foot");
}

#[test]
fn the_header_marks_counts_over_a_partly_loaded_list() {
    let mut app = app(Role::Operator);
    let failures = crate::wire::Page {
        items: vec![run(40, "lead_routing", RunStatus::Failed)],
        next_cursor: None,
    };
    update(
        &mut app,
        Msg::Reply(Request::Failures, Box::new(Ok(Reply::Runs(failures)))),
    );
    assert!(app.runs.failures_complete);
    assert!(app.runs.rows.contains_key(&40));
    assert_eq!(app.runs.counts.get("failed"), Some(&11));
}

#[test]
fn an_alert_asked_for_that_is_not_there_says_so() {
    let mut app = app(Role::Operator);
    app.view = View::Alerts;
    app.focus_alert = Some(999);
    update(
        &mut app,
        Msg::Reply(Request::Alerts, Box::new(Ok(Reply::Alerts(Vec::new())))),
    );
    assert!(
        app.toast
            .as_ref()
            .is_some_and(|(t, e)| *e && t.contains("alert 999")),
        "{:?}",
        app.toast
    );
}

/// `t` on a workflow picks recent triggers (or `#ID` for a record), runs the test and opens
/// its screen on the first input that failed; `c` runs it again compared with the published
/// version; viewers cannot test.
#[test]
fn testing_a_draft_picks_inputs_shows_the_result_and_compares() {
    use crate::wire::{TestInput, TestReport, TestVersion, WorkflowView};
    let mut app = app(Role::Operator);
    app.view = View::Workflows;
    app.workflows.items = Load::Loaded(vec![WorkflowView {
        key: "lead_routing".into(),
        name: "Lead routing".into(),
        team: "revops".into(),
        published_version: Some(2),
        latest_version: 2,
        has_draft: true,
        updated_at: chrono::Utc::now(),
        runs_24h: 0,
        failed_24h: 0,
    }]);
    let effects = keys(&mut app, "t");
    assert_eq!(
        requests(&effects),
        [&Request::Triggers("lead_routing".into())]
    );
    let mut recent = vec![run(8, "lead_routing", RunStatus::Succeeded)];
    recent[0].trigger = serde_json::json!({"record": {"id": 5, "values": {"name": "Ada"}}});
    recent.push(run(9, "lead_routing", RunStatus::Succeeded));
    recent[1].trigger = serde_json::json!({"record": {"id": 6, "values": {"name": "Bo"}}});
    recent[1].record_id = Some(6);
    // An older trigger of the same record: the picker lists each record once, newest first.
    recent.push(run(4, "lead_routing", RunStatus::Succeeded));
    recent[2].trigger = serde_json::json!({"record": {"id": 6, "values": {"name": "Bo (old)"}}});
    recent[2].record_id = Some(6);
    update(
        &mut app,
        Msg::Reply(
            Request::Triggers("lead_routing".into()),
            Box::new(Ok(Reply::Triggers(recent))),
        ),
    );
    let Overlay::Picker(picker) = &app.overlay else {
        panic!("the picker is open");
    };
    assert_eq!(picker.shown().len(), 2, "one line per record");
    // Narrowed to Bo, marked, tested.
    let effects = keys(&mut app, "bo <space> <enter>");
    let Some(Request::Test { workflow, request }) = requests(&effects).first().copied() else {
        panic!("{effects:?}");
    };
    assert_eq!(workflow, "lead_routing");
    assert_eq!(request.version, Some(TestVersion::Draft));
    assert_eq!(
        request.inputs,
        [TestInput::Payload {
            payload: serde_json::json!({"record": {"id": 6, "values": {"name": "Bo"}}})
        }]
    );
    assert_eq!(
        app.view,
        View::Test {
            workflow: "lead_routing".into()
        }
    );
    let report: TestReport = serde_json::from_value(serde_json::json!({
        "workflow": "lead_routing", "version": 0, "results": [
            {"run_id": 1, "input": {"record_id": 5}, "status": "succeeded", "steps": []},
            {"run_id": 2, "input": {"record_id": 6}, "status": "failed", "steps": []},
        ]
    }))
    .unwrap();
    update(
        &mut app,
        Msg::Reply(
            Request::Test {
                workflow: "lead_routing".into(),
                request: request.clone(),
            },
            Box::new(Ok(Reply::Test(Box::new(report)))),
        ),
    );
    assert_eq!(app.test.selected, 1, "opens on the failed input");
    keys(&mut app, "<tab>");
    let effects = keys(&mut app, "c");
    let Some(Request::Test { request, .. }) = requests(&effects).first().copied() else {
        panic!("{effects:?}");
    };
    assert_eq!(request.compare, Some(TestVersion::Published));
    // A record by id, from the picker.
    keys(&mut app, "t");
    let effects = keys(&mut app, "#12 <enter>");
    let Some(Request::Test { request, .. }) = requests(&effects).first().copied() else {
        panic!("{effects:?}");
    };
    assert_eq!(request.inputs, [TestInput::Record { record_id: 12 }]);

    let mut viewer = app_with_view(Role::Viewer, View::Workflows);
    viewer.workflows.items = app.workflows.items.clone();
    assert!(keys(&mut viewer, "t").is_empty());
    assert!(
        viewer
            .toast
            .as_ref()
            .is_some_and(|(t, _)| t.contains("viewer"))
    );
}

fn app_with_view(role: Role, view: View) -> App {
    let mut app = app(role);
    app.view = view;
    app
}

/// `z` pauses the selected workflow with a typed reason (a hold) and, once paused, asks to
/// resume it (the hold's release); operators may not; `:holds` places holds from one typed
/// line and releases the selected one after a yes.
#[test]
fn workflows_pause_and_resume_and_holds_are_placed_and_released() {
    use crate::wire::{HoldList, HoldRequest, HoldSource, HoldView, WorkflowView};
    let mut admin = app(Role::Admin);
    admin.view = View::Workflows;
    admin.workflows.items = Load::Loaded(vec![WorkflowView {
        key: "lead_routing".into(),
        name: "Lead routing".into(),
        team: "revops".into(),
        published_version: Some(2),
        latest_version: 2,
        has_draft: false,
        updated_at: chrono::Utc::now(),
        runs_24h: 0,
        failed_24h: 0,
    }]);
    admin.holds.items = Load::Loaded(HoldList::default());
    assert!(
        keys(&mut admin, "z <enter>").is_empty(),
        "a pause needs a reason"
    );
    let effects = keys(&mut admin, "CRM <space> migration <enter>");
    assert_eq!(
        requests(&effects),
        [&Request::PlaceHold(Box::new(HoldRequest {
            scope: "workflow:lead_routing".into(),
            reason: "CRM migration".into(),
            ..HoldRequest::default()
        }))]
    );
    let hold = HoldView {
        id: 4,
        scope: "workflow:lead_routing".into(),
        reason: "CRM migration".into(),
        source: HoldSource::Api,
        created_by: "me".into(),
        created_at: chrono::Utc::now(),
        until: None,
        drain_rate: None,
        released_at: None,
        released_by: None,
        held_runs: 3,
    };
    admin.holds.items = Load::Loaded(HoldList {
        holds: vec![hold],
        ..HoldList::default()
    });
    keys(&mut admin, "z");
    assert!(
        matches!(&admin.overlay, Overlay::Confirm { question, .. } if question.starts_with("Resume lead_routing?")),
        "{:?}",
        admin.overlay
    );
    assert_eq!(requests(&keys(&mut admin, "y")), [&Request::ReleaseHold(4)]);
    // `:holds`: a new hold from one line; a line without a scope says how to write it.
    keys(&mut admin, ":holds <enter>");
    assert_eq!(admin.view, View::Holds);
    keys(&mut admin, "n");
    let effects = keys(&mut admin, "vendor <space> outage <enter>");
    assert!(effects.is_empty());
    assert!(
        admin.toast.as_ref().unwrap().0.contains("SCOPE REASON"),
        "{:?}",
        admin.toast
    );
    assert!(
        matches!(admin.overlay, Overlay::Reason { .. }),
        "kept to correct"
    );
    // Options go last, and a hold needs a reason besides them.
    for line in [
        "<esc> n host:x.com <space> why <space> for <space> 2h <space> extra <enter>",
        "<esc> n host:x.com <space> for <space> 2h <enter>",
    ] {
        assert!(keys(&mut admin, line).is_empty(), "{line}");
        assert!(admin.toast.as_ref().unwrap().1, "{:?}", admin.toast);
    }
    keys(&mut admin, "<esc> n");
    let effects = keys(
        &mut admin,
        "host:api.attio.com <space> vendor <space> outage <space> for <space> 2h <space> drain <space> 5/s <enter>",
    );
    assert_eq!(
        requests(&effects),
        [&Request::PlaceHold(Box::new(HoldRequest {
            scope: "host:api.attio.com".into(),
            reason: "vendor outage".into(),
            for_: Some("2h".into()),
            drain_rate: Some("5/s".into()),
            ..HoldRequest::default()
        }))]
    );
    keys(&mut admin, "D");
    assert_eq!(requests(&keys(&mut admin, "y")), [&Request::ReleaseHold(4)]);
    // Holds are an admin's.
    let mut operator = app(Role::Operator);
    operator.view = View::Holds;
    assert!(keys(&mut operator, "n").is_empty());
    assert!(
        operator.toast.as_ref().unwrap().0.contains("admin"),
        "{:?}",
        operator.toast
    );
}

fn incident(
    id: i64,
    cause_version: Option<i64>,
    open_dead_letters: i64,
) -> crate::wire::IncidentView {
    use crate::wire::{IncidentCause, IncidentState, IncidentView, SignatureView};
    IncidentView {
        id,
        signature: SignatureView {
            key: format!("v1:{id}"),
            version: 1,
            workflow: "lead_routing".into(),
            step: "enrich".into(),
            class: ErrorClass::Transient,
            host: None,
            message: "HTTP 503".into(),
        },
        team: "revops".into(),
        state: IncidentState::Open,
        count: 3,
        first_seen: chrono::Utc::now(),
        last_seen: chrono::Utc::now(),
        opened_at: chrono::Utc::now(),
        resolved_at: None,
        example: "HTTP 503".into(),
        open_dead_letters,
        records: 0,
        versions: vec![4],
        cause: cause_version.map(|version| IncidentCause {
            change: "published".into(),
            version,
            actor: "ana".into(),
            at: chrono::Utc::now(),
            after_s: 120,
            previous: Some(version - 1),
        }),
        held: Vec::new(),
    }
}

fn incidents_reply(list: Vec<crate::wire::IncidentView>) -> Msg {
    Msg::Reply(Request::Incidents, Box::new(Ok(Reply::Incidents(list))))
}

/// The last outcome or refusal the status bar shows.
fn said(app: &App) -> &str {
    app.toast.as_ref().map_or("", |(text, _)| text)
}

/// The replay of incident `id`'s dead letters (a preview with `dry_run`).
fn replay_incident(id: i64, dry_run: bool, version: crate::wire::ReplayOn) -> Request {
    Request::ReplayIncident {
        id,
        request: Box::new(crate::wire::IncidentReplay {
            version,
            dry_run,
            ..crate::wire::IncidentReplay::default()
        }),
    }
}

/// `8` lists incidents, enter opens one and its run, `p` previews the replay of its dead
/// letters and `y` starts it; `B` offers the rollback of the version it followed (admins).
#[test]
fn incidents_open_replay_through_the_preview_and_roll_back_their_cause() {
    use crate::wire::ReplayOn;
    let mut app = app(Role::Operator);
    let effects = keys(&mut app, "8");
    assert_eq!(app.view, View::Incidents);
    assert_eq!(
        requests(&effects),
        [&Request::Incidents, &Request::Workflows]
    );
    update(
        &mut app,
        incidents_reply(vec![incident(7, Some(4), 2), incident(5, None, 0)]),
    );
    let effects = keys(&mut app, "p");
    assert_eq!(
        requests(&effects),
        [&replay_incident(7, true, ReplayOn::Same)]
    );
    let effects = keys(&mut app, "l");
    assert_eq!(
        requests(&effects),
        [&replay_incident(7, true, ReplayOn::Latest)],
        "l switches the preview to the latest version"
    );
    update(
        &mut app,
        Msg::Reply(
            Request::Incidents,
            Box::new(Ok(Reply::Plan(Box::new(crate::wire::ReplayPlan {
                count: 2,
                workflows: vec!["lead_routing".into()],
                records: Vec::new(),
                external_steps: Vec::new(),
                runs: Vec::new(),
                groups: Vec::new(),
                held_back: 0,
            })))),
        ),
    );
    let effects = keys(&mut app, "y");
    assert_eq!(
        requests(&effects),
        [&replay_incident(7, false, ReplayOn::Latest)]
    );
    // The second one has nothing to replay and followed no publish.
    keys(&mut app, "j p");
    assert!(
        app.toast
            .as_ref()
            .unwrap()
            .0
            .contains("no open dead letter")
    );
    keys(&mut app, "B");
    assert!(
        app.toast.as_ref().unwrap().0.contains("admin"),
        "operators cannot roll back"
    );
    let mut admin = self::app(Role::Admin);
    keys(&mut admin, "8");
    update(&mut admin, incidents_reply(vec![incident(7, Some(4), 2)]));
    keys(&mut admin, "B");
    let Overlay::Confirm { question, then } = &admin.overlay else {
        panic!("a confirmation: {:?}", admin.overlay);
    };
    assert!(
        question.contains("began 2 minutes after version 4 was published by ana"),
        "{question}"
    );
    assert_eq!(
        then,
        &Pending::Rollback {
            workflow: "lead_routing".into(),
            version: 3
        }
    );
    // Nothing to roll back to after a first publish, nor once another version is published.
    admin.overlay = Overlay::None;
    let mut first = incident(7, Some(1), 2);
    if let Some(cause) = &mut first.cause {
        cause.previous = None;
    }
    update(&mut admin, incidents_reply(vec![first]));
    keys(&mut admin, "B");
    assert!(said(&admin).contains("first version"), "{:?}", admin.toast);
    let published = crate::wire::WorkflowView {
        key: "lead_routing".into(),
        name: "Lead routing".into(),
        team: "revops".into(),
        published_version: Some(5),
        latest_version: 5,
        has_draft: false,
        updated_at: chrono::Utc::now(),
        runs_24h: 0,
        failed_24h: 0,
    };
    admin.workflows.items = Load::Loaded(vec![published]);
    update(&mut admin, incidents_reply(vec![incident(7, Some(4), 2)]));
    keys(&mut admin, "B");
    assert!(
        said(&admin).contains("no longer published (v5 is)"),
        "{:?}",
        admin.toast
    );
    admin.workflows.items = Load::Idle;
    // After a rollback, B does not put back the version the rollback took away.
    let mut rolled = incident(7, Some(1), 2);
    if let Some(cause) = &mut rolled.cause {
        cause.change = "rolled_back".into();
    }
    update(&mut admin, incidents_reply(vec![rolled]));
    keys(&mut admin, "B");
    assert!(
        said(&admin).contains("after a rollback to version 1"),
        "{:?}",
        admin.toast
    );
    update(&mut admin, incidents_reply(vec![incident(7, Some(4), 2)]));
    // enter opens the incident, enter on a run opens the run.
    admin.overlay = Overlay::None;
    let effects = keys(&mut admin, "<enter>");
    assert_eq!(admin.view, View::Incident { id: 7 });
    assert_eq!(
        requests(&effects),
        [&Request::Incident(7), &Request::Workflows]
    );
    let detail = crate::wire::IncidentDetail {
        incident: incident(7, Some(4), 2),
        runs: vec![crate::wire::IncidentRun {
            run_id: 12,
            version: 4,
            record_id: None,
            at: chrono::Utc::now(),
            dlq_id: Some(3),
            dlq_open: true,
        }],
        record_ids: Vec::new(),
        history: Vec::new(),
        alerts: Vec::new(),
    };
    update(
        &mut admin,
        Msg::Reply(
            Request::Incident(7),
            Box::new(Ok(Reply::Incident(Box::new(detail)))),
        ),
    );
    keys(&mut admin, "<enter>");
    assert_eq!(admin.view, View::Inspector { run: 12 });
    keys(&mut admin, ": incident <space> 7 <enter>");
    assert_eq!(admin.view, View::Incident { id: 7 });
    keys(&mut admin, ": incidents <enter>");
    assert_eq!(admin.view, View::Incidents);
}
