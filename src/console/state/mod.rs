//! The console's state: a cache of the server's, rebuilt from REST and kept fresh by the
//! stream, plus where the user is (view, history, selection, overlays). Views read it; only
//! `update` changes it.

mod tables;

use std::collections::{BTreeSet, HashMap};

use crate::wire::{
    AlertView, AuditEntry, Diff, FieldChange, Health, HoldList, IncidentDetail, IncidentView,
    JobView, Me, RecordView, ReplayOn, ReplayPlan, Role, RunStatus, SummaryReport, TestInput,
    TestReport, TestVersion, VersionView, WorkflowView,
};

use super::keymap::{Context, Keymap};
pub use tables::{
    Dlq, Filter, Grouping, Inspector, Listing, Runs, SortKey, StepSummary, duration_ms, fuzzy,
    signature,
};

/// Something fetched over REST.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Load<T> {
    #[default]
    Idle,
    Loading,
    Loaded(T),
    Failed(String),
}

impl<T> Load<T> {
    pub fn get(&self) -> Option<&T> {
        match self {
            Self::Loaded(value) => Some(value),
            _ => None,
        }
    }
}

/// The connection to the server, always shown in the status bar.
#[derive(Debug, Clone, PartialEq)]
pub enum Conn {
    Connecting,
    Live,
    /// Trying again: attempt `attempt`, the next try in `next_in_secs`.
    Reconnecting {
        attempt: u32,
        next_in_secs: u64,
        error: String,
    },
    /// The server refused the token (401): asking again cannot help until it changes.
    Rejected(String),
}

/// A screen; the history stack holds the ones Esc goes back to.
#[derive(Debug, Clone, PartialEq)]
pub enum View {
    Runs,
    Inspector {
        run: i64,
    },
    Dlq,
    Health,
    Alerts,
    Workflows,
    Versions {
        workflow: String,
    },
    Diff {
        workflow: String,
    },
    /// A test's results (`t` on a workflow or version).
    Test {
        workflow: String,
    },
    Audit,
    Record {
        id: i64,
    },
    /// Holds and the maintenance windows (`:holds`).
    Holds,
    /// Incidents, active first (`:incidents`).
    Incidents,
    /// One incident: its cause, history and runs.
    Incident {
        id: i64,
    },
}

impl View {
    /// Its keymap context.
    pub fn context(&self) -> Context {
        match self {
            Self::Runs => Context::Runs,
            Self::Inspector { .. } => Context::Inspector,
            Self::Dlq => Context::Dlq,
            Self::Health => Context::Health,
            Self::Alerts => Context::Alerts,
            Self::Workflows | Self::Versions { .. } | Self::Diff { .. } | Self::Test { .. } => {
                Context::Workflows
            }
            Self::Audit | Self::Record { .. } => Context::Audit,
            Self::Holds => Context::Holds,
            Self::Incidents | Self::Incident { .. } => Context::Incidents,
        }
    }

    /// Its name in breadcrumbs.
    pub fn crumb(&self) -> String {
        match self {
            Self::Runs => "runs".into(),
            Self::Inspector { run } => format!("run {run}"),
            Self::Dlq => "dlq".into(),
            Self::Health => "health".into(),
            Self::Alerts => "alerts".into(),
            Self::Workflows => "workflows".into(),
            Self::Versions { workflow } => format!("{workflow} versions"),
            Self::Diff { workflow } => format!("{workflow} diff"),
            Self::Test { workflow } => format!("{workflow} test"),
            Self::Audit => "audit".into(),
            Self::Record { id } => format!("record {id}"),
            Self::Holds => "holds".into(),
            Self::Incidents => "incidents".into(),
            Self::Incident { id } => format!("incident {id}"),
        }
    }
}

/// A change waiting for a yes.
#[derive(Debug, Clone, PartialEq)]
pub enum Pending {
    Retry(i64),
    Rerun(i64),
    Cancel(i64),
    Ack(i64),
    Publish(String),
    Rollback {
        workflow: String,
        version: i64,
    },
    /// Release a hold (resume a paused workflow).
    Release(i64),
    /// Replay the entries of a previewed plan.
    Replay {
        ids: Vec<i64>,
        filter: Option<crate::wire::RunQuery>,
        version: ReplayOn,
        /// Also permanent failures on the same version (held back by default).
        include_permanent: bool,
    },
    ReplayEdited {
        dlq: i64,
        payload: serde_json::Value,
    },
    /// Replay an incident's open dead letters (previewed first).
    ReplayIncident {
        id: i64,
        version: ReplayOn,
        include_permanent: bool,
    },
}

