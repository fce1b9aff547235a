//! The cached tables and their positions: runs (filter, sort, follow), dead letters (marks,
//! grouping), the inspector's steps, and plain lists.

use std::collections::{BTreeMap, BTreeSet};

use super::Load;
use crate::wire::{DlqView, RunDetail, RunView};

/// How the run table is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    #[default]
    Newest,
    Workflow,
    Status,
    Duration,
}

impl SortKey {
    pub fn next(self) -> Self {
        match self {
            Self::Newest => Self::Workflow,
            Self::Workflow => Self::Status,
            Self::Status => Self::Duration,
            Self::Duration => Self::Newest,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Newest => "newest",
            Self::Workflow => "workflow",
            Self::Status => "status",
            Self::Duration => "duration",
        }
    }

    /// Which way the order runs: `↓` newest or longest first, `↑` A to Z.
    pub fn direction(self) -> &'static str {
        match self {
            Self::Newest | Self::Duration => "↓",
            Self::Workflow | Self::Status => "↑",
        }
    }
}

/// The longest `since:` (the server's limit for durations too).
const MAX_SINCE: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 24 * 3600);

/// A parsed filter: `status:failed`, `wf:KEY`, `team:NAME`, `since:1h` and fuzzy words.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub status: Option<String>,
    pub workflow: Option<String>,
    pub team: Option<String>,
    /// Only what happened in this last stretch of time (`since:15m`).
    pub since: Option<std::time::Duration>,
    pub words: Vec<String>,
    /// What could not be read (a bad `since:`), shown on the filter line.
    pub error: Option<String>,
}

impl Filter {
    pub fn parse(text: &str) -> Self {
        let mut filter = Filter::default();
        for token in text.split_whitespace() {
            match token.split_once(':') {
                Some(("status", v)) => filter.status = Some(v.to_lowercase()),
                Some(("wf" | "workflow", v)) => filter.workflow = Some(v.to_owned()),
                Some(("team", v)) => filter.team = Some(v.to_owned()),
                Some(("since", v)) => match humantime::parse_duration(v) {
                    Ok(d) if d <= MAX_SINCE => filter.since = Some(d),
                    Ok(_) => filter.error = Some(format!("`since:{v}` is over 100 years")),
                    Err(_) => {
                        filter.error = Some(format!(
                            "`since:{v}` is not a duration (e.g. since:15m, since:2h)"
                        ));
                    }
                },
                _ => filter.words.push(token.to_lowercase()),
            }
        }
        filter
    }

    /// True when `at` is inside the `since:` stretch (or there is none).
    fn recent(&self, at: chrono::DateTime<chrono::Utc>) -> bool {
        self.since.is_none_or(|since| {
            chrono::Duration::from_std(since)
                .ok()
                .and_then(|since| chrono::Utc::now().checked_sub_signed(since))
                .is_none_or(|from| at >= from)
        })
    }

    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }

    /// True when a run matches: exact on the tokens, fuzzy (letters in order) on the words
    /// against workflow, record id and error message.
    pub fn matches_run(&self, run: &RunView) -> bool {
        let tokens = self
            .status
            .as_deref()
            .is_none_or(|s| run.status.as_str() == s)
            && self.workflow.as_deref().is_none_or(|w| run.workflow == w)
            && self.team.as_deref().is_none_or(|t| run.team == t)
            && self.recent(run.queued_at);
        if !tokens || self.words.is_empty() {
            return tokens;
        }
        let error = run.error.as_ref().map(|e| e.message.as_str()).unwrap_or("");
        let record = run.record_id.map(|r| r.to_string()).unwrap_or_default();
        self.words
            .iter()
            .all(|w| fuzzy(w, &run.workflow) || fuzzy(w, &record) || fuzzy(w, error))
    }

    /// The same for a dead-letter entry.
    pub fn matches_dlq(&self, entry: &DlqView) -> bool {
        self.workflow.as_deref().is_none_or(|w| entry.workflow == w)
            && self.team.as_deref().is_none_or(|t| entry.team == t)
            && self.recent(entry.created_at)
            && self.words.iter().all(|w| {
                let record = entry.record_id.map(|r| r.to_string()).unwrap_or_default();
                fuzzy(w, &entry.workflow)
                    || fuzzy(w, &entry.error.message)
                    || fuzzy(w, &entry.step_id)
                    || fuzzy(w, &record)
            })
    }

    /// The server-side query for a bulk replay of what this filter shows.
    pub fn query(&self) -> crate::wire::RunQuery {
        let since = self.since.and_then(|since| {
            chrono::Utc::now().checked_sub_signed(chrono::Duration::from_std(since).ok()?)
        });
        crate::wire::RunQuery {
            workflow: self.workflow.clone(),
            team: self.team.clone(),
            q: (!self.words.is_empty()).then(|| self.words.join(" ")),
            since,
            ..Default::default()
        }
    }
}

