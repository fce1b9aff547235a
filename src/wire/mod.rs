//! Types that cross the network: stream events, run/step read models, errors.
//!
//! Plain serde structs with no I/O. Both the server side and the console depend on this module;
//! it depends on nothing else in the crate. New fields get `#[serde(default)]` so an older
//! console keeps working against a newer server.

/// What `Debug` prints in place of a secret (tokens, signing secrets, passwords).
pub const REDACTED: &str = "[redacted]";

/// True for a character a terminal must never be sent from data: control characters (an
/// escape starts a terminal command: colours, a clipboard write with OSC 52) and the
/// invisible format characters that reorder or hide text (bidi overrides and isolates,
/// zero-width spaces and joiners, the byte-order mark; Unicode TR #36, "Unicode Security
/// Considerations").
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// `text` with every [`is_unsafe_char`] but line breaks and tabs replaced by `�`, for
/// printing data (and text made from it) on a terminal line by line.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_here = |c: char| is_unsafe_char(c) && !matches!(c, '\n' | '\t');
    match text.contains(unsafe_here) {
        false => std::borrow::Cow::Borrowed(text),
        true => std::borrow::Cow::Owned(
            text.chars()
                .map(|c| if unsafe_here(c) { '\u{FFFD}' } else { c })
                .collect(),
        ),
    }
}
mod alerts;
mod api;
mod event;
mod health;
mod holds;
mod incidents;
mod jobs;
mod records;
mod runs;
mod testing;
mod webhooks;
mod workflows;

pub use alerts::{
    AlertState, AlertView, NotificationAttempt, NotificationQuery, NotificationView, RuleRequest,
    RuleView, SilenceRequest, top_error_line,
};
pub use api::*;
pub use event::{
    AlertChanged, ByActor, ControlChanged, DlqAdded, DlqDiscarded, DlqReplayed, Event, EventBody,
    EventKind, HoldChanged, RecordChanged, RetryScheduled, RunClaimed, RunEnded, RunHeld,
    RunQueued, RunReleased, RunWaiting, StepEnded, StepSkipped, StepStarted, WorkflowPublished,
    WorkflowRolledBack,
};
pub use health::{
    ControlStatus, Counts, DeliveryWarning, FailureReason, Health, HealthQuery, LoopStatus,
    TeamHealth, Unnotified, WorkflowHealth,
};
pub use holds::{HoldList, HoldRequest, HoldSource, HoldView, WindowView};
pub use incidents::{
    IncidentCause, IncidentDetail, IncidentFilter, IncidentQuery, IncidentReplay, IncidentRun,
    IncidentState, IncidentTransition, IncidentView, MetricsSummary, SignatureView, SummaryQuery,
    SummaryReport, WorkflowSummary,
};
pub use jobs::{JobState, JobView, ReplayRate};
pub use records::{FieldChange, RecordView, Source};
pub use runs::{
    AttemptStatus, AttemptView, DlqStatus, DlqView, ErrorClass, RunDetail, RunMode, RunStatus,
    RunView, StepError, TriggerKind,
};
pub use testing::{
    Comparison, DiffMark, FieldDiff, InputComparison, MAX_TEST_INPUTS, MockRefused, MockResponse,
    PlannedWrite, ResponseSource, Responses, TestInput, TestReport, TestRequest, TestResponse,
    TestResult, TestStep, TestStepStatus, TestVersion, WouldCall, WouldTrigger, WriteOp,
};
pub use webhooks::{DeliveryView, WebhookCreated, WebhookPayload, WebhookRequest, WebhookView};
pub use workflows::{VersionView, WorkflowView};

#[cfg(test)]
mod tests {
    #[test]
    fn terminal_commands_and_invisible_reordering_never_print() {
        let text = "team:ops\u{1b}[31mRED\u{1b}]52;c;aGVsbG8=\u{7}\u{202e}evil\u{200b}";
        assert_eq!(
            super::printable(text),
            "team:ops\u{FFFD}[31mRED\u{FFFD}]52;c;aGVsbG8=\u{FFFD}\u{FFFD}evil\u{FFFD}"
        );
        assert!(matches!(
            super::printable("Müller · ✓ 日本\n\tnext line"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(super::printable("a\r\nb"), "a\u{FFFD}\nb");
    }

    #[test]
    fn created_secrets_stay_out_of_debug_output() {
        let token = super::TokenCreated {
            view: serde_json::from_value(serde_json::json!({
                "id": 1, "name": "ci", "role": "operator", "created_at": "2026-11-30T00:00:00Z"
            }))
            .expect("a token view"),
            token: "acp_SECRETTOKEN".into(),
        };
        let shown = format!("{token:?}");
        assert!(
            !shown.contains("SECRETTOKEN") && shown.contains("ci"),
            "{shown}"
        );
    }
}