impl Pending {
    /// The replay options a preview can switch (`l`: version, `i`: permanent failures).
    pub fn replay_options(&mut self) -> Option<(&mut ReplayOn, &mut bool)> {
        match self {
            Self::Replay {
                version,
                include_permanent,
                ..
            }
            | Self::ReplayIncident {
                version,
                include_permanent,
                ..
            } => Some((version, include_permanent)),
            _ => None,
        }
    }

    /// The version a replay runs on and whether it takes in permanent failures (none for
    /// changes that are not replays).
    pub fn replay_settings(&self) -> Option<(ReplayOn, bool)> {
        self.clone()
            .replay_options()
            .map(|(version, include)| (*version, *include))
    }

    /// The request a replay preview sends (`dry_run`) or its yes sends; none for changes
    /// that are not replays.
    pub fn replay_request(&self, dry_run: bool) -> Option<super::msg::Request> {
        use super::msg::Request;
        match self {
            Self::ReplayIncident {
                id,
                version,
                include_permanent,
            } => Some(Request::ReplayIncident {
                id: *id,
                request: Box::new(crate::wire::IncidentReplay {
                    version: *version,
                    dry_run,
                    rate: None,
                    include_permanent: *include_permanent,
                }),
            }),
            _ => self.bulk(dry_run).map(|b| Request::Replay(Box::new(b))),
        }
    }

    /// The bulk replay a [`Pending::Replay`] sends (`None` for other changes); `dry_run` asks
    /// only for the plan.
    pub fn bulk(&self, dry_run: bool) -> Option<crate::wire::BulkReplay> {
        let Self::Replay {
            ids,
            filter,
            version,
            include_permanent,
        } = self
        else {
            return None;
        };
        Some(crate::wire::BulkReplay {
            filter: filter.clone().unwrap_or_default(),
            version: *version,
            dry_run,
            all: ids.is_empty(),
            ids: ids.clone(),
            rate: None,
            include_permanent: *include_permanent,
        })
    }
}

/// What sits over the view and takes the keys.
#[derive(Debug, Default)]
pub enum Overlay {
    #[default]
    None,
    Help,
    /// `:` command line.
    Command(String),
    /// `/` filter line (applies as you type).
    Filter(String),
    /// `/` search line in the inspector (jumps to the first match as you type).
    Search(String),
    /// A text to read; arrows scroll it, any other key closes it.
    Message {
        title: String,
        text: String,
    },
    /// A question answered with y / n.
    Confirm {
        question: String,
        then: Pending,
    },
    /// A typed line (a reason), then what it is for.
    Reason {
        prompt: String,
        input: String,
        then: Typed,
    },
    /// The server's dry-run answer before a replay.
    Preview {
        plan: Load<ReplayPlan>,
        then: Pending,
    },
    /// What to test on: the workflow's recent triggers, narrowed as you type, or `#ID` for a
    /// record as it is now.
    Picker(Box<Picker>),
    /// The trigger payload of a dead-letter entry, being edited.
    Editor {
        dlq: i64,
        editor: Box<tui_textarea::TextArea<'static>>,
        error: Option<String>,
    },
}

/// What a typed line is for.
#[derive(Debug, Clone, PartialEq)]
pub enum Typed {
    /// Discard these dead-letter entries with the reason.
    Discard(Vec<i64>),
    /// Pause this workflow (a hold until resumed) with the reason.
    Pause(String),
    /// A new hold: `SCOPE REASON [for DURATION]`.
    Hold,
}

/// The test input picker.
#[derive(Debug)]
pub struct Picker {
    pub workflow: String,
    pub version: TestVersion,
    /// The workflow's most recent live runs (their trigger payloads are the candidates).
    pub runs: Load<Vec<crate::wire::RunView>>,
    pub query: String,
    /// Marked runs, by id.
    pub marked: BTreeSet<i64>,
    pub selected: usize,
}