/// True when the letters of `needle` appear in `haystack` in order (case-insensitive).
pub fn fuzzy(needle: &str, haystack: &str) -> bool {
    let mut letters = haystack.chars().flat_map(char::to_lowercase);
    needle.chars().all(|n| letters.any(|h| h == n))
}

/// The run explorer's cache and position.
#[derive(Debug, Default)]
pub struct Runs {
    pub rows: BTreeMap<i64, RunView>,
    pub filter_text: String,
    pub filter: Filter,
    /// Ids of the rows that pass the filter, in display order.
    pub visible: Vec<i64>,
    pub selected: usize,
    pub follow: bool,
    pub sort: SortKey,
    /// The REST cursor for older runs, while there are more.
    pub next_cursor: Option<String>,
    pub loading_more: bool,
    pub loaded: bool,
    /// Rows, filter or sort changed since the visible rows were computed.
    pub changed: bool,
    /// Runs per status over every cached run (computed with the visible rows); `failed`
    /// counts only open failures (not yet replayed, retried or discarded).
    pub counts: BTreeMap<&'static str, usize>,
    /// The filter before a drill-down (an alert's failed runs) set one; `esc` restores it.
    pub filter_before_drill: Option<String>,
    /// How many rows the table shows at once (from the terminal's height).
    pub page: usize,
    /// Every failed run is cached (the failures page had no more): the open-failure count
    /// is whole.
    pub failures_complete: bool,
    /// The filter the visible rows were computed with: a new filter starts at the top.
    pub shown_filter: Filter,
}

impl Runs {
    /// Recomputes the visible rows (when something changed), keeping the selected run
    /// selected: new rows never move the selection while it is on screen. Following keeps
    /// the newest rows in view above it; once new rows push it off the page, the selection
    /// goes back to the newest run.
    pub fn refresh(&mut self) {
        if !std::mem::take(&mut self.changed) {
            return;
        }
        let selected_id = self.visible.get(self.selected).copied();
        let mut visible: Vec<&RunView> = self
            .rows
            .values()
            .rev()
            .filter(|r| self.filter.matches_run(r))
            .collect();
        match self.sort {
            SortKey::Newest => {}
            SortKey::Workflow => visible.sort_by(|a, b| a.workflow.cmp(&b.workflow)),
            SortKey::Status => visible.sort_by_key(|r| r.status.as_str()),
            SortKey::Duration => visible.sort_by_key(|r| std::cmp::Reverse(duration_ms(r))),
        }
        self.visible = visible.into_iter().map(|r| r.id).collect();
        self.counts.clear();
        for run in self.rows.values() {
            if run.status != crate::wire::RunStatus::Failed || run.is_open_failure() {
                *self.counts.entry(run.status.as_str()).or_default() += 1;
            }
        }
        self.selected = selected_id
            .and_then(|id| self.visible.iter().position(|v| *v == id))
            .unwrap_or_else(|| self.selected.min(self.visible.len().saturating_sub(1)));
        if self.shown_filter != self.filter {
            self.shown_filter = self.filter.clone();
            self.selected = 0;
        }
        if self.follow && self.selected >= self.page.max(1) {
            self.selected = 0;
        }
    }

