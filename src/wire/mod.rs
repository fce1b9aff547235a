//! Types that cross the network: stream events, run/step read models, errors.
//!
//! Plain serde structs with no I/O. Both the server side and the console depend on this module;
//! it depends on nothing else in the crate. New fields get `#[serde(default)]` so an older
//! console keeps working against a newer server.

mod alerts;
mod api;
mod event;
mod health;
mod records;
mod runs;
mod webhooks;
mod workflows;

pub use alerts::{
    AlertState, AlertView, NotificationAttempt, NotificationQuery, NotificationView, RuleRequest,
    RuleView, SilenceRequest, top_error_line,
};
pub use api::*;
pub use event::{Event, EventKind};
pub use health::{
    ControlStatus, Counts, FailureReason, Health, HealthQuery, TeamHealth, Unnotified,
    WorkflowHealth,
};
pub use records::{FieldChange, RecordView, Source};
pub use runs::{
    AttemptStatus, AttemptView, DlqStatus, DlqView, ErrorClass, RunDetail, RunMode, RunStatus,
    RunView, StepError, TriggerKind,
};
pub use webhooks::{DeliveryView, WebhookCreated, WebhookRequest, WebhookView};
pub use workflows::{VersionView, WorkflowView};