impl Picker {
    /// The record `#ID` (or a bare number) the query names, if it names one.
    pub fn record(&self) -> Option<i64> {
        let id = self.query.trim().trim_start_matches('#');
        id.parse().ok().filter(|id| *id > 0)
    }

    /// The runs the query matches (all of them without a query), with their labels.
    pub fn shown(&self) -> Vec<(&crate::wire::RunView, String)> {
        let needle = self.query.trim().to_lowercase();
        self.runs
            .get()
            .map(|runs| {
                runs.iter()
                    .map(|run| (run, candidate_label(run)))
                    .filter(|(_, label)| needle.is_empty() || fuzzy(&needle, label))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// What Enter tests: the record the query names, else the marked runs' triggers, else
    /// the selected one's.
    pub fn inputs(&self) -> Vec<TestInput> {
        if let Some(record_id) = self.record() {
            return vec![TestInput::Record { record_id }];
        }
        let shown = self.shown();
        let picked: Vec<&crate::wire::RunView> = if self.marked.is_empty() {
            shown
                .get(self.selected)
                .map(|(run, _)| *run)
                .into_iter()
                .collect()
        } else {
            let all = self.runs.get().map(Vec::as_slice).unwrap_or_default();
            all.iter().filter(|r| self.marked.contains(&r.id)).collect()
        };
        picked
            .into_iter()
            .map(|run| TestInput::Payload {
                payload: run.trigger.clone(),
            })
            .collect()
    }
}

/// One line about a recent trigger: the run, its record and the payload's start.
pub fn candidate_label(run: &crate::wire::RunView) -> String {
    let record = run
        .record_id
        .map_or_else(String::new, |id| format!("record {id} · "));
    let payload = match run.trigger.pointer("/record/values") {
        Some(values) => values.to_string(),
        None => run.trigger.to_string(),
    };
    format!("run {} · {record}{payload}", run.id)
}

/// The test screen: what was tested and what came back.
#[derive(Debug, Default)]
pub struct TestScreen {
    pub workflow: String,
    pub version: TestVersion,
    pub inputs: Vec<TestInput>,
    pub report: Load<TestReport>,
    /// The result shown (tab / shift-tab move).
    pub selected: usize,
    /// How far its detail is scrolled, in rows.
    pub scroll: u16,
}

/// The whole console state.
#[derive(Debug)]
pub struct App {
    pub server: String,
    pub keymap: Keymap,
    /// Started with `--read-only`; a viewer token is read-only too.
    pub read_only_flag: bool,
    pub me: Load<Me>,
    pub conn: Conn,
    pub view: View,
    pub history: Vec<View>,
    pub overlay: Overlay,
    pub runs: Runs,
    pub inspector: Inspector,
    pub dlq: Dlq,
    pub health: Load<Health>,
    pub health_team: Option<String>,
    /// The last 24 hours from the server's rollups (the header's outcome counts), reloaded
    /// after runs end.
    pub totals: Load<Health>,
    pub alerts: Listing<Vec<AlertView>>,
    pub workflows: Listing<Vec<WorkflowView>>,
    pub versions: Listing<Vec<VersionView>>,
    pub diff: Load<Diff>,
    pub test: TestScreen,
    pub audit: Listing<Vec<AuditEntry>>,
    pub record: Load<(RecordView, Vec<FieldChange>)>,
    /// The last outcome or refusal, shown in the status bar.
    pub toast: Option<(String, bool)>,
    /// The last bulk replay job started here, followed until it ends (a progress bar under
    /// the dead letters).
    pub job: Option<JobView>,
    /// Holds, maintenance windows and the held count (`:holds`; the workflows screen reads
    /// which workflows are paused from it).
    pub holds: Listing<HoldList>,
    /// Incidents, active first (`:incidents`).
    pub incidents: Listing<Vec<IncidentView>>,
    /// The incident opened from the list, and its selected run.
    pub incident: Load<IncidentDetail>,
    pub incident_selected: usize,
    /// The success metrics over 7 days (the health screen's summary line).
    pub summary: Load<SummaryReport>,
    /// Workflow key -> team, for events that carry no team.
    pub teams: HashMap<String, String>,
    /// Lists to reload on the next tick (stream events touched them).
    pub stale: BTreeSet<&'static str>,
    /// An alert to select once the alerts have loaded (`--alert ID`).
    pub focus_alert: Option<i64>,
    /// The demo's sandbox, when the console was opened by `acp demo`.
    pub sandbox: Option<String>,
    /// The terminal's size, once known; below [`crate::console::views::MIN`] no key but
    /// quit acts.
    pub size: Option<(u16, u16)>,
    /// How far the open overlay (help, message, replay preview) is scrolled, in lines.
    pub overlay_scroll: u16,
    /// When the server was last reachable, while it is not: cached screens say how old they are.
    pub offline_since: Option<chrono::DateTime<chrono::Utc>>,
    /// The audit log's cursor for older entries, while there are more.
    pub audit_cursor: Option<String>,
    /// The selected change in a record's field history (newest first).
    pub record_selected: usize,
    pub quit: bool,
}

impl App {
    /// The hold a person placed on `workflow` (what `z` releases), if it is paused.
    pub fn pause_of(&self, workflow: &str) -> Option<&crate::wire::HoldView> {
        let scope = format!("workflow:{workflow}");
        self.holds.items.get()?.holds.iter().find(|h| {
            h.scope == scope && h.source == crate::wire::HoldSource::Api && h.released_at.is_none()
        })
    }

    pub fn new(server: String, keymap: Keymap, read_only: bool) -> Self {
        Self {
            server,
            keymap,
            read_only_flag: read_only,
            me: Load::Loading,
            conn: Conn::Connecting,
            view: View::Runs,
            history: Vec::new(),
            overlay: Overlay::None,
            runs: Runs {
                follow: true,
                page: 20,
                ..Runs::default()
            },
            inspector: Inspector::default(),
            dlq: Dlq::default(),
            health: Load::Idle,
            totals: Load::Idle,
            health_team: None,
            alerts: Listing::default(),
            workflows: Listing::default(),
            versions: Listing::default(),
            diff: Load::Idle,
            test: TestScreen::default(),
            audit: Listing::default(),
            record: Load::Idle,
            toast: None,
            job: None,
            holds: Listing::default(),
            incidents: Listing::default(),
            incident: Load::Idle,
            incident_selected: 0,
            summary: Load::Idle,
            teams: HashMap::new(),
            stale: BTreeSet::new(),
            focus_alert: None,
            sandbox: None,
            size: None,
            overlay_scroll: 0,
            offline_since: None,
            audit_cursor: None,
            record_selected: 0,
            quit: false,
        }
    }

    /// Recomputes what the filtered lists show.
    pub fn refresh_lists(&mut self) {
        self.runs.refresh();
        self.dlq.refresh();
    }

    /// True while the terminal is smaller than the console lays out for.
    pub fn too_small(&self) -> bool {
        let (width, height) = super::views::MIN;
        self.size.is_some_and(|(w, h)| w < width || h < height)
    }

    /// The role the server gave this token (viewer until it answered).
    pub fn role(&self) -> Role {
        self.me.get().map_or(Role::Viewer, |m| m.role)
    }

    /// True when changes are hidden: `--read-only` or a viewer token.
    pub fn read_only(&self) -> bool {
        self.read_only_flag || self.role() == Role::Viewer
    }

    /// True when the test screen shows the published version (nothing to compare it with).
    pub fn tests_published(&self) -> bool {
        let published = self
            .workflows
            .items
            .get()
            .and_then(|list| list.iter().find(|w| w.key == self.test.workflow))
            .and_then(|w| w.published_version);
        match self.test.version {
            TestVersion::Published => true,
            TestVersion::Number(n) => published == Some(n),
            TestVersion::Draft => false,
        }
    }

    /// Firing alerts, for the header and the health view.
    pub fn firing(&self) -> Vec<&AlertView> {
        self.alerts
            .items
            .get()
            .map(|list| {
                list.iter()
                    .filter(|a| a.state == crate::wire::AlertState::Firing)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The glyph for a run status (colour comes from the theme).
pub fn glyph(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Queued => "·",
        RunStatus::Running => "▶",
        RunStatus::Retrying => "↻",
        RunStatus::Waiting => "…",
        RunStatus::Held => "‖",
        RunStatus::Succeeded => "✓",
        RunStatus::Failed => "✗",
        RunStatus::Cancelled => "⊘",
    }
}