    pub fn selected_run(&self) -> Option<&RunView> {
        self.visible
            .get(self.selected)
            .and_then(|id| self.rows.get(id))
    }
}

/// How long a run took (or has taken so far is unknown: finished runs only).
pub fn duration_ms(run: &RunView) -> Option<i64> {
    Some((run.finished_at? - run.started_at?).num_milliseconds())
}

/// The dead-letter view.
#[derive(Debug, Default)]
pub struct Dlq {
    pub entries: Load<Vec<DlqView>>,
    /// More open entries exist than were loaded (the first 500).
    pub more: bool,
    pub filter_text: String,
    pub filter: Filter,
    pub visible: Vec<usize>,
    pub selected: usize,
    /// The selected entry's id: a reload keeps it selected wherever it moved.
    pub selected_id: Option<i64>,
    pub marked: BTreeSet<i64>,
    /// The entry the last mark was set on, with the entries there were then: a range mark
    /// never takes in an entry that arrived after it.
    pub anchor: Option<(i64, BTreeSet<i64>)>,
    pub group: Grouping,
}

/// How dead letters are grouped (entries of a group are listed together).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Grouping {
    #[default]
    None,
    Workflow,
    /// By error signature: the message with numbers masked.
    Error,
}

impl Grouping {
    pub fn next(self) -> Self {
        match self {
            Self::None => Self::Workflow,
            Self::Workflow => Self::Error,
            Self::Error => Self::None,
        }
    }

    /// The group an entry belongs to.
    pub fn key(self, entry: &DlqView) -> String {
        match self {
            Self::None => String::new(),
            Self::Workflow => entry.workflow.clone(),
            Self::Error => signature(&entry.error.message),
        }
    }
}

/// An error message with every run of digits masked, so "lead 1841" and "lead 77" group;
/// an HTTP status stays, because it tells reasons apart.
pub fn signature(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut in_number = false;
    for c in message.lines().next().unwrap_or("").chars() {
        if c.is_ascii_digit() {
            if out.ends_with("HTTP ") || (in_number && !out.ends_with('#')) {
                out.push(c);
            } else if !in_number {
                out.push('#');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

impl Dlq {
    pub fn refresh(&mut self) {
        let Some(entries) = self.entries.get() else {
            self.visible.clear();
            return;
        };
        self.visible = entries
            .iter()
            .enumerate()
            .filter(|(_, e)| self.filter.matches_dlq(e))
            .map(|(i, _)| i)
            .collect();
        let group = self.group;
        self.visible
            .sort_by_cached_key(|i| (group.key(&entries[*i]), *i));
        self.selected = self
            .selected_id
            .and_then(|id| self.visible.iter().position(|i| entries[*i].id == id))
            .unwrap_or_else(|| self.selected.min(self.visible.len().saturating_sub(1)));
        self.selected_id = self.visible.get(self.selected).map(|i| entries[*i].id);
        let open: BTreeSet<i64> = entries.iter().map(|e| e.id).collect();
        self.marked.retain(|id| open.contains(id));
    }

    /// Selects row `index` of the visible entries.
    pub fn select(&mut self, index: usize) {
        self.selected = index;
        self.selected_id = self
            .visible
            .get(index)
            .and_then(|i| self.entries.get()?.get(*i))
            .map(|e| e.id);
    }

    /// The ids of the visible entries from the anchor to the selection (inclusive) that were
    /// there when the anchor was set.
    pub fn range(&self) -> Vec<i64> {
        let Some(entries) = self.entries.get() else {
            return Vec::new();
        };
        let ids: Vec<i64> = self.visible.iter().map(|i| entries[*i].id).collect();
        let (from, known) = match &self.anchor {
            Some((id, known)) => (ids.iter().position(|v| v == id), Some(known)),
            None => (None, None),
        };
        let from = from.unwrap_or(self.selected);
        let (low, high) = (from.min(self.selected), from.max(self.selected));
        ids.get(low..=high.min(ids.len().saturating_sub(1)))
            .unwrap_or_default()
            .iter()
            .copied()
            .filter(|id| known.is_none_or(|k| k.contains(id)))
            .collect()
    }

    pub fn selected_entry(&self) -> Option<&DlqView> {
        let index = *self.visible.get(self.selected)?;
        self.entries.get()?.get(index)
    }

    /// The marked entries, or the selected one when nothing is marked.
    pub fn targets(&self) -> Vec<i64> {
        if self.marked.is_empty() {
            self.selected_entry()
                .map(|e| vec![e.id])
                .unwrap_or_default()
        } else {
            self.marked.iter().copied().collect()
        }
    }
}

/// The step inspector's position.
#[derive(Debug, Default)]
pub struct Inspector {
    pub detail: Load<RunDetail>,
    pub step: usize,
    pub scroll: u16,
    /// The step list is hidden and the detail takes the width (`z`).
    pub zoom: bool,
    /// The detail shows the run's trigger payload instead of the step (`t`).
    pub trigger: bool,
    /// Text searched for in the detail (`/`); matching lines are marked, `n`/`N` move.
    pub search: String,
    /// Which match `n`/`N` last went to.
    pub hit: usize,
}

/// One step of a run as the inspector shows it: its attempts, newest last.
pub struct StepSummary<'a> {
    pub step_id: &'a str,
    pub attempts: Vec<&'a crate::wire::AttemptView>,
}

impl Inspector {
    /// The run's steps in order, each with its attempts.
    pub fn steps(&self) -> Vec<StepSummary<'_>> {
        let Some(detail) = self.detail.get() else {
            return Vec::new();
        };
        let mut by_index: BTreeMap<i64, StepSummary<'_>> = BTreeMap::new();
        for attempt in &detail.attempts {
            by_index
                .entry(attempt.step_index)
                .or_insert_with(|| StepSummary {
                    step_id: &attempt.step_id,
                    attempts: Vec::new(),
                })
                .attempts
                .push(attempt);
        }
        by_index.into_values().collect()
    }
}

/// A list with a selection.
#[derive(Debug)]
pub struct Listing<T> {
    pub items: Load<T>,
    pub selected: usize,
}

impl<T> Listing<Vec<T>> {
    /// Replaces the items, keeping the selected item (by `key`) selected wherever it moved.
    pub fn replace<K: PartialEq>(&mut self, items: Vec<T>, key: impl Fn(&T) -> K) {
        let before = self
            .items
            .get()
            .and_then(|list| list.get(self.selected))
            .map(&key);
        self.selected = before
            .and_then(|k| items.iter().position(|item| key(item) == k))
            .unwrap_or_else(|| self.selected.min(items.len().saturating_sub(1)));
        self.items = Load::Loaded(items);
    }
}

impl<T> Default for Listing<T> {
    fn default() -> Self {
        Self {
            items: Load::Idle,
            selected: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_mask_numbers() {
        assert_eq!(
            signature("HTTP 503 for lead 1841\nmore"),
            "HTTP 503 for lead #"
        );
    }

    #[test]
    fn filters_read_tokens_and_fuzzy_words() {
        let f = Filter::parse("status:failed wf:lead_routing 503");
        assert_eq!(f.status.as_deref(), Some("failed"));
        assert_eq!(f.workflow.as_deref(), Some("lead_routing"));
        assert_eq!(f.words, ["503"]);
        assert!(fuzzy("ldrt", "lead_routing"));
        assert!(!fuzzy("xyz", "lead_routing"));
    }
}
